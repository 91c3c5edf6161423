"""Tests of calibkit.metrics.dask.

Reference: the in-memory metrics of :mod:`calibkit.metrics` on the concatenated arrays (the
Dask path must equal them up to floating-point summation order), which are themselves
tested against by-definition loops in tests/test_metrics_calibration.py.
"""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from calibkit.metrics import (  # noqa: E402
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
)
from calibkit.metrics import dask as ckdask  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _data(n=6000, k=4, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k) * 0.7, size=n)
    # half the labels drawn from the probabilities (calibrated), half uniform
    half = n // 2
    drawn = np.argmax(np.log(probs[:half]) + rng.gumbel(size=(half, k)), axis=1)
    y = np.concatenate([drawn, rng.integers(0, k, n - half)])
    w = rng.uniform(0.2, 3.0, n)
    return y, probs, w


@pytest.mark.parametrize("mode", ["top_label", "classwise"])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_equals_in_memory_on_local_cluster(client, mode, norm):
    y, probs, w = _data()
    # unequal, misaligned chunks: y_true and weights are rechunked to the rows of y_prob
    p_d = da.from_array(probs, chunks=((1000, 2500, 2500), (2, 2)))
    y_d = da.from_array(y, chunks=700)
    w_d = da.from_array(w, chunks=1300)
    got = ckdask.expected_calibration_error(y_d, p_d, n_bins=12, norm=norm, mode=mode,
                                            sample_weight=w_d)
    want = expected_calibration_error(y, probs, n_bins=12, norm=norm, mode=mode,
                                      sample_weight=w)
    assert got == pytest.approx(want, abs=1e-12)


def test_binary_brier_nll_and_labels(client):
    rng = np.random.default_rng(1)
    p1 = rng.random(5000)
    y = (rng.random(5000) < p1).astype(int)
    labels = np.array(["neg", "pos"])
    p_d, y_d = da.from_array(p1, chunks=800), da.from_array(labels[y], chunks=800)
    got = ckdask.expected_calibration_error(y_d, p_d, mode="binary", labels=labels)
    assert got == pytest.approx(expected_calibration_error(y, p1, mode="binary"), abs=1e-12)
    got_b = ckdask.brier_score(da.from_array(y, chunks=900), p_d)
    assert got_b == pytest.approx(brier_score(y, p1), abs=1e-12)
    yk, probs, w = _data(k=3, seed=2)
    got_n = ckdask.negative_log_likelihood(da.from_array(yk, chunks=1000),
                                           da.from_array(probs, chunks=1000),
                                           sample_weight=da.from_array(w, chunks=1000))
    assert got_n == pytest.approx(negative_log_likelihood(yk, probs, sample_weight=w),
                                  abs=1e-12)


def test_lazy_result_and_numpy_input():
    y, probs, _ = _data(n=2000, seed=3)
    lazy = ckdask.expected_calibration_error(y, da.from_array(probs, chunks=300), compute=False)
    assert hasattr(lazy, "compute")
    assert lazy.compute(scheduler="synchronous") == pytest.approx(
        expected_calibration_error(y, probs), abs=1e-12
    )


def test_state_not_data_leaves_the_chunks():
    """Every task that merges receives streaming states of fixed size, not arrays of rows."""
    y, probs, _ = _data(n=3000, seed=4)
    lazy = ckdask.expected_calibration_error(da.from_array(y, chunks=500),
                                             da.from_array(probs, chunks=500), compute=False)
    graph = dict(lazy.__dask_graph__())
    merges = [k for k in graph if str(k[0] if isinstance(k, tuple) else k).startswith("_merge")]
    assert len(merges) == 5  # 6 chunks -> 5 pairwise merges


def test_errors():
    y, probs, _ = _data(n=500, seed=5)
    with pytest.raises(ValueError, match="quantile"):
        ckdask.expected_calibration_error(y, probs, strategy="quantile")
    with pytest.raises(ValueError, match="entries"):
        ckdask.expected_calibration_error(y[:-1], da.from_array(probs, chunks=100))
    with pytest.raises(ValueError, match="norm"):
        ckdask.expected_calibration_error(y, probs, norm="l7")
    with pytest.raises(ValueError, match="1-D or 2-D"):
        ckdask.expected_calibration_error(y, probs[:, :, None])
