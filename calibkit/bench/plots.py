"""PNG plots of benchmark results (matplotlib imported lazily, Agg backend)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

SCALE_METRICS = ("ece_width", "ece_mass", "nll", "brier")


def plot_classification(result: dict, out: Path) -> list[Path]:
    """Reliability diagrams (seed 0, one PNG per model, one panel per method) and
    metric-vs-scale lines (one PNG per family and metric); returns the paths written.

    Also one ranking plot per family when ``result`` has a ``ranking``. A family gets scale
    plots only when it has models of at least 2 distinct sizes.

    Parameters
    ----------
    result : dict
        The output of :func:`~calibkit.bench.finish_classification` (``curves``, ``rows``,
        ``summary``, and ``scale`` / ``ranking`` when present).
    out : str or os.PathLike
        The folder of the PNGs (created if needed).

    Returns
    -------
    list of pathlib.Path
        The PNG files written.
    """
    plt = _pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    by_model: dict[str, list] = {}
    for key, curve in result["curves"].items():
        fam, model, method = key.split("/", 2)
        by_model.setdefault(f"{fam}/{model}", []).append((method, curve))
    ece = {(r["family"], r["model"], r["method"]): r["ece_width"]
           for r in result["rows"] if r["seed"] == 0 and "ece_width" in r}
    for fm, curves in by_model.items():
        fam, model = fm.split("/", 1)
        paths.append(_reliability_grid(plt, curves, ece, fam, model,
                                       out / f"reliability_{_slug(fam)}_{_slug(model)}.png"))
    for fam in dict.fromkeys(r["family"] for r in result.get("ranking", [])):
        paths.append(_ranking_plot(plt, [r for r in result["ranking"] if r["family"] == fam],
                                   fam, out / f"ranking_{_slug(fam)}.png"))
    for fam in dict.fromkeys(r["family"] for r in result["summary"]):
        rows = [r for r in result["summary"] if r["family"] == fam and r.get("params")]
        if len({r["params"] for r in rows}) < 2:
            continue
        for metric in SCALE_METRICS:
            if any(f"{metric}_mean" in r for r in rows):
                fits = {s["method"]: s["power_law"] for s in result.get("scale", [])
                        if s["family"] == fam and s["metric"] == metric}
                paths.append(_scale_plot(plt, rows, metric, fits, fam,
                                         out / f"scale_{_slug(fam)}_{metric}.png"))
    return paths


def _reliability_grid(plt, curves, ece, fam, model, path) -> Path:
    from calibkit.metrics import ReliabilityCurve
    from calibkit.plot import ReliabilityDisplay

    n = len(curves)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (method, c) in zip(axes.ravel(), curves, strict=False):
        curve = ReliabilityCurve(**{k: (np.asarray(v) if isinstance(v, list) else v)
                                    for k, v in c.items()})
        ReliabilityDisplay(curve, ece=ece.get((fam, model, method)), name=method).plot(
            ax=ax, show_histogram=False, markersize=3)
        ax.set_title(method, fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"{fam} / {model}: top-label reliability (test half, seed 0)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _scale_plot(plt, rows, metric, fits, fam, path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, meth in enumerate(methods):
        rs = sorted((r for r in rows if r["method"] == meth and f"{metric}_mean" in r),
                    key=lambda r: r["params"])
        if not rs:
            continue
        x = np.array([r["params"] for r in rs], dtype=float)
        y = np.array([r[f"{metric}_mean"] for r in rs])
        e = np.array([r[f"{metric}_std"] for r in rs])
        color = f"C{i % 10}"
        ax.errorbar(x, y, yerr=e, marker="o", linestyle="none", color=color, label=meth,
                    markersize=4, capsize=2)
        fit = fits.get(meth)
        if fit:
            xx = np.geomspace(x.min(), x.max(), 100)
            ax.plot(xx, fit["a"] * (xx / 1e6) ** (-fit["b"]) + fit["c"], color=color, lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric)
    ax.set_title(f"{fam}: {metric} against model size (lines: a·N^-b + c)", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _ranking_plot(plt, recs, fam, path) -> Path:
    """One panel per metric: each method's rating with its 95% bootstrap interval."""
    from calibkit.bench.ranking import RANK_METRICS

    metrics = list(dict.fromkeys(r["metric"] for r in recs))
    n_methods = max(sum(r["metric"] == m for r in recs) for m in metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics),
                                                       0.9 + 0.28 * n_methods), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        rs = sorted((r for r in recs if r["metric"] == metric), key=lambda r: r["rating"])
        y = np.arange(len(rs))
        x = np.array([r["rating"] for r in rs])
        lo = np.array([r["rating_ci"][0] for r in rs])
        hi = np.array([r["rating_ci"][1] for r in rs])
        ax.errorbar(x, y, xerr=[np.clip(x - lo, 0, None), np.clip(hi - x, 0, None)], fmt="o",
                    color="C0", ecolor="grey", capsize=2, markersize=4)
        ax.set_yticks(y)
        ax.set_yticklabels([r["method"] for r in rs], fontsize=7)
        ax.axvline(1000, color="grey", lw=0.5, ls="--")
        ax.set_xlabel("rating (Elo scale, 95% bootstrap CI)", fontsize=8)
        ax.set_title(RANK_METRICS.get(metric, metric), fontsize=9)
    fig.suptitle(f"{fam}: ranking across (model, seed) cells", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s)


def plot_coco(result: dict, out: Path) -> list[Path]:
    """Grouped bars of LaECE_0, LRP and D-ECE by detector and method (one PNG per scope).

    Parameters
    ----------
    result : dict
        The output of :func:`~calibkit.bench.run_coco` (``config`` and ``summary``).
    out : str or os.PathLike
        The folder of the PNGs (created if needed).

    Returns
    -------
    list of pathlib.Path
        The PNG files written.
    """
    plt = _pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    panels = [("laece", "laece"), ("laece", "lrp"), ("dece", "dece")]
    paths = []
    for scope in result["config"]["scopes"]:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8))
        for ax, (protocol, metric) in zip(np.atleast_1d(axes), panels, strict=False):
            rows = [r for r in result["summary"] if r["protocol"] == protocol
                    and r["scope"] == scope and f"{metric}_mean" in r]
            dets = list(dict.fromkeys(r["detector"] for r in rows))
            methods = list(dict.fromkeys(r["method"] for r in rows))
            width = 0.8 / max(len(methods), 1)
            for j, meth in enumerate(methods):
                vals = [next((r[f"{metric}_mean"] for r in rows
                              if r["detector"] == d and r["method"] == meth), np.nan)
                        for d in dets]
                ax.bar(np.arange(len(dets)) + j * width, vals, width, label=meth,
                       color=f"C{j % 10}")
            ax.set_xticks(np.arange(len(dets)) + 0.4 - width / 2)
            ax.set_xticklabels(dets, fontsize=7, rotation=10)
            ax.set_title(f"{metric} ({protocol} protocol)", fontsize=9)
        # the panel with the most methods carries the legend
        fullest = max(np.atleast_1d(axes), key=lambda a: len(a.get_legend_handles_labels()[1]))
        fullest.legend(fontsize=7)
        fig.suptitle(f"COCO detectors, {scope} calibration (test half)", fontsize=10)
        fig.tight_layout()
        path = out / f"coco_{_slug(scope)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
