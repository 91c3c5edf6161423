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

Masks (``iou_type="segm"``) change only the IoU (pycocotools' mask IoU of the RLEs, with
the crowd rule, :mod:`calibkit.detection.iou`); the area ranges still test the
annotations' ``area`` field and, for unmatched detections, the detection's ``area``
(pycocotools' ``loadRes``: the box area for a result with a ``bbox``, the mask area
otherwise).

:func:`lvis_summary` is ``LVISEval``'s ``evaluate`` + ``accumulate`` + ``summarize`` of the
``lvis`` package: the same accumulation over LVIS's evaluated set and rules (the
``max_dets`` = 300 best detections per image, classes verified per image, ignored unmatched
detections of classes not exhaustively annotated, no crowd regions; see
:mod:`calibkit.detection.matching`), the same area ranges, no per-(image, class) cap, and
its thirteen numbers: AP over all, IoU .50, .75, the three area ranges and the three
frequency groups (rare, common, frequent, from the categories' ``frequency`` field), and
AR at ``max_dets`` over all and the three area ranges.
"""

from __future__ import annotations

import numpy as np

from calibkit._validation import Interval, check_param
from calibkit.detection.io import load_dets, load_gt
from calibkit.detection.iou import check_iou_type
from calibkit.detection.matching import (
    _check_max_dets,
    _group_codes,
    _prepare,
    _regular,
    _resolve,
)

__all__ = ["coco_summary", "lvis_summary", "accumulate", "summarize", "summarize_lvis",
           "COCO_SUMMARY_KEYS", "LVIS_FREQUENCIES"]

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
#: LVIS's area ranges (``lvis.eval.Params.area_rng``): the same four as COCO's
LVIS_AREA_RANGES = COCO_AREA_RANGES
#: LVIS's frequency groups (``Params.img_count_lbl``): rare, common, frequent
LVIS_FREQUENCIES = ("r", "c", "f")


def coco_summary(gt, dets, *, iou_type: str = "bbox") -> dict:
    """The twelve COCO detection metrics (pycocotools' ``COCOeval.stats``).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        Area ranges test the annotations' ``area`` field (``w * h`` where a ground truth
        built from arrays has none). COCO's rules apply even to LVIS ground truth (use
        :func:`lvis_summary` for LVIS's).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`); the 100 best of each
        (image, class) are evaluated.
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU (``COCOeval(iouType="segm")``).

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
    precision, recall = accumulate(gt, dets, iou_type=iou_type, dataset="coco")
    return summarize(precision, recall)


def lvis_summary(gt, dets, *, iou_type: str = "bbox", max_dets: int = 300) -> dict:
    """LVIS's summary (the ``lvis`` package's ``LVISEval.results``).

    Parameters
    ----------
    gt : path, dict, lvis LVIS or GroundTruth
        LVIS ground truth: every image with ``neg_category_ids`` and
        ``not_exhaustive_category_ids``, every category with its ``frequency`` (``"r"``,
        ``"c"`` or ``"f"``).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`).
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU (``LVISEval(iou_type="segm")``).
    max_dets : int, default=300
        Detections kept per image (``LVISResults``' cap, all classes together).

    Returns
    -------
    dict of float
        ``AP, AP50, AP75, APs, APm, APl, APr, APc, APf, AR@300, ARs@300, ARm@300, ARl@300``
        (``LVISEval``'s keys and order; the AR keys name ``max_dets``); -1 where no class
        has ground truth.

    Raises
    ------
    ValueError
        Ground truth without LVIS's image fields, or a category without a ``frequency`` of
        ``"r"``, ``"c"`` or ``"f"``.
    """
    max_dets = int(check_param(max_dets, "max_dets", [Interval("integer", 1, None)],
                               owner="lvis_summary"))
    iou_type = check_iou_type(iou_type, "lvis_summary")
    gt = load_gt(gt, iou_type=iou_type)
    _resolve(gt, "lvis", None, "lvis_summary")
    groups = _frequency_groups(gt)
    precision, recall = accumulate(gt, dets, max_dets=[max_dets], iou_type=iou_type,
                                   dataset="lvis")
    return summarize_lvis(precision, recall, groups, max_dets)


def accumulate(gt, dets, *, iou_thresholds=None, area_ranges=None, max_dets=None,
               iou_type: str = "bbox", dataset: str = "auto"):
    """COCOeval's (or LVISEval's) ``evaluate`` + ``accumulate``: ``precision`` of shape
    (T, R, K, A, M) and ``recall`` of shape (T, K, A, M), -1 for classes without regular
    ground truth in an area range (T IoU thresholds, R = 101 recall thresholds, K categories
    in the order of ``gt.category_ids``, A area ranges, M ``max_dets`` values).

    COCO: matching keeps ``max(max_dets)`` detections per (image, class) and each ``max_dets``
    value ``m`` the first ``m`` of each (image, class) (default 1, 10, 100). LVIS: one value,
    the cap per image (default 300). ``dataset`` as in :func:`calibkit.detection.match`.

    Parameters
    ----------
    gt : path, dict, pycocotools COCO, lvis LVIS or GroundTruth
        The ground truth (see :func:`~calibkit.detection.load_gt`).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`).
    iou_thresholds : array-like of shape (T,) or None, default=None
        IoU thresholds; a detection is eligible for a box at ``t`` when
        ``IoU >= min(t, 1 - 1e-10)``. None: COCO's ``.50:.05:.95``
        (:data:`COCO_IOU_THRESHOLDS`).
    area_ranges : array-like of shape (A, 2) or None, default=None
        ``[low, high]`` area ranges (both ends included), at most 8. None: COCO's all,
        small, medium and large.
    max_dets : sequence of int or None, default=None
        The ``maxDets`` values (each ``>= 1``): COCO's ``(1, 10, 100)`` when None; under
        LVIS's rules exactly one value, the cap per image (``(300,)`` when None).
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU of the segmentations.
    dataset : {"auto", "coco", "lvis"}, default="auto"
        COCO's rules or LVIS's federated rules; ``"auto"`` follows the ground truth.

    Returns
    -------
    precision : ndarray of shape (T, R, K, A, M)
        Precision made monotone from the right, read at the R = 101 recall thresholds
        (0 beyond the last recall); -1 for a class without regular ground truth in the
        area range.
    recall : ndarray of shape (T, K, A, M)
        Final recall; -1 as for ``precision``.
    """
    iou_type = check_iou_type(iou_type, "accumulate")
    gt = load_gt(gt, iou_type=iou_type)
    dets = load_dets(dets, iou_type=iou_type, gt=gt)
    dataset, _ = _resolve(gt, dataset, None, "accumulate")
    if max_dets is None:
        max_dets = COCO_MAX_DETS if dataset == "coco" else (300,)
    thrs = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, float)
    areas = COCO_AREA_RANGES if area_ranges is None else np.asarray(area_ranges, float)
    areas = areas.reshape(-1, 2)
    md = np.array([_check_max_dets(m) for m in max_dets], np.int64)
    if dataset == "lvis" and len(md) != 1:
        raise ValueError(f"LVIS has one max_dets (the cap per image); got {list(max_dets)}.")
    if len(areas) > 8:
        raise ValueError(f"at most 8 area ranges; got {len(areas)}.")
    prep = _prepare(gt, dets, int(md.max()), iou_type=iou_type, dataset=dataset)
    npig = _npig_by_area(gt, areas, dataset)
    codes = np.zeros((len(prep.det), len(thrs)), np.uint8 if len(areas) <= 4 else np.uint16)
    _group_codes(prep, thrs, areas, codes)
    return _accumulate_codes(codes, prep.score, prep.rank, prep.pos, prep.cls_start, npig,
                             md, len(areas))


def _npig_by_area(gt, areas: np.ndarray, dataset: str) -> np.ndarray:
    """Regular annotations per (category, area range) (shape (K, A)): not ignored under the
    dataset's rules and with an ``area`` inside the range."""
    k = gt.n_categories
    gcls = np.searchsorted(gt.category_ids, gt.ann_category_id)
    area = gt.area
    base = _regular(gt, dataset)
    npig = np.zeros((k, len(areas)), np.int64)
    for a, (lo, hi) in enumerate(areas):
        regular = base & ~((area < lo) | (area > hi))
        npig[:, a] = np.bincount(gcls[regular], minlength=k)
    return npig


def _frequency_groups(gt) -> list:
    """Category indices of each of LVIS's frequency groups (``r``, ``c``, ``f``)."""
    freq = gt.federated.frequency
    bad = [k for k, f in enumerate(freq) if f not in LVIS_FREQUENCIES]
    if bad:
        k = bad[0]
        raise ValueError(
            f"category {int(gt.category_ids[k])} has frequency {freq[k]!r}; LVIS's summary "
            "needs every category's frequency field to be 'r', 'c' or 'f'."
        )
    return [np.flatnonzero(freq == f) for f in LVIS_FREQUENCIES]


def _accumulate_codes(codes, score, rank, pos, cls_start, npig, md, n_areas):
    """precision (T, R, K, A, M) and recall (T, K, A, M) from per-detection codes."""
    from calibkit.detection import _kernels

    k = len(cls_start) - 1
    n_t = codes.shape[1]
    precision = -np.ones((n_t, len(COCO_RECALL_THRESHOLDS), k, n_areas, len(md)))
    recall = -np.ones((n_t, k, n_areas, len(md)))
    seq = np.argsort(-np.diff(cls_start), kind="stable")  # largest classes first
    _kernels.accumulate_classes(codes, score, rank, pos, cls_start, seq, md,
                                COCO_RECALL_THRESHOLDS, npig, *_bits(n_areas, codes.dtype),
                                precision, recall)
    return precision, recall


def summarize_lvis(precision: np.ndarray, recall: np.ndarray, freq_groups, max_dets: int
                   ) -> dict:
    """The numbers of ``LVISEval.summarize()`` from :func:`accumulate`'s arrays (LVIS's
    thresholds and area ranges, one ``max_dets``), the same slices and means.

    Parameters
    ----------
    precision : ndarray of shape (10, 101, K, 4, 1)
        :func:`accumulate`'s precision at COCO's IoU thresholds and area ranges (all, small,
        medium, large) and one ``max_dets``.
    recall : ndarray of shape (10, K, 4, 1)
        :func:`accumulate`'s recall, of the same accumulation.
    freq_groups : sequence of three ndarrays of int
        The category indices (positions in ``gt.category_ids``) of the rare, common and
        frequent groups, in that order.
    max_dets : int
        The cap per image the arrays were accumulated with; it only names the AR keys.

    Returns
    -------
    dict of float
        ``AP, AP50, AP75, APs, APm, APl, APr, APc, APf, AR@{max_dets}, ARs@{max_dets},
        ARm@{max_dets}, ARl@{max_dets}``: the mean of the entries that are not -1, or -1
        when there is none.
    """

    def one(ap: bool, iou_thr=None, area="all", group=None) -> float:
        a = COCO_AREA_LABELS.index(area)
        s = precision[..., a, 0] if ap else recall[..., a, 0]
        if iou_thr is not None:
            s = s[np.where(iou_thr == COCO_IOU_THRESHOLDS)[0]]
        if group is not None:
            s = s[:, :, freq_groups[group]]
        valid = s[s > -1]
        return -1.0 if len(valid) == 0 else float(np.mean(valid))

    out = {
        "AP": one(True), "AP50": one(True, 0.5), "AP75": one(True, 0.75),
        "APs": one(True, area="small"), "APm": one(True, area="medium"),
        "APl": one(True, area="large"),
        "APr": one(True, group=0), "APc": one(True, group=1), "APf": one(True, group=2),
        f"AR@{max_dets}": one(False),
    }
    for area in ("small", "medium", "large"):
        out[f"AR{area[0]}@{max_dets}"] = one(False, area=area)
    return out


def _bits(n_areas: int, dtype):
    """The TP and ignored bit of each area range in the codes (bits 2a and 2a + 1)."""
    a = np.arange(n_areas)
    return (1 << (2 * a)).astype(dtype), (2 << (2 * a)).astype(dtype)


def summarize(precision: np.ndarray, recall: np.ndarray) -> dict:
    """The twelve numbers of ``COCOeval.summarize()`` from :func:`accumulate`'s arrays
    (COCO's thresholds, area ranges and ``maxDets``), the same slices and means.

    Parameters
    ----------
    precision : ndarray of shape (10, 101, K, 4, 3)
        :func:`accumulate`'s precision at COCO's IoU thresholds, area ranges (all, small,
        medium, large) and ``maxDets`` (1, 10, 100): its defaults.
    recall : ndarray of shape (10, K, 4, 3)
        :func:`accumulate`'s recall, of the same accumulation.

    Returns
    -------
    dict of float
        The keys of :data:`COCO_SUMMARY_KEYS` in that order: the mean of the entries that
        are not -1, or -1 when there is none.
    """

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

