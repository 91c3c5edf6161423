"""LVIS's federated rules: matching, ``lvis_summary``, the calibration metrics, thresholds,
the calibrator on LVIS's long tail, bootstrap, shards and the CLI.

References: the ``lvis`` package (live): ``LVISEval.results`` for the summary, boxes and masks,
and ``LVISEval.eval_imgs`` (``dt_matches`` / ``dt_ignore``) for the per-detection matches, on
``tests/data/lvis_fixture`` (every image with ``neg_category_ids`` and
``not_exhaustive_category_ids``, the three frequency groups, an ignored annotation, one of
area 0, more than 300 detections on two images, detections of present, absent, not
exhaustive and unverified classes, score ties; written by
``tests/data/make_mask_fixtures.py``); toy cases worked out by hand; LaECE and LRP written
out from LVISEval's flags; literal bootstrap resamples.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_detection_masks import literal_resample_json

from calibkit import detection
from calibkit.detection.bootstrap import image_resample_counts

lvis = pytest.importorskip("lvis")
mask_utils = pytest.importorskip("pycocotools.mask")

FIXTURE = Path(__file__).parent / "data" / "lvis_fixture"
GT_PATH = FIXTURE / "gt.json"
DETS_PATH = FIXTURE / "results.json"


@pytest.fixture(scope="module")
def data():
    return json.loads(GT_PATH.read_text()), json.loads(DETS_PATH.read_text())


@contextlib.contextmanager
def _numpy_float():
    """lvis 0.5.3's accumulate uses ``np.float``, removed in numpy 1.24."""
    had = hasattr(np, "float")
    if not had:
        setattr(np, "float", float)  # noqa: B010 (the name is only looked up at run time)
    try:
        yield
    finally:
        if not had:
            delattr(np, "float")


def _lvis_eval(gt, dets, iou_type="bbox", **params):
    with _numpy_float(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # lvis calls logger.warn
        g = lvis.LVIS.__new__(lvis.LVIS)  # from a dict, as LVIS(path) reads it
        g.dataset = copy.deepcopy(gt)
        g.logger = lvis.lvis.logging.getLogger("lvis")
        g._create_index()
        rows = [dict(r, _row=k) for k, r in enumerate(copy.deepcopy(dets))]
        d = lvis.LVISResults(g, rows)
        e = lvis.LVISEval(g, d, iou_type)
        for key, value in params.items():
            setattr(e.params, key, value)
        if params:
            e.evaluate()
        else:
            e.run()
    return e


# --------------------------------------------------------------------------------------
# parity with the lvis package
# --------------------------------------------------------------------------------------


def test_fixture_exercises_the_rules(data):
    gt, dets = data
    freq = {c["frequency"] for c in gt["categories"]}
    assert freq == {"r", "c", "f"}
    assert any(im["neg_category_ids"] for im in gt["images"])
    assert any(im["not_exhaustive_category_ids"] for im in gt["images"])
    per_image = np.bincount([r["image_id"] for r in dets])
    assert per_image.max() > 300
    assert any(a.get("ignore") for a in gt["annotations"])
    assert any(a["area"] == 0 for a in gt["annotations"])


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_summary_equals_lviseval(data, iou_type):
    gt, dets = data
    e = _lvis_eval(gt, dets, iou_type)
    ours = detection.lvis_summary(GT_PATH, DETS_PATH, iou_type=iou_type)
    assert list(ours) == list(e.results)
    assert list(ours) == ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf",
                          "AR@300", "ARs@300", "ARm@300", "ARl@300"]
    np.testing.assert_allclose(list(ours.values()), list(e.results.values()), rtol=0,
                               atol=1e-12)
    assert min(ours.values()) > -1  # every group and area range takes part


def test_summary_other_cap_equals_lviseval(data):
    gt, dets = data
    with _numpy_float(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        g = lvis.LVIS.__new__(lvis.LVIS)
        g.dataset = copy.deepcopy(gt)
        g.logger = lvis.lvis.logging.getLogger("lvis")
        g._create_index()
        e = lvis.LVISEval(g, lvis.LVISResults(g, copy.deepcopy(dets), max_dets=40), "bbox")
        e.params.max_dets = 40
        e.run()
    ours = detection.lvis_summary(gt, dets, max_dets=40)
    assert list(ours) == list(e.results)
    np.testing.assert_allclose(list(ours.values()), list(e.results.values()), rtol=0,
                               atol=1e-12)


def _reference_flags(gt, dets, tau, iou_type="bbox"):
    e = _lvis_eval(gt, dets, iou_type, iou_thrs=np.array([tau]), area_rng=[[0, 1e10]],
                   area_rng_lbl=["all"])
    n = len(dets)
    tp, ig, ev = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    gt_of = np.full(n, -1)
    for r in e.eval_imgs:
        if r is None:
            continue
        rows = np.array([e.lvis_dt.anns[i]["_row"] for i in r["dt_ids"]], int)
        ev[rows] = True
        ig[rows] = r["dt_ignore"][0].astype(bool)
        matched = r["dt_matches"][0] > 0
        tp[rows] = matched & ~ig[rows]
        gt_of[rows[matched]] = r["dt_matches"][0][matched].astype(int)
    return tp, ig, ev, gt_of


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("tau", [0.0, 0.5])
def test_matches_equal_eval_imgs(data, tau, iou_type):
    gt, dets = data
    tp, ig, ev, _ = _reference_flags(gt, dets, tau, iou_type)
    m = detection.match(gt, dets, tau=tau, iou_type=iou_type)
    assert m.dataset == "lvis" and m.max_dets == 300
    np.testing.assert_array_equal(m.evaluated, ev)
    np.testing.assert_array_equal(m.tp, tp)
    np.testing.assert_array_equal(m.ignored, ig)
    assert (~ev).sum() > 60 and ig.any() and (~tp & ~ig & ev).any()


# --------------------------------------------------------------------------------------
# the rules on toy data, by hand
# --------------------------------------------------------------------------------------


def _toy():
    gt = {
        "images": [{"id": 1, "height": 50, "width": 50, "neg_category_ids": [2],
                    "not_exhaustive_category_ids": [1]},
                   {"id": 2, "height": 50, "width": 50, "neg_category_ids": [],
                    "not_exhaustive_category_ids": []}],
        "categories": [{"id": c, "frequency": f} for c, f in ((1, "f"), (2, "c"), (3, "r"),
                                                              (4, "r"))],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [20, 20, 10, 10], "area": 100,
             "ignore": 1},
            {"id": 4, "image_id": 2, "category_id": 4, "bbox": [30, 0, 5, 5], "area": 0},
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9], "score": 0.9},  # TP
        {"image_id": 1, "category_id": 1, "bbox": [30, 30, 5, 5], "score": 0.8},  # nel: ignored
        {"image_id": 1, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.7},  # neg: FP
        {"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.6},  # unverified
        {"image_id": 2, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.9},  # ignore gt
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 0, 10], "score": 0.95},  # area 0
        {"image_id": 2, "category_id": 1, "bbox": [40, 40, 5, 5], "score": 0.5},  # FP
        {"image_id": 2, "category_id": 4, "bbox": [30, 0, 5, 5], "score": 0.5},  # area-0 gt
    ]
    return gt, dets


def test_toy_rules():
    gt, dets = _toy()
    m = detection.match(gt, dets, tau=0.5)
    assert m.dataset == "lvis"
    np.testing.assert_array_equal(m.evaluated, [1, 1, 1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(m.tp, [1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(m.ignored, [0, 1, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(m.fp, [0, 0, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(m.npig, [2, 0, 0, 0])  # not the ignored, not area 0
    # COCO's rules on the same data: every detection takes part, nothing is ignored
    c = detection.match(gt, dets, tau=0.5, dataset="coco")
    assert c.evaluated.all() and not c.ignored.any()
    ref_tp, ref_ig, ref_ev, _ = _reference_flags(gt, dets, 0.5)
    np.testing.assert_array_equal(m.tp, ref_tp)
    np.testing.assert_array_equal(m.ignored, ref_ig)
    np.testing.assert_array_equal(m.evaluated, ref_ev)
    # the LRP of class 1: 1 TP, 1 FP, 1 FN; the neg class 2 has no ground truth (dropped)
    per = detection.lrp_per_class(m)
    assert per["lrp_fp"][0] == 0.5 and per["lrp_fn"][0] == 0.5
    assert np.isnan(per["lrp"][1])


def test_cap_per_image_keeps_the_best_with_ties_in_file_order():
    gt = {"images": [{"id": 1, "height": 99, "width": 99, "neg_category_ids": [2],
                      "not_exhaustive_category_ids": []}],
          "categories": [{"id": 1, "frequency": "f"}, {"id": 2, "frequency": "r"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9],
                           "area": 81}]}
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(330), 1)
    dets = [{"image_id": 1, "category_id": int(1 + k % 2),
             "bbox": [float(k % 90), 1.0, 5.0, 5.0], "score": float(s)}
            for k, s in enumerate(scores)]
    m = detection.match(gt, dets, max_dets=300)
    keep = np.zeros(330, bool)
    keep[np.argsort(-scores, kind="stable")[:300]] = True
    np.testing.assert_array_equal(m.evaluated, keep)
    _, _, ref_ev, _ = _reference_flags(gt, dets, 0.5)
    np.testing.assert_array_equal(m.evaluated, ref_ev)
    assert detection.match(gt, dets, max_dets=10).evaluated.sum() == 10


# --------------------------------------------------------------------------------------
# calibration metrics under LVIS's rules, written out from LVISEval's flags
# --------------------------------------------------------------------------------------


def test_metrics_from_lviseval_flags(data):
    gt, dets = data
    tp, ig, ev, gt_of = _reference_flags(gt, dets, 0.0)
    ann = {a["id"]: a for a in gt["annotations"]}
    iou = np.zeros(len(dets))
    for k in np.flatnonzero(tp):
        iou[k] = mask_utils.iou([dets[k]["bbox"]], [ann[gt_of[k]]["bbox"]], [0])[0, 0]
    valid = ev & ~ig
    cats = sorted(c["id"] for c in gt["categories"])
    npig = {c: sum(1 for a in gt["annotations"] if a["category_id"] == c and a["area"] > 0
                   and not a.get("ignore")) for c in cats}
    laece, lrp = [], []
    for c in cats:
        sel = valid & (np.array([r["category_id"] for r in dets]) == c)
        if npig[c] == 0:
            continue
        n_tp, n_fp = tp[sel].sum(), (sel & ~tp).sum()
        fn = npig[c] - n_tp
        lrp.append(((n_tp - iou[sel & tp].sum()) + n_fp + fn) / (n_tp + n_fp + fn))
        if not sel.any():
            continue
        p = np.array([dets[k]["score"] for k in np.flatnonzero(sel)])
        y = iou[sel]
        b = np.maximum(np.ceil(p * 25).astype(int) - 1, 0)  # bins [0, 1/25], (j/25, ...]
        e = sum(abs((y[b == j] - p[b == j]).sum()) for j in range(25)) / len(p)
        if e != 0:
            laece.append(e)
    res = detection.evaluate(gt, dets)
    assert res["laece"] == pytest.approx(np.mean(laece), abs=1e-12)
    assert res["lrp"] == pytest.approx(np.mean(lrp), abs=1e-12)
    assert res == detection.evaluate(gt, dets, dataset="lvis", max_dets=300)
    assert res != detection.evaluate(gt, dets, dataset="coco")
    # LVIS's AP at every threshold, under its rules
    e = _lvis_eval(gt, dets, "bbox")
    q = e.eval["precision"][:, :, :, 0]
    assert detection.evaluate(gt, dets, ap=True)["ap"] == pytest.approx(
        q[q > -1].mean(), abs=1e-12)


def test_thresholds_use_the_evaluated_detections(data):
    gt, dets = data
    m = detection.match(gt, dets)
    thr, olrp = detection.lrp_optimal_thresholds(m)
    assert set(m.order) == set(np.flatnonzero(m.evaluated))
    # a class without regular ground truth (only verified absent) keeps everything
    assert (thr[m.npig == 0] == -1).all() and np.isfinite(olrp[m.npig > 0]).all()


# --------------------------------------------------------------------------------------
# the calibrator on LVIS's long tail
# --------------------------------------------------------------------------------------


def test_calibrator_long_tail(data):
    gt, dets = data
    cal = detection.DetectionCalibrator(method="isotonic").fit(gt, dets)
    m = detection.match(gt, dets)
    u = detection.lrp_optimal_thresholds(m)[0]
    np.testing.assert_array_equal(cal.lower_thresholds_, u)
    kept = detection.load_dets(dets).subset(
        detection.apply_thresholds(detection.load_dets(dets), cal.category_ids_, u))
    m1 = detection.match(gt, kept)
    n_train = np.bincount(m1.class_index[m1.valid & (m1.npig > 0)[m1.class_index]],
                          minlength=m1.n_categories)
    np.testing.assert_array_equal(cal.n_train_, n_train)
    assert (n_train == 0).any() and (n_train >= 3).any()
    grid = np.linspace(0.01, 1, 50)
    for k, c in enumerate(cal.category_ids_):
        got = cal.predict_scores(np.full(50, c), grid)
        model = cal.models_.get(str(int(c)))
        if n_train[k] == 0:  # no training data: the identity
            assert model is None
            np.testing.assert_array_equal(got, grid)
        elif n_train[k] == 1 or isinstance(model, dict):  # one detection, or equal targets
            assert isinstance(model, dict) and np.all(got == model["constant"])
    # fewer than 5 detections: the calibrator pooled over every class
    pooled = detection.DetectionCalibrator(method="isotonic", min_class_detections=5).fit(
        gt, dets)
    assert "all" in pooled.models_
    everyone = detection.DetectionCalibrator(method="isotonic", classwise=False).fit(gt, dets)
    for k, c in enumerate(pooled.category_ids_):
        got = pooled.predict_scores(np.full(50, c), grid)
        if pooled.n_train_[k] < 5:
            assert str(int(c)) not in pooled.models_
            np.testing.assert_array_equal(got, everyone.predict_scores(np.full(50, c), grid))
        else:
            np.testing.assert_array_equal(got, cal.predict_scores(np.full(50, c), grid))
    # Platt: one detection keeps the identity
    platt = detection.DetectionCalibrator(method="platt").fit(gt, dets)
    for k, c in enumerate(platt.category_ids_):
        if platt.n_train_[k] == 1:
            assert platt.models_[str(int(c))] is None
    out = cal.transform(dets)
    assert np.isfinite(detection.evaluate(gt, out)["laece"])


def test_calibrator_small_classes_by_hand():
    """Class 1: many detections; class 2: one (a TP); class 3: only FPs (detections where it
    is verified absent); class 4: none; class 5: detections on every image, of which only
    the one on the image where it is present is evaluated (elsewhere it is unverified)."""
    rng = np.random.default_rng(5)
    images, anns, dets = [], [], []
    for i in range(1, 13):
        images.append({"id": i, "height": 64, "width": 64, "neg_category_ids": [3] if i > 1
                       else [], "not_exhaustive_category_ids": []})
        anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1,
                     "bbox": [4.0, 4.0, 20.0, 20.0], "area": 400.0})
        for _ in range(3):
            dets.append({"image_id": i, "category_id": 1, "score": float(rng.random()),
                         "bbox": (np.array([4.0, 4.0, 20.0, 20.0])
                                  + rng.normal(0, 3, 4)).tolist()})
        if i > 1:
            dets.append({"image_id": i, "category_id": 3, "score": 0.6,
                         "bbox": [30.0, 30.0, 9.0, 9.0]})
        dets.append({"image_id": i, "category_id": 5, "score": 0.7,
                     "bbox": [40.0, 40.0, 9.0, 9.0]})
    anns += [{"id": 90, "image_id": 1, "category_id": 2, "bbox": [30.0, 30.0, 10.0, 10.0],
              "area": 100.0},
             {"id": 91, "image_id": 1, "category_id": 3, "bbox": [40.0, 0.0, 10.0, 10.0],
              "area": 100.0},
             {"id": 92, "image_id": 2, "category_id": 4, "bbox": [40.0, 0.0, 10.0, 10.0],
              "area": 100.0},
             {"id": 93, "image_id": 2, "category_id": 5, "bbox": [0.0, 40.0, 10.0, 10.0],
              "area": 100.0}]
    dets.append({"image_id": 1, "category_id": 2, "score": 0.55, "bbox": [30, 30, 10, 9]})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": c, "frequency": "r"} for c in range(1, 6)]}
    iso = detection.DetectionCalibrator(method="isotonic").fit(gt, dets)
    np.testing.assert_array_equal(iso.n_train_[1:], [1, 11, 0, 1])
    assert iso.models_["2"] == {"constant": 0.9}  # one detection: its target (IoU 0.9)
    assert iso.models_["3"] == {"constant": 0.0}  # only false positives
    assert iso.models_["5"] == {"constant": 0.0}  # one TP of IoU 0 (tau = 0)
    assert "4" not in iso.models_  # no training data: the identity
    assert np.isnan(iso.lower_thresholds_[2])  # no TP: keep everything
    np.testing.assert_array_equal(iso.predict_scores([4, 4], [0.3, 0.8]), [0.3, 0.8])
    platt = detection.DetectionCalibrator(method="platt").fit(gt, dets)
    assert platt.models_["2"] is None and platt.models_["3"] == {"constant": 0.0}
    temp = detection.DetectionCalibrator(method="temperature").fit(gt, dets)
    assert temp.models_["2"] is None and temp.models_["3"] is None
    pooled = detection.DetectionCalibrator(method="isotonic", min_class_detections=2).fit(
        gt, dets)
    alone = detection.DetectionCalibrator(method="isotonic", classwise=False).fit(gt, dets)
    grid = np.linspace(0, 1, 11)
    for c in (2, 4, 5):  # fewer than 2 training detections: the pooled calibrator
        np.testing.assert_array_equal(pooled.predict_scores(np.full(11, c), grid),
                                      alone.predict_scores(np.full(11, c), grid))


def test_calibrator_masks_on_lvis(data):
    gt, dets = data
    cal = detection.DetectionCalibrator(iou_type="segm").fit(gt, dets)
    m = detection.match(gt, dets, iou_type="segm")
    np.testing.assert_array_equal(cal.lower_thresholds_,
                                  detection.lrp_optimal_thresholds(m)[0])
    assert len(cal.transform(dets).mask) > 0


# --------------------------------------------------------------------------------------
# bootstrap, shards, CLI
# --------------------------------------------------------------------------------------


def test_bootstrap_equals_literal_resamples(data):
    gt, dets = data
    kw = {"ap": True}
    res = detection.evaluate(gt, dets, n_bootstrap=3, random_state=2, return_resamples=True,
                             **kw)
    counts = image_resample_counts(len(gt["images"]), 3, 2)
    for b in range(3):
        ref = detection.evaluate(*literal_resample_json(gt, dets, counts[b]), **kw)
        for key, value in ref.items():
            assert res["resamples"][key][b] == pytest.approx(value, abs=1e-12, nan_ok=True)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_shards_equal_one_machine(data, iou_type):
    gt, dets = data
    g = detection.load_gt(gt, iou_type=iou_type)
    d = detection.load_dets(dets, iou_type=iou_type, gt=g)
    ids = np.unique(d.image_id)
    shards = [d.subset(np.isin(d.image_id, ids[k::2])) for k in range(2)]
    merged = detection.match_shards(g, shards, taus=(0.0, 0.5), coco=True, iou_type=iou_type)
    whole = detection.Detections.concatenate(shards)
    assert merged.dataset == "lvis"
    assert merged.evaluate(g, ap=True) == detection.evaluate(g, whole, ap=True,
                                                             iou_type=iou_type)
    assert merged.lvis_summary(g) == detection.lvis_summary(g, whole, iou_type=iou_type)
    with pytest.raises(ValueError, match="lvis_summary"):
        merged.coco_summary(g)


def test_dask_equals_one_machine(data, tmp_path):
    distributed = pytest.importorskip("distributed")
    from calibkit.detection import dask as ckdask

    gt, dets = data
    ids = sorted({r["image_id"] for r in dets})
    files = []
    for k in range(2):
        path = tmp_path / f"r{k}.json"
        path.write_text(json.dumps([r for r in dets if r["image_id"] in ids[k::2]]))
        files.append(str(path))
    whole = detection.Detections.concatenate([detection.load_dets(f) for f in files])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        res = ckdask.evaluate(gt, files, summary=True, ap=True)
        cal = ckdask.fit(detection.DetectionCalibrator(min_class_detections=3), gt, files)
    summary = res.pop("lvis_summary")
    assert res == detection.evaluate(gt, whole, ap=True)
    assert summary == detection.lvis_summary(gt, whole)
    single = detection.DetectionCalibrator(min_class_detections=3).fit(gt, whole)
    np.testing.assert_array_equal(cal.transform(whole).score, single.transform(whole).score)


def test_cli_on_lvis(tmp_path):
    from calibkit.detection.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["evaluate", "--gt", str(GT_PATH), "--dets", str(DETS_PATH), "--ap",
                     "--json"]) == 0
    got = json.loads(out.getvalue())
    assert got["lvis_summary"] == detection.lvis_summary(GT_PATH, DETS_PATH)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["evaluate", "--gt", str(GT_PATH), "--dets", str(DETS_PATH), "--ap"]) == 0
    assert "LVIS's federated rules" in out.getvalue() and "catIds=  r" in out.getvalue()
    dest = tmp_path / "out.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["calibrate", "--gt-val", str(GT_PATH), "--dets-val", str(DETS_PATH),
                     "--dets", str(DETS_PATH), "--out", str(dest),
                     "--min-class-detections", "3"]) == 0
    assert json.loads(dest.read_text())


# --------------------------------------------------------------------------------------
# hostile LVIS fields
# --------------------------------------------------------------------------------------


def test_lvis_fields_of_the_wrong_type():
    gt, dets = _toy()
    bad = copy.deepcopy(gt)
    bad["images"][1]["neg_category_ids"] = ["2"]
    with pytest.raises(ValueError, match=r"images\[1\].neg_category_ids.*list of integer"):
        detection.load_gt(bad)
    bad = copy.deepcopy(gt)
    bad["images"][0]["not_exhaustive_category_ids"] = 3
    with pytest.raises(ValueError, match="not_exhaustive_category_ids"):
        detection.load_gt(bad)
    bad = copy.deepcopy(gt)
    del bad["images"][1]["not_exhaustive_category_ids"]
    with pytest.raises(ValueError, match=r"images\[1\] \(id 2\) has no "
                                         "not_exhaustive_category_ids"):
        detection.load_gt(bad)
    bad = copy.deepcopy(gt)
    bad["images"][0]["neg_category_ids"] = [99]
    with pytest.raises(ValueError, match="category 99 in neg_category_ids"):
        detection.load_gt(bad)
    bad = copy.deepcopy(gt)
    bad["annotations"][0]["ignore"] = "yes"
    with pytest.raises(ValueError, match="ignore must be 0, 1"):
        detection.load_gt(bad)
    bad = copy.deepcopy(gt)
    bad["categories"][2]["frequency"] = "rare"
    assert np.isfinite(detection.evaluate(bad, dets)["lrp"])  # only the summary needs it
    with pytest.raises(ValueError, match="category 3 has frequency 'rare'"):
        detection.lvis_summary(bad, dets)
    del bad["categories"][2]["frequency"]
    with pytest.raises(ValueError, match="category 3 has frequency None"):
        detection.lvis_summary(bad, dets)
    coco = {k: v for k, v in gt.items()}
    coco["images"] = [{"id": 1}, {"id": 2}]
    with pytest.raises(ValueError, match="dataset='lvis' needs LVIS ground truth"):
        detection.evaluate(coco, dets, dataset="lvis")
    with pytest.raises(ValueError, match="dataset='lvis' needs LVIS ground truth"):
        detection.lvis_summary(coco, dets)
    with pytest.raises(ValueError, match="dataset"):
        detection.match(gt, dets, dataset="objects365")
    with pytest.raises(ValueError, match="netcal"):
        detection.evaluate(gt, dets, dece_matching="netcal_argmax_any_class")


def test_inputs_not_mutated(data):
    gt, dets = data
    g0, d0 = copy.deepcopy(gt), copy.deepcopy(dets)
    detection.lvis_summary(gt, dets, iou_type="segm")
    detection.DetectionCalibrator().fit_transform(gt, dets)
    assert gt == g0 and dets == d0
