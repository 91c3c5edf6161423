"""Object-level Calibration Error (OCE).

Park, Sobolewski and Azizan, "Uncertainty Quantification in Detection Transformers:
Object-Level Calibration and Image-Level Reliability", IEEE TPAMI (arXiv 2412.01782); the
reference implementation is the ``uq-detr`` package (``uq_detr.oce``, version 0.1.1).

OCE averages a Brier score over the *ground-truth objects* rather than over detections. For
an IoU threshold ``tau`` and an object ``o`` of class ``c_o``, let ``M_tau(o)`` be the
detections of its image (of any class) with ``IoU(o, d) >= tau``. Then

* no detection reaches the object: ``Brier = 1``;
* with the detections' class distributions ``P`` (``class_probabilities``), their aggregate
  ``p`` gives ``Brier = sum_k (1[k = c_o] - p_k)^2`` (the paper's definition);
* with one score per detection (COCO results), uq-detr's binary reduction to {aggregated
  label, anything else}: ``Brier = 2 (1 - s)^2`` if the aggregated label is ``c_o``, else
  ``2 s^2``, ``s`` the aggregated score;

``OCE_tau`` is the mean over objects and OCE the mean over the thresholds (0.5 and 0.75 by
default). A missed object costs 1 and every extra detection overlapping an object pulls its
aggregate away from the right answer, so OCE penalises both too few and too many kept
detections, unlike LaECE and D-ECE, which only look at the detections that are kept.
"""

from __future__ import annotations

import numpy as np

from calibkit._validation import Interval, Options, check_array, check_param, check_unit_interval
from calibkit.detection.io import load_dets, load_gt
from calibkit.detection.iou import IoUSource, check_iou_type
from calibkit.detection.matching import _index_in
from calibkit.detection.metrics import _ranges

__all__ = ["oce", "AGGREGATIONS"]

AGGREGATIONS = ("mean", "max_iou", "iou_weighted")


def oce(
    gt,
    dets,
    *,
    iou_thresholds=(0.5, 0.75),
    aggregation: str = "mean",
    class_probabilities=None,
    return_per_object: bool = False,
    iou_type: str = "bbox",
):
    """Object-level Calibration Error of the detections ``dets`` (see the module docstring).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        Every regular (non-crowd) annotation is an object; crowd regions are not objects and
        play no part.
    dets : path, COCO results list or Detections
        All the detections given take part (no ``max_dets`` cap, no threshold): OCE judges
        the detector together with its post-processing, so apply the threshold or top-k you
        deploy before calling.
    iou_thresholds : sequence of float in (0, 1], default=(0.5, 0.75)
        A detection belongs to an object at threshold ``tau`` iff their IoU is ``>= tau``.
    aggregation : {"mean", "max_iou", "iou_weighted"}, default="mean"
        How the detections of one object are combined: their mean (with scores only, the
        label is the majority category, the smallest category id on a tie); the one of
        largest IoU (the first in file order on a tie); or the IoU-weighted mean (label from
        the detection of largest IoU).
    class_probabilities : array-like of shape (n_dets, n_categories) or None, default=None
        Each detection's class distribution, columns in ``gt.category_ids`` order: the exact
        multi-class Brier score instead of the binary reduction. The labels of ``dets`` are
        then not used.
    return_per_object : bool, default=False
        Also return each object's Brier score averaged over the thresholds (regular
        annotations in ground-truth order; uq-detr lists them image by image).
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU of the segmentations (each object's mask against the masks of
        its image's detections).

    Returns
    -------
    float, or (float, ndarray of shape (n_objects,))
        NaN when the ground truth has no object (uq-detr reports 1.0 there).

    Notes
    -----
    The IoU is calibkit's (pycocotools' box IoU); uq-detr computes it from ``xyxy`` corners,
    which can differ in the last bit, so a pair whose IoU lies exactly on a threshold may be
    decided differently.
    """
    iou_type = check_iou_type(iou_type, "oce")
    gt = load_gt(gt, iou_type=iou_type)
    dets = load_dets(dets, iou_type=iou_type, gt=gt)
    taus = _check_thresholds(iou_thresholds)
    check_param(aggregation, "aggregation", [Options(*AGGREGATIONS)], owner="oce")
    probs = None if class_probabilities is None else _check_probabilities(
        class_probabilities, len(dets), gt.n_categories)
    obj = np.flatnonzero(~gt.ann_crowd)
    n_obj = len(obj)
    if n_obj == 0:
        return (float("nan"), np.zeros(0)) if return_per_object else float("nan")
    obj_cls = np.searchsorted(gt.category_ids, gt.ann_category_id[obj])
    det_cls = _index_in(dets.category_id, gt.category_ids, "category_id")
    pair_obj, pair_det, iou = _object_pairs(gt, dets, obj, float(taus.min()),
                                            IoUSource.of(gt, dets, iou_type))
    brier = np.empty((len(taus), n_obj))
    for t, tau in enumerate(taus):
        hit = iou >= tau
        po, pd, pi = pair_obj[hit], pair_det[hit], iou[hit]
        matched = np.bincount(po, minlength=n_obj) > 0
        # the weight of each pair in the aggregate (None: the detection of largest IoU)
        weight = {"mean": np.ones(len(po)), "iou_weighted": pi}.get(aggregation)
        best = None if aggregation == "mean" else pd[_first_max(po, pi, n_obj)[matched]]
        if probs is None:
            value = _brier_binary(po, pd, weight, best, matched, obj_cls, dets.score, det_cls,
                                  gt.n_categories)
        else:
            value = _brier_full(po, pd, weight, best, matched, obj_cls, probs)
        brier[t] = np.where(matched, value, 1.0)
    value = float(np.mean(brier.mean(axis=1)))
    return (value, brier.mean(axis=0)) if return_per_object else value


def _brier_binary(po, pd, weight, best, matched, obj_cls, score, det_cls, n_categories):
    """uq-detr's binary reduction: ``2 (1 - s)^2`` when the aggregated label is the object's
    class, else ``2 s^2`` (the caller sets unmatched objects to 1)."""
    n_obj = len(obj_cls)
    if weight is None:  # max_iou
        s = np.zeros(n_obj)
        s[matched] = score[best]
    else:
        s = _weighted_mean(po, weight, score[pd], n_obj)
    if best is None:  # mean: the majority label
        label = _majority(po, det_cls[pd], n_obj, n_categories)
    else:
        label = np.full(n_obj, -1)
        label[matched] = det_cls[best]
    return np.where(label == obj_cls, 2.0 * (1.0 - s) ** 2, 2.0 * s**2)


def _brier_full(po, pd, weight, best, matched, obj_cls, probs):
    """Multi-class Brier score ``sum_k (1[k = c_o] - p_k)^2`` of the aggregated distribution."""
    n_obj, k = len(obj_cls), probs.shape[1]
    if weight is None:  # max_iou
        p = np.zeros((n_obj, k))
        p[matched] = probs[best]
    else:
        p = _weighted_mean(po, weight, probs[pd], n_obj)
    target = np.zeros((n_obj, k))
    target[np.arange(n_obj), obj_cls] = 1.0
    return np.sum((target - p) ** 2, axis=1)


def _object_pairs(gt, dets, obj, min_iou: float, source: IoUSource | None = None,
                  chunk: int = 1 << 20):
    """The (object, detection) pairs of the same image with ``IoU >= min_iou`` (for each
    object its detections in file order) and their IoU from ``source`` (boxes or masks),
    computed for about ``chunk`` pairs at a time."""
    source = IoUSource.of(gt, dets) if source is None else source
    img_d = _index_in(dets.image_id, gt.image_ids, "image_id")
    by_image = np.argsort(img_d, kind="stable")
    img_o = np.searchsorted(gt.image_ids, gt.ann_image_id[obj])
    lo = np.searchsorted(img_d[by_image], img_o, "left")
    n_pairs = np.searchsorted(img_d[by_image], img_o, "right") - lo
    before = np.cumsum(n_pairs) - n_pairs  # pairs of the objects before each object
    out = []
    start = 0
    while start < len(obj):
        stop = max(start + 1, int(np.searchsorted(before, before[start] + chunk, "right")))
        pair_obj = np.repeat(np.arange(start, stop), n_pairs[start:stop])
        pair_det = by_image[_ranges(lo[start:stop], n_pairs[start:stop])]
        iou = source.pairs(pair_det, obj[pair_obj], np.zeros(len(pair_obj), bool))
        keep = iou >= min_iou
        out.append((pair_obj[keep], pair_det[keep], iou[keep]))
        start = stop
    return tuple(np.concatenate(col) for col in zip(*out, strict=True))


def _weighted_mean(group, weight, values, n_groups):
    """Per-group ``sum w v / sum w`` of ``values`` of shape (m,) or (m, k); 0 for an empty
    group."""
    total = np.bincount(group, weights=weight, minlength=n_groups)
    safe = np.where(total > 0, total, 1.0)
    if values.ndim == 1:
        return np.bincount(group, weights=weight * values, minlength=n_groups) / safe
    from scipy.sparse import csr_matrix

    sums = csr_matrix((weight, (group, np.arange(len(group)))),
                      shape=(n_groups, len(group))) @ values
    return sums / safe[:, None]


def _first_max(group, value, n_groups):
    """Index (into the pairs) of the largest ``value`` of each group, the first pair on a
    tie; -1 for an empty group."""
    best = np.full(n_groups, -1)
    if not len(group):
        return best
    order = np.lexsort((np.arange(len(group)), -value, group))
    first = np.ones(len(order), bool)
    first[1:] = group[order][1:] != group[order][:-1]
    best[group[order][first]] = order[first]
    return best


def _majority(group, label, n_groups, n_labels):
    """Most frequent label of each group (the smallest label on a tie); -1 when empty."""
    out = np.full(n_groups, -1)
    if not len(group):
        return out
    keys, counts = np.unique(group * n_labels + label, return_counts=True)
    g, lab = np.divmod(keys, n_labels)
    order = np.lexsort((lab, -counts, g))
    first = np.ones(len(order), bool)
    first[1:] = g[order][1:] != g[order][:-1]
    out[g[order][first]] = lab[order][first]
    return out


def _check_thresholds(iou_thresholds) -> np.ndarray:
    taus = np.atleast_1d(np.asarray(iou_thresholds, dtype=np.float64))
    if taus.ndim != 1 or not len(taus):
        raise ValueError("iou_thresholds must be a non-empty sequence of floats in (0, 1]; "
                         f"got {iou_thresholds!r}.")
    for tau in taus:
        check_param(float(tau), "iou_thresholds", [Interval("real", 0, 1, closed="right")],
                    owner="oce")
    return taus


def _check_probabilities(p, n_dets: int, n_categories: int) -> np.ndarray:
    if n_dets == 0:
        arr = np.asarray(p, dtype=np.float64).reshape(0, n_categories)
    else:
        arr = check_array(p, name="class_probabilities", ndim=(2,))
    if arr.shape != (n_dets, n_categories):
        raise ValueError(
            f"class_probabilities must have shape (n_dets, n_categories) = ({n_dets}, "
            f"{n_categories}), columns in the ground truth's category order; got {arr.shape}."
        )
    return check_unit_interval(arr, name="class_probabilities")
