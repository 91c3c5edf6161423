"""Tests of :mod:`calibkit.venn_abers`.

Reference (by definition): for a test score ``s``, ``p0`` (``p1``) is the value at ``s`` of the
isotonic regression fitted to the calibration set with ``(s, 0)`` (``(s, 1)``) added, tied
calibration scores pooled with their weights (scikit-learn's ``IsotonicRegression`` does
exactly that). Peer: the ``venn-abers`` package (``venn_abers.venn_abers``, 1.5.4), run
directly when installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn_checks import assert_passes_check_estimator

from calibkit import VennAbers
from calibkit.venn_abers import _upper_slopes_py, ivap_fit, ivap_predict

pytestmark = pytest.mark.filterwarnings("ignore::calibkit._validation.SaturatedProbabilityWarning")


def venn_abers_by_definition(cal_scores, cal_y, test_scores, sample_weight=None):
    """p0, p1 of each test score: isotonic regression refitted with the test point added."""
    w = np.ones(len(cal_scores)) if sample_weight is None else np.asarray(sample_weight, float)
    p = np.empty((2, len(test_scores)))
    for i, t in enumerate(test_scores):
        for label in (0, 1):
            iso = IsotonicRegression().fit(
                np.r_[cal_scores, t], np.r_[cal_y, label], sample_weight=np.r_[w, 1.0]
            )
            p[label, i] = iso.predict([t])[0]
    return p[0], p[1]


def merge_by_definition(p0, p1, merge):
    return p1 / (1 - p0 + p1) if merge == "log" else p1 + (p0**2 - p1**2) / 2


def tied_data(rng, n, n_values):
    s = rng.integers(0, n_values, n).astype(float) / n_values
    y = (rng.uniform(size=n) < s).astype(float)
    return s, y


def test_test_grid_covers_every_case():
    s = np.array([0.1, 0.2, 0.2, 0.5])
    grid = _grid(s)
    assert grid.min() < s.min() and grid.max() > s.max() and np.isin(s, grid).all()


def _grid(s):
    u = np.unique(s)
    mid = (u[1:] + u[:-1]) / 2 if len(u) > 1 else u
    return np.r_[u.min() - 1, u, mid, u.max() + 1]


# ------------------------------------------------------------------ exactness


@pytest.mark.parametrize("seed", range(20))
def test_ivap_matches_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    s, y = tied_data(rng, n, int(rng.integers(1, 12)))
    c, p0, p1 = ivap_fit(s, y)
    t = _grid(s)
    r0, r1 = venn_abers_by_definition(s, y, t)
    a0, a1 = ivap_predict(c, p0, p1, t)
    np.testing.assert_allclose(a0, r0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a1, r1, rtol=0, atol=1e-12)
    assert np.all(a0 <= a1)


@pytest.mark.parametrize("kind", ["integer", "fractional"])
def test_ivap_weights_are_frequency_weights(kind):
    rng = np.random.default_rng(3)
    for _ in range(8):
        s, y = tied_data(rng, 30, 7)
        w = rng.integers(1, 4, 30).astype(float) if kind == "integer" else rng.uniform(0.1, 3, 30)
        c, p0, p1 = ivap_fit(s, y, sample_weight=w)
        t = _grid(s)
        r0, r1 = venn_abers_by_definition(s, y, t, w)
        a0, a1 = ivap_predict(c, p0, p1, t)
        np.testing.assert_allclose(np.c_[a0, a1], np.c_[r0, r1], rtol=0, atol=1e-12)
        if kind == "integer":
            rep = np.repeat(np.arange(30), w.astype(int))
            np.testing.assert_allclose(
                np.column_stack(ivap_predict(*ivap_fit(s[rep], y[rep]), t)),
                np.c_[a0, a1],
                atol=1e-12,
            )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=25),
    st.integers(-1, 7),
)
def test_ivap_property_against_definition(rows, test_value):
    s = np.array([r[0] for r in rows], float)
    y = np.array([r[1] for r in rows], float)
    c, p0, p1 = ivap_fit(s, y)
    t = np.array([test_value, test_value + 0.5], float)
    r0, r1 = venn_abers_by_definition(s, y, t)
    a0, a1 = ivap_predict(c, p0, p1, t)
    np.testing.assert_allclose(np.c_[a0, a1], np.c_[r0, r1], rtol=0, atol=1e-12)


def test_compiled_kernel_equals_python_kernel():
    from calibkit.venn_abers import _hull_kernel

    rng = np.random.default_rng(0)
    for n in (1, 2, 50, 2000):
        w = rng.integers(1, 5, n).astype(float)
        yy = np.minimum(rng.integers(0, 6, n), w)
        cw, cy = np.r_[0.0, np.cumsum(w)], np.r_[0.0, np.cumsum(yy)]
        np.testing.assert_array_equal(_hull_kernel()(cw, cy), _upper_slopes_py(cw, cy))


def test_pure_python_fallback_gives_the_same_tables(monkeypatch):
    import calibkit.venn_abers as module

    rng = np.random.default_rng(4)
    s, y = tied_data(rng, 500, 40)
    compiled = ivap_fit(s, y)
    monkeypatch.setattr(module, "_hull_kernel", lambda: _upper_slopes_py)  # the reference
    for a, b in zip(ivap_fit(s, y), compiled, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", ["separable", "skewed", "constant"])
def test_extreme_shapes_match_definition(shape):
    rng = np.random.default_rng(1)
    n = 80
    s = rng.uniform(size=n)
    if shape == "separable":
        y = (s > 0.3).astype(float)
    elif shape == "skewed":
        s = np.round(np.where(rng.uniform(size=n) < 0.9, s**8, 1 - s**8), 3)
        y = (rng.uniform(size=n) < s).astype(float)
    else:
        s = np.full(n, 0.5)
        y = (rng.uniform(size=n) < 0.3).astype(float)
    t = _grid(s)
    a = ivap_predict(*ivap_fit(s, y), t)
    r = venn_abers_by_definition(s, y, t)
    np.testing.assert_allclose(np.column_stack(a), np.column_stack(r), atol=1e-12)


def test_single_class_and_empty_calibration():
    c, p0, p1 = ivap_fit(np.array([1.0, 2.0, 2.0, 3.0]), np.zeros(4))
    np.testing.assert_array_equal(p0, 0.0)
    np.testing.assert_allclose(p1, [0.2, 0.25, 0.5, 1.0])
    c, p0, p1 = ivap_fit(np.array([]), np.array([]))
    assert ivap_predict(c, p0, p1, [0.4]) == (0.0, 1.0)


# ------------------------------------------------------------------ the calibrator


def binary_scores(n=400, seed=0, decimals=2):
    rng = np.random.default_rng(seed)
    p = np.round(rng.uniform(size=n), decimals)
    y = (rng.uniform(size=n) < p).astype(int)
    return p, y


@pytest.mark.parametrize("merge", ["log", "brier"])
def test_binary_predict_proba_and_interval(merge):
    p, y = binary_scores()
    t = np.linspace(-0.01, 1.01, 57).clip(0, 1)
    va = VennAbers(merge=merge).fit(p, y)
    p0, p1 = va.predict_interval(t)
    r0, r1 = venn_abers_by_definition(p, y, t)
    np.testing.assert_allclose(p0, r0, atol=1e-12)
    np.testing.assert_allclose(p1, r1, atol=1e-12)
    proba = va.predict_proba(t)
    np.testing.assert_allclose(proba[:, 1], merge_by_definition(r0, r1, merge), atol=1e-12)
    np.testing.assert_allclose(proba.sum(1), 1.0)


def test_logits_probs_and_two_columns_agree():
    p, y = binary_scores(decimals=3)
    p = p.clip(0.001, 0.999)
    t = np.linspace(0.01, 0.99, 30)
    ref = VennAbers().fit(p, y).predict_proba(t)
    z = np.log(p) - np.log1p(-p)
    zt = np.log(t) - np.log1p(-t)
    np.testing.assert_allclose(VennAbers(input="logits").fit(z, y).predict_proba(zt), ref)
    two = np.c_[1 - p, p]
    np.testing.assert_allclose(VennAbers().fit(two, y).predict_proba(np.c_[1 - t, t]), ref)


def test_string_labels_and_predict():
    p, y = binary_scores()
    labels = np.array(["cat", "dog"])[y]
    va = VennAbers().fit(p, labels)
    assert list(va.classes_) == ["cat", "dog"]
    assert set(va.predict(p)) <= {"cat", "dog"}


def test_cvap_is_fitted_once_and_merges_folds():
    p, y = binary_scores(600)
    va = VennAbers(n_splits=4, shuffle=True, random_state=0).fit(p, y)
    assert len(va.ivaps_) == 4
    t = np.linspace(0, 1, 21)
    f0, f1 = va.predict_interval(t, return_folds=True)
    assert f0.shape == (21, 4)
    gm1 = np.exp(np.log(f1).mean(1))
    gm0 = np.exp(np.log1p(-f0).mean(1))
    np.testing.assert_allclose(va.predict_proba(t)[:, 1], gm1 / (gm0 + gm1), atol=1e-12)
    lo, hi = va.predict_interval(t)
    np.testing.assert_allclose(merge_by_definition(lo, hi, "log"), gm1 / (gm0 + gm1), atol=1e-12)
    brier = VennAbers(merge="brier", n_splits=4, random_state=0).fit(p, y).predict_proba(t)
    np.testing.assert_allclose(
        brier[:, 1], f1.mean(1) + 0.5 * (f0**2).mean(1) - 0.5 * (f1**2).mean(1), atol=1e-12
    )


def multiclass_probs(n=500, K=4, seed=2, total=200):
    """Probabilities on the grid j / total (exact ties; rows sum to 1 to rounding)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    z = rng.normal(size=(n, K))
    z[np.arange(n), y] += 1.5
    counts = np.array([rng.multinomial(total, row) for row in softmax(z, axis=1)])
    return counts / total, y


def test_one_vs_rest_is_per_class_ivap():
    p, y = multiclass_probs()
    va = VennAbers(multiclass="one_vs_rest").fit(p[:300], y[:300])
    lo, hi = va.predict_interval(p[300:])
    assert lo.shape == (200, 4)
    for k in range(4):
        r0, r1 = venn_abers_by_definition(p[:300, k], (y[:300] == k).astype(float), p[300:, k])
        np.testing.assert_allclose(lo[:, k], r0, atol=1e-12)
        np.testing.assert_allclose(hi[:, k], r1, atol=1e-12)
    q = merge_by_definition(lo, hi, "log")
    np.testing.assert_allclose(va.predict_proba(p[300:]), q / q.sum(1, keepdims=True))


def test_one_vs_one_intervals_bracket_the_coupled_probability():
    p, y = multiclass_probs()
    va = VennAbers(multiclass="one_vs_one").fit(p[:300], y[:300])
    assert va.pairs_.shape == (6, 2)
    lo, hi = va.predict_interval(p[300:])
    assert np.all(lo <= hi + 1e-12)
    proba = va.predict_proba(p[300:])
    np.testing.assert_allclose(proba.sum(1), 1.0)


def test_logits_multiclass_use_log_softmax_scores():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3)) * 60
    y = rng.integers(0, 3, 300)
    va = VennAbers(input="logits").fit(z, y)
    # Venn-ABERS only needs the order of scores: log-softmax is used as is, not exponentiated
    for k in range(3):
        np.testing.assert_array_equal(va.estimators_[k].ivaps_[0]["c"], np.unique(log_softmax(z,
            axis=1)[:, k]))


def test_precision_is_opt_in_rounding():
    p, y = binary_scores(decimals=6)
    t = np.linspace(0, 1, 11)
    exact = VennAbers().fit(p, y)
    rounded = VennAbers(precision=2).fit(p, y)
    ref = VennAbers().fit(np.round(p, 2), y)
    np.testing.assert_array_equal(rounded.predict_proba(t), ref.predict_proba(t))
    assert len(exact.ivaps_[0]["c"]) > len(rounded.ivaps_[0]["c"])


@pytest.mark.parametrize("suffix", [".json", ".npz"])
@pytest.mark.parametrize("params", [{}, {"n_splits": 3, "random_state": 0},
                                    {"multiclass": "one_vs_one"}])
def test_persistence_round_trip(tmp_path, suffix, params):
    p, y = multiclass_probs()
    va = VennAbers(**params).fit(p, y)
    path = tmp_path / f"va{suffix}"
    va.save(path)
    back = VennAbers.load(path)
    np.testing.assert_array_equal(back.predict_proba(p), va.predict_proba(p))
    np.testing.assert_array_equal(back.predict_interval(p)[1], va.predict_interval(p)[1])
    again = VennAbers.from_dict(json.loads(json.dumps(va.to_dict())))
    np.testing.assert_array_equal(again.predict_proba(p), va.predict_proba(p))


def test_inputs_not_mutated():
    p, y = multiclass_probs()
    p0, y0 = p.copy(), y.copy()
    VennAbers(multiclass="one_vs_one").fit(p, y).predict_proba(p)
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize(
    "params, err, match",
    [
        ({"merge": "mean"}, ValueError, "merge"),
        ({"multiclass": "crammer"}, ValueError, "multiclass"),
        ({"n_splits": 1}, ValueError, "n_splits"),
        ({"n_splits": 2.5}, TypeError, "n_splits"),
        ({"precision": 1.5}, TypeError, "precision"),
        ({"input": "odds"}, ValueError, "input"),
    ],
)
def test_bad_parameters(params, err, match):
    p, y = binary_scores()
    with pytest.raises(err, match=match):
        VennAbers(**params).fit(p, y)


def test_bad_input():
    p, y = binary_scores()
    with pytest.raises(ValueError, match="NaN"):
        VennAbers().fit(np.r_[np.nan, p[1:]], y)
    with pytest.raises(ValueError, match="one class"):
        VennAbers().fit(p, np.zeros_like(y))
    with pytest.raises(ValueError, match="soft|non-integer"):
        VennAbers().fit(p, p)
    va = VennAbers().fit(p, y)
    with pytest.raises(ValueError, match="column"):
        va.predict_proba(np.ones((3, 3)) / 3)


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    p, y = binary_scores()
    va = VennAbers().fit(p, y)
    out = va.predict_proba(torch.tensor(p[:5]))
    lo, hi = va.predict_interval(torch.tensor(p[:5]))
    assert isinstance(out, torch.Tensor) and isinstance(lo, torch.Tensor)


def test_sklearn_check_estimator():
    assert_passes_check_estimator(VennAbers(input="logits"), {
        "check_sample_weight_equivalence_on_dense_data": (
            "weights only matter up to a common factor (w and c * w give the same fit), so "
            "Venn-ABERS rescales them to mean 1; its test point has weight 1, so integer "
            "weights cannot also equal repeated rows"
        ),
    })


def test_sample_weight_scale_does_not_matter():
    p, y = binary_scores()
    w = np.random.default_rng(1).uniform(0.5, 3.0, len(y))
    t = np.linspace(0, 1, 21)
    a = VennAbers().fit(p, y, sample_weight=w).predict_interval(t)
    for c in (1e-300, 1e-5, 7.0, 1e300):
        b = VennAbers().fit(p, y, sample_weight=w * c).predict_interval(t)
        np.testing.assert_allclose(b[0], a[0], rtol=1e-12)
        np.testing.assert_allclose(b[1], a[1], rtol=1e-12)


# ------------------------------------------------------------------ parity with venn-abers


def test_parity_venn_abers_ivap_own_example():
    """The example of ``venn_abers.VennAbers``' docstring (GaussianNB on make_classification),
    with the calibration scores rounded to 2 decimals to force ties."""
    va_mod = pytest.importorskip("venn_abers.venn_abers")
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.naive_bayes import GaussianNB

    X, y = make_classification(n_samples=1000, n_classes=2, n_informative=10, random_state=0)
    X_train, X_test, y_train, _ = train_test_split(X, y, random_state=0)
    X_proper, X_cal, y_proper, y_cal = train_test_split(
        X_train, y_train, test_size=0.2, shuffle=False
    )
    clf = GaussianNB().fit(X_proper, y_proper)
    for decimals in (None, 2):
        p_cal, p_test = clf.predict_proba(X_cal), clf.predict_proba(X_test)
        if decimals is not None:
            p_cal = np.round(p_cal, decimals)
            p_test = np.r_[np.round(p_test, decimals), p_test]
        theirs_p, theirs_p0p1 = va_mod.VennAbers().fit(p_cal, y_cal).predict_proba(p_test)
        ours = VennAbers(input="probs").fit(p_cal, y_cal)
        p0, p1 = ours.predict_interval(p_test)
        np.testing.assert_allclose(p0, theirs_p0p1[:, 0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(p1, theirs_p0p1[:, 1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.predict_proba(p_test), theirs_p, rtol=0, atol=1e-12)


def test_parity_venn_abers_many_ties_and_precision():
    va_mod = pytest.importorskip("venn_abers.venn_abers")
    rng = np.random.default_rng(5)
    s = rng.uniform(size=3000)
    y = (rng.uniform(size=3000) < s**2).astype(int)
    t = np.r_[rng.uniform(size=500), np.round(s[:200], 3)]
    for precision in (None, 3, 1):
        p0, p1, c = va_mod.calc_p0p1(np.c_[1 - s, s], y, precision)
        _, theirs = va_mod.calc_probs(p0, p1, c, np.c_[1 - t, t])
        a0, a1 = VennAbers(precision=precision).fit(s, y).predict_interval(t)
        np.testing.assert_allclose(a0, theirs[:, 0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(a1, theirs[:, 1], rtol=0, atol=1e-12)


class _PassThrough(ClassifierMixin, BaseEstimator):
    """A fitted 'model' whose probability of class 1 is its first feature: lets the
    venn-abers package's estimator-based CVAP run on fixed scores."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.c_[1 - X[:, 0], X[:, 0]]


@pytest.mark.parametrize("loss", ["log", "brier"])
def test_parity_venn_abers_cvap(loss):
    va_mod = pytest.importorskip("venn_abers.venn_abers")
    p, y = binary_scores(700, seed=4)
    t = np.r_[np.linspace(0, 1, 101), p[:50]]
    theirs = va_mod.VennAbersCV(_PassThrough(), inductive=False, n_splits=5, shuffle=False)
    theirs.fit(p[:, None], y)
    tp, tp01 = theirs.predict_proba(t[:, None], loss=loss, p0_p1_output=True)
    ours = VennAbers(merge=loss, n_splits=5, shuffle=False).fit(p, y)
    f0, f1 = ours.predict_interval(t, return_folds=True)
    np.testing.assert_allclose(f0, tp01[:, :5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(f1, tp01[:, 5:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(t), tp, rtol=0, atol=1e-12)


@pytest.mark.parametrize("strategy", ["one_vs_rest", "one_vs_one"])
def test_parity_venn_abers_prefit_multiclass(strategy):
    va_mod = pytest.importorskip("venn_abers.venn_abers")
    p, y = multiclass_probs(800, K=5)
    theirs, theirs_p0p1 = va_mod.predict_proba_prefitted_va(
        p[:500], y[:500], p[500:], va_tpe=strategy
    )
    ours = VennAbers(multiclass=strategy, input="probs").fit(p[:500], y[:500])
    np.testing.assert_allclose(ours.predict_proba(p[500:]), theirs, rtol=0, atol=1e-12)
    if strategy == "one_vs_rest":
        lo, hi = ours.predict_interval(p[500:])
        for k in range(5):
            np.testing.assert_allclose(lo[:, k], theirs_p0p1[k][:, 0], atol=1e-12)
            np.testing.assert_allclose(hi[:, k], theirs_p0p1[k][:, 1], atol=1e-12)
