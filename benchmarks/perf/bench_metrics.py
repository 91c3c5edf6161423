"""Speed of the calibration metrics against a numpy floor and torchmetrics.

Run from the repository root::

    PYTHONPATH=. python benchmarks/perf/bench_metrics.py [--n 10000000] [--repeat 5]

Prints a markdown table. Each time is the best of ``--repeat`` runs, measured in this
process on the same inputs; ratios (calibkit / reference) are what to compare across
machines. Peers that are not installed are skipped.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_of

from calibkit.metrics import (
    StreamingCalibrationError,
    calibration_error_ci,
    expected_calibration_error,
)


def best_of_pair(fn_a, fn_b, repeat):
    """Best times of two functions run alternately, so that load from other processes
    affects both alike."""
    a = b = np.inf
    for _ in range(repeat):
        a = min(a, best_of(fn_a, 1))
        b = min(b, best_of(fn_b, 1))
    return a, b


def numpy_floor(y, p, n_bins=15):
    """One pass: floor(p * n_bins) bins (no edge correction, no validation), three
    bincounts and the L1 sum: the least any equal-width ECE can cost in numpy."""
    idx = np.minimum((p * n_bins).astype(np.intp), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_conf = np.bincount(idx, weights=p, minlength=n_bins)
    sum_acc = np.bincount(idx, weights=y, minlength=n_bins)
    return np.abs(sum_acc - sum_conf).sum() / len(p), count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10**7)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []

    n = args.n
    p = rng.random(n)
    y = (rng.random(n) < p**1.2).astype(np.int64)
    ours, floor = best_of_pair(lambda: expected_calibration_error(y, p, mode="binary"),
                               lambda: numpy_floor(y, p), args.repeat)
    assert abs(expected_calibration_error(y, p, mode="binary") - numpy_floor(y, p)[0]) < 1e-9
    rows.append((f"binary ECE, 15 bins, n={n:.0e}", ours, "numpy bincount floor", floor))
    try:
        import torch
        from torchmetrics.functional.classification import binary_calibration_error

        tp, ty = torch.from_numpy(p), torch.from_numpy(y)
        tm = best_of(lambda: binary_calibration_error(tp, ty, n_bins=15), max(1, args.repeat // 2))
        rows.append((f"binary ECE, 15 bins, n={n:.0e}", ours,
                     "torchmetrics binary_calibration_error (CPU, float64)", tm))
    except ImportError:
        pass

    stream = StreamingCalibrationError(mode="binary")
    t_stream, floor = best_of_pair(lambda: stream.reset().update(y, p).compute(),
                                   lambda: numpy_floor(y, p), args.repeat)
    rows.append((f"streaming update+compute, n={n:.0e}", t_stream, "numpy bincount floor", floor))

    nk, k = 10**5, 1000
    P = rng.dirichlet(np.ones(k) * 0.05, nk)
    Y = rng.integers(0, k, nk)

    def floor_cw():
        idx = np.minimum((P * 15).astype(np.intp), 14) + np.arange(k) * 15
        np.bincount(idx.ravel(), minlength=15 * k)
        np.bincount(idx.ravel(), weights=P.ravel(), minlength=15 * k)

    cw, fcw = best_of_pair(lambda: expected_calibration_error(Y, P, mode="classwise"),
                           floor_cw, 2)
    rows.append(("classwise ECE, (1e5, 1000)", cw, "numpy bincount floor (no chunking)", fcw))
    try:
        import torch
        from torchmetrics.functional.classification import multiclass_calibration_error

        tP, tY = torch.from_numpy(P), torch.from_numpy(Y)
        tl = best_of(lambda: expected_calibration_error(Y, P, mode="top_label"), 2)
        tmm = best_of(lambda: multiclass_calibration_error(tP, tY, num_classes=k, n_bins=15), 2)
        rows.append(("top-label ECE, (1e5, 1000)", tl,
                     "torchmetrics multiclass_calibration_error", tmm))
    except ImportError:
        pass

    nb = min(10**5, len(p))
    pb, yb = p[:nb], y[:nb]
    ci = best_of(lambda: calibration_error_ci(yb, pb, mode="binary", n_bootstrap=1000,
                                              random_state=0), 2)

    def loop_ci():
        r = np.random.default_rng(0)
        for _ in range(1000):
            rows_ = r.integers(0, nb, nb)
            numpy_floor(yb[rows_], pb[rows_])

    lc = best_of(loop_ci, 1)
    rows.append((f"bootstrap CI, 1000 resamples, n={nb:.0e}", ci,
                 "Python loop of 1000 floor ECEs", lc))

    print("| task | calibkit (s) | reference | reference (s) | ratio |")
    print("|---|---|---|---|---|")
    for task, a, ref, b in rows:
        print(f"| {task} | {a:.4f} | {ref} | {b:.4f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
