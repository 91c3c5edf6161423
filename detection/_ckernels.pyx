# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled kernels of COCO matching and accumulation (C, through Cython).

Each kernel works on a range of groups (or images, or classes) ``[k0, k1)`` without the GIL,
so that :mod:`calibkit.detection._kernels` runs disjoint ranges on several threads; the
outputs of different ranges never overlap. The arithmetic is pycocotools' own, operation by
operation (see :mod:`calibkit.detection._kernels` for the semantics); the build turns off
floating-point contraction so that no fused multiply-add changes a rounding.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.math cimport ceil, floor
from libc.stdlib cimport free, malloc, qsort, realloc, strtod
from libc.string cimport memcmp, memcpy, memset

ctypedef fused code_t:
    uint8_t
    uint16_t


# ---- stable merge sort of positions by a key (numpy's argsort(kind="mergesort")) ----------

ctypedef fused key_t:
    double
    int64_t


cdef void _argsort(const key_t* key, int64_t* idx, int64_t* tmp, int64_t n) noexcept nogil:
    """``idx[:n] = argsort(key[:n], kind="stable")`` (bottom-up merge sort, insertion sort
    on runs of 16; ``tmp`` holds n entries), for float or integer keys."""
    cdef int64_t i, j, lo, mid, hi, w, p, q, r, v
    for i in range(n):
        idx[i] = i
    lo = 0
    while lo < n:  # insertion sort of runs of 16
        hi = lo + 16 if lo + 16 < n else n
        for i in range(lo + 1, hi):
            v = idx[i]
            j = i - 1
            while j >= lo and key[v] < key[idx[j]]:
                idx[j + 1] = idx[j]
                j -= 1
            idx[j + 1] = v
        lo = hi
    w = 16
    cdef int64_t* src = idx
    cdef int64_t* dst = tmp
    cdef int64_t* swap
    while w < n:
        lo = 0
        while lo < n:
            mid = lo + w if lo + w < n else n
            hi = lo + 2 * w if lo + 2 * w < n else n
            p = lo
            q = mid
            r = lo
            while p < mid and q < hi:
                if key[src[q]] < key[src[p]]:
                    dst[r] = src[q]
                    q += 1
                else:
                    dst[r] = src[p]
                    p += 1
                r += 1
            while p < mid:
                dst[r] = src[p]
                p += 1
                r += 1
            while q < hi:
                dst[r] = src[q]
                q += 1
                r += 1
            lo = hi
        swap = src
        src = dst
        dst = swap
        w *= 2
    if src != idx:
        memcpy(idx, src, n * sizeof(int64_t))


def argsort_stable(const double[::1] key):
    """``argsort(key, kind="stable")`` by :func:`_argsort` (tested against numpy)."""
    import numpy as np

    cdef int64_t n = key.shape[0]
    out = np.empty(n, np.int64)
    cdef int64_t[::1] o = out
    cdef int64_t* tmp = <int64_t*>malloc(max(n, 1) * sizeof(int64_t))
    if tmp == NULL:
        raise MemoryError()
    with nogil:
        _argsort(&key[0] if n else NULL, &o[0] if n else NULL, tmp, n)
    free(tmp)
    return out


# ---- IoU blocks and the greedy step ----------------------------------------------------------

cdef void _bbox_iou_block(const double[:, ::1] dbox, const int64_t[::1] det, int64_t a,
                          int64_t nd, const double[:, ::1] gbox, const uint8_t[::1] gcrowd,
                          int64_t ga, int64_t ng, double* out) noexcept nogil:
    """pycocotools' ``bbIou`` for detections ``det[a:a+nd]`` and boxes ``ga:ga+ng``;
    ``out`` is the (nd, ng) block, row-major."""
    cdef int64_t g, d, r
    cdef double gx, gy, gw, gh, garea, dx, dy, dw, dh, darea, w, h, inter, u, x1, x2
    cdef bint crowd
    for g in range(ng):
        gx = gbox[ga + g, 0]
        gy = gbox[ga + g, 1]
        gw = gbox[ga + g, 2]
        gh = gbox[ga + g, 3]
        garea = gw * gh
        crowd = gcrowd[ga + g]
        for d in range(nd):
            r = det[a + d]
            dx = dbox[r, 0]
            dy = dbox[r, 1]
            dw = dbox[r, 2]
            dh = dbox[r, 3]
            darea = dw * dh
            out[d * ng + g] = 0.0
            x1 = dw + dx
            x2 = gw + gx
            w = (x1 if x1 < x2 else x2) - (dx if dx > gx else gx)
            if w <= 0:
                continue
            x1 = dh + dy
            x2 = gh + gy
            h = (x1 if x1 < x2 else x2) - (dy if dy > gy else gy)
            if h <= 0:
                continue
            inter = w * h
            if crowd:
                u = darea
            else:
                u = darea + garea - inter
            if u != 0:
                out[d * ng + g] = inter / u


cdef inline void _fill_block(int64_t k, const double[:, ::1] dbox, const int64_t[::1] det,
                             int64_t a, int64_t nd, const double[:, ::1] gbox,
                             const uint8_t[::1] gcrowd, int64_t ga, int64_t ng,
                             const double[::1] pre_iou, const int64_t[::1] pre_off,
                             double* out) noexcept nogil:
    """The IoU block of group ``k``: precomputed (``pre_off`` non-empty) or box IoU."""
    cdef int64_t o, i
    if pre_off.shape[0] > 0:
        o = pre_off[k]
        for i in range(nd * ng):
            out[i] = pre_iou[o + i]
    else:
        _bbox_iou_block(dbox, det, a, nd, gbox, gcrowd, ga, ng, out)


cdef inline bint _takes(double v, int64_t m, double best, double thr,
                        bint strict) noexcept nogil:
    """Whether IoU ``v`` takes over the best box so far (``m``, ``best``): ``v >= best``
    (on equal IoU the later box wins); ``strict``: also ``v > thr``."""
    if strict:
        return not (v <= thr or (m >= 0 and v < best))
    return not v < best


cdef inline int64_t _pick(const double* row, const int64_t* cand, int64_t nc,
                          const uint8_t* gig, const uint8_t* gcrowd, const uint8_t* matched,
                          double thr, bint strict) noexcept nogil:
    """Index (in the group) of the box a detection takes, or -1; ``row``, ``gig``,
    ``gcrowd`` and ``matched`` are the group's (IoU row, ignore and crowd flags, taken).
    The boxes tried are ``cand[:nc]`` (in file order: those whose IoU can reach the lowest
    threshold; the others can never be taken), or all ``nc`` when ``cand`` is NULL.

    Regular boxes are tried first, then ignored ones (pycocotools' stable sort on the
    ignore flag and its ``break`` when a regular match meets an ignored box); a matched box
    is skipped unless it is a crowd region; ``iou >= best`` takes the box, so on equal IoU
    the later box wins. ``strict``: a pair is eligible only if ``iou > thr``.
    """
    cdef int64_t m = -1, j, q
    cdef double best = thr
    for q in range(nc):  # regular boxes
        j = cand[q] if cand != NULL else q
        if gig[j] or matched[j] or not _takes(row[j], m, best, thr, strict):
            continue
        best = row[j]
        m = j
    if m >= 0:
        return m
    for q in range(nc):  # ignored boxes (a crowd region can be taken again)
        j = cand[q] if cand != NULL else q
        if (not gig[j] or (matched[j] and not gcrowd[j])
                or not _takes(row[j], m, best, thr, strict)):
            continue
        best = row[j]
        m = j
    return m


# ---- kernels ---------------------------------------------------------------------------------

def image_order(const int64_t[::1] img, int64_t n_images):
    """Counting sort of the detections by image: ``order`` (file order inside each image)
    and ``img_start`` (CSR bounds of each image in ``order``)."""
    import numpy as np

    cdef int64_t n = img.shape[0], i, k
    start = np.zeros(n_images + 1, np.int64)
    out = np.empty(n, np.int64)
    cdef int64_t[::1] s = start
    cdef int64_t[::1] o = out
    cdef int64_t* fill = <int64_t*>malloc(max(n_images, 1) * sizeof(int64_t))
    if fill == NULL:
        raise MemoryError()
    with nogil:
        for i in range(n):
            s[img[i] + 1] += 1
        for k in range(n_images):
            s[k + 1] += s[k]
        for k in range(n_images):
            fill[k] = s[k]
        for i in range(n):
            k = img[i]
            o[fill[k]] = i
            fill[k] += 1
    free(fill)
    return out, start


def sort_images(const int64_t[::1] cls, const double[::1] score, const int64_t[::1] img_start,
                int64_t[::1] order, int64_t[::1] rank, int64_t[::1] irank, int64_t k0,
                int64_t k1):
    """Images ``k0:k1`` of :func:`calibkit.detection._kernels.sort_dets`: each image's
    detections (``order[img_start[k]:img_start[k + 1]]``, in file order) reordered by
    (class, -score, file order), with their group ranks and score ranks."""
    cdef int64_t k, a, b, n, j, r, mx = 1
    for k in range(k0, k1):
        n = img_start[k + 1] - img_start[k]
        if n > mx:
            mx = n
    cdef int64_t* seg = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef int64_t* o1 = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef int64_t* o2 = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef int64_t* tmp = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef double* neg = <double*>malloc(mx * sizeof(double))
    cdef int64_t* ckey = <int64_t*>malloc(mx * sizeof(int64_t))
    if seg == NULL or o1 == NULL or o2 == NULL or tmp == NULL or neg == NULL or ckey == NULL:
        free(seg); free(o1); free(o2); free(tmp); free(neg); free(ckey)
        raise MemoryError()
    with nogil:
        for k in range(k0, k1):
            a = img_start[k]
            b = img_start[k + 1]
            n = b - a
            if n > 1:
                for j in range(n):
                    seg[j] = order[a + j]
                    neg[j] = -score[seg[j]]
                _argsort(neg, o1, tmp, n)  # by descending score, file order on ties
                for j in range(n):
                    ckey[j] = cls[seg[o1[j]]]
                _argsort(ckey, o2, tmp, n)  # then by class, stable
                for j in range(n):
                    order[a + j] = seg[o1[o2[j]]]
                    irank[a + j] = o2[j]
            r = 0
            for j in range(a, b):
                if j > a and cls[order[j]] != cls[order[j - 1]]:
                    r = 0
                rank[j] = r
                r += 1
    free(seg); free(o1); free(o2); free(tmp); free(neg); free(ckey)


def concat_ranges(const int64_t[::1] lo, const int64_t[::1] hi):
    """``concatenate([arange(lo[k], hi[k]) for k])`` without temporaries."""
    import numpy as np

    cdef int64_t n = 0, k, j, p = 0
    for k in range(lo.shape[0]):
        n += hi[k] - lo[k]
    out = np.empty(n, np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for k in range(lo.shape[0]):
            for j in range(lo[k], hi[k]):
                o[p] = j
                p += 1
    return out


def match_groups(const double[:, ::1] dbox, const int64_t[::1] det, const int64_t[::1] d_lo,
                 const int64_t[::1] d_hi, const double[:, ::1] gbox, const uint8_t[::1] gcrowd,
                 const uint8_t[::1] gig, const int64_t[::1] g_lo, const int64_t[::1] g_hi,
                 const double[::1] pre_iou, const int64_t[::1] pre_off,
                 const uint8_t[::1] grp_nel, const double[::1] thrs, bint strict,
                 uint8_t[:, ::1] tp, uint8_t[:, ::1] ig, double[:, ::1] iou, int64_t k0,
                 int64_t k1):
    """Groups ``k0:k1`` of :func:`calibkit.detection._kernels.match_groups`."""
    cdef int64_t k, a, nd, ga, ng, t, i, m, mx = 1, mg = 1
    cdef int64_t n_t = thrs.shape[0]
    for k in range(k0, k1):
        if (d_hi[k] - d_lo[k]) * (g_hi[k] - g_lo[k]) > mx:
            mx = (d_hi[k] - d_lo[k]) * (g_hi[k] - g_lo[k])
        if g_hi[k] - g_lo[k] > mg:
            mg = g_hi[k] - g_lo[k]
    cdef double* block = <double*>malloc(mx * sizeof(double))
    cdef uint8_t* matched = <uint8_t*>malloc(mg)
    if block == NULL or matched == NULL:
        free(block); free(matched)
        raise MemoryError()
    with nogil:
        for k in range(k0, k1):
            a = d_lo[k]
            nd = d_hi[k] - a
            ga = g_lo[k]
            ng = g_hi[k] - ga
            if grp_nel[k]:  # unmatched detections are ignored; a match below overrides
                for t in range(n_t):
                    for i in range(nd):
                        ig[t, a + i] = 1
            if nd == 0 or ng == 0:
                continue
            _fill_block(k, dbox, det, a, nd, gbox, gcrowd, ga, ng, pre_iou, pre_off, block)
            for t in range(n_t):
                memset(matched, 0, ng)
                for i in range(nd):
                    m = _pick(block + i * ng, NULL, ng, &gig[ga], &gcrowd[ga], matched,
                              thrs[t], strict)
                    if m < 0:
                        continue
                    matched[m] = 1
                    if gig[ga + m]:
                        ig[t, a + i] = 1
                    else:
                        tp[t, a + i] = 1
                        ig[t, a + i] = 0
                        iou[t, a + i] = block[i * ng + m]
    free(block)
    free(matched)


def class_order(const double[::1] score, const int64_t[::1] pos,
                const int64_t[::1] cls_start, int64_t[::1] out, int64_t c0, int64_t c1):
    """Classes ``c0:c1`` of :func:`calibkit.detection._kernels.class_order`."""
    cdef int64_t c, a, b, j, n, mx = 1
    for c in range(c0, c1):
        if cls_start[c + 1] - cls_start[c] > mx:
            mx = cls_start[c + 1] - cls_start[c]
    cdef double* neg = <double*>malloc(mx * sizeof(double))
    cdef int64_t* o = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef int64_t* tmp = <int64_t*>malloc(mx * sizeof(int64_t))
    if neg == NULL or o == NULL or tmp == NULL:
        free(neg); free(o); free(tmp)
        raise MemoryError()
    with nogil:
        for c in range(c0, c1):
            a = cls_start[c]
            b = cls_start[c + 1]
            n = b - a
            if n == 0:
                continue
            for j in range(n):
                neg[j] = -score[pos[a + j]]
            _argsort(neg, o, tmp, n)
            for j in range(n):
                out[a + j] = pos[a + o[j]]
    free(neg); free(o); free(tmp)


def group_codes(const double[:, ::1] dbox, const double[::1] darea, const int64_t[::1] det,
                const int64_t[::1] d_lo, const int64_t[::1] d_hi, const double[:, ::1] gbox,
                const uint8_t[::1] gcrowd, const uint8_t[::1] gign, const double[::1] garea,
                const int64_t[::1] g_lo, const int64_t[::1] g_hi, const double[::1] pre_iou,
                const int64_t[::1] pre_off, const uint8_t[::1] grp_nel,
                const double[::1] thrs, bint strict, const double[::1] area_lo,
                const double[::1] area_hi, const code_t[::1] tp_bits,
                const code_t[::1] ig_bits, code_t[:, ::1] codes, int64_t k0, int64_t k1):
    """Groups ``k0:k1`` of :func:`calibkit.detection._kernels.group_codes`."""
    cdef int64_t n_t = thrs.shape[0], n_a = area_lo.shape[0]
    cdef int64_t k, a0, nd, ga, ng, i, j, q, t, a, a2, src, m, n_active, mx = 1, md = 1
    cdef int64_t mg = 1
    cdef double thr_min, mxv, v, ar, da, thr
    cdef bint same
    cdef code_t oor, c
    for k in range(k0, k1):
        nd = d_hi[k] - d_lo[k]
        ng = g_hi[k] - g_lo[k]
        if nd * ng > mx:
            mx = nd * ng
        if nd > md:
            md = nd
        if ng > mg:
            mg = ng
    cdef double* block = <double*>malloc(mx * sizeof(double))
    cdef int64_t* cand = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef double* row_max = <double*>malloc(md * sizeof(double))
    cdef int64_t* n_cand = <int64_t*>malloc(md * sizeof(int64_t))
    cdef int64_t* active = <int64_t*>malloc(md * sizeof(int64_t))
    cdef uint8_t* matched = <uint8_t*>malloc(mg)
    cdef uint8_t* gig = <uint8_t*>malloc(mg * max(n_a, 1))
    cdef int64_t* src_of = <int64_t*>malloc(max(n_a, 1) * sizeof(int64_t))
    if (block == NULL or cand == NULL or row_max == NULL or n_cand == NULL or active == NULL
            or matched == NULL or gig == NULL or src_of == NULL):
        free(block); free(cand); free(row_max); free(n_cand); free(active); free(matched)
        free(gig); free(src_of)
        raise MemoryError()
    with nogil:
        thr_min = thrs[0]
        for t in range(1, n_t):
            if thrs[t] < thr_min:
                thr_min = thrs[t]
        for k in range(k0, k1):
            a0 = d_lo[k]
            nd = d_hi[k] - a0
            ga = g_lo[k]
            ng = g_hi[k] - ga
            if nd == 0:
                continue
            # candidates of each detection: the boxes whose IoU reaches the lowest threshold
            for i in range(nd):
                row_max[i] = 0.0
                n_cand[i] = 0
            if ng > 0:
                _fill_block(k, dbox, det, a0, nd, gbox, gcrowd, ga, ng, pre_iou, pre_off,
                            block)
                for i in range(nd):
                    mxv = 0.0
                    q = 0
                    for j in range(ng):
                        v = block[i * ng + j]
                        # max(mx, v) as numba computes it (NaN-free: IoUs are in [0, 1])
                        if v > mxv:
                            mxv = v
                        if v > thr_min or (v == thr_min and not strict):
                            cand[i * ng + q] = j
                            q += 1
                    row_max[i] = mxv
                    n_cand[i] = q
            for a in range(n_a):
                for j in range(ng):
                    ar = garea[ga + j]
                    gig[a * mg + j] = (gign[ga + j] != 0 or ar < area_lo[a]
                                       or ar > area_hi[a])
                src = a
                for a2 in range(a):
                    same = True
                    for j in range(ng):
                        if gig[a2 * mg + j] != gig[a * mg + j]:
                            same = False
                            break
                    if same:
                        src = a2
                        break
                src_of[a] = src
            # unmatched: ignored in the ranges that exclude the detection's own area (in
            # every range in a group whose unmatched detections are ignored)
            for i in range(nd):
                da = darea[det[a0 + i]]
                oor = 0
                for a in range(n_a):
                    if grp_nel[k] or da < area_lo[a] or da > area_hi[a]:
                        oor = oor | ig_bits[a]
                for t in range(n_t):
                    codes[a0 + i, t] = oor
            if ng == 0:
                continue
            # detections with a candidate, in score order (the others are never matched)
            n_active = 0
            for i in range(nd):
                if n_cand[i] > 0:
                    active[n_active] = i
                    n_active += 1
            if n_active == 0:
                continue
            # one greedy pass per distinct ignore pattern, its matches written to every
            # range sharing the pattern
            for a in range(n_a):
                if src_of[a] != a:
                    continue
                for t in range(n_t):
                    thr = thrs[t]
                    memset(matched, 0, ng)
                    for q in range(n_active):
                        i = active[q]
                        # no box reaches the threshold: unmatched whatever is taken
                        if row_max[i] < thr or (strict and row_max[i] <= thr):
                            continue
                        m = _pick(block + i * ng, cand + i * ng, n_cand[i], gig + a * mg,
                                  &gcrowd[ga], matched, thr, strict)
                        if m < 0:
                            continue
                        matched[m] = 1
                        c = codes[a0 + i, t]
                        for a2 in range(a, n_a):
                            if src_of[a2] != a:
                                continue
                            if gig[a * mg + m]:
                                c = c | ig_bits[a2]
                            else:
                                c = (c & ~ig_bits[a2]) | tp_bits[a2]
                        codes[a0 + i, t] = c
    free(block); free(cand); free(row_max); free(n_cand); free(active); free(matched)
    free(gig); free(src_of)


def accumulate_classes(const code_t[:, ::1] codes, const double[::1] score,
                       const int64_t[::1] rank, const int64_t[::1] pos,
                       const int64_t[::1] cls_start, const int64_t[::1] cls_seq,
                       const int64_t[::1] max_dets, const double[::1] rec_thrs,
                       const int64_t[:, ::1] npig, const code_t[::1] tp_bits,
                       const code_t[::1] ig_bits, double[:, :, :, :, ::1] precision,
                       double[:, :, :, ::1] recall, int64_t q0, int64_t q1):
    """Classes ``cls_seq[q0:q1]`` of :func:`calibkit.detection._kernels.accumulate_classes`."""
    cdef int64_t n_t = codes.shape[1], n_a = npig.shape[1], n_m = max_dets.shape[0]
    cdef int64_t n_r = rec_thrs.shape[0]
    cdef double eps = 2.220446049250313e-16  # np.spacing(1.0)
    cdef int64_t qi, c, s0, n_c, j, p, t, a, mi, md_, n_sel, kk, qq, cnt, r, n_pos, mx = 1
    cdef int64_t i
    cdef bint any_gt
    cdef code_t code
    for qi in range(q0, q1):
        c = cls_seq[qi]
        if cls_start[c + 1] - cls_start[c] > mx:
            mx = cls_start[c + 1] - cls_start[c]
    cdef double* neg = <double*>malloc(mx * sizeof(double))
    cdef int64_t* order = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef int64_t* tmp = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef code_t* sorted_codes = <code_t*>malloc(mx * max(n_t, 1) * sizeof(code_t))
    cdef int64_t* srank = <int64_t*>malloc(mx * sizeof(int64_t))
    cdef double* rc = <double*>malloc(max(n_a, 1) * mx * sizeof(double))
    cdef double* pr = <double*>malloc(max(n_a, 1) * mx * sizeof(double))
    cdef int64_t* n_tp = <int64_t*>malloc(max(n_a, 1) * sizeof(int64_t))
    cdef double* tpc = <double*>malloc(max(n_a, 1) * sizeof(double))
    cdef double* fpc = <double*>malloc(max(n_a, 1) * sizeof(double))
    cdef int64_t* sel = <int64_t*>malloc(mx * sizeof(int64_t))
    if (neg == NULL or order == NULL or tmp == NULL or sorted_codes == NULL or srank == NULL
            or rc == NULL or pr == NULL or n_tp == NULL or tpc == NULL or fpc == NULL
            or sel == NULL):
        free(neg); free(order); free(tmp); free(sorted_codes); free(srank); free(rc)
        free(pr); free(n_tp); free(tpc); free(fpc); free(sel)
        raise MemoryError()
    with nogil:
        for qi in range(q0, q1):
            c = cls_seq[qi]
            s0 = cls_start[c]
            n_c = cls_start[c + 1] - s0
            any_gt = False
            for a in range(n_a):
                if npig[c, a] > 0:
                    any_gt = True
            if not any_gt:
                continue
            for j in range(n_c):
                neg[j] = -score[pos[s0 + j]]
            _argsort(neg, order, tmp, n_c)
            for j in range(n_c):
                p = pos[s0 + order[j]]
                srank[j] = rank[p]
                for t in range(n_t):
                    sorted_codes[j * n_t + t] = codes[p, t]
            # recall and precision at the TPs only: the precision envelope at a recall
            # threshold is always reached at a TP (an FP entry repeats the TP count with a
            # larger denominator)
            for mi in range(n_m):
                md_ = max_dets[mi]
                n_sel = 0
                for j in range(n_c):
                    if srank[j] < md_:
                        sel[n_sel] = j
                        n_sel += 1
                for t in range(n_t):
                    for a in range(n_a):
                        n_tp[a] = 0
                        tpc[a] = 0.0
                        fpc[a] = 0.0
                    for kk in range(n_sel):
                        code = sorted_codes[sel[kk] * n_t + t]
                        for a in range(n_a):
                            if code & ig_bits[a]:
                                continue
                            if code & tp_bits[a]:
                                tpc[a] += 1.0
                                if npig[c, a] > 0:
                                    qq = n_tp[a]
                                    rc[a * mx + qq] = tpc[a] / npig[c, a]
                                    pr[a * mx + qq] = tpc[a] / (fpc[a] + tpc[a] + eps)
                                    n_tp[a] = qq + 1
                            else:
                                fpc[a] += 1.0
                    for a in range(n_a):
                        n_pos = npig[c, a]
                        if n_pos == 0:
                            continue
                        recall[t, c, a, mi] = tpc[a] / n_pos
                        cnt = n_tp[a]
                        i = cnt - 1
                        while i > 0:
                            if pr[a * mx + i] > pr[a * mx + i - 1]:
                                pr[a * mx + i - 1] = pr[a * mx + i]
                            i -= 1
                        j = 0
                        for r in range(n_r):
                            while j < cnt and rc[a * mx + j] < rec_thrs[r]:
                                j += 1
                            if j < cnt:
                                precision[t, r, c, a, mi] = pr[a * mx + j]
                            else:
                                precision[t, r, c, a, mi] = 0.0
    free(neg); free(order); free(tmp); free(sorted_codes); free(srank); free(rc)
    free(pr); free(n_tp); free(tpc); free(fpc); free(sel)


def json_split(const uint8_t[::1] buf, int64_t start, int64_t depth, bint in_str, bint esc):
    """Scan json bytes ``buf[start:]`` of a top-level list, carrying the scanner state
    (nesting ``depth``, inside a string, after a backslash) across blocks.

    Returns the position of the last comma between top-level items (-1 if none), the
    position of the list's closing bracket (-1 if not reached) and the new state. Strings
    are skipped with their escapes, so brackets and commas inside them do not count.
    """
    cdef int64_t last = -1, end = -1, i
    cdef uint8_t ch
    with nogil:
        for i in range(start, buf.shape[0]):
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


# ---- compressed RLE strings (calibkit.detection.masks) ----------------------------------------

cdef int64_t _check_one(const uint8_t* buf, int64_t p, int64_t end,
                        int64_t pixels) noexcept nogil:
    """0 if ``buf[p:end]`` decodes (as pycocotools' ``rleFrString`` does) into runs adding
    up to ``pixels``, else the reason (1 to 5)."""
    cdef int64_t m = 0, prev2 = 0, prev1 = 0, total = 0, x, k, ch
    cdef bint more
    while p < end:
        x = 0
        k = 0
        more = True
        while more:
            if p >= end:
                return 2
            ch = <int64_t>buf[p] - 48
            if ch < 0 or ch > 63:
                return 1
            if k >= 6:
                return 3
            x |= (ch & 0x1F) << (5 * k)
            more = (ch & 0x20) != 0
            p += 1
            k += 1
            if not more and (ch & 0x10) != 0:
                x |= -((<int64_t>1) << (5 * k))  # sign extension
        if m > 2:
            x += prev2
        if x < 0 or x > <int64_t>4294967295:
            return 4
        total += x
        prev2 = prev1
        prev1 = x
        m += 1
    if total != pixels:
        return 5
    return 0


def check_counts(const uint8_t[::1] buf, const int64_t[::1] offsets,
                 const int64_t[::1] pixels, int64_t[::1] why, int64_t i0, int64_t i1):
    """Masks ``i0:i1``: ``why[i]`` = :func:`_check_one` of mask ``i``."""
    cdef int64_t i
    with nogil:
        for i in range(i0, i1):
            why[i] = _check_one(&buf[0] if buf.shape[0] else NULL, offsets[i],
                                offsets[i + 1], pixels[i])


# ---- mask IoU of compressed RLEs (pycocotools' maskApi.c, operation by operation) ----------

cdef int64_t _rle_decode(const uint8_t* s, int64_t n, uint32_t* out) noexcept nogil:
    """``rleFrString``: the run lengths of a compressed RLE string (checked beforehand by
    :func:`check_counts`) into ``out``; returns their number."""
    cdef int64_t m = 0, p = 0, k, x, c
    cdef bint more
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            c = <int64_t>s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = (c & 0x20) != 0
            p += 1
            k += 1
            if not more and (c & 0x10) != 0:
                x |= -((<int64_t>1) << (5 * k))
        if m > 2:
            x += out[m - 2]
        out[m] = <uint32_t>x
        m += 1
    return m


cdef void _rle_bbox(const uint32_t* cnts, int64_t m, uint32_t h, uint32_t w,
                    double* bb) noexcept nogil:
    """``rleToBbox`` of one mask as pycocotools 2.0.x computes it (the runs of ones only,
    zero-length runs skipped; unsigned 32-bit arithmetic as in C; an empty or zero-height
    mask has the box 0, 0, 0, 0)."""
    cdef uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0, start, y_start, x_start, y_end
    cdef uint32_t x_end
    cdef int64_t j
    m = (m // 2) * 2
    if m == 0 or h == 0:
        bb[0] = 0.0
        bb[1] = 0.0
        bb[2] = 0.0
        bb[3] = 0.0
        return
    for j in range(m):
        start = cc  # where this run starts
        cc += cnts[j]  # where the next one starts
        if j % 2 == 0 or cnts[j] == 0:  # a run of zeros, or an empty run of ones
            continue
        y_start = start % h
        x_start = (start - y_start) // h
        y_end = (cc - 1) % h
        x_end = (cc - 1 - y_end) // h
        if x_start < xs:
            xs = x_start
        if x_end > xe:
            xe = x_end
        if x_start < x_end:  # the run crosses columns
            ys = 0
            ye = h - 1
        else:
            if y_start < ys:
                ys = y_start
            if y_end > ye:
                ye = y_end
    bb[0] = xs
    bb[2] = <uint32_t>(xe - xs + 1)
    bb[1] = ys
    bb[3] = <uint32_t>(ye - ys + 1)


cdef double _rle_iou(const uint32_t* dc, int64_t ka, const uint32_t* gc, int64_t kb,
                     bint crowd) noexcept nogil:
    """``rleIou`` of two masks of one size whose boxes overlap: intersection over union
    (over the detection's area for a crowd region)."""
    cdef uint32_t c, ca, cb, ct = 1, i = 0, u = 0
    cdef int64_t a = 1, b = 1, j
    cdef bint va = False, vb = False
    ca = dc[0]
    cb = gc[0]
    while ct > 0:
        c = ca if ca < cb else cb
        if va or vb:
            u += c
            if va and vb:
                i += c
        ct = 0
        ca -= c
        if not ca and a < ka:
            ca = dc[a]
            a += 1
            va = not va
        ct += ca
        cb -= c
        if not cb and b < kb:
            cb = gc[b]
            b += 1
            vb = not vb
        ct += cb
    if i == 0:
        u = 1
    elif crowd:  # rleArea of the detection
        u = 0
        j = 1
        while j < ka:
            u += dc[j]
            j += 2
    return <double>i / <double>u


def rle_box_area(const uint8_t[::1] buf, const int64_t[::1] off,
                 const int64_t[:, ::1] size, const int64_t[::1] rows, double[:, ::1] box,
                 double[::1] area, int64_t i0, int64_t i1):
    """Masks ``rows[i0:i1]``: ``box[r]`` = pycocotools' ``toBbox`` (``rleToBbox``) and
    ``area[r]`` = its ``area`` (``rleArea``: the sum of the runs of ones) of mask ``r``."""
    cdef int64_t i, r, m, j, most = 1
    cdef uint32_t a
    for i in range(i0, i1):
        if off[rows[i] + 1] - off[rows[i]] > most:
            most = off[rows[i] + 1] - off[rows[i]]
    cdef uint32_t* cnts = <uint32_t*>malloc(most * sizeof(uint32_t))
    if cnts == NULL:
        raise MemoryError()
    cdef double bb[4]
    with nogil:
        for i in range(i0, i1):
            r = rows[i]
            m = _rle_decode(&buf[off[r]] if off[r + 1] > off[r] else NULL,
                            off[r + 1] - off[r], cnts)
            _rle_bbox(cnts, m, <uint32_t>size[r, 0], <uint32_t>size[r, 1], bb)
            for j in range(4):
                box[r, j] = bb[j]
            a = 0
            j = 1
            while j < m:
                a += cnts[j]
                j += 2
            area[r] = a
    free(cnts)


cdef int _uint_cmp(const void* a, const void* b) noexcept nogil:
    cdef uint32_t c = (<const uint32_t*>a)[0], d = (<const uint32_t*>b)[0]
    return 1 if c > d else (-1 if c < d else 0)


cdef inline int _iabs(int v) noexcept nogil:
    return -v if v < 0 else v


cdef int64_t _rle_fr_poly(const double* xy, int64_t k, size_t h, size_t w,
                          uint32_t** out) noexcept nogil:
    """pycocotools' ``rleFrPoly`` (the polygon of ``k`` points ``xy``, upsampled 5x along
    its boundary, rasterised column by column), line by line with its C types; the runs in
    ``out[0]`` (malloc'ed, freed by the caller). Returns their number, or -1 when out of
    memory."""
    cdef int64_t j, m = 0, kk
    cdef double scale = 5.0, s, xd, yd
    cdef int xs, xe, ys, ye, dx, dy, t, d, flip
    cdef uint32_t p, tt
    cdef int* x = <int*>malloc((k + 1) * sizeof(int))
    cdef int* y = <int*>malloc((k + 1) * sizeof(int))
    cdef int* u = NULL
    cdef int* v = NULL
    cdef uint32_t* a = NULL
    cdef uint32_t* b = NULL
    if x == NULL or y == NULL:
        free(x); free(y)
        return -1
    for j in range(k):
        x[j] = <int>(scale * xy[j * 2 + 0] + .5)
    x[k] = x[0]
    for j in range(k):
        y[j] = <int>(scale * xy[j * 2 + 1] + .5)
    y[k] = y[0]
    for j in range(k):
        dx = _iabs(x[j] - x[j + 1])
        dy = _iabs(y[j] - y[j + 1])
        m += <uint32_t>(dx if <uint32_t>dx > <uint32_t>dy else dy) + 1
    u = <int*>malloc(max(m, 1) * sizeof(int))
    v = <int*>malloc(max(m, 1) * sizeof(int))
    if u == NULL or v == NULL:
        free(x); free(y); free(u); free(v)
        return -1
    m = 0
    for j in range(k):
        xs = x[j]
        xe = x[j + 1]
        ys = y[j]
        ye = y[j + 1]
        dx = _iabs(xe - xs)
        dy = _iabs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            t = xs
            xs = xe
            xe = t
            t = ys
            ys = ye
            ye = t
        # 0 / 0 for a repeated point, as in C (the loop below then runs once)
        s = (<double>(ye - ys)) / dx if dx >= dy else (<double>(xe - xs)) / dy
        if dx >= dy:
            for d in range(dx + 1):
                t = dx - d if flip else d
                u[m] = t + xs
                v[m] = <int>(ys + s * t + .5)
                m += 1
        else:
            for d in range(dy + 1):
                t = dy - d if flip else d
                v[m] = t + ys
                u[m] = <int>(xs + s * t + .5)
                m += 1
    # points along the y-boundary, downsampled
    free(x)
    free(y)
    kk = m
    m = 0
    x = <int*>malloc(max(kk, 1) * sizeof(int))
    y = <int*>malloc(max(kk, 1) * sizeof(int))
    if x == NULL or y == NULL:
        free(x); free(y); free(u); free(v)
        return -1
    for j in range(1, kk):
        if u[j] != u[j - 1]:
            xd = <double>(u[j] if u[j] < u[j - 1] else u[j] - 1)
            xd = (xd + .5) / scale - .5
            if floor(xd) != xd or xd < 0 or xd > <double>(w - 1):
                continue
            yd = <double>(v[j] if v[j] < v[j - 1] else v[j - 1])
            yd = (yd + .5) / scale - .5
            if yd < 0:
                yd = 0
            elif yd > <double>h:
                yd = <double>h
            yd = ceil(yd)
            x[m] = <int>xd
            y[m] = <int>yd
            m += 1
    # the runs from the boundary points
    kk = m
    a = <uint32_t*>malloc((kk + 1) * sizeof(uint32_t))
    if a == NULL:
        free(x); free(y); free(u); free(v)
        return -1
    for j in range(kk):
        a[j] = <uint32_t>(x[j] * <int>h + y[j])
    a[kk] = <uint32_t>(h * w)
    kk += 1
    free(u); free(v); free(x); free(y)
    qsort(a, kk, sizeof(uint32_t), _uint_cmp)
    p = 0
    for j in range(kk):
        tt = a[j]
        a[j] -= p
        p = tt
    b = <uint32_t*>malloc(kk * sizeof(uint32_t))
    if b == NULL:
        free(a)
        return -1
    j = 0
    m = 0
    b[m] = a[j]
    m += 1
    j += 1
    while j < kk:
        if a[j] > 0:
            b[m] = a[j]
            m += 1
            j += 1
        else:
            j += 1
            if j < kk:
                b[m - 1] += a[j]
                j += 1
    free(a)
    out[0] = b
    return m


cdef int64_t _rle_to_string(const uint32_t* cnts, int64_t m, uint8_t* s) noexcept nogil:
    """pycocotools' ``rleToString`` into ``s`` (room for 7 bytes per run); returns the
    length."""
    cdef int64_t i, p = 0
    cdef long x
    cdef bint more
    cdef char c
    for i in range(m):
        x = <long>cnts[i]
        if i > 2:
            x -= <long>cnts[i - 2]
        more = True
        while more:
            c = x & 0x1f
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            c += 48
            s[p] = c
            p += 1
    return p


def polygon_strings(const double[::1] flat, const int64_t[::1] start,
                    const int64_t[::1] end, const int64_t[:, ::1] hw, int64_t i0, int64_t i1):
    """Polygons ``i0:i1`` (polygon ``i`` = the coordinates ``flat[start[i]:end[i]]``, x
    and y in turn, on an image of ``hw[i]`` = height, width) as the compressed RLE strings of
    pycocotools' ``frPyObjects`` (``rleFrPoly`` then ``rleToString``): their bytes joined
    and their lengths."""
    import numpy as np

    lengths = np.zeros(max(i1 - i0, 0), np.int64)
    cdef int64_t[::1] ln = lengths
    cdef int64_t cap = 1 << 16, used = 0, i, m, n
    cdef uint8_t* buf = <uint8_t*>malloc(cap)
    cdef uint8_t* grown
    cdef uint32_t* cnts = NULL
    cdef bint failed = False
    if buf == NULL:
        raise MemoryError()
    with nogil:
        for i in range(i0, i1):
            m = _rle_fr_poly(&flat[start[i]], (end[i] - start[i]) // 2, <size_t>hw[i, 0],
                             <size_t>hw[i, 1], &cnts)
            if m < 0:
                failed = True
                break
            if used + 7 * m + 1 > cap:  # 7 characters hold any run of 2**29 pixels
                while used + 7 * m + 1 > cap:
                    cap *= 2
                grown = <uint8_t*>realloc(buf, cap)
                if grown == NULL:
                    free(cnts)
                    failed = True
                    break
                buf = grown
            n = _rle_to_string(cnts, m, buf + used)
            free(cnts)
            cnts = NULL
            ln[i - i0] = n
            used += n
    if failed:
        free(buf)
        raise MemoryError()
    out = (<char*>buf)[:used] if used else b""
    free(buf)
    return out, lengths


def mask_iou_groups(const uint8_t[::1] d_buf, const int64_t[::1] d_off,
                    const int64_t[:, ::1] d_size, const int64_t[::1] det,
                    const int64_t[::1] d_lo, const int64_t[::1] d_hi,
                    const uint8_t[::1] g_buf, const int64_t[::1] g_off,
                    const int64_t[:, ::1] g_size, const int64_t[::1] ann,
                    const int64_t[::1] g_lo, const int64_t[::1] g_hi,
                    const uint8_t[::1] crowd, const int64_t[::1] pre_off,
                    double[::1] pre_iou, int64_t k0, int64_t k1):
    """Groups ``k0:k1``: the mask IoU of detections ``det[d_lo[k]:d_hi[k]]`` (rows of the
    detection masks ``d_buf`` / ``d_off`` / ``d_size``) with annotations
    ``ann[g_lo[k]:g_hi[k]]`` (rows of ``g_buf`` / ``g_off`` / ``g_size``; ``crowd`` aligned
    with ``ann``), written row-major (detection, annotation) at ``pre_iou[pre_off[k]:]``.

    pycocotools' ``rleIou``: the boxes of the masks (``rleToBbox``) and their ``bbIou``
    first; pairs whose boxes overlap get the exact RLE intersection over union (over the
    detection's area for a crowd region), the others keep the box IoU, 0. Masks of
    different sizes get -1, as in pycocotools (calibkit checks the sizes before).
    """
    cdef int64_t k, nd, ng, d, g, r, chars = 1, most = 1, t, o, j
    for k in range(k0, k1):
        nd = d_hi[k] - d_lo[k]
        ng = g_hi[k] - g_lo[k]
        if nd == 0 or ng == 0:
            continue
        t = 0
        for j in range(d_lo[k], d_hi[k]):
            t += d_off[det[j] + 1] - d_off[det[j]]
        for j in range(g_lo[k], g_hi[k]):
            t += g_off[ann[j] + 1] - g_off[ann[j]]
        if t > chars:
            chars = t
        if nd + ng > most:
            most = nd + ng
    cdef uint32_t* cnts = <uint32_t*>malloc((chars + most) * sizeof(uint32_t))
    cdef int64_t* start = <int64_t*>malloc((most + 1) * sizeof(int64_t))
    cdef double* bb = <double*>malloc(4 * most * sizeof(double))
    if cnts == NULL or start == NULL or bb == NULL:
        free(cnts); free(start); free(bb)
        raise MemoryError()
    cdef double w, h, inter, u, da, ga
    cdef const double* D
    cdef const double* G
    with nogil:
        for k in range(k0, k1):
            nd = d_hi[k] - d_lo[k]
            ng = g_hi[k] - g_lo[k]
            if nd == 0 or ng == 0:
                continue
            # decode the group's masks: detections 0..nd-1, then annotations nd..nd+ng-1
            start[0] = 0
            for d in range(nd):
                r = det[d_lo[k] + d]
                start[d + 1] = start[d] + _rle_decode(&d_buf[d_off[r]] if d_off[r + 1] > d_off[r]
                                                      else NULL, d_off[r + 1] - d_off[r],
                                                      cnts + start[d])
                _rle_bbox(cnts + start[d], start[d + 1] - start[d], <uint32_t>d_size[r, 0],
                          <uint32_t>d_size[r, 1], bb + 4 * d)
            for g in range(ng):
                r = ann[g_lo[k] + g]
                start[nd + g + 1] = start[nd + g] + _rle_decode(
                    &g_buf[g_off[r]] if g_off[r + 1] > g_off[r] else NULL,
                    g_off[r + 1] - g_off[r], cnts + start[nd + g])
                _rle_bbox(cnts + start[nd + g], start[nd + g + 1] - start[nd + g],
                          <uint32_t>g_size[r, 0], <uint32_t>g_size[r, 1], bb + 4 * (nd + g))
            o = pre_off[k]
            for g in range(ng):
                G = bb + 4 * (nd + g)
                ga = G[2] * G[3]
                for d in range(nd):
                    D = bb + 4 * d
                    da = D[2] * D[3]
                    pre_iou[o + d * ng + g] = 0.0
                    # bbIou (fmin / fmax of finite values)
                    w = (D[2] + D[0] if D[2] + D[0] < G[2] + G[0] else G[2] + G[0]) - (
                        D[0] if D[0] > G[0] else G[0])
                    if w <= 0:
                        continue
                    h = (D[3] + D[1] if D[3] + D[1] < G[3] + G[1] else G[3] + G[1]) - (
                        D[1] if D[1] > G[1] else G[1])
                    if h <= 0:
                        continue
                    inter = w * h
                    u = da if crowd[g_lo[k] + g] else da + ga - inter
                    if not inter / u > 0:
                        pre_iou[o + d * ng + g] = inter / u
                        continue
                    r = det[d_lo[k] + d]
                    j = ann[g_lo[k] + g]
                    if d_size[r, 0] != g_size[j, 0] or d_size[r, 1] != g_size[j, 1]:
                        pre_iou[o + d * ng + g] = -1.0
                        continue
                    pre_iou[o + d * ng + g] = _rle_iou(
                        cnts + start[d], start[d + 1] - start[d], cnts + start[nd + g],
                        start[nd + g + 1] - start[nd + g], crowd[g_lo[k] + g])
    free(cnts); free(start); free(bb)


# ---- COCO results json straight into columns ---------------------------------------------------
#
# A results file is a json list of ``{"image_id": int, "category_id": int, "bbox": [x, y, w,
# h], "score": number}`` (with masks, a compressed RLE ``segmentation`` and an optional
# ``bbox``). :func:`parse_results` reads exactly that grammar (keys in any order, json
# whitespace anywhere, other fields holding a number, true, false or null skipped) into
# columns; anything else (another field holding a string, list or object, a duplicate or
# missing key, a string escape, a number outside the json grammar or the types' ranges, a
# score outside [0, 1], an infinite number) is reported as unsupported and the caller reads
# the file with msgspec's typed decoder instead, which accepts or words the error. Numbers
# are converted with correct rounding: Clinger's exact fast path, then the Eisel-Lemire
# algorithm (Lemire, "Number parsing at a gigabyte per second", Software: Practice and
# Experience 51(8), 2021; the form of Go's strconv.eiselLemire64), then the C library's
# strtod (correctly rounded in glibc, musl and macOS) for the rare cases those leave open.


cdef enum:
    PARSE_MORE = 0  # the data ends inside an item: read more and call again from ``next``
    PARSE_END = 1  # the list's closing bracket was reached (at ``next``)
    PARSE_FULL = 2  # the columns are full: grow them and call again from ``next``
    PARSE_UNSUPPORTED = 3  # not this grammar (or not json): read the file another way
    PARSE_STOP = 4  # the item separator at or after ``stop`` was reached (see ``next``)

cdef int64_t POW10_MIN = -342
cdef int64_t POW10_MAX = 308
cdef uint64_t POW10_HI[651]
cdef uint64_t POW10_LO[651]
cdef double EXACT_POW10[23]


def _fill_tables():
    """128-bit truncated mantissas of 10**e for e in [-342, 308] (the top bit set), and
    the exact doubles 10**0..10**22."""
    cdef object e, v, m, nb
    for e in range(POW10_MIN, POW10_MAX + 1):
        if e >= 0:
            v = 10 ** e
            nb = v.bit_length()
            if nb > 128:
                m = v >> (nb - 128)
            else:
                m = v << (128 - nb)
        else:
            v = 10 ** (-e)
            nb = v.bit_length()
            m = (1 << (127 + nb)) // v
        POW10_HI[e - POW10_MIN] = m >> 64
        POW10_LO[e - POW10_MIN] = m & 0xFFFFFFFFFFFFFFFF
    for e in range(23):
        EXACT_POW10[e] = float(10 ** e)


_fill_tables()


cdef extern from *:
    """
    #include <stdint.h>
    /* the 128-bit product of a and b, and the leading zeros of x > 0: compiler builtins
       where there are, portable C elsewhere */
    #if defined(__SIZEOF_INT128__)
    static inline void ck_mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
        unsigned __int128 r = (unsigned __int128)a * b;
        *hi = (uint64_t)(r >> 64);
        *lo = (uint64_t)r;
    }
    #else
    static inline void ck_mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
        uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
        uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
        uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
        *lo = (mid << 32) | (uint32_t)p00;
        *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    }
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    static inline int ck_clz64(uint64_t x) { return __builtin_clzll(x); }
    #else
    static inline int ck_clz64(uint64_t x) {
        int n = 0;
        while (!(x & ((uint64_t)1 << 63))) { x <<= 1; n++; }
        return n;
    }
    #endif
    """
    void ck_mul64(uint64_t a, uint64_t b, uint64_t* hi, uint64_t* lo) noexcept nogil
    int ck_clz64(uint64_t x) noexcept nogil


cdef inline bint _eisel_lemire(uint64_t man, int64_t e10, double* out) noexcept nogil:
    """``man * 10**e10`` correctly rounded into ``out`` (man > 0, at most 19 digits);
    False where the algorithm cannot decide (the caller then uses strtod)."""
    cdef int clz
    cdef uint64_t ret_exp2, x_hi, x_lo, y_hi, y_lo, merged_hi, merged_lo, msb, ret_man, bits
    cdef int64_t i
    if e10 < POW10_MIN or e10 > POW10_MAX:
        return False
    i = e10 - POW10_MIN
    clz = ck_clz64(man)
    man <<= clz
    # floor(e10 * log2(10)) + 64 + 1023 - clz, as Go writes it (arithmetic shift)
    ret_exp2 = <uint64_t>(((217706 * e10) >> 16) + 64 + 1023) - <uint64_t>clz
    ck_mul64(man, POW10_HI[i], &x_hi, &x_lo)
    if (x_hi & 0x1FF) == 0x1FF and x_lo + man < man:  # wider approximation
        ck_mul64(man, POW10_LO[i], &y_hi, &y_lo)
        merged_hi = x_hi
        merged_lo = x_lo + y_hi
        if merged_lo < x_lo:
            merged_hi += 1
        if (merged_hi & 0x1FF) == 0x1FF and merged_lo + 1 == 0 and y_lo + man < man:
            return False
        x_hi = merged_hi
        x_lo = merged_lo
    msb = x_hi >> 63
    ret_man = x_hi >> (msb + 9)
    ret_exp2 -= 1 ^ msb
    if x_lo == 0 and (x_hi & 0x1FF) == 0 and (ret_man & 3) == 1:  # half-way ambiguity
        return False
    ret_man += ret_man & 1
    ret_man >>= 1
    if (ret_man >> 53) > 0:
        ret_man >>= 1
        ret_exp2 += 1
    if ret_exp2 - 1 >= 0x7FF - 1:  # subnormal, zero, infinite: strtod decides
        return False
    bits = (ret_exp2 << 52) | (ret_man & ((<uint64_t>1 << 52) - 1))
    memcpy(out, &bits, 8)
    return True


cdef inline bint _is_ws(uint8_t c) noexcept nogil:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline int64_t _skip_ws(const uint8_t* b, int64_t p, int64_t n) noexcept nogil:
    while p < n and _is_ws(b[p]):
        p += 1
    return p


cdef int64_t _number(const uint8_t* b, int64_t p, int64_t n, bint integer, double* fval,
                     int64_t* ival, int* status) noexcept nogil:
    """Parse the json number at ``b[p]``; returns the position after it. ``status``: 0 ok,
    1 the data ends inside it (or right after it: its end is not known), 2 not supported
    (not a json number; with ``integer``, not an integer in int64)."""
    cdef int64_t start = p, e10 = 0, expo = 0, nd = 0, k
    cdef uint64_t w = 0
    cdef bint neg = False, many = False, eneg = False, frac = False
    cdef uint8_t c
    cdef char tok[512]
    cdef char* end
    cdef double v
    status[0] = 0
    if p < n and b[p] == 45:  # -
        neg = True
        p += 1
    if p >= n:
        status[0] = 1
        return p
    c = b[p]
    if c == 48:  # 0: no more integer digits
        p += 1
    elif 49 <= c <= 57:  # json integers have no leading zero
        while p < n:
            c = b[p] - 48  # wraps around below "0"
            if c > 9:
                break
            if nd < 19:
                w = w * 10 + c
                nd += 1
            else:  # beyond 19 digits: only the power of ten is kept
                e10 += 1
                if c:
                    many = True
            p += 1
    else:
        status[0] = 2
        return p
    if p < n and b[p] == 46:  # .
        frac = True
        p += 1
        k = p
        if w == 0:  # leading zeros of the fraction: only the power of ten
            while p < n and b[p] == 48:
                e10 -= 1
                p += 1
        while p < n:
            c = b[p] - 48
            if c > 9:
                break
            if nd < 19:
                w = w * 10 + c
                nd += 1
                e10 -= 1
            elif c:
                many = True
            p += 1
        if p == k and p < n:  # "1." is not json
            status[0] = 2
            return p
    if p < n and (b[p] == 101 or b[p] == 69):  # e E
        frac = True
        p += 1
        if p < n and (b[p] == 43 or b[p] == 45):
            eneg = b[p] == 45
            p += 1
        k = p
        while p < n and 48 <= b[p] <= 57:
            if expo < 100000:
                expo = expo * 10 + (b[p] - 48)
            p += 1
        if p == k and p < n:
            status[0] = 2
            return p
    if p >= n:  # the number may go on in the next block
        status[0] = 1
        return p
    e10 += -expo if eneg else expo
    if integer:
        if frac or many or w > ((<uint64_t>1 << 63) - 1):
            # a fraction or exponent, or beyond int64 (-2**63 itself included): msgspec
            status[0] = 2
            return p
        ival[0] = -<int64_t>w if neg else <int64_t>w
        return p
    if w == 0 and not many:
        fval[0] = -0.0 if neg else 0.0
        return p
    if not many and w <= (<uint64_t>1 << 53) and -22 <= e10 <= 22:
        v = <double>w  # exact, and so is the power of ten: one rounding (Clinger)
        v = v * EXACT_POW10[e10] if e10 >= 0 else v / EXACT_POW10[-e10]
        fval[0] = -v if neg else v
        return p
    if not many and _eisel_lemire(w, e10, &v):
        fval[0] = -v if neg else v
        return p
    if p - start >= 511:
        status[0] = 2
        return p
    memcpy(tok, b + start, p - start)
    tok[p - start] = 0
    v = strtod(tok, &end)
    if end != tok + (p - start) or v - v != 0.0:  # NaN or infinite
        status[0] = 2  # a locale with another decimal point, or out of range: msgspec
        return p
    fval[0] = v
    return p


cdef inline int _key(const uint8_t* b, int64_t p, int64_t q) noexcept nogil:
    """Which field ``b[p:q]`` (the key without its quotes) names: 0 image_id,
    1 category_id, 2 bbox, 3 score, 4 segmentation, 5 size, 6 counts, -1 another."""
    cdef int64_t n = q - p
    if n == 8 and memcmp(b + p, b"image_id", 8) == 0:
        return 0
    if n == 11 and memcmp(b + p, b"category_id", 11) == 0:
        return 1
    if n == 4 and memcmp(b + p, b"bbox", 4) == 0:
        return 2
    if n == 5 and memcmp(b + p, b"score", 5) == 0:
        return 3
    if n == 12 and memcmp(b + p, b"segmentation", 12) == 0:
        return 4
    if n == 4 and memcmp(b + p, b"size", 4) == 0:
        return 5
    if n == 6 and memcmp(b + p, b"counts", 6) == 0:
        return 6
    return -1



cdef inline int64_t _expect(const uint8_t* b, int64_t p, int64_t n, uint8_t ch,
                            int* st) noexcept nogil:
    """The position after the byte ``ch`` at ``b[p]`` (json whitespace before it skipped);
    ``st`` 1 if the data ends first, 2 if another byte is there."""
    p = _skip_ws(b, p, n)
    if p >= n:
        st[0] = 1
    elif b[p] != ch:
        st[0] = 2
    else:
        p += 1
    return p


cdef int64_t _numbers(const uint8_t* b, int64_t p, int64_t n, bint integer, int64_t k,
                      double* fval, int64_t* ival, int* st) noexcept nogil:
    """The json list of ``k`` numbers at ``b[p]`` (integers in int64 with ``integer``, into
    ``ival``; else doubles into ``fval``); returns the position after it."""
    cdef int64_t j, dummy = 0
    cdef double f
    p = _expect(b, p, n, 91, st)  # [
    for j in range(k):
        if st[0]:
            return p
        p = _skip_ws(b, p, n)
        if integer:
            p = _number(b, p, n, True, &f, &ival[j], st)
        else:
            p = _number(b, p, n, False, &fval[j], &dummy, st)
        if st[0]:
            return p
        p = _expect(b, p, n, 93 if j == k - 1 else 44, st)  # "]" after the last, "," before
    return p


cdef int64_t _skip_scalar(const uint8_t* b, int64_t p, int64_t n, int* st) noexcept nogil:
    """Skip the json number, ``true``, ``false`` or ``null`` at ``b[p]`` (the value of a
    field the results do not use, e.g. ``id`` or ``area``); other values (strings, lists,
    objects) are not skipped here: ``st`` 2, and the typed decoder reads the file."""
    cdef double f
    cdef int64_t i = 0, k
    if p >= n:
        st[0] = 1
        return p
    if b[p] == 116 or b[p] == 102 or b[p] == 110:  # t f n
        k = 4 if b[p] != 102 else 5
        if p + k > n:
            st[0] = 1
            return p
        if not (memcmp(b + p, b"true", 4) == 0 or memcmp(b + p, b"null", 4) == 0
                or (k == 5 and memcmp(b + p, b"false", 5) == 0)):
            st[0] = 2
            return p
        if p + k >= n:  # the literal may go on in the next block
            st[0] = 1
            return p
        if (48 <= b[p + k] <= 57) or (97 <= b[p + k] <= 122) or (65 <= b[p + k] <= 90):
            st[0] = 2  # e.g. "nullx": not json
            return p
        return p + k
    return _number(b, p, n, False, &f, &i, st)


cdef int64_t _key_at(const uint8_t* b, int64_t p, int64_t n, int* key,
                     int* st) noexcept nogil:
    """The key at ``b[p]`` (a quoted name without escapes) and its colon; returns the
    position of the value. ``st``: 0 ok, 1 the data ends, 2 not this grammar."""
    cdef int64_t q
    if b[p] != 34:  # a key's quote
        st[0] = 2
        return p
    q = p + 1
    while q < n and b[q] != 34 and b[q] != 92:
        q += 1
    if q >= n:
        st[0] = 1
        return p
    if b[q] == 92:  # an escape in a key: msgspec
        st[0] = 2
        return p
    key[0] = _key(b, p + 1, q)
    p = _skip_ws(b, q + 1, n)
    if p >= n:
        st[0] = 1
        return p
    if b[p] != 58:  # :
        st[0] = 2
        return p
    return _skip_ws(b, p + 1, n)


cdef int64_t _rle_value(const uint8_t* b, int64_t p, int64_t n, int64_t* h, int64_t* w,
                        uint8_t* counts, int64_t* c, int* st) noexcept nogil:
    """A compressed RLE (size and counts, keys in any order) at ``b[p]``; the string's
    bytes are appended at ``counts[c[0]]`` (the only escape read here is an escaped
    backslash; the characters are checked with the whole string: pycocotools' alphabet is
    ``0`` to ``o``); sizes must be at least 1 and ``h * w <= 2**29``."""
    cdef int key = -1, seen = 0
    cdef int64_t q, hw[2]
    cdef double f
    if p >= n:
        st[0] = 1
        return p
    if b[p] != 123:
        st[0] = 2
        return p
    p += 1
    while True:
        p = _skip_ws(b, p, n)
        if p >= n:
            st[0] = 1
            return p
        p = _key_at(b, p, n, &key, st)
        if st[0]:
            return p
        if (key != 5 and key != 6) or (seen >> key) & 1:
            st[0] = 2
            return p
        seen |= 1 << key
        if key == 5:  # size: [h, w]
            p = _numbers(b, p, n, True, 2, &f, hw, st)
            if st[0]:
                return p
            h[0] = hw[0]
            w[0] = hw[1]
            if h[0] < 1 or w[0] < 1 or h[0] > (1 << 29) or w[0] > (1 << 29) or (
                    h[0] * w[0] > (1 << 29)):
                st[0] = 2
                return p
        else:  # counts: a string
            if p >= n:
                st[0] = 1
                return p
            if b[p] != 34:
                st[0] = 2
                return p
            p += 1
            while True:  # runs without a quote or backslash, copied at once
                q = p
                while q < n and b[q] != 34 and b[q] != 92:
                    q += 1
                memcpy(counts + c[0], b + p, q - p)
                c[0] += q - p
                p = q
                if p >= n:
                    st[0] = 1
                    return p
                if b[p] == 34:
                    p += 1
                    break
                # a backslash: only an escaped backslash (the other characters a json
                # string may hold are checked with the whole string, as pycocotools reads it)
                if p + 1 >= n:
                    st[0] = 1
                    return p
                if b[p + 1] != 92:
                    st[0] = 2
                    return p
                counts[c[0]] = 92
                c[0] += 1
                p += 2
        p = _skip_ws(b, p, n)
        if p >= n:
            st[0] = 1
            return p
        if b[p] == 44:
            p += 1
            continue
        if b[p] == 125:
            p += 1
            break
        st[0] = 2
        return p
    if seen != 96:  # both size and counts
        st[0] = 2
    return p


def parse_results(const uint8_t[::1] data, int64_t pos, bint first, bint eof,
                  int64_t[::1] img, int64_t[::1] cat, double[::1] score, double[:, ::1] box,
                  double[::1] area, int64_t n0, int64_t stop, bint segm,
                  int64_t[:, ::1] msize, int64_t[::1] mend,
                  uint8_t[::1] counts, int64_t c0):
    """Results from ``data[pos:]`` into the columns from row ``n0`` on, until the columns
    are full, the data ends, the list closes or (``stop >= 0``) an item separator ``,``
    ends at or after ``stop``. ``first``: ``pos`` is where an item starts (just after the
    list's ``[`` or a ``,``); else ``pos`` is just after an item, where a ``,`` or the
    closing ``]`` follows.

    Items: ``{"image_id", "category_id", "bbox", "score"}``; with ``segm``,
    ``{"image_id", "category_id", "score", "segmentation": {"size": [h, w], "counts":
    "..."}}`` and an optional ``bbox``, the masks' sizes in ``msize``, their strings
    (checked as :func:`check_counts` does) appended to ``counts`` from ``c0`` on (the caller
    leaves room for as many bytes as the data has), each row's end offset in ``mend``.
    ``area`` = w * h of each box, -1 for a mask result without one (:func:`rle_box_area`
    then gives its box and area). Boxes with a negative width or height are left to the
    typed decoder (which words the error).

    Returns ``(status, n, next, next_first, c)``: :data:`PARSE_MORE`, ``_END``, ``_FULL``,
    ``_UNSUPPORTED`` or ``_STOP``; the rows filled (``n0 + n`` in all); where (and in which
    of the two states) to go on: for ``_STOP`` just after that separator, for ``_END`` the
    closing bracket; the end of the strings written.
    """
    cdef const uint8_t* b = &data[0] if data.shape[0] else NULL
    cdef int64_t n = data.shape[0], cap = img.shape[0], row = n0, p = pos, resume = pos
    cdef int64_t v_img = 0, v_cat = 0, j, dummy = 0, mh = 0, mw = 0, c = c0, c_item = c0
    cdef double v_score = 0.0, v_box[4]
    cdef double f
    cdef int key, seen, st, result = PARSE_MORE
    cdef int need = 27 if segm else 15  # the fields every item has
    cdef bint expect_sep = not first, resume_first = first
    cdef uint8_t* cbuf = &counts[0] if counts.shape[0] else NULL
    with nogil:
        while True:
            resume = p
            resume_first = not expect_sep
            c = c_item  # the strings of an unfinished item are dropped
            if row >= cap:
                result = PARSE_FULL
                break
            p = _skip_ws(b, p, n)
            if p >= n:
                result = PARSE_UNSUPPORTED if eof else PARSE_MORE
                break
            if expect_sep:
                if b[p] == 93:  # ] the list ends
                    result = PARSE_END
                    resume = p
                    break
                if b[p] != 44:  # ,
                    result = PARSE_UNSUPPORTED
                    break
                if stop >= 0 and p + 1 >= stop:  # the range of this call ends here
                    result = PARSE_STOP
                    resume = p + 1
                    resume_first = True
                    break
                p = _skip_ws(b, p + 1, n)
                if p >= n:
                    result = PARSE_UNSUPPORTED if eof else PARSE_MORE
                    break
            if b[p] != 123:  # {
                result = PARSE_UNSUPPORTED
                break
            p += 1
            seen = 0
            st = 0
            while True:  # the fields
                p = _skip_ws(b, p, n)
                if p >= n:
                    st = 1
                    break
                p = _key_at(b, p, n, &key, &st)
                if st:
                    break
                if key > 4:  # "size" and "counts" name no field of a result
                    key = -1
                if key < 0:  # another field: a number, true, false or null is skipped
                    p = _skip_scalar(b, p, n, &st)
                    if st:
                        break
                elif (key == 4 and not segm) or (seen >> key) & 1:
                    st = 2
                    break
                else:
                    seen |= 1 << key
                if key < 0:
                    pass
                elif key == 0:
                    p = _number(b, p, n, True, &f, &v_img, &st)
                elif key == 1:
                    p = _number(b, p, n, True, &f, &v_cat, &st)
                elif key == 3:
                    p = _number(b, p, n, False, &v_score, &dummy, &st)
                    if st == 0 and not (v_score >= 0.0 and v_score <= 1.0):
                        st = 2
                elif key == 4:
                    p = _rle_value(b, p, n, &mh, &mw, cbuf, &c, &st)
                else:  # bbox: [x, y, w, h]
                    p = _numbers(b, p, n, False, 4, v_box, &dummy, &st)
                if st:
                    break
                p = _skip_ws(b, p, n)
                if p >= n:
                    st = 1
                    break
                if b[p] == 44:  # , another field
                    p += 1
                    continue
                if b[p] == 125:  # } the item ends
                    p += 1
                    break
                st = 2
                break
            if st == 1:  # the data ends inside the item
                result = PARSE_UNSUPPORTED if eof else PARSE_MORE
                break
            if st == 2 or (seen & need) != need:  # not this grammar, or a field missing
                result = PARSE_UNSUPPORTED
                break
            if (seen & 4) and (v_box[2] < 0 or v_box[3] < 0):  # a negative size: msgspec
                result = PARSE_UNSUPPORTED
                break
            img[row] = v_img
            cat[row] = v_cat
            score[row] = v_score
            if seen & 4:
                for j in range(4):
                    box[row, j] = v_box[j]
                area[row] = v_box[2] * v_box[3]
            else:
                for j in range(4):
                    box[row, j] = 0.0
                area[row] = -1.0  # the mask's area, filled in by rle_box_area
            if segm:
                # a string pycocotools would misread: the typed path words the error
                if _check_one(cbuf, c_item, c, mh * mw) != 0:
                    result = PARSE_UNSUPPORTED
                    break
                msize[row, 0] = mh
                msize[row, 1] = mw
                mend[row] = c
            c_item = c
            row += 1
            expect_sep = True
    return result, row - n0, resume, resume_first, c_item


def next_item(const uint8_t[::1] data, int64_t pos):
    """The first position at or after ``pos`` just after ``}`` json-whitespace ``,`` followed
    by json-whitespace and ``{``: where an item starts in a file of :func:`parse_results`'
    grammar (inside an item, a ``},`` ends a mask's ``segmentation`` and a key follows);
    -1 if there is none. Other files are caught by the parse from there."""
    cdef int64_t n = data.shape[0], p = pos, q, r, found = -1
    with nogil:
        while p < n:
            if data[p] == 125:  # }
                q = p + 1
                while q < n and (data[q] == 32 or data[q] == 10 or data[q] == 13
                                 or data[q] == 9):
                    q += 1
                if q < n and data[q] == 44:
                    r = q + 1
                    while r < n and (data[r] == 32 or data[r] == 10 or data[r] == 13
                                     or data[r] == 9):
                        r += 1
                    if r < n and data[r] == 123:
                        found = q + 1
                        break
                p = q
            else:
                p += 1
    return found
