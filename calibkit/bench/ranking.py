"""Ranking the methods of a family across its (model, seed) cells.

Each (model, seed) cell of a family is a "match" between the methods that ran on it: for a
metric where lower is better, method ``i`` beats ``j`` in a cell when its value is lower (a
tie counts half). Over the cells of the family:

* **win rate**: the fraction of its pairwise comparisons a method wins;
* **rating**: an Elo-style rating, the Bradley-Terry maximum-likelihood strengths of the
  pairwise outcomes (Hunter's MM algorithm, with half a win added each way to every pair
  that met, so that an unbeaten method has a finite rating) on the Elo scale
  ``1000 + 400 log10(strength)``, centred so that the geometric mean strength is 1 (as the
  Chatbot Arena leaderboard computes its "Elo"); a 400-point gap means 10:1 odds;
* **improvement**: the mean over cells of ``metric(uncalibrated) - metric(method)``;
* **95% intervals**: a bootstrap over cells (cells resampled with replacement, everything
  recomputed, percentile intervals), and ``p_best``: the fraction of resamples in which the
  method has the highest rating.

The metrics are the log-loss (``nll``) and Brier improvements and the top-label ECE.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RANK_METRICS", "rank_methods", "best_method_statements"]

#: metric -> what its ranking is called in reports
RANK_METRICS = {"nll": "log-loss improvement", "brier": "Brier improvement",
                "ece_width": "top-label ECE (15 equal-width bins)"}
N_BOOT = 500


def rank_methods(rows: list[dict], *, metrics=tuple(RANK_METRICS), n_boot: int = N_BOOT,
                 seed: int = 0) -> list[dict]:
    """Win rates, ratings and improvements per (family, metric, method).

    Parameters
    ----------
    rows : list of dict
        Benchmark rows with ``family``, ``model``, ``seed``, ``method`` and the metrics
        (conformal rows, which have none of them, are ignored).
    metrics : tuple of str, default=("nll", "brier", "ece_width")
        Metrics where lower is better (the keys of :data:`RANK_METRICS`).
    n_boot : int, default=500
        Bootstrap resamples of the cells.
    seed : int, default=0
        Seeds the bootstrap.

    Returns
    -------
    list of dict
        One record per (family, metric, method), best rating first within each (family,
        metric): ``family``, ``metric``, ``method``, ``n_cells``, ``win_rate``,
        ``win_rate_ci``, ``rating``, ``rating_ci``, ``improvement``, ``improvement_ci``,
        ``p_best``.
    """
    out = []
    for fam in dict.fromkeys(r["family"] for r in rows):
        fam_rows = [r for r in rows if r["family"] == fam]
        for metric in metrics:
            rec = [r for r in fam_rows if _finite(r.get(metric))]
            if not rec:
                continue
            methods = list(dict.fromkeys(r["method"] for r in rec))
            cells = list(dict.fromkeys((r["model"], r["seed"]) for r in rec))
            if len(methods) < 2:
                continue
            v = np.full((len(cells), len(methods)), np.nan)
            ci, mi = {c: i for i, c in enumerate(cells)}, {m: i for i, m in enumerate(methods)}
            for r in rec:
                v[ci[(r["model"], r["seed"])], mi[r["method"]]] = r[metric]
            out += _rank_family(fam, metric, methods, v, n_boot, seed)
    return out


def best_method_statements(ranking: list[dict]) -> list[str]:
    """One sentence per (family, metric): the top-rated method, its rating interval, how
    often it is the best in the bootstrap, and its win rate.

    Parameters
    ----------
    ranking : list of dict
        The output of :func:`rank_methods` (best rating first within each family and
        metric).

    Returns
    -------
    list of str
        The sentences (markdown), one per (family, metric) in the order of ``ranking``.
    """
    lines = []
    keys = list(dict.fromkeys((r["family"], r["metric"]) for r in ranking))
    for fam, metric in keys:
        recs = [r for r in ranking if r["family"] == fam and r["metric"] == metric]
        best, second = recs[0], recs[1] if len(recs) > 1 else None
        lo, hi = best["rating_ci"]
        what = RANK_METRICS.get(metric, metric)
        text = (f"{fam}, {what}: best is **{best['method']}** (rating {best['rating']:.0f}, "
                f"95% CI [{lo:.0f}, {hi:.0f}]; top-rated in {100 * best['p_best']:.0f}% of "
                f"{best['n_boot']} bootstrap resamples of the {best['n_cells']} cells; wins "
                f"{100 * best['win_rate']:.0f}% of its comparisons")
        if second is not None:
            overlap = second["rating_ci"][1] >= lo
            text += (f"; runner-up {second['method']} {second['rating']:.0f}, "
                     + ("intervals overlap: not a clear winner" if overlap
                        else "intervals disjoint: a clear winner"))
        lines.append(text + ").")
    return lines


# --------------------------------------------------------------------------------------


def _rank_family(fam, metric, methods, v, n_boot, seed):
    n_cells, m = v.shape
    wins = _cell_wins(v)  # (cells, m, m)
    base = methods.index("uncalibrated") if "uncalibrated" in methods else None
    imp = (v[:, [base]] - v) if base is not None else np.full_like(v, np.nan)
    weights = np.ones(n_cells)
    rating = _bt_ratings(np.einsum("c,cij->ij", weights, wins), _met(v, weights))
    win_rate = _win_rate(wins, v, weights)
    improvement = _nanmean(imp, weights)
    rng = np.random.default_rng(seed)
    boot_r, boot_w, boot_i = [], [], []
    for _ in range(n_boot):
        cnt = np.bincount(rng.integers(0, n_cells, n_cells), minlength=n_cells).astype(float)
        boot_r.append(_bt_ratings(np.einsum("c,cij->ij", cnt, wins), _met(v, cnt)))
        boot_w.append(_win_rate(wins, v, cnt))
        boot_i.append(_nanmean(imp, cnt))
    boot_r, boot_w, boot_i = np.array(boot_r), np.array(boot_w), np.array(boot_i)
    best = np.argmax(np.where(np.isfinite(boot_r), boot_r, -np.inf), axis=1)
    p_best = np.bincount(best, minlength=m) / n_boot
    recs = []
    for j, meth in enumerate(methods):
        recs.append({
            "family": fam, "metric": metric, "method": meth,
            "n_cells": int(np.sum(np.isfinite(v[:, j]))), "n_boot": n_boot,
            "win_rate": float(win_rate[j]), "win_rate_ci": _ci(boot_w[:, j]),
            "rating": float(rating[j]), "rating_ci": _ci(boot_r[:, j]),
            "improvement": float(improvement[j]), "improvement_ci": _ci(boot_i[:, j]),
            "p_best": float(p_best[j]),
        })
    return sorted(recs, key=lambda r: -r["rating"])


def _cell_wins(v):
    """``wins[c, i, j]``: 1 if method i beats j in cell c, 0.5 for a tie, 0 otherwise or when
    either did not run."""
    a, b = v[:, :, None], v[:, None, :]
    both = np.isfinite(a) & np.isfinite(b)
    w = np.where(a < b, 1.0, np.where(a == b, 0.5, 0.0))
    w = np.where(both, w, 0.0)
    idx = np.arange(v.shape[1])
    w[:, idx, idx] = 0.0
    return w


def _met(v, weights):
    """Weighted number of cells in which each pair of methods both ran."""
    present = np.isfinite(v).astype(float)
    met = np.einsum("c,ci,cj->ij", weights, present, present)
    np.fill_diagonal(met, 0.0)
    return met


def _bt_ratings(wins, met, n_iter=1000, tol=1e-10):
    """Bradley-Terry strengths by the MM algorithm, on the Elo scale."""
    m = wins.shape[0]
    prior = np.where(met > 0, 0.5, 0.0)
    w = wins + prior
    n = w + w.T
    total = w.sum(axis=1)
    p = np.ones(m)
    active = n.sum(axis=1) > 0
    for _ in range(n_iter):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(active & (denom > 0), total / np.where(denom > 0, denom, 1.0), 1.0)
        new = np.maximum(new, 1e-300)
        new /= np.exp(np.mean(np.log(new[active]))) if np.any(active) else 1.0
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    ratings = 1000.0 + 400.0 * np.log10(p)
    return np.where(active, ratings, np.nan)


def _win_rate(wins, v, weights):
    won = np.einsum("c,cij->i", weights, wins)
    played = _met(v, weights).sum(axis=1)
    return np.divide(won, played, out=np.full(len(won), np.nan), where=played > 0)


def _nanmean(x, weights):
    ok = np.isfinite(x)
    num = np.einsum("c,cj->j", weights, np.where(ok, x, 0.0))
    den = np.einsum("c,cj->j", weights, ok.astype(float))
    return np.divide(num, den, out=np.full(x.shape[1], np.nan), where=den > 0)


def _ci(x):
    x = x[np.isfinite(x)]
    if not len(x):
        return [float("nan"), float("nan")]
    return [float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5))]


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating)) and np.isfinite(v)
