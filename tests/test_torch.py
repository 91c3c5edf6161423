"""Tests of calibkit.torch against by-definition references.

References: the temperature minimises ``mean(logsumexp(z / T) - z_y / T)`` (checked with a
bounded scalar search in numpy, and against ``sklearn.calibration._TemperatureScaling``);
the calibration error is ``sum_b |sum_{i in b} (acc_i - conf_i)| / N`` over equal-width bins
assigned by looping over the bins with the edge comparisons written out.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy.optimize import minimize_scalar  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

from calibkit.base import ConvergenceWarning  # noqa: E402
from calibkit.metrics import binning  # noqa: E402
from calibkit.torch import (  # noqa: E402
    BrierScore,
    CalibrationError,
    NegativeLogLikelihood,
    TemperatureScaler,
    expected_calibration_error,
    fit_temperature,
)


def reference_temperature(z, y, w=None):
    w = np.ones(len(y)) if w is None else w

    def nll(log_t):
        s = z / np.exp(log_t)
        return np.average(logsumexp(s, axis=1) - s[np.arange(len(y)), y], weights=w)

    return float(np.exp(minimize_scalar(nll, bounds=(-5, 5), method="bounded",
                                        options={"xatol": 1e-12}).x))


def reference_ece(conf, acc, n_bins):
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for j in range(n_bins):
        upper_ok = conf <= edges[j + 1] if j == n_bins - 1 else conf < edges[j + 1]
        in_bin = (conf >= edges[j]) & upper_ok
        total += abs(np.sum(acc[in_bin]) - np.sum(conf[in_bin]))
    return total / len(conf)


def make_logits(n=4000, k=6, scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    y = np.argmax(z + rng.gumbel(size=(n, k)) * 2.0, axis=1)
    return z, y


# --------------------------------------------------------------------------- temperature


def test_fit_temperature_matches_definition_and_sklearn():
    from sklearn.calibration import _TemperatureScaling

    z, y = make_logits()
    t, n_iter = fit_temperature(torch.tensor(z), torch.tensor(y))
    assert t.dtype == torch.float64 and t.ndim == 0
    assert float(t) == pytest.approx(reference_temperature(z, y), rel=1e-7)
    assert float(t) == pytest.approx(1.0 / float(_TemperatureScaling().fit(z, y).beta_), rel=1e-6)
    assert 1 <= n_iter < 30
    assert float(t) > 1.2  # over-confident logits: the fit must move away from T = 1


def test_fit_temperature_matches_core_temperature_scaling_and_subsample_start():
    from calibkit.scaling import TemperatureScaling

    z, y = make_logits(n=40_000, k=8, seed=9)  # large enough for the subsample warm start
    t, n_iter = fit_temperature(torch.tensor(z), torch.tensor(y))
    core = TemperatureScaling(input="logits").fit(z, y)
    assert float(t) == pytest.approx(core.temperature_, rel=1e-8)
    assert float(t) == pytest.approx(reference_temperature(z, y), rel=1e-7)
    assert n_iter <= 4
    # a tensor through the core calibrator comes back as a tensor on the same device
    out = core.predict_proba(torch.tensor(z[:5]))
    assert isinstance(out, torch.Tensor) and out.shape == (5, 8)


def test_fit_temperature_chunks_weights_and_float32():
    z, y = make_logits(n=3000, k=4, seed=1)
    zt, yt = torch.tensor(z), torch.tensor(y)
    t_full, _ = fit_temperature(zt, yt)
    t_chunk, _ = fit_temperature(zt, yt, chunk_size=257)
    assert float(t_chunk) == pytest.approx(float(t_full), rel=1e-12)
    t32, _ = fit_temperature(zt.float(), yt)
    assert float(t32) == pytest.approx(reference_temperature(z.astype(np.float32), y), rel=1e-6)
    # integer weights equal duplication
    w = np.random.default_rng(2).integers(0, 4, len(y))
    t_w, _ = fit_temperature(zt, yt, sample_weight=torch.tensor(w, dtype=torch.float64))
    rep = np.repeat(np.arange(len(y)), w)
    t_rep, _ = fit_temperature(zt[rep], yt[rep])
    assert float(t_w) == pytest.approx(float(t_rep), rel=1e-10)


def test_fit_temperature_warns_on_separable_data():
    z = np.array([[5.0, -5.0], [-4.0, 4.0], [3.0, -3.0], [-6.0, 6.0]])
    y = np.argmax(z, axis=1)
    with pytest.warns(ConvergenceWarning, match="no minimiser"):
        t, _ = fit_temperature(torch.tensor(z), torch.tensor(y))
    assert float(t) < 1e-3


@pytest.mark.parametrize(
    "logits, labels, err, match",
    [
        (torch.zeros(5), torch.zeros(5, dtype=torch.long), ValueError, "shape"),
        (torch.full((3, 2), float("nan")), torch.zeros(3, dtype=torch.long), ValueError, "NaN"),
        (torch.zeros((3, 2)), torch.zeros(4, dtype=torch.long), ValueError, "entries"),
        (torch.zeros((3, 2)), torch.tensor([0, 1, 2]), ValueError, r"\[0, 2\)"),
        (torch.zeros((3, 2)), torch.zeros(3), TypeError, "integer"),
        (np.zeros((3, 2)), torch.zeros(3, dtype=torch.long), TypeError, "torch tensors"),
    ],
)
def test_fit_temperature_rejects_bad_input(logits, labels, err, match):
    with pytest.raises(err, match=match):
        fit_temperature(logits, labels)


def test_temperature_scaler_module():
    torch.manual_seed(0)
    x = torch.randn(2000, 7)
    model = torch.nn.Linear(7, 5)
    with torch.no_grad():
        model.weight.mul_(4.0)
        gumbel = -torch.log(-torch.log(torch.rand(2000, 5)))
        y = torch.argmax(model(x) + 2.0 * gumbel, dim=1).numpy()
    dataset = torch.utils.data.TensorDataset(x, torch.tensor(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=512)
    scaler = TemperatureScaler(model).fit_loader(loader)
    with torch.no_grad():
        logits = model(x)
    t_ref = reference_temperature(logits.double().numpy(), y)
    assert float(scaler.temperature) == pytest.approx(t_ref, rel=1e-6)
    assert scaler.n_iter_ >= 1
    with torch.no_grad():
        torch.testing.assert_close(scaler(x), logits / float(scaler.temperature))
    # appended to a model, restored from a state_dict
    layer = TemperatureScaler().fit(logits, torch.tensor(y))
    seq = torch.nn.Sequential(model, layer)
    fresh = torch.nn.Sequential(torch.nn.Linear(7, 5), TemperatureScaler())
    fresh.load_state_dict(seq.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), seq(x))
    assert "temperature=" in repr(layer)
    with pytest.raises(ValueError, match="positive"):
        TemperatureScaler(temperature=0.0)
    with pytest.raises(ValueError, match="needs a model"):
        TemperatureScaler().fit_loader(loader)


def test_temperature_scaler_keeps_dtype_and_grad():
    layer = TemperatureScaler(temperature=2.0)
    z = torch.randn(4, 3, dtype=torch.float32, requires_grad=True)
    out = layer(z)
    assert out.dtype == torch.float32
    out.sum().backward()
    torch.testing.assert_close(z.grad, torch.full_like(z, 0.5))


# --------------------------------------------------------------------------- metrics


def test_calibration_error_matches_definition_on_edges():
    n_bins = 7
    edges = binning.uniform_edges(n_bins)
    conf = np.concatenate([edges, np.nextafter(edges[1:], 0), np.linspace(0, 1, 53)])
    conf = np.clip(conf, 0.0, 1.0)
    acc = (np.arange(len(conf)) % 3 == 0).astype(float)
    got = expected_calibration_error(torch.tensor(acc), torch.tensor(conf), n_bins=n_bins,
                                     mode="binary")
    assert float(got) == pytest.approx(reference_ece(conf, acc, n_bins), abs=1e-15)


@pytest.mark.parametrize("mode", ["top_label", "classwise", "binary"])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_metrics_match_core_metrics(mode, norm):
    from calibkit.metrics.calibration import expected_calibration_error as core_ece

    k = 2 if mode == "binary" else 5
    z, y = make_logits(n=3000, k=k, seed=4)
    p = torch.softmax(torch.tensor(z), dim=1)
    w = np.random.default_rng(5).random(len(y))
    got = expected_calibration_error(torch.tensor(y), p, n_bins=10, norm=norm, mode=mode,
                                     sample_weight=torch.tensor(w))
    want = core_ece(y, p.numpy(), n_bins=10, norm=norm, mode=mode, sample_weight=w)
    assert float(got) == pytest.approx(want, abs=1e-12)
    # logits input goes through softmax
    got_logits = expected_calibration_error(torch.tensor(y), torch.tensor(z), n_bins=10,
                                            norm=norm, mode=mode, input="logits",
                                            sample_weight=torch.tensor(w))
    assert float(got_logits) == pytest.approx(want, abs=1e-12)


def test_brier_and_nll_match_core_metrics():
    from calibkit.metrics.scores import brier_score, negative_log_likelihood

    for k in (2, 4):
        z, y = make_logits(n=1500, k=k, seed=6)
        p = torch.softmax(torch.tensor(z), dim=1)
        b, n1, n2 = BrierScore(), NegativeLogLikelihood(), NegativeLogLikelihood(input="logits")
        for part in np.array_split(np.arange(len(y)), 3):
            b.update(torch.tensor(y[part]), p[part])
            n1.update(torch.tensor(y[part]), p[part])
            n2.update(torch.tensor(y[part]), torch.tensor(z[part]))
        assert float(b.compute()) == pytest.approx(brier_score(y, p.numpy()), abs=1e-12)
        nll = negative_log_likelihood(y, p.numpy())
        assert float(n1.compute()) == pytest.approx(nll, abs=1e-12)
        assert float(n2.compute()) == pytest.approx(nll, abs=1e-9)
    # binary P(positive) of shape (n,)
    z, y = make_logits(n=1500, k=2, seed=7)
    p = torch.softmax(torch.tensor(z), dim=1)
    b1 = BrierScore()
    b1.update(torch.tensor(y), p[:, 1])
    assert float(b1.compute()) == pytest.approx(brier_score(y, p[:, 1].numpy()), abs=1e-12)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 6), st.integers(0, 10_000))
def test_streaming_is_split_invariant(n_parts, seed):
    z, y = make_logits(n=300, k=3, seed=seed)
    p = torch.softmax(torch.tensor(z), dim=1)
    full = CalibrationError(mode="classwise", n_bins=8)
    full.update(torch.tensor(y), p)
    merged = CalibrationError(mode="classwise", n_bins=8)
    for part in np.array_split(np.arange(len(y)), n_parts):
        m = CalibrationError(mode="classwise", n_bins=8)
        m.update(torch.tensor(y[part]), p[part])
        merged.merge(m)
    assert float(merged.compute()) == pytest.approx(float(full.compute()), abs=1e-12)


def test_state_is_fixed_size_reset_and_errors():
    m = CalibrationError(n_bins=12)
    with pytest.raises(ValueError, match="before any update"):
        m.compute()
    for _ in range(3):
        assert m.update(torch.randint(0, 4, (100,)), torch.rand(100, 4).softmax(dim=1)) is m
    state = m.state_dict()["state"]
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "count": (1, 12), "sum_conf": (1, 12), "sum_acc": (1, 12)
    }
    assert float(state["count"].sum()) == 300
    assert m.reset() is m
    assert m.state_dict()["state"]["count"] is None
    with pytest.raises(ValueError, match="input='logits'"):
        m.update(torch.tensor([0]), torch.tensor([[2.0, -1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        m.update(torch.tensor([0]), torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="numbers of samples"):
        m.update(torch.tensor([0, 1]), torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="n_bins"):
        CalibrationError(n_bins=0)
    with pytest.raises(ValueError, match="norm"):
        CalibrationError(norm="l3")
    with pytest.raises(ValueError, match="merge"):
        m.merge(BrierScore())


@pytest.mark.parametrize("mode", ["top_label", "classwise", "binary"])
def test_torch_and_numpy_streaming_metrics_mirror_each_other(mode):
    """Same argument order, same state layout, same formula, states interchangeable through
    from_state, and the same exception types for the same bad input."""
    from calibkit.metrics import (
        StreamingBrierScore,
        StreamingCalibrationError,
        StreamingNegativeLogLikelihood,
    )

    rng = np.random.default_rng(5)
    k = 2 if mode == "binary" else 4
    p = rng.dirichlet(np.ones(k), size=300)
    y = rng.integers(0, k, 300)
    pairs = [(CalibrationError(n_bins=7, mode=mode), StreamingCalibrationError(n_bins=7,
                                                                               mode=mode)),
             (BrierScore(), StreamingBrierScore()),
             (NegativeLogLikelihood(), StreamingNegativeLogLikelihood())]
    for tm, nm in pairs:
        for part in np.array_split(np.arange(300), 3):
            assert tm.update(torch.tensor(y[part]), torch.tensor(p[part])) is tm
            assert nm.update(y[part], p[part]) is nm
        assert float(tm.compute()) == pytest.approx(nm.compute(), abs=1e-12)
        ts, ns = tm.state_dict(), nm.state_dict()
        assert ts["params"] == ns["params"] and ts["n_classes_seen"] == ns["n_classes_seen"]
        for name, arr in ns["state"].items():
            np.testing.assert_allclose(ts["state"][name].numpy(), arr, atol=1e-9)
        # states cross over in both directions
        assert float(type(tm).from_state(ns).compute()) == pytest.approx(nm.compute(), abs=1e-12)
        back = type(nm).from_state({**ts, "state": {k2: v.numpy() for k2,
                                                    v in ts["state"].items()}})
        assert back.compute() == pytest.approx(nm.compute(), abs=1e-12)
        # a state of the wrong shape or with negative counts is refused by both
        name = next(iter(ns["state"]))
        for bad in (np.zeros((3, 3)), -np.ones_like(ns["state"][name])):
            broken = {**ns, "state": {**ns["state"], name: bad}}
            with pytest.raises(ValueError):
                type(nm).from_state(broken)
            with pytest.raises(ValueError):
                type(tm).from_state(broken)
        for bad_y, bad_p in ((y[:2], p[:3]), (np.array([k + 3]), p[:1])):
            with pytest.raises(ValueError):
                type(nm)().update(bad_y, bad_p)
            with pytest.raises(ValueError):
                type(tm)().update(torch.tensor(bad_y), torch.tensor(bad_p))


def test_metric_returns_tensor_on_input_device():
    p = torch.rand(50, 3).softmax(dim=1)
    out = expected_calibration_error(torch.randint(0, 3, (50,)), p)
    assert isinstance(out, torch.Tensor) and out.device == p.device and out.ndim == 0
    if torch.cuda.is_available():  # pragma: no cover - exercised on GPU machines only
        pc = p.cuda()
        out = expected_calibration_error(torch.randint(0, 3, (50,), device="cuda"), pc)
        assert out.device.type == "cuda"


# --------------------------------------------------------------------------- distributed


def test_distributed_sync_gloo_two_processes():
    """Each of 2 gloo processes updates half the data; compute() on each equals the metric
    of all the data (the worker lives in a light module so that spawn starts fast)."""
    import torch.multiprocessing as mp
    import torch_dist_worker

    from calibkit.metrics.calibration import expected_calibration_error as core_ece
    from calibkit.metrics.scores import brier_score, negative_log_likelihood

    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mp.spawn(torch_dist_worker.run, args=(2, init_file, tmp), nprocs=2, join=True)
        results = [np.load(os.path.join(tmp, f"rank{r}.npy"), allow_pickle=True).item()
                   for r in range(2)]
    y, p = torch_dist_worker.data()
    p = p.numpy()
    want = {
        "ece": core_ece(y, p, n_bins=10),
        "classwise": core_ece(y, p, n_bins=10, mode="classwise", norm="l2"),
        "brier": brier_score(y, p),
        "nll": negative_log_likelihood(y, p),
    }
    for res in results:
        assert res["local_count"] == 500
        for name, value in want.items():
            assert res[name] == pytest.approx(value, abs=1e-12), name
