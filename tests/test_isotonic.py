"""Tests for calibkit.isotonic.IsotonicCalibration.

Reference: isotonic calibration by definition, i.e. pool tied scores to their weighted mean
target, run the textbook pool-adjacent-violators loop over the distinct scores, and predict
by linear interpolation between the knots, clipped to the end values
(Zadrozny & Elkan 2002; scikit-learn ``IsotonicRegression(out_of_bounds="clip")``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from calibkit.isotonic import STRICT_SPREAD, IsotonicCalibration

pytestmark = pytest.mark.filterwarnings(
    "ignore::calibkit._validation.SaturatedProbabilityWarning"
)


def reference_isotonic(x, y, w, x_new):
    """By-definition weighted PAV with tie pooling; linear interpolation, clipped."""
    w = np.ones(len(x)) if w is None else np.asarray(w, dtype=float)
    keep = w > 0
    x, y, w = x[keep], y[keep], w[keep]
    xs = np.unique(x)
    pooled = [(float(np.sum(w[x == v] * y[x == v]) / np.sum(w[x == v])),
               float(np.sum(w[x == v]))) for v in xs]
    blocks = []  # [value, weight, count]
    for value, weight in pooled:
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    fitted = np.concatenate([[v] * c for v, _, c in blocks])
    return np.interp(x_new, xs, fitted)


def tied_data(rng, n=600, decimals=2):
    p = np.round(rng.uniform(size=n), decimals)
    y = (rng.uniform(size=n) < p**2).astype(int)
    return p, y


def test_matches_reference_definition():
    rng = np.random.default_rng(0)
    p, y = tied_data(rng, 300)
    w = rng.exponential(size=len(p))
    w[:10] = 0.0
    x_new = np.linspace(-0.1, 1.1, 501).clip(0, 1)
    for weights in (None, w):
        cal = IsotonicCalibration().fit(p, y, sample_weight=weights)
        got = cal.predict_proba(x_new)[:, 1]
        np.testing.assert_allclose(got, reference_isotonic(p, y, weights, x_new), atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_parity_with_sklearn(weighted, soft):
    rng = np.random.default_rng(1)
    p, y = tied_data(rng, 5000)
    if soft:
        y = np.clip(p + rng.normal(scale=0.2, size=len(p)), 0, 1)
    w = rng.exponential(size=len(p)) if weighted else None
    sk = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p, y, sample_weight=w)
    cal = IsotonicCalibration().fit(p, y, sample_weight=w)
    x_new = rng.uniform(size=20000)
    np.testing.assert_allclose(cal.predict_proba(x_new)[:, 1], sk.predict(x_new), atol=1e-12)
    np.testing.assert_array_equal(cal.x_thresholds_, sk.X_thresholds_)
    np.testing.assert_allclose(cal.y_thresholds_, sk.y_thresholds_, atol=1e-12)


def test_logits_are_fitted_in_probability_space():
    rng = np.random.default_rng(2)
    z = rng.normal(scale=2, size=400)
    y = (rng.uniform(size=400) < expit(z)).astype(int)
    a = IsotonicCalibration().fit(z, y)
    b = IsotonicCalibration().fit(expit(z), y)
    np.testing.assert_allclose(a.x_thresholds_, b.x_thresholds_)
    np.testing.assert_allclose(a.predict_proba(z), b.predict_proba(expit(z)))
    # (n, 2) logits: the positive score is z1 - z0
    z2 = np.column_stack([np.zeros_like(z), z])
    np.testing.assert_allclose(IsotonicCalibration().fit(z2, y).predict_proba(z2),
                               a.predict_proba(z))


def test_zero_weights_equal_dropping_samples():
    rng = np.random.default_rng(3)
    p, y = tied_data(rng, 500)
    w = np.ones(len(p))
    w[::3] = 0
    a = IsotonicCalibration().fit(p, y, sample_weight=w)
    b = IsotonicCalibration().fit(p[w > 0], y[w > 0])
    np.testing.assert_array_equal(a.x_thresholds_, b.x_thresholds_)
    np.testing.assert_allclose(a.y_thresholds_, b.y_thresholds_, atol=1e-15)


def test_out_of_bounds():
    p = np.array([0.2, 0.4, 0.6, 0.8])
    y = np.array([0, 1, 0, 1])
    cal = IsotonicCalibration().fit(p, y)
    np.testing.assert_allclose(cal.predict_proba([0.0, 1.0])[:, 1], cal.y_thresholds_[[0, -1]])
    raising = IsotonicCalibration(out_of_bounds="raise").fit(p, y)
    raising.predict_proba([0.3, 0.7])
    with pytest.raises(ValueError, match="outside the training range"):
        raising.predict_proba([0.1])
    with pytest.raises(ValueError, match="out_of_bounds"):
        IsotonicCalibration(out_of_bounds="nan").fit(p, y)


def test_multiclass_one_vs_rest_rows_sum_to_one():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(300, 4)) * 2
    y = rng.integers(0, 4, 300)
    cal = IsotonicCalibration().fit(logits, y)
    q = cal.predict_proba(logits)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert len(cal.estimators_) == 4 and np.all((q >= 0) & (q <= 1))


# ------------------------------------------------------------------ strict=True


def many_flat_blocks(rng, n=3000):
    p = rng.uniform(size=n)  # distinct scores, but PAV output has long flat blocks
    y = (rng.uniform(size=n) < 0.2 + 0.6 * (p > 0.5)).astype(int)
    return p, y


def test_strict_keeps_ranking_and_auc():
    rng = np.random.default_rng(5)
    p, y = many_flat_blocks(rng)
    plain = IsotonicCalibration().fit(p, y).predict_proba(p)[:, 1]
    assert len(np.unique(plain)) < len(p) / 10  # many ties created by PAV
    assert roc_auc_score(y, plain) != roc_auc_score(y, p)
    strict = IsotonicCalibration(strict=True).fit(p, y).predict_proba(p)[:, 1]
    assert roc_auc_score(y, strict) == roc_auc_score(y, p)
    assert average_precision_score(y, strict) == average_precision_score(y, p)
    order = np.argsort(p)
    assert np.all(np.diff(strict[order]) > 0)
    assert np.all((strict >= 0) & (strict <= 1))


def test_strict_changes_calibration_negligibly():
    rng = np.random.default_rng(6)
    p, y = many_flat_blocks(rng)
    w = rng.exponential(size=len(p))
    plain = IsotonicCalibration().fit(p, y, sample_weight=w)
    strict = IsotonicCalibration(strict=True).fit(p, y, sample_weight=w)
    # strict keeps every knot; on the knots the change is bounded by STRICT_SPREAD x gap
    f0 = np.interp(strict.x_thresholds_, plain.x_thresholds_, plain.y_thresholds_)
    levels = np.unique(f0)
    gaps = np.diff(np.concatenate([[0.0], levels, [1.0]]))
    max_gap = np.maximum(gaps[:-1], gaps[1:])[np.searchsorted(levels, f0)]
    assert np.all(np.abs(strict.y_thresholds_ - f0) <= STRICT_SPREAD * max_gap + 1e-15)
    # interior blocks keep their weighted mean exactly (so their calibration)
    q0 = plain.predict_proba(p)[:, 1]
    q1 = strict.predict_proba(p)[:, 1]
    for level in levels:
        if 0 < level < 1:
            members = q0 == level
            assert np.isclose(np.average(q1[members], weights=w[members]), level, atol=1e-12)


def test_strict_single_interior_block_keeps_its_mean():
    p = np.linspace(0.1, 0.9, 9)
    y = np.full(9, 0.3)  # soft targets: one PAV block at 0.3
    cal = IsotonicCalibration(strict=True).fit(p, y)
    q = cal.predict_proba(p)[:, 1]
    assert np.all(np.diff(q) > 0)
    assert np.isclose(q.mean(), 0.3, atol=1e-15)
    assert np.all(np.abs(q - 0.3) <= STRICT_SPREAD * 0.7 + 1e-15)


def test_strict_boundary_blocks_move_inwards():
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    cal = IsotonicCalibration(strict=True).fit(p, y)
    f = cal.y_thresholds_
    assert np.all(np.diff(f) > 0)
    assert f[0] == 0.0 and f[-1] == 1.0


# ------------------------------------------------------------------ properties


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 4), st.floats(0.1, 5)),
             min_size=2, max_size=60),
    st.booleans(),
)
def test_property_monotone_and_in_unit_interval(rows, strict):
    # two anchor rows so that both classes are present
    p = np.array([r[0] for r in rows] + [0, 20]) / 20.0
    y = np.array([r[1] for r in rows] + [0, 4]) / 4.0
    w = np.array([r[2] for r in rows] + [1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = IsotonicCalibration(strict=strict).fit(p, y, sample_weight=w)
        grid = np.linspace(0, 1, 101)
        q = cal.predict_proba(grid)[:, 1]
        q_train = cal.predict_proba(p)[:, 1]
    assert np.all(np.diff(q) >= 0)
    assert np.all((q >= 0) & (q <= 1))
    # ties: the same score always gets the same output
    for v in np.unique(p):
        assert np.ptp(q_train[p == v]) == 0
    levels = np.unique(cal.y_thresholds_)
    single_block_at_bound = len(levels) == 1 and levels[0] in (0.0, 1.0)
    if strict and not single_block_at_bound:
        assert np.all(np.diff(cal.y_thresholds_) > 0)
        inside = (grid >= p.min()) & (grid <= p.max())
        assert np.all(np.diff(q[inside]) > 0)


def test_large_knot_tables_interpolate_exactly():
    # above 65536 knots and queries, predict sorts the queries first: same numbers
    rng = np.random.default_rng(7)
    p = rng.uniform(size=70000)
    y = (rng.uniform(size=len(p)) < p).astype(int)
    cal = IsotonicCalibration(strict=True).fit(p, y)
    assert len(cal.x_thresholds_) == len(p)
    x_new = rng.uniform(size=70000)
    np.testing.assert_array_equal(cal.predict_proba(x_new)[:, 1],
                                  np.interp(x_new, cal.x_thresholds_, cal.y_thresholds_))
