"""Rebuild the data bundled in ``calibkit/data/`` from the shared real model outputs.

Usage (from the repository root)::

    python benchmarks/build_data.py /path/to/shared/data

What is stored, and what was reduced (see ``calibkit/data/DATA-LICENSES.md``):

* CIFAR (netcal): the float32 softmax probabilities become float16 log-probabilities in the
  ``logits`` key (a valid softmax input); labels as uint8. This is the one lossy step; the
  script prints its effect on the probabilities, NLL and ECE.
* ImageNet (hollance): ``true_label``/``pred_label`` as uint16 and ``confidence`` as float32,
  which is exact (every confidence in the CSVs is a float32 value).
* COCO (netcal): boxes and scores as float32 (exact: the float64 source values are float32
  values), category ids as uint8, image index as int32; the ``matched`` flags are dropped
  (detection matching recomputes true positives from the boxes).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
from scipy.special import softmax

OUT = Path(__file__).resolve().parents[1] / "calibkit" / "data"

CIFAR = {
    "cifar100": ["lenet-5", "densenet-bc-100", "wideresnet-16-4"],
    "cifar10": ["lenet-5", "wideresnet-16-4"],
}


def build(shared: Path) -> None:
    OUT.mkdir(exist_ok=True)
    for family, models in CIFAR.items():
        (OUT / family).mkdir(exist_ok=True)
        k = family.removeprefix("cifar")
        for m in models:
            with np.load(shared / "netcal-cifar" / f"{m}-cifar-{k}.npz") as f:
                p, y = f["predictions"], f["ground_truth"]
            logp = np.log(np.clip(p.astype(np.float64), 1e-45, None)).astype(np.float16)
            np.savez_compressed(OUT / family / f"{m}.npz", logits=logp, labels=y.astype(np.uint8))
            _report_float16(f"{family}/{m}", p, logp, y)
    (OUT / "imagenet").mkdir(exist_ok=True)
    for csv in sorted((shared / "hollance-reliability").glob("*/*.csv.gz")):
        with gzip.open(csv, "rt") as fh:
            a = np.loadtxt(fh, delimiter=",", skiprows=1)
        conf = a[:, 2].astype(np.float32)
        assert np.array_equal(conf.astype(np.float64), a[:, 2]), csv
        np.savez_compressed(
            OUT / "imagenet" / (csv.name.removesuffix(".csv.gz") + ".npz"),
            true_label=a[:, 0].astype(np.uint16),
            pred_label=a[:, 1].astype(np.uint16),
            confidence=conf,
        )
    (OUT / "coco").mkdir(exist_ok=True)
    src = shared / "netcal-coco-detection"
    with np.load(src / "coco_val2017_gt_boxes.npz") as g:
        boxes = g["gt_boxes_yxyx_norm"]
        assert np.array_equal(boxes.astype(np.float32).astype(np.float64), boxes)
        np.savez_compressed(
            OUT / "coco" / "ground_truth.npz",
            image_ids=g["image_ids"].astype(np.int32),
            image_index=g["gt_image_index"].astype(np.int32),
            boxes_yxyx=boxes.astype(np.float32),
            category_ids=g["gt_category_ids"].astype(np.uint8),
        )
    cats = json.loads(
        (shared / "coco-format-fixture-synthetic-scores" / "instances_val2014_100.json").read_text()
    )["categories"]
    (OUT / "coco" / "categories.json").write_text(json.dumps(cats, separators=(",", ":")))
    for det in ("faster_rcnn_resnet50", "ssd_inception_v2", "ssd_resnet50_v1"):
        with np.load(src / f"{det}_coco_val2017_dets.npz") as d:
            boxes, scores = d["det_boxes_yxyx_norm"], d["det_scores"]
            assert np.array_equal(boxes.astype(np.float32).astype(np.float64), boxes)
            assert np.array_equal(scores.astype(np.float32).astype(np.float64), scores)
            np.savez_compressed(
                OUT / "coco" / f"{det}.npz",
                image_ids=d["image_ids"].astype(np.int32),
                image_index=d["det_image_index"].astype(np.int32),
                boxes_yxyx=boxes.astype(np.float32),
                scores=scores.astype(np.float32),
                category_ids=d["det_category_ids"].astype(np.uint8),
            )
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"calibkit/data: {total / 1e6:.2f} MB")


def _report_float16(name, p, logp, y) -> None:
    """Print the effect of storing float16 log-probabilities instead of float32 probs."""
    p = p.astype(np.float64)
    q = softmax(logp.astype(np.float64), axis=1)
    n = np.arange(len(y))
    nll_p = -np.mean(np.log(np.clip(p[n, y], 1e-45, None)))
    nll_q = -np.mean(np.log(q[n, y]))
    ece_p, ece_q = _ece15(p, y), _ece15(q, y)
    print(
        f"{name}: max|dp|={np.abs(q - p).max():.2e} max|d top-1 conf|="
        f"{np.abs(q.max(1) - p.max(1)).max():.2e} "
        f"argmax changed={np.sum(q.argmax(1) != p.argmax(1))}"
        f" NLL {nll_p:.6f}->{nll_q:.6f} ECE15 {ece_p:.6f}->{ece_q:.6f}"
    )


def _ece15(p, y):
    conf, pred = p.max(1), p.argmax(1)
    b = np.minimum((conf * 15).astype(int), 14)
    tot = 0.0
    for i in range(15):
        m = b == i
        if m.any():
            tot += abs(np.mean(pred[m] == y[m]) - conf[m].mean()) * m.sum()
    return tot / len(y)


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
