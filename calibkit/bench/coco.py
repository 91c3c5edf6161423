"""The COCO protocols: class-wise and class-agnostic detector calibration on image halves.

For each detector, seed, method and scope (``classwise`` / ``class-agnostic``), the images
are split in two random halves (``numpy.random.default_rng(seed)``; the first half is the
calibration set, as the minival / minitest split of Kuzucu et al., ECCV 2024) and a
:class:`calibkit.detection.DetectionCalibrator` is fitted on the first half and applied to the
second.

* ``laece`` protocol (Kuzucu et al.): IoU targets, tau = 0, LRP-optimal per-class thresholds
  before and after calibration; metrics LaECE_0 (25 bins), LaACE_0 and LRP with its
  localisation / FP / FN components, all on the same thresholded test detections.
* ``dece`` protocol (the train-time papers, as reproduced by Kuzucu et al.): binary targets
  (TP at IoU >= 0.5), a fixed score threshold of 0.3 before and after calibration; metric
  D-ECE (10 bins, pooled over classes).
* In both, ``ap``: COCO AP@[.50:.95] of the top-100 test detections per (image, class) with
  the calibrated scores and no threshold (the ranking effect of the calibrator).
* Uncertainty (``bootstrap`` resamples, default :data:`DEFAULT_BOOTSTRAP`): every metric gets
  an image-level percentile bootstrap interval on the test half (``calibkit.detection.evaluate(...,
  n_bootstrap=...)``), and each calibrator's change over ``identity`` a paired bootstrap: the
  same resamples of the same test images (``random_state`` = the split seed) for every method,
  so the per-resample differences give an interval of the change, the share of resamples where
  the calibrator is better, and whether the improvement holds (the whole interval on the
  better side of 0).

Methods: ``identity`` (thresholds only), ``temperature``, ``platt``, ``isotonic``, ``linear``
and ``venn-abers`` (binary targets only, so only in the ``dece`` protocol).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibkit.bench._parallel import run_tasks
from calibkit.bench.methods import check_methods
from calibkit.bench.report import (
    fmt,
    markdown_table,
    summarise,
    text_table,
    write_protocol_files,
)

__all__ = ["CocoConfig", "COCO_METHODS", "run_coco", "split_images", "evaluate_detector",
           "write_coco", "coco_text"]

#: method name -> DetectionCalibrator's ``calibrator`` argument (None: a VennAbers instance)
COCO_METHODS = {
    "identity": "identity",
    "temperature": "temperature",
    "platt": "platt",
    "isotonic": "isotonic",
    "linear": "linear",
    "venn-abers": None,
}
SCOPES = ("classwise", "class-agnostic")

#: image-level bootstrap resamples of the default run: the 95% percentile intervals and the
#: paired comparisons with identity are stable to about half a point of coverage, and
#: ``calibkit bench all`` stays within 10 minutes on 2 cores (AP's resamples dominate the cost)
DEFAULT_BOOTSTRAP = 200
PROTOCOLS = ("laece", "dece")
PROTOCOL_METRICS = {
    "laece": ("laece", "laace", "lrp", "lrp_loc", "lrp_fp", "lrp_fn", "ap"),
    "dece": ("dece", "ap"),
}


@dataclass(frozen=True)
class CocoConfig:
    """Settings of the COCO protocols (the defaults are the published run).

    Attributes
    ----------
    methods : tuple of str, default=tuple(COCO_METHODS)
        Names of :data:`COCO_METHODS` to run (all six).
    seeds : int, default=3
        Number of random image splits; seeds ``0 .. seeds - 1``.
    scopes : tuple of str, default=("classwise", "class-agnostic")
        One calibrator per class, or one for all classes.
    protocols : tuple of str, default=("laece", "dece")
        The protocols of the module docstring.
    dece_threshold : float, default=0.3
        The fixed score threshold of the ``dece`` protocol.
    bootstrap : int, default=1000
        Image-level bootstrap resamples of the test half (0: no intervals and no paired
        comparison with ``identity``).
    confidence_level : float, default=0.95
        Coverage of the bootstrap intervals.
    """

    methods: tuple = tuple(COCO_METHODS)
    seeds: int = 3
    scopes: tuple = SCOPES
    protocols: tuple = PROTOCOLS
    dece_threshold: float = 0.3
    bootstrap: int = DEFAULT_BOOTSTRAP
    confidence_level: float = 0.95


def run_coco(data, config: CocoConfig | None = None, *, jobs: int = 1,
             backend: str | None = None, progress: bool = True) -> dict:
    """Run both protocols over the detectors of ``data`` (a
    :class:`calibkit.datasets.DetectionOutputs`).

    Parameters
    ----------
    data : DetectionOutputs
        The ground truth and the detectors' results, as dicts or columns (e.g.
        :func:`calibkit.datasets.load_bundled_coco`).
    config : CocoConfig or None, default=None
        The protocols' settings; None is ``CocoConfig()``.
    jobs : int, default=1
        Number of joblib workers over the (detector, protocol, method, scope, seed) grid.
    backend : str or None, default=None
        A joblib backend name (``"loky"``, ``"threading"``, ``"dask"``, ``"ray"``); None is
        ``"loky"`` when ``jobs > 1`` and the calling process otherwise. ``"dask"`` and
        ``"ray"`` must be registered by the caller (the command line does it).
    progress : bool, default=True
        Show a progress bar on stderr (tqdm when installed).

    Returns
    -------
    dict
        ``{"config", "detectors", "rows", "skipped", "summary"}``: one row per (detector,
        method, scope, protocol, seed) with the metrics of :func:`evaluate_detector` and,
        with a bootstrap, the paired comparison with ``identity`` (``<metric>_vs_identity``
        and its ``_ci_low`` / ``_ci_high``, ``<metric>_better_share``, ``<metric>_holds``);
        ``summary`` is :func:`~calibkit.bench.summarise` of the rows; ``detectors`` the
        architecture, params, file and dataset of each detector; ``skipped`` the
        (detector, method, protocol) cells that do not apply, with the reason.
    """
    from calibkit import detection

    config = config or CocoConfig()
    methods = check_methods(config.methods, COCO_METHODS, "methods")
    if config.seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {config.seeds}.")
    if config.bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 (none) or more; got {config.bootstrap}.")
    gt = detection.load_gt(data.ground_truth)
    dets = {name: detection.load_dets(d) for name, d in data.detections.items()}
    tasks, skipped = [], []
    for name in dets:
        for protocol in config.protocols:
            for method in methods:
                if method == "venn-abers" and protocol == "laece":
                    skipped.append({"detector": name, "method": method, "protocol": protocol,
                                    "reason": "Venn-ABERS needs binary targets; LaECE_0 "
                                              "calibrates to IoU targets"})
                    continue
                for scope in config.scopes:
                    for seed in range(config.seeds):
                        tasks.append((gt, dets[name], name, method, scope, protocol, seed,
                                      config))
    rows = run_tasks(_task, tasks, jobs=jobs, backend=backend, progress=progress, desc="coco")
    _compare_with_identity(rows, config.confidence_level)
    info = {k: {kk: v.get(kk) for kk in ("architecture", "params", "file", "dataset")}
            for k, v in data.info.items()}
    return {"config": {"methods": methods, "seeds": config.seeds, "scopes": list(config.scopes),
                       "protocols": list(config.protocols),
                       "dece_threshold": config.dece_threshold,
                       "bootstrap": config.bootstrap,
                       "confidence_level": config.confidence_level,
                       "split": "random image halves, numpy.random.default_rng(seed)"},
            "detectors": info, "rows": rows, "skipped": skipped,
            "summary": summarise(rows, ("detector", "protocol", "scope", "method"))}


def split_images(image_ids, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random halves (calibration, test) of the sorted unique ``image_ids``:
    ``numpy.random.default_rng(seed).permutation``, the first ``n // 2`` for calibration.

    Parameters
    ----------
    image_ids : array-like of shape (n_ids,)
        Image ids; repeats are dropped.
    seed : int
        Seed of the permutation.

    Returns
    -------
    calibration, test : ndarray of shape (n // 2,) and (n - n // 2,)
        The sorted ids of each half, ``n`` the number of distinct ids.
    """
    ids = np.unique(np.asarray(image_ids))
    perm = np.random.default_rng(seed).permutation(len(ids))
    half = len(ids) // 2
    return np.sort(ids[perm[:half]]), np.sort(ids[perm[half:]])


def evaluate_detector(gt, dets, method: str, scope: str, protocol: str, seed: int,
                      config: CocoConfig | None = None) -> dict:
    """One cell of the grid (see the module docstring); ``gt`` and ``dets`` as accepted by
    :func:`calibkit.detection.load_gt` / :func:`calibkit.detection.load_dets`.

    Parameters
    ----------
    gt : dict, str, pathlib.Path or GroundTruth
        The COCO ground truth: a dict, the columns of ``load_bundled_coco(arrays=True)``, a
        json path or a loaded ``GroundTruth``.
    dets : list of dict, dict, str, pathlib.Path or Detections
        One detector's COCO results: a list, columns, a json path or a loaded
        ``Detections``.
    method : str
        A name of :data:`COCO_METHODS`.
    scope : {"classwise", "class-agnostic"}
        One calibrator per class, or one for all classes.
    protocol : {"laece", "dece"}
        The protocol of the module docstring.
    seed : int
        The image split (:func:`split_images`) and the bootstrap's ``random_state``.
    config : CocoConfig or None, default=None
        ``dece_threshold``, ``bootstrap`` and ``confidence_level``; None is
        ``CocoConfig()``.

    Returns
    -------
    dict
        ``detector`` (``"detector"``), ``protocol``, ``scope``, ``method``, ``seed``,
        ``n_images_calib``, ``n_images_test``, the protocol's metrics (``laece``, ``laace``,
        ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn``, ``ap``; or ``dece``, ``ap``),
        ``n_dets_test``, ``fit_time_s`` and ``predict_time_s``. With a bootstrap, also
        ``<metric>_ci_low`` / ``<metric>_ci_high`` and ``_resamples`` (the per-resample
        values of each metric, for paired comparisons).
    """
    from calibkit import detection

    config = config or CocoConfig()
    return _task(detection.load_gt(gt), detection.load_dets(dets), "detector", method, scope,
                 protocol, seed, config)


# --------------------------------------------------------------------------------------


def _task(gt, dets, name, method, scope, protocol, seed, config) -> dict:
    try:
        return _run_cell(gt, dets, name, method, scope, protocol, seed, config)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"detector {name!r}, method {method!r}, {scope}, {protocol} "
                        f"protocol, seed {seed}: {exc}") from exc


def _run_cell(gt, dets, name, method, scope, protocol, seed, config) -> dict:
    from calibkit import detection

    cal_ids, test_ids = split_images(gt.image_ids, seed)
    gt_cal, gt_test = _gt_subset(gt, cal_ids), _gt_subset(gt, test_ids)
    d_cal = dets.subset(np.isin(dets.image_id, cal_ids))
    d_test = dets.subset(np.isin(dets.image_id, test_ids))
    if protocol == "laece":
        kw = {"target": "iou", "thresholds": "lrp", "tau": 0.0}
    else:
        kw = {"target": "binary", "thresholds": config.dece_threshold, "tau": 0.5}
        keep = ~(d_cal.score < config.dece_threshold)
        d_cal = d_cal.subset(keep)
        d_test = d_test.subset(~(d_test.score < config.dece_threshold))
    calibrator = COCO_METHODS[method]
    if calibrator is None:
        from calibkit.venn_abers import VennAbers

        calibrator = VennAbers(input="probs")
    est = detection.DetectionCalibrator(method=calibrator, classwise=(scope == "classwise"), **kw)
    row = {"detector": name, "protocol": protocol, "scope": scope, "method": method,
           "seed": seed, "n_images_calib": int(len(cal_ids)),
           "n_images_test": int(len(test_ids))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(gt_cal, d_cal)
        t1 = time.perf_counter()
        out = est.transform(d_test)
        t2 = time.perf_counter()
        # the same resamples (seeded by the split) for every method of this split: paired
        boot = ({"n_bootstrap": config.bootstrap, "random_state": seed, "return_resamples": True,
                 "confidence_level": config.confidence_level} if config.bootstrap else {})
        if protocol == "laece":
            m = detection.evaluate(gt_test, out, tau=0.0, **boot)
        else:
            m = detection.evaluate(gt_test, out, tau=0.5, dece_tau=0.5, dece_bins=10, **boot)
        rescored = d_test.with_scores(est.predict_scores(d_test.category_id, d_test.score))
        if boot:
            m["ap"], m["ap_ci"], m["resamples"]["ap"] = _bootstrap_ap(gt_test, rescored, boot)
        else:
            m["ap"] = detection.average_precision(gt_test, rescored)
        metrics = PROTOCOL_METRICS[protocol]
        row.update({k: m[k] for k in metrics})
        if boot:
            for k in metrics:
                row[f"{k}_ci_low"], row[f"{k}_ci_high"] = m[f"{k}_ci"]
            row["_resamples"] = {k: m["resamples"][k] for k in metrics}
    row["n_dets_test"] = int(len(out))
    row["fit_time_s"] = t1 - t0
    row["predict_time_s"] = t2 - t1
    return {k: (float(v) if isinstance(v, (np.floating,)) else v) for k, v in row.items()}


def _bootstrap_ap(gt, dets, boot):
    """AP, its interval and its resamples (the other metrics of this call are not used)."""
    from calibkit import detection

    res = detection.evaluate(gt, dets, ap=True, **boot)
    return res["ap"], res["ap_ci"], res["resamples"]["ap"]


def _compare_with_identity(rows, confidence_level):
    """Paired bootstrap of each calibrator against ``identity`` on the same split (same
    detector, protocol, scope and seed): ``<metric>_vs_identity`` (the change),
    ``<metric>_vs_identity_ci_low`` / ``_high``, ``<metric>_better_share`` and
    ``<metric>_holds``. The resamples are dropped from the rows afterwards."""
    from calibkit.detection.bootstrap import paired_bootstrap

    key = ("detector", "protocol", "scope", "seed")
    base = {tuple(r[k] for k in key): r for r in rows
            if r["method"] == "identity" and "_resamples" in r}
    for r in rows:
        ref = base.get(tuple(r[k] for k in key))
        if r["method"] == "identity" or ref is None or "_resamples" not in r:
            continue
        metrics = list(r["_resamples"])
        cmp = paired_bootstrap({**{k: ref[k] for k in metrics}, "resamples": ref["_resamples"]},
                               {**{k: r[k] for k in metrics}, "resamples": r["_resamples"]},
                               confidence_level=confidence_level)
        for k, c in cmp.items():
            r[f"{k}_vs_identity"] = c["difference"]
            r[f"{k}_vs_identity_ci_low"], r[f"{k}_vs_identity_ci_high"] = c["ci"]
            r[f"{k}_better_share"] = c["share_better"]
            r[f"{k}_holds"] = c["holds"]
    for r in rows:
        r.pop("_resamples", None)


def _gt_subset(gt, image_ids):
    from calibkit import detection

    keep = np.isin(gt.ann_image_id, image_ids)
    return detection.GroundTruth.from_arrays(
        gt.ann_image_id[keep], gt.ann_category_id[keep], gt.ann_box[keep],
        iscrowd=gt.ann_crowd[keep], images=image_ids, categories=gt.category_ids,
    )


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------

COCO_LABELS = {
    "laece": "LaECE_0 (25 bins, tau 0, LRP-optimal thresholds)",
    "laace": "LaACE_0",
    "lrp": "LRP (tau 0)",
    "dece": "D-ECE (10 bins, pooled, TP at IoU 0.5, score >= 0.3)",
    "ap": "AP@[.50:.95], top-100, calibrated scores, no threshold",
}


def write_coco(result: dict, out: Path, *, command: str, plots: bool = True) -> list:
    """Write results.json, results.csv, summary.csv, report.md (and a PNG) under ``out``.

    Parameters
    ----------
    result : dict
        The output of :func:`run_coco`.
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
    return write_protocol_files(result, out, protocol="coco", command=command, plots=plots,
                                plotter="plot_coco", markdown=coco_markdown)


def coco_markdown(result: dict, *, command: str, images=(), root=None) -> str:
    cfg = result["config"]
    parts = [
        "# calibkit bench: COCO detectors",
        "",
        f"Command: `{command}`",
        "",
        f"Protocols (see docs/benchmarks.md): {cfg['split']}, {cfg['seeds']} seed(s); "
        "calibrators fitted on the first half and evaluated on the second. Values are "
        "mean ± standard deviation over seeds.",
        "",
    ]
    n_boot = cfg.get("bootstrap") or 0
    level = cfg.get("confidence_level", 0.95)
    if n_boot:
        parts += [
            f"In brackets: the {level:.0%} image-level percentile bootstrap interval on the test "
            f"half ({n_boot} resamples of its images, every metric recomputed without "
            "rematching), its bounds averaged over seeds. Each calibrator is also compared with "
            "`identity` by a paired bootstrap on the same resamples: the change, its interval, "
            "the share of resamples where the calibrator is better, and in how many splits the "
            "improvement holds (the whole interval on the better side of 0). Binned errors "
            "(LaECE, LaACE, D-ECE) are biased upwards under resampling, so for well-calibrated "
            "detections the interval can lie above the value, and the interval of an "
            "improvement is pulled towards 0 (see docs/detection.md, Confidence intervals).",
            "",
        ]
    parts += [
        "Detectors: " + ", ".join(
            f"`{k}` ({v.get('architecture') or v.get('file')})"
            for k, v in result["detectors"].items()) + ".",
        "",
    ]
    summary = result["summary"]
    for protocol in cfg["protocols"]:
        for metric in PROTOCOL_METRICS[protocol]:
            if metric not in COCO_LABELS:
                continue
            rows = [r for r in summary if r["protocol"] == protocol and f"{metric}_mean" in r]
            if not rows:
                continue
            parts += [f"## `{protocol}` protocol: {COCO_LABELS[metric]}", ""]
            methods = list(dict.fromkeys(r["method"] for r in rows))
            table = []
            for det in dict.fromkeys(r["detector"] for r in rows):
                for scope in cfg["scopes"]:
                    line = [det, scope]
                    for meth in methods:
                        r = _find(rows, detector=det, scope=scope, method=meth)
                        line.append(fmt(r.get(f"{metric}_mean"), _std(r, metric)) + _ci(r, metric)
                                    if r else "—")
                    table.append(line)
            parts += [markdown_table(["detector", "scope"] + methods, table), ""]
            change = _change_table(result, protocol, metric, cfg["scopes"])
            if change:
                parts += [f"Change over `identity` (paired bootstrap, {level:.0%} interval, "
                          "share of resamples better, splits where it holds):", "", change, ""]
    parts += ["## Wall time per fit / predict (seconds, mean)", ""]
    table = []
    for meth in dict.fromkeys(r["method"] for r in summary):
        rs = [r for r in summary if r["method"] == meth]
        table.append([meth, f"{np.mean([r['fit_time_s_mean'] for r in rs]):.3f}",
                      f"{np.mean([r['predict_time_s_mean'] for r in rs]):.3f}"])
    parts += [markdown_table(["method", "fit", "transform"], table), ""]
    if result.get("skipped"):
        parts += ["## Skipped", ""]
        seen = {}
        for s in result["skipped"]:
            seen.setdefault((s["method"], s["protocol"], s["reason"]), []).append(s["detector"])
        parts += [f"- `{m}` in the `{p}` protocol: {why}" for (m, p, why) in seen]
        parts.append("")
    if images:
        parts += ["## Plots", ""]
        parts += [f"![{Path(p).stem}]({Path(p).relative_to(root).as_posix()})" for p in images]
        parts.append("")
    return "\n".join(parts)


def coco_text(result: dict) -> str:
    """Terminal tables: LaECE_0 and D-ECE by detector, scope and method.

    Parameters
    ----------
    result : dict
        The output of :func:`run_coco`.

    Returns
    -------
    str
        One table each for LaECE_0, LRP and D-ECE (mean over seeds, with the bootstrap
        interval when there is one), for the protocols that ran.
    """
    out = []
    for protocol, metric in (("laece", "laece"), ("laece", "lrp"), ("dece", "dece")):
        rows = [r for r in result["summary"] if r["protocol"] == protocol]
        if not rows:
            continue
        methods = list(dict.fromkeys(r["method"] for r in rows))
        table = []
        for det in dict.fromkeys(r["detector"] for r in rows):
            for scope in result["config"]["scopes"]:
                line = [det, scope]
                for meth in methods:
                    r = _find(rows, detector=det, scope=scope, method=meth)
                    line.append(fmt(r.get(f"{metric}_mean")) + _ci(r, metric) if r else "—")
                table.append(line)
        out += [f"\n{COCO_LABELS[metric]}", text_table(["detector", "scope"] + methods, table)]
    return "\n".join(out)


def _ci(row, metric) -> str:
    """`` [low, high]`` (bounds averaged over seeds), or nothing without a bootstrap."""
    lo, hi = row.get(f"{metric}_ci_low_mean"), row.get(f"{metric}_ci_high_mean")
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return ""
    return f" [{lo:.4f}, {hi:.4f}]"


def _change_table(result, protocol, metric, scopes) -> str:
    """Markdown table of each calibrator's paired change over identity (or "")."""
    rows = [r for r in result["rows"] if r["protocol"] == protocol
            and f"{metric}_vs_identity" in r]
    if not rows:
        return ""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    table = []
    for det in dict.fromkeys(r["detector"] for r in rows):
        for scope in scopes:
            line = [det, scope]
            for meth in methods:
                rs = [r for r in rows if r["detector"] == det and r["scope"] == scope
                      and r["method"] == meth]
                if not rs:
                    line.append("—")
                    continue
                mean = {k: float(np.mean([r[f"{metric}_{k}"] for r in rs]))
                        for k in ("vs_identity", "vs_identity_ci_low", "vs_identity_ci_high",
                                  "better_share")}
                holds = sum(bool(r[f"{metric}_holds"]) for r in rs)
                line.append(f"{mean['vs_identity']:+.4f} [{mean['vs_identity_ci_low']:+.4f}, "
                            f"{mean['vs_identity_ci_high']:+.4f}], "
                            f"{mean['better_share']:.0%}, {holds}/{len(rs)}")
            table.append(line)
    return markdown_table(["detector", "scope"] + methods, table)


def _std(row, metric):
    """The spread over seeds, or None with a single seed (a spread of 0 would mislead)."""
    return row.get(f"{metric}_std") if row.get("n_seeds", 1) > 1 else None


def _find(rows, **kw):
    return next((r for r in rows if all(r.get(k) == v for k, v in kw.items())), None)
