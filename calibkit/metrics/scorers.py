"""scikit-learn scorers for the calibration metrics.

Every scorer is ``make_scorer(metric, response_method="predict_proba",
greater_is_better=False)``, so it returns the negated metric (higher is better), as
sklearn's own ``neg_log_loss``. Use the objects directly or look them up by name::

    GridSearchCV(clf, grid, scoring=get_scorer("neg_expected_calibration_error"))
    GridSearchCV(clf, grid, scoring=SCORERS)  # all of them, refit="neg_log_likelihood"

==================================  ==========================================
name                                metric
==================================  ==========================================
``neg_expected_calibration_error``  top-label L1 ECE, 15 equal-width bins
``neg_classwise_calibration_error`` class-wise L1 ECE, 15 equal-width bins
``neg_brier_score``                 :func:`calibkit.metrics.brier_score`
``neg_log_likelihood``              :func:`calibkit.metrics.negative_log_likelihood`
==================================  ==========================================

For a binary classifier sklearn passes the positive-class column only (1-D), which the
metrics read as P(positive). Labels are matched to columns as in the metrics, so fold
targets should be integer class indices, or contain every class.
"""

from __future__ import annotations

from functools import partial

from sklearn.metrics import make_scorer

from calibkit.metrics.calibration import expected_calibration_error
from calibkit.metrics.scores import brier_score, negative_log_likelihood


def _scorer(metric, **kwargs):
    return make_scorer(
        partial(metric, **kwargs) if kwargs else metric,
        response_method="predict_proba",
        greater_is_better=False,
    )


neg_expected_calibration_error = _scorer(expected_calibration_error)
neg_classwise_calibration_error = _scorer(expected_calibration_error, mode="classwise")
neg_brier_score = _scorer(brier_score)
neg_log_likelihood = _scorer(negative_log_likelihood)

SCORERS = {
    "neg_expected_calibration_error": neg_expected_calibration_error,
    "neg_classwise_calibration_error": neg_classwise_calibration_error,
    "neg_brier_score": neg_brier_score,
    "neg_log_likelihood": neg_log_likelihood,
}


def get_scorer(name: str):
    """The scorer called ``name`` (see the module table).

    Parameters
    ----------
    name : str
        A key of :data:`SCORERS`.

    Returns
    -------
    callable
        The scorer, ``scorer(estimator, X, y)``: the negated metric of
        ``estimator.predict_proba(X)`` against ``y``.
    """
    try:
        return SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; choose one of {sorted(SCORERS)}.") from None


def make_calibration_scorer(**ece_kwargs):
    """A scorer for :func:`expected_calibration_error` with any of its keyword arguments
    (``n_bins``, ``strategy``, ``norm``, ``mode``, ...).

    Parameters
    ----------
    **ece_kwargs : dict
        Keyword arguments of :func:`calibkit.metrics.expected_calibration_error`, fixed for
        every call of the scorer.

    Returns
    -------
    callable
        The scorer, ``scorer(estimator, X, y)``: minus the calibration error of
        ``estimator.predict_proba(X)`` against ``y``.
    """
    return _scorer(expected_calibration_error, **ece_kwargs)
