"""Speed of detection evaluation and calibration against pycocotools and faster-coco-eval.

Synthetic COCO-like data (``calibkit.detection.synthetic.make_coco_like``: 80 classes, about 7 boxes
per image, 100 detections per image), all timings in one process on the same inputs::

    PYTHONPATH=. python benchmarks/perf/bench_detection.py [--images 5000] [--skip-pycocotools]
    PYTHONPATH=. python benchmarks/perf/bench_detection.py --skip-peers   # peak memory

Rows:
* ``evaluate``: ``calibkit.detection.evaluate`` from the json-loaded lists (matching at tau=0
  and 0.5, LaECE, LaACE, LRP, D-ECE) vs COCOeval ``evaluate() + accumulate()`` with one IoU
  threshold and one area range (``loadRes`` not timed for the peers);
* ``AP@[.50:.95]``: ``calibkit.detection.average_precision`` vs the peers' full ``evaluate() +
  accumulate()`` (10 IoU thresholds, 4 area ranges, as they run by default);
* ``pipeline``: ``DetectionCalibrator(method="isotonic").fit`` on the data set, ``transform`` of a
  second data set of the same size (``seed=1``), then ``evaluate`` (no peer; target < 15 s;
  CPU and wall-clock seconds).
Times are CPU seconds of this process (``time.process_time``; every timed code path is
single-threaded), so other jobs on the machine do not distort the ratios. Peak memory
(``resource.getrusage`` max RSS) is printed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import resource
import time

import numpy as np
from _timing import best_time

from calibkit import detection
from calibkit.detection.synthetic import make_coco_like


def _cocoeval(module, gt, dets, one_threshold: bool):
    """Time evaluate() + accumulate() of a COCOeval class (loadRes not timed)."""
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        d = g.loadRes(copy.deepcopy(dets))
        e = COCOeval(g, d, "bbox")
        if one_threshold:
            e.params.iouThrs = np.array([0.5])
            e.params.areaRng = [[0, 1e10]]
            e.params.areaRngLbl = ["all"]
            e.params.maxDets = [100]
        t = time.process_time()
        e.evaluate()
        e.accumulate()
        elapsed = time.process_time() - t
        if not one_threshold:
            e.summarize()
    return elapsed, (e.stats[0] if not one_threshold else None)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--skip-pycocotools", action="store_true")
    ap.add_argument("--skip-peers", action="store_true",
                    help="time calibkit only (for its peak memory)")
    args = ap.parse_args(argv)
    gt, dets = make_coco_like(args.images, seed=0)
    n = len(dets)
    rows = []

    t_eval, _ = best_time(lambda: detection.evaluate(gt, dets), 3, clock=time.process_time)
    t_ap, ap_ours = best_time(
        lambda: detection.average_precision(gt, dets), clock=time.process_time
    )
    peers = {}
    for name, module in (("pycocotools", "pycocotools"), ("faster-coco-eval", "faster_coco_eval")):
        if args.skip_peers or (name == "pycocotools" and args.skip_pycocotools):
            continue
        try:
            __import__(module)
        except ImportError:
            continue
        peers[name] = (
            _cocoeval(module, gt, dets, one_threshold=True)[0],
            _cocoeval(module, gt, dets, one_threshold=False),
        )
    if not peers:
        rows.append(("evaluate (matching at tau 0 and 0.5, all metrics but AP)", "-",
                     float("nan"), t_eval))
        rows.append((f"AP@[.50:.95] (ours {ap_ours:.6f})", "-", float("nan"), t_ap))
    for name, (t_one, (t_full, ap_peer)) in peers.items():
        rows.append(("evaluate (1 IoU thr, 1 area)", name, t_one, t_eval))
        rows.append((f"AP@[.50:.95] (peer AP {ap_peer:.6f}, ours {ap_ours:.6f})", name,
                     t_full, t_ap))

    # pipeline: fit on this set, transform and evaluate a second set of the same size
    gt_test, dets_test = make_coco_like(args.images, seed=1)

    def pipeline():
        cal = detection.DetectionCalibrator(method="isotonic").fit(gt, dets)
        out = cal.transform(dets_test)
        return detection.evaluate(gt_test, out)

    t_pipe, _ = best_time(pipeline, clock=time.process_time)
    wall = time.perf_counter()
    pipeline()
    wall = time.perf_counter() - wall
    print(f"{n} detections, {len(gt['annotations'])} ground-truth boxes, "
          f"{args.images} images, 80 classes\n")
    print("| task | peer | peer s | calibkit s | speed-up |")
    print("|---|---|---|---|---|")
    for task, peer, tp, to in rows:
        print(f"| {task} | {peer} | {tp:.2f} | {to:.2f} | {tp / to:.1f}x |")
    print(f"| fit ({n} dets) + transform ({n} dets) + evaluate, isotonic | - | - | "
          f"{t_pipe:.2f} (wall {wall:.2f}) | target < 15 s |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    what = "calibkit only" if args.skip_peers else "includes the peers' objects"
    print(f"\npeak RSS of the whole script: {rss:.0f} MB ({what}; the input lists of dicts "
          "are part of it)")


if __name__ == "__main__":
    main()
