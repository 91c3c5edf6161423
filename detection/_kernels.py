"""Compiled kernels of COCO matching and accumulation, run on every core.

Everything here works on prepared, sorted columns (see :mod:`calibkit.detection.matching`)
and reproduces pycocotools' ``COCOeval.evaluateImg`` / ``accumulate`` operation by operation:

* :func:`sort_dets`: detections ordered by (image, class, descending score, file order), the
  rank of each inside its (image, class) group;
* :func:`match_groups`: the greedy matching of every (image, class) group at several IoU
  thresholds (one ignore rule, per-detection outputs), parallel over groups;
* :func:`group_codes`: matching at every (area range, IoU threshold), two bits per
  detection and range (TP, ignored), parallel over groups;
* :func:`accumulate_classes`: COCOeval's per-class precision / recall accumulation from
  those codes (``precision[T, R, K, A, M]``, ``recall[T, K, A, M]``), parallel over classes;
* :func:`class_order`: the evaluated detections in per-class order (class, descending
  score, image, file order);
* :func:`json_split`: the exact item boundaries of a json list (string-aware scan).

The loops are C (Cython, ``calibkit.detection._ckernels``, compiled when calibkit is
installed): each works on a range of groups without the GIL, and
:func:`calibkit._chunks.run_ranges` spreads the ranges over a pool of threads (balanced by
the work of each group). The greedy step (``_pick``) sees one row of an IoU block and the
flags of the group's ground truth. Every kernel takes the IoU blocks either computed inline
from the boxes (pycocotools' ``bbIou``) or precomputed by :mod:`calibkit.detection.iou` (mask
IoU of RLEs: ``pre_iou``, group ``k``'s block row-major at ``pre_off[k]``; an empty
``pre_off`` means boxes), and per group a flag that ignores its unmatched detections
(LVIS's ``not_exhaustive_category_ids``).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from calibkit._chunks import run_ranges
from calibkit.detection import _ckernels

__all__ = ["accumulate_classes", "class_order", "concat_ranges", "group_codes", "json_split",
           "match_groups", "sort_dets"]


def _i64(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.int64)


def _f64(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _u8(x) -> np.ndarray:
    """Booleans as the bytes the kernels read and write (a view of a bool array)."""
    x = np.ascontiguousarray(x)
    return x.view(np.uint8) if x.dtype == np.bool_ else np.ascontiguousarray(x, np.uint8)


def _group_work(d_lo, d_hi, g_lo, g_hi) -> np.ndarray:
    nd = d_hi - d_lo
    return nd * (g_hi - g_lo) + nd + 1


def sort_dets(img, cls, score, n_images):
    """Order of the detections by (image, class, -score, file order) and group ranks.

    Returns ``order`` (all detections), ``rank`` (rank of ``order[i]`` in its (image,
    class) group), ``img_start`` (CSR bounds of each image in ``order``) and ``irank`` (rank
    of ``order[i]`` among all detections of its image by descending score, ties in file
    order: LVIS's per-image cap).
    """
    img, cls, score = _i64(img), _i64(cls), _f64(score)
    order, img_start = _ckernels.image_order(img, int(n_images))
    n = len(img)
    rank = np.empty(n, np.int64)
    irank = np.zeros(n, np.int64)
    sizes = np.diff(img_start)
    run_ranges(partial(_ckernels.sort_images, cls, score, img_start, order, rank, irank),
               sizes * np.log2(sizes + 2) + 1)
    return order, rank, img_start, irank


def concat_ranges(lo, hi):
    """``concatenate([arange(lo[k], hi[k]) for k])`` without temporaries."""
    return _ckernels.concat_ranges(_i64(lo), _i64(hi))


def match_groups(dbox, det, d_lo, d_hi, gbox, gcrowd, gig, g_lo, g_hi, pre_iou, pre_off,
                 grp_nel, thrs, strict, tp, ig, iou):
    """Greedy matching of every group at each threshold of ``thrs``.

    ``tp``, ``ig`` (bool) and ``iou`` (float) of shape (n_thresholds, n_evaluated) are
    filled in place for the detections of each group (``d_lo:d_hi``, in score order),
    against the annotations ``g_lo:g_hi`` (file order; ``gig`` ignored, ``gcrowd`` crowd
    regions that absorb any number of detections). A detection that takes an ignored
    annotation is ignored; one that takes a regular one is a TP with that IoU; the rest are
    FP, or ignored in a group with ``grp_nel`` set.
    """
    d_lo, d_hi, g_lo, g_hi = _i64(d_lo), _i64(d_hi), _i64(g_lo), _i64(g_hi)
    for out in (tp, ig, iou):
        if not out.flags.c_contiguous:
            raise ValueError("match_groups writes into C-contiguous arrays")
    kernel = partial(_ckernels.match_groups, _f64(dbox), _i64(det), d_lo, d_hi, _f64(gbox),
                     _u8(gcrowd), _u8(gig), g_lo, g_hi, _f64(pre_iou), _i64(pre_off),
                     _u8(grp_nel), _f64(thrs), bool(strict), tp.view(np.uint8),
                     ig.view(np.uint8), iou)
    run_ranges(kernel, _group_work(d_lo, d_hi, g_lo, g_hi) * len(thrs))


def class_order(score, pos, cls_start):
    """Per-class order of the evaluated detections: ``pos`` lists them by (class, image,
    rank), class ``c`` owning ``pos[cls_start[c]:cls_start[c + 1]]``; a stable sort on
    descending score inside each class gives (class, -score, image, file order)."""
    pos, cls_start = _i64(pos), _i64(cls_start)
    out = np.empty(len(pos), np.int64)
    sizes = np.diff(cls_start)
    run_ranges(partial(_ckernels.class_order, _f64(score), pos, cls_start, out),
               sizes * np.log2(sizes + 2) + 1)
    return out


def group_codes(dbox, darea, det, d_lo, d_hi, gbox, gcrowd, gign, garea, g_lo, g_hi, pre_iou,
                pre_off, grp_nel, thrs, strict, area_lo, area_hi, tp_bits, ig_bits, codes):
    """COCOeval's (and LVISEval's) ``evaluateImg`` for every group, area range and threshold.

    ``codes[i, t]`` (unsigned ints of 8 or 16 bits, filled in place) holds two bits per area
    range ``a``: ``tp_bits[a]`` = the detection took a regular annotation (a TP),
    ``ig_bits[a]`` = it is ignored (took an ignored annotation, or is unmatched with an area
    ``darea`` outside the range or in a group with ``grp_nel`` set). An annotation is
    ignored in range ``a`` if ``gign`` flags it (a crowd region, or LVIS's ``ignore``) or its
    ``area`` lies outside ``[area_lo[a], area_hi[a]]``; ``gcrowd`` annotations absorb any
    number of detections. Ranges whose ignore pattern in a group equals an earlier range's
    share its matching.
    """
    if not codes.flags.c_contiguous:
        raise ValueError("group_codes writes into a C-contiguous array")
    d_lo, d_hi, g_lo, g_hi = _i64(d_lo), _i64(d_hi), _i64(g_lo), _i64(g_hi)
    bits = [np.ascontiguousarray(b, dtype=codes.dtype) for b in (tp_bits, ig_bits)]
    kernel = partial(_ckernels.group_codes, _f64(dbox), _f64(darea), _i64(det), d_lo, d_hi,
                     _f64(gbox), _u8(gcrowd), _u8(gign), _f64(garea), g_lo, g_hi,
                     _f64(pre_iou), _i64(pre_off), _u8(grp_nel), _f64(thrs), bool(strict),
                     _f64(area_lo), _f64(area_hi), *bits, codes)
    run_ranges(kernel, _group_work(d_lo, d_hi, g_lo, g_hi) * len(thrs) * len(area_lo))


def accumulate_classes(codes, score, rank, pos, cls_start, cls_seq, max_dets, rec_thrs,
                       npig, tp_bits, ig_bits, precision, recall):
    """COCOeval's ``accumulate`` per class from :func:`group_codes`' codes.

    Class ``c`` owns the detections ``pos[cls_start[c]:cls_start[c + 1]]`` listed by
    (image, rank); a stable sort on descending score gives pycocotools' order (score, image,
    rank). Per (area a, ``max_dets`` m, threshold t), over the detections with rank < m:
    cumulative TP / FP, ``rc = tp / npig``, ``pr = tp / (fp + tp + eps)``, precision made
    monotone from the right and read at the recall thresholds (first ``rc >= r``, 0 beyond);
    ``recall`` the final ``rc``. Ignored detections are skipped: they repeat the previous
    values, which changes none of the sampled numbers. Classes with ``npig == 0`` in a range
    keep -1, as in pycocotools. ``cls_seq`` is the processing order (largest first, so that
    the threads finish together).
    """
    for out in (precision, recall):
        if not out.flags.c_contiguous:
            raise ValueError("accumulate_classes writes into C-contiguous arrays")
    cls_start, cls_seq = _i64(cls_start), _i64(cls_seq)
    bits = [np.ascontiguousarray(b, dtype=codes.dtype) for b in (tp_bits, ig_bits)]
    sizes = np.diff(cls_start)[cls_seq]
    kernel = partial(_ckernels.accumulate_classes, np.ascontiguousarray(codes), _f64(score),
                     _i64(rank), _i64(pos), cls_start, cls_seq, _i64(max_dets), _f64(rec_thrs),
                     _i64(npig), *bits, precision, recall)
    run_ranges(kernel, (sizes * np.log2(sizes + 2) + sizes * codes.shape[1] * len(max_dets)
                        + 1))


def json_split(buf, start, depth, in_str, esc):
    """Scan json bytes ``buf[start:]`` of a top-level list, carrying the scanner state
    (nesting ``depth``, inside a string, after a backslash) across blocks.

    Returns the position of the last comma between top-level items (-1 if none), the
    position of the list's closing bracket (-1 if not reached) and the new state. Strings
    are skipped with their escapes, so brackets and commas inside them do not count.
    """
    return _ckernels.json_split(buf, int(start), int(depth), bool(in_str), bool(esc))
