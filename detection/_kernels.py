"""Compiled (numba) kernels of COCO matching and accumulation.

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

The greedy step (:func:`_pick`) sees one row of an IoU block and the flags of the group's
ground truth. Every kernel takes the IoU blocks either computed inline from the boxes
(pycocotools' ``bbIou``) or precomputed by :mod:`calibkit.detection.iou` (mask IoU of RLEs:
``pre_iou``, group ``k``'s block row-major at ``pre_off[k]``; an empty ``pre_off`` means
boxes), and per group a flag that ignores its unmatched detections (LVIS's
``not_exhaustive_category_ids``). Kernels are compiled on first use and cached on disk
(``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

_JIT = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def _bbox_iou_block(dbox, det, a, nd, gbox, gcrowd, ga, ng, out):
    """pycocotools' ``bbIou`` (C code) for detections ``det[a:a+nd]`` (rows of ``dbox``)
    and boxes ``ga:ga+ng``."""
    for g in range(ng):
        gx = gbox[ga + g, 0]
        gy = gbox[ga + g, 1]
        gw = gbox[ga + g, 2]
        gh = gbox[ga + g, 3]
        garea = gw * gh
        crowd = gcrowd[ga + g]
        for d in range(nd):
            dx = dbox[det[a + d], 0]
            dy = dbox[det[a + d], 1]
            dw = dbox[det[a + d], 2]
            dh = dbox[det[a + d], 3]
            darea = dw * dh
            out[d, g] = 0.0
            w = min(dw + dx, gw + gx) - max(dx, gx)
            if w <= 0:
                continue
            h = min(dh + dy, gh + gy) - max(dy, gy)
            if h <= 0:
                continue
            inter = w * h
            if crowd:
                u = darea
            else:
                u = darea + garea - inter
            if u != 0:
                out[d, g] = inter / u


@numba.njit(inline="always", **_JIT)
def _fill_block(k, dbox, det, a, nd, gbox, gcrowd, ga, ng, pre_iou, pre_off, out):
    """The IoU block of group ``k``: precomputed (``pre_off`` non-empty) or box IoU."""
    if len(pre_off) > 0:
        o = pre_off[k]
        for d in range(nd):
            for g in range(ng):
                out[d, g] = pre_iou[o + d * ng + g]
    else:
        _bbox_iou_block(dbox, det, a, nd, gbox, gcrowd, ga, ng, out)


@numba.njit(inline="always", **_JIT)
def _pick(row, gig, gcrowd, ng, matched, thr, strict):
    """Index (in the group) of the box a detection takes, or -1; ``row``, ``gig``,
    ``gcrowd`` and ``matched`` are the group's (IoU row, ignore and crowd flags, taken).

    Regular boxes are tried first, then ignored ones (pycocotools' stable sort on the
    ignore flag and its ``break`` when a regular match meets an ignored box); a matched box
    is skipped unless it is a crowd region; ``iou >= best`` takes the box, so on equal IoU
    the later box wins. ``strict``: a pair is eligible only if ``iou > thr``.
    """
    m = -1
    best = thr
    for j in range(ng):  # regular boxes
        if gig[j] or matched[j]:
            continue
        v = row[j]
        if strict:
            if v <= thr or (m >= 0 and v < best):
                continue
        elif v < best:
            continue
        best = v
        m = j
    if m >= 0:
        return m
    for j in range(ng):  # ignored boxes (a crowd region can be taken again)
        if not gig[j] or (matched[j] and not gcrowd[j]):
            continue
        v = row[j]
        if strict:
            if v <= thr or (m >= 0 and v < best):
                continue
        elif v < best:
            continue
        best = v
        m = j
    return m


@numba.njit(inline="always", **_JIT)
def _pick_cand(row, cand, nc, gig, gcrowd, matched, thr, strict):
    """:func:`_pick` over the candidate boxes ``cand[:nc]`` only (in file order): the boxes
    whose IoU can reach the lowest threshold; the others can never be taken."""
    m = -1
    best = thr
    for q in range(nc):  # regular boxes
        j = cand[q]
        if gig[j] or matched[j]:
            continue
        v = row[j]
        if strict:
            if v <= thr or (m >= 0 and v < best):
                continue
        elif v < best:
            continue
        best = v
        m = j
    if m >= 0:
        return m
    for q in range(nc):  # ignored boxes (a crowd region can be taken again)
        j = cand[q]
        if not gig[j] or (matched[j] and not gcrowd[j]):
            continue
        v = row[j]
        if strict:
            if v <= thr or (m >= 0 and v < best):
                continue
        elif v < best:
            continue
        best = v
        m = j
    return m


@numba.njit(parallel=True, **_JIT)
def sort_dets(img, cls, score, n_images):
    """Order of the detections by (image, class, -score, file order) and group ranks.

    Returns ``order`` (all detections), ``rank`` (rank of ``order[i]`` in its (image,
    class) group), ``img_start`` (CSR bounds of each image in ``order``) and ``irank`` (rank
    of ``order[i]`` among all detections of its image by descending score, ties in file
    order: LVIS's per-image cap).
    """
    n = len(img)
    img_start = np.zeros(n_images + 1, np.int64)
    for i in range(n):
        img_start[img[i] + 1] += 1
    for k in range(n_images):
        img_start[k + 1] += img_start[k]
    fill = img_start[:-1].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        k = img[i]
        order[fill[k]] = i
        fill[k] += 1
    rank = np.empty(n, np.int64)
    irank = np.zeros(n, np.int64)
    for k in prange(n_images):
        a = img_start[k]
        b = img_start[k + 1]
        if b - a > 1:
            seg = order[a:b].copy()
            neg = np.empty(b - a)
            for j in range(b - a):
                neg[j] = -score[seg[j]]
            o1 = np.argsort(neg, kind="mergesort")
            seg2 = seg[o1]
            c2 = np.empty(b - a, np.int64)
            for j in range(b - a):
                c2[j] = cls[seg2[j]]
            o2 = np.argsort(c2, kind="mergesort")
            for j in range(b - a):
                order[a + j] = seg2[o2[j]]
                irank[a + j] = o2[j]
        r = 0
        for j in range(a, b):
            if j > a and cls[order[j]] != cls[order[j - 1]]:
                r = 0
            rank[j] = r
            r += 1
    return order, rank, img_start, irank


@numba.njit(**_JIT)
def concat_ranges(lo, hi):
    """``concatenate([arange(lo[k], hi[k]) for k])`` without temporaries."""
    n = 0
    for k in range(len(lo)):
        n += hi[k] - lo[k]
    out = np.empty(n, np.int64)
    p = 0
    for k in range(len(lo)):
        for j in range(lo[k], hi[k]):
            out[p] = j
            p += 1
    return out


@numba.njit(parallel=True, **_JIT)
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
    n_t = len(thrs)
    for k in prange(len(d_lo)):
        a = d_lo[k]
        nd = d_hi[k] - a
        ga = g_lo[k]
        ng = g_hi[k] - ga
        if grp_nel[k]:  # unmatched detections are ignored; a match below overrides
            for t in range(n_t):
                for i in range(nd):
                    ig[t, a + i] = True
        if nd == 0 or ng == 0:
            continue
        block = np.empty((nd, ng))
        _fill_block(k, dbox, det, a, nd, gbox, gcrowd, ga, ng, pre_iou, pre_off, block)
        matched = np.zeros(ng, np.bool_)
        gig_g = gig[ga:ga + ng]
        crowd_g = gcrowd[ga:ga + ng]
        for t in range(n_t):
            matched[:] = False
            for i in range(nd):
                m = _pick(block[i], gig_g, crowd_g, ng, matched, thrs[t], strict)
                if m < 0:
                    continue
                matched[m] = True
                if gig[ga + m]:
                    ig[t, a + i] = True
                else:
                    tp[t, a + i] = True
                    ig[t, a + i] = False
                    iou[t, a + i] = block[i, m]


@numba.njit(parallel=True, **_JIT)
def class_order(score, pos, cls_start):
    """Per-class order of the evaluated detections: ``pos`` lists them by (class, image,
    rank), class ``c`` owning ``pos[cls_start[c]:cls_start[c + 1]]``; a stable sort on
    descending score inside each class gives (class, -score, image, file order)."""
    out = np.empty(len(pos), np.int64)
    for c in prange(len(cls_start) - 1):
        a = cls_start[c]
        b = cls_start[c + 1]
        if b == a:
            continue
        neg = np.empty(b - a)
        for j in range(b - a):
            neg[j] = -score[pos[a + j]]
        o = np.argsort(neg, kind="mergesort")
        for j in range(b - a):
            out[a + j] = pos[a + o[j]]
    return out


@numba.njit(parallel=True, **_JIT)
def group_codes(dbox, darea, det, d_lo, d_hi, gbox, gcrowd, gign, garea, g_lo, g_hi, pre_iou,
                pre_off, grp_nel, thrs, strict, area_lo, area_hi, tp_bits, ig_bits, codes):
    """COCOeval's (and LVISEval's) ``evaluateImg`` for every group, area range and threshold.

    ``codes[i, t]`` (unsigned ints, filled in place) holds two bits per area range ``a``:
    ``tp_bits[a]`` = the detection took a regular annotation (a TP), ``ig_bits[a]`` = it is
    ignored (took an ignored annotation, or is unmatched with an area ``darea`` outside the
    range or in a group with ``grp_nel`` set). An annotation is ignored in range ``a`` if
    ``gign`` flags it (a crowd region, or LVIS's ``ignore``) or its ``area`` lies outside
    ``[area_lo[a], area_hi[a]]``; ``gcrowd`` annotations absorb any number of detections.
    Ranges whose ignore pattern in a group equals an earlier range's share its matching.
    """
    n_t = len(thrs)
    n_a = len(area_lo)
    for k in prange(len(d_lo)):
        a0 = d_lo[k]
        nd = d_hi[k] - a0
        ga = g_lo[k]
        ng = g_hi[k] - ga
        if nd == 0:
            continue
        block = np.empty((nd, max(ng, 1)))
        row_max = np.zeros(nd)
        thr_min = thrs[0]
        for t in range(1, n_t):
            thr_min = min(thr_min, thrs[t])
        # candidates of each detection: the boxes whose IoU reaches the lowest threshold
        cand = np.empty((nd, max(ng, 1)), np.int64)
        n_cand = np.zeros(nd, np.int64)
        if ng > 0:
            _fill_block(k, dbox, det, a0, nd, gbox, gcrowd, ga, ng, pre_iou, pre_off, block)
            for i in range(nd):
                mx = 0.0
                q = 0
                for j in range(ng):
                    v = block[i, j]
                    mx = max(mx, v)
                    if v > thr_min or (v == thr_min and not strict):
                        cand[i, q] = j
                        q += 1
                row_max[i] = mx
                n_cand[i] = q
        matched = np.zeros(max(ng, 1), np.bool_)
        gig = np.zeros((n_a, max(ng, 1)), np.bool_)
        src_of = np.empty(n_a, np.int64)
        crowd_g = gcrowd[ga:ga + ng]
        for a in range(n_a):
            for j in range(ng):
                ar = garea[ga + j]
                gig[a, j] = gign[ga + j] or ar < area_lo[a] or ar > area_hi[a]
            src = a
            for a2 in range(a):
                same = True
                for j in range(ng):
                    if gig[a2, j] != gig[a, j]:
                        same = False
                        break
                if same:
                    src = a2
                    break
            src_of[a] = src
        # unmatched: ignored in the ranges that exclude the detection's own area (in every
        # range in a group whose unmatched detections are ignored)
        for i in range(nd):
            da = darea[det[a0 + i]]
            oor = codes.dtype.type(0)
            for a in range(n_a):
                if grp_nel[k] or da < area_lo[a] or da > area_hi[a]:
                    oor |= ig_bits[a]
            for t in range(n_t):
                codes[a0 + i, t] = oor
        if ng == 0:
            continue
        # detections with a candidate, in score order (the others are never matched)
        active = np.empty(nd, np.int64)
        n_active = 0
        for i in range(nd):
            if n_cand[i] > 0:
                active[n_active] = i
                n_active += 1
        if n_active == 0:
            continue
        # one greedy pass per distinct ignore pattern, its matches written to every range
        # sharing the pattern
        for a in range(n_a):
            if src_of[a] != a:
                continue
            for t in range(n_t):
                thr = thrs[t]
                matched[:ng] = False
                for q in range(n_active):
                    i = active[q]
                    # no box reaches the threshold: unmatched whatever is taken
                    if row_max[i] < thr or (strict and row_max[i] <= thr):
                        continue
                    m = _pick_cand(block[i], cand[i], n_cand[i], gig[a], crowd_g, matched,
                                   thr, strict)
                    if m < 0:
                        continue
                    matched[m] = True
                    c = codes[a0 + i, t]
                    for a2 in range(a, n_a):
                        if src_of[a2] != a:
                            continue
                        if gig[a, m]:
                            c |= ig_bits[a2]
                        else:
                            c = (c & ~ig_bits[a2]) | tp_bits[a2]
                    codes[a0 + i, t] = c


@numba.njit(parallel=True, **_JIT)
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
    keep -1, as in pycocotools. ``cls_seq`` is the processing order (largest first).
    """
    n_t = codes.shape[1]
    n_a = npig.shape[1]
    n_m = len(max_dets)
    n_r = len(rec_thrs)
    eps = np.spacing(1.0)
    for qi in prange(len(cls_seq)):
        c = cls_seq[qi]
        s0 = cls_start[c]
        n_c = cls_start[c + 1] - s0
        any_gt = False
        for a in range(n_a):
            if npig[c, a] > 0:
                any_gt = True
        if not any_gt:
            continue
        neg = np.empty(n_c)
        for j in range(n_c):
            neg[j] = -score[pos[s0 + j]]
        order = np.argsort(neg, kind="mergesort")
        sorted_codes = np.empty((n_c, n_t), codes.dtype)
        srank = np.empty(n_c, np.int64)
        for j in range(n_c):
            p = pos[s0 + order[j]]
            srank[j] = rank[p]
            for t in range(n_t):
                sorted_codes[j, t] = codes[p, t]
        # recall and precision at the TPs only: the precision envelope at a recall
        # threshold (max over the entries from the first with rc >= r) is always reached at
        # a TP, since an FP entry repeats the TP count with a larger denominator
        rc = np.empty((n_a, n_c))
        pr = np.empty((n_a, n_c))
        n_tp = np.zeros(n_a, np.int64)
        tpc = np.zeros(n_a)
        fpc = np.zeros(n_a)
        sel = np.empty(n_c, np.int64)
        for mi in range(n_m):
            md = max_dets[mi]
            n_sel = 0
            for j in range(n_c):
                if srank[j] < md:
                    sel[n_sel] = j
                    n_sel += 1
            for t in range(n_t):
                n_tp[:] = 0
                tpc[:] = 0.0
                fpc[:] = 0.0
                for k in range(n_sel):
                    code = sorted_codes[sel[k], t]
                    for a in range(n_a):
                        if code & ig_bits[a]:
                            continue
                        if code & tp_bits[a]:
                            tpc[a] += 1.0
                            if npig[c, a] > 0:
                                q = n_tp[a]
                                rc[a, q] = tpc[a] / npig[c, a]
                                pr[a, q] = tpc[a] / (fpc[a] + tpc[a] + eps)
                                n_tp[a] = q + 1
                        else:
                            fpc[a] += 1.0
                for a in range(n_a):
                    n_pos = npig[c, a]
                    if n_pos == 0:
                        continue
                    recall[t, c, a, mi] = tpc[a] / n_pos
                    cnt = n_tp[a]
                    for i in range(cnt - 1, 0, -1):
                        if pr[a, i] > pr[a, i - 1]:
                            pr[a, i - 1] = pr[a, i]
                    j = 0
                    for r in range(n_r):
                        while j < cnt and rc[a, j] < rec_thrs[r]:
                            j += 1
                        if j < cnt:
                            precision[t, r, c, a, mi] = pr[a, j]
                        else:
                            precision[t, r, c, a, mi] = 0.0


@numba.njit(**_JIT)
def json_split(buf, start, depth, in_str, esc):
    """Scan json bytes ``buf[start:]`` of a top-level list, carrying the scanner state
    (nesting ``depth``, inside a string, after a backslash) across blocks.

    Returns the position of the last comma between top-level items (-1 if none), the
    position of the list's closing bracket (-1 if not reached) and the new state. Strings
    are skipped with their escapes, so brackets and commas inside them do not count.
    """
    last = -1
    end = -1
    for i in range(start, len(buf)):
        ch = buf[i]
        if in_str:
            if esc:
                esc = False
            elif ch == 92:  # backslash
                esc = True
            elif ch == 34:  # quote
                in_str = False
            continue
        if ch == 34:
            in_str = True
        elif ch == 123 or ch == 91:  # { [
            depth += 1
        elif ch == 125 or ch == 93:  # } ]
            depth -= 1
            if depth == 0:
                end = i
                break
        elif ch == 44 and depth == 1:  # ,
            last = i
    return last, end, depth, in_str, esc
