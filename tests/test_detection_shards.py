"""Tests of sharded evaluation (calibkit.detection.shards) and the Dask path
(calibkit.detection.dask).

Reference: the single-machine functions on the concatenated shards (match_many, evaluate,
coco_summary, DetectionCalibrator.fit / transform), which are tested against pycocotools and
the toolbox elsewhere; equality is exact (``==`` on floats, arrays equal).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibkit import detection
from calibkit.detection import MatchState, match_shards
from calibkit.detection.synthetic import make_coco_like

FIELDS = ("evaluated", "tp", "ignored", "iou", "class_index", "order", "npig")


@pytest.fixture(scope="module")
def data():
    gt, dets = make_coco_like(90, seed=4, crowd_fraction=0.08, score_decimals=2)
    g, d = detection.load_gt(gt), detection.load_dets(dets)
    ids = np.unique(d.image_id)
    # three shards of interleaved images, so shard order is not image order
    parts = [d.subset(np.isin(d.image_id, ids[k::3])) for k in range(3)]
    cat = detection.Detections(*[np.concatenate([getattr(p, f) for p in parts])
                                 for f in ("image_id", "category_id", "score", "box")])
    return g, parts, cat


def _same_matches(a, b):
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    np.testing.assert_array_equal(a.dets.box, b.dets.box)


def test_merged_state_equals_one_machine(data):
    g, parts, cat = data
    state = match_shards(g, parts, taus=(0.0, 0.5), coco=True)
    for a, b in zip(state.matches(g), detection.match_many(g, cat, [0.0, 0.5]), strict=True):
        _same_matches(a, b)
    assert state.evaluate(g, ap=True) == detection.evaluate(g, cat, ap=True)
    assert state.coco_summary(g) == detection.coco_summary(g, cat)
    assert detection.evaluate_shards(g, parts, ap=True) == detection.evaluate(g, cat, ap=True)
    kw = {"tau": 0.1, "iou_op": "gt", "dece_matching": "netcal_argmax_any_class"}
    assert detection.evaluate_shards(g, parts, **kw) == detection.evaluate(g, cat, **kw)


def _equal_results(a, b):
    assert set(a) == set(b)
    for key in a:
        if key == "resamples":
            assert set(a[key]) == set(b[key])
            for k in a[key]:
                np.testing.assert_array_equal(a[key][k], b[key][k], err_msg=k)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("max_dets", [20, 100, 150])
def test_sharded_ap_follows_max_dets(max_dets):
    # 160 detections per image over 3 classes: beyond 100 per (image, class), so the AP
    # depends on max_dets above 100 as well
    gt, dets = make_coco_like(12, seed=7, n_classes=3, dets_per_image=400, score_decimals=2)
    g, d = detection.load_gt(gt), detection.load_dets(dets)
    ids = np.unique(d.image_id)
    parts = [d.subset(np.isin(d.image_id, ids[k::2])) for k in range(2)]
    # the one-machine run on the shards' detections in shard order (sums in the same order)
    d = detection.Detections(*[np.concatenate([getattr(p, f) for p in parts])
                               for f in ("image_id", "category_id", "score", "box")])
    ref = detection.evaluate(g, d, ap=True, max_dets=max_dets)
    _equal_results(detection.evaluate_shards(g, parts, ap=True, max_dets=max_dets), ref)
    state = match_shards(g, parts, coco=True, max_dets=max_dets)
    assert state.average_precision(g) == detection.average_precision(g, d, max_dets=max_dets)
    if max_dets < 100:
        with pytest.raises(ValueError, match="COCO's summary needs the best 100"):
            state.coco_summary(g)
    else:
        assert state.coco_summary(g) == detection.coco_summary(g, d)


def test_sharded_bootstrap_intervals_equal_one_machine(data):
    g, parts, cat = data
    for kw in ({"n_bootstrap": 40, "random_state": 3},
               {"n_bootstrap": 25, "random_state": 1, "ap": True, "return_resamples": True,
                "confidence_level": 0.8},
               {"n_bootstrap": 20, "random_state": 2, "dece_matching": "netcal_argmax_any_class"}):
        _equal_results(detection.evaluate_shards(g, parts, **kw), detection.evaluate(g, cat, **kw))


def test_sharded_evaluate_refuses_unknown_and_bad_options(data):
    g, parts, _ = data
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['n_bootstrp'\]"):
        detection.evaluate_shards(g, parts, n_bootstrp=10)
    state = match_shards(g, parts)
    with pytest.raises(TypeError, match="MatchState.evaluate"):
        state.evaluate(g, bins=10)
    with pytest.raises(ValueError, match="n_bootstrap"):
        state.evaluate(g, n_bootstrap=0)
    with pytest.raises(ValueError, match="return_resamples=True needs n_bootstrap"):
        detection.evaluate_shards(g, parts, return_resamples=True)


def test_state_json_round_trip_and_merge_in_steps(data):
    g, parts, cat = data
    states = [MatchState.from_shard(g, p, taus=(0.0, 0.5), coco=True) for p in parts]
    text = [json.dumps(s.to_dict()) for s in states]  # JSON-safe
    back = [MatchState.from_dict(json.loads(t)) for t in text]
    merged = MatchState.merge(MatchState.merge(back[0], back[1]), back[2])
    direct = MatchState.from_shard(g, cat, taus=(0.0, 0.5), coco=True)
    for name in ("image_id", "category_id", "score", "box", "evaluated", "rank", "tp",
                 "ignored", "iou", "coco_codes"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(direct, name), name)
    assert merged.coco_summary(g) == direct.coco_summary(g)


def test_merge_errors(data):
    g, parts, _ = data
    a = MatchState.from_shard(g, parts[0])
    with pytest.raises(ValueError, match="several shards"):
        MatchState.merge(a, a)
    with pytest.raises(ValueError, match="different settings"):
        MatchState.merge(a, MatchState.from_shard(g, parts[1], taus=(0.5,)))
    with pytest.raises(ValueError, match="coco=True"):
        a.coco_summary(g)
    with pytest.raises(ValueError, match="taus"):
        a.evaluate(g)  # D-ECE needs tau 0.5 as well


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # threads in one process: the cluster's tasks, scheduling and serialisation of the
    # states are exercised without the start-up time of worker processes
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def test_dask_evaluate_and_fit_equal_one_machine(client, data, tmp_path):
    from calibkit.detection import dask as ckdask

    g, parts, cat = data
    paths = []
    for k, p in enumerate(parts):
        path = tmp_path / f"r{k}.json"
        path.write_text(json.dumps(p.to_coco()))
        paths.append(path)
    ref = detection.evaluate(g, cat, ap=True)
    ref["coco_summary"] = detection.coco_summary(g, cat)
    assert ckdask.evaluate(g, paths, ap=True, summary=True) == ref
    kw = {"n_bootstrap": 20, "random_state": 4}
    _equal_results(ckdask.evaluate(g, paths, **kw), detection.evaluate(g, cat, **kw))
    with pytest.raises(TypeError, match="dask.evaluate"):
        ckdask.evaluate(g, paths, n_boot=3)
    fitted = ckdask.fit(detection.DetectionCalibrator(method="isotonic"), g, paths)
    single = detection.DetectionCalibrator(method="isotonic").fit(g, cat)
    fitted.save(tmp_path / "a.json")
    single.save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    out_a, out_b = fitted.transform(cat), single.transform(cat)
    np.testing.assert_array_equal(out_a.score, out_b.score)
    np.testing.assert_array_equal(out_a.box, out_b.box)


def test_dask_bag_of_result_dicts(client, data):
    db = pytest.importorskip("dask.bag")
    from calibkit.detection import dask as ckdask

    g, _, cat = data
    results = cat.to_coco()
    bag = db.from_sequence(results, npartitions=4)  # partitions split images
    assert ckdask.evaluate(g, bag) == detection.evaluate(g, cat)
    state = ckdask.match_state(g, bag, n_partitions=3)
    _same_matches(state.matches(g)[0], detection.match(g, cat))


def test_dask_is_not_imported_by_detection():
    import subprocess
    import sys

    code = ("import sys, calibkit.detection as d; d.coco_summary; d.MatchState; "
            "print('dask' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]
