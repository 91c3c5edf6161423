"""Tests of detection.bootstrap against the bootstrap by definition: each resample is built as a
literal data set (every image repeated as often as it was drawn, the copies under new
consecutive ids) and evaluated from scratch with ``detection.evaluate`` (rematching
included). The weighted computation must agree with it to 1e-12 for every metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibkit import detection
from calibkit.detection.bootstrap import (
    image_resample_counts,
    paired_bootstrap,
    percentile_interval,
)
from calibkit.detection.synthetic import make_coco_like

KEYS = ("laece", "laace", "lrp", "lrp_loc", "lrp_fp", "lrp_fn", "dece", "ap")


def literal_resample(gt, dets, counts_row):
    """The resampled data set itself: images in ascending id order, image ``i`` repeated
    ``counts_row[i]`` times, each copy a new image id (consecutive for the copies of one
    image), with the annotations and detections of the original in their file order."""
    gt, dets = detection.load_gt(gt), detection.load_dets(dets)
    g_rows, g_ids, d_rows, d_ids, images = [], [], [], [], []
    new_id = 0
    for i, old_id in enumerate(gt.image_ids):
        for _ in range(counts_row[i]):
            new_id += 1
            images.append(new_id)
            g = np.flatnonzero(gt.ann_image_id == old_id)
            d = np.flatnonzero(dets.image_id == old_id)
            g_rows += g.tolist()
            g_ids += [new_id] * len(g)
            d_rows += d.tolist()
            d_ids += [new_id] * len(d)
    g_rows, d_rows = np.array(g_rows, int), np.array(d_rows, int)
    gt2 = detection.GroundTruth.from_arrays(
        np.array(g_ids, int), gt.ann_category_id[g_rows], gt.ann_box[g_rows].reshape(-1, 4),
        iscrowd=gt.ann_crowd[g_rows], images=images, categories=gt.category_ids)
    dets2 = detection.Detections.from_arrays(
        np.array(d_ids, int), dets.category_id[d_rows], dets.score[d_rows],
        dets.box[d_rows].reshape(-1, 4))
    return gt2, dets2


def _assert_matches_literal(gt, dets, n_bootstrap=12, seed=0, **kw):
    res = detection.evaluate(gt, dets, n_bootstrap=n_bootstrap, random_state=seed,
                             return_resamples=True, **kw)
    counts = image_resample_counts(detection.load_gt(gt).n_images, n_bootstrap, seed)
    for b in range(n_bootstrap):
        ref = detection.evaluate(*literal_resample(gt, dets, counts[b]), **kw)
        for key, value in ref.items():
            got = res["resamples"][key][b]
            if np.isnan(value):
                assert np.isnan(got), (key, b)
            else:
                assert got == pytest.approx(value, abs=1e-12), (key, b)
    return res


@pytest.fixture(scope="module")
def tied():
    """Crowd regions, scores rounded to 2 decimals (ties, also inside an image and class)."""
    return make_coco_like(24, dets_per_image=20, n_classes=5, crowd_fraction=0.1,
                          score_decimals=2, seed=3)


# --------------------------------------------------------------------------------------
# The weighted resamples against the literal ones
# --------------------------------------------------------------------------------------


def test_every_metric_equals_the_literal_resample(tied):
    from calibkit.detection.metrics import _ap_table

    gt, dets = tied
    # the fixture holds tie blocks of one image mixing TPs and FPs (repeated explicitly)
    table = _ap_table(detection.load_gt(gt), detection.load_dets(dets), 100)
    assert len(table.mixed_start) > 0
    res = _assert_matches_literal(gt, dets, ap=True)
    assert set(res) >= set(KEYS) | {f"{k}_ci" for k in KEYS} | {"resamples"}


@pytest.mark.parametrize("kw", [
    {"tau": 0.1, "iou_op": "gt", "max_dets": 3, "laace_include_ignored": False},
    {"empty_class_policy": "zero", "class_mean_drop_zero_error": False, "bin_closure": "left",
     "laece_bins": 7, "dece_bins": 4},
    {"dece_matching": "netcal_argmax_any_class", "dece_tau": 0.3},
    {"tau": 0.5, "dece_tau": 0.5},  # D-ECE shares the matching of LaECE
])
def test_variants_equal_the_literal_resample(tied, kw):
    gt, dets = tied
    _assert_matches_literal(gt, dets, n_bootstrap=6, seed=1, **kw)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([None, 1, 2]))
def test_random_data_equals_the_literal_resample(seed, decimals):
    gt, dets = make_coco_like(6, dets_per_image=12, n_classes=3, crowd_fraction=0.2,
                              score_decimals=decimals, seed=seed)
    _assert_matches_literal(gt, dets, n_bootstrap=3, seed=seed, ap=True)


def test_images_without_detections_or_boxes_and_empty_detections():
    gt, dets = make_coco_like(10, dets_per_image=8, n_classes=3, seed=4)
    gt["images"].append({"id": 999, "width": 640, "height": 480})  # no box, no detection
    dets = [d for d in dets if d["image_id"] != 2]  # boxes, no detection
    _assert_matches_literal(gt, dets, n_bootstrap=5, ap=True)
    out = detection.evaluate(gt, [], n_bootstrap=5, random_state=0, ap=True)
    assert np.isnan(out["laece"]) and np.isnan(out["laece_ci"]).all()
    assert out["lrp_ci"] == (1.0, 1.0)


# --------------------------------------------------------------------------------------
# Intervals, seeds, API
# --------------------------------------------------------------------------------------


def test_intervals_are_percentiles_and_points_unchanged(tied):
    gt, dets = tied
    plain = detection.evaluate(gt, dets, ap=True)
    res = detection.evaluate(gt, dets, ap=True, n_bootstrap=50, random_state=7,
                             confidence_level=0.8, return_resamples=True)
    for key in KEYS:
        assert res[key] == plain[key]  # the point values are evaluate's, bit for bit
        r = res["resamples"][key]
        assert res[f"{key}_ci"] == pytest.approx(tuple(np.nanquantile(r, [0.1, 0.9])),
                                                 abs=1e-12)
    again = detection.evaluate(gt, dets, ap=True, n_bootstrap=50, random_state=7,
                               confidence_level=0.8)
    assert {k: again[k] for k in again} == {k: res[k] for k in again}
    assert "resamples" not in again


def test_image_resample_counts():
    counts = image_resample_counts(7, 500, 3)
    assert counts.shape == (500, 7) and counts.dtype == np.int64
    assert np.all(counts.sum(axis=1) == 7)
    # multinomial(7, 1/7): mean 1, variance 6/7
    assert counts.mean() == pytest.approx(1.0)
    assert counts.var() == pytest.approx(6 / 7, rel=0.1)
    np.testing.assert_array_equal(counts, image_resample_counts(7, 500, 3))
    np.testing.assert_array_equal(counts[:10], image_resample_counts(7, 10, 3))
    gen = image_resample_counts(7, 5, np.random.default_rng(3))
    np.testing.assert_array_equal(gen, counts[:5])
    assert image_resample_counts(7, 2, np.random.RandomState(0)).shape == (2, 7)
    assert image_resample_counts(0, 4).shape == (4, 0)


def test_percentile_interval():
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_interval([np.nan, 1.0, 3.0], 0.5) == pytest.approx((1.5, 2.5))
    lo, hi = percentile_interval([np.nan, np.nan])
    assert np.isnan(lo) and np.isnan(hi)


def test_paired_bootstrap(tied):
    gt, dets = tied
    kw = {"n_bootstrap": 40, "random_state": 5, "return_resamples": True, "ap": True}
    base = detection.evaluate(gt, dets, **kw)
    same = paired_bootstrap(base, base)
    assert same["laece"] == {"difference": 0.0, "ci": (0.0, 0.0), "share_better": 0.0,
                             "holds": False}
    # a class-wise isotonic calibrator (fitted in-sample) against the raw scores
    cal = detection.DetectionCalibrator(method="isotonic", thresholds=None).fit(gt, dets)
    other = detection.evaluate(gt, cal.transform(dets), **kw)
    cmp = paired_bootstrap(base, other, confidence_level=0.9)
    diff = other["resamples"]["laece"] - base["resamples"]["laece"]
    assert cmp["laece"]["difference"] == other["laece"] - base["laece"]
    assert cmp["laece"]["ci"] == pytest.approx(tuple(np.quantile(diff, [0.05, 0.95])))
    assert cmp["laece"]["share_better"] == np.mean(diff < 0)
    assert cmp["laece"]["holds"] == (cmp["laece"]["ci"][1] < 0)
    assert cmp["laece"]["holds"] and cmp["laece"]["share_better"] == 1.0
    # AP: higher is better
    d_ap = other["resamples"]["ap"] - base["resamples"]["ap"]
    assert cmp["ap"]["share_better"] == np.mean(d_ap > 0)
    with pytest.raises(ValueError, match="return_resamples"):
        paired_bootstrap(detection.evaluate(gt, dets), base)
    short = detection.evaluate(gt, dets, n_bootstrap=3, random_state=5, return_resamples=True)
    with pytest.raises(ValueError, match="same n_bootstrap"):
        paired_bootstrap(base, short)


def test_parameter_errors(tied):
    gt, dets = tied
    with pytest.raises(ValueError, match="n_bootstrap"):
        detection.evaluate(gt, dets, n_bootstrap=0)
    with pytest.raises(TypeError, match="n_bootstrap"):
        detection.evaluate(gt, dets, n_bootstrap=10.0)
    with pytest.raises(ValueError, match="confidence_level"):
        detection.evaluate(gt, dets, n_bootstrap=10, confidence_level=1.0)
    with pytest.raises(TypeError, match="random_state"):
        detection.evaluate(gt, dets, n_bootstrap=10, random_state="seed")
    with pytest.raises(ValueError, match="needs n_bootstrap"):
        detection.evaluate(gt, dets, return_resamples=True)
