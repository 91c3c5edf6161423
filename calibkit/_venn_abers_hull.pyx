# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""The hull pass of inductive Venn-ABERS in C (Cython): :func:`upper_slopes` is
``calibkit.venn_abers._upper_slopes_py`` line by line, the same arithmetic in the same
order (the build turns off floating-point contraction), so both give the same bits."""

from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc


def upper_slopes(const double[::1] cw, const double[::1] cy):
    """p1 of each group from the cumulative diagram ``P_b = (cw[b], cy[b])``, b = 0..k (see
    ``calibkit.venn_abers._upper_slopes_py``)."""
    import numpy as np

    cdef int64_t k = cw.shape[0] - 1
    if k < 0 or cy.shape[0] != cw.shape[0]:
        raise ValueError("cw and cy: one point per group and one more, of equal length")
    out_arr = np.empty(k)
    cdef double[::1] out = out_arr
    cdef double* xs = <double*>malloc((2 * k + 2) * sizeof(double))
    cdef double* ys = <double*>malloc((2 * k + 2) * sizeof(double))
    cdef int64_t* stack = <int64_t*>malloc((k + 2) * sizeof(int64_t))
    if xs == NULL or ys == NULL or stack == NULL:
        free(xs); free(ys); free(stack)
        raise MemoryError()
    cdef int64_t a, r, pt, b, c, top, i, t, nx, q
    cdef double turn
    with nogil:
        # slots: Q_a at a (a = 0..k), P_b at k + 1 + b
        for a in range(k + 1):
            xs[a] = cw[a] - 1.0
            ys[a] = cy[a] - 1.0
            xs[k + 1 + a] = cw[a]
            ys[k + 1 + a] = cy[a]
        top = -1
        # lower hull of Q_0, P_0..P_k built from the right, so the top is the leftmost vertex
        for r in range(k + 2):
            pt = 2 * k + 1 - r if r <= k else 0
            while top >= 1:
                b = stack[top]
                c = stack[top - 1]
                turn = (xs[b] - xs[pt]) * (ys[c] - ys[pt]) - (ys[b] - ys[pt]) * (xs[c] - xs[pt])
                if turn > 0.0:
                    break
                top -= 1
            top += 1
            stack[top] = pt
        for i in range(1, k + 1):
            t = stack[top]
            nx = stack[top - 1]
            out[i - 1] = (ys[nx] - ys[t]) / (xs[nx] - xs[t])
            q = i  # Q_i
            turn = (xs[q] - xs[t]) * (ys[nx] - ys[t]) - (ys[q] - ys[t]) * (xs[nx] - xs[t])
            if turn <= 0.0:  # Q_i on or above the current edge: hull unchanged
                continue
            top -= 1
            while top >= 1:
                b = stack[top]
                c = stack[top - 1]
                turn = (xs[b] - xs[q]) * (ys[c] - ys[q]) - (ys[b] - ys[q]) * (xs[c] - xs[q])
                if turn > 0.0:
                    break
                top -= 1
            top += 1
            stack[top] = q
    free(xs); free(ys); free(stack)
    return out_arr
