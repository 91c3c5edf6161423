"""Tests of detection.cli: the printed numbers are exactly ``detection.evaluate``'s, the
written detections exactly ``DetectionCalibrator.transform``'s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibkit import detection
from calibkit.detection import cli

FIXTURE = Path(__file__).parent / "data" / "coco_fixture"
GT = str(FIXTURE / "instances_val2014_100.json")
DETS = str(FIXTURE / "instances_val2014_fakebbox100_results.json")


def test_evaluate_json_and_table(capsys):
    assert cli.main(["evaluate", "--gt", GT, "--dets", DETS, "--ap", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    summary = got.pop("coco_summary")
    assert got == pytest.approx(detection.evaluate(GT, DETS, ap=True))
    assert summary == detection.coco_summary(GT, DETS)
    assert cli.main(["evaluate", "--gt", GT, "--dets", DETS, "--ap"]) == 0
    table = capsys.readouterr().out
    assert table.count("Average Precision") == 6 and table.count("Average Recall") == 6
    assert f"maxDets=  1 ] = {summary['AR1']:0.3f}" in table
    assert cli.main(["detection", "evaluate", "--gt", GT, "--dets", DETS, "--tau", "0.5",
                     "--iou-op", "gt"]) == 0
    table = capsys.readouterr().out
    ref = detection.evaluate(GT, DETS, tau=0.5, iou_op="gt")
    assert "IoU > 0.5" in table and f"{ref['lrp']:.4f}" in table and "AP" not in table


def test_evaluate_bootstrap_intervals(capsys):
    assert cli.main(["evaluate", "--gt", GT, "--dets", DETS, "--bootstrap", "30", "--seed", "4",
                     "--confidence-level", "0.9", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    ref = detection.evaluate(GT, DETS, n_bootstrap=30, random_state=4, confidence_level=0.9)
    assert got["lrp_ci"] == pytest.approx(list(ref["lrp_ci"]))
    assert set(got) == set(ref)
    assert cli.main(["evaluate", "--gt", GT, "--dets", DETS, "--bootstrap", "30", "--seed",
                     "4", "--confidence-level", "0.9"]) == 0
    table = capsys.readouterr().out
    lo, hi = ref["laece_ci"]
    assert "90% image-level bootstrap intervals (30 resamples" in table
    assert f"{ref['laece']:.4f}  [{lo:.4f}, {hi:.4f}]" in table


def test_calibrate_writes_detections_and_model(tmp_path, capsys):
    out, model = tmp_path / "out.json", tmp_path / "model.json"
    assert cli.main(["calibrate", "--gt-val", GT, "--dets-val", DETS, "--dets", DETS,
                     "--method", "isotonic", "--out", str(out), "--save-model", str(model)]) == 0
    written = json.loads(out.read_text())
    ref = detection.DetectionCalibrator(method="isotonic").fit(GT, DETS).transform(DETS).to_coco()
    assert written == ref
    again = detection.DetectionCalibrator.load(model)
    assert again.transform(DETS).to_coco() == ref
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["beta", "spline", "venn_abers", "histogram"])
def test_calibrate_takes_every_binary_registry_method(tmp_path, method):
    from calibkit.registry import calibrator_names

    assert method in calibrator_names(binary=True)
    out = tmp_path / "out.json"
    argv = ["calibrate", "--gt-val", GT, "--dets-val", DETS, "--dets", DETS,
            "--method", method, "--target", "binary", "--out", str(out)]
    assert cli.main(argv) == 0
    ref = (detection.DetectionCalibrator(method=method, target="binary")
           .fit(GT, DETS).transform(DETS).to_coco())
    assert json.loads(out.read_text()) == ref


def test_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "--gt", str(tmp_path / "missing.json"), "--dets", DETS])
    assert exc.value.code == 2 and "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["calibrate", "--gt-val", GT])  # missing arguments
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(["calibrate", "--gt-val", GT, "--dets-val", DETS, "--dets", DETS,
                  "--out", str(tmp_path / "o.json"), "--thresholds", "high"])
    assert exc.value.code == 2 and "--thresholds" in capsys.readouterr().err


def test_add_subparser_registers_on_a_parent_parser():
    import argparse

    parser = argparse.ArgumentParser(prog="calibkit")
    cli.add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["detection", "evaluate", "--gt", GT, "--dets", DETS])
    assert args.func(args) == 0
