"""Tests of detection.DetectionCalibrator against the pipeline of the detection calibration
toolbox written out step by step below (spec section 3.1: u_c on raw val detections, match
the survivors, fit per class on TP and FP with IoU targets, v_c on calibrated survivors),
with scikit-learn's ``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")`` and
``LinearRegression(positive=True)`` as the per-class maps, and scipy minimisations of the
toolbox's Platt and temperature losses."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LinearRegression

from calibkit import detection
from calibkit.detection.synthetic import make_coco_like


@pytest.fixture(scope="module")
def split():
    gt, dets = make_coco_like(160, dets_per_image=40, n_classes=8, crowd_fraction=0.03,
                              seed=11)
    val_ids = {i["id"] for i in gt["images"][:80]}

    def part(keep):
        g = {**gt, "images": [i for i in gt["images"] if (i["id"] in val_ids) == keep],
             "annotations": [a for a in gt["annotations"] if (a["image_id"] in val_ids) == keep]}
        return g, [d for d in dets if (d["image_id"] in val_ids) == keep]

    return part(True), part(False)


def pipeline_ref(gt, dets, make_map, tau=0.0):
    """The toolbox's fit + transform, by definition, with per-class sklearn maps."""
    m0 = detection.match(gt, dets, tau=tau)
    cats = m0.gt.category_ids
    u, _ = detection.lrp_optimal_thresholds(m0)
    d0 = m0.dets
    keep = ~(d0.score < u[np.searchsorted(cats, d0.category_id)])
    d1 = d0.subset(keep)
    m1 = detection.match(gt, d1, tau=tau)
    maps = {}
    for k, c in enumerate(cats):
        sel = m1.valid & (m1.class_index == k)
        if m1.npig[k] > 0 and sel.any():
            maps[c] = make_map(d1.score[sel], m1.iou[sel])

    def calibrate(d):
        s = d.score.copy()
        for c, f in maps.items():
            rows = d.category_id == c
            s[rows] = np.clip(f(d.score[rows]), 0, 1)
        return s

    v, _ = detection.lrp_optimal_thresholds(detection.match(gt, d1.with_scores(calibrate(d1)),
                                                            tau=tau))
    return u, v, calibrate


def isotonic_map(p, y):
    if np.all(y == y[0]):
        return lambda q: np.full(len(q), y[0])
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    return iso.predict


def linear_map(p, y):
    if np.all(y == y[0]):
        return lambda q: np.full(len(q), y[0])
    reg = LinearRegression(positive=True).fit(p[:, None], y)
    return lambda q: reg.predict(q[:, None])


@pytest.mark.parametrize("method,make_map", [("isotonic", isotonic_map),
                                             ("linear", linear_map)])
def test_pipeline_equals_reference(split, method, make_map):
    (g_val, d_val), (g_test, d_test) = split
    cal = detection.DetectionCalibrator(method=method).fit(g_val, d_val)
    u, v, calibrate = pipeline_ref(g_val, d_val, make_map)
    np.testing.assert_array_equal(cal.lower_thresholds_, u)
    np.testing.assert_allclose(cal.upper_thresholds_, v, rtol=0, atol=1e-12)
    out = cal.transform(d_test)
    # reference transform
    d = detection.load_dets(d_test)
    cats = cal.category_ids_
    keep = ~(d.score < u[np.searchsorted(cats, d.category_id)])
    s = calibrate(d.subset(keep))
    keep2 = ~(s < v[np.searchsorted(cats, d.category_id[keep])])
    np.testing.assert_allclose(out.score, s[keep2], rtol=0, atol=1e-12)
    assert len(out) == keep2.sum() < len(d_test)


def _bce(q, t):
    q = np.clip(q, 1e-15, 1 - 1e-15)
    return -np.mean(t * np.log(q) + (1 - t) * np.log(1 - q))


def _logit(p):
    eps = np.finfo(np.float64).eps
    p = np.clip(p, eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def test_platt_and_temperature_reach_the_bce_optimum(split):
    """The toolbox's models sigmoid(|a| z + b) and sigmoid(z / |T|), minimised with
    scipy to tight tolerance: calibkit's fits reach the same optimum (the toolbox's own
    torch L-BFGS, lr 0.1 and 100 iterations, stops short of it)."""
    from scipy.optimize import minimize, minimize_scalar

    (g_val, d_val), _ = split
    platt = detection.DetectionCalibrator(method="platt", thresholds=None).fit(g_val, d_val)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # T -> infinity in some classes
        temp = detection.DetectionCalibrator(method="temperature", thresholds=None).fit(g_val,
                                                                                        d_val)
    m = detection.match(g_val, d_val)
    checked = 0
    for k in np.flatnonzero(platt.n_train_ > 5):
        key = str(int(platt.category_ids_[k]))
        sel = m.valid & (m.class_index == k)
        p, t = m.dets.score[sel], m.iou[sel]
        z = _logit(p)
        res = minimize(lambda ab, z=z, t=t: _bce(1 / (1 + np.exp(-(abs(ab[0]) * z + ab[1]))), t),
                       x0=[1.0, 0.0], method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-10})
        model = platt.models_[key]
        q = (np.full(len(p), model["constant"]) if isinstance(model, dict)
             else model.predict_proba(p)[:, 1])
        assert _bce(q, t) <= res.fun + 1e-9
        tm = temp.models_[key]
        if getattr(tm, "converged_", False):
            r = minimize_scalar(lambda lt, z=z, t=t: _bce(1 / (1 + np.exp(-z / np.exp(lt))), t),
                                bounds=(-5, 5), method="bounded", options={"xatol": 1e-10})
            assert tm.temperature_ == pytest.approx(np.exp(r.x), rel=1e-4)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("method", ["isotonic", "platt", "temperature", "linear", "identity"])
def test_persistence_roundtrip_and_no_mutation(split, tmp_path, method):
    (g_val, d_val), (_, d_test) = split
    before_val, before_test = copy.deepcopy(d_val), copy.deepcopy(d_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # T -> infinity in some classes
        cal = detection.DetectionCalibrator(method=method).fit(g_val, d_val)
    out = cal.transform(d_test).to_coco()
    assert d_val == before_val and d_test == before_test
    cal.save(tmp_path / "cal.json")
    json.loads((tmp_path / "cal.json").read_text())  # plain JSON
    again = detection.DetectionCalibrator.load(tmp_path / "cal.json")
    assert again.transform(d_test).to_coco() == out
    if method == "identity":
        scores = {(o["image_id"], tuple(o["bbox"])): o["score"] for o in out}
        orig = {(d["image_id"], tuple(d["bbox"])): d["score"] for d in d_test}
        assert all(orig[k] == s for k, s in scores.items())


def test_calibrator_instance_fixed_threshold_and_pooled(split):
    from calibkit import IsotonicCalibration

    (g_val, d_val), (g_test, d_test) = split
    cal = detection.DetectionCalibrator(method=IsotonicCalibration(input="probs"), classwise=False,
                                        target="binary", thresholds=0.3, tau=0.5)
    out = cal.fit(g_val, d_val).transform(d_test)
    assert list(cal.models_) == ["all"]
    assert out.score.min() >= 0.3
    np.testing.assert_array_equal(cal.lower_thresholds_, 0.3)
    raw = [d for d in d_test if d["score"] >= 0.3]
    assert (detection.evaluate(g_test, out)["dece"] < detection.evaluate(g_test, raw)["dece"])
    none = detection.DetectionCalibrator(method="isotonic", thresholds=None).fit(g_val, d_val)
    assert len(none.transform(d_test)) == len(d_test)


def test_tiny_classes_and_unseen_categories():
    gt = {"images": [{"id": 1}, {"id": 2}],
          "categories": [{"id": 1}, {"id": 2}, {"id": 3}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
                          {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 10, 10]}]}
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 8], "score": 0.7},  # one TP
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 8], "score": 0.6},  # FP only
        {"image_id": 2, "category_id": 2, "bbox": [5, 5, 10, 8], "score": 0.5},
    ]
    iso = detection.DetectionCalibrator(method="isotonic", thresholds=None, tau=0.5).fit(gt, dets)
    assert iso.models_["1"] == {"constant": 0.8}  # one detection: constant (its IoU)
    assert iso.models_["2"] == {"constant": 0.0}  # only FPs: isotonic -> 0
    assert "3" not in iso.models_  # no data: identity
    platt = detection.DetectionCalibrator(method="platt", thresholds=None, tau=0.5).fit(gt, dets)
    assert platt.models_["1"] is None  # one detection: identity, as the toolbox
    new = detection.Detections.from_arrays([1, 1], [3, 1], [0.42, 0.3], np.ones((2, 4)))
    out = iso.transform(new)
    np.testing.assert_allclose(out.score, [0.42, 0.8])  # category 3 untouched
    np.testing.assert_allclose(iso.predict_scores([1, 2, 3], [0.1, 0.9, 0.5]), [0.8, 0.0, 0.5])


def test_torchvision_input_and_bad_parameters():
    gt = {"images": [{"id": 5}], "categories": [{"id": 1}],
          "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": [0, 0, 10, 10]},
                          {"id": 2, "image_id": 5, "category_id": 1, "bbox": [20, 0, 10, 10]}]}
    # torchvision's format (xyxy boxes); arrays here, tensors go through the same to_numpy
    outputs = [{"boxes": np.array([[0.0, 0, 10, 10], [20, 0, 30, 9], [50, 50, 60, 60]]),
                "labels": np.array([1, 1, 1]), "scores": np.array([0.9, 0.8, 0.7])}]
    cal = detection.DetectionCalibrator(method="isotonic", thresholds=None).fit(
        gt, detection.from_torchvision(outputs, [5]))
    out = cal.transform(outputs, image_ids=[5])
    assert isinstance(out, detection.Detections) and len(out) == 3
    # isotonic fits these three points exactly: a perfect class, left out of the mean
    assert np.isnan(detection.evaluate(gt, out)["laece"])
    assert detection.evaluate(gt, out, class_mean_drop_zero_error=False)["laece"] == 0.0
    for bad in ({"method": "magic"}, {"target": "soft"}, {"thresholds": 2.0},
                {"tau": -0.1}):
        with pytest.raises(ValueError):
            detection.DetectionCalibrator(**bad).fit(gt, detection.from_torchvision(outputs, [5]))
    with pytest.raises(ValueError, match="empty"):
        detection.DetectionCalibrator().fit(gt, [])


def test_real_coco_detections_isotonic(shared_data):
    """Faster R-CNN on COCO val2017 (netcal records), 50/50 image split."""
    folder = shared_data / "netcal-coco-detection"
    gt, dets = detection.netcal_npz_to_coco(folder / "faster_rcnn_resnet50_coco_val2017_dets.npz",
                                            folder / "coco_val2017_gt_boxes.npz")
    rng = np.random.default_rng(0)
    ids = np.array([i["id"] for i in gt["images"]])
    val = set(rng.permutation(ids)[: len(ids) // 2].tolist())

    def part(keep):
        g = {**gt, "images": [i for i in gt["images"] if (i["id"] in val) == keep],
             "annotations": [a for a in gt["annotations"] if (a["image_id"] in val) == keep]}
        return g, [d for d in dets if (d["image_id"] in val) == keep]

    (g_val, d_val), (g_test, d_test) = part(True), part(False)
    before = detection.evaluate(
        g_test, detection.DetectionCalibrator(method="identity").fit(g_val,
                                                                     d_val).transform(d_test))
    after = detection.evaluate(
        g_test, detection.DetectionCalibrator(method="isotonic").fit(g_val,
                                                                     d_val).transform(d_test))
    assert after["laece"] < 0.5 * before["laece"]  # measured: 0.277 -> 0.086
    assert abs(after["lrp"] - before["lrp"]) < 0.01
    # the train-time papers' D-ECE protocol: score >= 0.3, TP at IoU 0.5, pooled, binary
    dece_cal = detection.DetectionCalibrator(method="isotonic", classwise=False, target="binary",
                                             thresholds=0.3, tau=0.5).fit(g_val, d_val)
    raw = [d for d in d_test if d["score"] >= 0.3]
    dece_before = detection.evaluate(g_test, raw)["dece"]
    dece_after = detection.evaluate(g_test, dece_cal.transform(d_test))["dece"]
    assert dece_after < 0.5 * dece_before  # measured: 0.180 -> 0.008


def test_platt_negative_slope_becomes_mean_constant():
    # scores anti-correlated with IoU: the toolbox's sigmoid(|a| z + b) has its optimum at
    # a = 0, i.e. the constant mean target
    boxes = [[k * 20, 0, 10, 10] for k in range(6)]
    gt = {"images": [{"id": 1}], "categories": [{"id": 1}],
          "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "bbox": b}
                          for k, b in enumerate(boxes[:3])]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": b, "score": s}
            for b, s in zip(boxes, [0.2, 0.3, 0.35, 0.9, 0.8, 0.7], strict=True)]
    cal = detection.DetectionCalibrator(method="platt", thresholds=None, tau=0.5).fit(gt, dets)
    assert cal.models_["1"] == {"constant": pytest.approx(0.5)}
