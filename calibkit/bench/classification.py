"""The classification protocol: repeated stratified calibration/test splits, every calibrator.

For each model, method and seed: split the test set in two class-stratified halves (the
seed picks the split; every method sees the same split), fit on the calibration half,
predict on the other and compute the metrics below. Models with full score vectors get every
method (binary calibrators one-vs-rest with renormalisation, as the calibrators do for
(n, K) input); top-1-only models (true, predicted, confidence) get the binary top-label
calibrators on ``(confidence, 1[pred == true])`` and no temperature, vector or conformal
method.

Metrics (all on the test half; 15 bins unless ``n_bins`` says otherwise):

* ``ece_width`` / ``ece_mass``: top-label ECE, L1, equal-width / equal-mass bins;
* ``ece_classwise``: class-wise ECE (mean over classes of the L1 ECE of ``p_k``), full only;
* ``brier``: multiclass Brier ``mean_i sum_k (p_ik - 1[y_i = k])^2`` for full vectors, the
  binary top-label Brier ``mean_i (q_i - c_i)^2`` for top-1 data;
* ``nll``: ``-mean_i log p_i,y_i`` (full) or the binary top-label log loss (top-1);
* ``accuracy`` and ``auroc``: accuracy of the (calibrated) top label and the ROC AUC of its
  confidence for telling right from wrong predictions;
* conformal methods: ``coverage`` (fraction of sets holding the true label) and
  ``set_size`` (mean set size) at ``alpha``;
* ``fit_time_s``, ``predict_time_s``: wall time of ``fit`` and of ``predict_proba`` /
  ``predict_set`` (machine-dependent; excluded from reproducibility checks).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from calibkit.bench._parallel import run_tasks
from calibkit.bench.methods import (
    CLASSIFICATION_METHODS,
    DEFAULT_CLASSIFICATION_METHODS,
    available,
    check_methods,
    make_classification,
)
from calibkit.datasets import ClassificationOutputs

__all__ = ["ClassificationConfig", "run_classification", "split_indices", "evaluate_method",
           "subsample"]

METRICS_FULL = ("ece_width", "ece_mass", "ece_classwise", "brier", "nll", "accuracy", "auroc")
METRICS_TOP1 = ("ece_width", "ece_mass", "brier", "nll", "accuracy", "auroc")
METRICS_CONFORMAL = ("coverage", "set_size")
TIMINGS = ("fit_time_s", "predict_time_s")


@dataclass(frozen=True)
class ClassificationConfig:
    """Settings of the classification protocol (the defaults are the published run).

    Attributes
    ----------
    methods : tuple of str, default=DEFAULT_CLASSIFICATION_METHODS
        Names of :data:`~calibkit.bench.CLASSIFICATION_METHODS` to run (the default run:
        the registry's ``bench_default`` calibrators, ``uncalibrated`` and the conformal
        methods).
    seeds : int, default=5
        Number of random splits; seeds ``0 .. seeds - 1``.
    test_size : float, default=0.5
        Fraction of each class that goes to the test half, in (0, 1).
    n_bins : int, default=15
        Bins of the ECE metrics and of the reliability curves.
    alpha : float, default=0.1
        Miscoverage level of the conformal methods (target coverage ``1 - alpha``).
    """

    methods: tuple = DEFAULT_CLASSIFICATION_METHODS
    seeds: int = 5
    test_size: float = 0.5
    n_bins: int = 15
    alpha: float = 0.1


def run_classification(
    models: list[ClassificationOutputs],
    config: ClassificationConfig | None = None,
    *,
    jobs: int = 1,
    backend: str | None = None,
    progress: bool = True,
) -> dict:
    """Run the protocol over ``models`` x ``config.methods`` x ``range(config.seeds)``.

    Parameters
    ----------
    models : list of ClassificationOutputs
        The models, e.g. from :func:`calibkit.datasets.load_bundled_classification`; their
        ``family/name`` must be distinct.
    config : ClassificationConfig or None, default=None
        The protocol's settings; None is ``ClassificationConfig()``.
    jobs : int, default=1
        Number of joblib workers over the (model, method, seed) grid.
    backend : str or None, default=None
        A joblib backend name (``"loky"``, ``"threading"``, ``"dask"``, ``"ray"``); None is
        ``"loky"`` when ``jobs > 1`` and the calling process otherwise. ``"dask"`` and
        ``"ray"`` must be registered by the caller (the command line does it).
    progress : bool, default=True
        Show a progress bar on stderr (tqdm when installed).

    Returns
    -------
    dict
        ``{"config": {...}, "rows": [...], "curves": {...}, "skipped": [...]}``: one row per
        (model, method, seed) with the metrics; ``curves`` holds the seed-0 top-label
        reliability curve of each (model, method) for plotting; ``skipped`` says which
        methods did not apply to which (top-1-only) models.
    """
    config = config or ClassificationConfig()
    methods = check_methods(config.methods, CLASSIFICATION_METHODS, "methods")
    if config.seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {config.seeds}.")
    if not 0.0 < config.test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1); got {config.test_size}.")
    names = [f"{m.family}/{m.name}" for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate model names: {sorted(names)}.")
    tasks, skipped = [], []
    missing = [m for m in methods if not available(CLASSIFICATION_METHODS[m])]
    for method in missing:
        skipped.append({"family": None, "model": None, "method": method,
                        "reason": "not importable in this installation"})
    methods = [m for m in methods if m not in missing]
    for m in models:
        for method in methods:
            if m.top1_only and not CLASSIFICATION_METHODS[method].top1:
                skipped.append({"family": m.family, "model": m.name, "method": method,
                                "reason": "top-1-only data (no full score vector)"})
                continue
            for seed in range(config.seeds):
                tasks.append((m, method, seed, config))
    results = run_tasks(_task, tasks, jobs=jobs, backend=backend, progress=progress,
                        desc="classification")
    rows = [r for r, _ in results]
    curves = {f"{r['family']}/{r['model']}/{r['method']}": c
              for r, c in results if c is not None}
    return {"config": _config_dict(config, methods), "rows": rows, "curves": curves,
            "skipped": skipped}


def split_indices(labels, seed: int, test_size: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Class-stratified random split of ``range(len(labels))`` into (calibration, test).

    Within each class the rows are shuffled by ``numpy.random.default_rng(seed)`` and the
    first ``round(n_k * (1 - test_size))`` go to calibration. Both index arrays are sorted.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Class labels of any sortable type.
    seed : int
        Seed of the shuffle.
    test_size : float, default=0.5
        Fraction of each class that goes to the test part.

    Returns
    -------
    calibration, test : ndarray of shape (n_calibration,) and (n_test,)
        Sorted row indices of the two parts; together they are ``range(n_samples)``.
    """
    labels = np.asarray(labels)
    _, y = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    order = perm[np.argsort(y[perm], kind="stable")]
    counts = np.bincount(y)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(len(y)) - starts
    n_cal = np.repeat(np.round(counts * (1.0 - test_size)).astype(np.int64), counts)
    is_cal = rank < n_cal
    return np.sort(order[is_cal]), np.sort(order[~is_cal])


def subsample(model: ClassificationOutputs, n: int, seed: int = 12345) -> ClassificationOutputs:
    """``model`` on ``n`` rows drawn without replacement by ``default_rng(seed)`` (kept in
    file order); the whole model when it has at most ``n`` rows.

    Parameters
    ----------
    model : ClassificationOutputs
        The model to subsample.
    n : int
        Number of rows to keep, at least 10.
    seed : int, default=12345
        Seed of the draw.

    Returns
    -------
    ClassificationOutputs
        ``model.subset(rows)`` with the drawn rows in increasing order, or ``model`` itself.
    """
    if n < 10:
        raise ValueError(f"n must be at least 10 (rows to keep); got {n}.")
    if model.n_samples <= n:
        return model
    idx = np.sort(np.random.default_rng(seed).choice(model.n_samples, n, replace=False))
    return model.subset(idx)


def evaluate_method(model: ClassificationOutputs, method: str, seed: int,
                    config: ClassificationConfig | None = None) -> tuple[dict, object]:
    """One cell of the grid: fit ``method`` on the seed's calibration half of ``model`` and
    return ``(row, curve)``: the metrics on the test half and, for seed 0, the top-label
    reliability curve (else None).

    Parameters
    ----------
    model : ClassificationOutputs
        The model; top-1-only data takes only the methods that apply to it.
    method : str
        A name of :data:`~calibkit.bench.CLASSIFICATION_METHODS`.
    seed : int
        The split (:func:`split_indices`) and the seed of randomised estimators.
    config : ClassificationConfig or None, default=None
        The protocol's settings (``test_size``, ``n_bins``, ``alpha``); None is
        ``ClassificationConfig()``.

    Returns
    -------
    row : dict
        ``family``, ``model``, ``params``, ``data`` (``"full"`` or ``"top1"``), ``method``,
        ``seed``, ``n_calib``, ``n_test``, the metrics of the module docstring and the
        timings ``fit_time_s``, ``predict_time_s``.
    curve : dict or None
        For seed 0 and a method that predicts probabilities, the fields of the test half's
        top-label :class:`~calibkit.metrics.ReliabilityCurve` as lists; else None.
    """
    config = config or ClassificationConfig()
    return _task(model, method, seed, config)


# --------------------------------------------------------------------------------------


def _task(model: ClassificationOutputs, method: str, seed: int, config) -> tuple[dict, object]:
    try:
        return _run_cell(model, method, seed, config)
    except (ValueError, TypeError) as exc:
        where = model.info.get("file") or f"{model.family}/{model.name}"
        raise type(exc)(f"{where}, method {method!r}, seed {seed}: {exc}") from exc


def _run_cell(model, method, seed, config) -> tuple[dict, object]:
    from calibkit.metrics import reliability_curve

    cal, test = split_indices(model.labels, seed, config.test_size)
    spec = CLASSIFICATION_METHODS[method]
    row = {
        "family": model.family,
        "model": model.name,
        "params": model.params,
        "data": "top1" if model.top1_only else "full",
        "method": method,
        "seed": seed,
        "n_calib": int(len(cal)),
        "n_test": int(len(test)),
    }
    if model.top1_only:
        s = model.confidence
        y = (model.pred_label == model.labels).astype(np.int64)
        kind = "probs"
    else:
        s, y, kind = model.scores, model.labels, model.input
    est = make_classification(method, input=kind, alpha=config.alpha, seed=seed)
    with warnings.catch_warnings():
        _warm_up(est, method, s, y, cal, kind, config)
        # saturated probabilities and optimiser notes are properties of the data here
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        if est is not None:
            est.fit(s[cal], y[cal])
        t1 = time.perf_counter()
        if spec.conformal:
            sets = np.asarray(est.predict_set(s[test]), dtype=bool)
        elif est is None:
            prob = _identity_probs(s[test], kind)
        else:
            prob = np.asarray(est.predict_proba(s[test]), dtype=np.float64)
        t2 = time.perf_counter()
        curve = None
        if spec.conformal:
            row.update(_conformal_metrics(y[test], sets))
        elif model.top1_only:
            q = prob[:, 1] if prob.ndim == 2 else prob
            row.update(_top1_metrics(y[test], q, config.n_bins))
            if seed == 0:
                curve = _curve_dict(reliability_curve(y[test], q, n_bins=config.n_bins,
                                                      mode="binary"))
        else:
            row.update(_full_metrics(y[test], prob, config.n_bins))
            if seed == 0:
                curve = _curve_dict(reliability_curve(y[test], prob, n_bins=config.n_bins,
                                                      labels=np.arange(prob.shape[1])))
    row["fit_time_s"] = t1 - t0
    row["predict_time_s"] = t2 - t1
    return row, curve


_WARM: set = set()


def _warm_up(est, method, s, y, cal, kind, config) -> None:
    """Fit ``method`` once per process on a small slice before timing it, so that one-off
    costs (imports, first-call caches) do not land in the first timed fit."""
    key = (method, kind, np.ndim(s))
    if est is None or key in _WARM:
        return
    warnings.simplefilter("ignore")
    idx = cal[: min(len(cal), 500)]
    try:
        clone = make_classification(method, input=kind, alpha=config.alpha, seed=0)
        clone.fit(s[idx], y[idx])
        if CLASSIFICATION_METHODS[method].conformal:
            clone.predict_set(s[idx])
        else:
            clone.predict_proba(s[idx])
    except ValueError:  # e.g. a class missing from the slice: the timed fit will tell
        pass
    _WARM.add(key)


def _identity_probs(s, kind) -> np.ndarray:
    from scipy.special import softmax

    s = np.asarray(s, dtype=np.float64)
    if s.ndim == 1:
        return s
    return softmax(s, axis=1) if kind == "logits" else s


def _full_metrics(y, prob, n_bins) -> dict:
    from sklearn.metrics import roc_auc_score

    from calibkit.metrics import brier_score, expected_calibration_error, negative_log_likelihood

    labels = np.arange(prob.shape[1])
    correct = (prob.argmax(axis=1) == y).astype(np.int64)
    conf = prob.max(axis=1)
    return {
        "ece_width": expected_calibration_error(y, prob, n_bins=n_bins, labels=labels),
        "ece_mass": expected_calibration_error(y, prob, n_bins=n_bins, strategy="quantile",
                                               labels=labels),
        "ece_classwise": expected_calibration_error(y, prob, n_bins=n_bins, mode="classwise",
                                                    labels=labels),
        "brier": float(brier_score(y, prob, labels=labels)),
        "nll": float(negative_log_likelihood(y, prob, labels=labels)),
        "accuracy": float(correct.mean()),
        "auroc": _auroc(roc_auc_score, correct, conf),
    }


def _top1_metrics(correct, q, n_bins) -> dict:
    from sklearn.metrics import roc_auc_score

    from calibkit.metrics import brier_score, expected_calibration_error, negative_log_likelihood

    lab = np.array([0, 1])
    return {
        "ece_width": expected_calibration_error(correct, q, n_bins=n_bins, mode="binary",
                                                labels=lab),
        "ece_mass": expected_calibration_error(correct, q, n_bins=n_bins, strategy="quantile",
                                               mode="binary", labels=lab),
        "brier": float(brier_score(correct, q, labels=lab)),
        "nll": float(negative_log_likelihood(correct, q, labels=lab)),
        "accuracy": float(correct.mean()),
        "auroc": _auroc(roc_auc_score, correct, q),
    }


def _auroc(roc_auc_score, correct, conf) -> float:
    if correct.min() == correct.max():
        return float("nan")
    return float(roc_auc_score(correct, conf))


def _conformal_metrics(y, sets) -> dict:
    from calibkit.conformal import empirical_coverage, mean_set_size

    return {
        "coverage": float(empirical_coverage(y, sets)),
        "set_size": float(mean_set_size(sets)),
    }


def _curve_dict(curve) -> dict:
    from dataclasses import asdict

    return {k: (np.asarray(v).tolist() if k != "confidence_level" else v)
            for k, v in asdict(curve).items()}


def _config_dict(config: ClassificationConfig, methods) -> dict:
    return {
        "methods": list(methods),
        "seeds": config.seeds,
        "test_size": config.test_size,
        "n_bins": config.n_bins,
        "alpha": config.alpha,
        "split": "class-stratified, numpy.random.default_rng(seed), seeds 0..N-1",
    }
