"""Streaming metrics with fixed-size, sum-reducible state.

Each metric keeps only sums (O(n_bins x K) for the calibration error, two numbers for
the Brier score and the NLL), so shards can be updated independently and combined with
:meth:`merge` (or by adding their :meth:`state_dict` arrays, e.g. an all-reduce with
``sum``); the result equals the one-shot metric on the concatenated data. The torch metrics
of :mod:`calibkit.torch` mirror these classes (same arguments, same state, same errors).

Only equal-width bins are offered: their edges are known before any data arrive, whereas
equal-mass edges are quantiles of the whole data set, which no fixed-size sum can give.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from calibkit._validation import (
    NONE,
    Interval,
    Options,
    check_consistent_length,
    check_labels,
    check_param,
    check_probabilities,
    check_sample_weight,
    encode_labels,
)
from calibkit.metrics.binning import MAX_BINS, uniform_bin_sums
from calibkit.metrics.calibration import (
    MODES,
    NORMS,
    _classwise_uniform_sums,
    _Problems,
    calibration_error_from_bin_sums,
    combine_classwise,
)
from calibkit.metrics.scores import brier_per_sample, nll_per_sample

__all__ = ["StreamingCalibrationError", "StreamingBrierScore", "StreamingNegativeLogLikelihood"]


class _StreamingMetric:
    """Shared update / merge / state handling; subclasses define the state and compute."""

    _state_names: tuple[str, ...] = ()
    _constraints: ClassVar[dict] = {
        "n_classes": [NONE, Interval("integer", 1, None)],
    }

    def __init__(self, *, labels=None, n_classes=None):
        self.labels = None if labels is None else check_labels(labels, name="labels")
        if self.labels is not None and len(np.unique(self.labels)) != len(self.labels):
            raise ValueError("labels must be distinct (the label of each column of y_prob).")
        self.n_classes = n_classes
        self._check_params()
        if self.labels is not None:
            if n_classes is not None and n_classes != len(self.labels):
                raise ValueError(
                    f"n_classes={n_classes} disagrees with the {len(self.labels)} labels given."
                )
            self.n_classes = len(self.labels)
        self.reset()

    def _check_params(self) -> None:
        owner = type(self).__name__
        for name, constraints in self._constraints.items():
            check_param(getattr(self, name), name, constraints, owner=owner)

    def reset(self):
        """Forget every update; returns ``self``."""
        self._n_classes_seen = self.n_classes
        for name in self._state_names:
            setattr(self, name, None)
        return self

    def _params(self) -> dict:
        labels = None if self.labels is None else self.labels.tolist()
        return {"labels": labels, "n_classes": self.n_classes}

    def state_dict(self) -> dict:
        """Parameters and the summed state: ``{"params": {...}, "n_classes_seen": int or None,
        "state": {name: ndarray or None}}`` (copies; ``None`` before any update)."""
        state = {name: getattr(self, name) for name in self._state_names}
        return {
            "params": self._params(),
            "n_classes_seen": self._n_classes_seen,
            "state": {k: None if v is None else np.array(v, copy=True) for k, v in state.items()},
        }

    @classmethod
    def from_state(cls, state: dict):
        """Rebuild a metric from :meth:`state_dict`, checking the state: its parameters go
        through the constructor's checks, its arrays must have the shapes those parameters
        imply, be finite, and hold non-negative counts and weights."""
        if not isinstance(state, dict) or not {"params", "state"} <= set(state):
            raise ValueError(f"{cls.__name__}.from_state needs a dict with 'params' and "
                             "'state' (the output of state_dict()).")
        params, arrays = state["params"], state["state"]
        if not isinstance(params, dict) or not isinstance(arrays, dict):
            raise ValueError("'params' and 'state' must be dicts.")
        obj = cls(**params)
        if set(arrays) != set(cls._state_names):
            raise ValueError(f"the state must hold exactly {list(cls._state_names)}; got "
                             f"{sorted(arrays)}.")
        if all(v is None for v in arrays.values()):
            return obj
        if any(v is None for v in arrays.values()):
            raise ValueError("the state arrays must all be set or all be None.")
        seen = state.get("n_classes_seen")
        check_param(seen, "n_classes_seen", [Interval("integer", 1, None)], owner=cls.__name__)
        values = {}
        for k, v in arrays.items():
            a = np.asarray(v)
            if a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)):
                raise ValueError(f"state array {k!r} must hold finite numbers.")
            values[k] = a.astype(np.float64)
        obj._check_state(values, int(seen))
        obj._n_classes_seen = int(seen)
        for k, v in values.items():
            setattr(obj, k, v.copy())
        return obj

    def merge(self, other):
        """Add the state of ``other`` (same type and parameters) into this metric; returns
        ``self``."""
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
        if self._n_classes_seen is not None and k != self._n_classes_seen:
            before = "earlier updates had" if self.n_classes is None else "the metric expects"
            raise ValueError(
                f"y_prob has {k} class column(s) but {before} {self._n_classes_seen}."
            )
        if self.labels is None:
            y = check_labels(y_true, name="y_true")
            if y.dtype.kind != "i":
                raise ValueError(
                    "y_true must hold integer column indices of y_prob (or give labels=, the "
                    f"label of each column, to stream labels of any type); got {y.dtype} "
                    "labels."
                )
            if y.min() < 0 or y.max() >= k:
                raise ValueError(f"y_true must hold column indices in [0, {k}); got values in "
                                 f"[{y.min()}, {y.max()}]. Give labels= for other labels.")
            y = y.astype(np.intp)
        else:
            y = encode_labels(y_true, k, labels=self.labels, name="y_true").y
        n = check_consistent_length(("y_true", y), ("y_prob", p))
        w = check_sample_weight(sample_weight, n)
        self._n_classes_seen = k
        return p, y, w

    def _check_updated(self):
        if getattr(self, self._state_names[0]) is None:
            raise ValueError(f"{type(self).__name__}.compute() called before any update().")

    def _check_state(self, values: dict, n_classes: int) -> None:
        raise NotImplementedError


class StreamingCalibrationError(_StreamingMetric):
    """Equal-width binned calibration error accumulated over batches.

    State: per bin (per class for ``mode="classwise"``) the weighted count, sum of
    confidences and sum of outcomes, shape (n_problems, n_bins). :meth:`compute` applies
    :func:`calibkit.metrics.calibration_error_from_bin_sums`, the formula of
    :func:`calibkit.metrics.expected_calibration_error` (same bins, modes and norms; no
    debiasing).

    Parameters
    ----------
    n_bins : int, default=15
        Equal-width bins on [0, 1] (edges ``linspace(0, 1, n_bins + 1)``, last bin closed).
    norm : {"l1", "l2", "max"}, default="l1"
    mode : {"top_label", "classwise", "binary"}, default="top_label"
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``; then ``y_true`` may hold labels of any type
        (strings included). Without it ``y_true`` holds column indices in ``[0, K)``.
    n_classes : int or None, default=None
        Number of columns; taken from ``labels`` or the first update when None.
    """

    _state_names = ("count", "sum_conf", "sum_acc")
    _constraints: ClassVar[dict] = {
        **_StreamingMetric._constraints,
        "n_bins": [Interval("integer", 1, MAX_BINS)],
        "norm": [Options(*NORMS)],
        "mode": [Options(*MODES)],
    }

    def __init__(self, *, n_bins=15, norm="l1", mode="top_label", labels=None, n_classes=None):
        self.n_bins = n_bins
        self.norm = norm
        self.mode = mode
        super().__init__(labels=labels, n_classes=n_classes)

    def _params(self):
        return {"n_bins": self.n_bins, "norm": self.norm, "mode": self.mode, **super()._params()}

    def update(self, y_true, y_prob, sample_weight=None):
        """Add a batch and return ``self``.

        Parameters
        ----------
        y_true : array-like of shape (n,)
            Column indices, or labels of ``labels``.
        y_prob : array-like of shape (n,) or (n, K)
            Probabilities (1-D is P(positive)); every batch has the same ``K``.
        sample_weight : array-like of shape (n,), default=None

        Returns
        -------
        self : StreamingCalibrationError
            With the batch's per-bin sums added to the state.
        """
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
        """The calibration error of everything seen so far.

        Returns
        -------
        float
            The error of the summed state (class-wise errors reduced by the norm).
        """
        self._check_updated()
        ces = calibration_error_from_bin_sums(self.count, self.sum_conf, self.sum_acc,
                                              norm=self.norm)
        return float(combine_classwise(ces, self.norm))

    def _check_state(self, values, n_classes):
        rows = n_classes if self.mode == "classwise" else 1
        for k, v in values.items():
            if v.shape != (rows, self.n_bins):
                raise ValueError(f"state array {k!r} must have shape ({rows}, {self.n_bins}) "
                                 f"for mode={self.mode!r}; got {v.shape}.")
        count = values["count"]
        if np.any(count < 0):
            raise ValueError("state array 'count' holds negative counts.")
        for k in ("sum_conf", "sum_acc"):
            if np.any(values[k] < 0) or np.any(values[k] > count * (1 + 1e-9) + 1e-12):
                raise ValueError(f"state array {k!r} must lie between 0 and the bin counts.")


class StreamingBrierScore(_StreamingMetric):
    """Brier score accumulated over batches (state: weighted loss sum and weight sum).

    Same definition as :func:`calibkit.metrics.brier_score`.

    Parameters
    ----------
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob`` (then ``y_true`` may hold any labels).
    n_classes : int or None, default=None
        Number of columns; taken from ``labels`` or the first update when None.
    """

    _state_names = ("sum_loss", "sum_weight")
    _per_sample = staticmethod(brier_per_sample)

    def update(self, y_true, y_prob, sample_weight=None):
        """Add a batch (arguments as :meth:`StreamingCalibrationError.update`); returns
        ``self``.

        Parameters
        ----------
        y_true : array-like of shape (n,)
            Column indices, or labels of ``labels``.
        y_prob : array-like of shape (n,) or (n, K)
            Probabilities (1-D is P(positive)); every batch has the same ``K``.
        sample_weight : array-like of shape (n,), default=None

        Returns
        -------
        self
            With the batch's weighted loss sum and weight sum added to the state.
        """
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
        """The mean loss of everything seen so far.

        Returns
        -------
        float
            ``sum_loss / sum_weight``.
        """
        self._check_updated()
        return float(self.sum_loss[0] / self.sum_weight[0])

    def _check_state(self, values, n_classes):
        for k, v in values.items():
            if v.shape != (1,):
                raise ValueError(f"state array {k!r} must have shape (1,); got {v.shape}.")
        if values["sum_loss"][0] < 0 or not values["sum_weight"][0] > 0:
            raise ValueError("the state needs a non-negative loss sum and a positive weight.")


class StreamingNegativeLogLikelihood(StreamingBrierScore):
    """Negative log-likelihood accumulated over batches; same definition and clipping as
    :func:`calibkit.metrics.negative_log_likelihood`.

    State: the weighted sum of the per-sample losses and the weight sum.

    Parameters
    ----------
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob`` (then ``y_true`` may hold any labels).
    n_classes : int or None, default=None
        Number of columns; taken from ``labels`` or the first update when None.
    """

    _per_sample = staticmethod(nll_per_sample)
