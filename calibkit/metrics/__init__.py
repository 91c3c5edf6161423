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
from calibkit.metrics.calibration_tests import (
    CalibrationTestResult,
    calibration_ks_test,
    calibration_kuiper_test,
    hosmer_lemeshow_test,
    spiegelhalter_test,
)
from calibkit.metrics.decomposition import ScoreDecomposition, proper_score_decomposition
from calibkit.metrics.multilabel import (
    multilabel_brier_score,
    multilabel_calibration_error,
    multilabel_log_loss,
)
from calibkit.metrics.scores import brier_score, negative_log_likelihood
from calibkit.metrics.smooth import (
    SmoothReliabilityCurve,
    smooth_calibration_error,
    smooth_reliability_curve,
)
from calibkit.metrics.streaming import (
    StreamingBrierScore,
    StreamingCalibrationError,
    StreamingNegativeLogLikelihood,
)

__all__ = [
    "CalibrationTestResult",
    "ReliabilityCurve",
    "ScoreDecomposition",
    "SmoothReliabilityCurve",
    "StreamingBrierScore",
    "StreamingCalibrationError",
    "StreamingNegativeLogLikelihood",
    "brier_score",
    "calibration_error_ci",
    "calibration_ks_test",
    "calibration_kuiper_test",
    "expected_calibration_error",
    "hosmer_lemeshow_test",
    "multilabel_brier_score",
    "multilabel_calibration_error",
    "multilabel_log_loss",
    "negative_log_likelihood",
    "proper_score_decomposition",
    "reliability_curve",
    "smooth_calibration_error",
    "smooth_reliability_curve",
    "spiegelhalter_test",
]
