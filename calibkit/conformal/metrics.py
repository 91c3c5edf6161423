"""Metrics of conformal prediction sets: coverage and size.

Every function takes ``y_true`` (n,) and ``y_sets``, a boolean mask of shape (n, K) as
returned by :meth:`SplitConformalClassifier.predict_set`. ``y_true`` holds column indices in
``[0, K)``, or any labels when ``labels=`` (the predictor's ``classes_``) is given.
"""

from __future__ import annotations

import numpy as np

from calibkit._validation import check_consistent_length, encode_labels, to_numpy

__all__ = [
    "empirical_coverage",
    "mean_set_size",
    "size_stratified_coverage",
    "class_conditional_coverage",
]


def empirical_coverage(y_true, y_sets, *, labels=None) -> float:
    """Fraction of samples whose true label is in its set: ``mean_i 1[y_i in C(x_i)]``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: column indices in ``[0, K)``, or labels of ``labels``.
    y_sets : array-like of shape (n_samples, n_classes)
        Boolean (or 0/1) membership mask of the prediction sets.
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_sets`` (the predictor's ``classes_``).

    Returns
    -------
    float
        The coverage, in [0, 1].
    """
    return float(np.mean(_covered(y_true, y_sets, labels)[0]))


def mean_set_size(y_sets) -> float:
    """Mean number of labels per set (empty sets count 0).

    Parameters
    ----------
    y_sets : array-like of shape (n_samples, n_classes)
        Boolean (or 0/1) membership mask of the prediction sets.

    Returns
    -------
    float
        ``mean_i |C(x_i)|``.
    """
    return float(np.mean(_check_sets(y_sets).sum(axis=1)))


def size_stratified_coverage(y_true, y_sets, *, labels=None):
    """Coverage among the samples whose set has each size (Angelopoulos et al., 2021).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: column indices in ``[0, K)``, or labels of ``labels``.
    y_sets : array-like of shape (n_samples, n_classes)
        Boolean (or 0/1) membership mask of the prediction sets.
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_sets`` (the predictor's ``classes_``).

    Returns
    -------
    sizes : ndarray of shape (m,)
        The set sizes that occur, ascending (0 for empty sets).
    coverage : ndarray of shape (m,)
        Empirical coverage among samples with that set size.
    counts : ndarray of shape (m,)
        Number of samples with that set size.
    """
    hit, sets, _ = _covered(y_true, y_sets, labels)
    size = sets.sum(axis=1)
    sizes, inv, counts = np.unique(size, return_inverse=True, return_counts=True)
    coverage = np.bincount(inv, weights=hit, minlength=len(sizes)) / counts
    return sizes, coverage, counts


def class_conditional_coverage(y_true, y_sets, *, labels=None) -> np.ndarray:
    """Coverage among the samples of each true class, shape (K,); NaN for absent classes.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: column indices in ``[0, K)``, or labels of ``labels``.
    y_sets : array-like of shape (n_samples, n_classes)
        Boolean (or 0/1) membership mask of the prediction sets.
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_sets`` (the predictor's ``classes_``).

    Returns
    -------
    ndarray of shape (n_classes,)
        ``mean_{i : y_i = k} 1[y_i in C(x_i)]`` for each class ``k`` (column order), NaN for
        a class with no sample.
    """
    hit, sets, y = _covered(y_true, y_sets, labels)
    K = sets.shape[1]
    counts = np.bincount(y, minlength=K).astype(np.float64)
    covered = np.bincount(y, weights=hit, minlength=K)
    out = np.full(K, np.nan)
    np.divide(covered, counts, out=out, where=counts > 0)
    return out


def _check_sets(y_sets) -> np.ndarray:
    sets = to_numpy(y_sets, name="y_sets")
    if sets.ndim != 2:
        raise ValueError(f"y_sets must be a 2-D (n, K) mask; got shape {sets.shape}.")
    if sets.shape[0] == 0:
        raise ValueError("y_sets is empty; at least one sample is needed.")
    if sets.dtype != bool:
        if not np.all((sets == 0) | (sets == 1)):
            raise ValueError("y_sets must be a boolean (or 0/1) mask.")
        sets = sets.astype(bool)
    return sets


def _covered(y_true, y_sets, labels):
    sets = _check_sets(y_sets)
    K = sets.shape[1]
    y = encode_labels(y_true, K, labels=labels, name="y_true").y
    check_consistent_length(("y_true", y), ("y_sets", sets))
    return sets[np.arange(len(y)), y].astype(np.float64), sets, y
