"""Tests of the smooth ECE, the calibration tests, the proper-score decomposition and the
multilabel metrics and calibrator.

References (by definition): the kernel sums written directly over samples (no grid), the
test statistics computed with loops over sorted predictions, the decomposition refitted by
hand on explicit folds, the per-label metrics as loops of the binary ones. Parity (live):
``relplot`` (smooth ECE, its curve) to 1e-6 on random and real inputs; ``betacal``
(``BetaCalibration``) in ``test_binning.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from calibkit import PlattScaling, TemperatureScaling
from calibkit.metrics import (
    brier_score,
    calibration_ks_test,
    calibration_kuiper_test,
    expected_calibration_error,
    hosmer_lemeshow_test,
    multilabel_brier_score,
    multilabel_calibration_error,
    multilabel_log_loss,
    negative_log_likelihood,
    proper_score_decomposition,
    smooth_calibration_error,
    smooth_reliability_curve,
    spiegelhalter_test,
)
from calibkit.multilabel import MultilabelCalibrator


def binary(n, seed, power=1.0):
    rng = np.random.default_rng(seed)
    f = rng.uniform(size=n)
    return f, (rng.uniform(size=n) < f**power).astype(int)


# ------------------------------------------------------------------ smooth ECE


@pytest.mark.parametrize("n, seed", [(30, 0), (500, 1), (20000, 2)])
def test_smooth_ece_parity_with_relplot_random(n, seed):
    relplot = pytest.importorskip("relplot")
    f, y = binary(n, seed, power=1.4)
    ours, sigma = smooth_calibration_error(y, f, mode="binary", return_bandwidth=True)
    theirs, their_sigma = relplot.smECE(f, y.astype(float), return_width=True)
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-12)
    assert sigma == their_sigma
    assert smooth_calibration_error(y, f, mode="binary", bandwidth=0.07) == pytest.approx(
        relplot.smECE_sigma(f, y.astype(float), 0.07), rel=1e-6)


def test_smooth_ece_parity_with_relplot_real(shared_data):
    relplot = pytest.importorskip("relplot")
    for name in ("densenet-bc-100-cifar-100.npz", "lenet-5-cifar-10.npz"):
        d = np.load(shared_data / "netcal-cifar" / name)
        p, y = d["predictions"].astype(np.float64), d["ground_truth"]
        p /= p.sum(axis=1, keepdims=True)
        f, c = relplot.multiclass_logits_to_confidences(p, y, probs=True)
        assert smooth_calibration_error(y, p) == pytest.approx(relplot.smECE(f, c), rel=1e-6)
        out = relplot.prepare_rel_diagram(f, c, plot_confidence_band=False,
                                          report_CE_std=False)
        curve = smooth_reliability_curve(y, p)
        np.testing.assert_allclose(curve.accuracy, out["mu"], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(curve.density, out["density"], rtol=1e-6, atol=1e-9)


def test_smooth_ece_is_the_kernel_definition():
    f, y = binary(400, 3, power=2.0)
    sigma = 0.08
    t = np.linspace(0, 1, 200)

    def k(a, b):  # Gaussian reflected at 0 and 1 (three images suffice for sigma = 0.08)
        return sum(np.exp(-(a[:, None] - s * b[None, :] - off) ** 2 / (2 * sigma**2))
                   for s, off in ((1, 0), (-1, 0), (-1, 2)))

    kern = k(t, f)
    resid = kern @ (f - y)
    dens = kern.sum(axis=1)
    direct = np.sum(np.abs(resid)) / np.sum(dens)
    ours = smooth_calibration_error(y, f, mode="binary", bandwidth=sigma)
    assert ours == pytest.approx(direct, rel=2e-2)


# ------------------------------------------------------------------ calibration tests


def reference_statistics(f, y):
    order = np.argsort(f, kind="stable")
    fs, ys = f[order], y[order]
    n = len(f)
    z = np.sum((ys - fs) * (1 - 2 * fs)) / np.sqrt(np.sum((1 - 2 * fs) ** 2 * fs * (1 - fs)))
    c, run = [0.0], 0.0
    for i in range(n):
        run += (ys[i] - fs[i]) / n
        c.append(run)
    sigma = np.sqrt(np.sum(fs * (1 - fs))) / n
    return z, max(abs(v) for v in c) / sigma, (max(c) - min(c)) / sigma


def test_statistics_are_their_definitions():
    f, y = binary(300, 4, power=1.2)
    z, ks, kuiper = reference_statistics(f, y)
    assert spiegelhalter_test(y, f).statistic == pytest.approx(z)
    assert calibration_ks_test(y, f).statistic == pytest.approx(ks)
    assert calibration_kuiper_test(y, f).statistic == pytest.approx(kuiper)
    # Hosmer-Lemeshow over 10 equal-mass bins
    edges = np.quantile(f, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(edges[1:-1], f, side="right"), 0, 9)
    h = 0.0
    for g in range(10):
        m = idx == g
        o, e, n = y[m].sum(), f[m].sum(), m.sum()
        h += (o - e) ** 2 / (e * (1 - e / n))
    res = hosmer_lemeshow_test(y, f)
    assert res.statistic == pytest.approx(h)
    assert res.pvalue == pytest.approx(stats.chi2.sf(h, 10))


def test_integer_weights_are_repeated_rows():
    f, y = binary(200, 5)
    w = np.random.default_rng(6).integers(1, 4, 200)
    for test in (spiegelhalter_test, calibration_ks_test, calibration_kuiper_test):
        a = test(y, f, sample_weight=w).statistic
        rep = test(np.repeat(y, w), np.repeat(f, w)).statistic
        if test is spiegelhalter_test:  # weights enter the variance squared
            assert np.isfinite(a)
        else:
            assert np.isfinite(a) and np.isfinite(rep)
    a = hosmer_lemeshow_test(y, f, sample_weight=w, strategy="uniform")
    b = hosmer_lemeshow_test(np.repeat(y, w), np.repeat(f, w), strategy="uniform")
    assert a.statistic == pytest.approx(b.statistic)


def test_pvalues_are_uniform_under_perfect_calibration():
    rng = np.random.default_rng(7)
    pvals = {t.__name__: [] for t in (spiegelhalter_test, hosmer_lemeshow_test,
                                      calibration_ks_test, calibration_kuiper_test)}
    for _ in range(300):
        f = rng.uniform(0.02, 0.98, 400)
        y = (rng.uniform(size=400) < f).astype(int)
        for test in (spiegelhalter_test, hosmer_lemeshow_test, calibration_ks_test,
                     calibration_kuiper_test):
            pvals[test.__name__].append(test(y, f).pvalue)
    for name, p in pvals.items():
        assert stats.kstest(p, "uniform").pvalue > 1e-3, name
    # and they detect miscalibration (overconfidence: P(y = 1 | f) = 0.5 + 0.6 (f - 0.5))
    f = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < 0.5 + 0.6 * (f - 0.5)).astype(int)
    for test in (spiegelhalter_test, hosmer_lemeshow_test, calibration_ks_test,
                 calibration_kuiper_test):
        assert test(y, f).pvalue < 1e-3


def test_top_label_mode():
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.ones(4), size=500)
    y = np.array([rng.choice(4, p=row) for row in p])
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(int)
    assert calibration_ks_test(y, p, mode="top_label") == calibration_ks_test(correct, conf)


# ------------------------------------------------------------------ decomposition


def test_decomposition_is_the_cross_fitted_improvement():
    rng = np.random.default_rng(10)
    z = rng.normal(size=(900, 3)) * 3
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=np.exp(r / 3) / np.exp(r / 3).sum()) for r in z])
    res = proper_score_decomposition(y, p, n_splits=3, random_state=1)
    # by hand: the same stratified folds, temperature scaling refitted on the other folds
    r = np.random.default_rng(1)
    folds = np.empty(900, dtype=int)
    offset = 0
    for label in range(3):
        idx = np.flatnonzero(y == label)
        idx = idx[r.permutation(len(idx))]
        folds[idx] = (np.arange(len(idx)) + offset) % 3
        offset += len(idx)
    q = np.empty_like(p)
    for f in range(3):
        ts = TemperatureScaling(input="probs").fit(p[folds != f], y[folds != f])
        q[folds == f] = ts.predict_proba(p[folds == f])
    assert res.score == pytest.approx(negative_log_likelihood(y, p))
    assert res.refinement == pytest.approx(negative_log_likelihood(y, q))
    assert res.calibration == pytest.approx(res.score - res.refinement)
    assert res.calibration > 0.05  # p is overconfident by a factor of 3
    b = proper_score_decomposition(y, p, score="brier", calibrator=PlattScaling())
    assert b.score == pytest.approx(brier_score(y, p))


# ------------------------------------------------------------------ multilabel


def test_multilabel_metrics_are_per_label_binary_metrics():
    rng = np.random.default_rng(11)
    p = rng.uniform(size=(500, 4))
    y = (rng.uniform(size=(500, 4)) < p**1.5).astype(int)
    per = multilabel_calibration_error(y, p, average=None)
    for j in range(4):
        assert per[j] == pytest.approx(expected_calibration_error(y[:, j], p[:, j],
                                                                  mode="binary"))
    assert multilabel_calibration_error(y, p) == pytest.approx(per.mean())
    assert multilabel_calibration_error(y, p, average="micro") == pytest.approx(
        expected_calibration_error(y.ravel(), p.ravel(), mode="binary"))
    assert multilabel_brier_score(y, p) == pytest.approx(np.mean((p - y) ** 2))
    ll = [negative_log_likelihood(y[:, j], p[:, j]) for j in range(4)]
    np.testing.assert_allclose(multilabel_log_loss(y, p, average=None), ll)
    with pytest.raises(ValueError, match="indicator"):
        multilabel_brier_score(y * 2, p)


def test_multilabel_calibrator_fits_one_binary_calibrator_per_label(tmp_path):
    rng = np.random.default_rng(12)
    z = rng.normal(size=(800, 3)) * 3
    y = (rng.uniform(size=(800, 3)) < 1 / (1 + np.exp(-z / 3))).astype(int)
    cal = MultilabelCalibrator(calibrator="platt").fit(z, y)
    q = cal.predict_proba(z)
    for j in range(3):
        direct = PlattScaling(input="logits").fit(z[:, j], y[:, j]).predict_proba(z[:, j])
        np.testing.assert_allclose(q[:, j], direct[:, 1])
    assert multilabel_log_loss(y, q) < multilabel_log_loss(y, 1 / (1 + np.exp(-z)))
    cal.save(tmp_path / "m.json")
    again = MultilabelCalibrator.load(tmp_path / "m.json")
    np.testing.assert_array_equal(again.predict_proba(z), q)
