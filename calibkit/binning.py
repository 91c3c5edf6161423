"""Histogram binning and beta calibration: maps of one probability to one probability.

* :class:`HistogramBinning`: the mean target of the calibration samples in the bin of the
  score (Zadrozny & Elkan 2001), with the bins of :mod:`calibkit.metrics.binning`.
* :class:`BetaCalibration`: ``sigmoid(a ln p - b ln(1 - p) + c)`` with ``a, b >= 0``
  (Kull, Silva Filho & Flach 2017), fitted by a float64 Newton method.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from calibkit._validation import BOOLEAN, PROB_EPS, Array, Interval, Options
from calibkit.base import BinaryCalibrator, ConvergenceWarning
from calibkit.metrics.binning import (
    MAX_BINS,
    STRATEGIES,
    assign_quantile,
    assign_uniform,
    assign_upper_edges,
    bin_sums,
    quantile_upper_edges,
    uniform_edges,
)
from calibkit.scaling import fit_logistic_newton

__all__ = ["HistogramBinning", "BetaCalibration"]


class HistogramBinning(BinaryCalibrator):
    """Histogram binning: each score gets the mean target of its bin.

    Parameters
    ----------
    n_bins : int, default=15
        Number of bins (``"quantile"`` may end up with fewer, see below).
    strategy : {"uniform", "quantile"}, default="uniform"
        ``"uniform"``: equal-width bins ``[j/n, (j+1)/n)``, the last one closed.
        ``"quantile"``: equal-mass bins of the (weighted) calibration scores, whole tie groups
        per bin (bins that ties leave empty are dropped).
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are. Bins are on the probability of the positive class
        (``Scores.probs()``; softmax column ``k`` for multiclass one-vs-rest).

    Attributes
    ----------
    bin_edges_ : ndarray of shape (n_bins_ + 1,)
        ``"uniform"``: ``linspace(0, 1, n_bins + 1)``; bin ``j`` is ``[e_j, e_{j+1})``,
        the last is ``[e_{n-1}, 1]``. ``"quantile"``: ``[0, u_0, ..., u_{m-2}, 1]`` where
        ``u_j`` is the largest calibration score in bin ``j``; bin ``j`` is
        ``(e_j, e_{j+1}]`` and the first bin is ``[0, e_1]``. A score equal to a calibration
        score therefore always lands in that score's bin, at fit and at predict.
    bin_values_ : ndarray of shape (n_bins_,)
        Output of each bin: ``sum_i w_i y_i / sum_i w_i`` over the calibration samples in
        the bin. A bin with no calibration weight (possible with ``"uniform"``) outputs its
        centre ``(e_j + e_{j+1}) / 2``, i.e. it leaves scores roughly where they are.
    bin_counts_ : ndarray of shape (n_bins_,)
        Calibration weight in each bin (the number of samples without ``sample_weight``).
    estimators_ : list of HistogramBinning
        Multiclass only: one binary calibrator per class (one-vs-rest).

    Notes
    -----
    Bin membership comes from :mod:`calibkit.metrics.binning` at both fit and predict
    time, so a calibration score is mapped to the mean of exactly the bin it was counted in
    (netcal's fit/transform edge mismatch cannot happen).
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_bins": [Interval("integer", 1, MAX_BINS)],
        "strategy": [Options(*STRATEGIES)],
    }
    _fitted_constraints: ClassVar[dict] = {
        "bin_edges_": [Array(1, "f", low=0.0, high=1.0)],
        "bin_values_": [Array(1, "f", low=0.0, high=1.0)],
        "bin_counts_": [Array(1, "f", low=0.0)],
    }

    def _check_own_fitted_state(self) -> None:
        if self.n_features_in_ > 2:
            return
        e, v = self.bin_edges_, self.bin_values_
        if not (len(e) == len(v) + 1 == len(self.bin_counts_) + 1) or np.any(np.diff(e) < 0):
            raise ValueError("bin_edges_ must be increasing with one more entry than "
                             "bin_values_ and bin_counts_.")
        if self.strategy == "uniform" and not np.array_equal(e, uniform_edges(len(v))):
            raise ValueError("uniform bins need bin_edges_ = linspace(0, 1, n_bins + 1).")

    def __init__(self, *, n_bins=15, strategy="uniform", input="auto"):
        self.n_bins = n_bins
        self.strategy = strategy
        self.input = input

    def _fit_binary(self, s, y, w):
        n_bins = int(self.n_bins)
        p = s.probs()
        if self.strategy == "uniform":
            idx, m = assign_uniform(p, n_bins), n_bins
            edges = uniform_edges(n_bins)
        else:
            idx, m = assign_quantile(p, n_bins, w)
            upper = quantile_upper_edges(p, idx, m)
            edges = np.concatenate([[0.0], upper[:-1], [1.0]])
        counts, _, sums = bin_sums(idx, m, p, y, w)
        centres = 0.5 * (edges[:-1] + edges[1:])
        values = centres.copy()
        np.divide(sums, counts, out=values, where=counts > 0)
        self.bin_edges_ = edges
        self.bin_values_ = np.clip(values, 0.0, 1.0)
        self.bin_counts_ = counts

    def _predict_binary(self, s):
        p = s.probs()
        if self.strategy == "uniform":
            idx = assign_uniform(p, len(self.bin_values_))
        else:
            idx = assign_upper_edges(p, self.bin_edges_[1:])
        return self.bin_values_[idx]


BETA_PARAMETERS = ("abm", "ab", "am")


class BetaCalibration(BinaryCalibrator):
    """Beta calibration (Kull, Silva Filho & Flach, 2017).

    Parameters
    ----------
    parameters : {"abm", "ab", "am"}, default="abm"
        ``"abm"``: the full three-parameter map. ``"ab"``: ``c = (a - b) ln 2`` (the map
        fixes ``m = 1/2``: ``q(1/2) = 1/2``). ``"am"``: ``a = b``, i.e. logistic
        calibration of ``logit(p)``.
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are. The map acts on the probability of the positive class.
    max_iter : int, default=100
        Maximum number of Newton iterations per logistic fit.
    tol : float, default=1e-10
        Stop when a Newton step is below ``tol * max(1, max |theta|)`` (the rule of
        :class:`~calibkit.scaling.PlattScaling`, whose solver this is).

    Attributes
    ----------
    a_, b_, c_ : float
        The fitted map ``q = sigmoid(a_ ln p - b_ ln(1 - p) + c_)``, ``a_, b_ >= 0``.
    n_iter_ : int
        Newton iterations of the final logistic fit (multiclass: the largest over classes).
    converged_ : bool
        Whether the final fit converged (multiclass: every class's).
    estimators_ : list of BetaCalibration
        Multiclass only: one binary calibrator per class (one-vs-rest).

    Notes
    -----
    ``p`` is clipped to ``[PROB_EPS, 1 - PROB_EPS]`` (for logit input ``z`` the features
    are ``log_expit(z)`` and ``log_expit(-z)`` clipped to the same range, which avoids the
    rounding of ``1 - expit(z)``). The parameters minimise the weighted log loss
    ``sum_i w_i [log(1 + e^{z_i}) - y_i z_i]`` with ``z_i = a ln p_i - b ln(1 - p_i) + c``
    and ``y_i`` in [0, 1] (hard or soft targets): a logistic regression on the features
    ``[ln p, -ln(1 - p)]``, solved by :func:`calibkit.scaling.fit_logistic_newton` (the
    solver of Platt scaling: Newton's method with the analytic gradient and Hessian and a
    backtracking line search, in float64), started at the identity map ``a = b = 1, c = 0``.
    As in the ``betacal`` package, ``a, b >= 0`` is enforced by refitting: if the fitted
    ``a`` is negative the fit is redone with ``a = 0``; otherwise if ``b`` is negative, with
    ``b = 0`` (a remaining negative coefficient is also set to 0); ``"ab"`` is fitted without
    the constraint, as betacal's ``"ab"`` model. Non-convergence (e.g. separable data) raises
    a :class:`ConvergenceWarning`.
    """

    _parameter_constraints: ClassVar[dict] = {
        "parameters": [Options(*BETA_PARAMETERS)],
        "max_iter": [Interval("integer", 1, None)],
        "tol": [Interval("real", 0, None, closed="neither")],
    }
    _fitted_constraints: ClassVar[dict] = {
        "a_": [Interval("real", 0, None)],
        "b_": [Interval("real", 0, None)],
        "c_": [Interval("real")],
        "n_iter_": [Interval("integer", 0, None)],
        "converged_": [BOOLEAN],
    }

    def __init__(self, *, parameters="abm", input="auto", max_iter=100, tol=1e-10):
        self.parameters = parameters
        self.input = input
        self.max_iter = max_iter
        self.tol = tol

    def _fit_binary(self, s, y, w):
        log_p, log_1mp = _log_features(s)
        if self.parameters == "am":
            features = (log_p - log_1mp)[:, None]
            intercept = True
        elif self.parameters == "ab":
            features = np.column_stack([log_p + np.log(2.0), -(log_1mp + np.log(2.0))])
            intercept = False
        else:
            features = np.column_stack([log_p, -log_1mp])
            intercept = True
        if self.parameters == "ab":
            # as betacal's "ab" model: an unconstrained logistic fit of [ln 2p, -ln 2(1 - p)]
            coef, n_iter, converged = fit_logistic_newton(
                features, y, w, np.ones(features.shape[1]), self.max_iter, self.tol,
                intercept=False,
            )
            c = 0.0
        else:
            coef, c, n_iter, converged = self._fit_nonnegative(features, y, w, intercept)
        if self.parameters == "am":
            a = b = coef[0]
        else:
            a, b = coef
            if self.parameters == "ab":
                c = (a - b) * np.log(2.0)
        self.a_, self.b_, self.c_ = float(a), float(b), float(c)
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)
        if not converged:
            warnings.warn(
                f"BetaCalibration did not converge in {n_iter} Newton iterations (a_ = {a:.6g},"
                f" b_ = {b:.6g}, c_ = {c:.6g}); the classes may be separable by the score.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _predict_binary(self, s):
        log_p, log_1mp = _log_features(s)
        return expit(self.a_ * log_p - self.b_ * log_1mp + self.c_)

    def _fit_nonnegative(self, features, y, w, intercept):
        """betacal's rule: fit, then refit with the first negative coefficient fixed at 0."""
        active = list(range(features.shape[1]))
        while True:
            if not active and not intercept:
                theta, n_iter, converged = np.zeros(0), 0, True
            else:
                start = np.r_[np.ones(len(active)), np.zeros(int(intercept))]
                theta, n_iter, converged = fit_logistic_newton(
                    features[:, active], y, w, start, self.max_iter, self.tol,
                    intercept=intercept,
                )
            coef = theta[: len(active)]
            negative = [j for j, v in zip(active, coef, strict=True) if v < 0]
            if not negative:
                break
            active.remove(negative[0])
        full = np.zeros(features.shape[1])
        full[active] = theta[: len(active)]
        c = theta[-1] if intercept else 0.0
        return full, c, n_iter, converged


def _log_features(s):
    """``ln p`` and ``ln(1 - p)``, with ``p`` clipped to ``[PROB_EPS, 1 - PROB_EPS]``."""
    lo, hi = np.log(PROB_EPS), np.log1p(-PROB_EPS)
    if s.kind == "logits":
        z = s.values
        return np.clip(log_expit(z), lo, hi), np.clip(log_expit(-z), lo, hi)
    p = np.clip(s.values, PROB_EPS, 1.0 - PROB_EPS)
    return np.log(p), np.log1p(-p)
