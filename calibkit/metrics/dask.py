"""Calibration metrics of Dask arrays: per-chunk state, merged, then one formula.

Each row chunk of ``y_prob`` is reduced to the fixed-size state of a
:mod:`calibkit.metrics.streaming` metric (per-bin count, sum of confidences and sum of
outcomes, or two scalars); the states are merged pairwise in a tree and the metric is
computed once from the merged state. Nothing larger than that state leaves a worker, and the
result equals the in-memory metric on the concatenated data (up to floating-point summation
order).

Only equal-width bins are offered (``strategy="uniform"``): equal-mass edges are quantiles of
the whole data set and cannot be built from per-chunk sums.

Dask is imported inside the functions; ``import calibkit.metrics`` never imports it.
"""

from __future__ import annotations

from calibkit._validation import check_labels
from calibkit.metrics.streaming import (
    StreamingBrierScore,
    StreamingCalibrationError,
    StreamingNegativeLogLikelihood,
)

__all__ = ["expected_calibration_error", "brier_score", "negative_log_likelihood"]


def expected_calibration_error(
    y_true,
    y_prob,
    *,
    n_bins=15,
    strategy="uniform",
    norm="l1",
    mode="top_label",
    sample_weight=None,
    labels=None,
    compute=True,
):
    """:func:`calibkit.metrics.expected_calibration_error` of (possibly) Dask arrays.

    Parameters
    ----------
    y_true : dask or numpy array of shape (n_samples,)
        Column indices in ``[0, K)``, or labels listed in ``labels``.
    y_prob : dask or numpy array of shape (n_samples,) or (n_samples, n_classes)
        Probabilities, chunked along rows (column chunks are joined).
    n_bins : int, default=15
        Equal-width bins, edges ``linspace(0, 1, n_bins + 1)``, the last bin closed.
    norm : {"l1", "l2", "max"}, default="l1"
        As in :func:`calibkit.metrics.expected_calibration_error` (no debiasing).
    mode : {"top_label", "classwise", "binary"}, default="top_label"
        As in :func:`calibkit.metrics.expected_calibration_error`.
    strategy : {"uniform"}, default="uniform"
        ``"quantile"`` raises ``ValueError`` (needs a global sort).
    sample_weight : dask or numpy array of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob`` when ``y_true`` is not column indices.
    compute : bool, default=True
        Return a float (``True``) or a ``dask.delayed`` object to compute later.

    Returns
    -------
    float or dask.delayed.Delayed
    """
    if strategy != "uniform":
        raise ValueError(
            f"strategy={strategy!r} is not available for Dask arrays: equal-mass bin edges are "
            "quantiles of the whole data set, which per-chunk sums cannot give. Use "
            "strategy='uniform', or compute the array and call "
            "calibkit.metrics.expected_calibration_error."
        )
    make = _factory(StreamingCalibrationError, n_bins=n_bins, norm=norm, mode=mode)
    return _reduce(make, y_true, y_prob, sample_weight, labels, compute)


def brier_score(y_true, y_prob, *, sample_weight=None, labels=None, compute=True):
    """:func:`calibkit.metrics.brier_score` of Dask arrays (same arguments as
    :func:`expected_calibration_error`).

    Each chunk is reduced to the state of
    :class:`~calibkit.metrics.StreamingBrierScore` (a weighted loss sum and a weight sum).

    Parameters
    ----------
    y_true : dask or numpy array of shape (n_samples,)
        Column indices in ``[0, K)``, or labels listed in ``labels``.
    y_prob : dask or numpy array of shape (n_samples,) or (n_samples, n_classes)
        Probabilities, chunked along rows (column chunks are joined).
    sample_weight : dask or numpy array of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob`` when ``y_true`` is not column indices.
    compute : bool, default=True
        Return a float (``True``) or a ``dask.delayed`` object to compute later.

    Returns
    -------
    float or dask.delayed.Delayed
    """
    return _reduce(_factory(StreamingBrierScore), y_true, y_prob, sample_weight, labels, compute)


def negative_log_likelihood(y_true, y_prob, *, sample_weight=None, labels=None, compute=True):
    """:func:`calibkit.metrics.negative_log_likelihood` of Dask arrays (same arguments as
    :func:`expected_calibration_error`).

    Each chunk is reduced to the state of
    :class:`~calibkit.metrics.StreamingNegativeLogLikelihood` (a weighted loss sum and a
    weight sum).

    Parameters
    ----------
    y_true : dask or numpy array of shape (n_samples,)
        Column indices in ``[0, K)``, or labels listed in ``labels``.
    y_prob : dask or numpy array of shape (n_samples,) or (n_samples, n_classes)
        Probabilities, chunked along rows (column chunks are joined).
    sample_weight : dask or numpy array of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob`` when ``y_true`` is not column indices.
    compute : bool, default=True
        Return a float (``True``) or a ``dask.delayed`` object to compute later.

    Returns
    -------
    float or dask.delayed.Delayed
    """
    make = _factory(StreamingNegativeLogLikelihood)
    return _reduce(make, y_true, y_prob, sample_weight, labels, compute)


# --------------------------------------------------------------------------------------


def _factory(cls, **params):
    cls(**params)  # fail fast on bad parameters, before any task is built

    def make(n_classes, labels):
        return cls(n_classes=n_classes, labels=labels, **params)

    return make


def _reduce(make, y_true, y_prob, sample_weight, labels, compute):
    import dask
    import dask.array as da

    p = da.asarray(y_prob)
    if p.ndim not in (1, 2):
        raise ValueError(f"y_prob must be 1-D or 2-D; got shape {p.shape}.")
    if p.ndim == 2:
        p = p.rechunk({1: -1})
    k = 2 if p.ndim == 1 else int(p.shape[1])
    rows = p.chunks[0]
    y = _rows_like(da.asarray(y_true), rows, "y_true", p.shape[0])
    w = None if sample_weight is None else _rows_like(
        da.asarray(sample_weight), rows, "sample_weight", p.shape[0]
    )
    classes = None if labels is None else check_labels(labels, name="labels")
    p_blocks = p.to_delayed().ravel()
    y_blocks = y.to_delayed().ravel()
    w_blocks = [None] * len(p_blocks) if w is None else list(w.to_delayed().ravel())
    states = [
        dask.delayed(_chunk_state)(make, k, classes, yb, pb, wb)
        for yb, pb, wb in zip(y_blocks, p_blocks, w_blocks, strict=True)
    ]
    while len(states) > 1:  # pairwise tree: depth log2(n_chunks)
        pairs = [states[i : i + 2] for i in range(0, len(states), 2)]
        states = [dask.delayed(_merge)(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
    result = dask.delayed(_finish)(states[0])
    return result.compute() if compute else result


def _rows_like(arr, rows, name, n):
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but y_prob has {n} rows.")
    return arr.rechunk((rows,))


def _chunk_state(make, n_classes, classes, y, p, w):
    metric = make(n_classes, classes)
    if len(p) == 0:
        return metric
    return metric.update(y, p, sample_weight=w)


def _merge(a, b):
    return a.merge(b)


def _finish(metric):
    return metric.compute()
