"""Running a grid of independent tasks with joblib, with a progress bar."""

from __future__ import annotations

import sys
from contextlib import contextmanager


def run_tasks(func, tasks: list, *, jobs: int = 1, backend: str | None = None,
              progress: bool = True, desc: str = "bench") -> list:
    """``[func(*t) for t in tasks]``, in task order, over ``jobs`` joblib workers.

    ``backend`` is any joblib backend name (``"loky"``, ``"threading"``, ``"dask"``,
    ``"ray"``, ...); the caller registers ``dask``/``ray`` first (see :func:`use_backend`).
    Results are put back in task order, so the output does not depend on ``jobs``.
    """
    bar = _progress(len(tasks), desc, progress)
    try:
        if jobs == 1 and backend is None:
            out = []
            for t in tasks:
                out.append(func(*t))
                bar.update(1)
            return out
        from joblib import Parallel, delayed, parallel_backend

        calls = (delayed(_indexed)(i, func, t) for i, t in enumerate(tasks))
        out = [None] * len(tasks)
        # parallel_backend (not parallel_config) and a fallback for joblib < 1.4, which has
        # no unordered generator: then the bar jumps to the end
        with parallel_backend(backend or "loky", n_jobs=jobs):
            try:
                results = Parallel(return_as="generator_unordered")(calls)
            except (TypeError, ValueError):
                results = Parallel()(delayed(_indexed)(i, func, t) for i, t in enumerate(tasks))
            for i, res in results:
                out[i] = res
                bar.update(1)
        return out
    finally:
        bar.close()


def _indexed(i, func, args):
    return i, func(*args)


@contextmanager
def use_backend(backend: str | None, scheduler: str | None = None):
    """Register the ``dask`` or ``ray`` joblib backend (connecting to ``scheduler``, a Dask
    scheduler address, or starting a local cluster) for the duration of the block."""
    if backend == "dask":
        from distributed import Client

        client = Client(scheduler) if scheduler else Client(processes=False)
        try:
            yield
        finally:
            client.close()
        return
    if backend == "ray":
        from ray.util.joblib import register_ray

        register_ray()
    yield


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: a plain counter on stderr
        return _LineBar(total, desc)
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


class _LineBar:
    def __init__(self, total, desc):
        self.total, self.desc, self.n = total, desc, 0

    def update(self, n):
        self.n += n
        sys.stderr.write(f"\r{self.desc}: {self.n}/{self.total}")
        sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")
