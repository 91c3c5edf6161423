"""Isotonic calibration: a non-decreasing, piecewise-linear map fitted by PAV.

The pool-adjacent-violators solve itself is :func:`scipy.optimize.isotonic_regression`
(scipy >= 1.12; scikit-learn's ``isotonic_regression`` otherwise). calibkit adds tie pooling,
sample weights, soft targets, one-vs-rest multiclass (from :class:`BinaryCalibrator`) and an
optional rank-preserving ``strict`` mode (scikit-learn issue #16321).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from calibkit._validation import BOOLEAN, Array, Options
from calibkit.base import BinaryCalibrator

__all__ = ["IsotonicCalibration", "STRICT_SPREAD", "STRICT_TIE_TOL"]

#: ``strict=True`` moves a knot by at most this fraction of the gap to the neighbouring
#: block value (or to the bound 0 / 1 for the first / last block).
STRICT_SPREAD = 1e-3

#: ``strict=True`` treats PAV values closer than this as one flat block (rounding ties).
STRICT_TIE_TOL = 1e-12

OUT_OF_BOUNDS = ("clip", "raise")


class IsotonicCalibration(BinaryCalibrator):
    """Isotonic regression of the target on the probability of the positive class.

    Parameters
    ----------
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are; see :func:`calibkit._validation.check_scores`. The map is
        fitted on probabilities (``Scores.probs()``: ``expit`` of 1-D logits, softmax
        column for multiclass scores).
    strict : bool, default=False
        If True, break the ties that flat PAV blocks create so that the output is strictly
        increasing wherever the (training-range) input scores differ, which keeps ROC AUC
        and every ranking metric unchanged. See Notes.
    out_of_bounds : {"clip", "raise"}, default="clip"
        Scores outside the training range ``[x_thresholds_[0], x_thresholds_[-1]]`` get the
        value of the nearest end knot (``"clip"``), or raise ``ValueError`` (``"raise"``).

    Attributes
    ----------
    x_thresholds_ : ndarray of shape (n_knots,)
        Increasing knot positions (distinct calibration probabilities; interior points of
        flat stretches are dropped as in scikit-learn, except with ``strict=True``).
    y_thresholds_ : ndarray of shape (n_knots,)
        Fitted values at the knots, non-decreasing, in [0, 1].
    estimators_ : list of IsotonicCalibration
        Multiclass only: one binary calibrator per class (one-vs-rest).

    Notes
    -----
    Fit, with weights ``w_i`` (default 1; zero-weight samples are dropped) and targets
    ``y_i`` in [0, 1] (hard labels or soft targets):

    1. sort the probabilities ``p_i`` and pool equal values into one point ``x_j`` with
       weight ``W_j = sum w_i`` and target ``Y_j = sum w_i y_i / W_j``;
    2. solve ``min sum_j W_j (f_j - Y_j)^2`` subject to ``f_1 <= ... <= f_k`` (PAV);
    3. predict by linear interpolation between the knots ``(x_j, f_j)``
       (``np.interp``), constant beyond the end knots.

    This is scikit-learn's ``IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)``.

    ``strict=True``: let a flat PAV block (consecutive fitted values less than
    ``STRICT_TIE_TOL = 1e-12`` apart, to absorb rounding in the pooled means) hold the knots
    ``x_s < ... < x_e`` (m >= 2) with weighted mean value ``v``, ``L`` the value of the
    previous block (0 for the first) and ``U`` the value of the next block (1 for the last).
    With ``r = STRICT_SPREAD = 1e-3``, ``g_lo = r (v - L)``, ``g_hi = r (U - v)``, ranks
    ``t_j = (j - s) / (m - 1)`` in [0, 1] and ``tbar`` their ``W``-weighted mean, each knot
    becomes

    * ``f_j = v + c (t_j - tbar)`` with ``c = min(g_lo / tbar, g_hi / (1 - tbar))`` when both
      gaps are positive: the block's weighted mean, hence its calibration, is unchanged;
    * ``f_j = v + g_hi t_j`` when ``g_lo = 0`` (a block at 0), ``f_j = v - g_lo (1 - t_j)``
      when ``g_hi = 0`` (a block at 1): the block mean moves by less than ``r`` times the gap.

    Every knot stays inside ``[v - g_lo, v + g_hi]``, so blocks cannot cross (``r < 1/2``),
    the map stays in [0, 1], and no prediction moves by more than ``r`` times the gap to
    the neighbouring block. Scores outside the training range are still clipped (equal
    outputs there), and a fit whose only block is 0 or 1 (all targets 0, or all 1) stays flat.
    """

    _parameter_constraints: ClassVar[dict] = {
        "strict": [BOOLEAN],
        "out_of_bounds": [Options(*OUT_OF_BOUNDS)],
    }
    _fitted_constraints: ClassVar[dict] = {
        "x_thresholds_": [Array(1, "f")],
        "y_thresholds_": [Array(1, "f", low=0.0, high=1.0)],
    }

    def _check_own_fitted_state(self) -> None:
        if self.n_features_in_ > 2:
            return
        x, y = self.x_thresholds_, self.y_thresholds_
        if len(x) == 0 or len(x) != len(y) or np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("x_thresholds_ must increase strictly and y_thresholds_ must not "
                             "decrease, with as many entries.")

    def __init__(self, *, input="auto", strict=False, out_of_bounds="clip"):
        self.input = input
        self.strict = strict
        self.out_of_bounds = out_of_bounds

    def _fit_binary(self, s, y, w):
        x = s.probs()
        if w is not None:
            keep = w > 0
            x, y, w = x[keep], y[keep], w[keep]
        xu, yu, wu = _pool_ties(x, y, w)
        f = _pav(yu, wu)
        if self.strict:
            f = _strict_spread(f, wu)
            self.x_thresholds_, self.y_thresholds_ = xu, f
        else:
            self.x_thresholds_, self.y_thresholds_ = _trim_flat(xu, f)

    def _predict_binary(self, s):
        x = s.probs()
        if self.out_of_bounds == "raise":
            lo, hi = self.x_thresholds_[0], self.x_thresholds_[-1]
            if np.any((x < lo) | (x > hi)):
                raise ValueError(
                    f"some scores lie outside the training range [{lo:.6g}, {hi:.6g}] and "
                    "out_of_bounds='raise'; use out_of_bounds='clip' to clip them."
                )
        return _interp(x, self.x_thresholds_, self.y_thresholds_)


def _interp(x, xp, fp):
    """``np.interp``; sorted queries when both sides are large (random lookups into a large
    knot table are cache-bound: 5x faster at 1e6 knots, same result)."""
    if len(xp) < 65536 or len(x) < 65536:
        return np.interp(x, xp, fp)
    order = np.argsort(x)
    out = np.empty(len(x))
    out[order] = np.interp(x[order], xp, fp)
    return out


def _pool_ties(x, y, w):
    """Sort by ``x`` and pool equal values: distinct ``x``, weighted mean ``y``, summed ``w``."""
    order = np.argsort(x)  # ties are pooled next, so the sort need not be stable
    xs = x[order]
    ys = y[order]
    first = np.empty(len(xs), dtype=bool)
    first[0] = True
    np.not_equal(xs[1:], xs[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    if w is None:
        wu = np.diff(np.append(starts, len(xs))).astype(np.float64)
        yu = np.add.reduceat(ys, starts) / wu
    else:
        ws = w[order]
        wu = np.add.reduceat(ws, starts)
        yu = np.add.reduceat(ws * ys, starts) / wu
    # targets lie in [0, 1]; rounding of the weighted mean must not leave that range
    return xs[starts], np.clip(yu, 0.0, 1.0), wu


def _pav(y, w):
    """Weighted least-squares non-decreasing fit (pool adjacent violators)."""
    try:
        from scipy.optimize import isotonic_regression
    except ImportError:  # scipy < 1.12
        from sklearn.isotonic import isotonic_regression as sk_isotonic

        return np.clip(sk_isotonic(y, sample_weight=w), 0.0, 1.0)
    return np.clip(np.asarray(isotonic_regression(y, weights=w).x, dtype=np.float64), 0.0, 1.0)


def _trim_flat(x, f):
    """Drop interior knots of flat stretches (they do not change the interpolation)."""
    keep = np.ones(len(f), dtype=bool)
    keep[1:-1] = (f[1:-1] != f[:-2]) | (f[1:-1] != f[2:])
    return x[keep], f[keep]


def _strict_spread(f, w):
    """Make the knot values strictly increasing inside each flat PAV block (see Notes)."""
    k = len(f)
    if k < 2:
        return f.copy()
    # values within rounding of each other (weighted means of equal targets can differ in
    # the last bit) form one block: a 1-ulp step cannot separate interpolated predictions
    new_block = np.empty(k, dtype=bool)
    new_block[0] = True
    np.greater(np.diff(f), STRICT_TIE_TOL, out=new_block[1:])
    starts = np.flatnonzero(new_block)
    ends = np.append(starts[1:], k)
    sizes = ends - starts
    block = np.cumsum(new_block) - 1
    values = np.clip(np.bincount(block, weights=w * f) / np.bincount(block, weights=w), 0, 1)
    lower = np.concatenate([[0.0], values[:-1]])
    upper = np.concatenate([values[1:], [1.0]])
    g_lo = STRICT_SPREAD * (values - lower)
    g_hi = STRICT_SPREAD * (upper - values)

    t = (np.arange(k) - starts[block]) / np.maximum(sizes[block] - 1, 1)
    tbar = np.bincount(block, weights=w * t) / np.bincount(block, weights=w)
    v, lo, hi = values[block], g_lo[block], g_hi[block]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.minimum(g_lo / tbar, g_hi / (1.0 - tbar))[block]
        centred = v + c * (t - tbar[block])
    multi = sizes[block] > 1
    out = np.where(
        multi & (lo > 0) & (hi > 0),
        centred,
        np.where(multi & (lo == 0) & (hi > 0), v + hi * t,
                 np.where(multi & (hi == 0) & (lo > 0), v - lo * (1.0 - t), v)),
    )
    # rounding must not push a knot outside its block's band
    return np.clip(out, v - lo, v + hi)
