"""COCO evaluation side by side with hotcoco, ultrafast-pycocotools, vernier, faster-coco-eval
and pycocotools, every run in its own process, on the same files.

Synthetic COCO-like data (``calibkit.detection.synthetic.make_coco_like``: 80 classes, about
7 boxes per image, 100 detections per image; ``--sizes 5000 20000`` = 500k and 2M
detections), written to json files first (cached in ``--data``)::

    pip install -e ".[bench]"
    PYTHONPATH=. python benchmarks/perf/bench_detection.py [--sizes 5000 20000] [--repeat 3]
    PYTHONPATH=. python benchmarks/perf/bench_detection.py --sizes 5000 --tools calibkit hotcoco
    PYTHONPATH=. python benchmarks/perf/bench_detection.py --iou-type segm --sizes 1000 5000

``--iou-type segm``: the same data with instance masks (``make_coco_like(masks=True)``: the
ellipse inscribed in each box; ground truth as 16-vertex polygons, crowd regions as
uncompressed RLE, results as compressed RLE of 640 x 480 masks) and mask IoU in every tool
(``COCOeval(..., "segm")``, vernier's ``Segm()``, calibkit's ``iou_type="segm"``).

Tasks (``benchmarks/perf/_detection_worker.py`` runs one in a fresh process):

* ``summary``: the twelve numbers of ``COCOeval.summarize()`` (AP@[.50:.95] and the rest:
  10 IoU thresholds, 4 area ranges, maxDets 1/10/100); the numbers of every tool are
  checked against each other;
* ``table``: the per-detection table at IoU 0.5 (TP / ignored / matched IoU per detection):
  ``calibkit.detection.match(tau=0.5)`` vs ultrafast-pycocotools' ``evaluate()`` (one
  threshold, one area range) + ``per_instance`` (hotcoco has no per-detection IoU, vernier's
  table has no matched IoU).

Columns (medians of ``--repeat`` processes): ``load`` (both files into the tool's
structures), ``eval`` (evaluate + accumulate + summarize, or the table), ``total``
(load + eval), ``wall`` (the whole process after interpreter start: imports, calibkit's
first call on a tiny data set, load, eval), ``peak MB`` (``VmHWM`` of the process).
calibkit's first call in a new process (``warmup``: the lazy imports of its modules) is
reported separately; its kernels are compiled when calibkit is installed.

A second part times calibkit's calibration work in this process (no peer computes it):
``evaluate`` (matching at tau 0 and 0.5, LaECE, LaACE, LRP, D-ECE) and the pipeline
``DetectionCalibrator(method="isotonic").fit`` + ``transform`` of a second set + ``evaluate``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_detection_worker.py"
TOOLS = ("calibkit", "hotcoco", "ultrafast", "vernier", "faster-coco-eval", "pycocotools")
MODULES = {"calibkit": "calibkit", "hotcoco": "hotcoco", "ultrafast": "ultrafast_pycocotools",
           "vernier": "vernier", "faster-coco-eval": "faster_coco_eval",
           "pycocotools": "pycocotools"}
DISTS = {"calibkit": "calibkit", "hotcoco": "hotcoco", "ultrafast": "ultrafast-pycocotools",
         "vernier": "vernier", "faster-coco-eval": "faster-coco-eval",
         "pycocotools": "pycocotools"}
TABLE_TOOLS = ("calibkit", "ultrafast")


def write_data(n_images: int, folder: Path, masks: bool = False) -> tuple[Path, Path]:
    """The synthetic ground truth and results of ``n_images`` images as json files, written
    by a separate process (so that this one, which forks the workers, stays small)."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = "_segm" if masks else ""
    gt_path = folder / f"gt_{n_images}{tag}.json"
    dt_path = folder / f"dets_{n_images}{tag}.json"
    if not (gt_path.exists() and dt_path.exists()):
        code = ("import json, sys; from calibkit.detection.synthetic import make_coco_like;"
                f"g, d = make_coco_like({n_images}, seed=0, masks={masks});"
                "open(sys.argv[1], 'w').write(json.dumps(g));"
                "open(sys.argv[2], 'w').write(json.dumps(d))")
        env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
        subprocess.run([sys.executable, "-c", code, str(gt_path), str(dt_path)], env=env,
                       check=True)
    return gt_path, dt_path


def run_worker(tool: str, task: str, gt_path: Path, dt_path: Path,
               iou_type: str = "bbox") -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(WORKER), tool, task, str(gt_path),
                           str(dt_path), iou_type], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} {task} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process"] = elapsed
    return out


def median_run(tool, task, gt_path, dt_path, repeat: int, iou_type: str = "bbox") -> dict:
    runs = [run_worker(tool, task, gt_path, dt_path, iou_type) for _ in range(repeat)]
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("load", "eval", "total", "warmup", "wall", "rss_mb", "process")}
    med["result"] = runs[0]["result"]
    return med


def versions(tools) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for t in tools:
        try:
            out[t] = version(DISTS[t])
        except PackageNotFoundError:
            out[t] = None
    for extra in ("msgspec", "numpy"):
        out[extra] = version(extra)
    return out


def available(tool: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(MODULES[tool]) is not None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python "
            f"{platform.python_version()}, {platform.system()}")


def calibration_rows(n_images: int, iou_type: str = "bbox") -> list[tuple[str, float]]:
    """calibkit's own calibration work on the data set (in this process, wall seconds)."""
    from calibkit import detection
    from calibkit.detection.synthetic import make_coco_like

    masks = iou_type == "segm"
    kw = {"iou_type": iou_type}
    gt, dets = make_coco_like(n_images, seed=0, masks=masks)
    gt_test, dets_test = make_coco_like(n_images, seed=1, masks=masks)
    g = detection.load_gt(gt, **kw)
    d = detection.load_dets(dets, gt=g, **kw)
    gt2 = detection.load_gt(gt_test, **kw)
    d2 = detection.load_dets(dets_test, gt=gt2, **kw)
    del gt, dets, gt_test, dets_test
    detection.evaluate(g, d, **kw)  # warm-up
    t = time.perf_counter()
    detection.evaluate(g, d, **kw)
    t_eval = time.perf_counter() - t
    t = time.perf_counter()
    cal = detection.DetectionCalibrator(method="isotonic", **kw).fit(g, d)
    out = cal.transform(d2)
    detection.evaluate(gt2, out, **kw)
    t_pipe = time.perf_counter() - t
    n = len(d)
    return [
        (f"evaluate: matching at tau 0 and 0.5, LaECE, LaACE, LRP, D-ECE ({n} dets)", t_eval),
        (f"DetectionCalibrator(isotonic).fit ({n}) + transform ({len(d2)}) + evaluate",
         t_pipe),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000],
                    help="numbers of images (100 detections each)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--tasks", nargs="+", default=["summary", "table"],
                    choices=["summary", "table"])
    ap.add_argument("--data", type=Path, default=Path("bench-out/detection-data"))
    ap.add_argument("--iou-type", default="bbox", choices=["bbox", "segm"],
                    help="box IoU or mask IoU (data with instance masks)")
    ap.add_argument("--slow-limit", type=int, default=500_000,
                    help="run faster-coco-eval and pycocotools only up to this many detections")
    ap.add_argument("--skip-calibration", action="store_true")
    args = ap.parse_args(argv)
    tools = [t for t in args.tools if available(t)]
    print(f"machine: {machine()}")
    print(f"versions: {json.dumps(versions(tools))}")
    print()
    masks = args.iou_type == "segm"
    print(f"iou_type: {args.iou_type}")
    print("| task | detections | tool | load s | eval s | total s | wall s | peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    warmups = []
    for n_images in args.sizes:
        gt_path, dt_path = write_data(n_images, args.data, masks)
        n = n_images * 100
        for task in args.tasks:
            ref = None
            for tool in tools:
                if task == "table" and tool not in TABLE_TOOLS:
                    continue
                if tool in ("faster-coco-eval", "pycocotools") and n > args.slow_limit:
                    continue
                r = median_run(tool, task, gt_path, dt_path, args.repeat, args.iou_type)
                if tool == "calibkit":
                    warmups.append((task, n, r["warmup"]))
                if task == "summary":
                    if ref is None:
                        ref = r["result"]
                    diff = max(abs(a - b) for a, b in zip(ref, r["result"], strict=True))
                    if diff > 1e-12:
                        print(f"WARNING: {tool}'s summary differs by {diff:.3g}")
                print(f"| {task} | {n:,} | {tool} | {r['load']:.2f} | {r['eval']:.2f} | "
                      f"{r['total']:.2f} | {r['wall']:.2f} | {r['rss_mb']:.0f} |", flush=True)
    if warmups:
        print("\ncalibkit's first call in a new process (lazy imports of its modules; in wall, "
              "not in load/eval): " + ", ".join(f"{t} {n:,}: {w:.2f} s" for t, n, w in warmups))
    if not args.skip_calibration:
        print("\n| calibkit only (no peer computes these) | wall s |\n|---|---|")
        for label, t in calibration_rows(args.sizes[0], args.iou_type):
            print(f"| {label} | {t:.2f} |")


if __name__ == "__main__":
    main()
