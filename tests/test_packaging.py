"""Installation shape: ``detection/`` installs as ``calibkit.detection``, never as a top-level
``detection`` (a name user projects commonly have), for regular and editable installs.

Each install goes into a fresh virtual environment without dependencies; the check runs
from an empty folder (so the repository root is not on ``sys.path``) and only locates the
modules (``importlib.util.find_spec`` imports ``calibkit/__init__.py``, which needs nothing),
the compiled kernels included (built from Cython by each install).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib.util, sys
spec = importlib.util.find_spec("calibkit.detection")
assert spec is not None and spec.origin.replace("\\\\", "/").endswith("detection/__init__.py"), spec
import os
assert os.path.isfile(os.path.join(spec.submodule_search_locations[0], "matching.py"))
assert importlib.util.find_spec("detection") is None, importlib.util.find_spec("detection")
for name in ("calibkit.detection._ckernels", "calibkit._venn_abers_hull"):  # compiled
    spec = importlib.util.find_spec(name)
    assert spec is not None and not spec.origin.endswith((".py", ".pyx")), (name, spec)
print("ok")
"""


def _venv(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    return tmp_path / "venv" / "bin" / "python"


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
         *args],
        check=True,
        capture_output=True,
    )


def _check(python: Path, cwd: Path) -> None:
    out = subprocess.run([str(python), "-I", "-c", CHECK], cwd=cwd, capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("calibkit-*.whl"))


def test_wheel_contents_have_no_top_level_detection(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "calibkit/detection/__init__.py" in names
    assert "calibkit/detection/matching.py" in names
    assert any(n.startswith("calibkit/detection/_ckernels.") and not n.endswith(".pyx")
               for n in names)  # the compiled kernels
    tops = {n.split("/")[0] for n in names}
    assert "detection" not in tops
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "calibkit.detection.calibrate" in text


def test_regular_install(wheel, tmp_path):
    python = _venv(tmp_path)
    _pip(python, "--no-index", str(wheel))
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    _check(python, empty)


def test_editable_install(tmp_path):
    import shutil

    # an editable install builds the compiled kernels in place: build a copy of the source,
    # never the modules this test process has loaded
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.so",
        "*.pyd", "bench-out", "site", ".hypothesis", ".pytest_cache", ".ruff_cache"))
    python = _venv(tmp_path)
    _pip(python, "-e", str(src))
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    _check(python, empty)
