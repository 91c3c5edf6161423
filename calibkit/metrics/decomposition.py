"""Calibration and refinement parts of a proper score, by cross-fitted post-hoc calibration.

The calibration part of a proper score is how much recalibrating the predictions would
improve it; the refinement part is the score that remains. Current benchmark papers report
this "post-hoc improvement" instead of a binned ECE (Berta, Holzmüller, Jordan & Bach,
"Rethinking early stopping: refine, then calibrate", 2025; see also Bröcker, 2009, for the
decomposition of proper scores).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.base import clone

from calibkit._validation import (
    RANDOM_STATE,
    Interval,
    Options,
    check_consistent_length,
    check_param,
    check_probabilities,
    check_sample_weight,
    encode_labels,
)
from calibkit.metrics.scores import brier_per_sample, nll_per_sample

__all__ = ["ScoreDecomposition", "proper_score_decomposition"]

SCORES = ("log_loss", "brier")


class ScoreDecomposition(NamedTuple):
    """``score = calibration + refinement``.

    Attributes
    ----------
    score : float
        ``S(p)``: the mean score of the given probabilities.
    calibration : float
        ``S(p) - S(q)``: what recalibration removes (see
        :func:`proper_score_decomposition`).
    refinement : float
        ``S(q)``: the score of the out-of-fold recalibrated probabilities.
    """

    score: float
    calibration: float
    refinement: float


def proper_score_decomposition(y_true, y_prob, *, score="log_loss", calibrator="temperature",
                               n_splits=5, sample_weight=None, labels=None, random_state=0):
    """Split a proper score into a calibration part and a refinement part by cross-fitting.

    Cross-fitting: the samples are split into ``n_splits`` folds, stratified by label (within
    each label the samples are shuffled by ``numpy.random.default_rng(random_state)`` and dealt
    to the folds in turn). For each fold, a clone of ``calibrator`` is fitted (with
    ``input="probs"``) on the other folds and recalibrates the fold's predictions, so every
    sample is recalibrated by a map that did not see it. With ``q`` these out-of-fold
    recalibrated probabilities and ``S`` the mean (weighted) score:

    * ``refinement = S(q)``: the score left after the best map the calibrator can learn;
    * ``calibration = S(p) - S(q)``: the post-hoc improvement, positive when recalibrating
      helps (it can be slightly negative for a calibrated ``p``: the calibrator's estimation
      error costs score);
    * ``score = S(p) = calibration + refinement``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`~calibkit.metrics.brier_score`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities (1-D: P(positive)).
    score : {"log_loss", "brier"}, default="log_loss"
        :func:`~calibkit.metrics.negative_log_likelihood` or
        :func:`~calibkit.metrics.brier_score`.
    calibrator : str or Calibrator, default="temperature"
        A registry name or an unfitted calibkit calibrator; temperature scaling is the
        recalibration of the papers above (one parameter: the estimate of the calibration
        part has little variance, but only miscalibration that a temperature can fix is
        counted).
    n_splits : int, default=5
        Folds (at least 2; each label needs at least ``n_splits`` samples for every fold to
        see it).
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the scores and of the calibrator fits.
    labels : array-like of shape (n_classes,), default=None
    random_state : int, Generator or None, default=0
        Seeds the folds.

    Returns
    -------
    ScoreDecomposition
        ``(score, calibration, refinement)``.
    """
    from calibkit.registry import make_calibrator

    owner = "proper_score_decomposition"
    check_param(score, "score", [Options(*SCORES)], owner=owner)
    check_param(n_splits, "n_splits", [Interval("integer", 2, None)], owner=owner)
    check_param(random_state, "random_state", [RANDOM_STATE], owner=owner)
    p = check_probabilities(y_prob)
    k = 2 if p.ndim == 1 else p.shape[1]
    y = encode_labels(y_true, k, labels=labels, name="y_true").y
    n = check_consistent_length(("y_true", y), ("y_prob", p))
    w = check_sample_weight(sample_weight, n)
    base = make_calibrator(calibrator, input="probs")
    folds = _stratified_folds(y, n_splits, random_state)
    q = np.empty((n, k))
    for f in range(n_splits):
        test = folds == f
        train = ~test
        if not np.any(test):
            continue
        est = clone(base).fit(p[train], y[train],
                              sample_weight=None if w is None else w[train])
        q[test] = np.asarray(est.predict_proba(p[test]))
    per_sample = nll_per_sample if score == "log_loss" else brier_per_sample
    p2 = np.column_stack([1.0 - p, p]) if p.ndim == 1 else p
    before = float(np.average(per_sample(y, p2), weights=w))
    after = float(np.average(per_sample(y, q), weights=w))
    return ScoreDecomposition(before, before - after, after)


def _stratified_folds(y: np.ndarray, n_splits: int, random_state) -> np.ndarray:
    """Fold of each sample: within each label, a random permutation dealt round-robin."""
    rng = np.random.default_rng(random_state)
    folds = np.empty(len(y), dtype=np.intp)
    offset = 0
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(len(idx))]
        folds[idx] = (np.arange(len(idx)) + offset) % n_splits
        offset += len(idx)
    return folds
