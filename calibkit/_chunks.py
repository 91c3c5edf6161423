"""Working-memory budgets: how many rows a blocked loop takes at once, and how many threads.

Blocked loops process large inputs in row chunks for one of two reasons, each with one
budget here (every chunk size of calibkit derives from them):

* :data:`CACHE_BYTES`: the temporaries of one chunk stay in the CPU cache, so that several
  elementwise passes over a chunk cost about one pass over memory (temperature scaling's
  derivatives, score scans, bin assignment);
* :data:`WORKING_MEMORY_BYTES`: the temporaries of a vectorised pass are bounded whatever the
  input size (bootstrap resamples, debiasing draws, device chunks).
"""

from __future__ import annotations

import os

__all__ = ["CACHE_BYTES", "WORKING_MEMORY_BYTES", "chunk_rows", "effective_n_jobs"]

#: bytes of temporaries a cache-blocked chunk may use
CACHE_BYTES = 1 << 20

#: bytes of temporaries a memory-bounded vectorised pass may use
WORKING_MEMORY_BYTES = 1 << 26


def chunk_rows(row_bytes: float, *, budget: int = CACHE_BYTES, max_rows: int | None = None) -> int:
    """Rows per chunk: as many rows of ``row_bytes`` temporaries as fit in ``budget`` (at
    least 1, at most ``max_rows``)."""
    rows = max(1, int(budget // max(row_bytes, 1)))
    return rows if max_rows is None else max(1, min(rows, int(max_rows)))


def effective_n_jobs(n_jobs) -> int:
    """Threads for ``n_jobs`` as scikit-learn reads it: ``None`` is 1, -1 every core."""
    if n_jobs is None:
        return 1
    if n_jobs == -1:
        return os.cpu_count() or 1
    return max(1, int(n_jobs))
