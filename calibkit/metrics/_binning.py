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

STRATEGIES = ("uniform", "quantile")


def check_n_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}.")
    return int(n_bins)


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    return strategy


def uniform_edges(n_bins: int) -> np.ndarray:
    """Equal-width edges ``np.linspace(0, 1, n_bins + 1)``."""
    return np.linspace(0.0, 1.0, check_n_bins(n_bins) + 1)


def assign_uniform(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index in ``[0, n_bins)`` of each score in [0, 1] for equal-width bins.

    Same result as ``np.searchsorted(edges[1:-1], p, side="right")``, computed faster:
    ``floor(p * n_bins)`` is off by at most one near an edge, so it is corrected by one
    comparison with the true lower and upper edge of the candidate bin.
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
    """Bin index of each score and the number of bins, for either strategy."""
    if check_strategy(strategy) == "uniform":
        return assign_uniform(p, n_bins), check_n_bins(n_bins)
    return assign_quantile(p, n_bins, sample_weight)


def bin_sums(
    idx: np.ndarray, n_bins: int, conf: np.ndarray, acc: np.ndarray, sample_weight=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (weighted) count, sum of confidences and sum of outcomes.

    Boolean outcomes without weights share one integer ``bincount`` for count and sum.
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
