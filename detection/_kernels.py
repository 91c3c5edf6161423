"""Compiled (numba) kernels of COCO matching and accumulation.

Everything here works on prepared, sorted columns (see :mod:`calibkit.detection.matching`)
and reproduces pycocotools' ``COCOeval.evaluateImg`` / ``accumulate`` operation by operation:

* :func:`sort_dets`: detections ordered by (image, class, descending score, file order), the
  rank of each inside its (image, class) group;
* :func:`match_groups`: the greedy matching of every (image, class) group at several IoU
  thresholds (one ignore rule, per-detection outputs), parallel over groups;
* :func:`summary_classes`: matching at every (area range, IoU threshold) and the per-class
  precision / recall accumulation of COCOeval (``precision[T, R, K, A, M]``,
  ``recall[T, K, A, M]``), parallel over classes;
* :func:`class_order`: the evaluated detections in per-class order (class, descending
  score, image, file order).

The greedy step (:func:`_pick`) sees one row of an IoU block and the flags of the group's
ground truth, so another IoU source (mask IoU of RLEs) only has to fill the block.
Kernels are compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

_JIT = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def _bbox_iou_block(dbox, a, nd, gbox, gcrowd, ga, ng, out):
    """pycocotools' ``bbIou`` (C code) for detections ``a:a+nd`` and boxes ``ga:ga+ng``."""
    for g in range(ng):
        gx = gbox[ga + g, 0]
        gy = gbox[ga + g, 1]
        gw = gbox[ga + g, 2]
        gh = gbox[ga + g, 3]
        garea = gw * gh
        crowd = gcrowd[ga + g]
        for d in range(nd):
            dx = dbox[a + d, 0]
            dy = dbox[a + d, 1]
            dw = dbox[a + d, 2]
            dh = dbox[a + d, 3]
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


@numba.njit(**_JIT)
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
    for want_ignored in (False, True):
        for j in range(ng):
            if gig[j] != want_ignored:
                continue
            if matched[j] and not gcrowd[j]:
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
    return -1


@numba.njit(parallel=True, **_JIT)
def sort_dets(img, cls, score, n_images, max_dets):
    """Order of the detections by (image, class, -score, file order) and group ranks.

    Returns ``order`` (all detections), ``rank`` (rank of ``order[i]`` in its group) and
    ``img_start`` (CSR bounds of each image in ``order``).
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
        r = 0
        for j in range(a, b):
            if j > a and cls[order[j]] != cls[order[j - 1]]:
                r = 0
            rank[j] = r
            r += 1
    return order, rank, img_start


@numba.njit(parallel=True, **_JIT)
def match_groups(dbox, d_lo, d_hi, gbox, gcrowd, gig, g_lo, g_hi, thrs, strict,
                 tp, ig, iou):
    """Greedy matching of every group at each threshold of ``thrs``.

    ``tp``, ``ig`` (bool) and ``iou`` (float) of shape (n_thresholds, n_evaluated) are
    filled in place for the detections of each group (``d_lo:d_hi``, in score order),
    against the boxes ``g_lo:g_hi`` (file order). A detection that takes an ignored box is
    ignored; one that takes a regular box is a TP with that IoU; the rest stay FP.
    """
    n_t = len(thrs)
    for k in prange(len(d_lo)):
        a = d_lo[k]
        nd = d_hi[k] - a
        ga = g_lo[k]
        ng = g_hi[k] - ga
        if nd == 0 or ng == 0:
            continue
        block = np.empty((nd, ng))
        _bbox_iou_block(dbox, a, nd, gbox, gcrowd, ga, ng, block)
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
                    iou[t, a + i] = block[i, m]


@numba.njit(parallel=True, **_JIT)
def class_order(score, d_lo, d_hi, grp_order, cls_grp_start):
    """Evaluated detections (positions in the sorted arrays) in per-class order: class,
    descending score, image, file order. ``grp_order`` lists the groups by (class, image)."""
    n_cls = len(cls_grp_start) - 1
    out = np.empty(d_hi[-1] if len(d_hi) else 0, np.int64)
    start = np.zeros(n_cls + 1, np.int64)
    for c in range(n_cls):
        s = 0
        for q in range(cls_grp_start[c], cls_grp_start[c + 1]):
            g = grp_order[q]
            s += d_hi[g] - d_lo[g]
        start[c + 1] = start[c] + s
    for c in prange(n_cls):
        n_c = start[c + 1] - start[c]
        if n_c == 0:
            continue
        pos = np.empty(n_c, np.int64)
        neg = np.empty(n_c)
        p = 0
        for q in range(cls_grp_start[c], cls_grp_start[c + 1]):
            g = grp_order[q]
            for j in range(d_lo[g], d_hi[g]):
                pos[p] = j
                neg[p] = -score[j]
                p += 1
        o = np.argsort(neg, kind="mergesort")
        for j in range(n_c):
            out[start[c] + j] = pos[o[j]]
    return out


@numba.njit(parallel=True, **_JIT)
def summary_classes(dbox, dscore, drank, d_lo, d_hi, gbox, gcrowd, garea, g_lo, g_hi,
                    grp_order, cls_grp_start, cls_seq, thrs, strict, area_lo, area_hi,
                    max_dets, rec_thrs, npig, precision, recall):
    """COCOeval's ``evaluate`` + ``accumulate`` per class.

    For each class (``cls_seq`` gives the processing order, largest first) and each of its
    groups: the IoU block, then for every area range ``a`` (boxes ignored if crowd or with
    area outside ``[area_lo[a], area_hi[a]]``) and threshold ``t`` the greedy matching;
    unmatched detections outside the area range are ignored. Then, per (a, max_dets m, t),
    the class's detections with rank < m in order (descending score, image, rank):
    cumulative TP / FP, ``rc = tp / npig``, ``pr = tp / (fp + tp + eps)``, precision made
    monotone from the right and read at the recall thresholds (first ``rc >= r``, 0 beyond);
    ``recall`` the final ``rc``. Ignored detections are skipped: they repeat the previous
    values, which changes none of the sampled numbers. Classes with ``npig == 0`` in an area
    range keep -1, as in pycocotools.
    """
    n_t = len(thrs)
    n_a = len(area_lo)
    n_m = len(max_dets)
    n_r = len(rec_thrs)
    eps = np.spacing(1.0)
    for qi in prange(len(cls_seq)):
        c = cls_seq[qi]
        g0 = cls_grp_start[c]
        g1 = cls_grp_start[c + 1]
        n_c = 0
        max_nd = 0
        max_ng = 0
        for q in range(g0, g1):
            g = grp_order[q]
            n_c += d_hi[g] - d_lo[g]
            max_nd = max(max_nd, d_hi[g] - d_lo[g])
            max_ng = max(max_ng, g_hi[g] - g_lo[g])
        any_gt = False
        for a in range(n_a):
            if npig[c, a] > 0:
                any_gt = True
        if not any_gt:
            continue
        codes = np.zeros((n_t, n_c), np.uint8)
        neg = np.empty(n_c)
        rank = np.empty(n_c, np.int64)
        block = np.empty((max_nd, max(max_ng, 1)))
        row_max = np.empty(max_nd)
        matched = np.zeros(max(max_ng, 1), np.bool_)
        gig = np.zeros((n_a, max(max_ng, 1)), np.bool_)
        # res[a, t, i]: -1 unmatched, 0 took a regular box, 1 took an ignored box
        res = np.empty((n_a, n_t, max_nd), np.int8)
        p = 0
        for q in range(g0, g1):
            g = grp_order[q]
            a0 = d_lo[g]
            nd = d_hi[g] - a0
            ga = g_lo[g]
            ng = g_hi[g] - ga
            for i in range(nd):
                neg[p + i] = -dscore[a0 + i]
                rank[p + i] = drank[a0 + i]
            if ng > 0:
                _bbox_iou_block(dbox, a0, nd, gbox, gcrowd, ga, ng, block)
                for i in range(nd):
                    mx = 0.0
                    for j in range(ng):
                        mx = max(mx, block[i, j])
                    row_max[i] = mx
            crowd_g = gcrowd[ga:ga + ng]
            for a in range(n_a):
                lo = area_lo[a]
                hi = area_hi[a]
                for j in range(ng):
                    ar = garea[ga + j]
                    gig[a, j] = crowd_g[j] or ar < lo or ar > hi
                # areas whose ignore pattern equals an earlier one's share its matching
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
                if src != a:
                    res[a, :, :nd] = res[src, :, :nd]
                else:
                    res[a, :, :nd] = -1
                    if ng > 0:
                        for t in range(n_t):
                            thr = thrs[t]
                            matched[:ng] = False
                            for i in range(nd):
                                # no box reaches the threshold: unmatched whatever is taken
                                if row_max[i] < thr or (strict and row_max[i] <= thr):
                                    continue
                                m = _pick(block[i], gig[a], crowd_g, ng, matched, thr, strict)
                                if m >= 0:
                                    matched[m] = True
                                    res[a, t, i] = 1 if gig[a, m] else 0
                tp_bit = np.uint8(1 << (2 * a))
                ig_bit = np.uint8(2 << (2 * a))
                for i in range(nd):
                    darea = dbox[a0 + i, 2] * dbox[a0 + i, 3]
                    out_of_range = darea < lo or darea > hi
                    for t in range(n_t):
                        r = res[a, t, i]
                        if r == 0:
                            codes[t, p + i] |= tp_bit
                        elif r == 1 or out_of_range:
                            codes[t, p + i] |= ig_bit
            p += nd
        order = np.argsort(neg, kind="mergesort")
        # detections in accumulation order (descending score, image, rank), per max_dets
        sorted_codes = np.empty((n_t, n_c), np.uint8)
        for t in range(n_t):
            for j in range(n_c):
                sorted_codes[t, j] = codes[t, order[j]]
        rc = np.empty(n_c)
        pr = np.empty(n_c)
        sel = np.empty(n_c, np.int64)
        for mi in range(n_m):
            md = max_dets[mi]
            n_sel = 0
            for j in range(n_c):
                if rank[order[j]] < md:
                    sel[n_sel] = j
                    n_sel += 1
            for a in range(n_a):
                n_pos = npig[c, a]
                if n_pos == 0:
                    continue
                tp_bit = np.uint8(1 << (2 * a))
                ig_bit = np.uint8(2 << (2 * a))
                for t in range(n_t):
                    tpc = 0.0
                    fpc = 0.0
                    cnt = 0
                    row = sorted_codes[t]
                    for k in range(n_sel):
                        code = row[sel[k]]
                        if code & ig_bit:
                            continue
                        if code & tp_bit:
                            tpc += 1.0
                        else:
                            fpc += 1.0
                        rc[cnt] = tpc / n_pos
                        pr[cnt] = tpc / (fpc + tpc + eps)
                        cnt += 1
                    recall[t, c, a, mi] = tpc / n_pos
                    for i in range(cnt - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    j = 0
                    for r in range(n_r):
                        while j < cnt and rc[j] < rec_thrs[r]:
                            j += 1
                        if j < cnt:
                            precision[t, r, c, a, mi] = pr[j]
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
