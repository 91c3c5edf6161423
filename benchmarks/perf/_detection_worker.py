"""One timed COCO evaluation in its own process (run by bench_detection.py).

    python benchmarks/perf/_detection_worker.py TOOL TASK GT_JSON DETS_JSON [IOU_TYPE]

TOOL: calibkit, hotcoco, ultrafast, vernier, faster-coco-eval, pycocotools.
TASK: ``summary`` (the twelve COCOeval numbers) or ``table`` (the per-detection table at
IoU 0.5: TP / ignored / matched IoU of every detection).
IOU_TYPE: ``bbox`` (default) or ``segm`` (mask IoU; the files carry masks).

Prints one json line: ``load`` (read both files into the tool's structures), ``eval``
(evaluate + accumulate + summarize, or the table), ``total`` (load + eval), ``warmup``
(calibkit: its first call in the process, on a tiny data set: the lazy imports of its
modules; 0 for the others), ``wall`` (the whole process after the interpreter started: imports,
warm-up, load, eval), ``rss_mb`` (peak resident memory of this process: ``VmHWM`` of
``/proc/self/status``, which starts afresh at ``exec``, unlike ``ru_maxrss``, which Linux
carries over from the parent that forked the worker) and the results.
Imports are not in ``load`` / ``eval`` for any tool.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import time

T_START = time.perf_counter()


def _calibkit(task, gt_path, dt_path, iou_type="bbox"):
    from calibkit.detection import coco_summary, load_dets, load_gt, match
    from calibkit.detection.synthetic import make_coco_like

    kw = {"iou_type": iou_type}
    t = time.perf_counter()
    # the lazy imports of calibkit's modules
    g0, d0 = make_coco_like(3, seed=0, masks=iou_type == "segm")
    coco_summary(g0, d0, **kw) if task == "summary" else match(g0, d0, tau=0.5, **kw)
    load_dets(d0, gt=g0, **kw)
    warm = time.perf_counter() - t
    t0 = time.perf_counter()
    gt = load_gt(gt_path, **kw)
    dets = load_dets(dt_path, gt=gt, **kw)
    t1 = time.perf_counter()
    if task == "summary":
        out = list(coco_summary(gt, dets, **kw).values())
    else:
        m = match(gt, dets, tau=0.5, **kw)
        out = [int(m.tp.sum()), int(m.ignored.sum()), float(m.iou.sum())]
    return warm, t0, t1, out


def _pycocotools_like(module, task, gt_path, dt_path, iou_type="bbox"):
    import numpy as np

    if module == "ultrafast":
        from ultrafast_pycocotools import COCO, COCOeval
    elif module == "hotcoco":
        from hotcoco import COCO, COCOeval
    elif module == "faster-coco-eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        g = COCO(gt_path)
        d = g.load_res(dt_path) if module == "hotcoco" else g.loadRes(dt_path)
        t1 = time.perf_counter()
        e = COCOeval(g, d, iou_type)
        if task == "summary":
            e.evaluate()
            e.accumulate()
            e.summarize()
            out = [float(x) for x in e.stats]
        else:  # ultrafast only: one threshold, one area range
            e.params.iouThrs = np.array([0.5])
            e.params.areaRng = [[0, 1e10]]
            e.params.areaRngLbl = ["all"]
            e.params.maxDets = [100]
            e.evaluate()
            table, _ = e.per_instance(iou_thr=0.5, area="all", max_dets=100)
            matched = (table["gt_id"] >= 0) & ~table["ignore"]
            out = [int(matched.sum()), int((table["ignore"]).sum()),
                   float(np.where(matched, table["iou"], 0).sum())]
    return 0.0, t0, t1, out


def _vernier(task, gt_path, dt_path, iou_type="bbox"):
    from pathlib import Path

    from vernier.instance import Bbox, CocoDataset, Evaluator, Segm

    t0 = time.perf_counter()
    g = CocoDataset.from_json(Path(gt_path).read_bytes())
    dt = Path(dt_path).read_bytes()
    t1 = time.perf_counter()
    iou = Segm() if iou_type == "segm" else Bbox()
    s = Evaluator(iou=iou, parity_mode="strict").evaluate(g, dt)
    return 0.0, t0, t1, [float(x) for x in s.stats]


def peak_mb() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv):
    tool, task, gt_path, dt_path = argv[:4]
    iou_type = argv[4] if len(argv) > 4 else "bbox"
    if tool == "calibkit":
        warm, t0, t1, out = _calibkit(task, gt_path, dt_path, iou_type)
    elif tool == "vernier":
        warm, t0, t1, out = _vernier(task, gt_path, dt_path, iou_type)
    else:
        warm, t0, t1, out = _pycocotools_like(tool, task, gt_path, dt_path, iou_type)
    t2 = time.perf_counter()
    print(json.dumps({
        "tool": tool, "task": task, "iou_type": iou_type, "load": t1 - t0, "eval": t2 - t1,
        "total": t2 - t0,
        "warmup": warm, "wall": t2 - T_START,
        "rss_mb": peak_mb(), "result": out,
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
