"""Detection calibration and accuracy metrics, computed from a :class:`~calibkit.detection.Matches`.

Notation: for class c, ``D^c`` are its TP and FP detections (evaluated, not crowd-ignored),
``p_i`` the score, ``IoU_i`` the matched IoU of a TP (0 for an FP), J the number of bins.
Classes without regular ground truth in the split are dropped from every metric (their FPs
cost nothing), as in the detection calibration toolbox (Kuzucu et al., ECCV 2024).

* :func:`laece`: ``(1/K) sum_c sum_j |D_j^c|/|D^c| * |mean p - sum_{TP} IoU / |D_j^c||``;
* :func:`laace`: ``(1/K') sum_c mean_{i in D^c} |p_i - IoU_i|``;
* :func:`lrp`: LRP and its localisation, FP and FN components;
* :func:`dece_pooled`: the toolbox's D-ECE (pooled over classes, binary TP targets);
* :func:`dece_netcal`: netcal's D-ECE over confidence and box features;
* :func:`average_precision`: COCO AP@[.50:.95] (maxDets 100, area "all");
* :func:`evaluate`: all of them on one detection set (with bootstrap intervals on request).

Each formula is written once, on per-class (and per-bin) sums with optional leading batch
axes (``_laece_from_sums``, ``_lrp_from_sums``, ...; AP on weighted detections): the point
values feed it sums over the detections, :mod:`calibkit.detection.bootstrap` the sums of every
resample at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibkit._validation import (
    BOOLEAN,
    Interval,
    Options,
    check_array,
    check_param,
    check_params,
)
from calibkit.detection.cocoeval import (  # noqa: F401 (re-exported names)
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    accumulate,
)
from calibkit.detection.io import load_dets, load_gt
from calibkit.detection.iou import check_iou_type
from calibkit.detection.matching import (
    Matches,
    _greedy,
    _prepare,
    _resolve,
    match_many,
    match_netcal,
)
from calibkit.metrics.binning import (
    CLOSURES,
    MAX_BINS,
    assign_edges,
    assign_uniform,
    assign_uniform_closure,
    check_n_bins,
    quantile_edges,
)
from calibkit.metrics.calibration import calibration_error_from_bin_sums

__all__ = [
    "evaluate",
    "laece",
    "laace",
    "lrp",
    "dece_pooled",
    "dece_netcal",
    "box_features",
    "average_precision",
    "average_precision_per_class",
    "laece_per_class",
    "laace_per_class",
    "lrp_per_class",
]

EMPTY_CLASS_POLICIES = ("exclude", "zero")

#: what the keyword arguments of this module's functions accept
CONSTRAINTS = {
    "n_bins": [Interval("integer", 1, MAX_BINS)],
    "bin_closure": [Options(*CLOSURES)],
    "empty_class_policy": [Options(*EMPTY_CLASS_POLICIES)],
    "include_ignored": [BOOLEAN],
    "equal_intervals": [BOOLEAN],
    "sample_threshold": [Interval("integer", 0, None)],
}


def evaluate(
    gt,
    dets,
    *,
    tau: float = 0.0,
    iou_op: str = "ge",
    ap: bool = False,
    max_dets: int | None = None,
    iou_type: str = "bbox",
    dataset: str = "auto",
    laece_bins: int = 25,
    bin_closure: str = "right",
    class_mean_drop_zero_error: bool = True,
    empty_class_policy: str = "exclude",
    laace_include_ignored: bool = True,
    dece_tau: float = 0.5,
    dece_bins: int = 10,
    dece_matching: str = "greedy",
    n_bootstrap: int | None = None,
    confidence_level: float = 0.95,
    random_state=None,
    return_resamples: bool = False,
) -> dict:
    """Every detection metric on exactly the detections given (no thresholding inside).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The ground truth (see :func:`~calibkit.detection.load_gt`).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`; torchvision outputs go
        through :func:`~calibkit.detection.from_torchvision` first). Whatever
        :meth:`DetectionCalibrator.transform` returns is accepted.
    tau : float in [0, 1), default=0.0
        IoU threshold of a TP in the matching of LaECE, LaACE and LRP (see
        :func:`calibkit.detection.match`). The default reproduces the toolbox: ``tau=0``
        with ``IoU >= 0``.
    iou_op : {"ge", "gt"}, default="ge"
        ``"ge"``: a box is eligible iff ``IoU >= min(tau, 1 - 1e-10)``; ``"gt"``:
        ``IoU > tau``. Applies to D-ECE's greedy matching too.
    ap : bool, default=False
        Also compute AP@[.50:.95] (``"ap"``; LVIS's AP over its evaluated set under LVIS's
        rules).
    max_dets : int or None, default=None
        Detections kept per (image, class) (COCO; None: 100, as the toolbox) or per image
        (LVIS; None: 300), in every greedy matching and in AP.
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU of the segmentations, for every metric.
    dataset : {"auto", "coco", "lvis"}, default="auto"
        COCO's rules or LVIS's federated rules (see :func:`calibkit.detection.match`; an
        ignored detection is neither TP nor FP in every metric); ``"auto"`` follows the
        ground truth.
    laece_bins : int, default=25
        Equal-width bins of LaECE (``n_bins`` of :func:`laece`).
    bin_closure : {"right", "left", "numpy"}, default="right"
        Which side of each bin is closed, for LaECE and D-ECE (see :func:`laece`).
    class_mean_drop_zero_error : bool, default=True
        Leave classes whose LaECE or LaACE is exactly 0 out of the class mean (see
        :func:`laece`).
    empty_class_policy : {"exclude", "zero"}, default="exclude"
        Which classes the LaECE and LaACE means run over (see :func:`laece`).
    laace_include_ignored : bool, default=True
        See :func:`laace`.
    dece_tau : float in [0, 1), default=0.5
        D-ECE's TP threshold (the train-time papers' protocol; apply their fixed score
        threshold of 0.3 to ``dets`` before calling). The greedy matching runs a second time
        at this threshold unless it equals ``tau``.
    dece_bins : int, default=10
        D-ECE's equal-width bins.
    dece_matching : {"greedy", "netcal_argmax_any_class"}, default="greedy"
        D-ECE's matching: COCO's greedy matching at ``dece_tau`` (pooled over the classes
        with ground truth, :func:`dece_pooled`), or netcal's (:func:`match_netcal`, every
        detection taking part). netcal's matching knows nothing of LVIS's federated labels
        and is refused there.
    n_bootstrap : int or None, default=None
        Also give an image-level bootstrap interval beside every value (``"laece_ci":
        (low, high)`` beside ``"laece"``, and so on): ``n_bootstrap`` resamples of the images
        with replacement, each metric recomputed from the matches of the resampled images
        (no rematching), percentile intervals. See :mod:`calibkit.detection.bootstrap` for
        what a duplicated image means for each metric.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the bootstrap intervals.
    random_state : int, RandomState, Generator or None, default=None
        Seed of the resamples (read only with ``n_bootstrap``); the same integer on the same
        ground truth gives the same resamples (see
        :func:`calibkit.detection.bootstrap.paired_bootstrap`). None: fresh randomness.
    return_resamples : bool, default=False
        With ``n_bootstrap``, also return the per-resample values under ``"resamples"``.

    Returns
    -------
    dict
        ``laece``, ``laace``, ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn``, ``dece`` (and
        ``ap``): floats, fractions in [0, 1], NaN where no class qualifies. With
        ``n_bootstrap``: ``<key>_ci`` tuples ``(low, high)`` (and ``"resamples"``, a dict of
        arrays of shape (n_bootstrap,)).
    """
    iou_type = check_iou_type(iou_type, "evaluate")
    gt = load_gt(gt, iou_type=iou_type)
    dets = load_dets(dets, iou_type=iou_type, gt=gt)
    dataset, max_dets = _resolve(gt, dataset, max_dets, "evaluate")
    if dataset == "lvis" and dece_matching == "netcal_argmax_any_class":
        raise ValueError("dece_matching='netcal_argmax_any_class' ignores LVIS's federated "
                         "labels; use the greedy matching (the default) on LVIS.")
    if n_bootstrap is not None:
        from calibkit.detection import bootstrap

        n_bootstrap = bootstrap._check_n_bootstrap(n_bootstrap, "evaluate")
        confidence_level = bootstrap._check_confidence_level(confidence_level, "evaluate")
    elif return_resamples:
        raise ValueError("return_resamples=True needs n_bootstrap (the number of resamples).")
    greedy_dece = dece_matching == "greedy" and float(dece_tau) != float(tau)
    taus = [tau, dece_tau] if greedy_dece else [tau]
    ms = match_many(gt, dets, taus, iou_op=iou_op, max_dets=max_dets, iou_type=iou_type,
                    dataset=dataset)
    ap_value = average_precision(gt, dets, max_dets=max_dets, iou_type=iou_type,
                                 dataset=dataset) if ap else None
    options = dict(laece_bins=laece_bins, bin_closure=bin_closure,
                   class_mean_drop_zero_error=class_mean_drop_zero_error,
                   empty_class_policy=empty_class_policy,
                   laace_include_ignored=laace_include_ignored, dece_tau=dece_tau,
                   dece_bins=dece_bins, dece_matching=dece_matching)
    out = _evaluate_matches(gt, dets, ms[0], ms[-1], ap=ap_value, **options)
    if n_bootstrap is not None:
        out.update(_bootstrap_matches(
            gt, dets, ms, ap=ap, max_dets=max_dets, n_bootstrap=n_bootstrap,
            confidence_level=confidence_level, random_state=random_state,
            return_resamples=return_resamples, **options,
        ))
    return out


def _bootstrap_matches(gt, dets, ms, *, ap, max_dets, n_bootstrap, confidence_level,
                       random_state, return_resamples, laece_bins: int = 25,
                       bin_closure: str = "right", class_mean_drop_zero_error: bool = True,
                       empty_class_policy: str = "exclude", laace_include_ignored: bool = True,
                       dece_tau: float = 0.5, dece_bins: int = 10,
                       dece_matching: str = "greedy") -> dict:
    """The ``<key>_ci`` intervals (and ``"resamples"``) of :func:`evaluate` from its
    matches ``ms`` (the first at ``tau``, the last for D-ECE); the sharded and Dask paths
    call it too. The options are already checked."""
    from calibkit.detection import bootstrap

    flags = (match_netcal(gt, dets, tau=dece_tau, iou_type=ms[0].iou_type)
             if dece_matching == "netcal_argmax_any_class" else None)
    resamples = bootstrap._evaluate_resamples(
        gt, dets, ms, flags, n_bootstrap=n_bootstrap, random_state=random_state, ap=ap,
        max_dets=max_dets, laece_bins=laece_bins, bin_closure=bin_closure,
        class_mean_drop_zero_error=class_mean_drop_zero_error,
        empty_class_policy=empty_class_policy, laace_include_ignored=laace_include_ignored,
        dece_bins=dece_bins,
    )
    out = bootstrap._intervals(resamples, confidence_level)
    if return_resamples:
        out["resamples"] = resamples
    return out


def _evaluate_matches(
    gt, dets, m: Matches, m_dece: Matches, *, ap=None, laece_bins: int = 25,
    bin_closure: str = "right", class_mean_drop_zero_error: bool = True,
    empty_class_policy: str = "exclude", laace_include_ignored: bool = True,
    dece_tau: float = 0.5, dece_bins: int = 10, dece_matching: str = "greedy",
) -> dict:
    """:func:`evaluate` from matches already made (``m`` at ``tau``, ``m_dece`` at
    ``dece_tau``) and, if not None, the AP value; the sharded and Dask paths call it."""
    out = {
        "laece": laece(
            m, n_bins=laece_bins, bin_closure=bin_closure,
            class_mean_drop_zero_error=class_mean_drop_zero_error,
            empty_class_policy=empty_class_policy,
        ),
        "laace": laace(
            m, include_ignored=laace_include_ignored,
            class_mean_drop_zero_error=class_mean_drop_zero_error,
            empty_class_policy=empty_class_policy,
        ),
    }
    out.update(lrp(m))
    if dece_matching == "greedy":
        out["dece"] = dece_pooled(m_dece, n_bins=dece_bins, bin_closure=bin_closure)
    elif dece_matching == "netcal_argmax_any_class":
        flags = match_netcal(gt, dets, tau=dece_tau, iou_type=m.iou_type)
        out["dece"] = _pooled_ece(dets.score, flags.astype(np.float64), dece_bins, bin_closure)
    else:
        raise ValueError(
            "dece_matching must be 'greedy' or 'netcal_argmax_any_class'; "
            f"got {dece_matching!r}."
        )
    if ap is not None:
        out["ap"] = ap
    return out


# --------------------------------------------------------------------------------------
# LaECE, LaACE
# --------------------------------------------------------------------------------------


def laece(
    matches: Matches,
    *,
    n_bins: int = 25,
    bin_closure: str = "right",
    class_mean_drop_zero_error: bool = True,
    empty_class_policy: str = "exclude",
) -> float:
    """Localisation-aware ECE.

    ``e_c = sum_j (|D_j^c| / |D^c|) |conf_j - acc_j|`` with ``acc_j = sum_{TP in j} IoU / |D_j^c|``
    (precision x mean IoU) over ``n_bins`` equal-width bins; empty bins contribute 0.

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (:func:`calibkit.detection.match`).
    n_bins : int, default=25
        Number of equal-width bins on [0, 1].
    bin_closure : {"right", "left", "numpy"}, default="right"
        ``"right"``: ``[0, e_1]``, then ``(e_j, e_{j+1}]`` (LaECE_0 of the toolbox);
        ``"left"``: ``[e_j, e_{j+1})``, so a score of 1 is in no bin but counts in ``|D^c|``
        (SAOD); ``"numpy"``: ``[a, b)`` with the last bin closed (netcal).
    class_mean_drop_zero_error : bool, default=True
        Leave classes whose error is exactly 0 out of the mean (the toolbox's quirk).
    empty_class_policy : {"exclude", "zero"}, default="exclude"
        ``"exclude"``: average over classes with ground truth and TP/FP detections (LaECE_0);
        ``"zero"``: average over every category of the ground truth, classes without
        ground truth or detections counting as 0 (SAOD's LaECE, with ``tau=0.1``,
        ``bin_closure="left"``, ``class_mean_drop_zero_error=False``).

    Returns
    -------
    float
        The class mean (NaN when no class qualifies); :func:`laece_per_class` gives ``e_c``.
    """
    e = laece_per_class(matches, n_bins=n_bins, bin_closure=bin_closure)
    return float(_class_mean(e, class_mean_drop_zero_error,
                             _check_policy(empty_class_policy)))


def laece_per_class(matches: Matches, *, n_bins: int = 25, bin_closure: str = "right"):
    """LaECE of each category, ``e_c`` of :func:`laece`.

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (:func:`calibkit.detection.match`).
    n_bins : int, default=25
        Number of equal-width bins on [0, 1].
    bin_closure : {"right", "left", "numpy"}, default="right"
        As in :func:`laece`.

    Returns
    -------
    ndarray of shape (n_categories,)
        In the order of ``matches.gt.category_ids``; NaN where the class has no TP/FP or no
        regular ground truth.
    """
    check_params("laece", CONSTRAINTS, n_bins=n_bins, bin_closure=bin_closure)
    k = matches.n_categories
    v = matches.valid
    cls = matches.class_index[v]
    p = matches.dets.score[v]
    b = assign_uniform_closure(p, n_bins, bin_closure)
    gap = np.bincount(cls * (n_bins + 1) + b, weights=matches.iou[v] - p,
                      minlength=k * (n_bins + 1)).reshape(k, n_bins + 1)[:, :n_bins]
    n_c = np.bincount(cls, minlength=k).astype(np.float64)
    return _laece_from_sums(gap, n_c, matches.npig > 0)


def _laece_from_sums(gap: np.ndarray, n: np.ndarray, has_gt: np.ndarray) -> np.ndarray:
    """Per-class LaECE ``e_c = sum_j |sum_{i in j} (IoU_i - p_i)| / |D^c|`` (the same as
    ``sum_j (|D_j^c| / |D^c|) |acc_j - conf_j|``), from the per-bin sums ``gap`` of shape
    (..., K, J), the TP+FP counts ``n`` of shape (..., K) (detections in no bin included) and
    the classes with ground truth ``has_gt``; NaN where ``n == 0`` or without ground truth.
    Leading axes are batches (bootstrap resamples)."""
    e = _l1_error_from_gaps(gap, n)
    return np.where((n > 0) & has_gt, e, np.nan)


def _l1_error_from_gaps(gap, n):
    """``sum_j |gap_j| / n``: the L1 form of
    :func:`calibkit.metrics.calibration_error_from_bin_sums` (``sum_j (n_j / N)
    |acc_j - conf_j|`` with ``gap_j = sum_acc_j - sum_conf_j``), given the per-bin sums of
    the differences; NaN where ``n == 0``. Each bin enters the shared
    formula with a count of 1, which makes ``(n_j / N) |acc_j - conf_j|`` equal to
    ``|gap_j| / N`` whatever the true count."""
    gap = np.asarray(gap, np.float64)
    n = np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = calibration_error_from_bin_sums(np.ones_like(gap), np.zeros_like(gap), gap,
                                            norm="l1", total=n)
    return np.where(n > 0, e, np.nan)


def laace(
    matches: Matches,
    *,
    include_ignored: bool = True,
    class_mean_drop_zero_error: bool = True,
    empty_class_policy: str = "exclude",
) -> float:
    """Localisation-aware adaptive CE with one detection per bin (LaACE_0).

    ``e_c = mean_i |p_i - IoU_i|`` over the class's detections (target 0 for an FP).

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (:func:`calibkit.detection.match`).
    include_ignored : bool, default=True
        Also average over the ignored detections (crowd-matched, or LVIS's ignored ones),
        with target 0, as the toolbox does (its mask selects every detection); ``False``
        uses ``D^c`` only. A class with no TP or FP is skipped either way.
    class_mean_drop_zero_error : bool, default=True
        Leave classes whose error is exactly 0 out of the mean, as in :func:`laece`.
    empty_class_policy : {"exclude", "zero"}, default="exclude"
        Which classes the mean runs over, as in :func:`laece`.

    Returns
    -------
    float
        The class mean (NaN when no class qualifies); :func:`laace_per_class` gives ``e_c``.
    """
    e = laace_per_class(matches, include_ignored=include_ignored)
    return float(_class_mean(e, class_mean_drop_zero_error,
                             _check_policy(empty_class_policy)))


def laace_per_class(matches: Matches, *, include_ignored: bool = True):
    """LaACE of each category, ``e_c`` of :func:`laace`.

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (:func:`calibkit.detection.match`).
    include_ignored : bool, default=True
        As in :func:`laace`.

    Returns
    -------
    ndarray of shape (n_categories,)
        NaN where the class has no TP/FP or no regular ground truth.
    """
    check_params("laace", CONSTRAINTS, include_ignored=include_ignored)
    k = matches.n_categories
    sel = matches.evaluated if include_ignored else matches.valid
    cls = matches.class_index[sel]
    dev = np.bincount(cls, weights=np.abs(matches.dets.score[sel] - matches.iou[sel]),
                      minlength=k)
    n_sel = np.bincount(cls, minlength=k).astype(np.float64)
    n_valid = np.bincount(matches.class_index[matches.valid], minlength=k).astype(np.float64)
    return _laace_from_sums(dev, n_sel, n_valid, matches.npig > 0)


def _laace_from_sums(dev, n_sel, n_valid, has_gt) -> np.ndarray:
    """Per-class LaACE ``dev / n_sel`` (``dev`` the sum of ``|p_i - IoU_i|`` over the ``n_sel``
    averaged detections), NaN for a class without TP/FP (``n_valid == 0``) or without ground
    truth; arrays of shape (..., K)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        e = dev / n_sel
    return np.where((n_valid > 0) & has_gt, e, np.nan)


def _class_mean(e: np.ndarray, drop_zero: bool, policy: str):
    """Mean over the last axis (classes) of ``e`` under the class-exclusion rules of
    :func:`laece`; NaN where no class is left. Leading axes are batches."""
    zero = (e == 0) if drop_zero else np.zeros(e.shape, bool)
    if policy == "zero":
        keep = ~zero
        vals = np.where(np.isnan(e) | ~keep, 0.0, e)
    else:
        keep = ~np.isnan(e) & ~zero
        vals = np.where(keep, e, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return vals.sum(axis=-1) / keep.sum(axis=-1)


def _check_policy(policy: str) -> str:
    return check_param(policy, "empty_class_policy", CONSTRAINTS["empty_class_policy"])


# --------------------------------------------------------------------------------------
# LRP
# --------------------------------------------------------------------------------------


def lrp(matches: Matches) -> dict:
    """Localisation-Recall-Precision error at the matching threshold ``tau``.

    Per class, with ``N_FN = npig - N_TP``::

        LRP     = (sum_TP (1 - IoU) / (1 - tau) + N_FP + N_FN) / (N_TP + N_FP + N_FN)
        LRP_loc = sum_TP (1 - IoU) / N_TP
        LRP_FP  = N_FP / (N_TP + N_FP)
        LRP_FN  = N_FN / npig

    A class with ground truth but no TP has LRP = LRP_FN = 1 and NaN loc / FP components; a
    class without regular ground truth is NaN. Each value is the mean over non-NaN classes.

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth at ``tau`` (:func:`calibkit.detection.match`).

    Returns
    -------
    dict of float
        ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn``; :func:`lrp_per_class` gives the values
        of each category.
    """
    return {key: float(_nanmean(val)) for key, val in lrp_per_class(matches).items()}


def lrp_per_class(matches: Matches) -> dict:
    """LRP and its components for each category (see :func:`lrp`).

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth at ``tau`` (:func:`calibkit.detection.match`).

    Returns
    -------
    dict of ndarray of shape (n_categories,)
        ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn``; NaN as :func:`lrp` describes.
    """
    k = matches.n_categories
    v = matches.valid
    cls = matches.class_index[v]
    n_tp = np.bincount(cls, weights=matches.tp[v], minlength=k)
    n_fp = np.bincount(cls, weights=~matches.tp[v], minlength=k)
    loc = np.bincount(cls, weights=np.where(matches.tp[v], 1.0 - matches.iou[v], 0.0),
                      minlength=k)
    return _lrp_from_sums(n_tp, n_fp, loc, matches.npig.astype(np.float64), matches.tau)


def _lrp_from_sums(n_tp, n_fp, loc, npig, tau: float) -> dict:
    """Per-class LRP and its components (see :func:`lrp`) from the TP and FP counts, the
    summed localisation error ``sum_TP (1 - IoU)`` and the regular ground-truth count, arrays
    of shape (..., K)."""
    n_fn = npig - n_tp
    has = npig > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(has, (loc / (1.0 - tau) + n_fp + n_fn) / (n_tp + n_fp + n_fn),
                         np.nan)
        has_tp = has & (n_tp > 0)
        c_loc = np.where(has_tp, loc / n_tp, np.nan)
        c_fp = np.where(has_tp, n_fp / (n_tp + n_fp), np.nan)
        c_fn = np.where(has, n_fn / npig, np.nan)
    return {"lrp": total, "lrp_loc": c_loc, "lrp_fp": c_fp, "lrp_fn": c_fn}


def _nanmean(x: np.ndarray):
    """Mean over the last axis ignoring NaN; NaN where every value is NaN."""
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, x, 0.0).sum(axis=-1) / ok.sum(axis=-1)


# --------------------------------------------------------------------------------------
# D-ECE
# --------------------------------------------------------------------------------------


def dece_pooled(matches: Matches, *, n_bins: int = 10, bin_closure: str = "right") -> float:
    """D-ECE as the detection calibration toolbox computes it (confidence only, pooled).

    ``D-ECE = sum_j (n_j / N) |precision_j - conf_j|`` over the TP and FP detections of all
    classes with ground truth, ``precision_j`` the fraction of TPs in bin j. The train-time
    papers' protocol matches at ``tau=0.5`` with 10 bins, on detections with score >= 0.3.

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (:func:`calibkit.detection.match`; the
        protocol's ``tau=0.5``).
    n_bins : int, default=10
        Number of equal-width bins on [0, 1].
    bin_closure : {"right", "left", "numpy"}, default="right"
        Which side of each bin is closed, as in :func:`laece`; a score in no bin still
        counts in ``N``.

    Returns
    -------
    float
        In [0, 1]; NaN when no TP or FP detection of a class with ground truth is left.
    """
    check_params("dece_pooled", CONSTRAINTS, n_bins=n_bins, bin_closure=bin_closure)
    sel = matches.valid & (matches.npig > 0)[matches.class_index]
    return _pooled_ece(matches.dets.score[sel], matches.tp[sel].astype(np.float64), n_bins,
                       bin_closure)


def _pooled_ece(p: np.ndarray, y: np.ndarray, n_bins: int, closure: str) -> float:
    b = assign_uniform_closure(p, n_bins, closure)
    gap = np.bincount(b, weights=y - p, minlength=n_bins + 1)[:n_bins]
    return float(_pooled_ece_from_sums(gap, float(len(p))))


def _pooled_ece_from_sums(gap, n):
    """``sum_j |sum_{i in j} (y_i - p_i)| / n`` from per-bin sums ``gap`` of shape (..., J)
    and the count ``n`` of shape (...) (scores in no bin included); NaN where ``n == 0``."""
    return _l1_error_from_gaps(gap, n)


def dece_netcal(
    confidence,
    matched,
    features=None,
    *,
    n_bins=10,
    equal_intervals: bool = True,
    sample_threshold: int = 1,
) -> float:
    """D-ECE as netcal defines it (Küppers et al., 2020).

    ``D-ECE = sum_cells (N_n / N) |acc(n) - conf(n)|`` over a histogram of the confidence and
    the box ``features``, ``acc`` the mean of ``matched`` and ``conf`` the mean confidence of
    the cell. Every column is clipped to ``[eps, 1 - eps]``; bins are ``[a, b)`` with the
    last closed (numpy's ``histogramdd``). Cells with fewer than ``sample_threshold``
    samples contribute 0 but still count in ``N``. Bins come from
    :mod:`calibkit.metrics.binning` and the error from
    :func:`calibkit.metrics.calibration_error_from_bin_sums`.

    Parameters
    ----------
    confidence : array-like of shape (n,)
        Detection scores in [0, 1].
    matched : array-like of shape (n,)
        The user's matched flags (netcal does no box matching; see :func:`match_netcal` or
        :func:`calibkit.detection.match`).
    features : array-like of shape (n, J) or None, default=None
        Box features in [0, 1], e.g. :func:`box_features` (normalised cx, cy, w, h).
    n_bins : int or list of int, default=10
        Bins per dimension (confidence first).
    equal_intervals : bool, default=True
        ``False``: quantile edges per dimension, outer edges 0 and 1
        (:func:`calibkit.metrics.binning.quantile_edges`).
    sample_threshold : int, default=1
        Least number of samples of a cell that counts (0 and 1 both count every non-empty
        cell).

    Returns
    -------
    float
        NaN for no detection.
    """
    check_params("dece_netcal", CONSTRAINTS, equal_intervals=equal_intervals,
                 sample_threshold=sample_threshold)
    if np.size(confidence) == 0 and np.size(matched) == 0:
        return float("nan")  # no detection, as every detection error
    conf = check_array(confidence, name="confidence", ndim=(1,))
    y = check_array(matched, name="matched", ndim=(1,))
    if len(y) != len(conf):
        raise ValueError(f"matched has {len(y)} entries but confidence has {len(conf)}.")
    x = conf[:, None] if features is None else np.column_stack(
        [conf, check_array(features, name="features", ndim=(1, 2)).reshape(len(conf), -1)]
    )
    eps = np.finfo(x.dtype).eps
    x = np.clip(x, eps, 1 - eps)
    n_dim = x.shape[1]
    bins_list = [n_bins] * n_dim if np.isscalar(n_bins) else list(n_bins)
    if len(bins_list) != n_dim:
        raise ValueError(f"n_bins has {len(bins_list)} entries for {n_dim} dimensions.")
    bins_list = [check_n_bins(nb) for nb in bins_list]
    idx = [assign_uniform(x[:, d], nb) if equal_intervals
           else assign_edges(x[:, d], quantile_edges(x[:, d], nb))
           for d, nb in enumerate(bins_list)]
    cell = np.ravel_multi_index(idx, bins_list)
    size = int(np.prod(bins_list))
    count = np.bincount(cell, minlength=size).astype(np.float64)
    keep = count >= max(sample_threshold, 1)
    s_p = np.bincount(cell, weights=x[:, 0], minlength=size)
    s_y = np.bincount(cell, weights=y, minlength=size)
    return float(calibration_error_from_bin_sums(
        np.where(keep, count, 0.0), np.where(keep, s_p, 0.0), np.where(keep, s_y, 0.0),
        norm="l1", total=float(len(conf)),
    ))


def box_features(gt, dets) -> np.ndarray:
    """Normalised box features ``[cx, cy, w, h]``: centre and size divided by the image width
    and height from the ground truth's ``images`` (the ``features`` of :func:`dece_netcal`).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The ground truth, whose images give each detection's image width and height.
    dets : path, COCO results list or Detections
        The detections.

    Returns
    -------
    ndarray of shape (n_dets, 4)
        ``[cx / width, cy / height, w / width, h / height]`` of each detection, in the rows'
        order (within [0, 1] for boxes inside their image).

    Raises
    ------
    ValueError
        A detection's image is not in the ground truth, or has no width and height.
    """
    gt = load_gt(gt)
    dets = load_dets(dets)
    if len(dets) and not len(gt.image_ids):
        raise ValueError("the ground truth has no images; box features need each "
                         "detection's image (its width and height).")
    img = np.searchsorted(gt.image_ids, dets.image_id)
    img = np.clip(img, 0, max(len(gt.image_ids) - 1, 0))
    if len(dets) and np.any(gt.image_ids[img] != dets.image_id):
        raise ValueError("detections use image ids that are not in the ground truth.")
    wd, ht = gt.image_width[img], gt.image_height[img]
    if np.any(np.isnan(wd)) or np.any(np.isnan(ht)):
        raise ValueError("the ground truth's images need width and height for box features.")
    b = dets.box
    return np.column_stack([(b[:, 0] + b[:, 2] / 2) / wd, (b[:, 1] + b[:, 3] / 2) / ht,
                            b[:, 2] / wd, b[:, 3] / ht])


# --------------------------------------------------------------------------------------
# AP
# --------------------------------------------------------------------------------------


def average_precision(gt, dets, *, max_dets: int | None = None, iou_thresholds=None,
                      iou_type: str = "bbox", dataset: str = "auto") -> float:
    """COCO AP@[.50:.95] (area "all", ``max_dets`` per (image, class)), the value of
    pycocotools' ``COCOeval.stats[0]``, from calibkit's own matching (LVIS: ``LVISEval``'s
    AP under its rules, ``max_dets`` per image).

    Per class and IoU threshold: cumulative TP/FP in the per-class order, precision made
    monotone from the right, sampled at the 101 recall thresholds ``0:.01:1``
    (``searchsorted(recall, r, "left")``, 0 beyond the last recall); the mean runs over
    thresholds, recall points and classes with regular ground truth.

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The ground truth (see :func:`~calibkit.detection.load_gt`).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`).
    max_dets : int or None, default=None
        Detections kept per (image, class) (COCO; None: 100) or per image (LVIS; None: 300).
    iou_thresholds : array-like of shape (n_thresholds,) or None, default=None
        IoU thresholds in [0, 1] (COCO's ``.50:.05:.95`` when None); a detection is a TP at
        threshold ``t`` when ``IoU >= min(t, 1 - 1e-10)``.
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU of the segmentations.
    dataset : {"auto", "coco", "lvis"}, default="auto"
        COCO's rules or LVIS's federated rules (see :func:`calibkit.detection.match`);
        ``"auto"`` follows the ground truth.

    Returns
    -------
    float
        NaN when no class has regular ground truth; :func:`average_precision_per_class`
        gives the AP of each category.
    """
    return float(_nanmean(average_precision_per_class(
        gt, dets, max_dets=max_dets, iou_thresholds=iou_thresholds, iou_type=iou_type,
        dataset=dataset)))


def average_precision_per_class(gt, dets, *, max_dets: int | None = None, iou_thresholds=None,
                                iou_type: str = "bbox", dataset: str = "auto"):
    """The AP of each category (see :func:`average_precision`).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The ground truth (see :func:`~calibkit.detection.load_gt`).
    dets : path, COCO results list or Detections
        The detections (see :func:`~calibkit.detection.load_dets`).
    max_dets : int or None, default=None
        As in :func:`average_precision`.
    iou_thresholds : array-like of shape (n_thresholds,) or None, default=None
        As in :func:`average_precision`.
    iou_type : {"bbox", "segm"}, default="bbox"
        As in :func:`average_precision`.
    dataset : {"auto", "coco", "lvis"}, default="auto"
        As in :func:`average_precision`.

    Returns
    -------
    ndarray of shape (n_categories,)
        In the order of the ground truth's sorted category ids; NaN for a class without
        regular ground truth.
    """
    iou_type = check_iou_type(iou_type, "average_precision")
    gt = load_gt(gt, iou_type=iou_type)
    dataset, max_dets = _resolve(gt, dataset, max_dets, "average_precision")
    thrs = COCO_IOU_THRESHOLDS if iou_thresholds is None else check_array(
        iou_thresholds, name="iou_thresholds", ndim=(1,))
    if np.any((thrs < 0) | (thrs > 1)):
        raise ValueError("iou_thresholds must lie in [0, 1].")
    # no area range: every box counts, whatever its area
    precision, _ = accumulate(gt, dets, iou_thresholds=thrs, area_ranges=[[-np.inf, np.inf]],
                              max_dets=[max_dets], iou_type=iou_type, dataset=dataset)
    q = precision[:, :, :, 0, 0]  # (T, R, K), -1 for classes without regular boxes
    has = q[0, 0] > -1
    per_class = np.full(q.shape[2], np.nan)
    per_class[has] = q[:, :, has].mean(axis=(0, 1))
    return per_class


@dataclass(frozen=True)
class _APTable:
    """The evaluated detections of AP in per-class order (class, descending score, image id,
    file order) with their TP and ignored flags at each IoU threshold."""

    tp: np.ndarray  # (n_thresholds, n) bool, TP (never ignored)
    ignored: np.ndarray  # (n_thresholds, n) bool
    image: np.ndarray  # (n,) image index in gt.image_ids
    bounds: np.ndarray  # (K + 1,) start of each class in the order
    npig: np.ndarray  # (K,) regular ground-truth boxes
    n_images: int
    # blocks of 2+ detections of one image, class and score holding a TP and an FP at some
    # threshold: their start in the order and their length
    mixed_start: np.ndarray
    mixed_length: np.ndarray


def _ap_table(gt, dets, max_dets: int, iou_thresholds=None, *, iou_type: str = "bbox",
              dataset: str = "coco") -> _APTable:
    thrs = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, float)
    prep = _prepare(gt, dets, max_dets, iou_type=iou_type, dataset=dataset)
    tp, ig, _ = _greedy(prep, thrs, "ge")
    det = prep.det
    cls = prep.cls_all[det]
    o = np.lexsort((det, dets.image_id[det], -dets.score[det], cls))
    img = np.searchsorted(gt.image_ids, dets.image_id[det])  # ids checked by _prepare
    tp, ig, cls, score, img = tp[:, o], ig[:, o], cls[o], dets.score[det][o], img[o]
    bounds = np.searchsorted(cls, np.arange(gt.n_categories + 1))
    start = np.zeros(0, np.intp)
    length = np.zeros(0, np.intp)
    if len(o) > 1:
        new = np.ones(len(o), bool)
        new[1:] = (cls[1:] != cls[:-1]) | (score[1:] != score[:-1]) | (img[1:] != img[:-1])
        start = np.flatnonzero(new)
        length = np.diff(np.append(start, len(o)))
        has_tp = np.logical_or.reduceat(tp, start, axis=1)
        has_fp = np.logical_or.reduceat(~tp & ~ig, start, axis=1)
        mixed = (length > 1) & (has_tp & has_fp).any(axis=0)
        start, length = start[mixed], length[mixed]
    return _APTable(tp, ig, img, bounds, prep.npig, gt.n_images, start, length)


def _ap_from_table(table: _APTable, counts=None, npig=None) -> np.ndarray:
    """Per-class AP of shape (B, K), NaN for a class without regular ground truth.

    ``counts`` (shape (B, n_images)) weights every detection by the number of copies of its
    image (one bootstrap resample per row; None: one row of ones) and ``npig`` (B, K) are the
    matching regular ground-truth counts. The resampled data set is the literal one with the
    copies of an image adjacent (see :mod:`calibkit.detection.bootstrap`).

    Only the ends of *runs* are visited, a run being a maximal stretch of TPs with no FP
    between them (ignored detections change nothing). Along a run precision only rises
    (``(T + w) / (A + w) >= T / A``) and between runs it only falls, so the precision made
    monotone from the right is the same at every TP of a run as at its end, and pycocotools'
    ``searchsorted(recall, r, "left")`` for a recall threshold ``r`` lands in the run whose
    recall first reaches ``r`` (for ``r = 0``, possibly on an earlier FP, whose monotone
    precision is the overall maximum, again reached at a run end). A run end with recall
    ``rc`` therefore takes the ``#{r <= rc} - #{r <= rc_previous}`` recall thresholds.

    With weights, the ``c`` copies of a detection count as ``c`` adjacent detections with
    its flags, which is the literal order unless one image holds several detections of a
    class with equal scores (a tie block) mixing TPs and FPs: there the copies of the image,
    not of the detection, are adjacent, so those blocks are repeated explicitly, copy ``q``
    weighted by ``[count > q]``.
    """
    k = len(table.npig)
    if counts is None:
        npig = table.npig[None, :].astype(np.float64)
        counts_t = np.ones((table.n_images, 1))
    else:
        table, counts = _repeat_tie_blocks(table, np.asarray(counts))
        counts_t = np.ascontiguousarray(counts.T, dtype=np.float64)
    n_thr = table.tp.shape[0]
    n_rows = counts_t.shape[1]
    eps = np.spacing(1)
    out = np.full((n_rows, k), np.nan)
    for c in range(k):
        has = npig[:, c] > 0
        if not has.any():
            continue
        a, b = table.bounds[c], table.bounds[c + 1]
        runs = _ap_runs(table, a, b)
        total = np.zeros(n_rows)
        if runs is not None:
            ends, first, tp_runs, ig_runs, image = runs
            segments = [(first[t], first[t + 1]) for t in range(n_thr)
                        if first[t + 1] > first[t]]
            n_gt = np.where(has, npig[:, c], np.inf)[:, None]
            # (resamples, runs) arrays of a few MiB, accumulated along their rows
            step = max(1, min(n_rows, (1 << 18) // len(ends)))
            for s in range(0, n_rows, step):
                w = counts_t[:, s:s + step]
                seen = np.cumsum(w[image].T, axis=1)[:, ends]
                t_sum = np.ascontiguousarray((tp_runs @ w).T)
                ig_sum = None if ig_runs is None else np.ascontiguousarray((ig_runs @ w).T)
                for f0, f1 in segments:  # cumulative sums within each threshold
                    np.cumsum(t_sum[:, f0:f1], axis=1, out=t_sum[:, f0:f1])
                    if ig_sum is not None:
                        np.cumsum(ig_sum[:, f0:f1], axis=1, out=ig_sum[:, f0:f1])
                if ig_sum is not None:
                    seen -= ig_sum
                pr = t_sum / (seen + eps)
                for f0, f1 in segments:  # made monotone from the right
                    pr[:, f0:f1] = np.maximum.accumulate(pr[:, f0:f1][:, ::-1], axis=1)[:, ::-1]
                rc = t_sum / n_gt[s:s + step]
                # #{r <= rc} - 1: the 101 recall thresholds are the edges of 100 equal bins
                reached = assign_uniform(rc.ravel(), 100).reshape(rc.shape) + (rc >= 1.0)
                taken = np.diff(reached, axis=1, prepend=0)
                for f0, _ in segments:
                    taken[:, f0] = reached[:, f0] + 1
                total[s:s + step] = np.einsum("br,br->b", pr, taken)
        out[has, c] = total[has] / (n_thr * len(COCO_RECALL_THRESHOLDS))
    return out


def _repeat_tie_blocks(table: _APTable, counts: np.ndarray):
    """Repeat each mixed tie block as often as its image is drawn at most, copy ``q`` of the
    block taking a new image column with count ``[counts[:, i] > q]``."""
    if not len(table.mixed_start):
        return table, counts
    length = table.mixed_length
    img = table.image[table.mixed_start]
    n_copies = np.maximum(counts[:, img].max(axis=0), 1)
    n = table.tp.shape[1]
    in_block = np.zeros(n, bool)
    in_block[_ranges(table.mixed_start, length)] = True
    plain = np.flatnonzero(~in_block)
    # the entries of the repeated blocks: block k, then copy q, then offset j in the block
    size = n_copies * length
    blk = np.repeat(np.arange(len(img)), size)
    r = _ranges(np.zeros(len(img), np.intp), size)
    q, j = np.divmod(r, length[blk])
    # everything in the order of the anchors (a block's start, or the position itself)
    order = np.lexsort((np.concatenate([np.zeros(len(plain), np.intp), r]),
                        np.concatenate([plain, table.mixed_start[blk]])))
    src = np.concatenate([plain, table.mixed_start[blk] + j])[order]
    first_col = table.n_images + np.cumsum(n_copies) - n_copies
    column = np.concatenate([table.image[plain], first_col[blk] + q])[order]
    copy_number = _ranges(np.zeros(len(img), np.intp), n_copies)
    extra = counts[:, np.repeat(img, n_copies)] > copy_number
    cls = np.searchsorted(table.bounds, src, side="right") - 1
    bounds = np.searchsorted(cls, np.arange(len(table.bounds)))
    none = np.zeros(0, np.intp)
    expanded = _APTable(table.tp[:, src], table.ignored[:, src], column, bounds, table.npig,
                        table.n_images + int(n_copies.sum()), none, none)
    return expanded, np.concatenate([counts, extra.astype(counts.dtype)], axis=1)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``range(s, s + l)`` for every (s, l) of ``starts``, ``lengths``."""
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(int(lengths.sum())) - first)


def _ap_runs(table: _APTable, a: int, b: int):
    """The runs of TPs of the class occupying ``[a, b)`` of the order, at every threshold.

    Returns None without TPs, else ``(ends, first, tp_runs, ig_runs, image)``: ``ends`` the
    position of every run end, the runs of threshold ``t`` being ``first[t]:first[t + 1]``;
    ``tp_runs`` a sparse (n_runs, n_images) matrix counting each image's TPs in each run;
    ``ig_runs`` the same for the ignored detections after the previous run end up to each
    run end (None without any); and ``image`` the image index of each position.
    """
    tp = table.tp[:, a:b]
    t_idx, pos = np.nonzero(tp)
    if not len(pos):
        return None
    n_thr, n = tp.shape
    fp_before = np.cumsum(~tp & ~table.ignored[:, a:b], axis=1)[t_idx, pos]
    last = np.ones(len(pos), bool)  # a TP ends its run unless the next TP follows with no FP
    last[:-1] = (t_idx[1:] != t_idx[:-1]) | (fp_before[1:] != fp_before[:-1])
    run = np.cumsum(np.concatenate([[True], last[:-1]])) - 1  # run number of each TP
    end_t, ends = t_idx[last], pos[last]
    first = np.searchsorted(end_t, np.arange(n_thr + 1))
    image = table.image[a:b]
    shape = (len(ends), table.n_images)
    tp_runs = _count_matrix(run, image[pos], shape)
    ig_runs = None
    it, ip = np.nonzero(table.ignored[:, a:b])
    if len(ip):
        # an ignored detection counts in the first run ending after it (at its threshold)
        g = np.searchsorted(end_t * n + ends, it * n + ip)
        ok = (g < len(ends)) & (end_t[np.minimum(g, len(ends) - 1)] == it)
        ig_runs = _count_matrix(g[ok], image[ip[ok]], shape)
    return ends, first, tp_runs, ig_runs, image


def _count_matrix(rows: np.ndarray, cols: np.ndarray, shape) -> object:
    """Sparse matrix counting the (row, col) pairs; ``rows`` must be non-decreasing."""
    from scipy.sparse import csr_matrix

    indptr = np.searchsorted(rows, np.arange(shape[0] + 1))
    return csr_matrix((np.ones(len(rows)), cols, indptr), shape=shape)
