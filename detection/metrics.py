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
* :func:`evaluate`: all of them on one detection set.
"""

from __future__ import annotations

import numpy as np

from calibkit.detection.cocoeval import (  # noqa: F401 (re-exported names)
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    accumulate,
)
from calibkit.detection.io import load_dets, load_gt
from calibkit.detection.matching import Matches, _check_max_dets, match_many, match_netcal
from calibkit.metrics._binning import assign_uniform, assign_uniform_closure, check_n_bins

__all__ = [
    "evaluate",
    "laece",
    "laace",
    "lrp",
    "dece_pooled",
    "dece_netcal",
    "box_features",
    "average_precision",
]

EMPTY_CLASS_POLICIES = ("exclude", "zero")


def evaluate(
    gt,
    dets,
    *,
    tau: float = 0.0,
    iou_op: str = "ge",
    ap: bool = False,
    max_dets: int = 100,
    laece_bins: int = 25,
    bin_closure: str = "right",
    class_mean_drop_zero_error: bool = True,
    empty_class_policy: str = "exclude",
    laace_include_ignored: bool = True,
    dece_tau: float = 0.5,
    dece_bins: int = 10,
    dece_matching: str = "greedy",
) -> dict:
    """Every detection metric on exactly the detections given (no thresholding inside).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
    dets : path, COCO results list, Detections or torchvision outputs
        Whatever :meth:`DetectionCalibrator.transform` returns is accepted.
    tau, iou_op, max_dets
        Matching of LaECE, LaACE and LRP (see :func:`calibkit.detection.match`). Defaults reproduce
        the toolbox: ``tau=0`` with ``IoU >= 0``, 100 detections per (image, class).
    ap : bool, default False
        Also compute COCO AP@[.50:.95] (``"ap"``).
    laece_bins, bin_closure, class_mean_drop_zero_error, empty_class_policy
        See :func:`laece`. ``bin_closure`` applies to LaECE and D-ECE.
    laace_include_ignored : bool, default True
        See :func:`laace`.
    dece_tau, dece_bins : float, int, default 0.5, 10
        D-ECE's TP threshold and bins (the train-time papers' protocol; apply their fixed
        score threshold of 0.3 to ``dets`` before calling).
    dece_matching : {"greedy", "netcal_argmax_any_class"}, default "greedy"

    Returns
    -------
    dict of float
        ``laece``, ``laace``, ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn``, ``dece`` (and
        ``ap``), fractions in [0, 1]; NaN where no class qualifies.
    """
    gt = load_gt(gt)
    dets = load_dets(dets)
    greedy_dece = dece_matching == "greedy" and float(dece_tau) != float(tau)
    taus = [tau, dece_tau] if greedy_dece else [tau]
    ms = match_many(gt, dets, taus, iou_op=iou_op, max_dets=max_dets)
    ap_value = average_precision(gt, dets, max_dets=max_dets) if ap else None
    return _evaluate_matches(
        gt, dets, ms[0], ms[-1], ap=ap_value, laece_bins=laece_bins, bin_closure=bin_closure,
        class_mean_drop_zero_error=class_mean_drop_zero_error,
        empty_class_policy=empty_class_policy, laace_include_ignored=laace_include_ignored,
        dece_tau=dece_tau, dece_bins=dece_bins, dece_matching=dece_matching,
    )


def _evaluate_matches(
    gt, dets, m: Matches, m_dece: Matches, *, ap=None, laece_bins: int = 25,
    bin_closure: str = "right", class_mean_drop_zero_error: bool = True,
    empty_class_policy: str = "exclude", laace_include_ignored: bool = True,
    dece_tau: float = 0.5, dece_bins: int = 10, dece_matching: str = "greedy", **_ignored,
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
        flags = match_netcal(gt, dets, iou_threshold=dece_tau)
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
    return_per_class: bool = False,
):
    """Localisation-aware ECE.

    ``e_c = sum_j (|D_j^c| / |D^c|) |conf_j - acc_j|`` with ``acc_j = sum_{TP in j} IoU / |D_j^c|``
    (precision x mean IoU) over ``n_bins`` equal-width bins; empty bins contribute 0.

    Parameters
    ----------
    matches : Matches
    n_bins : int, default 25
    bin_closure : {"right", "left", "numpy"}, default "right"
        ``"right"``: ``[0, e_1]``, then ``(e_j, e_{j+1}]`` (LaECE_0 of the toolbox);
        ``"left"``: ``[e_j, e_{j+1})``, so a score of 1 is in no bin but counts in ``|D^c|``
        (SAOD); ``"numpy"``: ``[a, b)`` with the last bin closed (netcal).
    class_mean_drop_zero_error : bool, default True
        Leave classes whose error is exactly 0 out of the mean (the toolbox's quirk).
    empty_class_policy : {"exclude", "zero"}, default "exclude"
        ``"exclude"``: average over classes with ground truth and TP/FP detections (LaECE_0);
        ``"zero"``: average over every category of the ground truth, classes without
        ground truth or detections counting as 0 (SAOD's LaECE, with ``tau=0.1``,
        ``bin_closure="left"``, ``class_mean_drop_zero_error=False``).
    return_per_class : bool, default False
        Also return ``e_c`` per category (NaN where the class has no TP/FP or no ground truth).

    Returns
    -------
    float, or (float, ndarray of shape (n_categories,))
    """
    n_bins = check_n_bins(n_bins)
    _check_policy(empty_class_policy)
    k = matches.n_categories
    sel = matches.valid & (matches.npig > 0)[matches.class_index]
    cls = matches.class_index[sel]
    p = matches.dets.score[sel]
    acc = matches.iou[sel]
    n_c = np.bincount(cls, minlength=k).astype(np.float64)
    b = assign_uniform_closure(p, n_bins, bin_closure)
    flat = cls * (n_bins + 1) + b
    size = k * (n_bins + 1)
    count = np.bincount(flat, minlength=size).reshape(k, n_bins + 1)[:, :n_bins]
    s_conf = np.bincount(flat, weights=p, minlength=size).reshape(k, n_bins + 1)[:, :n_bins]
    s_acc = np.bincount(flat, weights=acc, minlength=size).reshape(k, n_bins + 1)[:, :n_bins]
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(s_acc / count - s_conf / count)
        w = count / n_c[:, None]
    e = np.where(count > 0, w * err, 0.0).sum(axis=1)
    e[n_c == 0] = np.nan
    value = _class_mean(e, class_mean_drop_zero_error, empty_class_policy)
    return (value, e) if return_per_class else value


def laace(
    matches: Matches,
    *,
    include_ignored: bool = True,
    class_mean_drop_zero_error: bool = True,
    empty_class_policy: str = "exclude",
    return_per_class: bool = False,
):
    """Localisation-aware adaptive CE with one detection per bin (LaACE_0).

    ``e_c = mean_i |p_i - IoU_i|`` over the class's detections (target 0 for an FP).

    Parameters
    ----------
    matches : Matches
    include_ignored : bool, default True
        Also average over the crowd-ignored detections, with target 0, as the toolbox does
        (its mask selects every detection); ``False`` uses ``D^c`` only. A class with no TP
        or FP is skipped either way.
    class_mean_drop_zero_error, empty_class_policy, return_per_class
        As in :func:`laece`.
    """
    _check_policy(empty_class_policy)
    k = matches.n_categories
    has_gt = (matches.npig > 0)[matches.class_index]
    base = matches.evaluated & has_gt
    sel = base if include_ignored else base & ~matches.ignored
    cls = matches.class_index[sel]
    dev = np.abs(matches.dets.score[sel] - matches.iou[sel])
    n = np.bincount(cls, minlength=k).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.bincount(cls, weights=dev, minlength=k) / n
    n_valid = np.bincount(matches.class_index[matches.valid & has_gt], minlength=k)
    e[n_valid == 0] = np.nan
    value = _class_mean(e, class_mean_drop_zero_error, empty_class_policy)
    return (value, e) if return_per_class else value


def _class_mean(e: np.ndarray, drop_zero: bool, policy: str) -> float:
    if policy == "zero":
        vals = np.where(np.isnan(e), 0.0, e)
        if drop_zero:
            vals = vals[~((e == 0) & ~np.isnan(e))]
        return float(vals.mean()) if len(vals) else float("nan")
    vals = e[~np.isnan(e)]
    if drop_zero:
        vals = vals[vals != 0]
    return float(vals.mean()) if len(vals) else float("nan")


def _check_policy(policy: str) -> None:
    if policy not in EMPTY_CLASS_POLICIES:
        raise ValueError(
            f"empty_class_policy must be one of {EMPTY_CLASS_POLICIES}; got {policy!r}."
        )


# --------------------------------------------------------------------------------------
# LRP
# --------------------------------------------------------------------------------------


def lrp(matches: Matches, *, return_per_class: bool = False) -> dict:
    """Localisation-Recall-Precision error at the matching threshold ``tau``.

    Per class, with ``N_FN = npig - N_TP``::

        LRP     = (sum_TP (1 - IoU) / (1 - tau) + N_FP + N_FN) / (N_TP + N_FP + N_FN)
        LRP_loc = sum_TP (1 - IoU) / N_TP
        LRP_FP  = N_FP / (N_TP + N_FP)
        LRP_FN  = N_FN / npig

    A class with ground truth but no TP has LRP = LRP_FN = 1 and NaN loc / FP components; a
    class without regular ground truth is NaN. Each value is the mean over non-NaN classes.

    Returns
    -------
    dict with float keys ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn`` (and, with
    ``return_per_class``, ``per_class``: a dict of arrays of shape (n_categories,)).
    """
    k = matches.n_categories
    v = matches.valid
    cls = matches.class_index[v]
    n_tp = np.bincount(cls, weights=matches.tp[v], minlength=k)
    n_fp = np.bincount(cls, weights=~matches.tp[v], minlength=k)
    loc = np.bincount(cls, weights=np.where(matches.tp[v], 1.0 - matches.iou[v], 0.0),
                      minlength=k)
    npig = matches.npig.astype(np.float64)
    n_fn = npig - n_tp
    has = npig > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(has, (loc / (1.0 - matches.tau) + n_fp + n_fn) / (n_tp + n_fp + n_fn),
                         np.nan)
        has_tp = has & (n_tp > 0)
        c_loc = np.where(has_tp, loc / n_tp, np.nan)
        c_fp = np.where(has_tp, n_fp / (n_tp + n_fp), np.nan)
        c_fn = np.where(has, n_fn / npig, np.nan)
    out = {
        "lrp": _nanmean(total),
        "lrp_loc": _nanmean(c_loc),
        "lrp_fp": _nanmean(c_fp),
        "lrp_fn": _nanmean(c_fn),
    }
    if return_per_class:
        out["per_class"] = {"lrp": total, "lrp_loc": c_loc, "lrp_fp": c_fp, "lrp_fn": c_fn}
    return out


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")


# --------------------------------------------------------------------------------------
# D-ECE
# --------------------------------------------------------------------------------------


def dece_pooled(matches: Matches, *, n_bins: int = 10, bin_closure: str = "right") -> float:
    """D-ECE as the detection calibration toolbox computes it (confidence only, pooled).

    ``D-ECE = sum_j (n_j / N) |precision_j - conf_j|`` over the TP and FP detections of all
    classes with ground truth, ``precision_j`` the fraction of TPs in bin j. The train-time
    papers' protocol matches at ``tau=0.5`` with 10 bins, on detections with score >= 0.3.
    """
    n_bins = check_n_bins(n_bins)
    sel = matches.valid & (matches.npig > 0)[matches.class_index]
    return _pooled_ece(matches.dets.score[sel], matches.tp[sel].astype(np.float64), n_bins,
                       bin_closure)


def _pooled_ece(p: np.ndarray, y: np.ndarray, n_bins: int, closure: str) -> float:
    if len(p) == 0:
        return float("nan")
    b = assign_uniform_closure(p, n_bins, closure)
    count = np.bincount(b, minlength=n_bins + 1)[:n_bins]
    s_p = np.bincount(b, weights=p, minlength=n_bins + 1)[:n_bins]
    s_y = np.bincount(b, weights=y, minlength=n_bins + 1)[:n_bins]
    nz = count > 0
    return float(np.sum(np.abs(s_y[nz] - s_p[nz])) / len(p))


def dece_netcal(
    confidence,
    matched,
    features=None,
    *,
    bins=10,
    equal_intervals: bool = True,
    sample_threshold: int = 1,
) -> float:
    """D-ECE as netcal defines it (Küppers et al., 2020).

    ``D-ECE = sum_cells (N_n / N) |acc(n) - conf(n)|`` over a histogram of the confidence and
    the box ``features``, ``acc`` the mean of ``matched`` and ``conf`` the mean confidence of
    the cell. Every column is clipped to ``[eps, 1 - eps]``; bins are ``[a, b)`` with the
    last closed (numpy's ``histogramdd``). Cells with fewer than ``sample_threshold``
    samples contribute 0 but still count in ``N``.

    Parameters
    ----------
    confidence : array-like of shape (n,)
    matched : array-like of shape (n,)
        The user's matched flags (netcal does no box matching; see :func:`match_netcal` or
        :func:`calibkit.detection.match`).
    features : array-like of shape (n, J), optional
        Box features in [0, 1], e.g. :func:`box_features` (normalised cx, cy, w, h).
    bins : int or list of int, default 10
        Bins per dimension (confidence first).
    equal_intervals : bool, default True
        ``False``: quantile edges per dimension, outer edges 0 and 1.
    sample_threshold : int, default 1
    """
    conf = np.asarray(confidence, np.float64).ravel()
    y = np.asarray(matched, np.float64).ravel()
    x = conf[:, None] if features is None else np.column_stack(
        [conf, np.asarray(features, np.float64).reshape(len(conf), -1)]
    )
    if len(y) != len(conf):
        raise ValueError(f"matched has {len(y)} entries but confidence has {len(conf)}.")
    if len(conf) == 0:
        return float("nan")
    eps = np.finfo(x.dtype).eps
    x = np.clip(x, eps, 1 - eps)
    n_dim = x.shape[1]
    bins_list = [bins] * n_dim if np.isscalar(bins) else list(bins)
    if len(bins_list) != n_dim:
        raise ValueError(f"bins has {len(bins_list)} entries for {n_dim} dimensions.")
    idx = []
    for d, nb in enumerate(bins_list):
        nb = check_n_bins(int(nb))
        if equal_intervals:
            idx.append(assign_uniform(x[:, d], nb))
        else:
            edges = np.quantile(x[:, d], np.linspace(0, 1, nb + 1))
            edges[0], edges[-1] = 0.0, 1.0
            idx.append(np.clip(np.searchsorted(edges[1:-1], x[:, d], side="right"), 0, nb - 1))
    cell = np.ravel_multi_index(idx, bins_list)
    size = int(np.prod(bins_list))
    count = np.bincount(cell, minlength=size)
    s_p = np.bincount(cell, weights=x[:, 0], minlength=size)
    s_y = np.bincount(cell, weights=y, minlength=size)
    ok = (count >= max(sample_threshold, 1)) & (count > 0)
    return float(np.sum(np.abs(s_y[ok] - s_p[ok])) / len(conf))


def box_features(gt, dets) -> np.ndarray:
    """Normalised box features ``[cx, cy, w, h]`` of shape (n, 4): centre and size divided by
    the image width and height from the ground truth's ``images``."""
    gt = load_gt(gt)
    dets = load_dets(dets)
    img = np.searchsorted(gt.image_ids, dets.image_id)
    img = np.clip(img, 0, len(gt.image_ids) - 1)
    if np.any(gt.image_ids[img] != dets.image_id):
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


def average_precision(
    gt, dets, *, max_dets: int = 100, iou_thresholds=None, return_per_class: bool = False
):
    """COCO AP@[.50:.95] (area "all", ``max_dets`` per (image, class)), the value of
    pycocotools' ``COCOeval.stats[0]``, from calibkit's own matching.

    Per class and IoU threshold: cumulative TP/FP in the per-class order, precision made
    monotone from the right, sampled at the 101 recall thresholds ``0:.01:1``
    (``searchsorted(recall, r, "left")``, 0 beyond the last recall); the mean runs over
    thresholds, recall points and classes with regular ground truth.
    """
    max_dets = _check_max_dets(max_dets)
    thrs = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, float)
    # no area range: every box counts, whatever its area
    precision, _ = accumulate(gt, dets, iou_thresholds=thrs, area_ranges=[[-np.inf, np.inf]],
                              max_dets=[max_dets])
    q = precision[:, :, :, 0, 0]  # (T, R, K), -1 for classes without regular boxes
    has = q[0, 0] > -1
    per_class = np.full(q.shape[2], np.nan)
    per_class[has] = q[:, :, has].mean(axis=(0, 1))
    value = _nanmean(per_class)
    return (value, per_class) if return_per_class else value
