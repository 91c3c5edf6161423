"""Tests of :mod:`calibkit.datasets`.

Reference: the original files in ``shared/data`` read directly with numpy (the formats in
its README). The bundled ImageNet and COCO arrays must equal them exactly; the CIFAR
probabilities (stored as float16 log-probabilities) within 2.1e-4.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from scipy.special import softmax

from calibkit import datasets


def _reference_cifar(shared, family, name):
    k = family.removeprefix("cifar")
    with np.load(shared / "netcal-cifar" / f"{name}-cifar-{k}.npz") as f:
        return f["predictions"].astype(np.float64), f["ground_truth"]


def test_manifest_lists_every_bundled_file_with_params_and_licence():
    man = datasets.manifest()
    names = [(m["family"], m["name"]) for m in man["models"]]
    assert len(names) == len(set(names)) == 22
    for m in man["models"]:
        assert (datasets.DATA_DIR / m["file"]).is_file()
        assert m["source"]["licence"] and m["source"]["repository"] and m["source"]["commit"]
        if m["task"] != "detection":
            assert m["params"] > 0 and m["params_source"]
    imagenet = [m["params"] for m in man["models"] if m["family"] == "imagenet"]
    assert min(imagenet) == 5.0e6 and max(imagenet) == 115.1e6


def test_bundled_data_stays_small():
    total = sum(p.stat().st_size for p in datasets.DATA_DIR.rglob("*") if p.is_file())
    biggest = max(p.stat().st_size for p in datasets.DATA_DIR.rglob("*") if p.is_file())
    assert total < 12e6 and biggest < 8e6


@pytest.mark.parametrize("family,name", [("cifar100", "densenet-bc-100"),
                                         ("cifar10", "lenet-5")])
def test_cifar_float16_log_probs_are_within_documented_tolerance(shared_data, family, name):
    p, y = _reference_cifar(shared_data, family, name)
    m = datasets.load_classification(family, name)
    assert m.input == "logits" and not m.top1_only
    np.testing.assert_array_equal(m.labels, y)
    q = softmax(m.scores.astype(np.float64), axis=1)
    assert np.abs(q - p).max() < 2.1e-4
    assert m.params == {"densenet-bc-100": 800000, "lenet-5": 62006}[name]


def test_imagenet_is_lossless(shared_data):
    path = shared_data / "hollance-reliability" / "ImageNet_torchvision" / "resnet101.csv.gz"
    with gzip.open(path, "rt") as fh:
        a = np.loadtxt(fh, delimiter=",", skiprows=1)
    m = datasets.load_classification("imagenet", "resnet101")
    assert m.top1_only and m.input == "top1" and m.scores is None
    np.testing.assert_array_equal(m.labels, a[:, 0])
    np.testing.assert_array_equal(m.pred_label, a[:, 1])
    np.testing.assert_array_equal(m.confidence, a[:, 2])


def test_coco_round_trips_to_the_source_arrays(shared_data):
    data = datasets.load_bundled_coco(["ssd_inception_v2"])
    src = shared_data / "netcal-coco-detection"
    with np.load(src / "ssd_inception_v2_coco_val2017_dets.npz") as d:
        ref_score, ref_box = d["det_scores"], d["det_boxes_yxyx_norm"]
        ref_img = d["image_ids"][d["det_image_index"]]
        ref_cat = d["det_category_ids"]
    res = data.detections["ssd_inception_v2"]
    assert len(res) == len(ref_score)
    np.testing.assert_array_equal([r["score"] for r in res], ref_score)
    np.testing.assert_array_equal([r["image_id"] for r in res], ref_img)
    np.testing.assert_array_equal([r["category_id"] for r in res], ref_cat)
    xywh = np.array([r["bbox"] for r in res])
    np.testing.assert_allclose(xywh[:, 0], ref_box[:, 1], rtol=0, atol=0)
    np.testing.assert_allclose(xywh[:, 2], ref_box[:, 3] - ref_box[:, 1], rtol=0, atol=1e-15)
    gt = data.ground_truth
    assert len(gt["annotations"]) == 36781 and len(gt["images"]) == 5000
    assert len(gt["categories"]) == 80
    assert all(im["width"] == 1 and im["height"] == 1 for im in gt["images"][:10])


def test_subset_and_list_models():
    assert "resnext101_32x8d" in datasets.list_models("imagenet")
    assert datasets.list_models(task="detection") == [
        "faster_rcnn_resnet50", "ssd_inception_v2", "ssd_resnet50_v1"]
    m = datasets.load_classification("cifar10", "wideresnet-16-4").subset(np.arange(5))
    assert m.scores.shape == (5, 10) and m.labels.shape == (5,)


def test_unknown_names_raise_with_choices():
    with pytest.raises(ValueError, match="unknown family 'cifar1000'"):
        datasets.load_classification("cifar1000", "x")
    with pytest.raises(ValueError, match="unknown model 'resnet9'.*available"):
        datasets.load_classification("imagenet", "resnet9")
    with pytest.raises(ValueError, match=r"unknown model name\(s\) \['nope'\]"):
        datasets.load_bundled_classification("cifar10", models=["nope"])
    with pytest.raises(ValueError, match="unknown detector"):
        datasets.load_bundled_coco(["yolo"])


# --------------------------------------------------------------------------------------
# User directories
# --------------------------------------------------------------------------------------


def test_load_directory_reads_npz_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    np.savez(tmp_path / "small.npz", logits=rng.normal(size=(50, 3)), labels=y, params=1.5e6)
    p = softmax(rng.normal(size=(50, 3)), axis=1)
    np.savez(tmp_path / "probs.npz", probs=p, labels=y)
    conf = rng.uniform(0.3, 1, 50)
    with open(tmp_path / "top1.csv", "w") as fh:
        fh.write("true_label,pred_label,confidence\n")
        for t, c in zip(y, conf, strict=True):
            fh.write(f"{t},{(t + 1) % 3},{float(c)!r}\n")
    models = datasets.load_directory(tmp_path)
    assert [m.name for m in models] == ["probs", "small", "top1"]
    probs, small, top1 = models
    assert small.params == 1.5e6 and small.input == "logits" and small.family == tmp_path.name
    assert probs.input == "probs" and probs.params is None
    np.testing.assert_array_equal(top1.confidence, conf)
    assert top1.top1_only and np.all(top1.pred_label == (y + 1) % 3)


@pytest.mark.parametrize(
    "write,match",
    [
        (lambda d: np.savez(d / "bad.npz", logits=np.zeros((4, 3)), labels=np.zeros(5, int)),
         r"bad\.npz: 'logits' has 4 rows but 'labels' has 5"),
        (lambda d: np.savez(d / "bad.npz", scores=np.zeros((4, 3)), labels=np.zeros(4, int)),
         r"bad\.npz: a classification \.npz needs 'labels'"),
        (lambda d: (d / "bad.npz").write_bytes(b"not a zip file"), r"bad\.npz: cannot be read"),
        (lambda d: (d / "bad.csv").write_text("a,b,c\n1,2,0.5\n"), r"bad\.csv: the first line"),
        (lambda d: (d / "bad.csv").write_text("true_label,pred_label,confidence\n1,x,0.5\n"),
         r"bad\.csv: malformed row"),
        (lambda d: np.savez(d / "bad.npz", probs=np.full((4, 3), 1 / 3), labels=[0, 1, 2, 3]),
         r"bad\.npz: labels must lie in \[0, 3\)"),
        (lambda d: np.savez(d / "bad.npz", logits=np.full((4, 3), np.nan), labels=[0, 1, 2, 0]),
         r"bad\.npz: 'logits' contains NaN"),
        (lambda d: np.savez(d / "bad.npz", probs=np.full((4, 3), 0.5), labels=[0, 1, 2, 0]),
         r"bad\.npz: 'probs' must be probabilities .* rows sum to 1"),
    ],
)
def test_malformed_files_name_the_file(tmp_path, write, match):
    write(tmp_path)
    with pytest.raises(ValueError, match=match):
        datasets.load_directory(tmp_path)


def test_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        datasets.load_directory(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no model file"):
        datasets.load_directory(tmp_path)
    np.savez(tmp_path / "a.npz", logits=np.zeros((4, 3)), labels=[0, 1, 2, 0])
    np.savez(tmp_path / "b.npz", logits=np.zeros((5, 3)), labels=[0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"different numbers of samples \(a\.npz: 4, b\.npz: 5\)"):
        datasets.load_directory(tmp_path)


def test_load_coco_from_files(tmp_path, shared_data):
    fixture = shared_data / "coco-format-fixture-synthetic-scores"
    gt = fixture / "instances_val2014_100.json"
    res = fixture / "instances_val2014_fakebbox100_results.json"
    data = datasets.load_coco(gt, {"fake": res})
    assert data.names == ["fake"] and len(data.detections["fake"]) == 734
    (tmp_path / "gt.json").write_text(gt.read_text())
    with gzip.open(tmp_path / "fake.json.gz", "wt") as fh:
        fh.write(res.read_text())
    d2 = datasets.load_coco_directory(tmp_path)
    assert d2.names == ["fake"] and d2.detections["fake"] == data.detections["fake"]
    half = d2.subset_images([im["id"] for im in d2.ground_truth["images"][:50]])
    assert len(half.ground_truth["images"]) == 50
    assert {d["image_id"] for d in half.detections["fake"]} <= {
        im["id"] for im in half.ground_truth["images"]}


def test_load_coco_errors(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps({"images": [{"id": 1}], "annotations": []}))
    with pytest.raises(ValueError, match=r"gt\.json is not a COCO ground truth.*categories"):
        datasets.load_coco(tmp_path / "gt.json", {"a": []})
    gt = {"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"detections\['a'\]: .*bad\.json is not valid JSON"):
        datasets.load_coco(gt, {"a": tmp_path / "bad.json"})
    # gzip is told by its magic bytes, whatever the name; a truncated stream is an error
    import gzip

    (tmp_path / "packed.json").write_bytes(gzip.compress(json.dumps(gt).encode()))
    assert datasets.load_coco(tmp_path / "packed.json", {"a": []}).ground_truth == gt
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(json.dumps(gt).encode())[:-12])
    with pytest.raises(ValueError, match=r"ground_truth: .*cut\.json\.gz is not valid JSON"):
        datasets.load_coco(tmp_path / "cut.json.gz", {"a": []})
    with pytest.raises(ValueError, match="each detection needs the keys"):
        datasets.load_coco(gt, {"a": [{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]})
    with pytest.raises(ValueError, match=r"image id\(s\) not in the ground truth"):
        datasets.load_coco(gt, {"a": [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1],
                                       "score": 0.5}]})
    with pytest.raises(FileNotFoundError):
        datasets.load_coco(gt, {"a": tmp_path / "missing.json"})
    with pytest.raises(ValueError, match=r"ground_truth: .* is a directory; give a file path"):
        datasets.load_coco(tmp_path, {"a": []})
