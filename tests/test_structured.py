"""Tests of calibkit.structured (SVS, SMS).

Parity (live): ``probmetrics`` (``SVSCalibrator`` / ``SMSCalibrator`` with their defaults:
ridge penalty, ``opt="bfgs"``, temperature scaling mixed with the uniform distribution first).
probmetrics optimises in float32, so the agreement is to its float32 optimum.
Reference (by definition): the same objective written out and minimised by BFGS.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp, softmax

from calibkit import StructuredMatrixScaling, StructuredVectorScaling, TemperatureScaling
from calibkit.metrics import negative_log_likelihood


def features(z, y):
    n, k = z.shape
    t = TemperatureScaling(input="logits").fit(z, y).temperature_
    e = 1.0 / (n + 1)
    return np.log((1 - e) * softmax(z / t, axis=1) + e / k)


def reference_svs(z, y):
    x = features(z, y)
    n, k = x.shape
    r = k / n

    def f(params):
        a = x * (1 + params[:k]) + params[k:]
        nll = np.mean(logsumexp(a, axis=1) - a[np.arange(n), y])
        return nll + r * np.sum(params**2)

    p = minimize(f, np.zeros(2 * k), method="BFGS", options={"gtol": 1e-10}).x
    return lambda: softmax(x * (1 + p[:k]) + p[k:], axis=1)


def test_svs_matches_its_objective():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 4)) * 3
    y = (rng.uniform(size=(500, 1)) > np.cumsum(softmax(z / 2, axis=1), axis=1)).sum(1)
    ours = StructuredVectorScaling(input="logits").fit(z, y)
    np.testing.assert_allclose(ours.predict_proba(z), reference_svs(z, y)(), atol=1e-5)


@pytest.mark.parametrize("ours, theirs", [("StructuredVectorScaling", "SVSCalibrator"),
                                          ("StructuredMatrixScaling", "SMSCalibrator")])
def test_parity_with_probmetrics(shared_data, ours, theirs):
    logistic = pytest.importorskip("probmetrics.calibrators.logistic")
    import calibkit

    d = np.load(shared_data / "netcal-cifar" / "wideresnet-16-4-cifar-10.npz")
    p, y = d["predictions"][:4000].astype(np.float64), d["ground_truth"][:4000]
    p /= p.sum(axis=1, keepdims=True)
    cal, test = np.arange(0, 4000, 2), np.arange(1, 4000, 2)
    x = np.log(np.clip(p, np.finfo(np.float32).tiny, None))
    a = getattr(calibkit, ours)(input="log_probs").fit(x[cal], y[cal]).predict_proba(x[test])
    b = getattr(logistic, theirs)(print_init_info=False).fit(p[cal], y[cal])
    b = b.predict_proba(p[test])
    b = b / b.sum(axis=1, keepdims=True)
    assert negative_log_likelihood(y[test], a) == pytest.approx(
        negative_log_likelihood(y[test], b), rel=1e-3)
    np.testing.assert_allclose(a, b, atol=5e-3)


def test_penalty_scales_with_classes_and_samples():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 3)) * 2
    y = rng.integers(0, 3, 300)
    strong = StructuredVectorScaling(lambda_diagonal=1e6, lambda_intercept=1e6,
                                     input="logits").fit(z, y)
    np.testing.assert_allclose(strong.scale_, 1.0, atol=1e-4)
    np.testing.assert_allclose(strong.intercept_, 0.0, atol=1e-4)
    sms = StructuredMatrixScaling(input="logits").fit(z, y)
    assert sms.coef_.shape == (3, 3)
    x = log_softmax(z, axis=1)
    assert np.isfinite(x).all()
