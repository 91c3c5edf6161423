"""Aggregating benchmark rows and writing ``results.json``, ``results.csv``, ``summary.csv``
and ``report.md``.

Numbers in the report are ``mean ± std`` over seeds (sample standard deviation, ``ddof=1``;
0 with one seed), formatted with :func:`fmt`.
"""

from __future__ import annotations

import csv
import json
import math
import platform
from pathlib import Path

import numpy as np

__all__ = ["summarise", "fmt", "write_json", "write_csv", "markdown_table"]

ID_KEYS = ("family", "model", "params", "data", "method")
COCO_ID_KEYS = ("detector", "method", "scope", "protocol")
NOT_METRICS = {"seed", "n_calib", "n_test", "params", "n_images_calib", "n_images_test"}


def summarise(rows: list[dict], id_keys=ID_KEYS) -> list[dict]:
    """Group ``rows`` by ``id_keys`` (in first-seen order) and give ``<metric>_mean`` and
    ``<metric>_std`` of every numeric column, plus ``n_seeds``.

    Parameters
    ----------
    rows : list of dict
        One dict per grid cell, as :func:`~calibkit.bench.run_classification` or
        :func:`~calibkit.bench.run_coco` give them.
    id_keys : sequence of str, default=("family", "model", "params", "data", "method")
        The keys that identify a group (a missing key counts as None).

    Returns
    -------
    list of dict
        One dict per group: its ``id_keys`` values, ``n_seeds`` (rows in the group), and
        for every numeric column of the group's first row that is not an id and not a
        count (``seed``, ``n_calib``, ``n_test``, ``params``, ``n_images_*``),
        ``<column>_mean`` and ``<column>_std`` (sample standard deviation, ``ddof=1``; 0
        for one row). Booleans are not numeric here.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in id_keys), []).append(r)
    out = []
    for key, rs in groups.items():
        rec = dict(zip(id_keys, key, strict=True))
        rec["n_seeds"] = len(rs)
        metrics = [k for k, v in rs[0].items()
                   if k not in id_keys and k not in NOT_METRICS and _is_number(v)]
        for m in metrics:
            vals = np.array([r[m] for r in rs], dtype=np.float64)
            rec[f"{m}_mean"] = float(np.mean(vals))
            rec[f"{m}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        out.append(rec)
    return out


def fmt(mean, std=None, digits: int = 4) -> str:
    """``"0.0123 ± 0.0011"`` (or ``"—"`` for a missing or NaN value).

    Parameters
    ----------
    mean : float or None
        The value.
    std : float or None, default=None
        The spread, appended after ``±`` unless None or NaN.
    digits : int, default=4
        Digits after the decimal point.

    Returns
    -------
    str
    """
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    s = f"{mean:.{digits}f}"
    if std is not None and not math.isnan(std):
        s += f" ± {std:.{digits}f}"
    return s


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table.

    Parameters
    ----------
    header : list of str
        The column titles.
    rows : list of list of str
        The cells of each row, as many as ``header``.

    Returns
    -------
    str
        The header line, the ``|---|`` line and one line per row, joined by newlines.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain aligned table for the terminal."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    body = ["  ".join(c.rjust(w) if i else c.ljust(w)
                      for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented strict JSON.

    Parameters
    ----------
    path : pathlib.Path
        The file to write.
    obj : object
        Dicts, lists, tuples, numpy arrays and scalars, strings, numbers; dict keys become
        strings, arrays lists, and non-finite floats ``null``.
    """
    path.write_text(json.dumps(_jsonable(obj), indent=1, allow_nan=False) + "\n")


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` as CSV with a header line.

    Parameters
    ----------
    path : pathlib.Path
        The file to write.
    rows : list of dict
        One dict per line; the columns are every key, in first-seen order, and a missing or
        None value is an empty cell.
    """
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})


def plotting_available() -> bool:
    """Whether matplotlib can be imported; warns (plots are skipped) when it cannot."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        import warnings

        warnings.warn("matplotlib is not installed: no plots written (pip install "
                      "'calibkit[plot]'; plots=False, or --no-plots, skips them).", stacklevel=4)
        return False
    return True


def environment() -> dict:
    import os

    import calibkit

    return {
        "calibkit": calibkit.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------

CLS_METRIC_LABELS = {
    "ece_width": "ECE (top-label, 15 equal-width bins, L1)",
    "ece_mass": "ECE (top-label, 15 equal-mass bins, L1)",
    "ece_classwise": "class-wise ECE (15 equal-width bins, mean over classes)",
    "brier": "Brier score",
    "nll": "negative log-likelihood",
    "auroc": "AUROC of the top-label confidence (right vs wrong)",
    "accuracy": "accuracy of the top label",
}


def finish_classification(result: dict) -> dict:
    """Add ``summary`` (mean/std over seeds), ``scale`` (power laws, gain trends) and
    ``ranking`` (win rates and ratings across the (model, seed) cells of each family).

    Parameters
    ----------
    result : dict
        The output of :func:`~calibkit.bench.run_classification`; changed in place.

    Returns
    -------
    dict
        ``result``, with ``summary`` (:func:`summarise`), ``scale``
        (:func:`~calibkit.bench.scale_analysis`) and ``ranking``
        (:func:`~calibkit.bench.rank_methods`) added.
    """
    from calibkit.bench.ranking import rank_methods
    from calibkit.bench.scale import scale_analysis

    result["summary"] = summarise(result["rows"])
    result["scale"] = scale_analysis(result["summary"])
    result["ranking"] = rank_methods(result["rows"])
    return result


def write_classification(result: dict, out: Path, *, command: str, plots: bool = True) -> list:
    """Write results.json, results.csv (one row per model, method and seed), summary.csv,
    report.md and (``plots``) PNGs under ``out``; return the written paths.

    Parameters
    ----------
    result : dict
        The output of :func:`finish_classification`.
    out : str or os.PathLike
        The output folder (created if needed; existing files of these names are replaced).
    command : str
        The command line that produced ``result``, recorded in results.json and report.md.
    plots : bool, default=True
        Also write the plots under ``out/plots`` (skipped, with a warning, when matplotlib is
        not installed).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    return write_protocol_files(result, out, protocol="classification", command=command,
                                plots=plots, plotter="plot_classification",
                                markdown=classification_markdown)


def write_protocol_files(result: dict, out: Path, *, protocol: str, command: str, plots: bool,
                         plotter: str, markdown) -> list:
    """Write one protocol's files under ``out``: results.json (``protocol``, ``command``, the
    environment and ``result``), results.csv (``result["rows"]``), summary.csv
    (``result["summary"]``), the plots and report.md.

    Parameters
    ----------
    result : dict
        The protocol's result, with ``rows`` and ``summary``.
    out : str or os.PathLike
        The output folder (created if needed; existing files of these names are replaced).
    protocol : str
        The protocol's name, recorded in results.json.
    command : str
        The command line that produced ``result``.
    plots : bool
        Also write the plots under ``out/plots`` (skipped, with a warning, when matplotlib is
        not installed).
    plotter : str
        The function of :mod:`calibkit.bench.plots` that draws them (imported only then).
    markdown : callable
        ``markdown(result, command=, images=, root=)`` gives report.md.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", {"protocol": protocol, "command": command,
                                      "environment": environment(), **result})
    write_csv(out / "results.csv", result["rows"])
    write_csv(out / "summary.csv", result["summary"])
    written = [out / "results.json", out / "results.csv", out / "summary.csv"]
    images = []
    if plots and plotting_available():
        from calibkit.bench import plots as plotting

        images = getattr(plotting, plotter)(result, out / "plots")
        written += images
    (out / "report.md").write_text(markdown(result, command=command, images=images, root=out))
    written.append(out / "report.md")
    return written


def classification_markdown(result: dict, *, command: str, images=(), root=None) -> str:
    cfg = result["config"]
    parts = [
        "# calibkit bench: classification",
        "",
        f"Command: `{command}`",
        "",
        f"Protocol: {cfg['seeds']} class-stratified calibration/test splits "
        f"(test fraction {cfg['test_size']}; {cfg['split']}); every method fitted on the "
        f"calibration half and scored on the test half; {cfg['n_bins']} bins; conformal "
        f"alpha = {cfg['alpha']}. Values are mean ± standard deviation over seeds.",
        "Full-vector models: binary calibrators run one-vs-rest with renormalisation. "
        "Top-1-only models: binary calibrators of the top-label confidence against "
        "`1[pred == true]`; Brier and NLL are then the binary top-label scores.",
        "",
    ]
    summary = result["summary"]
    for fam in dict.fromkeys(r["family"] for r in summary):
        rows = [r for r in summary if r["family"] == fam]
        models = _by_size(rows)
        kinds = {r["data"] for r in rows}
        parts += [f"## {fam}", "",
                  f"{len(models)} model(s), data: {', '.join(sorted(kinds))}.", ""]
        prob_methods = [m for m in dict.fromkeys(r["method"] for r in rows)
                        if not m.startswith("conformal")]
        for metric, label in CLS_METRIC_LABELS.items():
            if not any(f"{metric}_mean" in r for r in rows):
                continue
            parts += [f"### {label} (`{metric}`)", ""]
            table = []
            for m in models:
                line = [m, _params(rows, m)]
                for meth in prob_methods:
                    r = _find(rows, model=m, method=meth)
                    line.append(fmt(r.get(f"{metric}_mean"), _std(r, metric))
                                if r else "—")
                table.append(line)
            parts += [markdown_table(["model", "params"] + prob_methods, table), ""]
        conf_methods = [m for m in dict.fromkeys(r["method"] for r in rows)
                        if m.startswith("conformal")]
        if conf_methods:
            parts += ["### Conformal prediction sets: coverage / mean set size", ""]
            table = []
            for m in models:
                line = [m]
                for meth in conf_methods:
                    r = _find(rows, model=m, method=meth)
                    line.append(f"{fmt(r['coverage_mean'], digits=4)} / "
                                f"{fmt(r['set_size_mean'], digits=2)}" if r else "—")
                table.append(line)
            parts += [markdown_table(["model"] + conf_methods, table), ""]
        parts += ["### Wall time per fit / predict (seconds, mean over models and seeds)", ""]
        table = []
        for meth in dict.fromkeys(r["method"] for r in rows):
            rs = [r for r in rows if r["method"] == meth]
            table.append([meth, f"{np.mean([r['fit_time_s_mean'] for r in rs]):.4f}",
                          f"{np.mean([r['predict_time_s_mean'] for r in rs]):.4f}"])
        parts += [markdown_table(["method", "fit", "predict"], table), ""]
    if result.get("skipped"):
        parts += ["## Skipped", ""]
        reasons: dict[tuple, list] = {}
        for s in result["skipped"]:
            reasons.setdefault((s["method"], s["reason"]), []).append(
                f"{s['family']}/{s['model']}" if s.get("model") else "all")
        parts += [f"- `{m}`: {why} ({len(v)} model(s): {', '.join(v[:4])}"
                  f"{', ...' if len(v) > 4 else ''})" for (m, why), v in reasons.items()]
        parts.append("")
    parts += ranking_markdown(result.get("ranking", []))
    parts += scale_markdown(result.get("scale", []))
    if images:
        parts += ["## Plots", ""]
        for p in images:
            rel = Path(p).relative_to(root) if root else Path(p)
            parts.append(f"![{Path(p).stem}]({rel.as_posix()})")
        parts.append("")
    return "\n".join(parts)


def ranking_markdown(ranking: list[dict]) -> list[str]:
    """The ranking section: best-method statements, then one table per (family, metric)."""
    from calibkit.bench.ranking import RANK_METRICS, best_method_statements

    if not ranking:
        return []
    parts = [
        "## Ranking across (model, seed) cells",
        "",
        "Each (model, seed) cell of a family is a match between the methods that ran on it "
        "(lower metric wins, ties count half). Win rate: fraction of pairwise comparisons "
        "won. Rating: Bradley-Terry strengths of the pairwise outcomes on the Elo scale "
        "(1000 = geometric-mean method, +400 = 10:1 odds). Improvement: mean of "
        "metric(uncalibrated) - metric(method). Intervals: 95% bootstrap over cells; "
        "P(best): share of bootstrap resamples in which the method is top-rated.",
        "",
    ]
    parts += [f"- {line}" for line in best_method_statements(ranking)]
    parts.append("")
    for fam, metric in dict.fromkeys((r["family"], r["metric"]) for r in ranking):
        recs = [r for r in ranking if r["family"] == fam and r["metric"] == metric]
        parts += [f"### {fam}: {RANK_METRICS.get(metric, metric)} (`{metric}`)", ""]
        table = [[r["method"], str(r["n_cells"]),
                  f"{r['win_rate']:.3f} [{r['win_rate_ci'][0]:.3f}, {r['win_rate_ci'][1]:.3f}]",
                  f"{r['rating']:.0f} [{r['rating_ci'][0]:.0f}, {r['rating_ci'][1]:.0f}]",
                  f"{r['improvement']:+.4f} [{r['improvement_ci'][0]:+.4f}, "
                  f"{r['improvement_ci'][1]:+.4f}]", f"{r['p_best']:.2f}"]
                 for r in recs]
        parts += [markdown_table(["method", "cells", "win rate [95% CI]", "rating [95% CI]",
                                  "improvement [95% CI]", "P(best)"], table), ""]
    return parts


def scale_markdown(scale: list[dict]) -> list[str]:
    if not scale:
        return []
    parts = [
        "## Model scale",
        "",
        "Power law `metric = a * N^-b + c` (N in millions of parameters) fitted to the mean "
        "metric of each model, b searched in [-3, 3] (\"edge\": b is not identified, no "
        "power law in this range); 95% case-bootstrap interval on b (4+ models). Gain = "
        "metric(uncalibrated) - metric(method); its slope per decade of N with a bootstrap "
        "interval (4+ models) decides whether the gain shrinks or grows with scale.",
        "",
    ]
    table = []
    for r in scale:
        pl = r["power_law"]
        b = "—" if pl is None else (f"{pl['b']:.2f}" if abs(pl["b"]) < 3 else
                                    f"{pl['b']:.0f} (edge)")
        ci = ("—" if pl is None or pl["b_ci"] is None
              else f"[{pl['b_ci'][0]:.2f}, {pl['b_ci'][1]:.2f}]")
        g = r["gain"]
        gain = "—" if g is None else f"{g['mean_gain']:.4f}"
        slope = "—" if g is None else (
            f"{g['slope_per_decade']:+.4f}" + (
                "" if g["slope_ci"] is None
                else f" [{g['slope_ci'][0]:+.4f}, {g['slope_ci'][1]:+.4f}]"))
        verdict = "—" if g is None else g["verdict"]
        table.append([r["family"], r["metric"], r["method"], str(r["n_models"]), b, ci, gain,
                      slope, verdict])
    parts += [markdown_table(["family", "metric", "method", "models", "b", "b 95% CI",
                              "mean gain", "gain slope / decade [95% CI]",
                              "gain with scale"], table), ""]
    return parts


def classification_text(result: dict, metric: str = "ece_width") -> str:
    """A terminal table per family: ``metric`` (mean over seeds) by model and method."""
    out = []
    summary = result["summary"]
    for fam in dict.fromkeys(r["family"] for r in summary):
        rows = [r for r in summary if r["family"] == fam]
        models = _by_size(rows)
        methods = [m for m in dict.fromkeys(r["method"] for r in rows)
                   if not m.startswith("conformal")]
        table = []
        for m in models:
            line = [m, _params(rows, m)]
            for meth in methods:
                r = _find(rows, model=m, method=meth)
                line.append(fmt(r.get(f"{metric}_mean")) if r else "—")
            table.append(line)
        out += [f"\n{fam}: {CLS_METRIC_LABELS[metric]}, mean over "
                f"{result['config']['seeds']} seed(s)",
                text_table(["model", "params"] + methods, table)]
    skipped: dict[tuple, int] = {}
    for sk in result.get("skipped", []):
        key = (sk["method"], sk["reason"])
        skipped[key] = skipped.get(key, 0) + 1
    if skipped:
        out.append("\nSkipped:")
        out += [f"  {m}: {why} ({n} model(s))" if why.startswith("top-1") else f"  {m}: {why}"
                for (m, why), n in skipped.items()]
    from calibkit.bench.ranking import best_method_statements

    ranking = result.get("ranking", [])
    if ranking:
        out.append("\nBest method per family (rating across (model, seed) cells):")
        out += ["  " + line.replace("**", "") for line in best_method_statements(ranking)]
    verdicts = [r for r in result.get("scale", [])
                if r["metric"] == metric and r["gain"] is not None]
    if verdicts:
        out.append(f"\nGain in {metric} over uncalibrated, against model size:")
        out += [f"  {r['family']:>9} {r['method']:<15} mean gain {r['gain']['mean_gain']:+.4f}"
                f"  -> {r['gain']['verdict']}" for r in verdicts]
    return "\n".join(out)


def _by_size(rows) -> list[str]:
    """Model names of ``rows`` from smallest to largest (unsized models last, in order)."""
    size = {}
    for r in rows:
        size.setdefault(r["model"], r.get("params"))
    return sorted(size, key=lambda m: (size[m] is None, size[m] or 0))


def _params(rows, model) -> str:
    p = next((r["params"] for r in rows if r["model"] == model), None)
    if not p:
        return "—"
    return f"{p / 1e6:.2f}M" if p >= 1e6 else f"{p / 1e3:.0f}k"


def _std(row, metric):
    """The spread over seeds, or None with a single seed (a spread of 0 would mislead)."""
    return row.get(f"{metric}_std") if row.get("n_seeds", 1) > 1 else None


def _find(rows, **kw):
    return next((r for r in rows if all(r.get(k) == v for k, v in kw.items())), None)
