"""Regenerate the classification tables and plots of docs/benchmarks.md.

Every bundled classifier family (CIFAR-100, CIFAR-10, ImageNet top-1) x every calibrator x
5 stratified calibration/test splits, with the model-scale analysis. A thin call into
``calibkit bench classification``; extra arguments are passed through::

    python benchmarks/model_scales.py                      # the published run
    python benchmarks/model_scales.py --jobs 2 --methods temperature isotonic
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from calibkit.bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
OUT = "benchmarks/results/classification"  # relative: the report shows the command
DOC_IMAGES = [("plots/scale_imagenet_ece_width.png", "docs/img/bench_scale_imagenet_ece_width.png"),
              ("plots/ranking_cifar100.png", "docs/img/bench_ranking_cifar100.png")]

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", OUT]
    status = main(["classification", *args])
    out = Path(args[args.index("--out") + 1])
    for src, dst in DOC_IMAGES:
        if status == 0 and (out / src).is_file():
            (ROOT / "docs" / "img").mkdir(exist_ok=True)
            shutil.copy(out / src, ROOT / dst)
    sys.exit(status)
