"""Tests for calibkit.binning: HistogramBinning and BetaCalibration.

References:

* histogram binning by definition (Zadrozny & Elkan 2001): for every bin, written out with
  explicit comparisons against its edges, the (weighted) mean target of the calibration
  samples inside it; a score is mapped to the value of the bin that contains it;
* beta calibration by definition (Kull, Silva Filho & Flach 2017): the minimiser of the
  weighted log loss of ``sigmoid(a ln p - b ln(1 - p) + c)`` over ``a, b >= 0``, found here by
  ``scipy.optimize.minimize`` (L-BFGS-B with bounds).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import expit, logit, softmax

from calibkit.base import ConvergenceWarning
from calibkit.binning import BetaCalibration, HistogramBinning
from calibkit.metrics.binning import assign_quantile

pytestmark = pytest.mark.filterwarnings(
    "ignore::calibkit._validation.SaturatedProbabilityWarning"
)


def reference_uniform_histogram(p, y, w, n_bins, p_new):
    edges = np.linspace(0, 1, n_bins + 1)
    w = np.ones(len(p)) if w is None else w
    out = np.empty(len(p_new))
    for j in range(n_bins):
        last = j == n_bins - 1
        inside = (p >= edges[j]) & ((p <= edges[j + 1]) if last else (p < edges[j + 1]))
        value = (
            np.sum(w[inside] * y[inside]) / np.sum(w[inside])
            if np.sum(w[inside]) > 0
            else (edges[j] + edges[j + 1]) / 2
        )
        new_inside = (p_new >= edges[j]) & (
            (p_new <= edges[j + 1]) if last else (p_new < edges[j + 1])
        )
        out[new_inside] = value
    return out


# ------------------------------------------------------------------ HistogramBinning


@pytest.mark.parametrize("n_bins", [1, 7, 10, 15, 49])
def test_uniform_matches_reference(n_bins):
    rng = np.random.default_rng(0)
    # scores exactly on edges are the classic fit/predict mismatch
    p = np.concatenate([rng.uniform(size=500), np.linspace(0, 1, n_bins + 1)])
    y = (rng.uniform(size=len(p)) < p).astype(float)
    w = rng.exponential(size=len(p))
    p_new = np.concatenate([rng.uniform(size=300), np.linspace(0, 1, n_bins + 1)])
    for weights in (None, w):
        cal = HistogramBinning(n_bins=n_bins).fit(p, y, sample_weight=weights)
        expected = reference_uniform_histogram(p, y, weights, n_bins, p_new)
        np.testing.assert_allclose(cal.predict_proba(p_new)[:, 1], expected, atol=1e-12)
        assert cal.bin_edges_.shape == (n_bins + 1,)
        assert cal.bin_values_.shape == cal.bin_counts_.shape == (n_bins,)


def test_uniform_empty_bins_predict_their_centre():
    p = np.array([0.05, 0.06, 0.95, 0.97])
    y = np.array([0, 1, 1, 1])
    cal = HistogramBinning(n_bins=10).fit(p, y)
    np.testing.assert_array_equal(cal.bin_counts_, [2, 0, 0, 0, 0, 0, 0, 0, 0, 2])
    np.testing.assert_allclose(cal.bin_values_[1:9], np.arange(1, 9) / 10 + 0.05)
    np.testing.assert_allclose(cal.predict_proba([0.42])[:, 1], [0.45])
    np.testing.assert_allclose(cal.predict_proba([0.0, 0.0999, 1.0])[:, 1], [0.5, 0.5, 1.0])


def test_quantile_same_membership_at_fit_and_predict():
    rng = np.random.default_rng(1)
    p = np.round(rng.beta(2, 5, size=1000), 2)  # heavy ties
    y = (rng.uniform(size=len(p)) < p).astype(float)
    w = rng.exponential(size=len(p))
    for weights in (None, w):
        cal = HistogramBinning(n_bins=10, strategy="quantile").fit(p, y, sample_weight=weights)
        idx, m = assign_quantile(p, 10, weights)
        assert len(cal.bin_values_) == m
        ww = np.ones(len(p)) if weights is None else weights
        means = np.array([np.average(y[idx == j], weights=ww[idx == j]) for j in range(m)])
        np.testing.assert_allclose(cal.bin_values_, means, atol=1e-12)
        # every calibration score is mapped to the mean of the bin it was counted in
        np.testing.assert_allclose(cal.predict_proba(p)[:, 1], means[idx], atol=1e-12)
        # edges are the per-bin largest scores: (e_j, e_{j+1}]
        for j in range(m):
            assert np.all(p[idx == j] <= cal.bin_edges_[j + 1])
            if j > 0:
                assert np.all(p[idx == j] > cal.bin_edges_[j])


def test_quantile_new_scores_fall_into_left_open_bins():
    p = np.array([0.1, 0.1, 0.2, 0.3, 0.3, 0.6, 0.7, 0.8])
    y = np.array([0, 0, 1, 0, 1, 1, 1, 1])
    cal = HistogramBinning(n_bins=4, strategy="quantile").fit(p, y)
    np.testing.assert_allclose(cal.bin_edges_, [0.0, 0.1, 0.3, 0.6, 1.0])
    np.testing.assert_allclose(cal.bin_values_, [0.0, 2 / 3, 1.0, 1.0])
    new = np.array([0.0, 0.1, 0.1000001, 0.3, 0.31, 0.6, 0.65, 1.0])
    np.testing.assert_allclose(cal.predict_proba(new)[:, 1],
                               [0.0, 0.0, 2 / 3, 2 / 3, 1.0, 1.0, 1.0, 1.0])


def test_histogram_logits_and_soft_targets():
    rng = np.random.default_rng(2)
    z = rng.normal(size=400) * 2
    y_soft = expit(z + rng.normal(size=400))
    a = HistogramBinning(n_bins=8).fit(z, y_soft)
    b = HistogramBinning(n_bins=8).fit(expit(z), y_soft)
    np.testing.assert_allclose(a.predict_proba(z), b.predict_proba(expit(z)))
    np.testing.assert_allclose(
        a.predict_proba(z)[:, 1], reference_uniform_histogram(expit(z), y_soft, None, 8, expit(z))
    )


def test_histogram_bad_parameters():
    p, y = np.array([0.2, 0.8]), np.array([0, 1])
    with pytest.raises(ValueError, match="n_bins"):
        HistogramBinning(n_bins=0).fit(p, y)
    with pytest.raises(ValueError, match="strategy"):
        HistogramBinning(strategy="kmeans").fit(p, y)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=2, max_size=80),
    st.integers(1, 12),
    st.sampled_from(["uniform", "quantile"]),
)
def test_property_every_score_maps_to_its_bin_value(rows, n_bins, strategy):
    p = np.array([r[0] for r in rows] + [0, 30]) / 30.0
    y = np.array([r[1] for r in rows] + [False, True]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = HistogramBinning(n_bins=n_bins, strategy=strategy).fit(p, y)
        q = cal.predict_proba(p)[:, 1]
        grid = np.linspace(0, 1, 61)
        q_grid = cal.predict_proba(grid)[:, 1]
    if strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
        idx = np.minimum(np.searchsorted(edges, p, side="right") - 1, n_bins - 1)
    else:
        idx, _ = assign_quantile(p, n_bins)
    np.testing.assert_allclose(q, cal.bin_values_[idx])
    for j in np.unique(idx):
        np.testing.assert_allclose(cal.bin_values_[j], y[idx == j].mean())
    for v in np.unique(p):  # ties: same score, same output
        assert np.ptp(q[p == v]) == 0
    assert set(np.unique(q_grid)) <= set(cal.bin_values_)
    assert np.all((q_grid >= 0) & (q_grid <= 1))


# ------------------------------------------------------------------ BetaCalibration


def reference_beta(p, y, w, parameters="abm"):
    """scipy L-BFGS-B on the weighted log loss, with a, b >= 0 ("ab": unconstrained, as
    betacal's "ab" model)."""
    lp = np.log(np.clip(p, 2.2e-16, 1 - 2.2e-16))
    l1p = np.log1p(-np.clip(p, 2.2e-16, 1 - 2.2e-16))
    w = np.ones(len(p)) if w is None else w

    def z_of(theta):
        if parameters == "am":
            a = b = theta[0]
            c = theta[1]
        else:
            a, b = theta[0], theta[1]
            c = theta[2] if parameters == "abm" else (a - b) * np.log(2)
        return a * lp - b * l1p + c

    def loss(theta):
        z = z_of(theta)
        return np.sum(w * (np.logaddexp(0, z) - y * z)) / np.sum(w)

    x0 = {"abm": [1, 1, 0], "ab": [1, 1], "am": [1, 0]}[parameters]
    bounds = {"abm": [(0, None), (0, None), (None, None)], "ab": [(None, None), (None, None)],
              "am": [(0, None), (None, None)]}[parameters]
    res = minimize(loss, x0, method="L-BFGS-B", bounds=bounds,
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10000})
    return res.x, res.fun


def beta_data(rng, n, a=1.8, b=0.6, c=0.4):
    p = rng.beta(2, 3, size=n)
    y = (rng.uniform(size=n) < expit(a * np.log(p) - b * np.log1p(-p) + c)).astype(float)
    return p, y


@pytest.mark.parametrize("parameters", ["abm", "ab", "am"])
@pytest.mark.parametrize("weighted", [False, True])
def test_beta_matches_scipy_minimize(parameters, weighted):
    rng = np.random.default_rng(3)
    p, y = beta_data(rng, 3000)
    w = rng.exponential(size=len(p)) if weighted else None
    cal = BetaCalibration(parameters=parameters).fit(p, y, sample_weight=w)
    theta, _ = reference_beta(p, y, w, parameters)
    if parameters == "am":
        got = [cal.a_, cal.c_]
        assert cal.a_ == cal.b_
    elif parameters == "ab":
        got = [cal.a_, cal.b_]
        assert np.isclose(cal.c_, (cal.a_ - cal.b_) * np.log(2))
    else:
        got = [cal.a_, cal.b_, cal.c_]
    np.testing.assert_allclose(got, theta, atol=1e-5)
    assert cal.n_iter_ < 20


def test_beta_soft_targets_match_reference():
    rng = np.random.default_rng(4)
    p = rng.uniform(0.01, 0.99, size=2000)
    y = expit(2.0 * np.log(p) - 0.5 * np.log1p(-p) + rng.normal(scale=0.3, size=len(p)))
    cal = BetaCalibration().fit(p, y)
    theta, _ = reference_beta(p, y, None)
    np.testing.assert_allclose([cal.a_, cal.b_, cal.c_], theta, atol=1e-5)


def test_beta_negative_coefficient_is_refitted_at_zero():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 0.99, size=3000)
    # a decreasing dependence on ln p and an increasing one on -ln(1-p): a would be < 0
    y = (rng.uniform(size=len(p)) < expit(-1.0 * np.log(p) - 2.0 * np.log1p(-p) - 1)).astype(float)
    cal = BetaCalibration().fit(p, y)
    assert cal.a_ == 0.0 and cal.b_ > 0
    theta, _ = reference_beta(p, y, None)
    assert theta[0] < 1e-8  # the bound-constrained optimum also has a = 0
    np.testing.assert_allclose([cal.b_, cal.c_], theta[1:], atol=1e-5)


def test_beta_recovers_identity_on_calibrated_scores():
    rng = np.random.default_rng(6)
    p = rng.uniform(0.02, 0.98, size=50000)
    y = (rng.uniform(size=len(p)) < p).astype(float)
    cal = BetaCalibration().fit(p, y)
    np.testing.assert_allclose([cal.a_, cal.b_, cal.c_], [1, 1, 0], atol=0.1)
    np.testing.assert_allclose(cal.predict_proba(p)[:, 1], p, atol=0.03)


def test_beta_logit_input_equals_probability_input():
    rng = np.random.default_rng(7)
    p, y = beta_data(rng, 1000)
    a = BetaCalibration().fit(logit(p), y)
    b = BetaCalibration().fit(p, y)
    np.testing.assert_allclose([a.a_, a.b_, a.c_], [b.a_, b.b_, b.c_], atol=1e-8)
    np.testing.assert_allclose(a.predict_proba(logit(p)), b.predict_proba(p), atol=1e-10)


def test_beta_separable_data_warns():
    p = np.linspace(0.05, 0.95, 40)
    y = (p > 0.5).astype(int)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        cal = BetaCalibration(max_iter=15).fit(p, y)
    assert 1 <= cal.n_iter_ <= 15
    q = cal.predict_proba([0.3, 0.7])[:, 1]
    assert q[0] < 0.01 and q[1] > 0.99
    with pytest.warns(ConvergenceWarning):
        assert BetaCalibration(max_iter=2).fit(p, y).n_iter_ == 2


def test_beta_multiclass_and_bad_parameters():
    rng = np.random.default_rng(8)
    probs = rng.dirichlet(np.ones(3), size=300)
    y = rng.integers(0, 3, 300)
    cal = BetaCalibration().fit(probs, y)
    q = cal.predict_proba(probs)
    np.testing.assert_allclose(q.sum(axis=1), 1)
    assert cal.n_iter_ == max(e.n_iter_ for e in cal.estimators_)
    with pytest.raises(ValueError, match="parameters"):
        BetaCalibration(parameters="abc").fit(probs, y)
    with pytest.raises(ValueError, match="max_iter"):
        BetaCalibration(max_iter=0).fit(probs, y)


@settings(max_examples=30, deadline=None)
@given(st.floats(0, 5), st.floats(0, 5), st.floats(-3, 3))
def test_property_beta_map_monotone(a, b, c):
    cal = BetaCalibration()
    cal.a_, cal.b_, cal.c_ = a, b, c
    cal.classes_, cal.n_features_in_, cal.input_kind_ = np.array([0, 1]), 1, "probs"
    grid = np.linspace(0, 1, 201)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = cal.predict_proba(grid)[:, 1]
    assert np.all(np.diff(q) >= 0) and np.all((q >= 0) & (q <= 1))


def test_beta_converges_without_warning_on_noisy_data():
    # a line search alone stalls when the loss decrease falls below rounding; the Newton
    # decrement stop must end those fits as converged
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3)) * 2
    y3 = (rng.uniform(size=(300, 1)) > np.cumsum(softmax(1.5 * z, axis=1), axis=1)).sum(axis=1)
    p_stall = softmax(z, axis=1)[:, 2]  # this case stalled at |grad| = 3e-10 before
    w_stall = np.random.default_rng(4).uniform(0.5, 2, 300)
    cases = [(p_stall, (y3 == 2).astype(int), w_stall)]
    for seed in range(10):
        rng = np.random.default_rng(seed)
        p = rng.dirichlet(np.ones(3), size=300)[:, 0]
        cases.append((p, (rng.uniform(size=300) < p).astype(int), rng.uniform(0.5, 2, 300)))
    for p, y, w in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            cal = BetaCalibration().fit(p, y, sample_weight=w)
        assert cal.n_iter_ < 20


# ------------------------------------------------------------------ parity with betacal


@pytest.mark.parametrize("parameters", ["abm", "ab", "am"])
def test_beta_parity_with_betacal(shared_data, parameters):
    """Live parity with the authors' ``betacal`` package (1.1.0), which fits the same
    logistic regression with scikit-learn's lbfgs (default tolerance, C = 1e11): agreement
    to its convergence, about 1e-4 in probability. Data: top-label confidence of
    DenseNet-BC-100 on CIFAR-100 (first 4000 rows; even rows calibrate, odd rows test) and a
    synthetic set."""
    betacal = pytest.importorskip("betacal")
    d = np.load(shared_data / "netcal-cifar" / "densenet-bc-100-cifar-100.npz")
    p, y = d["predictions"][:4000].astype(np.float64), d["ground_truth"][:4000]
    conf = np.clip(p.max(axis=1), 1e-6, 1 - 1e-6)
    correct = (p.argmax(axis=1) == y).astype(int)
    rng = np.random.default_rng(0)
    s = rng.uniform(0.01, 0.99, 2000)
    t = (rng.uniform(size=2000) < s**1.7).astype(int)
    for f, o in ((conf, correct), (s, t)):
        cal, test = np.arange(0, len(f), 2), np.arange(1, len(f), 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = betacal.BetaCalibration(parameters=parameters).fit(
                f[cal].reshape(-1, 1), o[cal]).predict(f[test])
        ours = BetaCalibration(parameters=parameters, input="probs").fit(f[cal], o[cal])
        np.testing.assert_allclose(ours.predict_proba(f[test])[:, 1], theirs, atol=1e-3)
