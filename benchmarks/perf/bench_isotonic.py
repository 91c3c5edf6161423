"""Speed of IsotonicCalibration against scikit-learn's IsotonicRegression.

Run from the repository root::

    PYTHONPATH=. python benchmarks/perf/bench_isotonic.py [--n 1000000] [--repeat 3]

Prints a markdown table: for each case, the best of ``--repeat`` runs of fit + predict (on
the calibration scores) for calibkit and for ``IsotonicRegression(out_of_bounds="clip",
y_min=0, y_max=1)``, measured in this process on the same inputs, and their ratio
(calibkit / sklearn: below 1 means calibkit is faster). A second table gives ROC AUC of the
raw scores, of the isotonic output and of ``strict=True`` (which must equal the raw AUC).
sklearn is skipped if it is not installed.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from _timing import best_of

from calibkit.isotonic import IsotonicCalibration


def cases(n, rng):
    p = rng.random(n)
    y = (rng.random(n) < p**1.5).astype(np.float64)
    yield "distinct scores", p, y, None
    p3 = np.round(p, 3)
    yield "scores rounded to 3 decimals (ties)", p3, y, None
    yield "distinct scores, sample_weight", p, y, rng.exponential(size=n)
    # long flat PAV blocks: a step function of the score
    y_step = (rng.random(n) < 0.2 + 0.6 * (p > 0.5)).astype(np.float64)
    yield "step target (long flat blocks)", p, y_step, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10**6)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    try:
        from sklearn.isotonic import IsotonicRegression
    except ImportError:  # pragma: no cover
        IsotonicRegression = None

    warnings.simplefilter("ignore")
    rows, auc_rows = [], []
    for label, p, y, w in cases(args.n, rng):

        def ours(strict=False, p=p, y=y, w=w):
            cal = IsotonicCalibration(strict=strict).fit(p, y, sample_weight=w)
            return cal.predict_proba(p)[:, 1]

        t_ours = best_of(ours, args.repeat)
        t_strict = best_of(lambda: ours(True), args.repeat)
        if IsotonicRegression is not None:

            def peer(p=p, y=y, w=w):
                iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
                return iso.fit(p, y, sample_weight=w).predict(p)

            t_peer = best_of(peer, args.repeat)
            diff = float(np.max(np.abs(ours() - peer())))
        else:
            t_peer, diff = np.nan, np.nan
        rows.append((label, t_ours, t_strict, t_peer, diff))
        try:
            from sklearn.metrics import roc_auc_score
        except ImportError:  # pragma: no cover
            continue
        y_hard = y > 0.5
        auc_rows.append((label, roc_auc_score(y_hard, p), roc_auc_score(y_hard, ours()),
                         roc_auc_score(y_hard, ours(True))))

    print(f"n = {args.n:.0e}, fit + predict, best of {args.repeat}\n")
    print("| case | calibkit (s) | calibkit strict (s) | sklearn (s) | ratio calibkit/sklearn "
          "| max abs diff |")
    print("|---|---|---|---|---|---|")
    for label, t_ours, t_strict, t_peer, diff in rows:
        print(f"| {label} | {t_ours:.3f} | {t_strict:.3f} | {t_peer:.3f} | "
              f"{t_ours / t_peer:.2f} | {diff:.1e} |")
    if auc_rows:
        print("\n| case | AUC raw | AUC isotonic | AUC strict=True |")
        print("|---|---|---|---|")
        for label, a0, a1, a2 in auc_rows:
            print(f"| {label} | {a0:.6f} | {a1:.6f} | {a2:.6f} |")


if __name__ == "__main__":
    main()
