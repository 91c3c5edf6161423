"""Timing helpers shared by the benchmark scripts (run them from the repository root:
``PYTHONPATH=. python benchmarks/perf/bench_<area>.py``; this folder is then on sys.path)."""

from __future__ import annotations

import math
import time


def best_time(fn, repeat: int = 1, *, clock=time.perf_counter):
    """Best of ``repeat`` timings of ``fn()`` on ``clock``, and the last result of ``fn``."""
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = clock()
        out = fn()
        best = min(best, clock() - t0)
    return best, out


def best_of(fn, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls of ``fn()``."""
    return best_time(fn, repeat)[0]
