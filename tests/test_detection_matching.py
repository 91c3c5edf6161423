"""Tests of detection.matching against the by-definition greedy loop below and against
pycocotools' own COCOeval (``evalImgs[...]["dtMatches"]`` / ``["dtIgnore"]``)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibkit import detection
from calibkit.detection.matching import box_iou
from calibkit.detection.synthetic import make_coco_like

FIXTURE = Path(__file__).parent / "data" / "coco_fixture"


# --------------------------------------------------------------------------------------
# by-definition reference: pycocotools evaluateImg written out as a loop (spec section 1.2)
# --------------------------------------------------------------------------------------


def iou_ref(d, g, crowd):
    w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    if w <= 0:
        return 0.0
    h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if h <= 0:
        return 0.0
    inter = w * h
    union = d[2] * d[3] if crowd else d[2] * d[3] + g[2] * g[3] - inter
    return inter / union


def match_ref(gt: dict, dets: list, tau: float, iou_op="ge", max_dets=100):
    """(tp, ignored, iou, evaluated) per detection, one (image, class) at a time."""
    n = len(dets)
    tp, ig, iou, ev = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n), np.zeros(n, bool)
    groups: dict = {}
    for k, d in enumerate(dets):
        groups.setdefault((d["image_id"], d["category_id"]), []).append(k)
    for (img, cat), idx in groups.items():
        gts = [a for a in gt["annotations"] if a["image_id"] == img and a["category_id"] == cat]
        gts = sorted(gts, key=lambda a: bool(a.get("iscrowd", 0)))  # stable
        idx = sorted(idx, key=lambda k: -dets[k]["score"])[:max_dets]  # stable
        matched = [False] * len(gts)
        for k in idx:
            ev[k] = True
            best = min(tau, 1 - 1e-10)
            m = -1
            for j, g in enumerate(gts):
                crowd = bool(g.get("iscrowd", 0))
                if matched[j] and not crowd:
                    continue
                if m > -1 and not gts[m].get("iscrowd", 0) and crowd:
                    break
                v = iou_ref(dets[k]["bbox"], g["bbox"], crowd)
                if v < best or (iou_op == "gt" and v <= tau):
                    continue
                best, m = v, j
            if m == -1:
                continue
            matched[m] = True
            if gts[m].get("iscrowd", 0):
                ig[k] = True
            else:
                tp[k], iou[k] = True, best
    return tp, ig, iou, ev


def cocoeval_matches(gt: dict, dets: list, tau: float, max_dets=100):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        d = g.loadRes(copy.deepcopy(dets))
        e = COCOeval(g, d, "bbox")
        e.params.iouThrs = np.array([tau])
        e.params.areaRng = [[0, 1e10]]
        e.params.areaRngLbl = ["all"]
        e.params.maxDets = [max_dets]
        e.evaluate()
    n = len(dets)
    tp, ig, ev = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    for r in e.evalImgs:
        if r is None:
            continue
        ids = np.asarray(r["dtIds"], int) - 1  # loadRes numbers results 1..n in file order
        ev[ids] = True
        ig[ids] = r["dtIgnore"][0].astype(bool)
        tp[ids] = (r["dtMatches"][0] > 0) & ~ig[ids]
    return tp, ig, ev


def _gt(boxes, crowd=None, cats=None, n_images=1, image_of=None):
    crowd = crowd or [0] * len(boxes)
    cats = cats or [1] * len(boxes)
    image_of = image_of or [1] * len(boxes)
    return {
        "images": [{"id": i + 1, "width": 100, "height": 100} for i in range(n_images)],
        "categories": [{"id": c} for c in sorted(set(cats) | {1, 2})],
        "annotations": [
            {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "iscrowd": z,
             "area": b[2] * b[3]}
            for k, (b, z, c, i) in enumerate(zip(boxes, crowd, cats, image_of, strict=True))
        ],
    }


def _dets(boxes, scores, cats=None, image_of=None):
    cats = cats or [1] * len(boxes)
    image_of = image_of or [1] * len(boxes)
    return [{"image_id": i, "category_id": c, "bbox": b, "score": s}
            for b, s, c, i in zip(boxes, scores, cats, image_of, strict=True)]


# --------------------------------------------------------------------------------------
# spec section 1.3: toy scenarios A (theft) and B (crowd absorption)
# --------------------------------------------------------------------------------------

A, B = [0, 0, 10, 10], [50, 50, 10, 10]


def test_scenario_a_theft():
    gt = _gt([A, B])
    d1 = [0, 0, 10, 8]  # IoU 0.8 with A
    d2 = [80, 0, 10, 10]  # no overlap with anything
    d3 = [50, 50, 10, 7]  # IoU 0.7 with B
    dets = _dets([d1, d2, d3], [0.9, 0.8, 0.7])
    m = detection.match(gt, dets, tau=0.0, iou_op="ge")
    np.testing.assert_array_equal(m.tp, [True, True, False])
    np.testing.assert_allclose(m.iou, [0.8, 0.0, 0.0])
    m = detection.match(gt, dets, tau=0.0, iou_op="gt")
    np.testing.assert_array_equal(m.tp, [True, False, True])
    np.testing.assert_allclose(m.iou, [0.8, 0.0, 0.7])


@pytest.mark.parametrize("iou_op", ["ge", "gt"])
def test_scenario_b_crowd_absorbs_extra_detection(iou_op):
    far_crowd = [80, 80, 10, 10]
    extra = [40, 0, 10, 10]  # overlaps nothing
    with_crowd = _gt([A, far_crowd], crowd=[0, 1])
    without = _gt([A])
    dets = _dets([A, extra], [0.9, 0.5])
    m1 = detection.match(with_crowd, dets, tau=0.0, iou_op=iou_op)
    m2 = detection.match(without, dets, tau=0.0, iou_op=iou_op)
    assert m1.tp[0] and m2.tp[0]
    if iou_op == "ge":
        # IoU 0 >= 0: absorbed by the far crowd box, ignored; an FP without the crowd box
        assert m1.ignored[1] and not m1.tp[1]
    else:
        assert not m1.ignored[1] and not m1.tp[1]
    assert not m2.ignored[1] and not m2.tp[1]


@pytest.mark.parametrize("iou_op", ["ge", "gt"])
def test_scenario_b_crowd_overlapping_detection_steals_gt(iou_op):
    crowd = [60, 60, 30, 30]
    gt = _gt([A, crowd], crowd=[0, 1])
    d_crowd = [60, 60, 10, 10]  # inside the crowd box, no overlap with A
    dets = _dets([d_crowd, [0, 0, 10, 9]], [0.9, 0.6])
    m = detection.match(gt, dets, tau=0.0, iou_op=iou_op)
    if iou_op == "ge":
        # the 0.9 detection takes A with IoU 0; the real TP is absorbed by the crowd
        np.testing.assert_array_equal(m.tp, [True, False])
        np.testing.assert_array_equal(m.ignored, [False, True])
        assert m.iou[0] == 0.0
    else:
        np.testing.assert_array_equal(m.tp, [False, True])
        np.testing.assert_array_equal(m.ignored, [True, False])
    for arr, ref in zip((m.tp, m.ignored), match_ref(gt, dets, 0.0, iou_op)[:2], strict=True):
        np.testing.assert_array_equal(arr, ref)


def test_equal_iou_later_box_wins_and_crowd_iou_over_detection_area():
    gt = _gt([[0, 0, 10, 10], [0, 0, 10, 10]])
    m = detection.match(gt, _dets([[0, 0, 10, 10]], [0.5]), tau=0.5)
    # both boxes have IoU 1; the later one is taken, leaving the first for the next det
    m2 = detection.match(gt, _dets([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.4]), tau=0.5)
    assert m.tp[0] and m2.tp.all()
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 100, 100]], crowd=[True])
    assert iou[0, 0] == 1.0  # inter / area(det)
    assert box_iou([[0, 0, 10, 10]], [[0, 0, 100, 100]])[0, 0] == pytest.approx(0.01)


def test_ignore_flag_is_overwritten_by_iscrowd():
    gt = _gt([A])
    gt["annotations"][0]["ignore"] = 1
    m = detection.match(gt, _dets([A], [0.9]), tau=0.5)
    assert m.tp[0] and not m.ignored[0]


def test_box_iou_matches_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    d = np.column_stack([rng.uniform(0, 50, (30, 2)), rng.uniform(0, 40, (30, 2))])
    g = np.column_stack([rng.uniform(0, 50, (20, 2)), rng.uniform(0, 40, (20, 2))])
    crowd = rng.random(20) < 0.3
    ref = mask_utils.iou(d.tolist(), g.tolist(), crowd.astype(np.uint8).tolist())
    np.testing.assert_array_equal(box_iou(d, g, crowd), ref)


# --------------------------------------------------------------------------------------
# parity with pycocotools and with the reference loop
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.0, 0.5, 0.75])
def test_parity_with_cocoeval_on_fixture(tau):
    gt = json.loads((FIXTURE / "instances_val2014_100.json").read_text())
    dets = json.loads((FIXTURE / "instances_val2014_fakebbox100_results.json").read_text())
    m = detection.match(gt, dets, tau=tau)
    tp, ig, ev = cocoeval_matches(gt, dets, tau)
    np.testing.assert_array_equal(m.evaluated, ev)
    np.testing.assert_array_equal(m.tp, tp)
    np.testing.assert_array_equal(m.ignored, ig)


@pytest.mark.parametrize("tau,max_dets", [(0.0, 100), (0.1, 5), (0.5, 100), (0.75, 3)])
def test_parity_with_cocoeval_synthetic_crowds_ties_maxdets(tau, max_dets):
    gt, dets = make_coco_like(60, dets_per_image=40, n_classes=6, crowd_fraction=0.15,
                              score_decimals=1, seed=3)
    rng = np.random.default_rng(1)
    dets = [dets[i] for i in rng.permutation(len(dets))]  # file order != score order
    m = detection.match(gt, dets, tau=tau, max_dets=max_dets)
    tp, ig, ev = cocoeval_matches(gt, dets, tau, max_dets=max_dets)
    assert ig.sum() > 0 and (~ev).sum() > 0 or max_dets == 100
    np.testing.assert_array_equal(m.evaluated, ev)
    np.testing.assert_array_equal(m.tp, tp)
    np.testing.assert_array_equal(m.ignored, ig)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.3, 0.5]), st.sampled_from(["ge", "gt"]))
def test_matches_reference_loop(seed, tau, iou_op):
    rng = np.random.default_rng(seed)
    n_gt, n_det = int(rng.integers(0, 8)), int(rng.integers(1, 15))
    grid = lambda n: np.column_stack(  # noqa: E731 - coarse grid makes exact IoU ties
        [rng.integers(0, 6, (n, 2)) * 5, rng.integers(1, 4, (n, 2)) * 5]
    ).astype(float).tolist()
    gt = _gt(grid(n_gt), crowd=rng.integers(0, 2, n_gt).tolist(),
             cats=rng.integers(1, 3, n_gt).tolist(), n_images=2,
             image_of=rng.integers(1, 3, n_gt).tolist())
    dets = _dets(grid(n_det), np.round(rng.random(n_det), 1).tolist(),
                 cats=rng.integers(1, 3, n_det).tolist(),
                 image_of=rng.integers(1, 3, n_det).tolist())
    m = detection.match(gt, dets, tau=tau, iou_op=iou_op, max_dets=4)
    tp, ig, iou, ev = match_ref(gt, dets, tau, iou_op, max_dets=4)
    np.testing.assert_array_equal(m.tp, tp)
    np.testing.assert_array_equal(m.ignored, ig)
    np.testing.assert_array_equal(m.evaluated, ev)
    np.testing.assert_allclose(m.iou, iou, rtol=0, atol=0)


def test_match_many_equals_single():
    gt, dets = make_coco_like(20, dets_per_image=30, n_classes=5, crowd_fraction=0.1, seed=5)
    ms = detection.match_many(gt, dets, [0.0, 0.5])
    for m, tau in zip(ms, [0.0, 0.5], strict=True):
        single = detection.match(gt, dets, tau=tau)
        np.testing.assert_array_equal(m.tp, single.tp)
        np.testing.assert_array_equal(m.ignored, single.ignored)


def test_netcal_matching_is_argmax_over_any_class_without_exclusivity():
    gt = _gt([A, [0, 0, 10, 9]], cats=[1, 2])
    dets = _dets([A, A, [0, 0, 10, 9]], [0.9, 0.8, 0.7], cats=[1, 1, 1])
    flags = detection.match_netcal(gt, dets, tau=0.5)
    # both duplicates of A are matched; the third det's best box has class 2
    np.testing.assert_array_equal(flags, [True, True, False])


def test_unknown_ids_raise():
    gt = _gt([A])
    with pytest.raises(ValueError, match="image_id"):
        detection.match(gt, _dets([A], [0.5], image_of=[7]))
    with pytest.raises(ValueError, match="category_id"):
        detection.match(gt, _dets([A], [0.5], cats=[9]))
    with pytest.raises(ValueError, match="tau"):
        detection.match(gt, _dets([A], [0.5]), tau=1.0)
    with pytest.raises(ValueError, match="iou_op"):
        detection.match(gt, _dets([A], [0.5]), iou_op=">=")
