"""Metric against model size: power-law fits and the trend of each calibrator's gain.

For a family of models with parameter counts ``N`` (in millions) and a metric ``m`` (mean
over seeds), :func:`fit_power_law` fits ``m(N) = a * N**(-b) + c`` by least squares:
for fixed ``b`` the best ``(a, c)`` is a simple linear regression of ``m`` on ``N**(-b)``,
so the fit profiles ``b`` over a grid (``b`` in [-3, 3], step 0.01; ``b > 0`` with ``a > 0``
means the metric falls with scale). The 95% interval on ``b`` comes from a case bootstrap
over models (resamples with fewer than 3 distinct models are dropped); with fewer than 4
models the interval is not reported.

The gain of a calibrator on a model is ``m(uncalibrated) - m(method)`` (positive = the
metric improved, for metrics where lower is better). Its trend with scale is the slope of
the gain on ``log10 N`` (least squares), with a case-bootstrap 95% interval (4+ models): the
answer is "shrinks" if the whole interval is below 0, "grows" if above 0, else "no clear
trend"; with fewer than 4 models, "too few models for a verdict".

A best ``b`` on the edge of the grid means the data do not pin the exponent down (no
power law within the range); the report marks it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_power_law", "gain_trend", "scale_analysis"]

B_GRID = np.round(np.arange(-3.0, 3.0 + 1e-9, 0.01), 2)
N_BOOT = 1000
LOWER_IS_BETTER = ("ece_width", "ece_mass", "ece_classwise", "brier", "nll")


def fit_power_law(n_params, metric, *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Fit ``metric = a * (n_params / 1e6) ** (-b) + c``.

    Parameters
    ----------
    n_params : array-like of shape (n_models,)
        Parameter counts (positive), at least 3 distinct.
    metric : array-like of shape (n_models,)
        The metric of each model.
    n_boot : int, default=1000
        Case-bootstrap resamples of the interval on ``b``.
    seed : int, default=0
        Seed of the resampling.

    Returns
    -------
    dict
        ``a``, ``b``, ``c``, ``rmse`` (root mean squared residual), ``n_models`` and
        ``b_ci`` ([lo, hi] or None).

    Notes
    -----
    Least squares profiled over ``b``: for each ``b`` of the grid ``-3, -2.99, ..., 3`` the
    best ``(a, c)`` is the linear regression of ``metric`` on ``N**(-b)`` (``N`` in
    millions), and the ``b`` of the smallest residual sum of squares is kept (on ties the
    smallest ``|b|``). ``b_ci`` (4+ distinct sizes) holds the 2.5 and 97.5 percentiles of
    ``b`` refitted on ``n_boot`` resamples of the models with replacement, leaving out
    resamples with fewer than 3 distinct sizes.
    """
    x = np.asarray(n_params, dtype=np.float64) / 1e6
    y = np.asarray(metric, dtype=np.float64)
    if len(x) != len(y) or len(np.unique(x)) < 3:
        raise ValueError("a power law a*N^-b + c needs at least 3 models of distinct size.")
    a, b, c, sse = _profile(x[None, :], y[None, :])
    out = {"a": float(a[0]), "b": float(b[0]), "c": float(c[0]),
           "rmse": float(np.sqrt(sse[0] / len(x))), "n_models": int(len(x)), "b_ci": None}
    if len(np.unique(x)) >= 4:
        idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
        xs, ys = x[idx], y[idx]
        distinct = np.array([len(np.unique(r)) for r in xs])
        ok = distinct >= 3
        # chunks keep the (resamples, grid, models) temporaries small
        bb = np.concatenate([_profile(xs[ok][i:i + 100], ys[ok][i:i + 100])[1]
                             for i in range(0, int(ok.sum()), 100)])
        out["b_ci"] = [float(np.percentile(bb, 2.5)), float(np.percentile(bb, 97.5))]
    return out


def gain_trend(n_params, gain, *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Slope of ``gain`` on ``log10(n_params)`` with a case-bootstrap 95% interval and the
    verdict ``"shrinks"`` / ``"grows"`` / ``"no clear trend"``.

    Parameters
    ----------
    n_params : array-like of shape (n_models,)
        Parameter counts (positive), at least 2 distinct.
    gain : array-like of shape (n_models,)
        The gain of a calibrator on each model, ``m(uncalibrated) - m(method)``.
    n_boot : int, default=1000
        Case-bootstrap resamples of the interval on the slope.
    seed : int, default=0
        Seed of the resampling.

    Returns
    -------
    dict
        ``slope_per_decade`` (least-squares slope of the gain on ``log10 n_params``),
        ``slope_ci`` ([lo, hi] or None), ``n_models``, ``mean_gain`` and ``verdict``:
        ``"shrinks"`` (the whole interval below 0), ``"grows"`` (above 0), ``"no clear
        trend"``, or ``"too few models for a verdict"`` (fewer than 4 distinct sizes, no
        interval).

    Notes
    -----
    ``slope_ci`` holds the 2.5 and 97.5 percentiles of the slope refitted on ``n_boot``
    resamples of the models with replacement, leaving out resamples of a single size.
    """
    x = np.log10(np.asarray(n_params, dtype=np.float64))
    g = np.asarray(gain, dtype=np.float64)
    if len(np.unique(x)) < 2:
        raise ValueError("a trend needs at least 2 models of distinct size.")
    slope = float(_slopes(x[None, :], g[None, :])[0])
    out = {"slope_per_decade": slope, "slope_ci": None, "n_models": int(len(x)),
           "mean_gain": float(g.mean()), "verdict": "no clear trend"}
    if len(np.unique(x)) >= 4:
        idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
        xs, gs = x[idx], g[idx]
        ok = xs.std(axis=1) > 0
        s = _slopes(xs[ok], gs[ok])
        lo, hi = float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))
        out["slope_ci"] = [lo, hi]
        if hi < 0:
            out["verdict"] = "shrinks"
        elif lo > 0:
            out["verdict"] = "grows"
    else:
        out["verdict"] = "too few models for a verdict"
    return out


def scale_analysis(summary: list[dict], metrics=LOWER_IS_BETTER) -> list[dict]:
    """Per family, metric and method: the power-law fit of the mean metric against the
    parameter count, and (for calibrators) the trend of the gain over ``uncalibrated``.

    Parameters
    ----------
    summary : list of dict
        Rows with ``family``, ``model``, ``params``, ``method`` and ``<metric>_mean`` (the
        output of :func:`~calibkit.bench.summarise`). Rows without ``params`` are left out.
    metrics : sequence of str, default=LOWER_IS_BETTER
        The metrics to analyse, by default ``("ece_width", "ece_mass", "ece_classwise",
        "brier", "nll")``; lower must be better (the gain's sign assumes it).

    Returns
    -------
    list of dict
        One dict per (family, metric, method) with at least 2 models of distinct size and a
        finite mean metric: ``family``, ``metric``, ``method``, ``n_models``,
        ``power_law`` (:func:`fit_power_law`, or None with fewer than 3 distinct sizes) and
        ``gain`` (:func:`gain_trend` of the gain over ``uncalibrated``; None for
        ``uncalibrated`` itself or when a model lacks its baseline).
    """
    out = []
    families = sorted({r["family"] for r in summary})
    for fam in families:
        rows = [r for r in summary if r["family"] == fam and r.get("params")]
        methods = list(dict.fromkeys(r["method"] for r in rows))
        for metric in metrics:
            key = f"{metric}_mean"
            base = {r["model"]: r[key] for r in rows
                    if r["method"] == "uncalibrated" and _finite(r.get(key))}
            for method in methods:
                pts = [(r["params"], r[key], r["model"]) for r in rows
                       if r["method"] == method and _finite(r.get(key))]
                if len({p for p, _, _ in pts}) < 2:
                    continue
                n = np.array([p for p, _, _ in pts], dtype=np.float64)
                m = np.array([v for _, v, _ in pts])
                rec = {"family": fam, "metric": metric, "method": method,
                       "n_models": len(pts), "power_law": None, "gain": None}
                if len(np.unique(n)) >= 3:
                    rec["power_law"] = fit_power_law(n, m)
                if method != "uncalibrated" and all(name in base for _, _, name in pts):
                    gain = np.array([base[name] - v for _, v, name in pts])
                    rec["gain"] = gain_trend(n, gain)
                out.append(rec)
    return out


def _finite(v) -> bool:
    return v is not None and np.isfinite(v)


def _profile(x: np.ndarray, y: np.ndarray):
    """Best (a, b, c, sse) per row of x, y (shape (r, n)) over the grid of b."""
    # xb: (r, g, n) = x ** -b for every grid value
    xb = np.exp(-B_GRID[None, :, None] * np.log(x)[:, None, :])
    ym = y[:, None, :]
    xm = xb.mean(axis=2, keepdims=True)
    ymean = ym.mean(axis=2, keepdims=True)
    dx = xb - xm
    var = (dx * dx).sum(axis=2)
    cov = (dx * (ym - ymean)).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(var > 0, cov / var, 0.0)
    c = ymean[..., 0] - a * xm[..., 0]
    resid = ym - a[..., None] * xb - c[..., None]
    sse = (resid * resid).sum(axis=2)
    # ties in sse (exact fits): prefer the smallest |b|, the least extreme curve
    order = np.argsort(np.abs(B_GRID), kind="stable")
    best = order[np.argmin(sse[:, order], axis=1)]
    r = np.arange(len(x))
    return a[r, best], B_GRID[best], c[r, best], sse[r, best]


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx = x - x.mean(axis=1, keepdims=True)
    dy = y - y.mean(axis=1, keepdims=True)
    return (dx * dy).sum(axis=1) / (dx * dx).sum(axis=1)
