"""Tests for calibkit.metrics.calibration (ECE family, reliability curve, bootstrap CI).

The reference below is the by-definition computation, one Python loop over samples:
find each score's bin by walking the edges, sum per bin, then apply the norm.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from calibkit.metrics import (
    calibration_error_ci,
    expected_calibration_error,
    reliability_curve,
)
from calibkit.metrics.binning import assign_uniform

# ------------------------------------------------------------------------------------
# slow reference
# ------------------------------------------------------------------------------------


def ref_uniform_bin(p, n_bins):
    """Bin j holds e_j <= p < e_{j+1}; the last bin also holds 1."""
    edges = np.linspace(0, 1, n_bins + 1)
    for j in range(n_bins - 1, -1, -1):
        if p >= edges[j]:
            return j
    raise AssertionError


def ref_quantile_bins(p, n_bins, w=None):
    n = len(p)
    w = [1.0] * n if w is None else list(w)
    order = sorted(range(n), key=lambda i: (p[i], i))
    total = sum(w)
    bins = [0] * n
    before = 0.0
    prev = None
    for i in order:
        if prev is not None and p[i] == p[prev]:
            bins[i] = bins[prev]
        else:
            bins[i] = min(math.floor(n_bins * before / total), n_bins - 1)
        before += w[i]
        prev = i
    used = sorted(set(bins))
    return [used.index(b) for b in bins]


def ref_ce(conf, acc, n_bins, norm, strategy="uniform", w=None):
    n = len(conf)
    w = [1.0] * n if w is None else list(w)
    if strategy == "uniform":
        b = [ref_uniform_bin(c, n_bins) for c in conf]
    else:
        b = ref_quantile_bins(conf, n_bins, w)
    sums = {}
    for i in range(n):
        s = sums.setdefault(b[i], [0.0, 0.0, 0.0])
        s[0] += w[i]
        s[1] += w[i] * conf[i]
        s[2] += w[i] * acc[i]
    total = sum(s[0] for s in sums.values())
    gaps = [(s[0] / total, abs(s[2] / s[0] - s[1] / s[0])) for s in sums.values() if s[0] > 0]
    if norm == "l1":
        return sum(f * g for f, g in gaps)
    if norm == "l2":
        return math.sqrt(sum(f * g * g for f, g in gaps))
    return max(g for _, g in gaps)


def ref_ece(y, P, n_bins=15, norm="l1", mode="top_label", strategy="uniform", w=None):
    P = np.asarray(P)
    if mode == "binary":
        conf = [row if P.ndim == 1 else row[1] for row in P]
        return ref_ce(conf, [float(t == 1) for t in y], n_bins, norm, strategy, w)
    if P.ndim == 1:
        P = np.stack([1 - P, P], axis=1)
    if mode == "top_label":
        conf, acc = [], []
        for row, t in zip(P, y, strict=True):
            k = 0
            for j in range(len(row)):
                if row[j] > row[k]:
                    k = j
            conf.append(row[k])
            acc.append(float(k == t))
        return ref_ce(conf, acc, n_bins, norm, strategy, w)
    ces = [
        ref_ce(list(P[:, k]), [float(t == k) for t in y], n_bins, norm, strategy, w)
        for k in range(P.shape[1])
    ]
    if norm == "l1":
        return sum(ces) / len(ces)
    if norm == "l2":
        return math.sqrt(sum(c * c for c in ces) / len(ces))
    return max(ces)


def ref_unbiased_l2(conf, acc, n_bins):
    """verified_calibration ``unbiased_l2_ce`` on equal-width bins, written out."""
    b = [ref_uniform_bin(c, n_bins) for c in conf]
    n = len(conf)
    total = 0.0
    for j in range(n_bins):
        members = [i for i in range(n) if b[i] == j]
        if len(members) < 2:
            continue
        a = sum(acc[i] for i in members) / len(members)
        c = sum(conf[i] for i in members) / len(members)
        total += len(members) / n * ((a - c) ** 2 - a * (1 - a) / (len(members) - 1))
    return max(total, 0.0) ** 0.5


def ref_normal_debiased(conf, acc, n_bins, power, rng):
    """verified_calibration ``normal_debiased_ce`` (1000 resamples, one per loop)."""
    b = [ref_uniform_bin(c, n_bins) for c in conf]
    n = len(conf)
    size = np.array([sum(1 for i in range(n) if b[i] == j) for j in range(n_bins)], float)
    safe = np.maximum(size, 1)
    lab = np.array([sum(acc[i] for i in range(n) if b[i] == j) for j in range(n_bins)]) / safe
    mod = np.array([sum(conf[i] for i in range(n) if b[i] == j) for j in range(n_bins)]) / safe
    sd = np.sqrt(lab * (1 - lab) / safe)
    probs = size / n
    plugin = np.dot(probs, np.abs(lab - mod) ** power) ** (1 / power)
    res = []
    for _ in range(1000):
        s = rng.normal(loc=lab, scale=sd)
        res.append(np.dot(probs, np.abs(s - mod) ** power) ** (1 / power))
    return 2 * plugin - np.mean(res)


def _data(seed, n=300, k=4):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(k) * 0.8, n)
    y = np.array([rng.choice(k, p=row ** 1.5 / (row ** 1.5).sum()) for row in P])
    return P, y


# ------------------------------------------------------------------------------------
# agreement with the reference
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["top_label", "classwise"])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_matches_reference_multiclass(mode, norm, strategy):
    P, y = _data(0)
    w = np.random.default_rng(1).uniform(0.1, 2, len(y))
    for n_bins in (1, 7, 15):
        got = expected_calibration_error(y, P, n_bins=n_bins, norm=norm, mode=mode,
                                         strategy=strategy)
        assert got == pytest.approx(ref_ece(y, P, n_bins, norm, mode, strategy), abs=1e-12)
        got = expected_calibration_error(y, P, n_bins=n_bins, norm=norm, mode=mode,
                                         strategy=strategy, sample_weight=w)
        assert got == pytest.approx(ref_ece(y, P, n_bins, norm, mode, strategy, w), abs=1e-12)


@pytest.mark.parametrize("mode", ["binary", "top_label", "classwise"])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_matches_reference_binary_1d_and_2col(mode, norm):
    rng = np.random.default_rng(3)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(int)
    got = expected_calibration_error(y, p, mode=mode, norm=norm, n_bins=10)
    assert got == pytest.approx(ref_ece(y, p, 10, norm, mode), abs=1e-12)
    two = np.stack([1 - p, p], axis=1)
    assert expected_calibration_error(y, two, mode=mode, norm=norm, n_bins=10) == (
        pytest.approx(got, abs=1e-12)
    )


def test_string_labels_and_labels_argument():
    P, y = _data(4, k=3)
    names = np.array(["cat", "dog", "emu"])
    base = expected_calibration_error(y, P, mode="classwise")
    assert expected_calibration_error(names[y], P, mode="classwise") == base
    # columns follow labels=, in whatever order it is given
    perm = np.array([2, 0, 1])
    assert expected_calibration_error(names[y], P[:, perm], mode="classwise",
                                      labels=names[perm]) == pytest.approx(base, abs=1e-15)
    # binary: the larger label is the positive class
    p = P[:, 0] / (P[:, 0] + P[:, 1])
    yb = np.where(y == 0, "no", "yes")
    assert expected_calibration_error(yb, p, mode="binary") == pytest.approx(
        ref_ece((yb == "yes").astype(int), p, 15, "l1", "binary"), abs=1e-12
    )


# ------------------------------------------------------------------------------------
# bin edges, 0 and 1, ties
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [7, 10, 49])
def test_scores_exactly_on_edges(n_bins):
    edges = np.linspace(0, 1, n_bins + 1)
    p = np.concatenate([edges, np.nextafter(edges[1:], 0), np.nextafter(edges[:-1], 1)])
    idx = assign_uniform(p, n_bins)
    assert list(idx) == [ref_uniform_bin(v, n_bins) for v in p]
    assert idx[0] == 0 and idx[n_bins] == n_bins - 1  # 0 -> first bin, 1 -> last bin
    y = (np.arange(len(p)) % 3 == 0).astype(int)
    assert expected_calibration_error(y, p, mode="binary", n_bins=n_bins) == pytest.approx(
        ref_ece(y, p, n_bins, "l1", "binary"), abs=1e-12
    )


def test_floor_rule_would_misplace_edges():
    # the reason the binning compares with the edges themselves
    for n_bins in (7, 49):
        edges = np.linspace(0, 1, n_bins + 1)[:-1]
        floor_idx = np.floor(edges * n_bins).astype(int)
        assert np.any(floor_idx != np.arange(n_bins))
        assert np.array_equal(assign_uniform(edges, n_bins), np.arange(n_bins))


def test_ties_quantile_no_empty_bins():
    p = np.array([0.2] * 50 + [0.7] * 3 + [0.9] * 47)
    y = np.r_[np.zeros(40), np.ones(10), np.ones(3), np.ones(40), np.zeros(7)].astype(int)
    got = expected_calibration_error(y, p, mode="binary", strategy="quantile", n_bins=10)
    assert got == pytest.approx(ref_ece(y, p, 10, "l1", "binary", "quantile"), abs=1e-12)
    # with every score tied there is a single bin: |mean(y) - p|
    same = np.full(20, 0.3)
    yy = np.r_[np.ones(5), np.zeros(15)].astype(int)
    assert expected_calibration_error(yy, same, mode="binary", strategy="quantile") == (
        pytest.approx(0.05, abs=1e-12)
    )


def test_argmax_ties_go_to_first_column():
    P = np.full((2, 2), 0.5)
    assert expected_calibration_error([0, 0], P) == pytest.approx(0.5)  # correct, conf .5
    assert expected_calibration_error([1, 1], P) == pytest.approx(0.5)  # wrong
    assert expected_calibration_error([0, 0], P[:, 1]) == pytest.approx(0.5)  # 1-D form


def test_perfect_and_worst():
    y = np.array([0, 1, 1, 0])
    assert expected_calibration_error(y, y.astype(float), mode="binary") == 0.0
    assert expected_calibration_error(y, 1.0 - y, mode="binary") == 1.0


# ------------------------------------------------------------------------------------
# debiasing (verified_calibration's estimators)
# ------------------------------------------------------------------------------------


def test_debiased_l2_matches_verified_calibration_formula():
    rng = np.random.default_rng(5)
    p = rng.random(500)
    y = (rng.random(500) < p**1.2).astype(int)
    got = expected_calibration_error(y, p, mode="binary", norm="l2", debias=True)
    assert got == pytest.approx(ref_unbiased_l2(list(p), list(y), 15), abs=1e-12)
    # sample_weight of ones changes nothing
    assert expected_calibration_error(y, p, mode="binary", norm="l2", debias=True,
                                      sample_weight=np.ones(500)) == pytest.approx(got, abs=1e-12)


def test_debiased_l1_matches_normal_resampling():
    rng = np.random.default_rng(6)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(int)
    got = expected_calibration_error(y, p, mode="binary", debias=True, random_state=11)
    want = ref_normal_debiased(list(p), list(y), 15, 1, np.random.default_rng(11))
    assert got == pytest.approx(want, abs=1e-12)
    # reproducible and below the plug-in (the plug-in is biased upwards)
    assert got == expected_calibration_error(y, p, mode="binary", debias=True, random_state=11)


# ------------------------------------------------------------------------------------
# parity with torchmetrics
# ------------------------------------------------------------------------------------

# Golden values: torchmetrics 1.9.0 (torch 2.13.0+cpu), inputs from _torchmetrics_inputs():
#   binary_calibration_error(torch.tensor(p), torch.tensor(y), n_bins=15, norm=norm)
#   multiclass_calibration_error(torch.tensor(P), torch.tensor(Y), num_classes=4,
#                                n_bins=15, norm=norm)   (computed in float32)
TM_BINARY = {"l1": 0.059427280947399325, "l2": 0.06887163644578612, "max": 0.14249199280179148}
TM_MULTI = {"l1": 0.30829864740371704, "l2": 0.33879631757736206, "max": 0.7006667852401733}


def _torchmetrics_inputs():
    rng = np.random.default_rng(20261125)
    p = rng.random(2000)
    y = (rng.random(2000) < p**1.3).astype(np.int64)
    P = rng.dirichlet(np.ones(4) * 0.7, 2000)
    Y = rng.integers(0, 4, 2000)
    return p, y, P, Y


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_parity_torchmetrics(norm):
    p, y, P, Y = _torchmetrics_inputs()
    ours_b = expected_calibration_error(y, p, mode="binary", norm=norm)
    ours_m = expected_calibration_error(Y, P, mode="top_label", norm=norm)
    assert ours_b == pytest.approx(TM_BINARY[norm], abs=1e-12)
    assert ours_m == pytest.approx(TM_MULTI[norm], abs=1e-6)  # theirs is float32
    try:
        import torch
        from torchmetrics.functional.classification import (
            binary_calibration_error,
            multiclass_calibration_error,
        )
    except ImportError:
        return
    tb = binary_calibration_error(torch.tensor(p), torch.tensor(y), n_bins=15, norm=norm)
    tm = multiclass_calibration_error(torch.tensor(P), torch.tensor(Y), num_classes=4,
                                      n_bins=15, norm=norm)
    assert ours_b == pytest.approx(tb.item(), abs=1e-12)
    assert ours_m == pytest.approx(tm.item(), abs=1e-6)


# ------------------------------------------------------------------------------------
# properties
# ------------------------------------------------------------------------------------

probs_1d = st.lists(
    st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 1 / 7, 3 / 7, 0.5, 48 / 49])),
    min_size=1, max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(probs_1d, st.integers(1, 60))
def test_property_bin_membership(ps, n_bins):
    p = np.array(ps)
    idx = assign_uniform(p, n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    assert np.all((idx >= 0) & (idx < n_bins))
    assert np.all(edges[idx] <= p)
    last = idx == n_bins - 1
    assert np.all(p[~last] < edges[idx[~last] + 1])


@settings(max_examples=40, deadline=None)
@given(probs_1d, st.integers(1, 20), st.sampled_from(["uniform", "quantile"]), st.randoms())
def test_property_invariants(ps, n_bins, strategy, r):
    p = np.array(ps)
    y = np.array([r.random() < v for v in ps]).astype(int)
    kw = dict(mode="binary", n_bins=n_bins, strategy=strategy)
    l1 = expected_calibration_error(y, p, norm="l1", **kw)
    l2 = expected_calibration_error(y, p, norm="l2", **kw)
    mx = expected_calibration_error(y, p, norm="max", **kw)
    assert 0 <= l1 <= l2 + 1e-12 <= mx + 2e-12 <= 1 + 2e-12
    assert l1 == pytest.approx(ref_ece(y, p, n_bins, "l1", "binary", strategy), abs=1e-12)
    perm = np.array(r.sample(range(len(p)), len(p)))
    assert expected_calibration_error(y[perm], p[perm], norm="l1", **kw) == pytest.approx(
        l1, abs=1e-12
    )
    # integer weights == repeating rows
    w = np.array([r.randint(1, 3) for _ in ps])
    rep = np.repeat(np.arange(len(p)), w)
    assert expected_calibration_error(y, p, norm="l1", sample_weight=w, **kw) == (
        pytest.approx(expected_calibration_error(y[rep], p[rep], norm="l1", **kw), abs=1e-12)
    )


# ------------------------------------------------------------------------------------
# reliability curve and bootstrap interval
# ------------------------------------------------------------------------------------


def test_reliability_curve_by_definition_and_clopper_pearson():
    P, y = _data(7, n=400)
    c = reliability_curve(y, P, n_bins=10)
    conf, pred = P.max(1), P.argmax(1)
    b = np.array([ref_uniform_bin(v, 10) for v in conf])
    used = sorted(set(b))
    assert np.allclose(c.bin_lower, np.linspace(0, 1, 11)[used])
    for i, j in enumerate(used):
        m = b == j
        assert c.count[i] == m.sum()
        assert c.mean_confidence[i] == pytest.approx(conf[m].mean(), abs=1e-12)
        k = int((pred[m] == y[m]).sum())
        assert c.accuracy[i] == pytest.approx(k / m.sum(), abs=1e-12)
        ci = binomtest(k, int(m.sum())).proportion_ci(0.95, method="exact")
        assert c.ci_lower[i] == pytest.approx(ci.low, abs=1e-9)
        assert c.ci_upper[i] == pytest.approx(ci.high, abs=1e-9)
    one = reliability_curve(y, P, mode="classwise", class_index=2, strategy="quantile")
    assert one.count.sum() == len(y) and np.all(one.bin_lower <= one.bin_upper)
    pooled = reliability_curve(y, P, mode="classwise")
    assert pooled.count.sum() == len(y) * P.shape[1]


def test_bootstrap_ci_equals_slow_loop():
    P, y = _data(8, n=200)
    est, lo, hi = calibration_error_ci(y, P, n_bootstrap=300, random_state=0, n_bins=10)
    assert est == expected_calibration_error(y, P, n_bins=10)
    rng = np.random.default_rng(0)
    reps = [
        expected_calibration_error(y[r], P[r], n_bins=10)
        for r in (rng.integers(0, len(y), len(y)) for _ in range(300))
    ]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])), abs=1e-12)
    assert lo <= est <= hi
    # classwise, weighted, quantile: same loop semantics
    w = np.random.default_rng(2).uniform(0.5, 1.5, len(y))
    for kw in ({"mode": "classwise", "norm": "l2"}, {"strategy": "quantile"}):
        est, lo, hi = calibration_error_ci(y, P, n_bootstrap=50, random_state=3,
                                           sample_weight=w, **kw)
        rng = np.random.default_rng(3)
        reps = []
        for _ in range(50):
            r = rng.integers(0, len(y), len(y))
            reps.append(expected_calibration_error(y[r], P[r], sample_weight=w[r], **kw))
        assert (lo, hi) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])), abs=1e-12)


# ------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y, p, match",
    [
        ([0, 1], [0.2, np.nan], "NaN"),
        ([0, 1], [0.2, 1.3], "outside"),
        ([0, 1], [[0.2, 0.3], [0.5, 0.5]], "sum to 1"),
        ([0, 1, 1], [0.2, 0.3], "Inconsistent"),
        ([], [], "empty"),
        ([0, 1, 7, 8], np.full((4, 3), 1 / 3), "distinct label"),
        ([0, 1], np.ones((2, 2, 2)) / 2, "1-D or 2-D"),
        ([[0, 1]], [0.1, 0.2], "1-D"),
        ([0, 1], [[[1.0]], [[1.0]]], "1-D or 2-D"),
    ],
)
def test_bad_input(y, p, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(y, p)


def test_bad_arguments():
    p, y = np.array([0.2, 0.8]), np.array([0, 1])
    for kw, match in [
        ({"norm": "l3"}, "norm"), ({"mode": "marginal"}, "mode"), ({"n_bins": 0}, "n_bins"),
        ({"strategy": "equal"}, "strategy"), ({"labels": [0, 1, 2]}, "labels"),
        ({"sample_weight": [1.0, -1.0]}, "non-negative"),
    ]:
        with pytest.raises(ValueError, match=match):
            expected_calibration_error(y, p, **kw)
    with pytest.raises(ValueError, match="not in the classes"):
        expected_calibration_error([0, 5], np.full((2, 3), 1 / 3), labels=[0, 1, 2])
    with pytest.raises(ValueError, match="binary"):
        expected_calibration_error([0, 1], np.full((2, 3), 1 / 3), mode="binary")
    with pytest.raises(ValueError, match="n_bootstrap"):
        calibration_error_ci(y, p, n_bootstrap=0)
    with pytest.raises(TypeError, match="unexpected"):
        calibration_error_ci(y, p, alpha=0.1)
    with pytest.raises(ValueError, match="pooled"):
        reliability_curve(y, p, mode="classwise", strategy="quantile")


def test_inputs_not_mutated_and_torch_accepted():
    P, y = _data(9, n=50)
    P0, y0 = P.copy(), y.copy()
    expected_calibration_error(y, P, mode="classwise", sample_weight=np.ones(50))
    assert np.array_equal(P, P0) and np.array_equal(y, y0)
    torch = pytest.importorskip("torch")
    assert expected_calibration_error(torch.tensor(y), torch.tensor(P)) == pytest.approx(
        expected_calibration_error(y, P), abs=1e-12
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_chunked_uniform_bin_sums_equal_one_pass(weighted):
    from calibkit.metrics.binning import bin_sums, uniform_bin_sums

    rng = np.random.default_rng(12)
    p = np.r_[rng.random(1000), np.linspace(0, 1, 50)]
    acc = rng.random(len(p)) < p
    w = rng.random(len(p)) if weighted else None
    want = bin_sums(assign_uniform(p, 49), 49, p, acc, w)
    for chunk in (1, 7, 4096):
        got = uniform_bin_sums(p, 49, acc, w, chunk=chunk)
        for g, h in zip(got, want, strict=True):
            assert np.allclose(g, h, rtol=1e-12, atol=1e-12)


def test_torch_tensor_in_gives_tensor_on_its_device():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(4), size=300)
    y = rng.integers(0, 4, size=300)
    out = expected_calibration_error(torch.as_tensor(y), torch.as_tensor(p))
    assert isinstance(out, torch.Tensor) and out.device == torch.device("cpu") and out.ndim == 0
    assert float(out) == pytest.approx(expected_calibration_error(y, p), rel=1e-12)
