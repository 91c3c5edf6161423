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

The greedy loop is sequential within an (image, class) group only; the compiled kernels of
:mod:`calibkit.detection._kernels` run the groups in parallel on all cores (numba threads).
Preparation (:func:`_prepare`) sorts the detections by (image, class, descending score,
file order) and the ground truth by (image, class, file order) once; matching at several
thresholds (:func:`match_many`) shares it and the IoU blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibkit._validation import Interval, Options, check_param
from calibkit.detection.io import Detections, GroundTruth, load_dets, load_gt

__all__ = ["Matches", "match", "match_many", "match_netcal", "box_iou"]

IOU_OPS = ("ge", "gt")


@dataclass(frozen=True, eq=False)
class Matches:
    """Detections matched to ground truth at one IoU threshold.

    Attributes
    ----------
    gt : GroundTruth
    dets : Detections
    tau : float
        IoU threshold of a true positive.
    iou_op : {"ge", "gt"}
    max_dets : int
        Cap on detections per (image, class).
    class_index : ndarray of shape (n,)
        Index of each detection's category in ``gt.category_ids``.
    evaluated : ndarray of shape (n,), bool
        Within the first ``max_dets`` of its (image, class); the others take no part.
    tp, ignored : ndarray of shape (n,), bool
        True positive; matched to a crowd region (neither TP nor FP).
    iou : ndarray of shape (n,)
        IoU of the matched box for a TP, 0 otherwise.
    npig : ndarray of shape (n_categories,)
        Number of regular (non-crowd) ground-truth boxes of each category.
    order : ndarray
        The evaluated detections in per-class order: by class, descending score, ascending
        image id, then file order (the toolbox's tie order).
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


def match(gt, dets, *, tau: float = 0.0, iou_op: str = "ge", max_dets: int = 100) -> Matches:
    """Match detections to ground truth with COCO's greedy rule (see the module docstring).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
    dets : path, COCO results list, Detections or torchvision outputs (see ``load_dets``)
    tau : float in [0, 1), default 0.0
        IoU threshold of a TP. At ``tau=0`` with ``iou_op="ge"`` (the toolbox's default) a
        detection with no overlap can take a regular box ("theft").
    iou_op : {"ge", "gt"}, default "ge"
        ``"ge"``: eligible iff ``IoU >= min(tau, 1 - 1e-10)`` (pycocotools); ``"gt"``:
        ``IoU > tau``.
    max_dets : int, default 100
        Detections kept per (image, class), highest scores first.

    Returns
    -------
    Matches
    """
    return match_many(gt, dets, [tau], iou_op=iou_op, max_dets=max_dets)[0]


def match_many(gt, dets, taus, *, iou_op: str = "ge", max_dets: int = 100) -> list[Matches]:
    """:func:`match` at several thresholds, sharing the candidate pairs and their IoUs."""
    gt = load_gt(gt)
    dets = load_dets(dets)
    taus = [_check_tau(t) for t in taus]
    _check_iou_op(iou_op)
    max_dets = _check_max_dets(max_dets)
    prep = _prepare(gt, dets, max_dets)
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
                           out_ig, out_iou, prep.npig, order))
    return out


def box_iou(det_boxes, gt_boxes, crowd=None) -> np.ndarray:
    """IoU matrix of shape (n_dets, n_gt) of ``[x, y, w, h]`` boxes, pycocotools' formula
    (intersection over the detection's area for crowd boxes)."""
    d = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    g = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    c = np.zeros(len(g), bool) if crowd is None else np.asarray(crowd, bool)
    return _iou(d[:, None, :], g[None, :, :], c[None, :])


def match_netcal(gt, dets, *, tau: float = 0.5) -> np.ndarray:
    """netcal's example matching: a detection is matched iff the ground-truth box of largest
    IoU among *all* boxes of its image (any class, crowd boxes as regular ones, no
    exclusivity) has IoU >= ``tau`` and the detection's category. On equal IoU the first box
    in file order wins (``argmax``).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
    dets : path, COCO results list, Detections or torchvision outputs
    tau : float in [0, 1), default 0.5
        IoU threshold of a match (named as in :func:`match`).

    Returns
    -------
    ndarray of bool of shape (n_dets,)
    """
    tau = _check_tau(tau)
    gt = load_gt(gt)
    dets = load_dets(dets)
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
    iou = _iou(dets.box[det_rep], gt.ann_box[gi], np.zeros(len(gi), bool))
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

    Evaluated detections (the first ``max_dets`` of each group) are ordered by (image,
    class, descending score, file order); group ``k`` holds positions ``d_lo[k]:d_hi[k]``
    of them and the ground-truth boxes ``g_lo[k]:g_hi[k]`` (ordered by image, class, file
    order). ``pos`` lists the evaluated positions by (class, image, rank), class ``c``
    owning ``pos[cls_start[c]:cls_start[c + 1]]``.
    """

    det: np.ndarray  # indices (into dets) of the evaluated detections, sorted
    rank: np.ndarray  # rank within the (image, class) group
    box: np.ndarray  # (n, 4) boxes of every detection (rows ``det`` are evaluated)
    score: np.ndarray
    cls_all: np.ndarray  # class index of every detection
    d_lo: np.ndarray
    d_hi: np.ndarray
    grp_cls: np.ndarray
    pos: np.ndarray
    cls_start: np.ndarray
    g_lo: np.ndarray
    g_hi: np.ndarray
    gbox: np.ndarray  # ground truth sorted by (image, class, file order)
    gcrowd: np.ndarray
    garea: np.ndarray
    gcls: np.ndarray
    npig: np.ndarray  # regular boxes per class


def _prepare(gt: GroundTruth, dets: Detections, max_dets: int) -> _Prep:
    from calibkit.detection import _kernels

    n_cls = gt.n_categories
    img_d = _index_in(dets.image_id, gt.image_ids, "image_id")
    cls_d = _index_in(dets.category_id, gt.category_ids, "category_id")
    order, rank, _ = _kernels.sort_dets(img_d, cls_d, dets.score, gt.n_images, max_dets)
    keep = rank < max_dets
    det = order[keep] if not keep.all() else order
    rank = rank[keep] if not keep.all() else rank
    del order, keep
    d_lo = np.flatnonzero(rank == 0)
    d_hi = np.append(d_lo[1:], len(det)).astype(np.int64)
    first = det[d_lo]
    grp_img = img_d[first]
    grp_cls = cls_d[first]
    # ground truth by (image, class, file order)
    img_g = np.searchsorted(gt.image_ids, gt.ann_image_id)
    cls_g = np.searchsorted(gt.category_ids, gt.ann_category_id)
    key_g = img_g * n_cls + cls_g
    g_order = np.argsort(key_g, kind="stable")
    key_sorted = key_g[g_order]
    grp_key = grp_img * n_cls + grp_cls
    g_lo = np.searchsorted(key_sorted, grp_key, "left")
    g_hi = np.searchsorted(key_sorted, grp_key, "right")
    grp_order = np.argsort(_small_int(grp_cls, n_cls), kind="stable")
    sizes = d_hi - d_lo
    pos = _kernels.concat_ranges(d_lo[grp_order], d_hi[grp_order])
    cls_start = np.zeros(n_cls + 1, np.int64)
    cls_start[1:] = np.cumsum(
        np.bincount(grp_cls, weights=sizes, minlength=n_cls).astype(np.int64))
    crowd = gt.ann_crowd
    npig = np.bincount(cls_g[~crowd], minlength=n_cls)
    return _Prep(
        det=det, rank=rank, box=np.ascontiguousarray(dets.box), score=dets.score[det],
        cls_all=cls_d, d_lo=d_lo, d_hi=d_hi, grp_cls=grp_cls, pos=pos, cls_start=cls_start,
        g_lo=g_lo, g_hi=g_hi,
        gbox=np.ascontiguousarray(gt.ann_box[g_order]), gcrowd=crowd[g_order],
        garea=gt.area[g_order], gcls=cls_g[g_order], npig=npig,
    )


def _thresholds(taus, iou_op: str) -> np.ndarray:
    """Per-threshold bound of the greedy test: ``IoU >= min(tau, 1 - 1e-10)`` ("ge", as
    pycocotools) or ``IoU > tau`` ("gt")."""
    taus = np.asarray(taus, np.float64)
    return np.minimum(taus, 1 - 1e-10) if iou_op == "ge" else taus


def _greedy(prep: _Prep, taus: np.ndarray, iou_op: str):
    """Greedy matching at every threshold in ``taus``; arrays of shape (n_taus, n_eval)
    (TP, crowd-ignored, matched IoU of a TP), in the order of ``prep.det``."""
    from calibkit.detection import _kernels

    n_t, n = len(taus), len(prep.det)
    tp = np.zeros((n_t, n), bool)
    ignored = np.zeros((n_t, n), bool)
    iou = np.zeros((n_t, n))
    if n:
        _kernels.match_groups(prep.box, prep.det, prep.d_lo, prep.d_hi, prep.gbox, prep.gcrowd,
                              prep.gcrowd, prep.g_lo, prep.g_hi, _thresholds(taus, iou_op),
                              iou_op == "gt", tp, ignored, iou)
    return tp, ignored, iou


def _iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou``, operation by operation, broadcast over the leading axes."""
    dx, dy, dw, dh = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    gx, gy, gw, gh = g[..., 0], g[..., 1], g[..., 2], g[..., 3]
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(crowd, da, da + gw * gh - inter)
    ok = (w > 0) & (h > 0)
    out = np.zeros(np.broadcast_shapes(w.shape, union.shape))
    np.divide(inter, union, out=out, where=ok & (union != 0))
    return out


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


def _check_max_dets(max_dets) -> int:
    return int(check_param(max_dets, "max_dets", [Interval("integer", 1, None)]))
