"""Scores of wrapped scikit-learn classifiers, shared by the meta-estimators.

:class:`calibkit.CalibratedClassifier` and :class:`calibkit.conformal.ConformalClassifier`
both turn a classifier's ``decision_function`` or ``predict_proba`` into calibkit scores
(:func:`response_scores`, the one place where that conversion happens) and check the
classifier and the targets the same way.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

__all__ = [
    "response_scores",
    "response_method",
    "conformal_response_method",
    "check_y",
    "check_estimator_classes",
    "check_n_features",
    "is_frozen",
    "quiet_saturation",
]


def response_scores(raw, response_method: str) -> tuple[np.ndarray, str]:
    """Turn ``decision_function`` or ``predict_proba`` output into calibrator scores.

    Binary decision values ``x`` of shape (n,) or (n, 1) become logits ``(-x/2, x/2)``
    (log-odds ``x``). Multiclass decision values ``d`` become ``d - mean(d, axis=1)``, which
    leaves the softmax unchanged and keeps rows from ever looking like probabilities.
    ``predict_proba`` output is returned as probabilities.

    Parameters
    ----------
    raw : array-like of shape (n_samples,), (n_samples, 1) or (n_samples, n_classes)
        The output of the estimator's ``response_method``.
    response_method : {"decision_function", "predict_proba"}
        Which method produced ``raw``.

    Returns
    -------
    scores : ndarray of shape (n_samples, n_classes)
        float64 scores; two columns for binary decision values.
    kind : {"logits", "probs"}
        The calibrator ``input=`` value for ``scores``.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if response_method == "predict_proba":
        return raw, "probs"
    if raw.ndim == 1 or raw.shape[1] == 1:
        x = raw.reshape(-1)
        return np.column_stack([-0.5 * x, 0.5 * x]), "logits"
    return raw - raw.mean(axis=1, keepdims=True), "logits"


def response_method(estimator) -> str:
    for name in ("decision_function", "predict_proba"):
        if hasattr(estimator, name):
            return name
    raise TypeError(
        f"{type(estimator).__name__} has neither decision_function nor predict_proba; "
        "CalibratedClassifier needs one of them."
    )


@contextmanager
def quiet_saturation():
    """At predict time, saturated probabilities were already reported by ``fit``."""
    from calibkit._validation import SaturatedProbabilityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturatedProbabilityWarning)
        yield


def check_y(X, y) -> np.ndarray:
    """1-D classification targets (a column vector warns, as in sklearn), non-empty."""
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    if len(y) == 0:
        raise ValueError("y is empty (0 samples); at least two samples of two classes are "
                         "needed.")
    return y


def conformal_response_method(estimator) -> str:
    # conformal scores are probabilities: use them when the estimator has them
    if hasattr(estimator, "predict_proba"):
        return "predict_proba"
    return response_method(estimator)


def check_estimator_classes(estimator, classes) -> None:
    est_classes = getattr(estimator, "classes_", None)
    if est_classes is None:
        return
    if len(est_classes) != len(classes) or np.any(np.asarray(est_classes) != classes):
        raise ValueError(
            f"the estimator was fitted on classes {list(est_classes)} but y has classes "
            f"{list(classes)}; every training fold must contain every class (use a "
            "stratified splitter) and a prefit estimator must know all classes of y."
        )


def is_frozen(estimator) -> bool:
    try:
        from sklearn.frozen import FrozenEstimator
    except ImportError:  # pragma: no cover - sklearn < 1.6
        return False
    return isinstance(estimator, FrozenEstimator)


def check_n_features(estimator, X) -> None:
    """Raise when ``X`` has another number of columns than ``estimator.n_features_in_``."""
    n = getattr(estimator, "n_features_in_", None)
    shape = getattr(X, "shape", None)
    if n is not None and shape is not None and len(shape) == 2 and shape[1] != n:
        raise ValueError(
            f"X has {shape[1]} features, but {type(estimator).__name__} is expecting {n} "
            "features as input."
        )
