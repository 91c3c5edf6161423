"""Regenerate the COCO detector tables and plots of docs/benchmarks.md.

The three bundled COCO detectors x {identity, temperature, Platt, isotonic, linear,
Venn-ABERS} x {class-wise, class-agnostic} under the LaECE_0 / LRP protocol and the D-ECE
protocol, with AP. A thin call into ``calibkit bench coco``; extra arguments are passed
through (``--gt GT.json --dets NAME=DETS.json ...`` runs it on your own detectors)::

    python benchmarks/coco.py
    python benchmarks/coco.py --seeds 3 --jobs 2
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from calibkit.bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
OUT = "benchmarks/results/coco"  # relative: the report shows the command
DOC_IMAGE = ("plots/coco_classwise.png", "docs/img/bench_coco_classwise.png")

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", OUT]
    status = main(["coco", *args])
    out = Path(args[args.index("--out") + 1])
    if status == 0 and (out / DOC_IMAGE[0]).is_file():
        (ROOT / "docs" / "img").mkdir(exist_ok=True)
        shutil.copy(out / DOC_IMAGE[0], ROOT / DOC_IMAGE[1])
    sys.exit(status)
