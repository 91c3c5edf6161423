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
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

__all__ = ["CACHE_BYTES", "WORKING_MEMORY_BYTES", "chunk_rows", "effective_n_jobs",
           "kernel_threads", "run_ranges", "run_tasks"]

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


#: total weight below which :func:`run_ranges` stays on the calling thread
PARALLEL_MIN_WEIGHT = 1 << 14

_POOL: ThreadPoolExecutor | None = None
_POOL_OWNER: tuple[int, int] | None = None  # (process id, threads) the pool was made for
_POOL_LOCK = threading.Lock()


def kernel_threads() -> int:
    """Threads of the compiled kernels: ``CALIBKIT_NUM_THREADS`` if set (a positive
    integer), else the cores this process may run on."""
    env = os.environ.get("CALIBKIT_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"CALIBKIT_NUM_THREADS={env!r}: give a positive integer, or "
                             "unset it to use every core.")
        return n
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _pool(n_threads: int) -> ThreadPoolExecutor:
    """The shared pool of the compiled kernels (made again after a fork: the threads of a
    parent process do not exist in its children)."""
    global _POOL, _POOL_OWNER
    owner = (os.getpid(), n_threads)
    with _POOL_LOCK:
        if _POOL is None or _POOL_OWNER != owner:
            if _POOL is not None and _POOL_OWNER[0] == owner[0]:
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(n_threads, thread_name_prefix="calibkit")
            _POOL_OWNER = owner
        return _POOL


def run_ranges(fn, weights) -> list:
    """Call ``fn(lo, hi)`` on contiguous ranges that cover ``[0, len(weights))``, on
    :func:`kernel_threads` threads; the results of the calls, in the ranges' order.

    ``fn`` is a compiled kernel that releases the GIL and writes disjoint outputs for
    disjoint ranges; ``weights`` (one per item, e.g. the work of a group) balance the
    ranges: about four per thread, of equal total weight, taken by the threads as they
    free up. Small totals (under :data:`PARALLEL_MIN_WEIGHT`) run on the calling thread.
    """
    n = len(weights)
    if n == 0:
        return []
    n_threads = min(kernel_threads(), n)
    cum = np.cumsum(weights, dtype=np.float64)
    total = float(cum[-1])
    if n_threads == 1 or total < PARALLEL_MIN_WEIGHT:
        return [fn(0, n)]
    n_ranges = min(n, 4 * n_threads)
    cuts = np.searchsorted(cum, total * np.arange(1, n_ranges) / n_ranges, side="left") + 1
    bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, n), [n])))
    return run_tasks([partial(fn, int(lo), int(hi))
                      for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)])


def run_tasks(calls) -> list:
    """Run the callables ``calls`` (compiled kernels that release the GIL) on the shared
    pool of :func:`kernel_threads` threads; their results, in order."""
    if len(calls) <= 1:
        return [c() for c in calls]
    futures = [_pool(kernel_threads()).submit(c) for c in calls]
    return [f.result() for f in futures]
