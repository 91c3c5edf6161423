"""Proper scoring rules: Brier score and negative log-likelihood (log loss).

Both match scikit-learn's ``brier_score_loss`` and ``log_loss`` and share their
per-sample losses with the streaming metrics (:mod:`calibkit.metrics.streaming`).
"""

from __future__ import annotations

import numpy as np

from calibkit._validation import (
    PROB_EPS,
    check_consistent_length,
    check_probabilities,
    check_sample_weight,
    encode_labels,
)


def brier_score(y_true, y_prob, *, sample_weight=None, labels=None) -> float:
    """Mean squared error of the predicted probabilities (lower is better).

    Binary (1-D ``y_prob`` = P(positive), or 2 columns): ``mean_i (p_i1 - 1[y_i = pos])^2``,
    in [0, 1]. Multiclass (K > 2 columns): ``mean_i sum_k (p_ik - 1[y_i = k])^2``, in
    [0, 2]. This is ``sklearn.metrics.brier_score_loss`` with its default
    ``scale_by_half="auto"`` (halved, i.e. the one-column form, for two classes only).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities (rows summing to 1).
    sample_weight : array-like of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column.

    Returns
    -------
    float
    """
    p, y, w = _validate(y_true, y_prob, sample_weight, labels)
    return float(np.average(brier_per_sample(y, p), weights=w))


def negative_log_likelihood(y_true, y_prob, *, sample_weight=None, labels=None) -> float:
    """Mean negative log-likelihood ``-mean_i log p_{i, y_i}`` (log loss, lower is better).

    Probabilities are clipped to ``[eps, 1 - eps]`` with ``eps`` the float64 machine
    epsilon, as ``sklearn.metrics.log_loss`` does (no renormalisation after clipping).
    1-D ``y_prob`` is P(positive).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
    sample_weight : array-like of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None

    Returns
    -------
    float
    """
    p, y, w = _validate(y_true, y_prob, sample_weight, labels)
    return float(np.average(nll_per_sample(y, p), weights=w))


def brier_per_sample(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-sample Brier loss for column indices ``y`` (see :func:`brier_score`).

    Parameters
    ----------
    y : ndarray of shape (n,)
        Class indices (0/1 for 1-D or two-column ``p``).
    p : ndarray of shape (n,) or (n, K)
        Probabilities (1-D: P(positive)).

    Returns
    -------
    ndarray of shape (n,)
        ``(p_i1 - 1[y_i = 1])^2`` for binary ``p``, else ``sum_k (p_ik - 1[y_i = k])^2``.
    """
    if p.ndim == 1 or p.shape[1] == 2:
        p1 = p if p.ndim == 1 else p[:, 1]
        return (p1 - (y == 1)) ** 2
    sq = np.einsum("ij,ij->i", p, p)
    return sq - 2.0 * p[np.arange(len(y)), y] + 1.0


def nll_per_sample(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-sample negative log-likelihood for column indices ``y``.

    Parameters
    ----------
    y : ndarray of shape (n,)
        Class indices (0/1 for 1-D ``p``).
    p : ndarray of shape (n,) or (n, K)
        Probabilities (1-D: P(positive)).

    Returns
    -------
    ndarray of shape (n,)
        ``-log clip(p_{i, y_i}, PROB_EPS, 1 - PROB_EPS)``.
    """
    if p.ndim == 1:
        py = np.where(y == 1, p, 1.0 - p)
    else:
        py = p[np.arange(len(y)), y]
    return -np.log(np.clip(py, PROB_EPS, 1.0 - PROB_EPS))


def _validate(y_true, y_prob, sample_weight, labels):
    p = check_probabilities(y_prob)
    n_classes = 2 if p.ndim == 1 else p.shape[1]
    y = encode_labels(y_true, n_classes, labels=labels, name="y_true").y
    n = check_consistent_length(("y_true", y), ("y_prob", p))
    return p, y, check_sample_weight(sample_weight, n)
