"""LRP-optimal per-class score thresholds, and applying per-class thresholds.

For class c with ``npig`` regular ground-truth boxes, its evaluated detections in per-class
order (descending score, then image id, then file order; crowd-ignored ones stay in the list
but add neither TP nor FP), and the prefix ``k`` (the first ``k + 1`` detections)::

    tp_k, fp_k = cumulative TP and FP counts,   fn_k = npig - tp_k
    loc_k = tp_k - cumsum(IoU * TP)_k
    LRP_k = (loc_k / (1 - tau) + fp_k + fn_k) / (tp_k + fp_k + fn_k)

The threshold is the score at the first ``argmin`` (the highest threshold on a plateau) and
oLRP is the minimum. A class without ground truth gets -1, a class without detections or
without TP gets NaN; both keep every detection, since a detection is kept iff
``not (score < threshold)``.
"""

from __future__ import annotations

import numpy as np

from calibkit.detection.io import Detections
from calibkit.detection.matching import Matches

__all__ = ["lrp_optimal_thresholds", "apply_thresholds"]


def lrp_optimal_thresholds(matches: Matches, *, tie_aware: bool = False):
    """Per-class LRP-optimal thresholds and oLRP at the matching threshold ``matches.tau``.

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (:func:`calibkit.detection.match`).
    tie_aware : bool, default=False
        ``False`` (toolbox parity): the argmin runs over every prefix, even inside a group
        of equal scores, although thresholding at that score keeps the whole group.
        ``True``: LRP is evaluated only at the ends of tie groups, i.e. at the detection
        sets a threshold can actually produce.

    Returns
    -------
    thresholds : ndarray of shape (n_categories,)
        In the order of ``matches.gt.category_ids``: -1 without ground truth, NaN without
        TP (both keep every detection).
    olrp : ndarray of shape (n_categories,)
        The minimum LRP (NaN without ground truth, 1 without TP).
    """
    k = matches.n_categories
    order = matches.order
    cls = matches.class_index[order]
    score = matches.dets.score[order]
    tp = matches.tp[order].astype(np.float64)
    fp = matches.fp[order].astype(np.float64)
    iou_tp = matches.iou[order] * tp
    bounds = np.searchsorted(cls, np.arange(k + 1))
    thr = np.full(k, np.nan)
    olrp = np.full(k, np.nan)
    one_minus_tau = 1.0 - matches.tau
    for c in range(k):
        npig = float(matches.npig[c])
        if npig == 0:
            thr[c] = -1.0
            continue
        a, b = bounds[c], bounds[c + 1]
        if b == a or tp[a:b].sum() == 0:
            olrp[c] = 1.0
            continue
        t = np.cumsum(tp[a:b])
        f = np.cumsum(fp[a:b])
        fn = npig - t
        loc = t - np.cumsum(iou_tp[a:b])
        curve = (loc / one_minus_tau + f + fn) / (t + f + fn)
        s = score[a:b]
        if tie_aware:
            ends = np.ones(len(s), bool)
            ends[:-1] = s[1:] != s[:-1]
            cand = np.flatnonzero(ends)
            j = cand[int(np.argmin(curve[cand]))]
        else:
            j = int(np.argmin(curve))
        thr[c] = s[j]
        olrp[c] = curve[j]
    return thr, olrp


def apply_thresholds(dets: Detections, category_ids, thresholds) -> np.ndarray:
    """Boolean mask of the detections kept: ``not (score < threshold of its category)``.

    Categories missing from ``category_ids`` and NaN thresholds keep everything.

    Parameters
    ----------
    dets : Detections
        The detections.
    category_ids : array-like of int of shape (n_categories,)
        The categories of ``thresholds`` (any order, distinct).
    thresholds : array-like of shape (n_categories,)
        Score threshold of each category of ``category_ids``.

    Returns
    -------
    ndarray of shape (n_dets,), bool
        True for the detections kept.
    """
    cat = np.asarray(category_ids, np.int64).ravel()
    thr = np.asarray(thresholds, np.float64).ravel()
    if cat.shape != thr.shape:
        raise ValueError(f"thresholds must give one value per category of category_ids; got "
                         f"{thr.size} thresholds for {cat.size} categories.")
    if len(np.unique(cat)) != len(cat):
        raise ValueError("category_ids must be distinct (one threshold per category).")
    order = np.argsort(cat)
    cat, thr = cat[order], thr[order]
    if len(cat) == 0:
        return np.ones(len(dets), bool)
    idx = np.clip(np.searchsorted(cat, dets.category_id), 0, len(cat) - 1)
    known = cat[idx] == dets.category_id
    t = np.where(known, thr[idx], np.nan)
    return ~(dets.score < t)
