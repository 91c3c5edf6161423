"""Calibration of multilabel classifiers: independent sigmoid outputs of shape (n, L).

:class:`MultilabelCalibrator` fits one binary calibrator per label on the label's score
column against the label's indicator column. The metrics are in
:mod:`calibkit.metrics.multilabel`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from calibkit._validation import (
    INPUT_KINDS,
    InstanceOf,
    Interval,
    ListOf,
    Options,
    check_array,
    check_sample_weight,
    check_scores,
    like_input,
    to_numpy,
    validate_params,
)
from calibkit.base import Calibrator, Persistable

__all__ = ["MultilabelCalibrator"]


class MultilabelCalibrator(Persistable, BaseEstimator):
    """One binary calibrator per label of a multilabel classifier.

    Parameters
    ----------
    calibrator : str or Calibrator, default="platt"
        A registry name of a binary calibrator (``"platt"``, ``"isotonic"``, ``"beta"``,
        ``"temperature"``, ``"spline"``, ...) or an unfitted calibkit calibrator of one score
        (cloned for each label).
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are, for every label: per-label logits (sigmoid inputs) or
        probabilities. ``"auto"`` decides once from the whole matrix (any value outside
        [0, 1] means logits).

    Attributes
    ----------
    calibrators_ : list of Calibrator
        The fitted calibrator of each label.
    n_labels_ : int
    input_kind_ : str
        ``"logits"`` or ``"probs"``.

    Examples
    --------
    ``fit(scores, Y)`` with ``scores`` and the indicator ``Y`` of shape (n, L);
    ``predict_proba(scores)`` gives the calibrated (n, L) probabilities (rows need not sum
    to 1).
    """

    _parameter_constraints: ClassVar[dict] = {
        "calibrator": [InstanceOf(str, "a registry name"),
                       InstanceOf(Calibrator, "a calibkit calibrator of one score")],
        "input": [Options(*INPUT_KINDS)],
    }
    _fitted_constraints: ClassVar[dict] = {
        "calibrators_": [ListOf(InstanceOf(Calibrator, "a fitted calibkit calibrator"))],
        "n_labels_": [Interval("integer", 1, None)],
        "input_kind_": [Options("logits", "probs")],
    }

    def _check_fitted_state(self) -> None:
        if len(getattr(self, "calibrators_", [])) != getattr(self, "n_labels_", -1):
            raise ValueError("calibrators_ needs one fitted calibrator per label.")

    def __init__(self, *, calibrator="platt", input="auto"):
        self.calibrator = calibrator
        self.input = input

    def fit(self, scores, y, *, sample_weight=None):
        """Fit one calibrator per column of ``scores`` (n, L) on the column of the indicator
        ``y`` (n, L).

        Parameters
        ----------
        scores : array-like of shape (n_samples, n_labels)
            Per-label logits or probabilities, as declared by ``input``.
        y : array-like of shape (n_samples, n_labels)
            The 0/1 label indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights, shared by every label's fit.

        Returns
        -------
        self : MultilabelCalibrator
            The fitted calibrator.
        """
        from calibkit.base import reset_fitted_state
        from calibkit.metrics.multilabel import check_multilabel
        from calibkit.registry import CALIBRATORS, make_calibrator

        validate_params(self)
        reset_fitted_state(self)
        s = check_array(scores, name="scores", ndim=(2,))
        kind = self._kind(s)
        yy = check_array(to_numpy(y, name="y"), name="y", ndim=(2,))
        if yy.shape != s.shape:
            raise ValueError(f"y must be a multilabel indicator of the shape of scores "
                             f"{s.shape}; got shape {yy.shape}.")
        probe = np.clip(s, 0.0, 1.0) if kind == "probs" else np.zeros_like(s)
        check_multilabel(yy, probe)
        w = check_sample_weight(sample_weight, len(s))
        if isinstance(self.calibrator, str):
            spec = CALIBRATORS.get(self.calibrator)
            if spec is None or not spec.binary:
                raise ValueError(
                    f"calibrator={self.calibrator!r} is not a binary calibrator of the "
                    f"registry; choose one of {[n for n, v in CALIBRATORS.items() if v.binary]}."
                )
        base = make_calibrator(self.calibrator, input=kind)
        self.calibrators_ = [clone(base).fit(s[:, j], yy[:, j].astype(np.intp),
                                             sample_weight=w)
                             for j in range(s.shape[1])]
        self.n_labels_ = s.shape[1]
        self.input_kind_ = kind
        return self

    def predict_proba(self, scores):
        """Calibrated probability of each label, shape (n, L) (a tensor in gives a tensor
        on the same device).

        Parameters
        ----------
        scores : array-like of shape (n_samples, n_labels)
            Per-label scores of the kind seen in :meth:`fit`.

        Returns
        -------
        ndarray or torch tensor of shape (n_samples, n_labels)
            Column ``l`` is ``calibrators_[l]``'s probability of label ``l`` (rows need not
            sum to 1).
        """
        check_is_fitted(self, "calibrators_")
        s = check_array(scores, name="scores", ndim=(2,))
        if s.shape[1] != self.n_labels_:
            raise ValueError(f"scores have {s.shape[1]} columns but the calibrator was fitted "
                             f"on {self.n_labels_} labels.")
        out = np.column_stack([np.asarray(c.predict_proba(s[:, j]))[:, 1]
                               for j, c in enumerate(self.calibrators_)])
        return like_input(out, scores)

    def transform(self, scores):
        """Same as :meth:`predict_proba`.

        Parameters
        ----------
        scores : array-like of shape (n_samples, n_labels)
            Per-label scores of the kind seen in :meth:`fit`.

        Returns
        -------
        ndarray or torch tensor of shape (n_samples, n_labels)
            The calibrated probability of each label.
        """
        return self.predict_proba(scores)

    def _kind(self, s: np.ndarray) -> str:
        if self.input == "auto":
            return "probs" if (s.min() >= 0.0 and s.max() <= 1.0) else "logits"
        kind = "logits" if self.input == "log_probs" else self.input
        for j in range(s.shape[1]):  # each column as a 1-D score, with the usual checks
            check_scores(s[:, j], input=kind, name=f"scores[:, {j}]")
        return kind
