"""Non-conformity scores for classification and the prediction sets they define.

Every score is a function ``E(x, k)`` of the softmax probabilities ``p`` of one sample and a
candidate label ``k``; larger means "k conforms less". The sets of a split-conformal
predictor are ``{k : E(x, k) <= q}`` for a calibrated threshold ``q``.

Ranks: ``pi(k)`` is the 0-based position of label ``k`` when the row is sorted by decreasing
probability, ties broken by column index (a stable sort). ``o(k) = pi(k) + 1`` is the 1-based
rank.

* ``"lac"`` (least ambiguous set-valued classifier, Sadinle et al. 2019): ``E = 1 - p_k``.
* ``"aps"`` (adaptive prediction sets, Romano et al. 2020):
  ``E = sum_{j: pi(j) < pi(k)} p_j + u * p_k``; ``u ~ U(0, 1)`` when randomised, ``u = 1``
  (the cumulative mass up to and including k) otherwise.
* ``"raps"`` (regularised APS, Angelopoulos et al. 2021): the APS score plus
  ``lam * max(0, o(k) - k_reg)``.
* ``"topk"``: ``E = o(k)``; the sets are the ``q`` labels of highest probability.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SCORES",
    "lac_score",
    "aps_score",
    "raps_score",
    "topk_score",
    "label_ranks",
    "true_label_score",
    "prefix_sets",
]

SCORES = ("lac", "aps", "raps", "topk")


def label_ranks(probs: np.ndarray):
    """``order`` (columns by decreasing probability, stable) and ``pi`` (0-based rank of
    every column), both of shape (n, K).

    Parameters
    ----------
    probs : ndarray of shape (n, K)
        Probabilities.

    Returns
    -------
    order : ndarray of intp of shape (n, K)
        ``order[i, r]`` is the column of rank ``r`` in row ``i`` (ties by column index).
    pi : ndarray of intp of shape (n, K)
        ``pi[i, k]`` is the 0-based rank of column ``k``; the inverse permutation of
        ``order``.
    """
    order = np.argsort(-probs, axis=1, kind="stable")
    pi = np.empty_like(order)
    np.put_along_axis(pi, order, np.arange(probs.shape[1])[None, :], axis=1)
    return order, pi


def lac_score(probs: np.ndarray) -> np.ndarray:
    """``1 - p_k`` for every label, shape (n, K).

    Parameters
    ----------
    probs : ndarray of shape (n, K)
        Softmax probabilities.

    Returns
    -------
    ndarray of shape (n, K)
        ``1 - probs``.

    Notes
    -----
    Least ambiguous set-valued classifier: Sadinle, Lei & Wasserman, "Least ambiguous
    set-valued classifiers with bounded error levels", JASA 2019.
    """
    return 1.0 - probs


def aps_score(probs: np.ndarray, *, u=None, ranks=None) -> np.ndarray:
    """APS score of every label, shape (n, K).

    Parameters
    ----------
    probs : ndarray of shape (n, K)
        Softmax probabilities.
    u : ndarray of shape (n, 1) or broadcastable to (n, K), or None, default=None
        None: the non-randomised score (``u = 1``). Else uniform draws in [0, 1]: one per
        row for sets, one per calibration sample for calibration.
    ranks : (ndarray of shape (n, K), ndarray of shape (n, K)) or None, default=None
        ``(order, pi)`` of :func:`label_ranks`, when already computed; None computes them.

    Returns
    -------
    ndarray of shape (n, K)
        ``E(x, k) = sum_{j: pi(j) < pi(k)} p_j + u * p_k`` for every label ``k``.

    Notes
    -----
    Adaptive prediction sets: Romano, Sesia & Candès, "Classification with valid and
    adaptive coverage", NeurIPS 2020.
    """
    order, pi = label_ranks(probs) if ranks is None else ranks
    sorted_p = np.take_along_axis(probs, order, axis=1)
    cum_incl = np.take_along_axis(np.cumsum(sorted_p, axis=1), pi, axis=1)
    if u is None:
        return cum_incl
    return cum_incl - (1.0 - u) * probs


def raps_score(probs, *, k_reg: int, lam: float, u=None, ranks=None) -> np.ndarray:
    """RAPS score: ``aps_score + lam * max(0, o(k) - k_reg)``, shape (n, K).

    Parameters
    ----------
    probs : ndarray of shape (n, K)
        Softmax probabilities.
    k_reg : int
        Rank from which the penalty starts (labels of 1-based rank ``o(k) <= k_reg`` are
        not penalised).
    lam : float
        Penalty per rank beyond ``k_reg``.
    u : ndarray of shape (n, 1) or broadcastable to (n, K), or None, default=None
        Uniform draws of the randomised APS part, as in :func:`aps_score`; None for
        ``u = 1``.
    ranks : (ndarray of shape (n, K), ndarray of shape (n, K)) or None, default=None
        ``(order, pi)`` of :func:`label_ranks`, when already computed.

    Returns
    -------
    ndarray of shape (n, K)
        The score of every label.

    Notes
    -----
    Regularised adaptive prediction sets: Angelopoulos, Bates, Malik & Jordan,
    "Uncertainty sets for image classifiers using conformal prediction", ICLR 2021.
    """
    ranks = label_ranks(probs) if ranks is None else ranks
    penalty = lam * np.maximum(ranks[1] + 1 - k_reg, 0)
    return aps_score(probs, u=u, ranks=ranks) + penalty


def topk_score(probs: np.ndarray, *, ranks=None) -> np.ndarray:
    """1-based rank ``o(k)`` of every label, shape (n, K), as float.

    Parameters
    ----------
    probs : ndarray of shape (n, K)
        Probabilities; labels are ranked by decreasing probability, ties by column index.
    ranks : (ndarray of shape (n, K), ndarray of shape (n, K)) or None, default=None
        ``(order, pi)`` of :func:`label_ranks`, when already computed.

    Returns
    -------
    ndarray of shape (n, K)
        ``o(k) = pi(k) + 1`` as float64.
    """
    pi = label_ranks(probs)[1] if ranks is None else ranks[1]
    return (pi + 1).astype(np.float64)


def true_label_score(probs, y, score, *, u=None, k_reg=None, lam=None) -> np.ndarray:
    """Score of the true label ``y`` (n,) of every row, shape (n,), in O(n K) (no sort).

    The same values as the column ``y`` of :func:`lac_score`, :func:`aps_score`,
    :func:`raps_score` or :func:`topk_score`: labels ranked before ``y`` are those with a
    larger probability, or an equal one and a smaller column index.

    Parameters
    ----------
    probs : ndarray of shape (n, K)
        Softmax probabilities.
    y : ndarray of shape (n,)
        True labels as column indices in ``[0, K)``.
    score : {"lac", "aps", "raps", "topk"}
        The non-conformity score.
    u : array-like of shape (n,) or (n, 1), or None, default=None
        Uniform draws of randomised APS / RAPS (one per row); None for ``u = 1``.
    k_reg : int or None, default=None
        RAPS only: rank from which the penalty starts.
    lam : float or None, default=None
        RAPS only: penalty per rank beyond ``k_reg``.

    Returns
    -------
    ndarray of shape (n,)
        ``E(x_i, y_i)`` for every row.
    """
    n, K = probs.shape
    rows = np.arange(n)
    p_y = probs[rows, y]
    if score == "lac":
        return 1.0 - p_y
    if score == "topk":
        cols = np.arange(K)[None, :]
        before = (probs > p_y[:, None]) | ((probs == p_y[:, None]) & (cols < y[:, None]))
        return before.sum(axis=1) + 1.0
    # the cumulative sum of the sorted row up to y's rank: the same float operations as at
    # predict time (bit-identical scores), with np.sort instead of a stable argsort
    rank = np.count_nonzero(probs > p_y[:, None], axis=1) + np.count_nonzero(
        (probs == p_y[:, None]) & (np.arange(K)[None, :] < y[:, None]), axis=1
    )
    s = np.sort(probs, axis=1)[:, ::-1]
    cum_incl = np.cumsum(s, axis=1)[rows, rank]
    out = cum_incl if u is None else cum_incl - (1.0 - np.asarray(u).reshape(-1)) * p_y
    if score == "raps":
        out = out + lam * np.maximum(rank + 1 - k_reg, 0)
    return out


def prefix_sets(probs, threshold, score, *, u=None, k_reg=0, lam=0.0, include_last_label=False):
    """APS / RAPS / top-k sets for one threshold per row, without an argsort.

    Along the labels sorted by decreasing probability these scores never decrease, so the set
    is the first ``m`` labels: ``m = #{r : E_r <= q}`` (or, with ``include_last_label``, one
    more label than the number with ``E_r < q``, plus every label tied in probability with
    the last one). ``E_r`` comes from the sorted values alone (``np.sort``, several times
    cheaper than a stable ``argsort``) and equals, bit for bit, the score of the label at
    rank ``r``; membership of label k is then "rank(k) < m" with ties broken by column index.

    Parameters
    ----------
    probs : ndarray of shape (n, K)
        Softmax probabilities.
    threshold : ndarray of shape (n, 1) or (1, 1)
        The calibrated threshold ``q`` of each row, or one for all rows.
    score : {"aps", "raps", "topk"}
        The non-conformity score.
    u : ndarray of shape (n, 1) or None, default=None
        Uniform draws of randomised APS / RAPS (one per row); None for ``u = 1``.
    k_reg : int, default=0
        RAPS only: rank from which the penalty starts.
    lam : float, default=0.0
        RAPS only: penalty per rank beyond ``k_reg``.
    include_last_label : bool, default=False
        Also include the label whose score crosses ``q`` (never an empty set), with every
        label tied in probability with it.

    Returns
    -------
    ndarray of shape (n, K)
        Boolean membership mask of the sets.
    """
    n, K = probs.shape
    s = np.sort(probs, axis=1)[:, ::-1]
    r1 = np.arange(1, K + 1)[None, :]
    if score == "topk":
        e = np.broadcast_to(r1.astype(np.float64), (n, K))
    else:
        e = np.cumsum(s, axis=1)
        if u is not None:
            e = e - (1.0 - u) * s
        if score == "raps":
            e = e + lam * np.maximum(r1 - k_reg, 0)
    if include_last_label:
        m = np.minimum(np.count_nonzero(e < threshold, axis=1) + 1, K)
        last = s[np.arange(n), m - 1]
        return probs >= last[:, None]
    m = np.count_nonzero(e <= threshold, axis=1)
    return top_m_mask(probs, s, m)


def top_m_mask(probs, sorted_desc, m):
    """Mask of the ``m[i]`` labels of highest probability of each row, ties by column index."""
    n, K = probs.shape
    rows = np.arange(n)
    t = sorted_desc[rows, np.maximum(m - 1, 0)][:, None]
    out = probs > t
    n_gt = np.count_nonzero(out, axis=1)
    eq = probs == t
    n_eq = np.count_nonzero(eq, axis=1)
    slots = m - n_gt
    # rows whose tied block straddles the cut need the column-order tie break
    cut = np.flatnonzero((m > 0) & (slots < n_eq))
    full = (m > 0) & (slots >= n_eq)
    out |= eq & full[:, None]
    if cut.size:
        eq_cut = eq[cut]
        out[cut] |= eq_cut & (np.cumsum(eq_cut, axis=1) <= slots[cut, None])
    return out


def include_last_label_sets(probs, scores_incl, thresholds, ranks) -> np.ndarray:
    """Non-randomised APS/RAPS sets that include the label crossing the threshold.

    Walking down the labels by decreasing probability, a label is included when every label
    before it has ``E < q`` (so the first label with ``E >= q`` is included too, and the set
    is never empty); labels tied in probability with the last included label are included
    as well, so the set does not depend on the column order. This is MAPIE's
    ``include_last_label=True`` (without its 1e-8 tolerance).

    ``thresholds`` has shape (n, K) (per candidate label, for Mondrian predictors).
    """
    order, pi = ranks
    below = scores_incl < thresholds
    below_sorted = np.take_along_axis(below, order, axis=1)
    # labels before the first label not strictly below the threshold, plus that label
    n_in = np.minimum(np.argmin(below_sorted, axis=1) + 1, probs.shape[1])
    n_in = np.where(below_sorted.all(axis=1), probs.shape[1], n_in)
    in_set = pi < n_in[:, None]
    last_p = np.take_along_axis(np.take_along_axis(probs, order, axis=1), n_in[:, None] - 1, axis=1)
    return in_set | (probs >= last_p)
