"""The one implementation of bin edges and bin assignment.

Every binned metric, the reliability curve, the streaming state and the histogram
calibrator use these functions.

Equal-width bins (``strategy="uniform"``)
    Edges are ``np.linspace(0, 1, n_bins + 1)``. Bin ``j`` is ``[e_j, e_{j+1})`` for
    ``j < n_bins - 1`` and the last bin is closed, ``[e_{n-1}, 1]``. A score exactly on an
    inner edge belongs to the bin on its right; 0 falls in the first bin and 1 in the last.
    Assignment compares against the edge values themselves (``searchsorted``), never
    ``floor(p * n_bins)``, which misplaces scores on edges for bin counts such as 7 or 49.

Equal-mass bins (``strategy="quantile"``)
    Scores are sorted; the sample at sorted position ``s`` (or cumulative weight ``W_s``
    before it, out of a total ``W``) starts bin ``floor(n_bins * W_s / W)``. Tied scores
    always share the bin of the first of them, and bins left empty by ties are dropped, so
    there are at most ``n_bins`` non-empty bins, each holding whole tie groups.
"""

from __future__ import annotations

import numpy as np

from calibkit._chunks import chunk_rows
from calibkit._validation import Interval, Options, check_param

STRATEGIES = ("uniform", "quantile")

#: the largest number of bins: per-bin state is a few float64 arrays of this length (per
#: class for class-wise errors), so larger counts could not be allocated
MAX_BINS = 1 << 24


def check_n_bins(n_bins, name: str = "n_bins") -> int:
    """``n_bins`` as an int in ``[1, MAX_BINS]``.

    Parameters
    ----------
    n_bins : int
        The number of bins: a Python or numpy integer (not a float, not a bool).
    name : str, default="n_bins"
        The argument's name in the error message.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``n_bins`` is not an integer; the message names ``name``.
    ValueError
        If it lies outside ``[1, MAX_BINS]``.
    """
    return int(check_param(n_bins, name, [Interval("integer", 1, MAX_BINS)]))


def check_strategy(strategy: str) -> str:
    """``strategy`` as one of :data:`STRATEGIES`.

    Parameters
    ----------
    strategy : {"uniform", "quantile"}
        The binning strategy.

    Returns
    -------
    str
        ``strategy`` unchanged; anything else raises ``ValueError`` or ``TypeError``.
    """
    return check_param(strategy, "strategy", [Options(*STRATEGIES)])


def uniform_edges(n_bins: int) -> np.ndarray:
    """Equal-width edges ``np.linspace(0, 1, n_bins + 1)``.

    Parameters
    ----------
    n_bins : int
        Number of bins, in ``[1, MAX_BINS]``.

    Returns
    -------
    ndarray of shape (n_bins + 1,)
    """
    return np.linspace(0.0, 1.0, check_n_bins(n_bins) + 1)


def assign_uniform(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index in ``[0, n_bins)`` of each score in [0, 1] for equal-width bins.

    Same result as ``np.searchsorted(edges[1:-1], p, side="right")``, computed faster:
    ``floor(p * n_bins)`` is off by at most one near an edge, so it is corrected by one
    comparison with the true lower and upper edge of the candidate bin.

    Parameters
    ----------
    p : ndarray of any shape
        Scores in [0, 1] (not checked).
    n_bins : int
        Number of equal-width bins.

    Returns
    -------
    ndarray of intp of the shape of ``p``
        Bin ``j`` holds ``[e_j, e_{j+1})``, the last bin ``[e_{n-1}, 1]``.
    """
    edges = uniform_edges(n_bins)
    lower = np.append(edges[:-1], np.inf)  # candidate n_bins (p == 1) always steps down
    upper = np.append(edges[1:-1], [np.inf, np.inf])
    idx = (p * n_bins).astype(np.intp)
    idx -= p < lower[idx]
    idx += p >= upper[idx]
    return idx


def assign_quantile(p: np.ndarray, n_bins: int, sample_weight=None) -> tuple[np.ndarray, int]:
    """Equal-mass bin index of each score, and the number of non-empty bins.

    Ties share a bin; bins are numbered 0..m-1 in increasing score order with m <= n_bins.

    Parameters
    ----------
    p : ndarray of shape (n,)
        Scores (any real values), ``n >= 1``.
    n_bins : int
        Largest number of bins.
    sample_weight : array-like of shape (n,), default=None
        Non-negative weights with a positive sum: the bins hold equal weight rather than
        equal counts.

    Returns
    -------
    idx : ndarray of intp of shape (n,)
        The bin of each score, in ``[0, m)``.
    m : int
        The number of non-empty bins.

    Notes
    -----
    The score at sorted position ``s``, with cumulative weight ``W_s`` before it out of a
    total ``W``, starts bin ``min(floor(n_bins * W_s / W), n_bins - 1)``; every tie group
    takes the bin of its first score, and bin numbers are then compacted to ``0..m-1``.
    """
    n_bins = check_n_bins(n_bins)
    order = np.argsort(p, kind="stable")
    ps = p[order]
    w = np.ones(len(p)) if sample_weight is None else np.asarray(sample_weight)[order]
    before = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    total = before[-1] + w[-1]
    start = np.minimum(np.floor(n_bins * before / total), n_bins - 1).astype(np.intp)
    # first element of each tie group decides the group's bin
    new_group = np.empty(len(ps), dtype=bool)
    new_group[0] = True
    np.not_equal(ps[1:], ps[:-1], out=new_group[1:])
    group_id = np.cumsum(new_group) - 1
    group_bin = start[new_group][group_id]
    # compact away bins that ties left empty
    used, compact = np.unique(group_bin, return_inverse=True)
    idx = np.empty(len(p), dtype=np.intp)
    idx[order] = compact
    return idx, len(used)


def assign_bins(
    p: np.ndarray, n_bins: int, strategy: str = "uniform", sample_weight=None
) -> tuple[np.ndarray, int]:
    """Bin index of each score and the number of bins, for either strategy.

    Parameters
    ----------
    p : ndarray of shape (n,)
        Scores; in [0, 1] for ``"uniform"``.
    n_bins : int
        Number of bins (the largest number for ``"quantile"``).
    strategy : {"uniform", "quantile"}, default="uniform"
        :func:`assign_uniform` or :func:`assign_quantile`.
    sample_weight : array-like of shape (n,), default=None
        Weights of the equal-mass bins (ignored by ``"uniform"``).

    Returns
    -------
    idx : ndarray of intp of shape (n,)
        The bin of each score.
    n_bins : int
        The number of bins: ``n_bins`` for ``"uniform"`` (some may be empty), the number of
        non-empty bins for ``"quantile"``.
    """
    if check_strategy(strategy) == "uniform":
        return assign_uniform(p, n_bins), check_n_bins(n_bins)
    return assign_quantile(p, n_bins, sample_weight)


def bin_sums(
    idx: np.ndarray, n_bins: int, conf: np.ndarray, acc: np.ndarray, sample_weight=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (weighted) count, sum of confidences and sum of outcomes.

    Boolean outcomes without weights share one integer ``bincount`` for count and sum.

    Parameters
    ----------
    idx : ndarray of intp of shape (n,)
        The bin of each sample, in ``[0, n_bins)``.
    n_bins : int
        Number of bins (the length of the outputs).
    conf : ndarray of shape (n,)
        Confidence of each sample.
    acc : ndarray of shape (n,)
        Outcome of each sample (bool, 0/1 or a target in [0, 1]).
    sample_weight : ndarray of shape (n,), default=None
        Weight of each sample; None counts every sample once.

    Returns
    -------
    count, sum_conf, sum_acc : ndarray of float64 of shape (n_bins,)
        ``sum w``, ``sum w conf`` and ``sum w acc`` over the samples of each bin.
    """
    w = sample_weight
    if w is None and acc.dtype == np.bool_:
        both = np.bincount(idx * 2 + acc, minlength=2 * n_bins).reshape(n_bins, 2)
        sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
        return both.sum(axis=1).astype(np.float64), sum_conf, both[:, 1].astype(np.float64)
    count = np.bincount(idx, weights=w, minlength=n_bins).astype(np.float64)
    sum_conf = np.bincount(idx, weights=conf if w is None else conf * w, minlength=n_bins)
    sum_acc = np.bincount(idx, weights=acc if w is None else acc * w, minlength=n_bins)
    return count, sum_conf, sum_acc


def quantile_upper_edges(p: np.ndarray, idx: np.ndarray, n_bins: int) -> np.ndarray:
    """Largest score of each of the ``n_bins`` bins in ``idx`` (from :func:`assign_quantile`).

    With ``u`` these per-bin upper boundaries, :func:`assign_upper_edges` puts every score
    back into the bin :func:`assign_quantile` gave it (bins hold whole tie groups in
    increasing order), and assigns new scores consistently.

    Parameters
    ----------
    p : ndarray of shape (n,)
        The scores that were binned.
    idx : ndarray of intp of shape (n,)
        Their bins, from :func:`assign_quantile`.
    n_bins : int
        The number of bins ``m`` returned with ``idx``.

    Returns
    -------
    ndarray of shape (n_bins,)
        The largest score of each bin (``-inf`` for a bin with no score).
    """
    upper = np.full(n_bins, -np.inf)
    np.maximum.at(upper, idx, p)
    return upper


def assign_upper_edges(p: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Bin of each score for bins ``(u_{j-1}, u_j]`` given increasing upper boundaries ``u``.

    The first bin also takes every score ``<= u_0``, the last every score ``> u_{m-2}``.

    Parameters
    ----------
    p : array-like of shape (n,)
        Scores to bin.
    upper : ndarray of shape (m,)
        Increasing upper boundaries, e.g. from :func:`quantile_upper_edges`.

    Returns
    -------
    ndarray of intp of shape (n,)
        The bin of each score, in ``[0, m)``.
    """
    return np.searchsorted(upper[:-1], p, side="left")


def quantile_edges(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile edges ``np.quantile(p, linspace(0, 1, n_bins + 1))`` with the outer edges set
    to 0 and 1: netcal's equal-mass edges (``equal_intervals=False``), used by netcal's D-ECE.

    Unlike :func:`assign_quantile`, the edges are values, so tied scores may straddle an edge
    value only by being on it; use :func:`assign_edges` to bin scores against them.

    Parameters
    ----------
    p : array-like of shape (n,)
        Scores in [0, 1].
    n_bins : int
        Number of bins.

    Returns
    -------
    ndarray of shape (n_bins + 1,)
        Non-decreasing edges, ``0`` first and ``1`` last; inner edges are the
        ``j / n_bins`` quantiles of ``p`` (numpy's default linear interpolation).
    """
    edges = np.quantile(np.asarray(p, np.float64), np.linspace(0, 1, check_n_bins(n_bins) + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def assign_edges(p: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each score for increasing ``edges`` (bins ``[e_j, e_{j+1})``, the last
    closed, scores outside clipped into the first or last bin).

    Parameters
    ----------
    p : array-like of shape (n,)
        Scores to bin.
    edges : ndarray of shape (n_bins + 1,)
        Non-decreasing edges, e.g. from :func:`quantile_edges`.

    Returns
    -------
    ndarray of intp of shape (n,)
        The bin of each score, in ``[0, n_bins)``.
    """
    n_bins = len(edges) - 1
    return np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, n_bins - 1)


CLOSURES = ("numpy", "right", "left")


def assign_uniform_closure(p: np.ndarray, n_bins: int, closure: str = "numpy") -> np.ndarray:
    """Equal-width bin index of each score under a chosen edge closure.

    Edges are :func:`uniform_edges`. ``closure``:

    * ``"numpy"``: ``[a, b)`` with the last bin ``[a, 1]`` (as :func:`assign_uniform`);
    * ``"right"``: bin 0 is ``[0, e_1]``, bin j is ``(e_j, e_{j+1}]`` (the detection
      calibration toolbox's LaECE_0 / D-ECE bins);
    * ``"left"``: ``[e_j, e_{j+1})`` for every bin, so a score of exactly 1 is in no bin
      (SAOD's LaECE).

    A score in no bin (outside [0, 1], or 1 with ``"left"``) gets the index ``n_bins``; give
    ``bin_sums`` ``n_bins + 1`` bins and drop the last to discard them.

    Parameters
    ----------
    p : array-like of shape (n,)
        Scores.
    n_bins : int
        Number of equal-width bins on [0, 1].
    closure : {"numpy", "right", "left"}, default="numpy"
        Which side of each bin is closed, as above.

    Returns
    -------
    ndarray of intp of shape (n,)
        The bin of each score, in ``[0, n_bins]`` (``n_bins``: in no bin).
    """
    if closure not in CLOSURES:
        raise ValueError(f"closure must be one of {CLOSURES}; got {closure!r}.")
    edges = uniform_edges(n_bins)
    p = np.asarray(p, dtype=np.float64)
    outside = (p < 0.0) | (p > 1.0)
    if closure == "numpy":
        idx = assign_uniform(np.clip(p, 0.0, 1.0), n_bins)
    elif closure == "right":
        idx = np.searchsorted(edges[1:-1], p, side="left")
    else:
        idx = np.searchsorted(edges[1:], p, side="right")
    idx = np.where(outside, n_bins, idx)
    return idx.astype(np.intp)


def uniform_bin_sums(
    p: np.ndarray, n_bins: int, acc: np.ndarray, sample_weight=None, chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``bin_sums(assign_uniform(p, n_bins), n_bins, p, acc, sample_weight)`` for 1-D ``p``,
    computed in chunks of ``chunk`` scores (default: a cache-sized chunk,
    :func:`calibkit._chunks.chunk_rows`).

    Chunks small enough to stay in cache make the several passes of :func:`assign_uniform`
    cost less than one pass over a large array; unweighted boolean outcomes are packed with
    the bin index into one key (``2 * bin + outcome``), so two ``bincount`` calls suffice.

    Parameters
    ----------
    p : ndarray of shape (n,)
        Confidences in [0, 1] (binned, and summed as the confidences).
    n_bins : int
        Number of equal-width bins.
    acc : ndarray of shape (n,)
        Outcome of each sample (bool, 0/1 or a target in [0, 1]).
    sample_weight : ndarray of shape (n,), default=None
        Weight of each sample; None counts every sample once.
    chunk : int or None, default=None
        Scores per chunk; None takes :func:`calibkit._chunks.chunk_rows` of 16 bytes per
        score (a cache-sized chunk).

    Returns
    -------
    count, sum_conf, sum_acc : ndarray of float64 of shape (n_bins,)
        As :func:`bin_sums`.
    """
    chunk = chunk or chunk_rows(8 * 2)  # the score and its bin index: 65,536 scores
    n_bins = check_n_bins(n_bins)
    fast = sample_weight is None and acc.dtype == np.bool_
    m = 2 * n_bins if fast else n_bins
    count, sum_conf, sum_acc = np.zeros(m), np.zeros(m), np.zeros(m)
    for s in range(0, len(p), chunk):
        pc = p[s:s + chunk]
        idx = assign_uniform(pc, n_bins)
        if fast:
            idx <<= 1
            idx |= acc[s:s + chunk]
            count += np.bincount(idx, minlength=m)
            sum_conf += np.bincount(idx, weights=pc, minlength=m)
        else:
            w = None if sample_weight is None else sample_weight[s:s + chunk]
            c, sc, sa = bin_sums(idx, n_bins, pc, acc[s:s + chunk], w)
            count += c
            sum_conf += sc
            sum_acc += sa
    if fast:
        both = count.reshape(n_bins, 2)
        return both.sum(axis=1), sum_conf.reshape(n_bins, 2).sum(axis=1), both[:, 1].copy()
    return count, sum_conf, sum_acc
