"""Calibration metrics (sklearn convention ``f(y_true, y_prob, *, ...)``).

Binning (edges and assignment) lives in :mod:`calibkit.metrics.binning`; every binned
metric here and the reliability display use it.
"""

from calibkit.metrics.calibration import (
    ReliabilityCurve,
    calibration_error_ci,
    expected_calibration_error,
    reliability_curve,
)
from calibkit.metrics.scores import brier_score, negative_log_likelihood
from calibkit.metrics.streaming import (
    StreamingBrierScore,
    StreamingCalibrationError,
    StreamingNegativeLogLikelihood,
)

__all__ = [
    "ReliabilityCurve",
    "StreamingBrierScore",
    "StreamingCalibrationError",
    "StreamingNegativeLogLikelihood",
    "brier_score",
    "calibration_error_ci",
    "expected_calibration_error",
    "negative_log_likelihood",
    "reliability_curve",
]
