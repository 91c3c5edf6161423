"""Tests of detection.io: every input form gives the same internal table, and bad input
gives a clear error naming the problem (never a crash deep inside). The reference is the
COCO json itself, read field by field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calibkit import detection
from calibkit.detection.io import Detections

FIXTURE = Path(__file__).parent / "data" / "coco_fixture"
GT_PATH = FIXTURE / "instances_val2014_100.json"
DETS_PATH = FIXTURE / "instances_val2014_fakebbox100_results.json"


def test_load_paths_dicts_and_pycocotools_objects_agree():
    from pycocotools.coco import COCO

    raw_gt = json.loads(GT_PATH.read_text())
    raw = json.loads(DETS_PATH.read_text())
    g1, g2 = detection.load_gt(GT_PATH), detection.load_gt(raw_gt)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(GT_PATH))
        res = coco.loadRes(str(DETS_PATH))
    g3 = detection.load_gt(coco)
    for g in (g2, g3):
        np.testing.assert_array_equal(g1.ann_box, g.ann_box)
        np.testing.assert_array_equal(g1.category_ids, g.category_ids)
    assert g1.ann_crowd.sum() == sum(a["iscrowd"] for a in raw_gt["annotations"]) == 9
    d1, d2, d3 = (detection.load_dets(x) for x in (DETS_PATH, raw, res))
    for d in (d2, d3):
        np.testing.assert_array_equal(d1.box, d.box)
        np.testing.assert_array_equal(d1.score, d.score)
    np.testing.assert_array_equal(d1.score, [r["score"] for r in raw])
    assert d1.to_coco()[0] == {k: raw[0][k] for k in ("image_id", "category_id", "bbox", "score")}
    assert detection.evaluate(GT_PATH, DETS_PATH) == detection.evaluate(coco, res)


def test_torchvision_and_arrays():
    outputs = [
        {"boxes": np.array([[0.0, 0, 10, 20]]), "labels": np.array([3]),
         "scores": np.array([0.5])},
        {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "scores": np.zeros(0)},
    ]
    d = detection.from_torchvision(outputs, [7, 8])
    np.testing.assert_array_equal(d.box, [[0, 0, 10, 20]])  # xyxy -> xywh
    assert d.image_id.tolist() == [7] and d.category_id.tolist() == [3]
    same = Detections.from_arrays([7], [3], [0.5], [[0, 0, 10, 20]], box_format="xyxy")
    np.testing.assert_array_equal(same.box, d.box)
    with pytest.raises(ValueError, match="image_ids"):
        detection.load_dets(outputs)


def test_netcal_converter(tmp_path):
    dets = {"image_ids": np.array([10, 20]), "det_image_index": np.array([0, 1], np.int32),
            "det_boxes_yxyx_norm": np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]]),
            "det_scores": np.array([0.9, 0.4]), "det_category_ids": np.array([1, 2], np.int16)}
    gts = {"image_ids": np.array([10, 20]), "gt_image_index": np.array([0], np.int32),
           "gt_boxes_yxyx_norm": np.array([[0.1, 0.2, 0.5, 0.6]]),
           "gt_category_ids": np.array([1], np.int16)}
    np.savez(tmp_path / "d.npz", **dets)
    np.savez(tmp_path / "g.npz", **gts)
    gt, res = detection.netcal_npz_to_coco(tmp_path / "d.npz", tmp_path / "g.npz")
    assert gt["images"] == [{"id": 10, "width": 1.0, "height": 1.0},
                            {"id": 20, "width": 1.0, "height": 1.0}]
    np.testing.assert_allclose(gt["annotations"][0]["bbox"], [0.2, 0.1, 0.4, 0.4])
    np.testing.assert_allclose(res[0]["bbox"], [0.2, 0.1, 0.4, 0.4])
    assert res[1]["image_id"] == 20 and res[1]["category_id"] == 2
    m = detection.match(gt, res, tau=0.5)
    assert m.tp.tolist() == [True, False]


GT = {"images": [{"id": 1}], "categories": [{"id": 1}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}]}


@pytest.mark.parametrize("det,match", [
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -5, 5], "score": 0.5}, "negative width"),
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 1.5}, r"\[0, 1\]"),
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": float("nan")}, "NaN"),
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5], "score": 0.5}, "4 numbers"),
    ({"image_id": 1, "category_id": 1, "score": 0.5}, "COCO results"),
    ({"image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}, "image_id"),
    ({"image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5], "score": 0.5}, "category_id"),
])
def test_bad_detections(det, match):
    with pytest.raises(ValueError, match=match):
        detection.evaluate(GT, [det])


def test_bad_ground_truth_and_files(tmp_path):
    with pytest.raises(ValueError, match="annotations"):
        detection.load_gt({"images": [], "categories": []})
    bad_box = json.loads(json.dumps(GT))
    bad_box["annotations"][0]["bbox"] = [0, 0, 5, -1]
    with pytest.raises(ValueError, match="negative"):
        detection.load_gt(bad_box)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid json"):
        detection.load_gt(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        detection.load_dets(tmp_path / "missing.json")
    with pytest.raises(TypeError, match="gt must be"):
        detection.load_gt(42)
    with pytest.raises(TypeError, match="dets must be"):
        detection.load_dets(3.0)


def test_empty_detections_and_category_without_gt():
    gt = {**GT, "categories": [{"id": 1}, {"id": 2}]}
    out = detection.evaluate(gt, [])
    assert out["lrp"] == 1.0 and np.isnan(out["laece"])
    d = detection.load_dets([])
    assert len(d) == 0 and d.box.shape == (0, 4)
    det = {"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.9}
    m = detection.match(gt, [det])
    assert m.npig.tolist() == [1, 0] and not m.tp[0]
    np.testing.assert_equal(detection.evaluate(gt, [det]), out)  # its FP costs nothing


# ---- strict typed reading (files and in-memory dicts), gzip, block-wise decoding

GOOD = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}


@pytest.mark.parametrize("field,value,match", [
    ("image_id", 1.5, "ids must be JSON integers"),
    ("image_id", "1", "ids must be JSON integers"),
    ("image_id", True, "ids must be JSON integers"),
    ("category_id", 2**63, "9223372036854775807"),
    ("score", "0.5", r"in \[0, 1\]"),
    ("score", True, r"in \[0, 1\]"),
    ("score", -0.1, r"in \[0, 1\]"),
    ("bbox", [0, 0, "5", 5], "4 numbers"),
])
def test_strict_results_in_files_and_lists(tmp_path, field, value, match):
    bad = [GOOD, {**GOOD, field: value}]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=match) as exc:
        detection.load_dets(path)
    assert str(path) in str(exc.value) and "[1]" in str(exc.value)  # names file and item
    with pytest.raises(ValueError, match=match):
        detection.load_dets(bad)


def test_results_with_inf_box_refused(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1e999, 5], '
                    '"score": 0.5}]')
    with pytest.raises(ValueError, match="out of range|infinite"):
        detection.load_dets(path)
    with pytest.raises(ValueError, match="NaN or infinite"):
        detection.load_dets([{**GOOD, "bbox": [0, 0, float("inf"), 5]}])


@pytest.mark.parametrize("field,value,match", [
    ("iscrowd", "0", "iscrowd must be 0, 1, true or false"),
    ("iscrowd", 2, "iscrowd must be 0, 1, true or false"),
    ("image_id", 1.5, "ids must be JSON integers"),
    ("bbox", [0, 0, float("nan"), 5], "NaN or infinite"),
])
def test_strict_ground_truth(tmp_path, field, value, match):
    gt = json.loads(json.dumps(GT))
    gt["annotations"][0][field] = value
    with pytest.raises(ValueError, match=match):
        detection.load_gt(gt)
    if field != "bbox":  # json has no NaN
        path = tmp_path / "gt.json"
        path.write_text(json.dumps(gt))
        with pytest.raises(ValueError, match=match) as exc:
            detection.load_gt(path)
        assert str(path) in str(exc.value)
    ok = json.loads(json.dumps(GT))
    ok["annotations"][0]["iscrowd"] = True
    assert detection.load_gt(ok).ann_crowd.tolist() == [True]


def test_numpy_scalars_in_dicts_are_accepted():
    d = detection.load_dets([{"image_id": np.int64(1), "category_id": np.int32(1),
                              "bbox": np.array([0.0, 0, 5, 5]), "score": np.float32(0.5)}])
    assert d.image_id.tolist() == [1] and d.box.tolist() == [[0, 0, 5, 5]]


def test_gzip_object_form_and_block_boundaries(tmp_path, monkeypatch):
    import gzip

    from calibkit.detection import io as dio

    raw = json.loads(DETS_PATH.read_text())
    # extra fields with brackets, braces and commas inside strings must not cut items
    for k, r in enumerate(raw):
        r["segmentation"] = {"counts": '],{"x": "}' + str(k), "size": [1, 2]}
    ref = detection.load_dets(raw)
    plain = tmp_path / "r.json"
    plain.write_text(json.dumps(raw, indent=1))
    gz = tmp_path / "r.json.gz"
    with gzip.open(gz, "wt") as f:
        json.dump(raw, f)
    obj = tmp_path / "o.json"
    obj.write_text(json.dumps({"annotations": raw}))
    monkeypatch.setattr(dio, "_BLOCK", 97)  # many blocks, items cut everywhere
    for path in (plain, gz, obj):
        d = detection.load_dets(path)
        for f in ("image_id", "category_id", "score", "box"):
            np.testing.assert_array_equal(getattr(d, f), getattr(ref, f))
    trunc = tmp_path / "t.json"
    trunc.write_text(json.dumps(raw)[:-40])
    with pytest.raises(ValueError, match="not closed|not valid json"):
        detection.load_dets(trunc)
    bad_late = tmp_path / "late.json"
    bad_late.write_text(json.dumps(raw[:300] + [{**GOOD, "score": 2}]))
    with pytest.raises(ValueError, match=r"\[300\]"):  # the absolute item index
        detection.load_dets(bad_late)
    empty = tmp_path / "e.json"
    empty.write_text("  []  ")
    assert len(detection.load_dets(empty)) == 0
    g = detection.load_gt(GT_PATH)
    gzg = tmp_path / "gt.json.gz"
    with gzip.open(gzg, "wb") as f:
        f.write(GT_PATH.read_bytes())
    np.testing.assert_array_equal(detection.load_gt(gzg).ann_box, g.ann_box)


@pytest.mark.parametrize("out,match", [
    ({"boxes": np.zeros((2, 3)), "labels": np.array([1, 2]), "scores": np.array([.5, .5])},
     r"outputs\[1\]\['boxes'\] must have shape \(n, 4\)"),
    ({"boxes": np.zeros((2, 4)), "labels": np.array([1.7, 2]), "scores": np.array([.5, .5])},
     r"outputs\[1\]\['labels'\].*entry 0"),
    ({"boxes": np.zeros((2, 4)), "labels": np.array([np.nan, 2]),
      "scores": np.array([.5, .5])}, r"outputs\[1\]\['labels'\]"),
    ({"boxes": np.zeros((2, 4)), "labels": np.array([1, 2]), "scores": np.array([.5])},
     r"outputs\[1\]\['scores'\] must have shape \(2,\)"),
    ({"boxes": np.zeros((2, 4)), "labels": np.array([1, 2]), "scores": np.array([.5, 1.5])},
     r"outputs\[1\]\['scores'\] must lie in \[0, 1\]"),
    ({"boxes": np.zeros((2, 4)), "scores": np.array([.5, .5])}, r"outputs\[1\] must be a dict"),
])
def test_torchvision_outputs_are_checked(out, match):
    good = {"boxes": np.zeros((1, 4)), "labels": np.array([1]), "scores": np.array([0.5])}
    with pytest.raises((ValueError, TypeError), match=match):
        detection.from_torchvision([good, out], [1, 2])
    labels_float = {**good, "labels": np.array([3.0])}
    assert detection.from_torchvision([labels_float], [1]).category_id.tolist() == [3]


def test_bundled_coco_columns_equal_the_dicts():
    from calibkit import datasets

    cols = datasets.load_bundled_coco(["ssd_inception_v2"], arrays=True)
    dicts = datasets.load_bundled_coco(["ssd_inception_v2"])
    g1, g2 = detection.load_gt(cols.ground_truth), detection.load_gt(dicts.ground_truth)
    for f in ("image_ids", "category_ids", "ann_image_id", "ann_category_id", "ann_box",
              "ann_crowd", "area", "image_width", "image_height"):
        np.testing.assert_array_equal(getattr(g1, f), getattr(g2, f), err_msg=f)
    assert g1.category_names == g2.category_names
    d1 = detection.load_dets(cols.detections["ssd_inception_v2"])
    d2 = detection.load_dets(dicts.detections["ssd_inception_v2"])
    for f in ("image_id", "category_id", "score", "box"):
        np.testing.assert_array_equal(getattr(d1, f), getattr(d2, f), err_msg=f)
    keep = cols.image_ids[:200]
    np.testing.assert_array_equal(keep, dicts.image_ids[:200])
    s1, s2 = cols.subset_images(keep), dicts.subset_images(keep)
    name = "ssd_inception_v2"
    assert detection.evaluate(s1.ground_truth, s1.detections[name]) == detection.evaluate(
        s2.ground_truth, s2.detections[name])


@pytest.mark.parametrize("masks", [False, True])
def test_write_coco_like_equals_make_coco_like(tmp_path, masks):
    from calibkit.detection.synthetic import make_coco_like, write_coco_like

    if masks:
        pytest.importorskip("pycocotools")
    n = write_coco_like(tmp_path / "g.json", tmp_path / "d.json", 12, chunk=97, seed=5,
                        masks=masks)
    gt, dets = make_coco_like(12, seed=5, masks=masks)
    assert n == len(dets)
    assert json.loads((tmp_path / "g.json").read_text()) == json.loads(json.dumps(gt))
    assert json.loads((tmp_path / "d.json").read_text()) == json.loads(json.dumps(dets))
