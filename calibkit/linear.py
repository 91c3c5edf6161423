"""Linear maps of one probability: the identity and a clipped least-squares line.

* :class:`IdentityCalibration`: the scores' own probabilities, unchanged (the "uncalibrated"
  baseline; a detection calibrator with ``method="identity"`` still learns thresholds).
* :class:`LinearCalibration`: ``clip(w p + c, 0, 1)`` with ``w >= 0``, fitted by least squares
  (the ``linear_regression`` calibrator of the detection calibration toolbox).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from calibkit._validation import INPUT_KINDS, Interval, Options
from calibkit.base import BinaryCalibrator, Calibrator

__all__ = ["IdentityCalibration", "LinearCalibration"]


class IdentityCalibration(Calibrator):
    """The uncalibrated probabilities: ``softmax`` of logits, probabilities as given.

    Fitting only records ``classes_``, ``n_features_in_`` and ``input_kind_``, so the identity
    goes wherever a calibrator goes (pipelines, benchmarks, persistence) as the baseline.

    Parameters
    ----------
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are (see :func:`calibkit._validation.check_scores`).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, the columns of :meth:`predict_proba`.
    """

    _supports_soft_targets = True

    def __init__(self, *, input="auto"):
        self.input = input

    def _fit(self, scores, targets, sample_weight):
        pass

    def _predict_proba(self, scores):
        if scores.n_columns <= 2:
            q = scores.positive().probs()
            return np.column_stack([1.0 - q, q])
        return scores.probs()


class LinearCalibration(BinaryCalibrator):
    """Clipped linear map of the probability: ``q = clip(w p + c, 0, 1)`` with ``w >= 0``.

    Fitted by least squares with a non-negative slope (scikit-learn's
    ``LinearRegression(positive=True)``; the intercept is free), as the detection
    calibration toolbox's ``linear_regression`` calibrator. Targets may be soft (e.g. the
    IoU of the matched box). Multiclass scores are calibrated one-vs-rest.

    Parameters
    ----------
    input : {"auto", "logits", "probs", "log_probs"}, default="probs"
        What the scores are; the map acts on probabilities.

    Attributes
    ----------
    slope_ : float
        ``w >= 0``.
    intercept_ : float
        ``c``.
    estimators_ : list of LinearCalibration
        Multiclass only: one binary calibrator per class (one-vs-rest).
    """

    _parameter_constraints: ClassVar[dict] = {"input": [Options(*INPUT_KINDS)]}
    _fitted_constraints: ClassVar[dict] = {
        "slope_": [Interval("real", 0, None)],
        "intercept_": [Interval("real")],
    }

    def __init__(self, *, input="probs"):
        self.input = input

    def _fit_binary(self, s, y, w):
        from sklearn.linear_model import LinearRegression

        p = s.probs()
        reg = LinearRegression(positive=True).fit(p[:, None], y, sample_weight=w)
        self.slope_ = float(reg.coef_[0])
        self.intercept_ = float(reg.intercept_)

    def _predict_binary(self, s):
        return np.clip(self.slope_ * s.probs() + self.intercept_, 0.0, 1.0)
