"""Statistical tests of calibration: is ``P(y = 1 | f) = f``?

Each test takes binary (or top-label) predictions, returns a
:class:`CalibrationTestResult` ``(statistic, pvalue)`` and accepts ``sample_weight``:

* :func:`spiegelhalter_test`: Spiegelhalter's (1986) z-test of the Brier score;
* :func:`hosmer_lemeshow_test`: the Hosmer-Lemeshow chi-squared test over bins;
* :func:`calibration_ks_test` and :func:`calibration_kuiper_test`: Kolmogorov-Smirnov and
  Kuiper statistics of the cumulative calibration curve (Tygert, "Cumulative deviation of a
  subpopulation from the full population", 2021; Arrieta-Ibarra et al., "Metrics of
  calibration for probabilistic predictions", JMLR 2022), with the asymptotic distribution of
  the maximum absolute value and of the range of a standard Brownian motion on [0, 1].

Small p-values are evidence against calibration. The tests treat the predictions as fixed
(not fitted on the same data).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

from calibkit._validation import (
    Interval,
    Options,
    check_consistent_length,
    check_param,
    check_probabilities,
    check_sample_weight,
    encode_labels,
)
from calibkit.metrics.binning import STRATEGIES, assign_bins

__all__ = [
    "CalibrationTestResult",
    "spiegelhalter_test",
    "hosmer_lemeshow_test",
    "calibration_ks_test",
    "calibration_kuiper_test",
]

TEST_MODES = ("binary", "top_label")


class CalibrationTestResult(NamedTuple):
    """The statistic of a calibration test and its p-value.

    Attributes
    ----------
    statistic : float
        The test statistic (NaN when the test is undefined for the data).
    pvalue : float
        The p-value of the statistic under the hypothesis of calibration.
    """

    statistic: float
    pvalue: float


def spiegelhalter_test(y_true, y_prob, *, mode="binary", sample_weight=None, labels=None):
    """Spiegelhalter's z-test of calibration (two-sided).

    ``Z = sum_i w_i (y_i - f_i)(1 - 2 f_i) / sqrt(sum_i w_i^2 (1 - 2 f_i)^2 f_i (1 - f_i))``,
    approximately standard normal under calibration (Spiegelhalter, Statistics in Medicine,
    1986); the p-value is ``2 (1 - Phi(|Z|))``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`~calibkit.metrics.expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities.
    mode : {"binary", "top_label"}, default="binary"
        ``"binary"``: ``f`` = P(positive) (1-D or column 1 of two columns), ``y = 1[label =
        positive]``. ``"top_label"``: ``f = max_k p_k``, ``y = 1[argmax = label]``.
    sample_weight : array-like of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``.

    Returns
    -------
    CalibrationTestResult
        ``(Z, p-value)``; ``(nan, nan)`` when every ``f`` is 0, 1/2 or 1 (no variance).
    """
    f, o, w = _binary_problem(y_true, y_prob, mode, labels, sample_weight, "spiegelhalter_test")
    num = np.sum(w * (o - f) * (1.0 - 2.0 * f))
    var = np.sum(w * w * (1.0 - 2.0 * f) ** 2 * f * (1.0 - f))
    if not var > 0:
        return CalibrationTestResult(float("nan"), float("nan"))
    z = float(num / np.sqrt(var))
    return CalibrationTestResult(z, float(2.0 * stats.norm.sf(abs(z))))


def hosmer_lemeshow_test(y_true, y_prob, *, n_bins=10, strategy="quantile", ddof=0,
                         mode="binary", sample_weight=None, labels=None):
    """Hosmer-Lemeshow test: a chi-squared statistic over bins of the predictions.

    ``H = sum_g (O_g - E_g)^2 / (E_g (1 - E_g / N_g))`` over non-empty bins ``g`` with
    ``N_g = sum w``, ``O_g = sum w y`` and ``E_g = sum w f`` in the bin; the p-value is that
    of a chi-squared distribution with ``G - ddof`` degrees of freedom (``G`` non-empty
    bins). Bins with ``E_g (1 - E_g / N_g) = 0`` (all predictions 0 or 1) are left out.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`~calibkit.metrics.expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities.
    mode : {"binary", "top_label"}, default="binary"
        ``"binary"``: ``f`` = P(positive) (1-D or column 1 of two columns), ``y = 1[label =
        positive]``. ``"top_label"``: ``f = max_k p_k``, ``y = 1[argmax = label]``.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights (not rescaled: ``N_g``, ``O_g`` and ``E_g`` are weighted sums).
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``.
    n_bins : int, default=10
        The "deciles of risk" of the original test.
    strategy : {"quantile", "uniform"}, default="quantile"
        Equal-mass or equal-width bins (:mod:`calibkit.metrics.binning`).
    ddof : int, default=0
        Degrees of freedom lost. 0 for predictions made independently of these data (the
        usual case when assessing a calibrated model on test data); 2 reproduces the original
        test for a logistic model fitted on the same data.

    Returns
    -------
    CalibrationTestResult
        ``(H, p-value)``.

    Notes
    -----
    Hosmer & Lemeshow, "Goodness of fit tests for the multiple logistic regression model",
    Communications in Statistics - Theory and Methods, 1980.
    """
    owner = "hosmer_lemeshow_test"
    check_param(n_bins, "n_bins", [Interval("integer", 1, None)], owner=owner)
    check_param(strategy, "strategy", [Options(*STRATEGIES)], owner=owner)
    check_param(ddof, "ddof", [Interval("integer", 0, None)], owner=owner)
    f, o, w = _binary_problem(y_true, y_prob, mode, labels, sample_weight, owner)
    idx, nb = assign_bins(f, n_bins, strategy, w)
    n_g = np.bincount(idx, weights=w, minlength=nb)
    o_g = np.bincount(idx, weights=w * o, minlength=nb)
    e_g = np.bincount(idx, weights=w * f, minlength=nb)
    denom = np.zeros(nb)
    np.multiply(e_g, 1.0 - np.divide(e_g, n_g, out=np.zeros(nb), where=n_g > 0), out=denom)
    keep = denom > 0
    h = float(np.sum((o_g[keep] - e_g[keep]) ** 2 / denom[keep]))
    dof = int(keep.sum()) - int(ddof)
    if dof < 1:
        raise ValueError(
            f"hosmer_lemeshow_test has {int(keep.sum())} usable bin(s) and ddof={ddof}: no "
            "degree of freedom is left; use more bins or a smaller ddof."
        )
    return CalibrationTestResult(h, float(stats.chi2.sf(h, dof)))


def calibration_ks_test(y_true, y_prob, *, mode="binary", sample_weight=None, labels=None):
    """Kolmogorov-Smirnov test of the cumulative calibration curve.

    With the predictions sorted increasingly, ``C(k) = sum_{j <= k} w_j (y_j - f_j) / W`` (the
    cumulative miscalibration; tied predictions enter together) and
    ``sigma = sqrt(sum_j w_j^2 f_j (1 - f_j)) / W``, the statistic is
    ``max_k |C(k)| / sigma``. Under calibration ``C / sigma`` tends to a standard Brownian
    motion on [0, 1], so the p-value is ``P(sup_{t <= 1} |B_t| >= statistic)``
    ``= 1 - (4 / pi) sum_{k >= 0} (-1)^k / (2k + 1) exp(-pi^2 (2k + 1)^2 / (8 x^2))``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`~calibkit.metrics.expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities.
    mode : {"binary", "top_label"}, default="binary"
        ``"binary"``: ``f`` = P(positive) (1-D or column 1 of two columns), ``y = 1[label =
        positive]``. ``"top_label"``: ``f = max_k p_k``, ``y = 1[argmax = label]``.
    sample_weight : array-like of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``.

    Returns
    -------
    CalibrationTestResult
        ``(statistic, p-value)``; ``(nan, nan)`` when every ``f`` is 0 or 1 (``sigma = 0``).

    Notes
    -----
    The cumulative-difference statistics of Arrieta-Ibarra, Gujral, Tannen, Tygert & Xu,
    "Metrics of calibration for probabilistic predictions", JMLR 2022. For ``x >= 1`` the
    p-value comes from the reflection-principle series
    ``P(sup |B| < x) = sum_k (-1)^k [Phi((2k + 1) x) - Phi((2k - 1) x)]``, which converges
    faster there.
    """
    c, sigma = _cumulative(y_true, y_prob, mode, labels, sample_weight, "calibration_ks_test")
    if not sigma > 0:
        return CalibrationTestResult(float("nan"), float("nan"))
    x = float(np.max(np.abs(c)) / sigma)
    return CalibrationTestResult(x, _sup_abs_brownian_sf(x))


def calibration_kuiper_test(y_true, y_prob, *, mode="binary", sample_weight=None,
                            labels=None):
    """Kuiper test of the cumulative calibration curve.

    The statistic is the range ``(max_k C(k) - min_k C(k)) / sigma`` (with ``C(0) = 0``) of the
    normalised cumulative miscalibration of :func:`calibration_ks_test`; the p-value is
    ``P(R >= statistic)`` for the range ``R`` of a standard Brownian motion on [0, 1],
    ``P(R >= x) = 8 sum_{k >= 1} (-1)^(k - 1) k (1 - Phi(k x))`` (Feller, 1951).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`~calibkit.metrics.expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities.
    mode : {"binary", "top_label"}, default="binary"
        ``"binary"``: ``f`` = P(positive) (1-D or column 1 of two columns), ``y = 1[label =
        positive]``. ``"top_label"``: ``f = max_k p_k``, ``y = 1[argmax = label]``.
    sample_weight : array-like of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``.

    Returns
    -------
    CalibrationTestResult
        ``(statistic, p-value)``; ``(nan, nan)`` when every ``f`` is 0 or 1 (``sigma = 0``).

    Notes
    -----
    The Kuiper statistic of the cumulative differences of Arrieta-Ibarra, Gujral, Tannen,
    Tygert & Xu, "Metrics of calibration for probabilistic predictions", JMLR 2022; the
    distribution of the range of Brownian motion is Feller, "The asymptotic distribution of
    the range of sums of independent random variables", Annals of Mathematical Statistics,
    1951.
    """
    c, sigma = _cumulative(y_true, y_prob, mode, labels, sample_weight,
                           "calibration_kuiper_test")
    if not sigma > 0:
        return CalibrationTestResult(float("nan"), float("nan"))
    c = np.concatenate([[0.0], c])
    x = float((c.max() - c.min()) / sigma)
    return CalibrationTestResult(x, _brownian_range_sf(x))


# --------------------------------------------------------------------------------------


def _binary_problem(y_true, y_prob, mode, labels, sample_weight, owner):
    check_param(mode, "mode", [Options(*TEST_MODES)], owner=owner)
    p = check_probabilities(y_prob)
    k = 2 if p.ndim == 1 else p.shape[1]
    y = encode_labels(y_true, k, labels=labels, name="y_true").y
    n = check_consistent_length(("y_true", y), ("y_prob", p))
    w = check_sample_weight(sample_weight, n, rescale=False)
    w = np.ones(n) if w is None else w
    if mode == "binary":
        if k != 2:
            raise ValueError(f"mode='binary' needs 1-D y_prob or 2 columns; got {k} columns. "
                             "Use mode='top_label'.")
        f = p if p.ndim == 1 else p[:, 1]
        return f, (y == 1).astype(np.float64), w
    if p.ndim == 1:
        return np.maximum(p, 1.0 - p), ((p > 0.5) == (y == 1)).astype(np.float64), w
    top = p.argmax(axis=1)
    return p[np.arange(n), top], (top == y).astype(np.float64), w


def _cumulative(y_true, y_prob, mode, labels, sample_weight, owner):
    f, o, w = _binary_problem(y_true, y_prob, mode, labels, sample_weight, owner)
    order = np.argsort(f, kind="stable")
    f, o, w = f[order], o[order], w[order]
    total = w.sum()
    c = np.cumsum(w * (o - f)) / total
    # tied predictions have no order: keep the partial sums at the end of each tie group
    last = np.append(f[1:] != f[:-1], True)
    sigma = float(np.sqrt(np.sum(w * w * f * (1.0 - f))) / total)
    return c[last], sigma


def _sup_abs_brownian_sf(x: float) -> float:
    """``P(sup_{t <= 1} |B_t| >= x)`` for a standard Brownian motion."""
    if x <= 0:
        return 1.0
    if x >= 1.0:
        # reflection principle: P(sup |B| < x) = sum_k (-1)^k [Phi((2k+1) x) - Phi((2k-1) x)]
        k = np.arange(-30, 31)
        cdf = np.sum((-1.0) ** np.abs(k) * (stats.norm.cdf((2 * k + 1) * x)
                                            - stats.norm.cdf((2 * k - 1) * x)))
        return float(np.clip(1.0 - cdf, 0.0, 1.0))
    # small x: the theta series, fast where the one above needs many terms
    k = np.arange(0, 200)
    terms = (-1.0) ** k / (2 * k + 1) * np.exp(-np.pi**2 * (2 * k + 1) ** 2 / (8.0 * x * x))
    return float(np.clip(1.0 - 4.0 / np.pi * terms.sum(), 0.0, 1.0))


def _brownian_range_sf(x: float) -> float:
    """``P(max_t B_t - min_t B_t >= x)`` for a standard Brownian motion on [0, 1]."""
    if x <= 0:
        return 1.0
    if x < 0.5:  # P(R < 0.5) is below 1e-15 (the motion must stay in an interval of 0.5)
        return 1.0
    k = np.arange(1, int(40.0 / x) + 2)
    terms = (-1.0) ** (k - 1) * k * stats.norm.sf(k * x)
    return float(np.clip(8.0 * terms.sum(), 0.0, 1.0))
