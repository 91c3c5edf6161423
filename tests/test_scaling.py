"""Tests of calibkit.scaling: temperature, Platt and vector scaling.

The references below compute each fitted parameter by definition, slowly, in float64:
the NLL written out with ``logsumexp`` and minimised by a dense grid followed by
``scipy.optimize.minimize_scalar`` (temperature), or by ``scipy.optimize.minimize`` on the
binary cross-entropy (Platt, soft targets), plus a bracketing root finder on the gradient of the NLL
(a converged float64 reference for the temperature).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.special import expit, log_softmax, logsumexp, softmax

from calibkit.base import ConvergenceWarning
from calibkit.scaling import PlattScaling, TemperatureScaling, VectorScaling

# --------------------------------------------------------------------------------------
# By-definition references (slow, float64)
# --------------------------------------------------------------------------------------


def nll_softmax(z, y, temperature, w=None):
    """Weighted mean of -log softmax(z / T)[y]."""
    z = np.asarray(z, dtype=np.float64)
    lp = log_softmax(z / temperature, axis=1)[np.arange(len(y)), y]
    w = np.ones(len(y)) if w is None else w
    return float(-(w @ lp) / w.sum())


def nll_binary(x, t, a, b=0.0, w=None):
    """Weighted mean binary cross-entropy of sigmoid(a x + b) against t in [0, 1]."""
    eta = a * x + b
    w = np.ones(len(x)) if w is None else w
    return float(w @ (np.logaddexp(0.0, eta) - t * eta) / w.sum())


def reference_temperature_grid(nll_of_t):
    """Dense grid over log T, then Brent's method around the best grid point."""
    grid = np.linspace(-4.0, 4.0, 161)
    vals = [nll_of_t(math.exp(g)) for g in grid]
    i = int(np.argmin(vals))
    res = minimize_scalar(
        lambda g: nll_of_t(math.exp(g)),
        bounds=(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return math.exp(res.x)


def reference_temperature_root(z, y, w=None):
    """Root of dNLL/dbeta = sum w (E_softmax(beta z)[z] - z_y), bracketed, in float64."""
    z = np.asarray(z, dtype=np.float64)
    w = np.ones(len(y)) if w is None else w
    zy = z[np.arange(len(y)), y]

    def grad(beta):
        return float(w @ ((softmax(beta * z, axis=1) * z).sum(axis=1) - zy))

    # grad is increasing in log beta; Brent's root finder keeps a bracket like bisection
    log_beta = brentq(lambda g: grad(math.exp(g)), -7.0, 7.0, xtol=1e-15, rtol=1e-15)
    return math.exp(-log_beta)


def reference_logistic(x, t, w=None):
    """(a, b) minimising the binary cross-entropy of sigmoid(a x + b), by BFGS."""

    def f(p):
        return nll_binary(x, t, p[0], p[1], w)

    res = minimize(f, np.array([1.0, 0.0]), method="BFGS", options={"gtol": 1e-12})
    res = minimize(f, res.x, method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-15})
    return res.x


def ece_top_label(p, y, n_bins=15):
    """Top-label ECE with 15 equal-width bins [a, b) (last bin closed)."""
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    idx = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(correct[m].mean() - conf[m].mean())
    return total / len(y)


def make_logits(n, k, *, scale=3.0, signal=2.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(0.0, 1.0, (n, k))
    z[np.arange(n), y] += signal
    return z * scale, y


def make_binary(n, *, a=0.6, b=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 3.0, n)
    y = (rng.random(n) < expit(a * x + b)).astype(int)
    return x, y


# --------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------


def test_temperature_matches_references_multiclass():
    z, y = make_logits(3000, 10)
    w = np.random.default_rng(1).uniform(0.2, 2.0, len(y))
    for weights in (None, w):
        ts = TemperatureScaling().fit(z, y, sample_weight=weights)
        t_grid = reference_temperature_grid(lambda t, ww=weights: nll_softmax(z, y, t, ww))
        t_root = reference_temperature_root(z, y, weights)
        assert ts.converged_
        assert ts.temperature_ == pytest.approx(t_grid, rel=1e-6)
        assert ts.temperature_ == pytest.approx(t_root, rel=1e-10)
        assert ts.temperature_ > 1.2  # the synthetic logits are overconfident
    p = ts.predict_proba(z)
    np.testing.assert_allclose(p, softmax(z / ts.temperature_, axis=1), rtol=1e-12)


def test_temperature_binary_matches_reference_and_two_columns_agree():
    x, y = make_binary(4000)
    ts = TemperatureScaling().fit(x, y)
    t_ref = reference_temperature_grid(lambda t: nll_binary(x, y, 1.0 / t))
    assert ts.temperature_ == pytest.approx(t_ref, rel=1e-6)
    two = TemperatureScaling().fit(np.column_stack([-x / 2, x / 2]), y)
    assert two.temperature_ == pytest.approx(ts.temperature_, rel=1e-12)
    p = ts.predict_proba(x)
    np.testing.assert_allclose(p[:, 1], expit(x / ts.temperature_), rtol=1e-12)


def test_temperature_soft_binary_targets():
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 4.0, 3000)
    iou = np.clip(expit(0.3 * x) + rng.normal(0, 0.1, len(x)), 0.0, 1.0)  # IoU-like target
    ts = TemperatureScaling().fit(x, iou)
    t_ref = reference_temperature_grid(lambda t: nll_binary(x, iou, 1.0 / t))
    assert ts.temperature_ == pytest.approx(t_ref, rel=1e-6)


def test_temperature_sklearn_parity():
    from sklearn.calibration import _TemperatureScaling

    z, y = make_logits(2000, 5, seed=4)
    ours = TemperatureScaling().fit(z, y)
    theirs = _TemperatureScaling().fit(z, y)
    # sklearn fits beta = 1 / T with Brent's method (xatol 64 eps on log beta)
    assert ours.temperature_ == pytest.approx(1.0 / float(theirs.beta_), rel=1e-4)


def test_temperature_float32_matches_float64():
    # n >= 8192 exercises the subsample warm start and the float32 exponentials
    z, y = make_logits(12000, 50, scale=4.0, seed=5)
    z32 = z.astype(np.float32)
    t32 = TemperatureScaling().fit(z32, y)
    t_ref = reference_temperature_root(z32.astype(np.float64), y)
    assert t32.converged_
    assert t32.n_iter_ <= 4
    assert t32.temperature_ == pytest.approx(t_ref, rel=1e-6)


def test_temperature_float32_probabilities_netcal(shared_data):
    # netcal #48/#61: an MLE fit on these float32 softmax outputs stayed at T = 1.
    d = np.load(shared_data / "netcal-cifar" / "wideresnet-16-4-cifar-100.npz")
    p, y = d["predictions"], d["ground_truth"]
    assert p.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few saturated rows are clipped
        ts = TemperatureScaling(input="probs").fit(p, y)
        q = ts.predict_proba(p)
    assert ts.converged_
    assert 1.05 < ts.temperature_ < 1.2
    nll_before = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None).astype(float)))
    nll_after = -np.mean(np.log(q[np.arange(len(y)), y]))
    assert nll_after < nll_before - 1e-3


@pytest.mark.parametrize(
    "name", ["densenet-bc-100-cifar-100.npz", "wideresnet-16-4-cifar-100.npz"]
)
def test_temperature_real_data_held_out(shared_data, name):
    d = np.load(shared_data / "netcal-cifar" / name)
    p, y = d["predictions"].astype(np.float64), d["ground_truth"]
    p /= p.sum(axis=1, keepdims=True)
    half = len(y) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = TemperatureScaling(input="probs").fit(p[:half], y[:half])
        q = ts.predict_proba(p[half:])
    ph, yh = p[half:], y[half:]
    nll = -np.mean(np.log(np.clip(ph[np.arange(len(yh)), yh], 1e-300, None)))
    nll_cal = -np.mean(np.log(q[np.arange(len(yh)), yh]))
    assert nll_cal < nll
    assert ece_top_label(q, yh) < ece_top_label(ph, yh)


def test_temperature_convergence_reporting():
    z, y = make_logits(500, 4, seed=6)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        ts = TemperatureScaling(max_iter=1).fit(z, y)
    assert not ts.converged_ and ts.n_iter_ == 1
    # separable scores: the NLL keeps falling as T -> 0
    x = np.array([-3.0, -1.0, -0.5, 0.5, 1.0, 3.0])
    with pytest.warns(ConvergenceWarning, match="no minimiser"):
        sep = TemperatureScaling().fit(x, (x > 0).astype(int))
    assert not sep.converged_
    z, _ = make_logits(300, 5, seed=7)
    anti = z.argmin(axis=1)  # labels on the smallest logit: the best model is uniform
    for scores in (z, z.astype(np.float32)):
        with pytest.warns(ConvergenceWarning, match="T -> infinity"):
            TemperatureScaling().fit(scores, anti)


@settings(max_examples=25, deadline=None)
@given(
    shift=st.floats(-50, 50),
    seed=st.integers(0, 2**16),
    k=st.integers(3, 6),
)
def test_temperature_properties(shift, seed, k):
    z, y = make_logits(200, k, seed=seed, signal=1.0)
    ts = TemperatureScaling().fit(z, y)
    shifted = TemperatureScaling().fit(z + shift, y)  # softmax is shift-invariant
    assert shifted.temperature_ == pytest.approx(ts.temperature_, rel=1e-8)
    p = ts.predict_proba(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(p.argmax(axis=1), z.argmax(axis=1))


# --------------------------------------------------------------------------------------
# Platt scaling
# --------------------------------------------------------------------------------------


def test_platt_matches_reference_hard_and_soft():
    x, y = make_binary(3000, seed=7)
    pl = PlattScaling(input="logits").fit(x, y)
    a, b = reference_logistic(x, y.astype(float))
    assert (pl.a_, pl.b_) == pytest.approx((a, b), rel=1e-6, abs=1e-8)
    rng = np.random.default_rng(8)
    soft = np.clip(expit(0.4 * x - 0.2) + rng.normal(0, 0.1, len(x)), 0, 1)
    w = rng.uniform(0.5, 2.0, len(x))
    pl = PlattScaling(input="logits").fit(x, soft, sample_weight=w)
    a, b = reference_logistic(x, soft, w)
    assert (pl.a_, pl.b_) == pytest.approx((a, b), rel=1e-6, abs=1e-8)
    np.testing.assert_allclose(pl.predict_proba(x)[:, 1], expit(pl.a_ * x + pl.b_))


def test_platt_sklearn_parity():
    from sklearn.calibration import CalibratedClassifierCV, _sigmoid_calibration
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(9)
    X = rng.normal(size=(3000, 4))
    y = (X @ [1.0, -2.0, 0.5, 0.0] + rng.logistic(size=3000) > 0).astype(int)
    clf = LogisticRegression().fit(X[:1000], y[:1000])
    f, yc = clf.decision_function(X[1000:]), y[1000:]
    w = rng.uniform(0.5, 2.0, len(yc))
    w /= w.mean()  # Platt's prior counts samples: calibkit rescales weights to mean 1
    for weights in (None, w):
        A, B = _sigmoid_calibration(f, yc, weights)
        pl = PlattScaling(input="logits", target_smoothing=True).fit(f, yc, sample_weight=weights)
        # sklearn's model is 1 / (1 + exp(A f + B)), ours sigmoid(a f + b)
        assert pl.a_ == pytest.approx(-A, rel=1e-4)
        assert pl.b_ == pytest.approx(-B, rel=1e-4, abs=1e-5)
    cal = CalibratedClassifierCV(FrozenEstimator(clf), method="sigmoid").fit(X[1000:], yc)
    pl = PlattScaling(input="logits", target_smoothing=True).fit(f, yc)
    np.testing.assert_allclose(pl.predict_proba(f), cal.predict_proba(X[1000:]), atol=1e-5)


def test_platt_multiclass_one_vs_rest():
    z, y = make_logits(1500, 4, seed=10)
    pl = PlattScaling().fit(z, y)
    assert len(pl.estimators_) == 4 and pl.converged_
    assert pl.n_iter_ == max(e.n_iter_ for e in pl.estimators_)
    p = softmax(z, axis=1)
    q = np.column_stack(
        [expit(e.a_ * np.log(p[:, k] / (1 - p[:, k])) + e.b_) for k, e in enumerate(pl.estimators_)]
    )
    np.testing.assert_allclose(pl.predict_proba(z), q / q.sum(axis=1, keepdims=True), rtol=1e-10)


def test_platt_separable_warns():
    x = np.array([-2.0, -1.0, 1.0, 2.0])
    with pytest.warns(ConvergenceWarning, match="target_smoothing"):
        PlattScaling(input="logits", max_iter=20).fit(x, [0, 0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        pl = PlattScaling(input="logits", target_smoothing=True).fit(x, [0, 0, 1, 1])
    assert pl.converged_ and np.isfinite(pl.a_)


# --------------------------------------------------------------------------------------
# Vector scaling
# --------------------------------------------------------------------------------------


def test_vector_scaling_matches_reference():
    z, y = make_logits(1500, 4, seed=11)
    vs = VectorScaling().fit(z, y)
    k = z.shape[1]

    def nll(params):
        a = z * params[:k] + params[k:]
        return float(np.mean(logsumexp(a, axis=1) - a[np.arange(len(y)), y]))

    ref = minimize(nll, np.r_[np.ones(k), np.zeros(k)], method="BFGS", options={"gtol": 1e-10})
    ours = np.r_[vs.w_, vs.b_]
    assert vs.converged_
    assert nll(ours) <= ref.fun + 1e-10
    np.testing.assert_allclose(vs.w_, ref.x[:k], rtol=1e-4)
    np.testing.assert_allclose(vs.predict_proba(z), softmax(z * vs.w_ + vs.b_, axis=1))
    # vector scaling contains temperature scaling (w = 1 / T, b = 0)
    ts = TemperatureScaling().fit(z, y)
    assert nll(ours) <= nll(np.r_[np.full(k, 1 / ts.temperature_), np.zeros(k)]) + 1e-12


def test_vector_scaling_rejects_1d():
    x, y = make_binary(100)
    with pytest.raises(ValueError, match="PlattScaling"):
        VectorScaling().fit(x, y)


# --------------------------------------------------------------------------------------
# All three
# --------------------------------------------------------------------------------------

ALL = [TemperatureScaling, PlattScaling, VectorScaling]


@pytest.mark.parametrize("cls", ALL)
def test_sample_weight_two_equals_duplicating_rows(cls):
    z, y = make_logits(400, 3, seed=12)
    w = np.ones(len(y))
    w[:100] = 2.0
    a = cls().fit(z, y, sample_weight=w)
    b = cls().fit(np.vstack([z, z[:100]]), np.r_[y, y[:100]])
    np.testing.assert_allclose(a.predict_proba(z), b.predict_proba(z), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cls", ALL)
def test_bad_input_errors(cls):
    z, y = make_logits(50, 3)
    est = cls()
    bad = z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        est.fit(z[:, :, None], y)
    with pytest.raises(ValueError, match="Inconsistent numbers of samples"):
        est.fit(z, y[:-1])
    extra = y.copy()
    extra[0] = 9  # four labels for three score columns
    with pytest.raises(ValueError, match="distinct label"):
        est.fit(z, extra)
    with pytest.raises(ValueError, match="only one class"):
        est.fit(z, np.zeros(len(y), dtype=int))
    with pytest.raises(ValueError, match="empty"):
        est.fit(np.empty((0, 3)), np.empty(0, dtype=int))
    p = softmax(z, axis=1)
    with pytest.raises(ValueError, match="look like probabilities"):
        cls(input="logits").fit(p, y)
    with pytest.raises(ValueError, match="look like logits"):
        cls(input="probs").fit(z, y)
    with pytest.raises(ValueError, match="'input' parameter"):
        cls(input="logit").fit(z, y)
    with pytest.raises(ValueError, match="max_iter"):
        cls(max_iter=0).fit(z, y)
    with pytest.raises(ValueError, match="tol"):
        cls(tol=-1.0).fit(z, y)
    est.fit(z, y)
    with pytest.raises(ValueError, match="column"):
        est.predict_proba(z[:, :2])


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_persistence_round_trip(cls, suffix, tmp_path):
    z, y = make_logits(300, 3, seed=13)
    est = cls(input="logits").fit(z, y)
    path = tmp_path / f"model{suffix}"
    est.save(path)
    for other in (cls.load(path), cls.from_dict(est.to_dict())):
        assert type(other) is cls and other.get_params() == est.get_params()
        np.testing.assert_array_equal(other.predict_proba(z), est.predict_proba(z))
        np.testing.assert_array_equal(other.classes_, est.classes_)


@pytest.mark.parametrize("cls", ALL)
def test_inputs_not_mutated(cls):
    z, y = make_logits(300, 3, seed=14)
    z32 = z.astype(np.float32)
    w = np.ones(len(y))
    copies = [z.copy(), z32.copy(), y.copy(), w.copy()]
    est = cls().fit(z, y, sample_weight=w)
    cls().fit(z32, y)
    est.predict_proba(z)
    for before, after in zip(copies, [z, z32, y, w], strict=True):
        np.testing.assert_array_equal(before, after)


def test_string_labels():
    z, y = make_logits(300, 3, seed=15)
    labels = np.array(["cat", "dog", "eel"])[y]
    for cls in ALL:
        est = cls().fit(z, labels)
        assert list(est.classes_) == ["cat", "dog", "eel"]
        assert set(est.predict(z)) <= set(labels)


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------


def test_torch_tensor_in_tensor_out_and_cpu_backend():
    torch = pytest.importorskip("torch")
    z, y = make_logits(2000, 5, seed=16)
    ts = TemperatureScaling().fit(z, y)
    zt = torch.as_tensor(z, dtype=torch.float32)
    tt = TemperatureScaling().fit(zt, torch.as_tensor(y))
    out = tt.predict_proba(zt)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert tt.temperature_ == pytest.approx(ts.temperature_, rel=1e-6)
    on_cpu = TemperatureScaling(device="cpu").fit(zt, y)
    assert on_cpu.temperature_ == pytest.approx(ts.temperature_, rel=1e-6)
    on_cpu64 = TemperatureScaling(device="cpu").fit(z, y)
    assert on_cpu64.temperature_ == pytest.approx(ts.temperature_, rel=1e-10)
    for cls in (PlattScaling, VectorScaling):
        res = cls().fit(z, y).predict_proba(zt)
        assert isinstance(res, torch.Tensor) and res.shape == (2000, 5)


def test_torch_cuda_backend():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    z, y = make_logits(4000, 20, seed=17)
    ref = TemperatureScaling().fit(z, y)
    zt = torch.as_tensor(z, dtype=torch.float32, device="cuda")
    ts = TemperatureScaling().fit(zt, torch.as_tensor(y, device="cuda"))
    assert ts.temperature_ == pytest.approx(ref.temperature_, rel=1e-6)
    out = ts.predict_proba(zt)
    assert out.device.type == "cuda"
    assert TemperatureScaling(device="cuda").fit(z, y).temperature_ == pytest.approx(
        ref.temperature_, rel=1e-10
    )


def test_bad_device():
    z, y = make_logits(50, 3)
    with pytest.raises(ValueError, match="device"):
        TemperatureScaling(device="tpu").fit(z, y)


# scikit-learn's check_estimator runs for every calibrator in tests/test_base.py


# ------------------------------------------------------------------ any logit scale


def _reference_temperature(z, y):
    """T minimising the NLL of softmax(z / T): the root in beta = 1 / T of
    dNLL/dbeta = mean_i (E_beta[u_i] - u_{i, y_i}), by brentq, on the logits divided by their
    own scale (slow and obvious; a minimiser of the NLL itself is only accurate to
    sqrt(eps))."""
    z = np.asarray(z, np.float64)
    s = np.mean(z.max(axis=1) - z.mean(axis=1))
    u = z / s
    u = u - u.max(axis=1, keepdims=True)
    uy = u[np.arange(len(y)), y]

    def grad(log_beta):
        p = softmax(np.exp(log_beta) * u, axis=1)
        return np.mean((p * u).sum(axis=1) - uy)

    return s / np.exp(brentq(grad, -20, 20, xtol=1e-14, rtol=1e-15))


@settings(max_examples=40, deadline=None)
@given(exponent=st.integers(-100, 300), k=st.sampled_from([1, 2, 5]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 10_000))
def test_temperature_is_scale_equivariant(exponent, k, dtype, seed):
    """T(c z) = c T(z) for c from 1e-100 to 1e300, binary (k=1: 1-D log-odds, k=2) and
    multiclass, float32 and float64, wherever c z is representable."""
    rng = np.random.default_rng(seed)
    n = 400
    z = rng.normal(size=(n, max(k, 2))) * 2.0
    y = (z + rng.gumbel(size=z.shape) * 1.5).argmax(axis=1)
    if k == 1:
        z = z[:, 1] - z[:, 0]
    c = 10.0 ** exponent
    info = np.finfo(dtype)
    zc = z * c
    if not np.all(np.abs(zc) < info.max / 10) or np.any((zc != 0) & (np.abs(zc) < info.tiny * 1e3)):
        return  # not representable in this dtype
    base = TemperatureScaling(input="logits").fit(z, y).temperature_
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        t = TemperatureScaling(input="logits").fit(zc.astype(dtype), y).temperature_
    rtol = 1e-6 if dtype == np.float32 else 1e-10
    assert t == pytest.approx(c * base, rel=rtol)


@pytest.mark.parametrize("c", [1e-100, 1e6, 1e7, 1e300])
def test_temperature_at_extreme_scales_matches_reference(c):
    rng = np.random.default_rng(2)
    z = rng.normal(size=(600, 6)) * 2.0
    y = (z + rng.gumbel(size=z.shape) * 1.5).argmax(axis=1)
    for dtype in (np.float64, np.float32):
        if dtype == np.float32 and not (1e-30 < c < 1e30):
            continue
        t = TemperatureScaling(input="logits").fit((z * c).astype(dtype), y).temperature_
        ref = _reference_temperature(z * c, y)
        assert t == pytest.approx(ref, rel=1e-6 if dtype == np.float32 else 1e-8)


def test_temperature_separable_huge_logits_with_ties_give_finite_probabilities():
    z = np.array([[1e300, 1e300, -1e300], [1e300, -1e300, 1e300], [-1e300, 1e300, 1e300]] * 20)
    y = np.array([0, 0, 1] * 20)
    with pytest.warns(ConvergenceWarning):
        ts = TemperatureScaling(input="logits").fit(z, y)
    p = ts.predict_proba(z)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1.0)


@pytest.mark.parametrize("c", [1e-160, 1e150])
def test_vector_scaling_at_extreme_scales(c):
    z, y = make_logits(800, 4, seed=3)
    base = VectorScaling(input="logits").fit(z, y)
    far = VectorScaling(input="logits").fit(z * c, y)
    np.testing.assert_allclose(far.predict_proba(z * c), base.predict_proba(z), atol=1e-9)
