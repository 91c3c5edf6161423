"""Speed of calibkit's exact IVAP against the venn-abers package.

Run from the repository root::

    PYTHONPATH=. python benchmarks/perf/bench_venn_abers.py [--n-peer 100000] [--n 1000000]
        [--repeat 3]

Prints a markdown table. Each time is the best of ``--repeat`` runs (the peer: one run),
measured in this process on the same inputs; ratios are what to compare across machines.
Rows:

* fit + predict with ``--n-peer`` calibration and as many test scores, separable scores
  (``y = s > 0.3``), against ``venn_abers.calc_p0p1`` + ``calc_probs`` (the peer's IVAP, whose
  hull pass is quadratic on separable data); p0 and p1 are checked equal to 1e-12.
* fit + predict with ``--n`` calibration and ``--n`` test scores for uniform
  (``y ~ Bernoulli(s)``), separable and skewed (95 % of scores near 0, 5 % near 1) scores,
  against the 1.5 s target and a numpy floor (one argsort of the calibration scores, one sort
  of the test scores and one ``searchsorted``: what any sort-based IVAP must pay).
* CVAP with 5 folds: calibkit fits once and predicts from stored tables; the venn-abers
  package's ``VennAbersCV.predict_proba`` refits every fold at every call.

The compiled hull pass (C, built at install) is what ``ivap_fit`` uses; the pure-Python
reference of the same pass is timed at ``--n-peer`` for reference.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _timing import best_of

from calibkit import VennAbers
from calibkit.venn_abers import _hull_kernel, _upper_slopes_py, ivap_fit, ivap_predict


def make(kind, n, rng):
    s = rng.random(n)
    if kind == "uniform":
        y = (rng.random(n) < s).astype(float)
    elif kind == "separable":
        y = (s > 0.3).astype(float)
    else:
        s = np.where(rng.random(n) < 0.95, rng.beta(0.5, 30, n), rng.beta(30, 0.5, n))
        y = (rng.random(n) < s).astype(float)
    return s, y


def ours(s, y, t):
    c, p0, p1 = ivap_fit(s, y)
    return ivap_predict(c, p0, p1, t)


def floor(s, y, t):
    order = np.argsort(s)
    return y[order], np.searchsorted(s[order], np.sort(t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-peer", type=int, default=100_000)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # saturated probabilities in the CVAP row are expected
    rng = np.random.default_rng(0)
    ours(np.arange(5.0), np.array([0, 1, 0, 1, 1.0]), np.arange(3.0))  # warm up (first-call costs)
    rows = []

    s, y = make("separable", args.n_peer, rng)
    t = rng.random(args.n_peer)
    t_ours = best_of(lambda: ours(s, y, t), args.repeat)
    try:
        from venn_abers.venn_abers import calc_p0p1, calc_probs
    except ImportError:
        print("venn-abers not installed: skipped")
    else:
        def peer():
            p0, p1, c = calc_p0p1(np.c_[1 - s, s], y)
            return calc_probs(p0, p1, c, np.c_[1 - t, t])[1]

        t0 = time.perf_counter()
        theirs = peer()
        t_peer = time.perf_counter() - t0
        a0, a1 = ours(s, y, t)
        err = max(np.abs(a0 - theirs[:, 0]).max(), np.abs(a1 - theirs[:, 1]).max())
        assert err <= 1e-12, err
        rows.append((f"IVAP fit + predict, {args.n_peer:.0e} separable", t_ours,
                     "venn-abers calc_p0p1 + calc_probs", t_peer))
    c = np.r_[0.0, np.cumsum(np.ones(len(s)))]
    cy = np.r_[0.0, np.cumsum(np.sort(y))]
    rows.append((f"hull pass, {args.n_peer:.0e} (compiled)",
                 best_of(lambda: _hull_kernel()(c, cy), args.repeat),
                 "pure-Python reference (same pass)",
                 best_of(lambda: _upper_slopes_py(c, cy), 1)))

    for kind in ("uniform", "separable", "skewed"):
        s, y = make(kind, args.n, rng)
        t = rng.random(args.n)
        rows.append((f"IVAP fit + predict, {args.n:.0e} + {args.n:.0e} {kind}",
                     best_of(lambda: ours(s, y, t), args.repeat),  # noqa: B023
                     "numpy floor: argsort + sort + searchsorted",
                     best_of(lambda: floor(s, y, t), args.repeat)))  # noqa: B023
        rows.append(("  (same, against the 1.5 s target)", rows[-1][1], "target", 1.5))

    n_cv = min(args.n_peer, 20_000)
    s, y = make("uniform", n_cv, rng)
    s = np.round(s, 3)
    t = rng.random(1000)
    va = VennAbers(n_splits=5, shuffle=False).fit(s, y)
    t_pred = best_of(lambda: va.predict_proba(t), args.repeat)
    try:
        from sklearn.base import BaseEstimator, ClassifierMixin
        from venn_abers.venn_abers import VennAbersCV
    except ImportError:
        pass
    else:
        class PassThrough(ClassifierMixin, BaseEstimator):
            def fit(self, X, y):
                self.classes_ = np.unique(y)
                return self

            def predict_proba(self, X):
                return np.c_[1 - X[:, 0], X[:, 0]]

        cv = VennAbersCV(PassThrough(), inductive=False, n_splits=5, shuffle=False)
        cv.fit(s[:, None], y.astype(int))
        t_cv = best_of(lambda: cv.predict_proba(t[:, None]), args.repeat)
        assert np.allclose(cv.predict_proba(t[:, None]), va.predict_proba(t), atol=1e-12)
        rows.append((f"CVAP (5 folds, {n_cv:.0e} cal) predict_proba of 1e3", t_pred,
                     "venn-abers VennAbersCV.predict_proba", t_cv))

    print("| task | calibkit (s) | reference | reference (s) | calibkit / reference |")
    print("|---|---|---|---|---|")
    for task, a, ref, b in rows:
        print(f"| {task} | {a:.4f} | {ref} | {b:.4f} | {a / b:.3g} |")


if __name__ == "__main__":
    main()
