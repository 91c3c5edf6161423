"""Speed of calibkit's scaling calibrators against scikit-learn on the same inputs.

Run from the repository root::

    PYTHONPATH=. python benchmarks/perf/bench_scaling.py            # full sizes
    PYTHONPATH=. python benchmarks/perf/bench_scaling.py --quick    # small sizes

Prints a markdown table. Temperature scaling: 50,000 x 1,000 float32 logits (ImageNet-val
shape), calibkit ``TemperatureScaling`` against ``sklearn.calibration._TemperatureScaling``
(the core of ``CalibratedClassifierCV(method="temperature")``); both temperatures are
compared with a plain float64 Newton iteration run to convergence here. Platt scaling:
1e5 and 1e6 decision values, calibkit ``PlattScaling(target_smoothing=True)`` against
``sklearn.calibration._sigmoid_calibration`` (same targets, so the same optimum).
Times are the best of ``--repeat`` runs in this process; peers that are not installed
are skipped.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from _timing import best_time
from scipy.special import expit

from calibkit.scaling import PlattScaling, TemperatureScaling


def imagenet_like_logits(n, k, seed=0):
    """Logits with a true-class boost: overconfident, accuracy around 0.8."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(0.0, 2.0, (n, k)).astype(np.float32)
    z[np.arange(n), y] += rng.normal(7.0, 2.5, n).astype(np.float32)
    return z, y


def reference_temperature_float64(z, y, rows=2000):
    """Plain float64 Newton on beta = 1/T (convex), iterated until the step is < 1e-15."""
    zy = z[np.arange(len(y)), y].astype(np.float64)
    beta = 1.0
    for _ in range(100):
        g = h = 0.0
        for s in range(0, len(y), rows):
            zc = z[s : s + rows].astype(np.float64)
            a = beta * zc
            a -= a.max(axis=1, keepdims=True)
            p = np.exp(a)
            p /= p.sum(axis=1, keepdims=True)
            mu = (p * zc).sum(axis=1)
            g += float((mu - zy[s : s + rows]).sum())
            h += float((p * (zc - mu[:, None]) ** 2).sum())
        step = -g / h
        beta += step
        if abs(step) <= 1e-15 * beta:
            break
    return 1.0 / beta


def bench_temperature(n, k, repeat, rows_out):
    z, y = imagenet_like_logits(n, k)
    t_ref = reference_temperature_float64(z, y)
    t_ours, ours = best_time(lambda: TemperatureScaling().fit(z, y), repeat)
    err_ours = abs(ours.temperature_ - t_ref) / t_ref
    row = {
        "case": f"temperature, {n:,} x {k:,} float32 logits",
        "calibkit_s": t_ours,
        "calibkit_err": err_ours,
        "note": f"T_ref = {t_ref:.6f}, calibkit n_iter_ = {ours.n_iter_}",
    }
    try:
        from sklearn.calibration import _TemperatureScaling
    except ImportError:
        row.update(peer="sklearn (not installed)")
    else:
        t_sk, sk = best_time(lambda: _TemperatureScaling().fit(z, y), 1)
        t_sk_val = 1.0 / float(sk.beta_)
        row.update(
            peer="sklearn `_TemperatureScaling`",
            peer_s=t_sk,
            peer_err=abs(t_sk_val - t_ref) / t_ref,
        )
    rows_out.append(row)
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    t_torch, tt = best_time(lambda: TemperatureScaling(device="cpu").fit(z, y), repeat)
    rows_out.append(
        {
            "case": f"temperature, {n:,} x {k:,}, torch float64 on CPU (`device='cpu'`)",
            "calibkit_s": t_torch,
            "calibkit_err": abs(tt.temperature_ - t_ref) / t_ref,
            "peer": row.get("peer", ""),
            "peer_s": row.get("peer_s"),
            "peer_err": row.get("peer_err"),
            "note": f"n_iter_ = {tt.n_iter_}",
        }
    )


def bench_platt(n, repeat, rows_out):
    rng = np.random.default_rng(1)
    f = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < expit(0.7 * f - 0.4)).astype(np.int64)
    t_ours, ours = best_time(
        lambda: PlattScaling(input="logits", target_smoothing=True).fit(f, y), repeat
    )
    row = {"case": f"Platt, {n:,} decision values", "calibkit_s": t_ours}
    try:
        from sklearn.calibration import _sigmoid_calibration
    except ImportError:
        row.update(peer="sklearn (not installed)")
        rows_out.append(row)
        return
    t_sk, (A, B) = best_time(lambda: _sigmoid_calibration(f, y), repeat)
    diff = max(abs(ours.a_ + A) / abs(A), abs(ours.b_ + B) / abs(B))
    row.update(
        peer="sklearn `_sigmoid_calibration`",
        peer_s=t_sk,
        note=f"max relative difference of (a, b) vs sklearn: {diff:.1e}",
    )
    rows_out.append(row)


def fmt(x, spec):
    return "" if x is None else format(x, spec)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, k = (5_000, 100) if args.quick else (50_000, 1_000)
    platt_sizes = (10_000, 100_000) if args.quick else (100_000, 1_000_000)

    rows: list[dict] = []
    bench_temperature(n, k, args.repeat, rows)
    for m in platt_sizes:
        bench_platt(m, args.repeat, rows)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
        f"python {platform.python_version()}\n"
    )
    print(
        "| case | calibkit (s) | peer | peer (s) | speed-up | calibkit \\|T-T_ref\\|/T_ref "
        "| peer \\|T-T_ref\\|/T_ref | note |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        speed = r["peer_s"] / r["calibkit_s"] if r.get("peer_s") else None
        print(
            f"| {r['case']} | {fmt(r['calibkit_s'], '.3f')} | {r.get('peer', '')} "
            f"| {fmt(r.get('peer_s'), '.3f')} | {fmt(speed, '.1f')}x "
            f"| {fmt(r.get('calibkit_err'), '.1e')} | {fmt(r.get('peer_err'), '.1e')} "
            f"| {r.get('note', '')} |"
        )


if __name__ == "__main__":
    main()
