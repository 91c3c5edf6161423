"""Tests of calibkit.ensemble.EnsembleTemperatureScaling.

Reference (by definition): the procedure of the Mix-n-Match paper as its authors' code runs
it, written out below: ``T`` minimising the squared error (or the log loss) over a bounded
interval with L-BFGS-B, then the weights by SLSQP on the simplex.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import softmax

from calibkit import EnsembleTemperatureScaling


def reference_ets(z, y, loss):
    n, k = z.shape
    onehot = np.eye(k)[y]

    def t_loss(t):
        p = softmax(z / t[0], axis=1)
        if loss == "mse":
            return np.mean(np.sum((p - onehot) ** 2, axis=1))
        return -np.mean(np.log(p[np.arange(n), y]))

    t = minimize(t_loss, [1.0], method="L-BFGS-B", bounds=[(0.05, 20.0)], tol=1e-14).x[0]
    p0, p1, p2 = softmax(z / t, axis=1), softmax(z, axis=1), np.full((n, k), 1.0 / k)

    def w_loss(w):
        p = w[0] * p0 + w[1] * p1 + w[2] * p2
        if loss == "mse":
            return np.mean(np.sum((p - onehot) ** 2, axis=1))
        return -np.mean(np.log(p[np.arange(n), y]))

    w = minimize(w_loss, [1.0, 0.0, 0.0], method="SLSQP", bounds=[(0, 1)] * 3,
                 constraints={"type": "eq", "fun": lambda w: np.sum(w) - 1}, tol=1e-14).x
    return t, w, w[0] * p0 + w[1] * p1 + w[2] * p2


def data(n=600, k=4, scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    y = (rng.uniform(size=(n, 1)) > np.cumsum(softmax(z / (2 * scale), axis=1),
                                              axis=1)).sum(axis=1)
    return z, y


@pytest.mark.parametrize("loss", ["mse", "log_loss"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_paper_procedure(loss, seed):
    z, y = data(seed=seed)
    ets = EnsembleTemperatureScaling(loss=loss).fit(z, y)
    t, w, q = reference_ets(z, y, loss)
    assert ets.temperature_ == pytest.approx(t, rel=1e-4)
    np.testing.assert_allclose(ets.weights_, w, atol=2e-4)
    np.testing.assert_allclose(ets.predict_proba(z), q, atol=1e-4)


def test_uniform_weight_on_noisy_labels():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2000, 5)) * 4
    y = rng.integers(0, 5, 2000)  # labels unrelated to the scores
    ets = EnsembleTemperatureScaling().fit(z, y)
    q = ets.predict_proba(z)
    assert ets.weights_[2] > 0.5 or ets.temperature_ > 10
    np.testing.assert_allclose(q, 0.2, atol=0.15)


def test_binary_and_soft_targets():
    rng = np.random.default_rng(4)
    z = rng.normal(size=500) * 3
    y = (rng.uniform(size=500) < 1 / (1 + np.exp(-z / 2))).astype(int)
    a = EnsembleTemperatureScaling().fit(z, y)
    b = EnsembleTemperatureScaling().fit(np.column_stack([np.zeros(500), z]), y)
    np.testing.assert_allclose(a.predict_proba(z), b.predict_proba(
        np.column_stack([np.zeros(500), z])), atol=1e-8)
    soft = np.clip(1 / (1 + np.exp(-z / 2)) + rng.normal(scale=0.05, size=500), 0, 1)
    c = EnsembleTemperatureScaling(loss="log_loss").fit(z, soft)
    assert c.temperature_ == pytest.approx(2.0, rel=0.15)


def test_torch_device_cpu_matches_numpy():
    torch = pytest.importorskip("torch")
    z, y = data()
    for loss in ("mse", "log_loss"):
        a = EnsembleTemperatureScaling(loss=loss).fit(z, y)
        b = EnsembleTemperatureScaling(loss=loss, device="cpu").fit(torch.tensor(z),
                                                                    torch.tensor(y))
        assert b.temperature_ == pytest.approx(a.temperature_, rel=1e-6)
        np.testing.assert_allclose(b.weights_, a.weights_, atol=1e-6)
        out = b.predict_proba(torch.tensor(z))
        assert isinstance(out, torch.Tensor)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6),
       loss=st.sampled_from(["mse", "log_loss"]))
def test_outputs_are_distributions_with_convex_weights(seed, k, loss):
    z, y = data(n=120, k=k, seed=seed)
    if len(np.unique(y)) < 2:
        return
    ets = EnsembleTemperatureScaling(loss=loss).fit(z, y)
    q = ets.predict_proba(z)
    assert np.all(q >= 0) and np.allclose(q.sum(axis=1), 1)
    assert np.all(ets.weights_ >= 0) and ets.weights_.sum() == pytest.approx(1)
