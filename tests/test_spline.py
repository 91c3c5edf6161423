"""Tests of calibkit.spline.SplineCalibration.

Reference (by definition): the paper's procedure with the natural cubic spline built from
the truncated-power basis of Hastie, Tibshirani & Friedman (ESL, eq. 5.4-5.5), an
independent construction of the same function space.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibkit import SplineCalibration
from calibkit.top_versus_all import top_label_probabilities


def natural_basis(knots, t):
    """ESL's natural cubic spline basis N_1..N_K and its derivative at t."""
    kk = len(knots)

    def d(k, x, deriv):
        a, b = knots[k], knots[-1]
        if deriv:
            return (3 * np.maximum(x - a, 0) ** 2 - 3 * np.maximum(x - b, 0) ** 2) / (b - a)
        return (np.maximum(x - a, 0) ** 3 - np.maximum(x - b, 0) ** 3) / (b - a)

    cols, dcols = [np.ones_like(t), t], [np.zeros_like(t), np.ones_like(t)]
    for k in range(kk - 2):
        cols.append(d(k, t, False) - d(kk - 2, t, False))
        dcols.append(d(k, t, True) - d(kk - 2, t, True))
    return np.column_stack(cols), np.column_stack(dcols)


def reference_spline(s, y, s_new, n_knots=6):
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    n = len(s)
    gap = (np.cumsum(y) - np.cumsum(s)) / n
    t = np.linspace(0, 1, n)
    b, db = natural_basis(np.linspace(0, 1, n_knots), t)
    coef = np.linalg.lstsq(b, gap, rcond=None)[0]
    values = s + db @ coef
    return np.clip(np.interp(s_new, s, values), 0, 1)


def test_matches_the_paper_procedure_binary():
    rng = np.random.default_rng(0)
    s = rng.uniform(size=3000)
    y = (rng.uniform(size=3000) < s**2).astype(float)
    cal = SplineCalibration(input="probs").fit(s, y)
    grid = np.linspace(0.01, 0.99, 50)
    np.testing.assert_allclose(cal.predict_proba(grid)[:, 1], reference_spline(s, y, grid),
                               atol=1e-9)
    # and it recovers the truth P(y = 1 | s) = s^2 roughly
    np.testing.assert_allclose(cal.predict_proba(grid)[:, 1], grid**2, atol=0.06)


def test_multiclass_is_top_label_and_keeps_the_prediction():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(5) * 0.3, size=2000)
    y = np.array([rng.choice(5, p=row ** 0.5 / (row ** 0.5).sum()) for row in p])
    cal = SplineCalibration(input="probs").fit(p, y)
    q = cal.predict_proba(p)
    np.testing.assert_allclose(q.sum(axis=1), 1)
    top = p.argmax(axis=1)
    assert np.all(q[np.arange(2000), top] >= q.max(axis=1) - 1e-12)
    conf, correct = p.max(axis=1), (top == y).astype(float)
    expected = top_label_probabilities(p, reference_spline(conf, correct, conf))
    np.testing.assert_allclose(q, expected, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_knots=st.integers(2, 10))
def test_outputs_are_probabilities(seed, n_knots):
    rng = np.random.default_rng(seed)
    s = rng.uniform(size=200)
    y = (rng.uniform(size=200) < s).astype(int)
    if y.min() == y.max():
        return
    q = SplineCalibration(n_knots=n_knots, input="probs").fit(s, y).predict_proba(
        rng.uniform(-0.0, 1.0, 300))
    assert np.all((q >= 0) & (q <= 1)) and np.allclose(q.sum(axis=1), 1)


def test_weights_count_samples_at_mean_one():
    """Weights are relative (rescaled to mean 1 over the samples of positive weight):
    equal positive weights are the unweighted fit of those samples, at any scale."""
    rng = np.random.default_rng(2)
    s = rng.uniform(size=300)
    y = (rng.uniform(size=300) < s).astype(int)
    w = np.tile([2, 0], 150)
    a = SplineCalibration(input="probs").fit(s, y, sample_weight=w).predict_proba(s)
    b = SplineCalibration(input="probs").fit(s[w > 0], y[w > 0]).predict_proba(s)
    np.testing.assert_allclose(a, b, atol=1e-12)
    c = SplineCalibration(input="probs").fit(s, y, sample_weight=w * 3.5).predict_proba(s)
    np.testing.assert_allclose(c, a, atol=1e-12)
    with pytest.raises(ValueError, match="n_knots"):
        SplineCalibration(n_knots=1).fit(s, y)
