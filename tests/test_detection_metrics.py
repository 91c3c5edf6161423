"""Tests of detection.metrics against values derived by hand from the formulas of the spec
(sections 2 and 7), a by-definition per-class loop for LaECE / LaACE / LRP, numpy's
``histogramdd`` for netcal's D-ECE, and pycocotools' ``COCOeval.stats[0]`` for AP."""

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
from calibkit.detection.synthetic import make_coco_like

FIXTURE = Path(__file__).parent / "data" / "coco_fixture"
A, B, C = [0, 0, 10, 10], [50, 50, 10, 10], [100, 100, 10, 10]
FAR = [300, 300, 10, 10]


def laece_ref(m, n_bins=25):
    """Per-class loop over right-closed bins, straight from the LaECE_0 formula."""
    errs = []
    edges = np.linspace(0, 1, n_bins + 1)
    for c in range(m.n_categories):
        sel = m.valid & (m.class_index == c)
        if m.npig[c] == 0 or not sel.any():
            continue
        p, acc = m.dets.score[sel], m.iou[sel]
        e = 0.0
        for j in range(n_bins):
            lo, hi = edges[j], edges[j + 1]
            in_bin = (p <= hi) & ((p > lo) if j > 0 else (p >= lo))
            if in_bin.any():
                n_j = in_bin.sum()
                e += n_j / len(p) * abs(p[in_bin].mean() - acc[in_bin].sum() / n_j)
        if e != 0:
            errs.append(e)
    return np.mean(errs) if errs else np.nan


def _gt(boxes, cats=None, crowd=None, extra_cats=(1, 2, 3)):
    cats = cats or [1] * len(boxes)
    crowd = crowd or [0] * len(boxes)
    return {
        "images": [{"id": 1, "width": 400, "height": 400}],
        "categories": [{"id": c} for c in sorted(set(cats) | set(extra_cats))],
        "annotations": [
            {"id": k + 1, "image_id": 1, "category_id": c, "bbox": b, "iscrowd": z}
            for k, (b, c, z) in enumerate(zip(boxes, cats, crowd, strict=True))
        ],
    }


def _dets(boxes, scores, cats=None):
    cats = cats or [1] * len(boxes)
    return [{"image_id": 1, "category_id": c, "bbox": b, "score": s}
            for b, s, c in zip(boxes, scores, cats, strict=True)]


# --------------------------------------------------------------------------------------
# LaECE
# --------------------------------------------------------------------------------------


def test_laece_by_hand():
    gt = _gt([A, B])
    dets = _dets([[0, 0, 10, 8], FAR, [50, 50, 10, 6]], [0.9, 0.9, 0.3])
    m = detection.match(gt, dets, tau=0.0, iou_op="gt")
    np.testing.assert_array_equal(m.tp, [True, False, True])
    # bin (0.88, 0.92]: n=2, conf 0.9, acc 0.8/2 -> 0.5 * 2/3; bin (0.28, 0.32]: 0.3 * 1/3
    assert detection.laece(m) == pytest.approx(0.5 * 2 / 3 + 0.3 / 3)
    assert detection.laece(m) == pytest.approx(laece_ref(m))


def test_laece_bin_closure():
    gt = _gt([A])
    dets = _dets([[0, 0, 10, 5], FAR], [1.0, 0.52])
    m = detection.match(gt, dets, tau=0.0, iou_op="gt")
    # right: 1.0 -> last bin, err |1 - 0.5|; 0.52 -> (0.48, 0.52], err 0.52
    assert detection.laece(m, bin_closure="right") == pytest.approx(0.5 * 0.5 + 0.5 * 0.52)
    # left ([a, b)): 1.0 in no bin but in |D^c|; 0.52 -> [0.52, 0.56)
    assert detection.laece(m, bin_closure="left") == pytest.approx(0.5 * 0.52)
    assert detection.laece(m, bin_closure="numpy") == pytest.approx(0.5 * 0.5 + 0.5 * 0.52)


def test_laece_class_exclusion_rules():
    # class 1: miscalibrated (e = 0.4); class 2: perfect (score 1, IoU 1: e = 0);
    # class 3: GT but no detection; class 4: detections but no GT
    gt = _gt([A, B, C], cats=[1, 2, 3], extra_cats=(1, 2, 3, 4))
    dets = _dets([A, B, FAR], [0.6, 1.0, 0.9], cats=[1, 2, 4])
    m = detection.match(gt, dets, tau=0.0)
    value, per_class = detection.laece(m), detection.laece_per_class(m)
    np.testing.assert_allclose(per_class, [0.4, 0.0, np.nan, np.nan])
    assert value == pytest.approx(0.4)  # zero-error and empty classes left out
    assert detection.laece(m, class_mean_drop_zero_error=False) == pytest.approx(0.2)
    # SAOD: every category counts, empty ones (and the no-GT class) as 0
    assert detection.laece(m, empty_class_policy="zero", class_mean_drop_zero_error=False) == (
        pytest.approx(0.4 / 4)
    )
    # one perfect class alone gives NaN (the toolbox quirk)
    m2 = detection.match(_gt([B]), _dets([B], [1.0]), tau=0.0)
    assert np.isnan(detection.laece(m2))


def test_laece_all_detections_ignored_class_is_excluded():
    gt = _gt([A, [200, 200, 50, 50]], cats=[1, 2], crowd=[0, 1])
    dets = _dets([A, [200, 200, 10, 10]], [0.6, 0.9], cats=[1, 2])
    m = detection.match(gt, dets, tau=0.5)
    assert m.ignored[1]
    per_class = detection.laece_per_class(m)
    assert np.isnan(per_class[1]) and per_class[0] == pytest.approx(0.4)


# --------------------------------------------------------------------------------------
# LaACE
# --------------------------------------------------------------------------------------


def test_laace_include_ignored_toy():
    # spec 2.3: TP (0.6, IoU 1) and a crowd-ignored detection (0.9)
    gt = _gt([A, [200, 200, 50, 50]], crowd=[0, 1])
    dets = _dets([A, [200, 200, 10, 10]], [0.6, 0.9])
    m = detection.match(gt, dets, tau=0.0, iou_op="gt")
    np.testing.assert_array_equal(m.ignored, [False, True])
    assert detection.laace(m, include_ignored=True) == pytest.approx(0.65)
    assert detection.laace(m, include_ignored=False) == pytest.approx(0.40)
    assert detection.laece(m) == pytest.approx(0.40)


def test_laace_by_hand_and_exclusions():
    gt = _gt([A, B, C], cats=[1, 1, 2])
    dets = _dets([[0, 0, 10, 8], FAR, C], [0.9, 0.2, 1.0], cats=[1, 1, 2])
    m = detection.match(gt, dets, tau=0.0, iou_op="gt")
    value, per_class = detection.laace(m), detection.laace_per_class(m)
    np.testing.assert_allclose(per_class[:2], [(0.1 + 0.2) / 2, 0.0])
    assert value == pytest.approx(0.15)  # class 2 (error 0) left out
    assert detection.laace(m, class_mean_drop_zero_error=False) == pytest.approx(0.075)


# --------------------------------------------------------------------------------------
# LRP
# --------------------------------------------------------------------------------------


def test_lrp_by_hand():
    # class 1: 3 GT, TPs with IoU 0.8 and 0.6, one FP -> TP 2, FP 1, FN 1; class 2: GT only
    gt = _gt([A, B, C, A], cats=[1, 1, 1, 2])
    dets = _dets([[0, 0, 10, 8], [50, 50, 10, 6], FAR], [0.9, 0.8, 0.7])
    m = detection.match(gt, dets, tau=0.5)
    out = detection.lrp(m)
    pc = detection.lrp_per_class(m)
    assert pc["lrp"][0] == pytest.approx((0.6 / 0.5 + 1 + 1) / 4)
    assert pc["lrp_loc"][0] == pytest.approx(0.3)
    assert pc["lrp_fp"][0] == pytest.approx(1 / 3)
    assert pc["lrp_fn"][0] == pytest.approx(1 / 3)
    assert pc["lrp"][1] == 1.0 and pc["lrp_fn"][1] == 1.0
    assert np.isnan(pc["lrp_loc"][1]) and np.isnan(pc["lrp_fp"][1])
    assert np.isnan(pc["lrp"][2])  # class 3: no ground truth
    assert out["lrp"] == pytest.approx((0.8 + 1.0) / 2)
    assert out["lrp_loc"] == pytest.approx(0.3)
    assert out["lrp_fn"] == pytest.approx((1 / 3 + 1) / 2)


def test_lrp_zero_iou_tp_leaves_lrp_unchanged_at_tau_0():
    gt = _gt([A, B])
    base = detection.lrp(detection.match(gt, _dets([A], [0.9]), tau=0.0))["lrp"]
    more = detection.match(gt, _dets([A, FAR], [0.9, 0.8]), tau=0.0)
    assert more.tp.all() and more.iou[1] == 0.0
    assert detection.lrp(more)["lrp"] == pytest.approx(base)  # loc +1, FN -1 (spec 1.3 C)


# --------------------------------------------------------------------------------------
# D-ECE
# --------------------------------------------------------------------------------------


def test_dece_pooled_by_hand():
    gt = _gt([A, B, C], cats=[1, 1, 2])
    dets = _dets([A, B, C, FAR, [200, 0, 5, 5]], [0.95, 0.95, 0.95, 0.95, 0.15],
                 cats=[1, 1, 2, 2, 1])
    m = detection.match(gt, dets, tau=0.5)
    # bin (0.9, 1]: 4 dets, precision 0.75, conf 0.95; bin (0.1, 0.2]: 1 FP at 0.15
    assert detection.dece_pooled(m) == pytest.approx((4 * 0.2 + 0.15) / 5)


def test_dece_ignores_classes_without_gt_instead_of_crashing():
    gt = _gt([A], cats=[1], extra_cats=(1, 2))
    dets = _dets([A, FAR], [0.8, 0.9], cats=[1, 2])
    assert detection.dece_pooled(detection.match(gt, dets, tau=0.5)) == pytest.approx(0.2)


def test_dece_netcal_matches_histogramdd_reference():
    rng = np.random.default_rng(0)
    n = 500
    conf = rng.random(n)
    feats = rng.random((n, 2))
    y = rng.random(n) < conf
    x = np.clip(np.column_stack([conf, feats]), np.finfo(float).eps, 1 - np.finfo(float).eps)
    edges = [np.linspace(0, 1, b + 1) for b in (5, 3, 3)]
    cnt, _ = np.histogramdd(x, bins=edges)
    s_p, _ = np.histogramdd(x, bins=edges, weights=x[:, 0])
    s_y, _ = np.histogramdd(x, bins=edges, weights=y.astype(float))
    for thr in (1, 8):
        ok = cnt >= thr
        ref = np.sum(np.abs(s_y[ok] - s_p[ok])) / n
        got = detection.dece_netcal(conf, y, feats, n_bins=[5, 3, 3], sample_threshold=thr)
        assert got == pytest.approx(ref, abs=1e-12)
    # confidence only, 10 bins, equals the pooled ECE with numpy closure
    ref1 = detection.dece_netcal(conf, y, n_bins=10)
    b = np.minimum((x[:, 0] * 10).astype(int), 9)
    manual = sum(abs(y[b == j].sum() - conf[b == j].sum()) for j in range(10)) / n
    assert ref1 == pytest.approx(manual)


def test_box_features_normalised():
    gt = _gt([A])
    f = detection.box_features(gt, _dets([[40, 0, 20, 100]], [0.5]))
    np.testing.assert_allclose(f, [[50 / 400, 50 / 400, 20 / 400, 100 / 400]])
    empty = {"images": [], "annotations": [], "categories": [{"id": 1}]}
    with pytest.raises(ValueError, match="no images"):
        detection.box_features(empty, detection.Detections.from_arrays(
            [1], [1], [0.5], [[0.0, 0.0, 1.0, 1.0]]))


# --------------------------------------------------------------------------------------
# AP and evaluate
# --------------------------------------------------------------------------------------


def _cocoeval_ap(gt, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        e = COCOeval(g, g.loadRes(copy.deepcopy(dets)), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats[0]


def test_ap_parity_fixture():
    gt = json.loads((FIXTURE / "instances_val2014_100.json").read_text())
    dets = json.loads((FIXTURE / "instances_val2014_fakebbox100_results.json").read_text())
    ap = detection.average_precision(gt, dets)
    assert round(ap, 3) == 0.505  # cocoapi results/val2014_fake_eval_res.txt
    assert ap == pytest.approx(_cocoeval_ap(gt, dets), abs=1e-12)


def test_ap_parity_synthetic_with_crowds_and_ties():
    gt, dets = make_coco_like(40, dets_per_image=50, n_classes=8, crowd_fraction=0.1,
                              score_decimals=2, seed=7)
    for a in gt["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    assert detection.average_precision(gt, dets) == pytest.approx(_cocoeval_ap(gt, dets),
                                                                  abs=1e-12)


def test_evaluate_keys_ranges_and_consistency():
    gt, dets = make_coco_like(30, dets_per_image=30, n_classes=6, seed=2)
    out = detection.evaluate(gt, dets, ap=True)
    assert set(out) == {"laece", "laace", "lrp", "lrp_loc", "lrp_fp", "lrp_fn", "dece", "ap"}
    for v in out.values():
        assert isinstance(v, float) and 0.0 <= v <= 1.0
    m = detection.match(gt, dets)
    assert out["laece"] == pytest.approx(laece_ref(m))
    assert out["dece"] == detection.dece_pooled(detection.match(gt, dets, tau=0.5))
    netcal = detection.evaluate(gt, dets, dece_matching="netcal_argmax_any_class")
    assert 0 <= netcal["dece"] <= 1


def test_evaluate_empty_detections_and_class_without_gt():
    gt = _gt([A, B], cats=[1, 2])
    out = detection.evaluate(gt, [])
    assert np.isnan(out["laece"]) and np.isnan(out["dece"])
    assert out["lrp"] == 1.0 and out["lrp_fn"] == 1.0
    # detections of a category without ground truth are dropped from every metric
    out2 = detection.evaluate(gt, _dets([A, FAR], [0.7, 0.9], cats=[1, 3]))
    out1 = detection.evaluate(gt, _dets([A], [0.7], cats=[1]))
    assert out2 == out1


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 0.5]))
def test_metrics_are_fractions(seed, tau):
    gt, dets = make_coco_like(4, dets_per_image=15, n_classes=3, crowd_fraction=0.2, seed=seed)
    out = detection.evaluate(gt, dets, tau=tau)
    for v in out.values():
        assert np.isnan(v) or 0.0 <= v <= 1.0
    m = detection.match(gt, dets, tau=tau)
    ref = laece_ref(m)
    assert (np.isnan(ref) and np.isnan(out["laece"])) or out["laece"] == pytest.approx(ref)


def test_real_detections_reproduce_spec_dece_numbers(shared_data):
    """Spec 2.5 ([VER], Faster R-CNN on COCO val2017): pooled D-ECE 21.37 (greedy, IoU 0.6),
    18.16 (greedy, IoU 0.5), 19.26 (the file's netcal flags at IoU 0.6); netcal's
    argmax-over-any-class matching reproduces those flags."""
    folder = shared_data / "netcal-coco-detection"
    npz = folder / "faster_rcnn_resnet50_coco_val2017_dets.npz"
    gt, res = detection.netcal_npz_to_coco(npz, folder / "coco_val2017_gt_boxes.npz")
    gt, dets = detection.load_gt(gt), detection.load_dets(res)
    ms = detection.match_many(gt, dets, [0.6, 0.5])
    assert round(100 * detection.dece_pooled(ms[0]), 2) == 21.37
    assert round(100 * detection.dece_pooled(ms[1]), 2) == 18.16
    flags = np.load(npz)["det_matched_iou060"].astype(bool)
    assert round(100 * detection.dece_netcal(dets.score, flags, n_bins=10), 2) == 19.26
    np.testing.assert_array_equal(detection.match_netcal(gt, dets, tau=0.6), flags)
