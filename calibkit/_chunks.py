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


#: elements of input from which ``n_jobs=None`` takes several threads
AUTO_THREADS_SIZE = 1 << 20
#: most threads ``n_jobs=None`` takes (numpy's elementwise passes are memory-bound)
AUTO_THREADS_MAX = 4


def effective_n_jobs(n_jobs, size: int | None = None) -> int:
    """Threads for ``n_jobs``: -1 every core, a positive integer that many; ``None`` one
    thread, or, when ``size`` (elements of the input) is given and at least
    :data:`AUTO_THREADS_SIZE`, up to :data:`AUTO_THREADS_MAX` cores, as numpy's own BLAS
    calls use the cores without being asked."""
    if n_jobs is None:
        if size is not None and size >= AUTO_THREADS_SIZE:
            return min(os.cpu_count() or 1, AUTO_THREADS_MAX)
        return 1
    if n_jobs == -1:
        return os.cpu_count() or 1
    return max(1, int(n_jobs))
