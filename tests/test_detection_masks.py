"""Instance masks (``iou_type="segm"``): reading, mask IoU, matching, the COCO summary, the
calibration metrics, thresholds, the calibrator, OCE, bootstrap, shards and the CLI.

References: pycocotools (live): ``COCO.annToRLE`` for the conversion of every mask form,
``COCOeval(iouType="segm")`` for the twelve numbers and ``evalImgs`` (``dtMatches`` /
``dtIgnore``) for the per-detection matches, on ``tests/data/masks_fixture`` (polygons with
one or several parts, uncompressed and compressed RLE in ground truth and results, crowd
regions, all area ranges, score ties, more than 100 detections of one class on one image;
written by ``tests/data/make_mask_fixtures.py``); torchvision's own mask preparation
(``references/detection/coco_eval.py``) written out below; literal bootstrap resamples.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest

from calibkit import detection
from calibkit.detection.bootstrap import image_resample_counts
from calibkit.detection.masks import Masks, encode_binary_masks

mask_utils = pytest.importorskip("pycocotools.mask")

FIXTURE = Path(__file__).parent / "data" / "masks_fixture"
GT_PATH = FIXTURE / "gt.json"
DETS_PATH = FIXTURE / "results.json"


@pytest.fixture(scope="module")
def data():
    return json.loads(GT_PATH.read_text()), json.loads(DETS_PATH.read_text())


def _cocoeval(gt, dets, iou_type="segm", **params):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)  # pycocotools writes into its inputs
        g.createIndex()
        d = g.loadRes(copy.deepcopy(dets))
        e = COCOeval(g, d, iou_type)
        for key, value in params.items():
            setattr(e.params, key, value)
        e.evaluate()
        e.accumulate()
        if not params:
            e.summarize()
    return e


def _compressed_only(dets):
    """The results whose mask is a compressed RLE, without boxes (torchvision's form)."""
    return [{k: v for k, v in r.items() if k != "bbox"} for r in dets
            if isinstance(r["segmentation"], dict) and isinstance(r["segmentation"]["counts"],
                                                                  str)]


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------


def test_fixture_has_every_form(data):
    gt, dets = data
    forms = {("poly" if isinstance(a["segmentation"], list) else
              "rle" if isinstance(a["segmentation"]["counts"], str) else "urle", a["iscrowd"])
             for a in gt["annotations"]}
    assert {("poly", 0), ("rle", 0), ("urle", 0), ("urle", 1)} <= forms
    assert any(len(a["segmentation"]) > 1 for a in gt["annotations"]
               if isinstance(a["segmentation"], list))
    areas = np.array([a["area"] for a in gt["annotations"]])
    assert (areas < 32**2).any() and ((areas > 32**2) & (areas < 96**2)).any() and (
        areas > 96**2).any()
    rforms = {"poly" if isinstance(r["segmentation"], list) else
              "rle" if isinstance(r["segmentation"]["counts"], str) else "urle" for r in dets}
    assert rforms == {"poly", "rle", "urle"}


def test_masks_equal_pycocotools_conversion(data):
    """Every ground-truth and result mask equals pycocotools' annToRLE of it."""
    from pycocotools.coco import COCO

    gt, dets = data
    g = detection.load_gt(gt, iou_type="segm")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        res = coco.loadRes(copy.deepcopy(dets))
    ref = [coco.annToRLE(a) for a in coco.dataset["annotations"]]
    for ours, r in zip(g.ann_segm.rles(), ref, strict=True):
        c = r["counts"] if isinstance(r["counts"], bytes) else r["counts"].encode()
        assert ours["counts"] == c and list(ours["size"]) == list(r["size"])
    d = detection.load_dets(dets, iou_type="segm", gt=gt)
    ref = [res.annToRLE(a) for a in res.dataset["annotations"]]
    for ours, r in zip(d.mask.rles(), ref, strict=True):
        c = r["counts"] if isinstance(r["counts"], bytes) else r["counts"].encode()
        assert ours["counts"] == c
    np.testing.assert_array_equal(g.ann_segm.area(), [a["area"] for a in gt["annotations"]])
    # the file reader (block-wise) gives the same columns as the in-memory reader
    f = detection.load_dets(DETS_PATH, iou_type="segm", gt=GT_PATH)
    for name in ("image_id", "category_id", "score", "box", "area"):
        np.testing.assert_array_equal(getattr(f, name), getattr(d, name))
    assert f.mask.rles() == d.mask.rles()


def test_areas_follow_load_res(data):
    """A result with a bbox has the box area; one without has its mask area and box."""
    gt, dets = data
    d = detection.load_dets(dets, iou_type="segm", gt=gt)
    box = np.array([r["bbox"] for r in dets])
    np.testing.assert_array_equal(d.area, box[:, 2] * box[:, 3])
    bare = _compressed_only(dets)
    d2 = detection.load_dets(bare, iou_type="segm")
    rles = [{"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"]}
            for r in bare]
    np.testing.assert_array_equal(d2.area, mask_utils.area(rles))
    np.testing.assert_array_equal(d2.box, mask_utils.toBbox(rles))
    # to_coco writes what reads back the same
    again = detection.load_dets(d2.to_coco(), iou_type="segm")
    np.testing.assert_array_equal(again.area, d2.area)
    assert again.mask.rles() == d2.mask.rles()


def test_masks_table_operations():
    rng = np.random.default_rng(0)
    m = rng.random((6, 9, 7)) > 0.5
    t = encode_binary_masks(m)
    ref = [mask_utils.encode(np.asfortranarray(x.astype(np.uint8))) for x in m]
    assert [r["counts"] for r in t.rles()] == [r["counts"] for r in ref]
    np.testing.assert_array_equal(t.area(), m.sum(axis=(1, 2)))
    many = Masks.concatenate([t] * 50)  # more masks than pycocotools' area takes at once
    np.testing.assert_array_equal(many.area(), np.tile(m.sum(axis=(1, 2)), 50))
    sub = t.subset(np.array([4, 1]))
    assert sub.rles() == [t.rles()[4], t.rles()[1]]
    assert Masks.concatenate([t.subset([0, 1]), t.subset([2, 3, 4, 5])]).rles() == t.rles()
    assert Masks.from_rles(ref).rles() == t.rles()


# --------------------------------------------------------------------------------------
# parity with COCOeval(iouType="segm")
# --------------------------------------------------------------------------------------


def test_summary_equals_cocoeval_segm(data):
    gt, dets = data
    e = _cocoeval(gt, dets)
    ours = detection.coco_summary(GT_PATH, DETS_PATH, iou_type="segm")
    np.testing.assert_allclose(list(ours.values()), e.stats, rtol=0, atol=1e-12)
    assert min(e.stats) > -1  # every area range has objects


def test_summary_without_boxes_equals_cocoeval(data):
    gt, dets = data
    bare = _compressed_only(dets)
    e = _cocoeval(gt, bare)
    ours = detection.coco_summary(gt, bare, iou_type="segm")
    np.testing.assert_allclose(list(ours.values()), e.stats, rtol=0, atol=1e-12)


def test_box_summary_of_mask_files_equals_cocoeval(data):
    gt, dets = data
    e = _cocoeval(gt, dets, "bbox")
    np.testing.assert_allclose(list(detection.coco_summary(gt, dets).values()), e.stats,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.5, 0.75])
def test_matches_equal_eval_imgs(data, tau):
    gt, dets = data
    e = _cocoeval(gt, dets, iouThrs=np.array([tau]), areaRng=[[0, 1e10]],
                  areaRngLbl=["all"], maxDets=[100])
    n = len(dets)
    tp, ig, ev = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    for r in e.evalImgs:
        if r is None:
            continue
        ids = np.asarray(r["dtIds"], int) - 1
        ev[ids] = True
        ig[ids] = r["dtIgnore"][0].astype(bool)
        tp[ids] = (r["dtMatches"][0] > 0) & ~ig[ids]
    m = detection.match(gt, dets, tau=tau, iou_type="segm")
    np.testing.assert_array_equal(m.evaluated, ev)
    np.testing.assert_array_equal(m.tp, tp)
    np.testing.assert_array_equal(m.ignored, ig)
    assert (~m.evaluated).any() and m.ignored.any()  # the cap and the crowd regions
    # the matched IoU is pycocotools' mask IoU of the pair
    g = detection.load_gt(gt, iou_type="segm")
    d = detection.load_dets(dets, iou_type="segm", gt=gt)
    for k in np.flatnonzero(m.tp)[:40]:
        same = np.flatnonzero((g.ann_image_id == d.image_id[k])
                              & (g.ann_category_id == d.category_id[k]) & ~g.ann_crowd)
        ious = mask_utils.iou(d.mask.rles([k]), g.ann_segm.rles(same), [0] * len(same))
        assert m.iou[k] in ious[0]


def test_average_precision_and_per_class(data):
    gt, dets = data
    e = _cocoeval(gt, dets, areaRng=[[0, 1e10]], areaRngLbl=["all"], maxDets=[100])
    q = e.eval["precision"][:, :, :, 0, 0]
    ref = np.array([q[:, :, k][q[:, :, k] > -1].mean() if (q[:, :, k] > -1).any() else np.nan
                    for k in range(q.shape[2])])
    ours = detection.average_precision_per_class(gt, dets, iou_type="segm")
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert detection.average_precision(gt, dets, iou_type="segm") == pytest.approx(
        np.nanmean(ref), abs=1e-12)


# --------------------------------------------------------------------------------------
# metrics, thresholds, calibrator, OCE on masks
# --------------------------------------------------------------------------------------


def _rect_masks(gt, dets):
    """The same data with every mask the filled box (integer boxes), so that mask IoU equals
    box IoU."""
    gt, dets = copy.deepcopy(gt), copy.deepcopy(dets)
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    for a in gt["annotations"] + dets:
        h, w = sizes[a["image_id"]]
        x, y, bw, bh = (float(round(v)) for v in a["bbox"])
        x, y = min(max(x, 0), w - 2), min(max(y, 0), h - 2)
        bw, bh = max(min(bw, w - x), 1.0), max(min(bh, h - y), 1.0)
        a["bbox"] = [x, y, bw, bh]
        m = np.zeros((h, w), np.uint8)
        m[int(y):int(y + bh), int(x):int(x + bw)] = 1
        r = mask_utils.encode(np.asfortranarray(m))
        a["segmentation"] = {"size": [h, w], "counts": r["counts"].decode()}
        a["area"] = bw * bh
    return gt, dets


def test_rectangular_masks_give_box_results(data):
    gt, dets = _rect_masks(*data)
    for tau in (0.0, 0.5):
        mb = detection.match(gt, dets, tau=tau)
        ms = detection.match(gt, dets, tau=tau, iou_type="segm")
        np.testing.assert_array_equal(ms.tp, mb.tp)
        np.testing.assert_array_equal(ms.ignored, mb.ignored)
        np.testing.assert_allclose(ms.iou, mb.iou, rtol=0, atol=1e-12)
    rb = detection.evaluate(gt, dets, ap=True)
    rs = detection.evaluate(gt, dets, ap=True, iou_type="segm")
    for key in rb:
        assert rs[key] == pytest.approx(rb[key], abs=1e-12, nan_ok=True), key
    assert detection.oce(gt, dets, iou_type="segm") == pytest.approx(
        detection.oce(gt, dets), abs=1e-12)
    assert detection.match_netcal(gt, dets, iou_type="segm").tolist() == (
        detection.match_netcal(gt, dets).tolist())


def test_evaluate_segm_equals_metrics_of_segm_matches(data):
    gt, dets = data
    res = detection.evaluate(gt, dets, iou_type="segm", ap=True)
    m0, m5 = detection.match_many(gt, dets, [0.0, 0.5], iou_type="segm")
    assert res["laece"] == detection.laece(m0)
    assert res["laace"] == detection.laace(m0)
    assert res["lrp"] == detection.lrp(m0)["lrp"]
    assert res["dece"] == detection.dece_pooled(m5)
    assert res["ap"] == detection.average_precision(gt, dets, iou_type="segm")
    # by definition: LaACE from the matched mask IoUs (ignored detections target 0)
    cls = m0.class_index
    per = []
    for k in range(m0.n_categories):
        sel = m0.evaluated & (cls == k)
        if m0.npig[k] and (sel & m0.valid).any():
            per.append(np.mean(np.abs(m0.dets.score[sel] - m0.iou[sel])))
    per = [p for p in per if p != 0]
    assert res["laace"] == pytest.approx(np.mean(per), abs=1e-12)
    assert res != detection.evaluate(gt, dets)  # boxes give other numbers
    thr, _ = detection.lrp_optimal_thresholds(m0)
    assert np.isfinite(thr).any()


def test_calibrator_on_masks(data, tmp_path):
    gt, dets = data
    cal = detection.DetectionCalibrator(method="isotonic", iou_type="segm").fit(gt, dets)
    m = detection.match(gt, dets, iou_type="segm")
    np.testing.assert_array_equal(cal.lower_thresholds_,
                                  detection.lrp_optimal_thresholds(m)[0])
    with pytest.raises(ValueError, match="polygon, which needs"):
        cal.transform(dets)  # polygon results need their image sizes
    out = cal.transform(dets, gt=gt)
    assert out.mask is not None and len(out.mask) == len(out)
    d = detection.load_dets(dets, iou_type="segm", gt=gt)
    rows = [int(np.flatnonzero((d.image_id == i) & (d.box == b).all(axis=1))[0])
            for i, b in zip(out.image_id, out.box, strict=True)]
    assert out.mask.rles() == d.mask.rles(rows)
    res = detection.evaluate(gt, out, iou_type="segm")
    assert np.isfinite(res["laece"])
    # box calibration of the same files differs (other IoU targets)
    box = detection.DetectionCalibrator(method="isotonic").fit(gt, dets)
    grid = np.linspace(0, 1, 101)
    assert any(not np.array_equal(box.predict_scores(np.full(101, c), grid),
                                  cal.predict_scores(np.full(101, c), grid))
               for c in cal.category_ids_)
    path = tmp_path / "cal.json"
    cal.save(path)
    again = detection.DetectionCalibrator.load(path)
    assert again.iou_type == "segm"
    np.testing.assert_array_equal(again.transform(dets, gt=gt).score, out.score)
    with pytest.raises(ValueError, match="iou_type"):
        detection.DetectionCalibrator(iou_type="mask").fit(gt, dets)


def test_oce_masks_by_definition(data):
    """OCE with mask IoU against a slow loop over objects (mean aggregation)."""
    gt, dets = data
    g = detection.load_gt(gt, iou_type="segm")
    d = detection.load_dets(dets, iou_type="segm", gt=gt)
    taus = (0.5, 0.75)
    briers = []
    for k in np.flatnonzero(~g.ann_crowd):
        mine = np.flatnonzero(d.image_id == g.ann_image_id[k])
        ious = (mask_utils.iou(d.mask.rles(mine), g.ann_segm.rles([k]), [0])[:, 0]
                if len(mine) else np.zeros(0))
        per = []
        for tau in taus:
            hit = mine[ious >= tau]
            if not len(hit):
                per.append(1.0)
                continue
            s = d.score[hit].mean()
            labels, counts = np.unique(d.category_id[hit], return_counts=True)
            label = labels[np.argmax(counts)]
            per.append(2 * (1 - s) ** 2 if label == g.ann_category_id[k] else 2 * s**2)
        briers.append(per)
    ref = float(np.mean(np.mean(briers, axis=0)))
    assert detection.oce(gt, dets, iou_type="segm", iou_thresholds=taus) == pytest.approx(
        ref, abs=1e-12)


# --------------------------------------------------------------------------------------
# torchvision Mask R-CNN outputs
# --------------------------------------------------------------------------------------


def _torchvision_reference(masks):
    """torchvision's references/detection/coco_eval.py, prepare_for_coco_segmentation."""
    masks = masks > 0.5
    return [mask_utils.encode(np.array(m[0, :, :, np.newaxis], dtype=np.uint8, order="F"))[0]
            for m in masks]


def test_torchvision_masks():
    rng = np.random.default_rng(3)
    h, w = 20, 30
    outputs, ids = [], [5, 9]
    for n in (3, 0):
        boxes = np.column_stack([rng.uniform(0, 10, n), rng.uniform(0, 8, n),
                                 rng.uniform(12, 30, n), rng.uniform(10, 20, n)])
        outputs.append({"boxes": boxes.astype(np.float32), "labels": rng.integers(1, 3, n),
                        "scores": rng.random(n).astype(np.float32),
                        "masks": rng.random((n, 1, h, w)).astype(np.float32)})
    d = detection.from_torchvision(outputs, ids, iou_type="segm")
    ref = _torchvision_reference(outputs[0]["masks"])
    assert [r["counts"] for r in d.mask.rles()] == [r["counts"] for r in ref]
    np.testing.assert_array_equal(d.area, mask_utils.area(ref))
    assert detection.load_dets(outputs, ids, iou_type="segm").mask.rles() == d.mask.rles()
    # against ground truth of the right size
    gt = {"images": [{"id": 5, "height": h, "width": w}, {"id": 9, "height": h, "width": w}],
          "categories": [{"id": 1}, {"id": 2}],
          "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": [0, 0, 5, 5],
                           "area": 25, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]}]}
    assert np.isfinite(detection.evaluate(gt, d, iou_type="segm")["lrp"])
    with pytest.raises(ValueError, match="masks"):
        detection.from_torchvision([{k: v for k, v in outputs[0].items() if k != "masks"}],
                                   [5], iou_type="segm")
    bad = dict(outputs[0], masks=outputs[0]["masks"][:2])
    with pytest.raises(ValueError, match=r"outputs\[0\]\['masks'\] must have shape"):
        detection.from_torchvision([bad], [5], iou_type="segm")
    wrong = {"images": [{"id": 5, "height": h + 1, "width": w}],
             "categories": [{"id": 1}, {"id": 2}], "annotations": []}
    with pytest.raises(ValueError, match="has a mask of size"):
        detection.evaluate(wrong, d.subset(d.image_id == 5), iou_type="segm",
                           dataset="coco")


# --------------------------------------------------------------------------------------
# bootstrap, shards, Dask, CLI
# --------------------------------------------------------------------------------------


def literal_resample_json(gt, dets, counts_row):
    """The resampled data set as json: images in ascending id order, image ``i`` repeated
    ``counts_row[i]`` times under new consecutive ids, with its annotations and results."""
    ids = sorted(im["id"] for im in gt["images"])
    by_id = {im["id"]: im for im in gt["images"]}
    images, anns, out = [], [], []
    new = 0
    for i, old in enumerate(ids):
        for _ in range(counts_row[i]):
            new += 1
            images.append({**by_id[old], "id": new})
            anns += [{**a, "image_id": new} for a in gt["annotations"] if a["image_id"] == old]
            out += [{**r, "image_id": new} for r in dets if r["image_id"] == old]
    for k, a in enumerate(anns):
        a["id"] = k + 1
    return {**gt, "images": images, "annotations": anns}, out


def test_bootstrap_segm_equals_literal_resamples(data):
    gt, dets = data
    kw = {"iou_type": "segm", "ap": True}
    res = detection.evaluate(gt, dets, n_bootstrap=3, random_state=4, return_resamples=True,
                             **kw)
    counts = image_resample_counts(len(gt["images"]), 3, 4)
    for b in range(3):
        ref = detection.evaluate(*literal_resample_json(gt, dets, counts[b]), **kw)
        for key, value in ref.items():
            assert res["resamples"][key][b] == pytest.approx(value, abs=1e-12, nan_ok=True)


def test_shards_segm_equal_one_machine(data):
    gt, dets = data
    g = detection.load_gt(gt, iou_type="segm")
    d = detection.load_dets(dets, iou_type="segm", gt=g)
    ids = np.unique(d.image_id)
    shards = [d.subset(np.isin(d.image_id, ids[k::3])) for k in range(3)]
    states = [detection.MatchState.from_shard(g, s, taus=(0.0, 0.5), coco=True,
                                              iou_type="segm") for s in shards]
    wire = [json.loads(json.dumps(s.to_dict())) for s in states]
    merged = detection.MatchState.merge([detection.MatchState.from_dict(w) for w in wire])
    whole = detection.Detections.concatenate(shards)
    assert merged.evaluate(g, ap=True, iou_type="segm") == detection.evaluate(
        g, whole, ap=True, iou_type="segm")
    assert merged.coco_summary(g) == detection.coco_summary(g, whole, iou_type="segm")
    assert merged.detections().mask.rles() == whole.mask.rles()
    with pytest.raises(ValueError, match="settings"):
        detection.MatchState.merge([states[0], detection.MatchState.from_shard(
            g, shards[1], taus=(0.0, 0.5), coco=True)])


def test_dask_segm_equals_one_machine(data, tmp_path):
    distributed = pytest.importorskip("distributed")
    from calibkit.detection import dask as ckdask

    gt, dets = data
    ids = sorted({r["image_id"] for r in dets})
    files = []
    for k in range(2):
        path = tmp_path / f"r{k}.json"
        path.write_text(json.dumps([r for r in dets if r["image_id"] in ids[k::2]]))
        files.append(str(path))
    whole = detection.Detections.concatenate(
        [detection.load_dets(f, iou_type="segm", gt=gt) for f in files])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        res = ckdask.evaluate(gt, files, iou_type="segm", summary=True)
        cal = ckdask.fit(detection.DetectionCalibrator(iou_type="segm"), gt, files)
    summary = res.pop("coco_summary")
    assert res == detection.evaluate(gt, whole, iou_type="segm")
    assert summary == detection.coco_summary(gt, whole, iou_type="segm")
    single = detection.DetectionCalibrator(iou_type="segm").fit(gt, whole)
    np.testing.assert_array_equal(cal.transform(whole).score, single.transform(whole).score)


def test_cli_iou_type_segm(tmp_path):
    from calibkit.detection.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["evaluate", "--gt", str(GT_PATH), "--dets", str(DETS_PATH),
                     "--iou-type", "segm", "--ap", "--json"]) == 0
    got = json.loads(out.getvalue())
    assert got["coco_summary"] == detection.coco_summary(GT_PATH, DETS_PATH, iou_type="segm")
    assert got["laece"] == detection.evaluate(GT_PATH, DETS_PATH, iou_type="segm",
                                              ap=True)["laece"]
    dest = tmp_path / "cal.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["calibrate", "--gt-val", str(GT_PATH), "--dets-val", str(DETS_PATH),
                     "--dets", str(DETS_PATH), "--gt", str(GT_PATH), "--out", str(dest),
                     "--iou-type", "segm"]) == 0
    written = json.loads(dest.read_text())
    assert written and all("segmentation" in r for r in written)


# --------------------------------------------------------------------------------------
# hostile masks: clear errors naming the item and the field
# --------------------------------------------------------------------------------------


def _one(seg, **image):
    gt = {"images": [{"id": 1, "height": 4, "width": 5, **image}], "categories": [{"id": 1}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2],
                           "area": 4, "segmentation": seg}]}
    return gt


@pytest.mark.parametrize("seg,match", [
    ({"size": [4, 5], "counts": "abc"}, "ends inside a number"),
    ({"size": [4, 5], "counts": "0~"}, "outside 0 to o"),
    ({"size": [4, 5], "counts": "04"}, "do not add up"),
    ({"size": [4, 5], "counts": "0ooooooo0"}, "more than 6 characters"),
    ({"size": [4, 5], "counts": "3é"}, "ASCII"),
    ({"size": [4, 5], "counts": [3, 4, 12]}, "add up to 19"),
    ({"size": [4, 5], "counts": [3, -4, 21]}, "non-negative"),
    ({"size": [4, 5], "counts": [3.5, 16.5]}, "non-negative integers"),
    ({"size": [4], "counts": [20]}, "size must be"),
    ({"size": [0, 5], "counts": []}, "not a mask size"),
    ({"size": [4, 5], "counts": 7}, "counts must be"),
    ({"counts": [20]}, "size must be"),
    ({"size": [4, 5]}, "RLE dict"),
    ([[0, 0, 1, 1, 2]], "even number"),
    ([[0, 0, 1]], "even number"),
    ([], "empty list"),
    ([[0, 0, 1, 1, float("nan"), 2]], "NaN"),
    ([[0, 0, 1, 1, 1e9, 2]], "far outside"),
    ([["a", 0, 1, 1, 2, 2]], "list of numbers"),
    ([5], "must be a polygon"),
    ("mask", "must be a list of polygons"),
])
def test_malformed_masks(seg, match, tmp_path):
    with pytest.raises(ValueError, match=match) as exc:
        detection.load_gt(_one(seg), iou_type="segm")
    assert "segmentation" in str(exc.value)
    dets = [{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": seg}]
    with pytest.raises(ValueError, match=match):
        detection.load_dets(dets, iou_type="segm", gt=_one([[0, 0, 1, 0, 1, 1]]))
    if isinstance(seg, (list, dict)) and "nan" not in repr(seg):  # the json file readers
        path = tmp_path / "r.json"
        path.write_text(json.dumps(dets * 3))
        with pytest.raises(ValueError, match=match) as exc:
            detection.load_dets(path, iou_type="segm", gt=_one([[0, 0, 1, 0, 1, 1]]))
        assert "r.json[0].segmentation" in str(exc.value)
        path.write_text(json.dumps(_one(seg)))
        with pytest.raises(ValueError, match=match):
            detection.load_gt(path, iou_type="segm")


def test_masks_of_the_wrong_size():
    rle = mask_utils.encode(np.asfortranarray(np.ones((4, 6), np.uint8)))
    seg = {"size": [4, 6], "counts": rle["counts"].decode()}
    with pytest.raises(ValueError, match=r"annotations\[0\].segmentation has size \[4, 6\]"):
        detection.load_gt(_one(seg), iou_type="segm")
    gt = _one([[0, 0, 3, 0, 3, 3]])
    dets = [{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": seg}]
    with pytest.raises(ValueError, match=r"dets\[0\].segmentation has size"):
        detection.load_dets(dets, iou_type="segm", gt=gt)
    with pytest.raises(ValueError, match="detection 0 .* has a mask of size"):
        detection.evaluate(gt, detection.load_dets(dets, iou_type="segm"), iou_type="segm")
    # an image without a size: the masks of its annotations set it
    nosize = {"images": [{"id": 1}], "categories": [{"id": 1}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                               "area": 1, "segmentation": {"size": [4, 5], "counts": [0, 20]}}]}
    with pytest.raises(ValueError, match="has a mask of size"):
        detection.match(nosize, dets, iou_type="segm")


def test_missing_masks_and_sizes():
    gt = _one([[0, 0, 3, 0, 3, 3]])
    with pytest.raises(ValueError, match="needs the image's height and width"):
        detection.load_gt(_one([[0, 0, 3, 0, 3, 3]], height=None), iou_type="segm")
    with pytest.raises(ValueError, match="segmentation"):
        detection.load_dets([{"image_id": 1, "category_id": 1, "score": 0.5,
                              "bbox": [0, 0, 1, 1]}], iou_type="segm")
    no_seg = {**gt, "annotations": [{k: v for k, v in gt["annotations"][0].items()
                                     if k != "segmentation"}]}
    with pytest.raises(ValueError, match="no segmentation"):
        detection.load_gt(no_seg, iou_type="segm")
    g = detection.load_gt(gt)
    with pytest.raises(ValueError, match="read without its masks"):
        detection.evaluate(g, [], iou_type="segm")
    d = detection.load_dets([{"image_id": 1, "category_id": 1, "score": 0.5,
                              "bbox": [0, 0, 1, 1]}])
    with pytest.raises(ValueError, match="dets has no masks"):
        detection.evaluate(gt, d, iou_type="segm")
    with pytest.raises(ValueError, match="iou_type"):
        detection.evaluate(gt, d, iou_type="mask")
    with pytest.raises(ValueError, match="polygon, which needs"):
        detection.load_dets([{"image_id": 1, "category_id": 1, "score": 0.5,
                              "segmentation": [[0, 0, 1, 0, 1, 1]]}], iou_type="segm")


def test_inputs_not_mutated(data):
    gt, dets = data
    g0, d0 = copy.deepcopy(gt), copy.deepcopy(dets)
    detection.evaluate(gt, dets, iou_type="segm", ap=True)
    detection.DetectionCalibrator(iou_type="segm").fit_transform(gt, dets)
    assert gt == g0 and dets == d0


def test_compiled_mask_iou_equals_pycocotools_bit_for_bit():
    """The compiled ``rleIou`` (decode, boxes, box filter, run merge, crowd area) against
    ``pycocotools.mask.iou`` on random masks: empty, full, boxes with noise, crowd or not."""
    mu = pytest.importorskip("pycocotools.mask")
    from calibkit.detection import _ckernels
    from calibkit.detection.masks import Masks

    rng = np.random.default_rng(0)

    def random_masks(n, h, w):
        out = []
        for _ in range(n):
            m = np.zeros((h, w), np.uint8)
            kind = rng.integers(0, 4)
            if kind == 1:
                m[:] = 1
            elif kind > 1:
                y0, x0 = rng.integers(0, h), rng.integers(0, w)
                m[y0:rng.integers(y0, h + 1), x0:rng.integers(x0, w + 1)] = 1
                m[rng.random((h, w)) < 0.1] ^= 1
            out.append(mu.encode(np.asfortranarray(m)))
        return out

    for _ in range(40):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        d = random_masks(int(rng.integers(1, 12)), h, w)
        g = random_masks(int(rng.integers(1, 12)), h, w)
        crowd = rng.integers(0, 2, len(g)).astype(np.uint8)
        ref = np.asarray(mu.iou(d, g, crowd), np.float64).reshape(len(d), len(g))
        dm, gm = Masks.from_rles(d), Masks.from_rles(g)
        nd, ng = len(d), len(g)
        out = np.zeros(nd * ng)
        _ckernels.mask_iou_groups(
            dm.counts, dm.offsets, np.ascontiguousarray(dm.size), np.arange(nd),
            np.array([0]), np.array([nd]), gm.counts, gm.offsets, np.ascontiguousarray(gm.size),
            np.arange(ng), np.array([0]), np.array([ng]), crowd, np.array([0, nd * ng]), out,
            0, 1)
        np.testing.assert_array_equal(out.reshape(nd, ng).view(np.uint64),
                                      ref.view(np.uint64))


def test_compiled_mask_boxes_and_areas_equal_pycocotools():
    """``rle_box_area`` (pycocotools 2.0's ``rleToBbox`` and ``rleArea``) on canonical masks
    and on RLEs with empty runs (uncompressed counts with zeros), against ``toBbox`` and
    ``area``."""
    mu = pytest.importorskip("pycocotools.mask")
    from calibkit.detection import _ckernels
    from calibkit.detection.masks import Masks

    rng = np.random.default_rng(1)
    rles = []
    for _ in range(3000):
        h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        if rng.random() < 0.5:
            m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
            rles.append(mu.encode(np.asfortranarray(m)))
            continue
        counts, left = [], h * w
        while left > 0:
            c = int(rng.integers(0, min(left, 4) + 1))
            counts.append(c)
            left -= c
        rles.append(mu.frPyObjects({"size": [h, w], "counts": counts}, h, w))
    masks = Masks.from_rles(rles)
    box, area = np.zeros((len(rles), 4)), np.zeros(len(rles))
    _ckernels.rle_box_area(masks.counts, masks.offsets, np.ascontiguousarray(masks.size),
                           np.arange(len(rles)), box, area, 0, len(rles))
    np.testing.assert_array_equal(box, np.asarray(mu.toBbox(rles), np.float64))
    np.testing.assert_array_equal(area, masks.area())


def test_compiled_polygons_equal_frpyobjects_bit_for_bit():
    """pycocotools' ``rleFrPoly`` + ``rleToString`` compiled (the bulk path of polygon
    annotations) against ``frPyObjects`` on random polygons: fractional and integer
    coordinates, repeated points, points outside the image, star shapes."""
    mu = pytest.importorskip("pycocotools.mask")
    from calibkit.detection.masks import _polygon_strings

    rng = np.random.default_rng(0)
    polys, hws = [], []
    for _ in range(3000):
        h, w = int(rng.integers(1, 120)), int(rng.integers(1, 120))
        k = int(rng.integers(3, 16))
        kind = rng.random()
        if kind < 0.3:
            xy = rng.integers(-w, 2 * w, 2 * k).astype(float)
            xy[2:4] = xy[0:2]  # a repeated point
        elif kind < 0.6:
            xy = np.c_[rng.uniform(-w, 2 * w, k), rng.uniform(-h, 2 * h, k)].ravel()
        else:
            t = np.sort(rng.uniform(0, 2 * np.pi, k))
            r = rng.uniform(0, max(h, w) / 2, k)
            xy = np.c_[w / 2 + r * np.cos(t), h / 2 + r * np.sin(t)].ravel()
        polys.append(xy)
        hws.append((h, w))
    flat = np.concatenate(polys)
    ends = np.cumsum([len(p) for p in polys])
    starts = ends - [len(p) for p in polys]
    data, lengths = _polygon_strings(flat, starts, ends, np.array(hws, np.int64))
    pos = np.r_[0, np.cumsum(lengths)]
    for i, (p, (h, w)) in enumerate(zip(polys, hws, strict=True)):
        assert data[pos[i]:pos[i + 1]] == mu.frPyObjects([list(p)], h, w)[0]["counts"], i
