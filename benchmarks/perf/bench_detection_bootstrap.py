"""Cost of the image-level bootstrap of the detection metrics, as a ratio to one evaluation.

The bundled Faster R-CNN R50 detections on COCO val2017 (``calibkit.datasets.load_bundled_coco``),
the test half of the image split of ``calibkit bench coco`` (``split_images(..., seed=0)``:
2,500 images, about 20k detections), all timings in one process on the same inputs::

    PYTHONPATH=. python benchmarks/perf/bench_detection_bootstrap.py [--resamples 1000]

Rows (CPU seconds of this process, best of ``--repeat``; every timed path is single-threaded):

* ``evaluate``: one ``calibkit.detection.evaluate`` (the point values);
* ``evaluate + bootstrap``: the same call with ``n_bootstrap=N`` (point values, N resamples of
  every metric, percentile intervals), and its ratio to ``evaluate`` (target: under 5);
* the same two with ``ap=True`` (COCO AP@[.50:.95] and its bootstrap);
* ``literal resample``: one resample done by duplicating its images and calling ``evaluate``
  (what the bootstrap replaces), extrapolated to N resamples.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _timing import best_time

from calibkit import datasets, detection
from calibkit.bench.coco import _gt_subset, split_images
from calibkit.detection.bootstrap import image_resample_counts


def literal_resample(gt, dets, counts_row):
    """The resampled data set itself: each image repeated as often as drawn, new ids."""
    img_g = np.searchsorted(gt.image_ids, gt.ann_image_id)
    img_d = np.searchsorted(gt.image_ids, dets.image_id)
    new_first = np.cumsum(counts_row) - counts_row  # first new id of each image's copies
    ga = [np.flatnonzero(counts_row[img_g] > q) for q in range(counts_row.max())]
    da = [np.flatnonzero(counts_row[img_d] > q) for q in range(counts_row.max())]
    g_idx = np.concatenate(ga)
    g_id = np.concatenate([new_first[img_g[a]] + q for q, a in enumerate(ga)])
    d_idx = np.concatenate(da)
    d_id = np.concatenate([new_first[img_d[a]] + q for q, a in enumerate(da)])
    gt2 = detection.GroundTruth.from_arrays(
        g_id, gt.ann_category_id[g_idx], gt.ann_box[g_idx], iscrowd=gt.ann_crowd[g_idx],
        images=np.arange(int(counts_row.sum())), categories=gt.category_ids)
    d2 = detection.Detections.from_arrays(d_id, dets.category_id[d_idx], dets.score[d_idx],
                                          dets.box[d_idx])
    return gt2, d2


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--detector", default="faster_rcnn_resnet50")
    args = ap.parse_args(argv)
    data = datasets.load_bundled_coco([args.detector])
    gt = detection.load_gt(data.ground_truth)
    dets = detection.load_dets(data.detections[args.detector])
    _, test_ids = split_images(gt.image_ids, 0)
    gt = _gt_subset(gt, test_ids)
    dets = dets.subset(np.isin(dets.image_id, test_ids))
    n = args.resamples
    print(f"{args.detector}, test half: {gt.n_images} images, {len(dets)} detections, "
          f"{len(gt.ann_image_id)} boxes; {n} resamples; CPU seconds, best of {args.repeat}")
    clock = time.process_time
    rows = []
    for with_ap in (False, True):
        t_point, _ = best_time(lambda a=with_ap: detection.evaluate(gt, dets, ap=a),
                               args.repeat, clock=clock)
        t_boot, res = best_time(
            lambda a=with_ap: detection.evaluate(gt, dets, ap=a, n_bootstrap=n, random_state=0),
            args.repeat, clock=clock)
        tag = " (ap=True)" if with_ap else ""
        rows.append((f"evaluate{tag}", t_point, ""))
        rows.append((f"evaluate + bootstrap{tag}", t_boot, f"{t_boot / t_point:.2f}x"))
    counts = image_resample_counts(gt.n_images, 1, 0)[0]
    t_lit, _ = best_time(lambda: detection.evaluate(*literal_resample(gt, dets, counts), ap=True),
                         1, clock=clock)
    rows.append((f"literal resample (ap=True), x{n}", t_lit * n, f"{t_lit * n / t_point:.0f}x"))
    width = max(len(r[0]) for r in rows)
    for name, t, ratio in rows:
        print(f"{name:<{width}}  {t:8.3f} s  {ratio}")
    print("intervals (95%):", {k: tuple(round(x, 4) for x in v) for k, v in res.items()
                               if k.endswith("_ci")})


if __name__ == "__main__":
    main()
