"""Every failure of the command line is one line on stderr that names the file, field or
option, with a non-zero exit status and never a traceback."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from calibkit import cli

FIXTURE = "coco-format-fixture-synthetic-scores"


def _run(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code not in (0, None), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def files(tmp_path):
    gt = {"images": [{"id": 1, "width": 10, "height": 10}],
          "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5],
                           "area": 25, "iscrowd": 0}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff")
    (tmp_path / "truncated.json").write_text(json.dumps(gt)[:40])
    (tmp_path / "number.json").write_text("42")
    (tmp_path / "strboxes.json").write_text(json.dumps([{**dets[0], "bbox": ["0", 0, 5, 5]}]))
    (tmp_path / "strid.json").write_text(json.dumps([{**dets[0], "image_id": "1"}]))
    (tmp_path / "badgz.json.gz").write_bytes(gzip.compress(b"[{")[:-4])
    (tmp_path / "folder").mkdir()
    return tmp_path


@pytest.mark.parametrize("gt, dets, word", [
    ("folder", "dets.json", "folder"),
    ("binary.json", "dets.json", "binary.json"),
    ("truncated.json", "dets.json", "truncated.json"),
    ("number.json", "dets.json", "number.json"),
    ("missing.json", "dets.json", "missing.json"),
    ("gt.json", "strboxes.json", "bbox"),
    ("gt.json", "strid.json", "image_id"),
    ("gt.json", "badgz.json.gz", "badgz"),
])
def test_detection_evaluate_bad_files(files, capsys, gt, dets, word):
    line = _run(["detection", "evaluate", "--gt", str(files / gt), "--dets", str(files / dets)],
                capsys)
    assert word in line, line


@pytest.mark.parametrize("option, value, word", [
    ("--out", "folder", "is a directory"),
    ("--out", "nowhere/out.json", "does not exist"),
    ("--save-model", "folder", "is a directory"),
])
def test_detection_calibrate_bad_outputs(files, capsys, option, value, word):
    outputs = {"--out": str(files / "out.json"), option: str(files / value)}
    argv = ["detection", "calibrate", "--gt-val", str(files / "gt.json"), "--dets-val",
            str(files / "dets.json"), "--dets", str(files / "dets.json")]
    for key, path in outputs.items():
        argv += [key, path]
    line = _run(argv, capsys)
    assert option in line and word in line, line


def test_detection_calibrate_full_disk(files, capsys):
    line = _run(["detection", "calibrate", "--gt-val", str(files / "gt.json"), "--dets-val",
                 str(files / "dets.json"), "--dets", str(files / "dets.json"), "--out",
                 "/dev/full"], capsys)
    assert "space" in line.lower(), line


def test_bench_bad_data_and_out(tmp_path, capsys):
    data = tmp_path / "models"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.savez(data / "m.npz", logits=rng.normal(size=(20, 3)), labels=rng.integers(0, 3, 20))
    (data / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    line = _run(["bench", "classification", "--data", str(data), "--out", str(tmp_path / "o"),
                 "--quiet", "--no-plots", "--seeds", "1"], capsys)
    assert "broken.npz" in line
    (data / "broken.npz").unlink()
    np.savez(data / "empty.npz", logits=np.zeros((20, 3)), labels=np.zeros(20, int),
             params=np.zeros(0))
    line = _run(["bench", "classification", "--data", str(data), "--out", str(tmp_path / "o"),
                 "--quiet", "--no-plots", "--seeds", "1"], capsys)
    assert "empty.npz" in line and "params" in line
    (data / "empty.npz").unlink()
    (tmp_path / "afile").write_text("x")
    line = _run(["bench", "classification", "--data", str(data), "--out",
                 str(tmp_path / "afile"), "--quiet", "--no-plots", "--seeds", "1"], capsys)
    assert "--out" in line and "is a file" in line
    line = _run(["bench", "classification", "--data", str(tmp_path / "afile"), "--out",
                 str(tmp_path / "o"), "--quiet"], capsys)
    assert "afile" in line


def test_unexpected_errors_are_one_line_too(monkeypatch, capsys):
    from calibkit.bench import cli as bench_cli

    def boom(args):
        raise IndexError("a bug")

    monkeypatch.setattr(bench_cli, "run_all_command", boom)
    monkeypatch.delenv("CALIBKIT_DEBUG", raising=False)
    line = _run(["bench", "all", "--quiet"], capsys)
    assert "IndexError" in line and "CALIBKIT_DEBUG" in line
