"""End-to-end tests of ``calibkit bench`` (:mod:`calibkit.bench`).

Reference: every number is recomputed directly from the public API, one model, method and
seed at a time (``split_indices`` -> calibrator ``fit`` -> ``calibkit.metrics`` /
``detection.evaluate``), and compared with what the CLI wrote in ``report.md`` and
``results.json``. The power-law fit is compared with a brute-force ``numpy.linalg.lstsq``
over the same grid of exponents.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibkit import datasets
from calibkit.bench import (
    ClassificationConfig,
    fit_power_law,
    gain_trend,
    run_classification,
    split_indices,
    subsample,
)
from calibkit.bench.cli import main
from calibkit.bench.coco import DEFAULT_BOOTSTRAP
from calibkit.bench.report import fmt
from calibkit.bench.scale import B_GRID

SLICE = ["--family", "cifar10", "imagenet", "--models", "wideresnet-16-4", "resnet34",
         "resnet101", "tf_inception_v3", "--seeds", "2", "--max-samples", "600"]
METHODS = ["uncalibrated", "temperature", "isotonic"]


def _by_definition_ece(m, method_cls, seeds, **kw):
    from calibkit.metrics import expected_calibration_error

    values = []
    for seed in seeds:
        cal, test = split_indices(m.labels, seed)
        if m.top1_only:
            correct = (m.pred_label == m.labels).astype(int)
            q = method_cls(**kw).fit(m.confidence[cal], correct[cal]).predict_proba(
                m.confidence[test])[:, 1]
            values.append(expected_calibration_error(correct[test], q, mode="binary"))
        else:
            p = method_cls(**kw).fit(m.scores[cal], m.labels[cal]).predict_proba(m.scores[test])
            values.append(expected_calibration_error(m.labels[test], p, labels=np.arange(10)))
    return np.mean(values), np.std(values, ddof=1)


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_cls")
    assert main(["classification", *SLICE, "--methods", *METHODS, "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_classification_cli_writes_every_file(cls_run):
    for name in ("results.json", "results.csv", "summary.csv", "report.md"):
        assert (cls_run / name).stat().st_size > 0
    pngs = sorted(p.name for p in (cls_run / "plots").glob("*.png"))
    assert "reliability_cifar10_wideresnet-16-4.png" in pngs
    assert "scale_imagenet_ece_width.png" in pngs
    res = json.loads((cls_run / "results.json").read_text())
    # 1 full model x 3 methods + 3 top-1 models x 2 methods (no temperature), 2 seeds
    assert len(res["rows"]) == (3 + 3 * 2) * 2
    assert len((cls_run / "results.csv").read_text().strip().splitlines()) == 1 + 18
    skipped = {(s["model"], s["method"]) for s in res["skipped"]}
    assert ("resnet34", "temperature") in skipped
    report = (cls_run / "report.md").read_text()
    assert "`temperature`: top-1-only data" in report
    assert res["command"].startswith("calibkit bench classification --family cifar10")


def test_report_numbers_equal_direct_computation(cls_run):
    from calibkit import IsotonicCalibration, TemperatureScaling

    report = (cls_run / "report.md").read_text()
    wrn = subsample(datasets.load_classification("cifar10", "wideresnet-16-4"), 600)
    mean, std = _by_definition_ece(wrn, TemperatureScaling, [0, 1], input="logits")
    assert "| wideresnet-16-4 | 2.70M | " in report
    row = next(line for line in report.splitlines()
               if line.startswith("| wideresnet-16-4 |") and "ECE" not in line)
    assert fmt(mean, std) in row.split(" | ")[3]  # columns: model, params, uncal, temperature
    r34 = subsample(datasets.load_classification("imagenet", "resnet34"), 600)
    mean, std = _by_definition_ece(r34, IsotonicCalibration, [0, 1], input="probs")
    row = next(line for line in report.splitlines() if line.startswith("| resnet34 |"))
    assert fmt(mean, std) in row
    res = json.loads((cls_run / "results.json").read_text())
    rows = [r for r in res["rows"] if r["model"] == "resnet34" and r["method"] == "isotonic"]
    assert np.mean([r["ece_width"] for r in rows]) == pytest.approx(mean, abs=1e-15)


def test_same_seed_same_results_and_jobs_do_not_matter():
    models = [subsample(m, 300) for m in datasets.load_bundled_classification(
        ["cifar10", "imagenet"], models=["lenet-5", "resnet34"])]
    cfg = ClassificationConfig(methods=("uncalibrated", "platt", "isotonic"), seeds=2)
    a = run_classification(models, cfg, progress=False)
    b = run_classification(models, cfg, progress=False)
    c = run_classification(models, cfg, jobs=2, progress=False)

    def strip(result):
        return [{k: v for k, v in r.items() if not k.endswith("_time_s")}
                for r in result["rows"]]

    assert strip(a) == strip(b) == strip(c)
    assert a["curves"] == c["curves"]
    d = run_classification(models, ClassificationConfig(methods=cfg.methods, seeds=3),
                           progress=False)
    assert strip(d)[:2] == strip(a)[:2]  # seed 0 and 1 unchanged by adding seed 2


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["classification", "--methods", "platt", "dirichlet-full", "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown method(s) ['dirichlet-full'] for --methods" in err and "venn_abers" in err
    np.savez(tmp_path / "a.npz", logits=np.zeros((4, 3)), labels=[0, 1, 2, 0])
    np.savez(tmp_path / "b.npz", logits=np.zeros((5, 3)), labels=[0, 1, 2, 0, 1])
    with pytest.raises(SystemExit):
        main(["classification", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "a.npz: 4, b.npz: 5" in capsys.readouterr().err
    (tmp_path / "b.npz").write_bytes(b"garbage")
    with pytest.raises(SystemExit):
        main(["classification", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "b.npz: cannot be read" in capsys.readouterr().err
    one_class = tmp_path / "one"
    one_class.mkdir()
    np.savez(one_class / "c.npz", logits=np.random.default_rng(0).normal(size=(40, 3)),
             labels=np.zeros(40, int))
    with pytest.raises(SystemExit):
        main(["classification", "--data", str(one_class), "--methods", "platt",
              "--seeds", "1", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert "c.npz, method 'platt', seed 0:" in err and "only one class" in err
    with pytest.raises(SystemExit):
        main(["coco", "--gt", str(tmp_path / "gt.json"), "--out", str(tmp_path / "o")])
    assert "--gt and --dets go together" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["coco", "--methods", "dirichlet", "--out", str(tmp_path / "o")])
    assert "unknown method(s) ['dirichlet'] for --methods" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["classification", "--seeds", "0", "--family", "cifar10", "--out", str(tmp_path)])
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_user_directory_runs_end_to_end(tmp_path):
    from calibkit import PlattScaling
    from calibkit.metrics import expected_calibration_error

    rng = np.random.default_rng(3)
    n, k = 300, 4
    y = rng.integers(0, k, n)
    for name, sharp in (("small", 1.0), ("large", 3.0)):
        z = rng.normal(size=(n, k))
        z[np.arange(n), y] += sharp
        np.savez(tmp_path / f"{name}.npz", logits=z, labels=y, params=sharp * 1e6)
    out = tmp_path / "out"
    assert main(["classification", "--data", str(tmp_path), "--methods", "uncalibrated",
                 "platt", "--seeds", "1", "--out", str(out), "--quiet", "--no-plots"]) == 0
    res = json.loads((out / "results.json").read_text())
    row = next(r for r in res["rows"] if r["model"] == "large" and r["method"] == "platt")
    with np.load(tmp_path / "large.npz") as f:
        z = f["logits"]
    cal, test = split_indices(y, 0)
    p = PlattScaling(input="logits").fit(z[cal], y[cal]).predict_proba(z[test])
    assert row["ece_width"] == pytest.approx(
        expected_calibration_error(y[test], p, labels=np.arange(k)), abs=1e-15)
    assert row["params"] == 3e6 and row["family"] == tmp_path.name


# --------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------


def test_coco_cli_matches_detection_api(tmp_path):
    from calibkit import detection

    out = tmp_path / "coco"
    assert main(["coco", "--detectors", "ssd_inception_v2", "--max-images", "300",
                 "--methods", "identity", "isotonic", "venn-abers", "--seeds", "1",
                 "--out", str(out), "--quiet"]) == 0
    for name in ("results.json", "results.csv", "summary.csv", "report.md",
                 "plots/coco_classwise.png"):
        assert (out / name).stat().st_size > 0
    res = json.loads((out / "results.json").read_text())
    # venn-abers runs only in the dece protocol (binary targets)
    assert len(res["rows"]) == 2 * (2 + 3)
    data = datasets.load_bundled_coco(["ssd_inception_v2"])
    ids = np.array(sorted(im["id"] for im in data.ground_truth["images"]))
    keep = np.random.default_rng(12345).choice(ids, 300, replace=False)
    data = data.subset_images(keep)
    perm = np.random.default_rng(0).permutation(300)
    ids = np.sort(keep)
    cal = data.subset_images(ids[perm[:150]])
    test = data.subset_images(ids[perm[150:]])
    est = detection.DetectionCalibrator(method="isotonic", classwise=True)
    est.fit(cal.ground_truth, cal.detections["ssd_inception_v2"])
    out_dets = est.transform(test.detections["ssd_inception_v2"])
    ref = detection.evaluate(test.ground_truth, out_dets)
    row = next(r for r in res["rows"] if r["method"] == "isotonic"
               and r["scope"] == "classwise" and r["protocol"] == "laece")
    assert row["laece"] == pytest.approx(ref["laece"], abs=1e-12)
    assert row["lrp"] == pytest.approx(ref["lrp"], abs=1e-12)
    # bootstrap intervals (seeded by the split) and the paired change over identity
    boot = detection.evaluate(test.ground_truth, out_dets, n_bootstrap=DEFAULT_BOOTSTRAP,
                              random_state=0,
                              return_resamples=True)
    assert (row["laece_ci_low"], row["laece_ci_high"]) == pytest.approx(boot["laece_ci"])
    ident = detection.DetectionCalibrator(method="identity").fit(
        cal.ground_truth, cal.detections["ssd_inception_v2"])
    base = detection.evaluate(test.ground_truth, ident.transform(
        test.detections["ssd_inception_v2"]), n_bootstrap=DEFAULT_BOOTSTRAP, random_state=0,
        return_resamples=True)
    diff = boot["resamples"]["laece"] - base["resamples"]["laece"]
    assert row["laece_vs_identity"] == pytest.approx(ref["laece"] - base["laece"])
    assert row["laece_better_share"] == pytest.approx(np.mean(diff < 0))
    assert row["laece_holds"] == bool(row["laece_vs_identity_ci_high"] < 0)
    assert "_resamples" not in row
    report = (out / "report.md").read_text()
    line = next(ln for ln in report.splitlines()
                if ln.startswith("| ssd_inception_v2 | classwise |") and fmt(ref["laece"]) in ln)
    assert f"[{boot['laece_ci'][0]:.4f}, {boot['laece_ci'][1]:.4f}]" in line
    assert "Change over `identity` (paired bootstrap" in report


# --------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=60), st.integers(0, 2**31))
def test_split_is_a_stratified_partition(labels, seed):
    labels = np.array(labels)
    cal, test = split_indices(labels, seed)
    assert np.array_equal(np.sort(np.concatenate([cal, test])), np.arange(len(labels)))
    for k in np.unique(labels):
        n_k = np.sum(labels == k)
        assert np.sum(labels[cal] == k) == round(n_k * 0.5)
    again = split_indices(labels, seed)
    assert np.array_equal(cal, again[0])


def _brute_force_power_law(x, y):
    best = None
    for b in B_GRID:
        design = np.column_stack([(x / 1e6) ** (-b), np.ones_like(x)])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(np.sum((design @ coef - y) ** 2))
        if best is None or sse < best[0] - 1e-15:
            best = (sse, b, coef)
    return best


def test_power_law_fit_matches_brute_force_and_recovers_b():
    n = np.array([1, 2, 5, 10, 20, 50, 100]) * 1e6
    y = 0.3 * (n / 1e6) ** -0.5 + 0.02
    fit = fit_power_law(n, y)
    assert fit["b"] == pytest.approx(0.5) and fit["a"] == pytest.approx(0.3, rel=1e-6)
    assert fit["c"] == pytest.approx(0.02, abs=1e-8)
    assert fit["b_ci"][0] <= 0.5 <= fit["b_ci"][1]
    noisy = y + np.random.default_rng(1).normal(0, 0.005, len(y))
    sse, b, (a, c) = _brute_force_power_law(n, noisy)
    fit = fit_power_law(n, noisy)
    assert fit["b"] == pytest.approx(b) and fit["a"] == pytest.approx(a, rel=1e-6)
    with pytest.raises(ValueError, match="at least 3 models"):
        fit_power_law([1e6, 2e6], [0.1, 0.2])


def test_gain_trend_verdicts():
    n = np.geomspace(1e6, 1e8, 8)
    shrinking = 0.05 - 0.01 * np.log10(n / 1e6) + np.random.default_rng(0).normal(0, 1e-4, 8)
    assert gain_trend(n, shrinking)["verdict"] == "shrinks"
    assert gain_trend(n, -shrinking)["verdict"] == "grows"
    flat = np.random.default_rng(0).normal(0.02, 0.01, 8)
    assert gain_trend(n, flat)["verdict"] == "no clear trend"
    assert gain_trend(n[:2], shrinking[:2])["verdict"] == "too few models for a verdict"


def test_coco_cli_on_user_files(tmp_path, shared_data, capsys):
    fixture = shared_data / "coco-format-fixture-synthetic-scores"
    gt = fixture / "instances_val2014_100.json"
    dets = fixture / "instances_val2014_fakebbox100_results.json"
    out = tmp_path / "out"
    assert main(["coco", "--gt", str(gt), "--dets", f"fake={dets}", "--methods", "identity",
                 "platt", "--seeds", "1", "--no-plots", "--quiet", "--out", str(out),
                 "--bootstrap", "0"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert {r["detector"] for r in res["rows"]} == {"fake"}
    assert not any(k.endswith(("_ci_low", "_vs_identity")) for r in res["rows"] for k in r)
    assert len(res["rows"]) == 2 * 2 * 2  # methods x scopes x protocols
    with pytest.raises(SystemExit):
        main(["coco", "--gt", str(gt), "--dets", str(dets), "--out", str(out)])
    assert "--dets expects NAME=DETS.json" in capsys.readouterr().err


def test_ranking_win_rates_and_ratings_by_definition():
    """Reference: win rates counted by hand over cells, and the Bradley-Terry strengths as
    the maximiser of the (half-win-regularised) likelihood found by scipy."""
    from scipy.optimize import minimize

    from calibkit.bench.ranking import rank_methods

    rng = np.random.default_rng(0)
    methods = ["uncalibrated", "a", "b", "c"]
    quality = {"uncalibrated": 1.0, "a": 0.5, "b": 0.6, "c": 0.9}
    rows = [{"family": "f", "model": f"m{i}", "seed": s, "method": m,
             "nll": quality[m] + rng.normal(scale=0.2)}
            for i in range(4) for s in range(3) for m in methods]
    ranking = {r["method"]: r for r in rank_methods(rows, metrics=("nll",), n_boot=50)}
    cells = {}
    for r in rows:
        cells.setdefault((r["model"], r["seed"]), {})[r["method"]] = r["nll"]
    wins = np.zeros((4, 4))
    for vals in cells.values():
        for i, mi in enumerate(methods):
            for j, mj in enumerate(methods):
                if i != j:
                    wins[i, j] += 1.0 if vals[mi] < vals[mj] else (0.5 if vals[mi] == vals[mj]
                                                                   else 0.0)
    for i, m in enumerate(methods):
        assert ranking[m]["win_rate"] == pytest.approx(wins[i].sum() / (3 * len(cells)))
    w = wins + 0.5 * (1 - np.eye(4))

    def nll(theta):
        d = theta[:, None] - theta[None, :]
        return -np.sum(w * (d - np.logaddexp(0, d)))

    theta = minimize(nll, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    theta -= theta.mean()
    for i, m in enumerate(methods):
        assert ranking[m]["rating"] == pytest.approx(1000 + 400 * theta[i] / np.log(10),
                                                     abs=1e-3)
    assert ranking["uncalibrated"]["improvement"] == 0.0
    lo, hi = ranking["a"]["rating_ci"]
    assert lo <= ranking["a"]["rating"] <= hi
    assert sum(r["p_best"] for r in ranking.values()) == pytest.approx(1.0)
