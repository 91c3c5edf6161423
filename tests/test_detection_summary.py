"""Tests of calibkit.detection.coco_summary: the twelve COCOeval numbers.

References: pycocotools' ``COCOeval.stats`` (live, the same inputs) on the COCO fixture,
on synthetic data with crowds, score ties, more than 100 detections per (image, class) and
``area`` fields that differ from the box area, on a subset of the bundled detectors, and
golden values for the full bundled detectors; plus a toy case computed by hand.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from calibkit import detection
from calibkit.detection.cocoeval import COCO_SUMMARY_KEYS, accumulate
from calibkit.detection.synthetic import make_coco_like

pytest.importorskip("pycocotools")

FIXTURE = Path(__file__).parent / "data" / "coco_fixture"
GT_PATH = FIXTURE / "instances_val2014_100.json"
DETS_PATH = FIXTURE / "instances_val2014_fakebbox100_results.json"

# pycocotools 2.0.11 COCOeval("bbox").stats on the full bundled detections
# (calibkit.datasets.load_bundled_coco(): COCO val2017, 5000 images), computed with
# COCO(); .dataset = ground_truth; createIndex(); loadRes(detections); evaluate();
# accumulate(); summarize(). Boxes are normalised to [0, 1], so every box is "small".
GOLDEN_BUNDLED = {
    "faster_rcnn_resnet50": [
        0.31584639616556576, 0.48904632621750155, 0.35515253411261133,
        0.31584639616556576, -1.0, -1.0,
        0.2708340056848773, 0.37966188188145167, 0.3833050564131051,
        0.3833050564131051, -1.0, -1.0,
    ],
    "ssd_inception_v2": [
        0.2766532286440633, 0.4000827480726605, 0.3048765279397991,
        0.2766532286440633, -1.0, -1.0,
        0.2404090087170583, 0.3074625377232333, 0.30864775089174434,
        0.30864775089174434, -1.0, -1.0,
    ],
    "ssd_resnet50_v1": [
        0.379874283472204, 0.5478346086791226, 0.4234079617292629,
        0.379874283472204, -1.0, -1.0,
        0.3086999041640319, 0.4468713330101332, 0.45767438477705064,
        0.45767438477705064, -1.0, -1.0,
    ],
}


def _pycocotools_stats(gt, dets) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt, (str, Path)):
            g = COCO(str(gt))
        else:
            g = COCO()
            g.dataset = gt
            g.createIndex()
        d = g.loadRes(str(dets) if isinstance(dets, Path) else dets)
        e = COCOeval(g, d, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return np.array(e.stats)


def _ours(gt, dets) -> np.ndarray:
    s = detection.coco_summary(gt, dets)
    assert tuple(s) == COCO_SUMMARY_KEYS
    return np.array(list(s.values()))


def test_fixture_equals_pycocotools():
    np.testing.assert_allclose(_ours(GT_PATH, DETS_PATH), _pycocotools_stats(GT_PATH, DETS_PATH),
                               rtol=0, atol=1e-12)


def test_shared_fixture_equals_pycocotools(shared_data):
    folder = shared_data / "coco-format-fixture-synthetic-scores"
    gt = folder / "instances_val2014_100.json"
    dets = folder / "instances_val2014_fakebbox100_results.json"
    np.testing.assert_allclose(_ours(gt, dets), _pycocotools_stats(gt, dets), rtol=0,
                               atol=1e-12)


@pytest.mark.parametrize("seed,kw", [
    (0, {"crowd_fraction": 0.2, "score_decimals": 1}),  # many crowds, massive score ties
    (1, {"dets_per_image": 300, "n_classes": 3}),  # > 100 detections per (image, class)
    (2, {"n_classes": 5, "gt_per_image": 20, "score_decimals": 2}),
])
def test_synthetic_equals_pycocotools(seed, kw):
    gt, dets = make_coco_like(60, seed=seed, **kw)
    rng = np.random.default_rng(seed)
    for a in gt["annotations"]:  # area ranges test the area field, not the box
        if rng.random() < 0.3:
            a["area"] = float(rng.uniform(0, 20000))
    np.testing.assert_allclose(_ours(gt, dets), _pycocotools_stats(gt, dets), rtol=0,
                               atol=1e-12)


def test_bundled_subset_equals_pycocotools():
    from calibkit import datasets

    data = datasets.load_bundled_coco(["ssd_inception_v2"])
    keep = [im["id"] for im in data.ground_truth["images"][:800]]
    sub = data.subset_images(keep)
    gt, dets = sub.ground_truth, sub.detections["ssd_inception_v2"]
    np.testing.assert_allclose(_ours(gt, dets), _pycocotools_stats(gt, dets), rtol=0,
                               atol=1e-12)


def test_bundled_golden():
    from calibkit import datasets

    if not GOLDEN_BUNDLED:
        pytest.skip("no golden values")
    data = datasets.load_bundled_coco(list(GOLDEN_BUNDLED), arrays=True)
    for name, ref in GOLDEN_BUNDLED.items():
        np.testing.assert_allclose(_ours(data.ground_truth, data.detections[name]), ref,
                                   rtol=0, atol=1e-12)


def test_toy_by_hand():
    # one image, two regular boxes and one small box; three detections of class 1
    gt = {"images": [{"id": 1}], "categories": [{"id": 1}],
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100],
               "area": 10000.0, "iscrowd": 0},
              {"id": 2, "image_id": 1, "category_id": 1, "bbox": [200, 200, 100, 100],
               "area": 10000.0, "iscrowd": 0},
          ]}
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "score": 0.9},  # IoU 1
        {"image_id": 1, "category_id": 1, "bbox": [500, 500, 10, 10], "score": 0.8},  # FP
        {"image_id": 1, "category_id": 1, "bbox": [200, 200, 100, 80], "score": 0.7},  # IoU .8
    ]
    s = detection.coco_summary(gt, dets)
    # at IoU t <= 0.80: TP, FP, TP -> precision envelope 1 up to recall .5, 2/3 up to 1
    # (recall points 0..0.50: 51 of them at 1, 0.51..1.00: 50 at 2/3); t > 0.8: 51 at 1
    ap_low = (51 * 1.0 + 50 * (2 / 3)) / 101
    ap_high = 51 / 101
    n_low = int(np.sum(np.linspace(0.5, 0.95, 10) <= 0.8 + 1e-12))
    assert s["AP50"] == pytest.approx(ap_low, abs=1e-12)
    assert s["AP"] == pytest.approx((n_low * ap_low + (10 - n_low) * ap_high) / 10, abs=1e-12)
    assert s["AR1"] == pytest.approx(0.5, abs=1e-12)
    assert s["APs"] == -1.0 and s["APm"] == -1.0  # no box in those ranges
    np.testing.assert_allclose(list(s.values()), _pycocotools_stats(gt, dets), atol=1e-12)


def test_accumulate_shapes_and_errors():
    gt, dets = make_coco_like(5, seed=0)
    p, r = accumulate(gt, dets)
    assert p.shape == (10, 101, 80, 4, 3) and r.shape == (10, 80, 4, 3)
    with pytest.raises(ValueError, match="iou_type"):
        detection.coco_summary(gt, dets, iou_type="segm")


def test_average_precision_unchanged_definition():
    # the mean over classes of the mean over (thresholds, recall points), area ignored
    gt, dets = make_coco_like(40, seed=3)
    value = detection.average_precision(gt, dets)
    per_class = detection.average_precision_per_class(gt, dets)
    p, _ = accumulate(gt, dets, area_ranges=[[-np.inf, np.inf]], max_dets=[100])
    q = p[:, :, :, 0, 0]
    has = q[0, 0] > -1
    assert value == pytest.approx(q[:, :, has].mean(axis=(0, 1)).mean(), abs=1e-15)
    assert np.isnan(per_class[~has]).all()
