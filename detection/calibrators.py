"""Detection-specific calibrators built on calibkit's :class:`~calibkit.base.BinaryCalibrator`."""

from __future__ import annotations

import numpy as np

from calibkit.base import BinaryCalibrator

__all__ = ["LinearCalibration"]


class LinearCalibration(BinaryCalibrator):
    """Clipped linear map of the probability: ``q = clip(w p + c, 0, 1)`` with ``w >= 0``.

    Fitted by least squares with a non-negative slope (scikit-learn's
    ``LinearRegression(positive=True)``; the intercept is free), as the detection
    calibration toolbox's ``linear_regression`` calibrator. Targets may be soft (e.g. the
    IoU of the matched box).

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
    """

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
