"""Spline calibration (Gupta, Rahimi, Ajanthan, Mensink, Sminchisescu & Hartley, "Calibration
of neural networks using splines", ICLR 2021): recalibration by the derivative of a spline
fitted to the cumulative calibration curve."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.interpolate import CubicSpline

from calibkit._validation import Array, Interval, Scores, frequency_weights
from calibkit.base import BinaryCalibrator

__all__ = ["SplineCalibration"]


class SplineCalibration(BinaryCalibrator):
    """Spline calibration of one score (binary), or of the top-label confidence (multiclass).

    Fit, on scores ``s`` sorted increasingly with outcomes ``o`` (``o = y`` for a binary
    problem; for (n, K) scores ``s`` is the confidence ``max_k p_k`` and ``o = 1[argmax = y]``):

    1. the cumulative curves ``A_i = sum_{j <= i} o_j / n`` and ``S_i = sum_{j <= i} s_j / n``
       against the fraction ``t_i = i / (n - 1)``;
    2. a natural cubic spline ``g`` with ``n_knots`` equally spaced knots on [0, 1], fitted to
       ``A - S`` by least squares;
    3. the recalibrated value of calibration score ``s_i`` is ``s_i + g'(t_i)`` (``g'`` is the
       gap between the local accuracy and the score); new scores are mapped by linear
       interpolation between the calibration scores (linear extrapolation outside them), and
       the result is clipped to [0, 1].

    Multiclass (K > 2 columns) output: the top class gets the recalibrated confidence and the
    other classes share the rest (:func:`calibkit.top_versus_all.top_label_probabilities`).

    Parameters
    ----------
    n_knots : int, default=6
        Knots of the natural cubic spline (the paper's default).
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are; the map acts on probabilities.

    Attributes
    ----------
    scores_ : ndarray of shape (m,)
        Distinct calibration scores, increasing.
    values_ : ndarray of shape (m,)
        Their recalibrated values (before clipping).
    knots_ : ndarray of shape (n_knots,)
        Spline knots on [0, 1].
    spline_values_ : ndarray of shape (n_knots,)
        ``g`` at the knots.

    Notes
    -----
    Integer ``sample_weight`` repeats rows. Other weights weight the cumulative sums, ``n``
    is then the total weight and ``t_i = (W_i - w_1) / (W - w_1)`` with ``W_i`` the
    cumulative weight (a repeated row covers several values of ``t``, a weighted row one).
    Tied scores get the weighted mean of their recalibrated values. As in the authors' code,
    the map is not forced to be monotone.
    """

    _parameter_constraints: ClassVar[dict] = {"n_knots": [Interval("integer", 2, None)]}
    _fitted_constraints: ClassVar[dict] = {
        "scores_": [Array(1, "f")],
        "values_": [Array(1, "f")],
        "knots_": [Array(1, "f")],
        "spline_values_": [Array(1, "f")],
    }

    def _check_own_fitted_state(self) -> None:
        if not hasattr(self, "scores_"):
            return  # one-vs-rest copies hold the tables
        if len(self.scores_) == 0 or len(self.scores_) != len(self.values_) or np.any(
            np.diff(self.scores_) <= 0
        ) or len(self.knots_) != len(self.spline_values_):
            raise ValueError("scores_ must increase strictly with one value each, and knots_ "
                             "need one spline value each.")
    # the cumulative curve orders samples: a soft target is not two weighted hard labels
    _supports_soft_targets = False

    def _multiclass_strategy(self) -> str:
        return "top_label"  # one spline of the top-label confidence, not one per class

    def __init__(self, *, n_knots=6, input="auto"):
        self.n_knots = n_knots
        self.input = input

    def _fit(self, scores, targets, sample_weight):
        if scores.n_columns <= 2:
            super()._fit(scores, targets, sample_weight)
            return
        from calibkit.top_versus_all import top_label_problem

        _, conf, correct = top_label_problem(scores.probs(), targets.y)
        self._fit_binary(Scores(conf, "probs"), correct, sample_weight)

    def _predict_proba(self, scores):
        if scores.n_columns <= 2:
            return super()._predict_proba(scores)
        from calibkit.top_versus_all import top_label_probabilities, top_label_problem

        probs = scores.probs()
        _, conf, _ = top_label_problem(probs)
        return top_label_probabilities(probs, self._predict_binary(Scores(conf, "probs")))

    def _fit_binary(self, s, y, w):
        p = s.probs()
        if w is not None:
            w = frequency_weights(w)  # counts of samples: only the ratios matter
        if w is not None and np.all(w == np.round(w)) and w.sum() <= 1e7:
            # integer weights are exactly repeated rows
            keep = w > 0
            p, y, w = np.repeat(p[keep], w[keep].astype(np.intp)), np.repeat(
                y[keep], w[keep].astype(np.intp)), None
        n = len(p)
        w = np.ones(n) if w is None else w
        order = np.argsort(p, kind="stable")
        ps, ys, ws = p[order], y[order], w[order]
        total = ws.sum()
        cum_w = np.cumsum(ws)
        span = total - ws[0]
        t = (cum_w - ws[0]) / span if span > 0 else np.zeros(n)
        gap = (np.cumsum(ws * ys) - np.cumsum(ws * ps)) / total
        knots = np.linspace(0.0, 1.0, int(self.n_knots))
        basis, dbasis = _natural_spline_basis(knots, t)
        sw = np.sqrt(ws)
        coef = np.linalg.lstsq(basis * sw[:, None], gap * sw, rcond=None)[0]
        values = ps + dbasis @ coef
        # ties: one value per distinct score (weighted mean)
        uniq, first = np.unique(ps, return_index=True)
        group = np.searchsorted(uniq, ps)
        wsum = np.bincount(group, weights=ws, minlength=len(uniq))
        vsum = np.bincount(group, weights=ws * values, minlength=len(uniq))
        mean = np.divide(vsum, wsum, out=values[first].copy(), where=wsum > 0)
        self.scores_ = uniq
        self.values_ = mean
        self.knots_ = knots
        self.spline_values_ = coef

    def _predict_binary(self, s):
        return np.clip(_interp_extrapolate(s.probs(), self.scores_, self.values_), 0.0, 1.0)


def _natural_spline_basis(knots: np.ndarray, t: np.ndarray):
    """Values and first derivatives at ``t`` of the natural cubic splines through the unit
    vectors at ``knots`` (a spline with values ``c`` at the knots is ``basis @ c``)."""
    m = len(knots)
    eye = np.eye(m)
    spline = CubicSpline(knots, eye, bc_type="natural", axis=0)
    return spline(t), spline(t, 1)


def _interp_extrapolate(x, xp, fp):
    """``np.interp`` with linear extrapolation from the two outermost points on each side."""
    if len(xp) == 1:
        return np.full(np.shape(x), fp[0])
    out = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    if np.any(lo):
        slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
        out[lo] = fp[0] + slope * (x[lo] - xp[0])
    if np.any(hi):
        slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
        out[hi] = fp[-1] + slope * (x[hi] - xp[-1])
    return out
