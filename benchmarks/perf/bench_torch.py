"""Speed of the PyTorch back end (calibkit.torch) against peers, on CPU or CUDA.

Rows (each timed in this process on the same inputs; ratios are peer time / calibkit time):

1. temperature fit on N x K float32 logits (default 50,000 x 1,000):
   ``calibkit.torch.fit_temperature`` (torch, on the chosen device), ``calibkit
   .TemperatureScaling`` (numpy), scikit-learn's ``_TemperatureScaling`` (the peer), and a
   plain ``torch.optim.LBFGS`` on log T as TorchCP / torch-uncertainty do.
2. the same fit on a large N (default 1,000,000 x 1,000, 4 GB of float32 logits), calibkit's
   torch path only (sklearn would need an 8 GB float64 copy; ``--large-rows 0`` skips it).
3. streaming binary ECE over 1e8 confidences, fed in chunks of 1e7: ``calibkit.torch
   .CalibrationError`` (device), ``calibkit.metrics.StreamingCalibrationError`` (numpy), and a
   numpy floor (``np.bincount`` of the same chunk sums), plus torchmetrics'
   ``BinaryCalibrationError`` when installed (it stores every prediction).

Usage::

    python benchmarks/perf/bench_torch.py                       # cuda when available
    python benchmarks/perf/bench_torch.py --device cpu --rows 50000 --large-rows 200000

Prints a markdown table. Peers that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from calibkit.torch import CalibrationError, fit_temperature


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--classes", type=int, default=1_000)
    ap.add_argument("--large-rows", type=int, default=1_000_000)
    ap.add_argument("--ece-n", type=float, default=1e8)
    ap.add_argument("--ece-chunk", type=float, default=1e7)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    rows: list[tuple[str, str, float, str]] = []

    print(f"device={dev}, torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}")

    # -------------------------------------------------------------- temperature, N x K
    z, y = make_logits(args.rows, args.classes, seed=0)
    task = f"temperature fit {args.rows:,} x {args.classes:,} float32"
    zt, yt = torch.from_numpy(z).to(dev), torch.from_numpy(y).to(dev)
    t_ck, (temp, n_iter) = timed(fit_temperature, args.repeats, dev, zt, yt)
    rows.append((task, f"calibkit.torch.fit_temperature ({dev.type}, {n_iter} passes)", t_ck,
                 f"T={float(temp):.6f}"))
    try:
        from calibkit import TemperatureScaling

        t, cal = timed(lambda: TemperatureScaling(input="logits").fit(z, y), args.repeats)
        rows.append((task, "calibkit.TemperatureScaling (numpy)", t,
                     f"T={cal.temperature_:.6f}"))
    except ImportError:
        pass
    try:
        from sklearn.calibration import _TemperatureScaling

        t, sk = timed(lambda: _TemperatureScaling().fit(z, y), 1)
        rows.append((task, "sklearn _TemperatureScaling (peer)", t,
                     f"T={1 / float(sk.beta_):.6f}"))
    except ImportError:
        pass
    t, t_lbfgs = timed(lbfgs_temperature, 1, dev, zt, yt)
    rows.append((task, f"torch.optim.LBFGS on log T ({dev.type}, TorchCP/TU style)", t,
                 f"T={t_lbfgs:.6f}"))

    # -------------------------------------------------------------- temperature, large N
    if args.large_rows:
        zl = torch.empty(args.large_rows, args.classes, dtype=torch.float32, device=dev)
        yl = torch.empty(args.large_rows, dtype=torch.long, device=dev)
        gen = torch.Generator(device=dev).manual_seed(1)
        step = 50_000
        for a in range(0, args.large_rows, step):  # generated in place: no 8 GB float64 copy
            m = min(step, args.large_rows - a)
            part = torch.randn(m, args.classes, generator=gen, device=dev)
            u = torch.rand(m, args.classes, generator=gen, device=dev).clamp_min(1e-12)
            zl[a : a + m] = 3.0 * part
            yl[a : a + m] = torch.argmax(part - torch.log(-torch.log(u)), dim=1)
        task = f"temperature fit {args.large_rows:,} x {args.classes:,} float32"
        t, (temp, n_iter) = timed(fit_temperature, 1, dev, zl, yl)
        rows.append((task, f"calibkit.torch.fit_temperature ({dev.type}, {n_iter} passes)", t,
                     f"T={float(temp):.6f}"))
        del zl, yl

    # -------------------------------------------------------------- streaming ECE
    n, chunk = int(args.ece_n), int(args.ece_chunk)
    task = f"binary ECE, 15 bins, {n:.0e} confidences in chunks of {chunk:.0e}"
    times = {"torch": 0.0, "numpy_stream": 0.0, "floor": 0.0, "torchmetrics": 0.0}
    m_torch = CalibrationError(n_bins=15, mode="binary")
    try:
        from calibkit.metrics import StreamingCalibrationError

        m_np = StreamingCalibrationError(n_bins=15, mode="binary")
    except ImportError:
        m_np = None
    try:
        from torchmetrics.classification import BinaryCalibrationError

        m_tm = BinaryCalibrationError(n_bins=15, norm="l1").to(dev)
    except ImportError:
        m_tm = None
    floor = np.zeros((3, 15))
    rng = np.random.default_rng(2)
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        p = rng.random(m)
        yy = (rng.random(m) < p ** 1.2).astype(np.int64)
        pt, yt = torch.from_numpy(p).to(dev), torch.from_numpy(yy).to(dev)
        times["torch"] += timed(m_torch.update, 1, dev, pt, yt)[0]
        if m_np is not None:
            times["numpy_stream"] += timed(m_np.update, 1, None, yy, p)[0]
        times["floor"] += timed(floor_update, 1, None, floor, p, yy)[0]
        if m_tm is not None:
            times["torchmetrics"] += timed(m_tm.update, 1, dev, pt.float(), yt)[0]
    t, ece = timed(lambda: float(m_torch.compute()), 1, dev)
    rows.append((task, f"calibkit.torch.CalibrationError ({dev.type})", times["torch"] + t,
                 f"ECE={ece:.6f}"))
    if m_np is not None:
        t, ece_np = timed(lambda: m_np.compute(), 1)
        rows.append((task, "calibkit.metrics.StreamingCalibrationError (numpy)",
                     times["numpy_stream"] + t, f"ECE={ece_np:.6f}"))
    ece_floor = float(np.abs(floor[2] - floor[1]).sum() / floor[0].sum())
    rows.append((task, "numpy floor (floor(p*15) + 3 bincounts)", times["floor"],
                 f"ECE={ece_floor:.6f}"))
    if m_tm is not None:
        t, ece_tm = timed(lambda: float(m_tm.compute()), 1, dev)
        rows.append((task, f"torchmetrics BinaryCalibrationError ({dev.type}, keeps all preds)",
                     times["torchmetrics"] + t, f"ECE={ece_tm:.6f}"))

    print_table(rows)


def make_logits(n, k, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k), dtype=np.float32) * 3.0
    y = np.argmax(z / 3.0 + rng.gumbel(size=(n, k)).astype(np.float32), axis=1)
    return z, y


def lbfgs_temperature(z, y, max_iter=50):
    log_t = torch.zeros((), device=z.device, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / torch.exp(log_t), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(torch.exp(log_t.detach()))


def floor_update(acc, p, y):
    idx = np.minimum((p * 15).astype(np.intp), 14)
    acc[0] += np.bincount(idx, minlength=15)
    acc[1] += np.bincount(idx, weights=p, minlength=15)
    acc[2] += np.bincount(idx, weights=y, minlength=15)


def timed(fn, repeats, device=None, *args):
    """Best wall time of ``fn(*args)`` over ``repeats`` runs, and its result."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        out = fn(*args)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def sync(device):
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def print_table(rows):
    print()
    print("| task | implementation | seconds | ratio to calibkit (first row of the task) | check |")
    print("|---|---|---|---|---|")
    first: dict[str, float] = {}
    for task, impl, sec, check in rows:
        ref = first.setdefault(task, sec)
        print(f"| {task} | {impl} | {sec:.3f} | {sec / ref:.2f} | {check} |")


if __name__ == "__main__":
    main()
