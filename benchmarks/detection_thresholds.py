"""Where LaECE_0, D-ECE and OCE are optimised along a global score threshold.

For each bundled COCO detector (all 5,000 val2017 images), keep the detections with
``score >= t`` for t = 0.30, 0.35, ..., 0.95 and compute, on exactly the kept detections,
LaECE_0 and LRP (tau 0), D-ECE (IoU 0.5, 10 bins, pooled), OCE (IoU 0.5 and 0.75, mean
aggregation) and AP@[.50:.95]. The bundled files were cut at 0.3 by their source, so lower
thresholds cannot be examined. Writes a markdown table per detector and the best threshold of
each metric::

    python benchmarks/detection_thresholds.py [--out benchmarks/results/detection_thresholds.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from calibkit import datasets, detection

METRICS = (("laece", "LaECE_0", min), ("dece", "D-ECE", min), ("oce", "OCE", min),
           ("lrp", "LRP", min), ("ap", "AP", max))


def sweep(gt, dets, thresholds):
    rows = []
    for t in thresholds:
        kept = dets.subset(~(dets.score < t))
        row = detection.evaluate(gt, kept, ap=True)
        row["oce"] = detection.oce(gt, kept)
        rows.append({"threshold": float(t), "n_dets": len(kept),
                     **{k: row[k] for k, _, _ in METRICS}})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/detection_thresholds.md")
    args = ap.parse_args(argv)
    thresholds = np.round(np.arange(0.30, 0.951, 0.05), 2)
    data = datasets.load_bundled_coco()
    gt = detection.load_gt(data.ground_truth)
    lines = ["# Global score threshold vs LaECE_0, D-ECE, OCE, LRP and AP", "",
             "Command: `python benchmarks/detection_thresholds.py`; bundled COCO val2017 "
             "detections (5,000 images, scores >= 0.3 at the source).", ""]
    best_lines = ["| detector | " + " | ".join(label for _, label, _ in METRICS) + " |",
                  "|---|" + "---|" * len(METRICS)]
    for name, raw in data.detections.items():
        rows = sweep(gt, detection.load_dets(raw), thresholds)
        lines += [f"## {name}", "",
                  "| threshold | detections | " + " | ".join(m for _, m, _ in METRICS) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        lines += [f"| {r['threshold']:.2f} | {r['n_dets']} | "
                  + " | ".join(f"{r[k]:.4f}" for k, _, _ in METRICS) + " |" for r in rows]
        lines.append("")
        best = [pick(rows, key=lambda r, k=k: r[k]) for k, _, pick in METRICS]
        best_lines.append(f"| {name} | " + " | ".join(
            f"{b['threshold']:.2f} ({b[k]:.4f})" for b, (k, _, _) in zip(best, METRICS,
                                                                          strict=True)) + " |")
    lines += ["## Best threshold of each metric (value)", "", *best_lines, ""]
    text = "\n".join(lines)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
