"""The COCO summary: the twelve numbers of pycocotools' ``COCOeval.summarize()``.

:func:`coco_summary` runs COCOeval's ``evaluate`` + ``accumulate`` + ``summarize`` for
bounding boxes with COCO's parameters: IoU thresholds ``.50:.05:.95``, recall thresholds
``0:.01:1``, area ranges all / small / medium / large = ``[0, 1e5**2]``, ``[0, 32**2]``,
``[32**2, 96**2]``, ``[96**2, 1e5**2]`` and ``maxDets`` 1, 10, 100. It reproduces
pycocotools step by step (equal to its ``stats`` to floating-point rounding of the final
means):

* per (image, class) and area range, a ground-truth box is *ignored* if it is a crowd
  region or its annotation ``area`` lies outside the range; ignored boxes come after the
  regular ones; detections (the first 100 by score, ties in file order) are matched
  greedily as in :func:`calibkit.detection.match`; a non-crowd ignored box is taken by
  one detection only, a crowd box by any number; a detection that takes an ignored box,
  or that is unmatched with a box area ``w * h`` outside the range, is ignored;
* per class, area range and ``maxDets`` ``m`` (the first ``m`` detections of each
  (image, class)), the detections in order of descending score (ties: image id, then
  file order) give cumulative TP / FP counts, recall ``tp / npig`` and precision
  ``tp / (tp + fp + eps)``; precision is made monotone from the right and read at the 101
  recall thresholds (the first recall ``>= r``; 0 beyond the last recall);
* each number is the mean over the entries that are not -1 (classes without regular
  ground truth in that area range are -1) of the precision (AP) or final recall (AR)
  array sliced as ``summarize`` slices it.

The seam for other IoU types and rule sets. The compiled kernels
(:mod:`calibkit.detection._kernels`) take an IoU block per (image, class) group and the
group's ignore / crowd flags; :func:`_kernels._pick` is the only place that decides a match.
So ``iou_type="segm"`` only needs another block filler (``pycocotools.mask.iou`` on the
RLEs, with ``iscrowd`` passed the same way: intersection over the detection's area for a
crowd region), and LVIS rules only another preparation step: the evaluated set (the 300
highest-scoring detections per *image* instead of 100 per (image, class)), categories of
an image's ``neg_category_ids`` kept as candidates without ground truth (their detections
are FP) and detections of ``not_exhaustive_category_ids`` ignored when unmatched (the same
"ignored if unmatched" flag as the area rule). Only ``"bbox"`` is implemented.
"""

from __future__ import annotations

import numpy as np

from calibkit.detection.io import load_dets, load_gt
from calibkit.detection.matching import _check_max_dets, _prepare, _thresholds

__all__ = ["coco_summary", "accumulate", "summarize", "COCO_SUMMARY_KEYS"]

#: The keys of :func:`coco_summary`, in the order of pycocotools' ``stats``.
COCO_SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                     "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

#: COCO's IoU thresholds .50:.05:.95 and recall thresholds 0:.01:1 (pycocotools' expressions)
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)
#: pycocotools' area ranges all, small, medium, large
COCO_AREA_RANGES = np.array([[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]])
COCO_AREA_LABELS = ("all", "small", "medium", "large")
COCO_MAX_DETS = (1, 10, 100)
IOU_TYPES = ("bbox",)


def coco_summary(gt, dets, *, iou_type: str = "bbox") -> dict:
    """The twelve COCO detection metrics (pycocotools' ``COCOeval.stats``).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        Area ranges test the annotations' ``area`` field (``w * h`` where a ground truth
        built from arrays has none).
    dets : path, COCO results list, Detections or torchvision outputs
    iou_type : {"bbox"}, default "bbox"
        Only box IoU is implemented (see the module docstring for how ``"segm"`` fits).

    Returns
    -------
    dict of float
        ``AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl`` in that order
        (pycocotools' ``stats`` order); -1 where no class has ground truth in the range.

    Examples
    --------
    >>> from calibkit.detection import coco_summary
    >>> from calibkit.detection.synthetic import make_coco_like
    >>> gt, dets = make_coco_like(20)
    >>> s = coco_summary(gt, dets)
    >>> list(s)[:3]
    ['AP', 'AP50', 'AP75']
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(
            f"iou_type must be one of {IOU_TYPES}; got {iou_type!r} (segmentation IoU is not "
            "implemented yet)."
        )
    precision, recall = accumulate(gt, dets)
    return summarize(precision, recall)


def accumulate(gt, dets, *, iou_thresholds=None, area_ranges=None, max_dets=COCO_MAX_DETS):
    """COCOeval's ``evaluate`` + ``accumulate``: ``precision`` of shape (T, R, K, A, M) and
    ``recall`` of shape (T, K, A, M), -1 for classes without regular ground truth in an area
    range (T IoU thresholds, R = 101 recall thresholds, K categories in the order of
    ``gt.category_ids``, A area ranges, M ``max_dets`` values; matching keeps
    ``max(max_dets)`` detections per (image, class))."""
    from calibkit.detection import _kernels

    gt = load_gt(gt)
    dets = load_dets(dets)
    thrs = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, float)
    areas = COCO_AREA_RANGES if area_ranges is None else np.asarray(area_ranges, float)
    areas = areas.reshape(-1, 2)
    md = np.array([_check_max_dets(m) for m in max_dets], np.int64)
    prep = _prepare(gt, dets, int(md.max()))
    k = gt.n_categories
    gcls = np.searchsorted(gt.category_ids, gt.ann_category_id)
    area = gt.area
    npig = np.zeros((k, len(areas)), np.int64)
    for a, (lo, hi) in enumerate(areas):
        regular = ~gt.ann_crowd & ~((area < lo) | (area > hi))
        npig[:, a] = np.bincount(gcls[regular], minlength=k)
    if len(areas) > 8:
        raise ValueError(f"at most 8 area ranges; got {len(areas)}.")
    codes = np.zeros((len(prep.det), len(thrs)), np.uint8 if len(areas) <= 4 else np.uint16)
    if len(prep.det):
        _kernels.group_codes(prep.box, prep.det, prep.d_lo, prep.d_hi, prep.gbox, prep.gcrowd,
                             prep.garea, prep.g_lo, prep.g_hi, _thresholds(thrs, "ge"), False,
                             np.ascontiguousarray(areas[:, 0]),
                             np.ascontiguousarray(areas[:, 1]), *_bits(len(areas), codes.dtype),
                             codes)
    return _accumulate_codes(codes, prep.score, prep.rank, prep.pos, prep.cls_start, npig,
                             md, len(areas))


def _accumulate_codes(codes, score, rank, pos, cls_start, npig, md, n_areas):
    """precision (T, R, K, A, M) and recall (T, K, A, M) from per-detection codes."""
    from calibkit.detection import _kernels

    k = len(cls_start) - 1
    n_t = codes.shape[1]
    precision = -np.ones((n_t, len(COCO_RECALL_THRESHOLDS), k, n_areas, len(md)))
    recall = -np.ones((n_t, k, n_areas, len(md)))
    seq = np.argsort(-np.diff(cls_start), kind="stable")  # largest classes first
    import numba

    old = numba.get_parallel_chunksize()
    numba.set_parallel_chunksize(1)
    try:
        _kernels.accumulate_classes(codes, score, rank, pos, cls_start, seq, md,
                                    COCO_RECALL_THRESHOLDS, npig, *_bits(n_areas, codes.dtype),
                                    precision, recall)
    finally:
        numba.set_parallel_chunksize(old)
    return precision, recall


def _bits(n_areas: int, dtype):
    """The TP and ignored bit of each area range in the codes (bits 2a and 2a + 1)."""
    a = np.arange(n_areas)
    return (1 << (2 * a)).astype(dtype), (2 << (2 * a)).astype(dtype)


def summarize(precision: np.ndarray, recall: np.ndarray) -> dict:
    """The twelve numbers of ``COCOeval.summarize()`` from :func:`accumulate`'s arrays
    (COCO's thresholds, area ranges and ``maxDets``), the same slices and means."""

    def one(ap: bool, iou_thr=None, area="all", max_det=100) -> float:
        a = COCO_AREA_LABELS.index(area)
        m = COCO_MAX_DETS.index(max_det)
        if ap:
            s = precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == COCO_IOU_THRESHOLDS)[0]]
            s = s[:, :, :, a, m]
        else:
            s = recall
            if iou_thr is not None:
                s = s[np.where(iou_thr == COCO_IOU_THRESHOLDS)[0]]
            s = s[:, :, a, m]
        valid = s[s > -1]
        return -1.0 if len(valid) == 0 else float(np.mean(valid))

    values = [
        one(True), one(True, 0.5), one(True, 0.75),
        one(True, area="small"), one(True, area="medium"), one(True, area="large"),
        one(False, max_det=1), one(False, max_det=10), one(False, max_det=100),
        one(False, area="small"), one(False, area="medium"), one(False, area="large"),
    ]
    return dict(zip(COCO_SUMMARY_KEYS, values, strict=True))

