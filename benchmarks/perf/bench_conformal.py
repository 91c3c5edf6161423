"""Speed of split conformal classification against a numpy floor, MAPIE and crepes.

Run from the repository root::

    PYTHONPATH=. python benchmarks/perf/bench_conformal.py [--n-cal 5000] [--n-test 5000]
        [--classes 1000] [--repeat 3]

Prints a markdown table. Each time is the best of ``--repeat`` runs, measured in this process
on the same inputs (softmax of random logits); ratios are what to compare across machines.
Peers that are not installed are skipped. crepes computes p-values with a Python loop over
every (test sample, class) pair, so it runs on ``--crepes-rows`` test rows and its time is
scaled to the full test set (marked "extrapolated").
"""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
from _timing import best_of
from scipy.special import softmax

from calibkit.conformal import SplitConformalClassifier


def lac_floor(p_cal, y_cal, p_test, alpha):
    """The least a split LAC predictor can do in numpy: the conformal quantile of the
    calibration scores and one threshold over the test matrix (no validation)."""
    n = len(y_cal)
    scores = 1.0 - p_cal[np.arange(n), y_cal]
    q = np.quantile(scores, math.ceil((n + 1) * (1 - alpha)) / n, method="lower")
    return (1.0 - p_test) <= q


def _passthrough(y):
    from sklearn.base import BaseEstimator, ClassifierMixin

    class PassThrough(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict_proba(self, X):
            return np.asarray(X)

    return PassThrough().fit(None, y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-cal", type=int, default=5000)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--crepes-rows", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    K, alpha = args.classes, 0.1
    z = rng.normal(size=(args.n_cal + args.n_test, K)) * 3
    p = softmax(z, axis=1)
    y = (rng.random((len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1).clip(0, K - 1)
    pc, yc, pt = p[: args.n_cal], y[: args.n_cal], p[args.n_cal :]
    shape = f"{args.n_cal:,} + {args.n_test:,} x {K:,}"
    rows = []

    def ours_lac():
        model = SplitConformalClassifier(conformity_score="lac", alpha=alpha, input="probs")
        return model.fit(pc, yc).predict_set(pt)

    assert np.array_equal(ours_lac(), lac_floor(pc, yc, pt, alpha))
    floor = best_of(lambda: lac_floor(pc, yc, pt, alpha), args.repeat)
    t_lac = best_of(ours_lac, args.repeat)
    rows.append((f"split LAC fit + predict_set, {shape}", t_lac, "numpy quantile + threshold floor",
                 floor))

    def ours_aps():
        return SplitConformalClassifier(conformity_score="aps", alpha=alpha, input="probs",
                                        randomized=True,
                                        random_state=0).fit(pc, yc).predict_set(pt)

    t_aps = best_of(ours_aps, args.repeat)
    rows.append((f"split APS (randomised) fit + predict_set, {shape}", t_aps, "numpy floor (LAC)",
                 floor))

    model = SplitConformalClassifier(conformity_score="lac", alpha=alpha, input="probs").fit(pc, yc)
    t_pv = best_of(lambda: model.predict_pvalues(pt), args.repeat)
    rows.append((f"LAC p-values, {shape}", t_pv, "numpy floor (LAC sets)", floor))

    try:
        from mapie.classification import SplitConformalClassifier as MapieSCC
    except ImportError:
        print("MAPIE not installed: skipped")
    else:
        est = _passthrough(y)
        for score, ours_t in (("lac", t_lac), ("aps", t_aps)):
            def run(score=score):
                m = MapieSCC(est, confidence_level=1 - alpha, conformity_score=score,
                             prefit=True, random_state=0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m.conformalize(pc, yc)
                    return m.predict_set(pt)[1]

            rows.append((f"split {score.upper()} (calibkit, as above)", ours_t,
                         f"MAPIE {score} conformalize + predict_set", best_of(run, args.repeat)))

    try:
        from crepes import ConformalClassifier
    except ImportError:
        print("crepes not installed: skipped")
    else:
        alphas_cal = 1.0 - pc[np.arange(len(yc)), yc]
        cc = ConformalClassifier().fit(alphas_cal)
        sub = 1.0 - pt[: args.crepes_rows]
        t_cr = best_of(lambda: cc.predict_p(sub, smoothing=False), 1)
        assert np.array_equal(cc.predict_p(sub, smoothing=False),
                              model.predict_pvalues(pt[: args.crepes_rows]))
        rows.append(("LAC p-values (calibkit, as above)", t_pv,
                     f"crepes predict_p (extrapolated from {args.crepes_rows} rows)",
                     t_cr * len(pt) / args.crepes_rows))
        rows.append(("numpy floor (LAC sets)", floor, "crepes predict_p (extrapolated)",
                     t_cr * len(pt) / args.crepes_rows))

    print("| task | calibkit (s) | reference | reference (s) | calibkit / reference |")
    print("|---|---|---|---|---|")
    for task, ours_t, ref, ref_t in rows:
        print(f"| {task} | {ours_t:.4f} | {ref} | {ref_t:.4f} | {ours_t / ref_t:.3g} |")


if __name__ == "__main__":
    main()
