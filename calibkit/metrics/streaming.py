"""Streaming metrics with fixed-size, sum-reducible state.

Each metric keeps only sums (O(n_bins x K) for the calibration error, two numbers for
the Brier score and the NLL), so shards can be updated independently and combined with
:meth:`merge` (or by adding their :meth:`state_dict` arrays, e.g. an all-reduce with
``sum``); the result equals the one-shot metric on the concatenated data.

Only equal-width bins are offered: their edges are known before any data arrive, whereas
equal-mass edges are quantiles of the whole data set, which no fixed-size sum can give.
"""

from __future__ import annotations

import numpy as np

from calibkit._validation import check_consistent_length, check_labels_1d, check_sample_weight
from calibkit.metrics._binning import check_n_bins, uniform_bin_sums
from calibkit.metrics.calibration import (
    MODES,
    NORMS,
    _ce_from_bin_sums,
    _check_choice,
    _classwise_uniform_sums,
    _combine_classes,
    _Problems,
    check_probabilities,
)
from calibkit.metrics.scores import brier_per_sample, nll_per_sample


class _StreamingMetric:
    """Shared update / merge / state handling; subclasses define the state and compute."""

    _state_names: tuple[str, ...] = ()

    def __init__(self, *, n_classes=None):
        self.n_classes = n_classes
        self.reset()

    def reset(self):
        """Forget every update."""
        self._n_classes_seen = self.n_classes
        for name in self._state_names:
            setattr(self, name, None)
        return self

    def _params(self) -> dict:
        return {"n_classes": self.n_classes}

    def state_dict(self) -> dict:
        """Parameters and the summed state (numpy arrays, ``None`` before any update)."""
        state = {name: getattr(self, name) for name in self._state_names}
        return {
            "params": self._params(),
            "n_classes_seen": self._n_classes_seen,
            "state": {k: None if v is None else np.array(v, copy=True) for k, v in state.items()},
        }

    @classmethod
    def from_state(cls, state: dict):
        """Rebuild a metric from :meth:`state_dict`."""
        obj = cls(**state["params"])
        obj._n_classes_seen = state["n_classes_seen"]
        for k, v in state["state"].items():
            setattr(obj, k, None if v is None else np.asarray(v, dtype=np.float64).copy())
        return obj

    def merge(self, other):
        """Add the state of ``other`` (same type and parameters) into this metric."""
        if type(other) is not type(self) or other._params() != self._params():
            raise ValueError(
                "can only merge metrics of the same type and parameters; got "
                f"{type(other).__name__}{other._params()} into "
                f"{type(self).__name__}{self._params()}."
            )
        if other._n_classes_seen is None or getattr(other, self._state_names[0]) is None:
            return self
        if self._n_classes_seen is not None and getattr(self, self._state_names[0]) is not None:
            if self._n_classes_seen != other._n_classes_seen:
                raise ValueError(
                    f"cannot merge states over {other._n_classes_seen} and "
                    f"{self._n_classes_seen} classes."
                )
            for name in self._state_names:
                setattr(self, name, getattr(self, name) + getattr(other, name))
        else:
            self._n_classes_seen = other._n_classes_seen
            for name in self._state_names:
                setattr(self, name, np.array(getattr(other, name), copy=True))
        return self

    def _validate(self, y_true, y_prob, sample_weight):
        p = check_probabilities(y_prob)
        k = 2 if p.ndim == 1 else p.shape[1]
        if self._n_classes_seen is None:
            self._n_classes_seen = k
        elif k != self._n_classes_seen:
            raise ValueError(
                f"y_prob has {k} class column(s) but earlier updates had {self._n_classes_seen}."
            )
        y = check_labels_1d(y_true, name="y_true")
        if y.dtype.kind == "b":
            y = y.astype(np.intp)
        if y.dtype.kind not in "iu" and not (
            y.dtype.kind == "f" and np.all(y == np.round(y))
        ):
            raise ValueError(
                "streaming metrics need integer class indices in y_true (the column of the "
                f"true class); got dtype {y.dtype}. Encode labels once, e.g. with "
                "np.searchsorted(classes, y)."
            )
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"y_true must hold column indices in [0, {k}); got values "
                             f"in [{y.min()}, {y.max()}].")
        y = y.astype(np.intp, copy=False)
        n = check_consistent_length(("y_true", y), ("y_prob", p))
        return p, y, check_sample_weight(sample_weight, n)

    def _check_updated(self):
        if getattr(self, self._state_names[0]) is None:
            raise ValueError(f"{type(self).__name__}.compute() called before any update().")


class StreamingCalibrationError(_StreamingMetric):
    """Equal-width binned calibration error accumulated over batches.

    State: per bin (per class for ``mode="classwise"``) the weighted count, sum of
    confidences and sum of outcomes, shape (n_problems, n_bins). :meth:`compute` applies
    the same formula as :func:`calibkit.metrics.expected_calibration_error` (same bins,
    modes and norms; no debiasing). ``y_true`` must be column indices in ``[0, K)``.

    Parameters
    ----------
    n_bins : int, default=15
    norm : {"l1", "l2", "max"}, default="l1"
    mode : {"top_label", "classwise", "binary"}, default="top_label"
    n_classes : int or None, default=None
        Number of columns; taken from the first update when None.
    """

    _state_names = ("count", "sum_conf", "sum_acc")

    def __init__(self, *, n_bins=15, norm="l1", mode="top_label", n_classes=None):
        self.n_bins = check_n_bins(n_bins)
        self.norm = _check_choice(norm, NORMS, "norm")
        self.mode = _check_choice(mode, MODES, "mode")
        super().__init__(n_classes=n_classes)

    def _params(self):
        return {"n_bins": self.n_bins, "norm": self.norm, "mode": self.mode,
                "n_classes": self.n_classes}

    def update(self, y_true, y_prob, sample_weight=None):
        """Add a batch: ``y_prob`` of shape (n,) or (n, K) probabilities."""
        p, y, w = self._validate(y_true, y_prob, sample_weight)
        k = 2 if p.ndim == 1 else p.shape[1]
        if self.mode == "binary" and k != 2:
            raise ValueError(f"mode='binary' needs 1-D y_prob or 2 columns; got {k}.")
        probs = _Problems(p, y, w, self.mode, list(range(k)) if self.mode == "classwise" else [0])
        if probs.is_full_classwise:
            c, sc, sa, _ = _classwise_uniform_sums(probs, self.n_bins, False)
        else:
            sums = [uniform_bin_sums(conf, self.n_bins, acc, w) for conf, acc in probs]
            c, sc, sa = (np.stack(s) for s in zip(*sums, strict=True))
        if self.count is None:
            self.count, self.sum_conf, self.sum_acc = c, sc, sa
        else:
            self.count = self.count + c
            self.sum_conf = self.sum_conf + sc
            self.sum_acc = self.sum_acc + sa
        return self

    def compute(self) -> float:
        """The calibration error of everything seen so far."""
        self._check_updated()
        ces = _ce_from_bin_sums(self.count, self.sum_conf, self.sum_acc, self.norm)
        return float(_combine_classes(ces, self.norm))


class StreamingBrierScore(_StreamingMetric):
    """Brier score accumulated over batches (state: weighted loss sum and weight sum).

    Same definition as :func:`calibkit.metrics.brier_score`; ``y_true`` are column indices.
    """

    _state_names = ("sum_loss", "sum_weight")
    _per_sample = staticmethod(brier_per_sample)

    def update(self, y_true, y_prob, sample_weight=None):
        """Add a batch."""
        p, y, w = self._validate(y_true, y_prob, sample_weight)
        loss = type(self)._per_sample(y, p)
        s = np.array([loss.sum() if w is None else loss @ w])
        sw = np.array([float(len(y)) if w is None else w.sum()])
        if self.sum_loss is None:
            self.sum_loss, self.sum_weight = s, sw
        else:
            self.sum_loss, self.sum_weight = self.sum_loss + s, self.sum_weight + sw
        return self

    def compute(self) -> float:
        """The mean loss of everything seen so far."""
        self._check_updated()
        return float(self.sum_loss[0] / self.sum_weight[0])


class StreamingNegativeLogLikelihood(StreamingBrierScore):
    """Negative log-likelihood accumulated over batches; same definition and clipping as
    :func:`calibkit.metrics.negative_log_likelihood`."""

    _per_sample = staticmethod(nll_per_sample)
