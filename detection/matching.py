"""COCO greedy matching of detections to ground truth, compiled.

The rule is pycocotools' ``COCOeval.evaluateImg`` (area range "all"), per (image, class):

1. ground truth: regular boxes first, then crowd boxes (``iscrowd``), file order otherwise;
2. detections: stable sort by descending score (ties in file order), keep the first
   ``max_dets`` (the cap is per (image, class), as in pycocotools);
3. IoU as pycocotools' C code computes it: ``w = min(dx+dw, gx+gw) - max(dx, gx)`` (0 if
   ``w <= 0``), the same for ``h``, ``inter = w*h``; union ``da + ga - inter``, or ``da``
   (the detection's area) for a crowd box;
4. greedily, in score order, each detection takes the still unmatched regular box of largest
   IoU among those eligible (``IoU >= min(tau, 1 - 1e-10)`` for ``iou_op="ge"``,
   ``IoU > tau`` for ``"gt"``), the later box on equal IoU; it is then a TP with that IoU.
   Without such a box it is *ignored* if some crowd box is eligible (crowd boxes absorb any
   number of detections), and an FP otherwise.

``iou_type="segm"`` replaces the box IoU by pycocotools' mask IoU of the RLEs (with the
same crowd rule: intersection over the detection's mask area), computed for the pairs of
each (image, class) group only (:mod:`calibkit.detection.iou`).

LVIS's federated rules (``dataset="lvis"``, chosen automatically when the ground truth's
images carry ``neg_category_ids`` and ``not_exhaustive_category_ids``), as the ``lvis``
package's ``LVISResults`` and ``LVISEval`` apply them:

* the evaluated detections are the ``max_dets`` (300) highest-scoring of each *image*, all
  classes together (ties in file order), and of those only the ones whose class is
  verified on the image: it has an annotation there (present) or is in the image's
  ``neg_category_ids`` (absent); a detection of any other class takes no part;
* annotations and detections with an area of 0 take no part (LVIS selects ``area > 0``);
* there are no crowd regions (``iscrowd`` is not read); an annotation's ``ignore`` flag
  makes it an ignore region that one detection can take (that detection is ignored);
* an unmatched detection of a class in the image's ``not_exhaustive_category_ids`` is
  ignored (neither TP nor FP, like a crowd-matched one); in a class of
  ``neg_category_ids`` it is an FP.

The greedy loop is sequential within an (image, class) group only; the compiled kernels of
:mod:`calibkit.detection._kernels` run the groups in parallel on all cores (C, on a thread pool).
Preparation (:func:`_prepare`) sorts the detections by (image, class, descending score,
file order) and the ground truth by (image, class, file order) once; matching at several
thresholds (:func:`match_many`) shares it and the IoU blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibkit._validation import NONE, Interval, Options, check_param
from calibkit.detection.io import Detections, GroundTruth, load_dets, load_gt
from calibkit.detection.iou import IoUSource, box_iou_pycocotools, check_iou_type

__all__ = ["Matches", "match", "match_many", "match_netcal", "box_iou"]

IOU_OPS = ("ge", "gt")
#: rule sets: COCO's, LVIS's federated rules, or chosen from the ground truth
DATASETS = ("auto", "coco", "lvis")
#: detections kept by default: per (image, class) for COCO, per image for LVIS
DEFAULT_MAX_DETS = {"coco": 100, "lvis": 300}


@dataclass(frozen=True, eq=False)
class Matches:
    """Detections matched to ground truth at one IoU threshold.

    Attributes
    ----------
    gt : GroundTruth
        The ground truth matched against.
    dets : Detections
        The detections; every per-detection array follows its rows.
    tau : float
        IoU threshold of a true positive.
    iou_op : {"ge", "gt"}
        ``"ge"``: eligible iff ``IoU >= min(tau, 1 - 1e-10)``; ``"gt"``: ``IoU > tau``.
    max_dets : int
        Cap on detections per (image, class) (COCO) or per image (LVIS).
    class_index : ndarray of shape (n,)
        Index of each detection's category in ``gt.category_ids``.
    evaluated : ndarray of shape (n,), bool
        Within the first ``max_dets`` of its (image, class) (LVIS: of its image, of a class
        verified on the image, and with an area above 0); the others take no part.
    tp, ignored : ndarray of shape (n,), bool
        True positive; matched to a crowd region or an ignored annotation, or (LVIS)
        unmatched in a class not exhaustively annotated on its image (neither TP nor FP).
    iou : ndarray of shape (n,)
        IoU of the matched box for a TP, 0 otherwise.
    npig : ndarray of shape (n_categories,)
        Number of regular (non-crowd, not ignored) annotations of each category.
    order : ndarray of shape (n_evaluated,), int64
        The evaluated detections (rows of ``dets``) in per-class order: by class, descending
        score, ascending image id, then file order (the toolbox's tie order).
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU or mask IoU.
    dataset : {"coco", "lvis"}, default="coco"
        The rule set the matching followed.
    """

    gt: GroundTruth
    dets: Detections
    tau: float
    iou_op: str
    max_dets: int
    class_index: np.ndarray
    evaluated: np.ndarray
    tp: np.ndarray
    ignored: np.ndarray
    iou: np.ndarray
    npig: np.ndarray
    order: np.ndarray
    iou_type: str = "bbox"
    dataset: str = "coco"

    @property
    def fp(self) -> np.ndarray:
        """Evaluated detections that are neither TP nor ignored."""
        return self.evaluated & ~self.tp & ~self.ignored

    @property
    def valid(self) -> np.ndarray:
        """TP or FP (evaluated and not ignored)."""
        return self.evaluated & ~self.ignored

    @property
    def n_categories(self) -> int:
        return self.gt.n_categories


def match(gt, dets, *, tau: float = 0.0, iou_op: str = "ge", max_dets: int | None = None,
          iou_type: str = "bbox", dataset: str = "auto") -> Matches:
    """Match detections to ground truth with COCO's greedy rule (see the module docstring).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The ground truth (see :func:`~calibkit.detection.load_gt`).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`; torchvision outputs go
        through :func:`~calibkit.detection.from_torchvision` first); every detection's
        image and category must be in ``gt``.
    tau : float in [0, 1), default=0.0
        IoU threshold of a TP. At ``tau=0`` with ``iou_op="ge"`` (the toolbox's default) a
        detection with no overlap can take a regular box ("theft").
    iou_op : {"ge", "gt"}, default="ge"
        ``"ge"``: eligible iff ``IoU >= min(tau, 1 - 1e-10)`` (pycocotools); ``"gt"``:
        ``IoU > tau``.
    max_dets : int or None, default=None
        Detections kept, highest scores first: per (image, class) for COCO (None: 100),
        per image for LVIS (None: 300).
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU of the segmentations (``pycocotools.mask.iou``).
    dataset : {"auto", "coco", "lvis"}, default="auto"
        COCO's rules, or LVIS's federated rules (see the module docstring); ``"auto"``
        takes LVIS's when the ground truth's images carry its label lists.

    Returns
    -------
    Matches
    """
    return match_many(gt, dets, [tau], iou_op=iou_op, max_dets=max_dets, iou_type=iou_type,
                      dataset=dataset)[0]


def match_many(gt, dets, taus, *, iou_op: str = "ge", max_dets: int | None = None,
               iou_type: str = "bbox", dataset: str = "auto") -> list[Matches]:
    """:func:`match` at several thresholds, sharing the candidate pairs and their IoUs.

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The ground truth (see :func:`~calibkit.detection.load_gt`).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`).
    taus : sequence of float in [0, 1)
        IoU thresholds of a TP, one :class:`Matches` each.
    iou_op : {"ge", "gt"}, default="ge"
        As in :func:`match`.
    max_dets : int or None, default=None
        As in :func:`match` (None: 100 per (image, class) for COCO, 300 per image for LVIS).
    iou_type : {"bbox", "segm"}, default="bbox"
        As in :func:`match`.
    dataset : {"auto", "coco", "lvis"}, default="auto"
        As in :func:`match`.

    Returns
    -------
    list of Matches
        One per threshold, in the order of ``taus``; each equals :func:`match` at that
        threshold.
    """
    iou_type = check_iou_type(iou_type, "match")
    gt = load_gt(gt, iou_type=iou_type)
    dets = load_dets(dets, iou_type=iou_type, gt=gt)
    taus = [_check_tau(t) for t in taus]
    _check_iou_op(iou_op)
    dataset, max_dets = _resolve(gt, dataset, max_dets, "match")
    prep = _prepare(gt, dets, max_dets, iou_type=iou_type, dataset=dataset)
    tp, ignored, iou = _greedy(prep, np.array(taus), iou_op)
    n = len(dets)
    evaluated = np.zeros(n, bool)
    evaluated[prep.det] = True
    order = _class_order(prep)
    out = []
    for t, tau in enumerate(taus):
        out_tp = np.zeros(n, bool)
        out_ig = np.zeros(n, bool)
        out_iou = np.zeros(n)
        out_tp[prep.det] = tp[t]
        out_ig[prep.det] = ignored[t]
        out_iou[prep.det] = iou[t]
        out.append(Matches(gt, dets, tau, iou_op, max_dets, prep.cls_all, evaluated, out_tp,
                           out_ig, out_iou, prep.npig, order, iou_type, dataset))
    return out


def box_iou(det_boxes, gt_boxes, crowd=None) -> np.ndarray:
    """IoU matrix of ``[x, y, w, h]`` boxes, pycocotools' formula (intersection over the
    detection's area for crowd boxes).

    Parameters
    ----------
    det_boxes : array-like of shape (n_dets, 4)
        Detection boxes ``[x, y, w, h]``.
    gt_boxes : array-like of shape (n_gt, 4)
        Ground-truth boxes ``[x, y, w, h]``.
    crowd : array-like of bool of shape (n_gt,) or None, default=None
        Crowd flag of each ground-truth box; None: no box is a crowd region.

    Returns
    -------
    ndarray of shape (n_dets, n_gt)
        float64; 0 for boxes that do not overlap (or have a zero union).
    """
    d = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    g = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    c = np.zeros(len(g), bool) if crowd is None else np.asarray(crowd, bool)
    return box_iou_pycocotools(d[:, None, :], g[None, :, :], c[None, :])


def match_netcal(gt, dets, *, tau: float = 0.5, iou_type: str = "bbox") -> np.ndarray:
    """netcal's example matching: a detection is matched iff the ground-truth box of largest
    IoU among *all* boxes of its image (any class, crowd boxes as regular ones, no
    exclusivity) has IoU >= ``tau`` and the detection's category. On equal IoU the first box
    in file order wins (``argmax``).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The ground truth (see :func:`~calibkit.detection.load_gt`).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`).
    tau : float in [0, 1), default=0.5
        IoU threshold of a match (named as in :func:`match`).
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU of the segmentations.

    Returns
    -------
    ndarray of bool of shape (n_dets,)
    """
    tau = _check_tau(tau)
    iou_type = check_iou_type(iou_type, "match_netcal")
    gt = load_gt(gt, iou_type=iou_type)
    dets = load_dets(dets, iou_type=iou_type, gt=gt)
    n = len(dets)
    if n == 0:
        return np.zeros(0, bool)
    img_d = _index_in(dets.image_id, gt.image_ids, "image_id")
    img_g = np.searchsorted(gt.image_ids, gt.ann_image_id)
    g_order = np.argsort(img_g, kind="stable")
    g_img = img_g[g_order]
    lo = np.searchsorted(g_img, img_d, "left")
    hi = np.searchsorted(g_img, img_d, "right")
    det_rep, gt_rep = _expand(np.arange(n), lo, hi)
    gi = g_order[gt_rep]
    iou = IoUSource.of(gt, dets, iou_type).pairs(det_rep, gi, np.zeros(len(gi), bool))
    best_iou = np.full(n, -1.0)
    np.maximum.at(best_iou, det_rep, iou)
    is_best = iou == best_iou[det_rep]
    first = np.full(n, -1, np.int64)
    # pairs are in det order, then file order of the boxes: the first best pair per det
    pos = np.flatnonzero(is_best)
    dpos = det_rep[pos]
    keep = np.ones(len(pos), bool)
    keep[1:] = dpos[1:] != dpos[:-1]
    first[dpos[keep]] = gi[pos[keep]]
    has = first >= 0
    out = np.zeros(n, bool)
    out[has] = (best_iou[has] >= tau) & (
        gt.ann_category_id[first[has]] == dets.category_id[has]
    )
    return out


# --------------------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prep:
    """Detections and ground truth sorted into (image, class) groups.

    Evaluated detections (the first ``max_dets`` of each group; LVIS: of each image, in
    verified classes) are ordered by (image, class, descending score, file order); group
    ``k`` holds positions ``d_lo[k]:d_hi[k]`` of them and the annotations ``g_lo[k]:g_hi[k]``
    (ordered by image, class, file order). ``pos`` lists the evaluated positions by (class,
    image, rank), class ``c`` owning ``pos[cls_start[c]:cls_start[c + 1]]``.
    """

    det: np.ndarray  # indices (into dets) of the evaluated detections, sorted
    rank: np.ndarray  # rank within the (image, class) group
    box: np.ndarray  # (n, 4) boxes of every detection (rows ``det`` are evaluated)
    darea: np.ndarray  # (n,) area of every detection (what area ranges test)
    score: np.ndarray
    cls_all: np.ndarray  # class index of every detection
    d_lo: np.ndarray
    d_hi: np.ndarray
    grp_cls: np.ndarray
    grp_nel: np.ndarray  # groups whose unmatched detections are ignored (LVIS)
    pos: np.ndarray
    cls_start: np.ndarray
    g_lo: np.ndarray
    g_hi: np.ndarray
    g_idx: np.ndarray  # annotation rows in (image, class, file) order
    gbox: np.ndarray  # ground truth sorted by (image, class, file order)
    gcrowd: np.ndarray  # crowd regions (absorb any number of detections)
    gign: np.ndarray  # ignore regions (crowd regions; LVIS's ignore flag)
    garea: np.ndarray
    gcls: np.ndarray
    npig: np.ndarray  # regular annotations per class
    pre_iou: np.ndarray  # precomputed IoU blocks (mask IoU), empty for boxes
    pre_off: np.ndarray


def _prepare(gt: GroundTruth, dets: Detections, max_dets: int, *, iou_type: str = "bbox",
             dataset: str = "coco") -> _Prep:
    from calibkit.detection import _kernels

    lvis = dataset == "lvis"
    n_cls = gt.n_categories
    img_d = _index_in(dets.image_id, gt.image_ids, "image_id")
    cls_d = _index_in(dets.category_id, gt.category_ids, "category_id")
    order, rank, _, irank = _kernels.sort_dets(img_d, cls_d, dets.score, gt.n_images)
    # annotations taking part, by (image, class, file order)
    rows = _annotation_rows(gt, dataset)
    img_g = np.searchsorted(gt.image_ids, gt.ann_image_id[rows])
    cls_g = np.searchsorted(gt.category_ids, gt.ann_category_id[rows])
    key_g = img_g * n_cls + cls_g
    g_order = np.argsort(key_g, kind="stable")
    key_sorted = key_g[g_order]
    g_idx = rows[g_order]
    if lvis:
        # LVISResults keeps the max_dets best of each image (all classes); LVISEval then
        # drops area-0 detections and classes not verified on the image
        fed = gt.federated
        verified = np.union1d(key_sorted, _pair_keys(gt, fed.neg))
        key_d = img_d[order] * n_cls + cls_d[order]
        area = dets.area[order]
        keep = (irank < max_dets) & (area > 0) & (area < np.inf) & np.isin(key_d, verified)
        det = order[keep]
        rank = _group_rank(key_d[keep])
    else:
        keep = rank < max_dets
        det = order[keep] if not keep.all() else order
        rank = rank[keep] if not keep.all() else rank
    del order, keep, irank
    d_lo = np.flatnonzero(rank == 0)
    d_hi = np.append(d_lo[1:], len(det)).astype(np.int64)
    first = det[d_lo]
    grp_img = img_d[first]
    grp_cls = cls_d[first]
    grp_key = grp_img * n_cls + grp_cls
    g_lo = np.searchsorted(key_sorted, grp_key, "left")
    g_hi = np.searchsorted(key_sorted, grp_key, "right")
    grp_nel = (np.isin(grp_key, _pair_keys(gt, gt.federated.not_exhaustive)) if lvis
               else np.zeros(len(grp_key), bool))
    grp_order = np.argsort(_small_int(grp_cls, n_cls), kind="stable")
    sizes = d_hi - d_lo
    pos = _kernels.concat_ranges(d_lo[grp_order], d_hi[grp_order])
    cls_start = np.zeros(n_cls + 1, np.int64)
    cls_start[1:] = np.cumsum(
        np.bincount(grp_cls, weights=sizes, minlength=n_cls).astype(np.int64))
    regular = _regular(gt, dataset)
    npig = np.bincount(np.searchsorted(gt.category_ids, gt.ann_category_id[regular]),
                       minlength=n_cls)
    gcrowd = np.zeros(len(g_idx), bool) if lvis else gt.ann_crowd[g_idx]
    gign = gt.ignore[g_idx] if lvis else gcrowd
    pre_iou, pre_off = IoUSource.of(gt, dets, iou_type).group_blocks(
        det, d_lo, d_hi, g_idx, g_lo, g_hi, gcrowd)
    return _Prep(
        det=det, rank=rank, box=np.ascontiguousarray(dets.box),
        darea=np.ascontiguousarray(dets.area, dtype=np.float64), score=dets.score[det],
        cls_all=cls_d, d_lo=d_lo, d_hi=d_hi, grp_cls=grp_cls, grp_nel=grp_nel, pos=pos,
        cls_start=cls_start, g_lo=g_lo, g_hi=g_hi, g_idx=g_idx,
        gbox=np.ascontiguousarray(gt.ann_box[g_idx]), gcrowd=gcrowd, gign=gign,
        garea=gt.area[g_idx], gcls=cls_g[g_order], npig=npig, pre_iou=pre_iou,
        pre_off=pre_off,
    )


def _thresholds(taus, iou_op: str) -> np.ndarray:
    """Per-threshold bound of the greedy test: ``IoU >= min(tau, 1 - 1e-10)`` ("ge", as
    pycocotools) or ``IoU > tau`` ("gt")."""
    taus = np.asarray(taus, np.float64)
    return np.minimum(taus, 1 - 1e-10) if iou_op == "ge" else taus


def _greedy(prep: _Prep, taus: np.ndarray, iou_op: str):
    """Greedy matching at every threshold in ``taus``; arrays of shape (n_taus, n_eval)
    (TP, ignored, matched IoU of a TP), in the order of ``prep.det``."""
    from calibkit.detection import _kernels

    n_t, n = len(taus), len(prep.det)
    tp = np.zeros((n_t, n), bool)
    ignored = np.zeros((n_t, n), bool)
    iou = np.zeros((n_t, n))
    if n:
        _kernels.match_groups(prep.box, prep.det, prep.d_lo, prep.d_hi, prep.gbox, prep.gcrowd,
                              prep.gign, prep.g_lo, prep.g_hi, prep.pre_iou, prep.pre_off,
                              prep.grp_nel, _thresholds(taus, iou_op), iou_op == "gt", tp,
                              ignored, iou)
    return tp, ignored, iou


def _group_codes(prep: _Prep, thrs: np.ndarray, area_ranges: np.ndarray, codes: np.ndarray):
    """COCO (or LVIS) codes of ``prep``'s evaluated detections at the IoU thresholds
    ``thrs`` and the area ranges (shape (A, 2)), written into ``codes`` (n_eval, T): two
    bits per range (TP, ignored), see :func:`calibkit.detection._kernels.group_codes`."""
    from calibkit.detection import _kernels
    from calibkit.detection.cocoeval import _bits

    if len(prep.det):
        _kernels.group_codes(prep.box, prep.darea, prep.det, prep.d_lo, prep.d_hi, prep.gbox,
                             prep.gcrowd, prep.gign, prep.garea, prep.g_lo, prep.g_hi,
                             prep.pre_iou, prep.pre_off, prep.grp_nel,
                             _thresholds(thrs, "ge"), False,
                             np.ascontiguousarray(area_ranges[:, 0], dtype=np.float64),
                             np.ascontiguousarray(area_ranges[:, 1], dtype=np.float64),
                             *_bits(len(area_ranges), codes.dtype), codes)
    return codes


def _annotation_rows(gt: GroundTruth, dataset: str) -> np.ndarray:
    """The annotations that take part: every one for COCO; for LVIS those with
    ``0 < area < inf`` (``LVIS.get_ann_ids``' default area filter)."""
    if dataset == "lvis":
        a = gt.area
        return np.flatnonzero((a > 0) & (a < np.inf))
    return np.arange(len(gt.ann_image_id))


def _regular(gt: GroundTruth, dataset: str) -> np.ndarray:
    """Boolean mask of the regular annotations (what ``npig`` counts): not crowd (COCO); not
    ignored and taking part (LVIS)."""
    if dataset == "lvis":
        out = np.zeros(len(gt.ann_image_id), bool)
        out[_annotation_rows(gt, dataset)] = True
        return out & ~gt.ignore
    return ~gt.ann_crowd


def _pair_keys(gt: GroundTruth, pairs: np.ndarray) -> np.ndarray:
    """``image index * n_categories + category index`` of (image_id, category_id) pairs
    (pairs of unknown images are dropped)."""
    if not len(pairs):
        return np.zeros(0, np.int64)
    img = np.searchsorted(gt.image_ids, pairs[:, 0])
    img = np.clip(img, 0, max(gt.n_images - 1, 0))
    ok = gt.image_ids[img] == pairs[:, 0] if gt.n_images else np.zeros(len(pairs), bool)
    cls = np.searchsorted(gt.category_ids, pairs[ok, 1])
    return np.unique(img[ok] * gt.n_categories + cls)


def _group_rank(keys: np.ndarray) -> np.ndarray:
    """Rank of each entry within its run of equal ``keys`` (keys sorted by group)."""
    n = len(keys)
    if not n:
        return np.zeros(0, np.int64)
    start = np.ones(n, bool)
    start[1:] = keys[1:] != keys[:-1]
    first = np.flatnonzero(start)
    return np.arange(n, dtype=np.int64) - np.repeat(first, np.diff(np.append(first, n)))


def _resolve(gt: GroundTruth, dataset, max_dets, owner: str):
    """The rule set (``"coco"`` or ``"lvis"``) and the detection cap for ``gt``."""
    dataset = check_param(dataset, "dataset", [Options(*DATASETS)], owner=owner)
    if dataset == "auto":
        dataset = "lvis" if gt.is_lvis else "coco"
    elif dataset == "lvis" and not gt.is_lvis:
        raise ValueError("dataset='lvis' needs LVIS ground truth: every image with its "
                         "neg_category_ids and not_exhaustive_category_ids lists.")
    max_dets = _check_max_dets(max_dets)
    return dataset, DEFAULT_MAX_DETS[dataset] if max_dets is None else max_dets


def _expand(items: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Ragged expansion: (items[i], j) for every j in [lo[i], hi[i])."""
    counts = hi - lo
    total = int(counts.sum())
    rep = np.repeat(items, counts)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return rep, np.repeat(lo, counts) + (np.arange(total) - offsets)


def _class_order(prep: _Prep) -> np.ndarray:
    """Evaluated detections (indices into dets) by class, descending score, image, file."""
    from calibkit.detection import _kernels

    if len(prep.det) == 0:
        return prep.det
    return prep.det[_kernels.class_order(prep.score, prep.pos, prep.cls_start)]


def _small_int(x: np.ndarray, bound: int) -> np.ndarray:
    # small ints take numpy's O(n) radix sort
    return x.astype(np.int16) if bound < 2**15 else x


def _index_in(values: np.ndarray, universe: np.ndarray, name: str) -> np.ndarray:
    idx = np.searchsorted(universe, values)
    idx = np.clip(idx, 0, max(len(universe) - 1, 0))
    if len(universe) == 0:
        bad = np.unique(values)[:5]
    else:
        bad = np.unique(values[universe[idx] != values])[:5]
    if len(bad) and len(values):
        where = "images" if name == "image_id" else "categories"
        raise ValueError(
            f"detections use {name}(s) {bad.tolist()} that are not among the ground truth's "
            f"{where}; add them to the ground-truth json or drop those detections."
        )
    return idx.astype(np.int64)


def _check_tau(tau) -> float:
    return float(check_param(tau, "tau", [Interval("real", 0, 1, closed="left")]))


def _check_iou_op(iou_op) -> str:
    return check_param(iou_op, "iou_op", [Options(*IOU_OPS)])


def _check_max_dets(max_dets) -> int | None:
    value = check_param(max_dets, "max_dets", [NONE, Interval("integer", 1, None)])
    return None if value is None else int(value)
