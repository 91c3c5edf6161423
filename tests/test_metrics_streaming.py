"""Tests for calibkit.metrics.streaming.

Reference: the one-shot functional metrics (themselves checked against by-definition
loops in test_metrics_calibration.py / test_metrics_scores.py), plus a loop that sums
each sample into its bin one at a time.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibkit.metrics import (
    StreamingBrierScore,
    StreamingCalibrationError,
    StreamingNegativeLogLikelihood,
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
)
from calibkit.metrics.binning import assign_uniform


def ref_state(conf, acc, n_bins):
    count, sc, sa = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    for c, a in zip(conf, acc, strict=True):
        j = max(i for i in range(n_bins) if c >= edges[i])
        count[j] += 1
        sc[j] += c
        sa[j] += a
    return count, sc, sa


def _data(seed, n=500, k=5):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(k), n), rng.integers(0, k, n)


def test_state_is_the_per_bin_sums():
    P, y = _data(0)
    m = StreamingCalibrationError(n_bins=7).update(y, P)
    count, sc, sa = ref_state(P.max(1), P.argmax(1) == y, 7)
    assert m.count.shape == (1, 7)
    assert np.allclose(m.count[0], count) and np.allclose(m.sum_conf[0], sc)
    assert np.allclose(m.sum_acc[0], sa)


@pytest.mark.parametrize("mode", ["top_label", "classwise", "binary"])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_shards_merge_equals_one_shot(mode, norm):
    P, y = _data(1, n=1000, k=2 if mode == "binary" else 5)
    w = np.random.default_rng(2).uniform(0.1, 3, len(y))
    cuts = [0, 13, 400, 401, 1000]
    shards = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        shards.append(StreamingCalibrationError(n_bins=9, norm=norm, mode=mode)
                      .update(y[a:b], P[a:b], sample_weight=w[a:b]))
    total = StreamingCalibrationError(n_bins=9, norm=norm, mode=mode)
    for s in shards:
        total.merge(s)
    want = expected_calibration_error(y, P, n_bins=9, norm=norm, mode=mode, sample_weight=w)
    assert total.compute() == pytest.approx(want, abs=1e-12)
    # a single metric updated batch by batch gives the same
    seq = StreamingCalibrationError(n_bins=9, norm=norm, mode=mode)
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        seq.update(y[a:b], P[a:b], sample_weight=w[a:b])
    assert seq.compute() == pytest.approx(want, abs=1e-12)
    # state round trip
    again = StreamingCalibrationError.from_state(seq.state_dict())
    assert again.compute() == seq.compute()


@pytest.mark.parametrize("cls, fn", [
    (StreamingBrierScore, brier_score),
    (StreamingNegativeLogLikelihood, negative_log_likelihood),
])
@pytest.mark.parametrize("k", [2, 4])
def test_scores_merge_equals_one_shot(cls, fn, k):
    P, y = _data(3, k=k)
    a, b = cls().update(y[:100], P[:100]), cls().update(y[100:], P[100:])
    assert a.merge(b).compute() == pytest.approx(fn(y, P), abs=1e-12)
    w = np.random.default_rng(0).random(len(y))
    m = cls().update(y[:7], P[:7], sample_weight=w[:7]).update(y[7:], P[7:], w[7:])
    assert m.compute() == pytest.approx(fn(y, P, sample_weight=w), abs=1e-12)
    assert cls.from_state(m.state_dict()).compute() == m.compute()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(1, 30), min_size=1, max_size=5),
       st.integers(0, 2**31))
def test_property_any_sharding(n_bins, sizes, seed):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    p = rng.choice(np.r_[np.linspace(0, 1, n_bins + 1), rng.random(5)], n)
    y = (rng.random(n) < p).astype(int)
    m = StreamingCalibrationError(n_bins=n_bins, mode="binary")
    start = 0
    for s in sizes:
        m.merge(StreamingCalibrationError(n_bins=n_bins, mode="binary")
                .update(y[start:start + s], p[start:start + s]))
        start += s
    assert m.compute() == pytest.approx(
        expected_calibration_error(y, p, n_bins=n_bins, mode="binary"), abs=1e-12)
    assert m.count.sum() == n
    assert np.array_equal(m.count[0], np.bincount(assign_uniform(p, n_bins), minlength=n_bins))


def test_reset_and_errors():
    P, y = _data(4)
    m = StreamingCalibrationError().update(y, P)
    m.reset()
    with pytest.raises(ValueError, match="before any update"):
        m.compute()
    m.update(y, P)
    with pytest.raises(ValueError, match="earlier updates"):
        m.update(y[:5], P[:5, :3] / P[:5, :3].sum(1, keepdims=True))
    with pytest.raises(ValueError, match="same type"):
        m.merge(StreamingCalibrationError(n_bins=10))
    with pytest.raises(ValueError, match="integer column indices"):
        m.update(np.array(["a"] * 5), P[:5])
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        m.update(np.full(5, 7), P[:5])
    with pytest.raises(ValueError, match="sum to 1"):
        m.update(y[:2], P[:2] * 2)
    with pytest.raises(ValueError, match="norm"):
        StreamingCalibrationError(norm="l3")
    # merging an empty metric is a no-op, merging into an empty one copies
    e = StreamingCalibrationError()
    assert m.merge(StreamingCalibrationError()).compute() == e.merge(m).compute()
