"""Every ```python block of every page under docs/ runs, and the site builds.

Reference: the pages themselves. Each page's blocks run in order, in one namespace, from the
repository root (as a reader would paste them). A page is skipped only when a block needs an
optional dependency that is not installed; any other error fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
#: top-level modules whose absence skips a page instead of failing it
OPTIONAL = {"torch", "torchvision", "dask", "distributed", "torchmetrics", "mapie",
            "venn_abers", "netcal", "matplotlib", "pycocotools", "faster_coco_eval"}


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_code_blocks_run(page, monkeypatch):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip("no python blocks")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}[block {i}]", "exec"), namespace)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] in OPTIONAL:
                pytest.skip(f"optional dependency {exc.name} is not installed")
            raise
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def test_block_extraction():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    page = DOCS.parent / "tests" / "_tmp_page.md"
    try:
        page.write_text(text)
        assert python_blocks(page) == ["x = 1\n", "y = 2\n"]
    finally:
        page.unlink()


def test_every_page_is_in_the_nav():
    yaml = (ROOT / "mkdocs.yml").read_text()
    nav = yaml[yaml.index("\nnav:"):]
    missing = [str(p.relative_to(DOCS)) for p in PAGES if f" {p.relative_to(DOCS)}" not in nav]
    assert not missing, f"add these pages to the nav of mkdocs.yml: {missing}"


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (tmp_path / "api" / "index.html").exists()
    html = (tmp_path / "api" / "index.html").read_text()
    assert "CalibratedClassifier" in html and "TemperatureScaler" in html  # from docstrings
