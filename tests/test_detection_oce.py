"""Tests of detection.oce against a by-definition loop over the ground-truth objects (written
here from the definition of Park et al., with ``detection.box_iou`` for the overlaps), values
derived by hand, and live parity with the reference implementation, the ``uq-detr`` package
(``uq_detr.oce``, version 0.1.1), on synthetic and on real (bundled Faster R-CNN) detections."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from calibkit import datasets, detection
from calibkit.detection.synthetic import make_coco_like

A, B = [0, 0, 10, 10], [50, 50, 10, 10]


def oce_ref(gt, dets, taus=(0.5, 0.75), aggregation="mean", probs=None):
    """Per threshold, per regular object: the detections of its image with IoU >= tau,
    aggregated; Brier against the object's class (1 when nothing overlaps)."""
    gt, dets = detection.load_gt(gt), detection.load_dets(dets)
    k = gt.n_categories
    per_tau = []
    for tau in taus:
        scores = []
        for o in np.flatnonzero(~gt.ann_crowd):
            c = list(gt.category_ids).index(gt.ann_category_id[o])
            d = np.flatnonzero(dets.image_id == gt.ann_image_id[o])
            iou = detection.box_iou(dets.box[d], gt.ann_box[o:o + 1])[:, 0]
            d, iou = d[iou >= tau], iou[iou >= tau]
            if not len(d):
                scores.append(1.0)
                continue
            labels = [list(gt.category_ids).index(x) for x in dets.category_id[d]]
            best = int(np.argmax(iou))  # first of the largest in file order
            if aggregation == "mean":
                w = np.ones(len(d))
                label = max(sorted(set(labels)), key=labels.count)  # smallest on a tie
            else:
                w = iou if aggregation == "iou_weighted" else np.eye(len(d))[best]
                label = labels[best]
            if probs is None:
                s = float(np.sum(w * dets.score[d]) / np.sum(w))
                scores.append(2 * (1 - s) ** 2 if label == c else 2 * s**2)
            else:
                p = (w[:, None] * probs[d]).sum(axis=0) / np.sum(w)
                scores.append(float(np.sum((np.eye(k)[c] - p) ** 2)))
        per_tau.append(np.mean(scores))
    return float(np.mean(per_tau))


def _gt(boxes, cats, crowd=None):
    crowd = crowd or [0] * len(boxes)
    return {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}, {"id": 2}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": c, "bbox": b,
                             "iscrowd": z}
                            for i, (b, c, z) in enumerate(zip(boxes, cats, crowd, strict=True))]}


def _dets(rows):
    return [{"image_id": 1, "category_id": c, "bbox": b, "score": s} for b, c, s in rows]


@pytest.fixture(scope="module")
def synthetic():
    gt, dets = make_coco_like(25, dets_per_image=12, n_classes=4, crowd_fraction=0.05,
                              score_decimals=2, seed=5)
    probs = np.random.default_rng(0).dirichlet(np.full(4, 0.5), len(dets))
    return gt, dets, probs


# --------------------------------------------------------------------------------------
# By hand and by definition
# --------------------------------------------------------------------------------------


def test_oce_by_hand():
    gt = _gt([A, B], [1, 2])
    # A: two class-1 detections (0.9 and 0.5) -> mean 0.7, right label: 2 * 0.3^2
    # B: missed -> 1
    dets = _dets([(A, 1, 0.9), ([0, 0, 10, 9], 1, 0.5), ([300, 300, 5, 5], 2, 0.8)])
    assert detection.oce(gt, dets, iou_thresholds=[0.5]) == pytest.approx((2 * 0.09 + 1) / 2)
    # a wrong-class detection on B: 2 * p^2
    dets2 = dets + _dets([(B, 1, 0.6)])
    assert detection.oce(gt, dets2, iou_thresholds=[0.5]) == pytest.approx(
        (2 * 0.09 + 2 * 0.36) / 2)
    # at IoU 0.95 only the exact box of A counts (0.9)
    value, per_object = detection.oce(gt, dets, iou_thresholds=[0.5, 0.95],
                                      return_per_object=True)
    np.testing.assert_allclose(per_object, [(2 * 0.09 + 2 * 0.01) / 2, 1.0])
    assert value == pytest.approx(per_object.mean())
    # class distributions: the exact Brier score of the mean distribution
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    assert detection.oce(gt, dets, iou_thresholds=[0.5], class_probabilities=probs) == (
        pytest.approx(((1 - 0.7) ** 2 + 0.3**2 + 1.0) / 2))


def test_crowd_regions_are_not_objects_and_empty_cases():
    gt = _gt([A, B], [1, 1], crowd=[0, 1])
    dets = _dets([(A, 1, 0.8)])
    assert detection.oce(gt, dets) == pytest.approx(2 * 0.2**2)
    assert detection.oce(gt, []) == 1.0
    value, per = detection.oce(_gt([B], [1], crowd=[1]), dets, return_per_object=True)
    assert np.isnan(value) and per.shape == (0,)


@pytest.mark.parametrize("aggregation", ["mean", "max_iou", "iou_weighted"])
@pytest.mark.parametrize("full", [False, True])
def test_matches_the_definition(synthetic, aggregation, full):
    gt, dets, probs = synthetic
    p = probs if full else None
    for taus in [(0.5, 0.75), (0.1, 0.3, 0.9)]:
        got = detection.oce(gt, dets, iou_thresholds=taus, aggregation=aggregation,
                            class_probabilities=p)
        assert got == pytest.approx(oce_ref(gt, dets, taus, aggregation, p), abs=1e-12)


def test_pairs_computed_in_chunks(synthetic):
    from calibkit.detection.oce import _object_pairs

    gt, dets, _ = synthetic
    gt, dets = detection.load_gt(gt), detection.load_dets(dets)
    obj = np.flatnonzero(~gt.ann_crowd)
    whole = _object_pairs(gt, dets, obj, 0.2)
    for a, b in zip(whole, _object_pairs(gt, dets, obj, 0.2, chunk=7), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.all(whole[2] >= 0.2) and len(whole[0]) > 0


def test_parameter_errors(synthetic):
    gt, dets, probs = synthetic
    with pytest.raises(ValueError, match="aggregation"):
        detection.oce(gt, dets, aggregation="max")
    with pytest.raises(ValueError, match="iou_thresholds"):
        detection.oce(gt, dets, iou_thresholds=[0.0])
    with pytest.raises(ValueError, match="iou_thresholds"):
        detection.oce(gt, dets, iou_thresholds=[])
    with pytest.raises(ValueError, match="shape"):
        detection.oce(gt, dets, class_probabilities=probs[:, :3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        detection.oce(gt, dets, class_probabilities=probs * 2)
    with pytest.raises(ValueError, match="image_id"):
        detection.oce(gt, [{"image_id": 999, "category_id": 1, "bbox": A, "score": 0.5}])


# --------------------------------------------------------------------------------------
# Parity with uq-detr (live)
# --------------------------------------------------------------------------------------


def _uq_detr_inputs(uq, gt, dets, probs=None):
    """One uq_detr Detections / GroundTruth per image: regular boxes only (uq-detr has no
    crowd regions), class indices in the ground truth's category order."""
    gt, dets = detection.load_gt(gt), detection.load_dets(dets)
    out_d, out_g = [], []
    for iid in gt.image_ids:
        a = np.flatnonzero(~gt.ann_crowd & (gt.ann_image_id == iid))
        d = np.flatnonzero(dets.image_id == iid)
        labels = np.searchsorted(gt.category_ids, gt.ann_category_id[a])
        out_g.append(uq.GroundTruth.from_xywh(gt.ann_box[a].reshape(-1, 4), labels))
        scores = dets.score[d] if probs is None else probs[d]
        out_d.append(uq.Detections.from_xywh(
            dets.box[d].reshape(-1, 4), scores,
            labels=np.searchsorted(gt.category_ids, dets.category_id[d])))
    return out_d, out_g


def _uq_oce(uq, d, g, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its warning about the binary reduction
        return uq.oce(d, g, **kw)


@pytest.mark.parametrize("aggregation", ["mean", "max_iou", "iou_weighted"])
def test_parity_with_uq_detr_synthetic(synthetic, aggregation):
    uq = pytest.importorskip("uq_detr")
    gt, dets, probs = synthetic
    for p in (None, probs):
        d, g = _uq_detr_inputs(uq, gt, dets, p)
        for taus in [(0.5, 0.75), (0.3,)]:
            ref = _uq_oce(uq, d, g, iou_thresholds=taus, aggregation=aggregation)
            got, per = detection.oce(gt, dets, iou_thresholds=taus, aggregation=aggregation,
                                     class_probabilities=p, return_per_object=True)
            assert got == pytest.approx(ref.score, abs=1e-12)
            np.testing.assert_allclose(per, ref.per_element, rtol=0, atol=1e-12)


def test_parity_with_uq_detr_on_real_detections():
    """Bundled Faster R-CNN R50 on 300 COCO val2017 images, swept over score thresholds."""
    uq = pytest.importorskip("uq_detr")
    data = datasets.load_bundled_coco(["faster_rcnn_resnet50"])
    ids = np.sort([im["id"] for im in data.ground_truth["images"]])[:300]
    data = data.subset_images(ids)
    gt, dets = data.ground_truth, detection.load_dets(data.detections["faster_rcnn_resnet50"])
    g = detection.load_gt(gt)
    # uq-detr lists the objects image by image; calibkit in ground-truth order
    by_image = np.argsort(g.ann_image_id[~g.ann_crowd], kind="stable")
    for threshold in (0.3, 0.5, 0.8):
        kept = dets.subset(dets.score > threshold)  # uq_detr.select(..., "threshold")
        ref = _uq_oce(uq, *_uq_detr_inputs(uq, gt, kept))
        got, per = detection.oce(gt, kept, return_per_object=True)
        assert got == pytest.approx(ref.score, abs=1e-12)
        np.testing.assert_allclose(per[by_image], ref.per_element, rtol=0, atol=1e-12)
