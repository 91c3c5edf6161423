"""Objects365-size detection evaluation end to end, on one machine and on a Dask LocalCluster.

A synthetic set of 80,000 images x 100 detections (8M detections), 365 classes, about 7
boxes per image (``calibkit.detection.synthetic.write_coco_like``), written once to json.
Each measurement runs in its own process and reports wall seconds and its peak resident
memory (``VmHWM``, or ``ru_maxrss`` where there is no ``/proc``; for the Dask run, the
client's and the worker processes'):

* ``calibkit``: read both files (``load_gt``, ``load_dets``), ``evaluate`` (matching at
  tau 0 and 0.5, LaECE_0, LaACE_0, LRP, D-ECE), ``coco_summary`` (AP and the other eleven
  numbers), ``DetectionCalibrator(method="isotonic").fit`` (three matchings, LRP-optimal
  thresholds, one isotonic fit per class) and ``transform``;
* ``calibkit-dask``: the same on a ``LocalCluster`` (2 worker processes, 1 thread each)
  from the results split into 8 files of whole images: ``calibkit.detection.dask.evaluate``
  (with the COCO summary) and ``calibkit.detection.dask.fit``, then ``transform``;
* ``hotcoco``, ``ultrafast``: their COCO summary on the same files (they compute no
  calibration metric), and calibkit's COCO summary alone beside them (the same work:
  ``benchmarks/perf/_detection_worker.py``, read both files + the twelve numbers).

    PYTHONPATH=. python benchmarks/perf/bench_detection_scale.py [--images 80000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from _detection_worker import peak_mb  # noqa: E402 (the one reading of peak memory)


def write_data(folder: Path, n_images: int, n_classes: int, n_shards: int):
    from calibkit.detection.synthetic import write_coco_like

    folder.mkdir(parents=True, exist_ok=True)
    gt, dets = folder / "gt.json", folder / "dets.json"
    shards = [folder / f"dets_{k}.json" for k in range(n_shards)]
    if not (gt.exists() and dets.exists()):
        t = time.perf_counter()
        write_coco_like(gt, dets, n_images, n_classes=n_classes, seed=0)
        print(f"wrote {dets} in {time.perf_counter() - t:.0f} s", flush=True)
    if not all(s.exists() for s in shards):
        import numpy as np

        from calibkit.detection import load_dets

        d = load_dets(dets)
        part = (d.image_id - 1) * n_shards // n_images  # contiguous ranges of whole images
        for k, path in enumerate(shards):
            sub = d.subset(part == k)
            with open(path, "w") as f:
                json.dump(sub.to_coco(), f)
        del d, part, np
    return gt, dets, shards


def run_calibkit(gt_path, dt_path):
    from calibkit.detection import (
        DetectionCalibrator,
        coco_summary,
        evaluate,
        load_dets,
        load_gt,
    )

    times = {}
    t = time.perf_counter()
    gt, dets = load_gt(gt_path), load_dets(dt_path)
    times["read"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics = evaluate(gt, dets)
    times["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = coco_summary(gt, dets)
    times["coco_summary"] = time.perf_counter() - t
    t = time.perf_counter()
    cal = DetectionCalibrator(method="isotonic").fit(gt, dets)
    times["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    out = cal.transform(dets)
    times["transform"] = time.perf_counter() - t
    return times, {"laece": metrics["laece"], "lrp": metrics["lrp"], "AP": summary["AP"],
                   "kept": len(out)}


def run_dask(gt_path, shard_paths):
    import distributed

    from calibkit.detection import DetectionCalibrator, load_dets, load_gt
    from calibkit.detection import dask as ckdask

    times = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        t = time.perf_counter()
        gt = load_gt(gt_path)
        times["read gt"] = time.perf_counter() - t
        t = time.perf_counter()
        metrics = ckdask.evaluate(gt, shard_paths, summary=True)
        times["evaluate + coco_summary"] = time.perf_counter() - t
        t = time.perf_counter()
        cal = ckdask.fit(DetectionCalibrator(method="isotonic"), gt, shard_paths)
        times["fit"] = time.perf_counter() - t
        import cloudpickle

        # the workers cannot import the benchmark's folder: send the function itself
        cloudpickle.register_pickle_by_value(sys.modules[peak_mb.__module__])
        rss = client.run(peak_mb)
    t = time.perf_counter()
    dets = load_dets(shard_paths[0])
    cal.transform(dets)
    times["transform (one shard)"] = time.perf_counter() - t
    return times, {"laece": metrics["laece"], "lrp": metrics["lrp"],
                   "AP": metrics["coco_summary"]["AP"],
                   "worker_peak_mb": sorted(rss.values())}


def child(argv):
    what = argv[0]
    t = time.perf_counter()
    if what == "calibkit":
        times, out = run_calibkit(argv[1], argv[2])
    else:
        times, out = run_dask(argv[1], argv[2:])
    print(json.dumps({"what": what, "times": times, "wall": time.perf_counter() - t,
                      "rss_mb": peak_mb(),
                      **out}))


def spawn(args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=80_000)
    ap.add_argument("--classes", type=int, default=365)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--data", type=Path, default=Path("bench-out/detection-scale"))
    ap.add_argument("--peers", nargs="*", default=["hotcoco", "ultrafast"])
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child)
    gt, dets, shards = write_data(args.data, args.images, args.classes, args.shards)
    print(f"{args.images:,} images, {args.images * 100:,} detections, {args.classes} classes; "
          f"results file {dets.stat().st_size / 2**30:.2f} GiB\n")
    print("| run | what | wall s | peak MB |\n|---|---|---|---|")
    r = spawn([__file__, "--child", "calibkit", str(gt), str(dets)])
    steps = ", ".join(f"{k} {v:.1f}" for k, v in r["times"].items())
    print(f"| calibkit, one process | {steps} (LaECE {r['laece']:.4f}, LRP {r['lrp']:.4f}, AP "
          f"{r['AP']:.4f}) | {r['wall']:.1f} | {r['rss_mb']:.0f} |", flush=True)
    if not args.skip_dask:
        r = spawn([__file__, "--child", "dask", str(gt), *map(str, shards)])
        steps = ", ".join(f"{k} {v:.1f}" for k, v in r["times"].items())
        workers = " + ".join(f"{m:.0f}" for m in r["worker_peak_mb"])
        print(f"| calibkit, Dask LocalCluster (2 worker processes, {len(shards)} files) | "
              f"{steps} (LaECE {r['laece']:.4f}, LRP {r['lrp']:.4f}, AP {r['AP']:.4f}) | "
              f"{r['wall']:.1f} | client {r['rss_mb']:.0f}, workers {workers} |", flush=True)
    for peer in ["calibkit", *args.peers]:
        r = spawn([str(HERE / "_detection_worker.py"), peer, "summary", str(gt), str(dets)])
        print(f"| {peer} | COCO summary only: load {r['load']:.1f}, eval {r['eval']:.1f} "
              f"(AP {r['result'][0]:.4f}) | {r['wall']:.1f} | {r['rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
