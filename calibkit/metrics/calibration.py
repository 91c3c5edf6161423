"""Binned calibration errors (ECE family), reliability curves and bootstrap intervals.

Every function bins with :mod:`calibkit.metrics.binning` and turns per-bin sums into an
error with :func:`calibration_error_from_bin_sums`, which the streaming metrics, the torch
metrics and the detection errors share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibkit._chunks import WORKING_MEMORY_BYTES, chunk_rows
from calibkit._validation import (
    BOOLEAN,
    NONE,
    RANDOM_STATE,
    Interval,
    Options,
    check_consistent_length,
    check_labels,
    check_params,
    check_probabilities,
    check_sample_weight,
    encode_labels,
    is_torch_tensor,
    like_input,
)
from calibkit.metrics.binning import (
    MAX_BINS,
    STRATEGIES,
    assign_bins,
    assign_uniform,
    bin_sums,
    uniform_bin_sums,
    uniform_edges,
)

NORMS = ("l1", "l2", "max")
MODES = ("top_label", "classwise", "binary")

#: normal resamples drawn by the L1 / max debiasing (as verified_calibration)
N_DEBIAS_RESAMPLES = 1000

#: what the keyword arguments of this module's functions accept
CONSTRAINTS = {
    "n_bins": [Interval("integer", 1, MAX_BINS)],
    "strategy": [Options(*STRATEGIES)],
    "norm": [Options(*NORMS)],
    "mode": [Options(*MODES)],
    "debias": [BOOLEAN],
    "random_state": [RANDOM_STATE],
    "confidence_level": [Interval("real", 0, 1, closed="neither")],
    "n_bootstrap": [Interval("integer", 1, None)],
    "class_index": [NONE, Interval("integer", 0, None)],
}


def expected_calibration_error(
    y_true,
    y_prob,
    *,
    n_bins=15,
    strategy="uniform",
    norm="l1",
    mode="top_label",
    debias=False,
    sample_weight=None,
    labels=None,
    random_state=None,
):
    """Binned calibration error (ECE, RMSCE, MCE; top-label, class-wise or binary).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels of any type. Columns of ``y_prob`` follow ``labels`` when given; otherwise
        integer labels in ``[0, K)`` index the columns; otherwise the sorted unique labels
        must number exactly ``K`` (for 1-D ``y_prob``, ``K = 2`` and the larger label is the
        positive class).
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities: 1-D is P(positive); 2-D rows sum to 1 (within 1e-3).
    n_bins : int, default=15
    strategy : {"uniform", "quantile"}, default="uniform"
        ``"uniform"``: equal-width edges ``np.linspace(0, 1, n_bins + 1)``; bin ``j`` is
        ``[e_j, e_{j+1})`` except the last, which is closed ``[e_{n-1}, 1]``. A score exactly
        on an inner edge belongs to the bin on its right; 0 and 1 fall in the first and last
        bins. ``"quantile"``: equal-mass bins over the sorted (weighted) scores; tied scores
        share one bin and no bin is empty or collapsed, so there may be fewer than
        ``n_bins`` bins (see :func:`calibkit.metrics.binning.assign_quantile`).
    norm : {"l1", "l2", "max"}, default="l1"
        With ``w_b = n_b / N`` (weighted counts) and per-bin mean outcome ``acc_b`` and mean
        confidence ``conf_b``: L1 (ECE) ``sum_b w_b |acc_b - conf_b|``; L2 (RMSCE)
        ``sqrt(sum_b w_b (acc_b - conf_b)^2)``; max (MCE) ``max_b |acc_b - conf_b|`` over
        non-empty bins.
    mode : {"top_label", "classwise", "binary"}, default="top_label"
        ``"top_label"``: confidence ``max_k p_k``, outcome ``1[argmax_k p_k == y]`` (argmax
        ties go to the first column; 1-D input is read as ``[1 - p, p]``).
        ``"binary"``: confidence P(positive) (1-D input, or column 1 of (n, 2)), outcome
        ``1[y == positive]``. ``"classwise"``: for each class k, bins on ``p_k`` with outcome
        ``1[y == k]`` giving ``CE_k``; the result is ``mean_k CE_k`` (L1),
        ``sqrt(mean_k CE_k^2)`` (L2) or ``max_k CE_k`` (max), as the marginal mode of
        verified_calibration. Class-wise with ``strategy="quantile"`` is Nixon et al.'s ACE.
    debias : bool, default=False
        L2: the unbiased estimator of Kumar et al. (2019) (verified_calibration's
        ``unbiased_l2_ce``): per bin with ``n_b >= 2`` the term
        ``(acc_b - conf_b)^2 - acc_b (1 - acc_b) / (n_b - 1)``, bins with ``n_b < 2`` give 0,
        then ``sqrt(max(0, sum_b w_b term_b))``. L1 and max: ``2 * plugin - mean(resampled)``
        where each of 1000 resamples draws ``acc_b ~ Normal(acc_b, acc_b (1 - acc_b) / n_b)``
        (verified_calibration's ``normal_debiased_ce``). With sample weights ``n_b`` is the
        effective count ``(sum w)^2 / sum w^2``.
    sample_weight : array-like of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``.
    random_state : int, Generator or None, default=None
        Seeds the normal resamples of the L1 / max debiasing.

    Returns
    -------
    float
        A 0-d tensor on ``y_prob``'s device when ``y_prob`` is a torch tensor.
    """
    check_params("expected_calibration_error", CONSTRAINTS, n_bins=n_bins, strategy=strategy,
                 norm=norm, mode=mode, debias=debias, random_state=random_state)
    problems, w = _problems(y_true, y_prob, mode=mode, labels=labels, sample_weight=sample_weight)
    rng = np.random.default_rng(random_state) if debias and norm != "l2" else None
    if strategy == "uniform" and problems.is_full_classwise:
        count, sum_conf, sum_acc, sum_w2 = _classwise_uniform_sums(problems, n_bins, debias)
        ces = calibration_error_from_bin_sums(count, sum_conf, sum_acc, norm=norm,
                                              debias=debias, sum_w2=sum_w2, random_state=rng)
    else:
        ces = np.array(
            [
                _ce_of_problem(conf, acc, w, n_bins, strategy, norm, debias, rng)
                for conf, acc in problems
            ]
        )
    value = float(combine_classwise(ces, norm))
    if is_torch_tensor(y_prob):  # a 0-d tensor on y_prob's device, as torch users expect
        return like_input(np.asarray(value), y_prob)
    return value


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics of a reliability diagram (non-empty bins only, in score order).

    Attributes
    ----------
    bin_lower, bin_upper : ndarray of shape (n_nonempty,)
        Bin edges (uniform) or the smallest and largest score in the bin (quantile).
    mean_confidence, accuracy : ndarray of shape (n_nonempty,)
        (Weighted) mean confidence and observed frequency of the outcome in each bin.
    count : ndarray of shape (n_nonempty,)
        (Weighted) number of samples in each bin.
    ci_lower, ci_upper : ndarray of shape (n_nonempty,)
        Clopper-Pearson interval of ``accuracy`` at ``confidence_level``.
    confidence_level : float
    """

    bin_lower: np.ndarray
    bin_upper: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    confidence_level: float


def reliability_curve(
    y_true,
    y_prob,
    *,
    n_bins=15,
    strategy="uniform",
    mode="top_label",
    pos_label=None,
    class_index=None,
    sample_weight=None,
    labels=None,
    confidence_level=0.95,
) -> ReliabilityCurve:
    """Per-bin confidence, observed frequency, count and binomial intervals.

    Bins, modes and label handling are those of :func:`expected_calibration_error`.
    ``mode="classwise"`` uses the class given by ``pos_label`` (a label) or ``class_index``
    (a column); with neither, every (sample, class) pair is pooled (per-bin sums added
    over classes).

    The interval is Clopper-Pearson, ``[Beta.ppf(a/2; k, n-k+1), Beta.ppf(1-a/2; k+1, n-k)]``
    with ``a = 1 - confidence_level``, ``n`` the bin count and ``k = n * accuracy``
    (Clopper & Pearson, Biometrika, 1934; 0 and 1 at ``k = 0`` and ``k = n``). With sample
    weights ``n`` is the effective count ``(sum w)^2 / sum w^2`` (Kish), so ``k`` may be
    fractional.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities: 1-D is P(positive); 2-D rows sum to 1 (within 1e-3).
    n_bins : int, default=15
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width or equal-mass bins, as in :func:`expected_calibration_error`.
        ``"quantile"`` with ``mode="classwise"`` needs one class (``pos_label`` or
        ``class_index``): equal-mass bins differ between classes and cannot be pooled.
    mode : {"top_label", "classwise", "binary"}, default="top_label"
        Which confidence and outcome are binned, as in :func:`expected_calibration_error`.
    pos_label : label or None, default=None
        ``mode="classwise"`` only: the class (a label of ``y_true``) whose column is binned.
    class_index : int or None, default=None
        ``mode="classwise"`` only: the column of ``y_prob`` that is binned (not together with
        ``pos_label``).
    sample_weight : array-like of shape (n_samples,), default=None
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``.
    confidence_level : float, default=0.95
        Coverage of the Clopper-Pearson intervals, in (0, 1).

    Returns
    -------
    ReliabilityCurve
        The statistics of the non-empty bins, in score order.
    """
    from scipy.stats import beta

    check_params("reliability_curve", CONSTRAINTS, n_bins=n_bins, strategy=strategy, mode=mode,
                 class_index=class_index, confidence_level=confidence_level)
    problems, w = _problems(
        y_true, y_prob, mode=mode, labels=labels, sample_weight=sample_weight,
        pos_label=pos_label, class_index=class_index,
    )
    if strategy == "quantile" and len(problems) > 1:
        raise ValueError(
            "mode='classwise' with strategy='quantile' needs one class: pass pos_label or "
            "class_index (equal-mass bins differ between classes and cannot be pooled)."
        )
    count = sum_conf = sum_acc = sum_w2 = lo = hi = None
    for conf, acc in problems:
        idx, nb = assign_bins(conf, n_bins, strategy, w)
        c, sc, sa = bin_sums(idx, nb, conf, acc, w)
        w2 = c if w is None else np.bincount(idx, weights=w * w, minlength=nb)
        if strategy == "uniform":
            e = uniform_edges(n_bins)
            blo, bhi = e[:-1], e[1:]
        else:  # pooling across classes is only offered for uniform bins
            blo = np.full(nb, np.inf)
            bhi = np.full(nb, -np.inf)
            np.minimum.at(blo, idx, conf)
            np.maximum.at(bhi, idx, conf)
        if count is None:
            count, sum_conf, sum_acc, sum_w2, lo, hi = c, sc, sa, w2, blo, bhi
        else:
            count, sum_conf, sum_acc, sum_w2 = count + c, sum_conf + sc, sum_acc + sa, sum_w2 + w2
    keep = count > 0
    n = count[keep]
    acc = sum_acc[keep] / n
    n_eff = n * n / sum_w2[keep]
    k = np.clip(acc * n_eff, 0.0, n_eff)
    a = 1.0 - confidence_level
    with np.errstate(invalid="ignore"):
        ci_lo = np.where(k > 0, beta.ppf(a / 2, k, n_eff - k + 1), 0.0)
        ci_hi = np.where(k < n_eff, beta.ppf(1 - a / 2, k + 1, n_eff - k), 1.0)
    return ReliabilityCurve(
        bin_lower=lo[keep], bin_upper=hi[keep], mean_confidence=sum_conf[keep] / n,
        accuracy=acc, count=n, ci_lower=np.nan_to_num(ci_lo, nan=0.0),
        ci_upper=np.nan_to_num(ci_hi, nan=1.0), confidence_level=float(confidence_level),
    )


def calibration_error_ci(
    y_true,
    y_prob,
    *,
    n_bootstrap=1000,
    confidence_level=0.95,
    random_state=None,
    **ece_kwargs,
) -> tuple[float, float, float]:
    """Calibration error with a percentile bootstrap interval.

    Rows are resampled with replacement ``n_bootstrap`` times; the interval is the
    ``(1 - c)/2`` and ``(1 + c)/2`` quantiles of the resampled errors, with
    ``c = confidence_level``. Each resample uses the same estimator as the point estimate
    (``ece_kwargs`` are those of :func:`expected_calibration_error`, debiasing included).
    Equal-width bins are fixed per sample, so resamples are summed per bin with one
    ``bincount`` over (resample, bin) keys in chunks; equal-mass bins are recomputed for
    each resample.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities: 1-D is P(positive); 2-D rows sum to 1 (within 1e-3).
    n_bootstrap : int, default=1000
        Number of bootstrap resamples.
    confidence_level : float, default=0.95
        Coverage ``c`` of the interval, in (0, 1).
    random_state : int, Generator or None, default=None
        Seeds the resampling (and the L1 / max debiasing of every estimate).
    **ece_kwargs : dict
        ``n_bins``, ``strategy``, ``norm``, ``mode``, ``debias``, ``sample_weight`` and
        ``labels`` of :func:`expected_calibration_error` (with its defaults); any other
        keyword raises ``TypeError``. Sample weights travel with their resampled rows.

    Returns
    -------
    (estimate, lower, upper) : tuple of float
        The point estimate on the full data and the interval's bounds. A resample whose
        weights sum to 0 (quantile bins only) is left out of the quantiles.
    """
    check_params("calibration_error_ci", CONSTRAINTS, n_bootstrap=n_bootstrap,
                 confidence_level=confidence_level, random_state=random_state)
    bad = set(ece_kwargs) - {
        "n_bins", "strategy", "norm", "mode", "debias", "sample_weight", "labels"
    }
    if bad:
        raise TypeError(f"calibration_error_ci got unexpected keyword argument(s) {sorted(bad)}.")
    rng = np.random.default_rng(random_state)
    estimate = expected_calibration_error(y_true, y_prob, random_state=rng, **ece_kwargs)
    n_bins = ece_kwargs.get("n_bins", 15)
    strategy = ece_kwargs.get("strategy", "uniform")
    norm = ece_kwargs.get("norm", "l1")
    debias = ece_kwargs.get("debias", False)
    problems, w = _problems(
        y_true, y_prob, mode=ece_kwargs.get("mode", "top_label"),
        labels=ece_kwargs.get("labels"), sample_weight=ece_kwargs.get("sample_weight"),
    )
    n = problems.n_samples
    problems = list(problems)
    reps = np.empty(n_bootstrap)
    if strategy == "uniform":
        keys = [assign_uniform(conf, n_bins) for conf, _ in problems]
        chunk = chunk_rows(n * 8 * 4, budget=WORKING_MEMORY_BYTES, max_rows=n_bootstrap)
        for start in range(0, n_bootstrap, chunk):
            r = min(chunk, n_bootstrap - start)
            rows = rng.integers(0, n, size=(r, n))
            offset = (np.arange(r) * n_bins)[:, None]
            ww = None if w is None else w[rows].ravel()
            ces = []
            for key, (conf, acc) in zip(keys, problems, strict=True):
                k = (key[rows] + offset).ravel()
                m = r * n_bins
                cnt = np.bincount(k, weights=ww, minlength=m).reshape(r, n_bins)
                cw = conf[rows].ravel() if ww is None else conf[rows].ravel() * ww
                aw = acc[rows].ravel() if ww is None else acc[rows].ravel() * ww
                sc = np.bincount(k, weights=cw, minlength=m).reshape(r, n_bins)
                sa = np.bincount(k, weights=aw, minlength=m).reshape(r, n_bins)
                w2 = cnt if ww is None else np.bincount(
                    k, weights=ww * ww, minlength=m
                ).reshape(r, n_bins)
                ces.append(calibration_error_from_bin_sums(
                    cnt, sc, sa, norm=norm, debias=debias, sum_w2=w2, random_state=rng))
            reps[start:start + r] = combine_classwise(np.array(ces), norm)
    else:
        for b in range(n_bootstrap):
            rows = rng.integers(0, n, size=n)
            wb = None if w is None else w[rows]
            if wb is not None and not wb.sum() > 0:
                reps[b] = np.nan
                continue
            ces = [
                _ce_of_problem(conf[rows], acc[rows], wb, n_bins, strategy, norm, debias, rng)
                for conf, acc in problems
            ]
            reps[b] = combine_classwise(np.array(ces), norm)
    a = 1.0 - confidence_level
    lower, upper = np.nanquantile(reps, [a / 2, 1 - a / 2])
    return float(estimate), float(lower), float(upper)


# --------------------------------------------------------------------------------------
# The formula: per-bin sums -> calibration error (shared by every binned error of calibkit)
# --------------------------------------------------------------------------------------


def calibration_error_from_bin_sums(
    count, sum_conf, sum_acc, *, norm="l1", total=None, debias=False, sum_w2=None,
    random_state=None,
):
    """Calibration error from per-bin sums: the one formula of every binned error.

    :func:`expected_calibration_error`, :func:`calibration_error_ci`, the streaming metrics
    (numpy and torch) and the detection errors (LaECE, D-ECE) compute their bin sums and
    call this function.

    Parameters
    ----------
    count, sum_conf, sum_acc : array-like of shape (..., n_bins)
        Per bin: the (weighted) number of samples, the sum of their confidences and the sum
        of their outcomes (0/1, or targets in [0, 1] such as an IoU). Leading axes are
        independent problems (classes, bootstrap resamples).
    norm : {"l1", "l2", "max"}, default="l1"
        With ``w_b = count_b / N``, ``acc_b = sum_acc_b / count_b`` and
        ``conf_b = sum_conf_b / count_b``: ``l1`` is ``sum_b w_b |acc_b - conf_b|``, ``l2``
        is ``sqrt(sum_b w_b (acc_b - conf_b)^2)``, ``max`` is ``max_b |acc_b - conf_b|``
        over non-empty bins. Empty bins contribute nothing.
    total : array-like of shape (...) or None, default=None
        ``N``: the number of samples the weights ``w_b`` are relative to. ``None`` is
        ``sum_b count_b``. Give it when some samples are in no bin but still count (SAOD's
        LaECE: a score of exactly 1 with left-closed bins) or when cells below a sample
        threshold are dropped from the sums (netcal's D-ECE).
    debias : bool, default=False
        L2: the unbiased estimator of Kumar et al. (2019): per bin with ``n_b >= 2`` the term
        ``(acc_b - conf_b)^2 - acc_b (1 - acc_b) / (n_b - 1)`` (0 for ``n_b < 2``), summed
        with the weights ``w_b``. L1 and max: ``2 * plugin - mean(resampled)`` over 1000
        resamples ``acc_b ~ Normal(acc_b, acc_b (1 - acc_b) / n_b)`` (Kumar et al.'s
        ``normal_debiased_ce``). ``n_b`` is the effective count ``count_b^2 / sum_w2_b``
        with weights. Every debiased value is clamped at 0: it estimates a non-negative
        quantity and falls below 0 only when the error is smaller than its sampling noise.
    sum_w2 : array-like of shape (..., n_bins) or None, default=None
        Per-bin sum of squared weights (``None``: unweighted, ``sum_w2 = count``).
    random_state : int, Generator or None, default=None
        Seeds the resamples of the L1 / max debiasing.

    Returns
    -------
    ndarray of shape (...)
        The error of each problem (a 0-d array for one problem).
    """
    count = np.asarray(count, dtype=np.float64)
    sum_conf = np.asarray(sum_conf, dtype=np.float64)
    sum_acc = np.asarray(sum_acc, dtype=np.float64)
    if total is None:
        total = count.sum(axis=-1)
    total = np.asarray(total, dtype=np.float64)[..., None]
    nonempty = count > 0
    safe = np.where(nonempty, count, 1.0)
    conf = sum_conf / safe
    acc = sum_acc / safe
    frac = np.where(total > 0, count / np.where(total > 0, total, 1.0), 0.0)
    gap = np.where(nonempty, np.abs(acc - conf), 0.0)
    if not debias:
        return _norm_of_gaps(gap, frac, nonempty, norm)
    n_eff = count if sum_w2 is None else np.where(
        nonempty, count * (count / np.where(nonempty, sum_w2, 1.0)), 0.0
    )
    var = np.clip(acc * (1.0 - acc), 0.0, None)
    if norm == "l2":
        with np.errstate(divide="ignore", invalid="ignore"):
            term = gap**2 - var / (n_eff - 1.0)
        term = np.where(n_eff >= 2.0 - 1e-9, term, 0.0)
        return np.sqrt(np.maximum((frac * term).sum(axis=-1), 0.0))
    plugin = _norm_of_gaps(gap, frac, nonempty, norm)
    scale = np.where(nonempty & (n_eff > 0), np.sqrt(var / np.where(n_eff > 0, n_eff, 1.0)), 0.0)
    rng = np.random.default_rng(random_state)
    chunk = chunk_rows(gap.size * 8 * 2, budget=WORKING_MEMORY_BYTES)
    total_resampled = np.zeros(plugin.shape)
    for start in range(0, N_DEBIAS_RESAMPLES, chunk):
        r = min(chunk, N_DEBIAS_RESAMPLES - start)
        draws = rng.normal(loc=acc, scale=scale, size=(r, *gap.shape))
        total_resampled = total_resampled + _norm_of_gaps(
            np.where(nonempty, np.abs(draws - conf), 0.0), frac, nonempty, norm
        ).sum(axis=0)
    return np.maximum(2.0 * plugin - total_resampled / N_DEBIAS_RESAMPLES, 0.0)


def combine_classwise(errors, norm: str = "l1"):
    """Reduce per-class errors (first axis) to the class-wise error: the mean (L1), the root
    mean square (L2) or the maximum (max); a single problem is returned as is.

    Parameters
    ----------
    errors : array-like of shape (n_problems, ...)
        The error of each class (or of one problem when ``n_problems`` is 1); trailing axes
        are independent (bootstrap resamples).
    norm : {"l1", "l2", "max"}, default="l1"
        The norm the errors were computed with: ``mean_k CE_k``, ``sqrt(mean_k CE_k^2)`` or
        ``max_k CE_k``.

    Returns
    -------
    ndarray of shape (...)
        ``errors[0]`` when there is one problem, else the reduction over the first axis.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if len(errors) == 1:
        return errors[0]
    if norm == "l1":
        return errors.mean(axis=0)
    if norm == "l2":
        return np.sqrt((errors**2).mean(axis=0))
    return errors.max(axis=0)


def _norm_of_gaps(gap, frac, nonempty, norm):
    if norm == "l1":
        return (frac * gap).sum(axis=-1)
    if norm == "l2":
        return np.sqrt((frac * gap * gap).sum(axis=-1))
    return np.where(nonempty, gap, 0.0).max(axis=-1)


def _ce_of_problem(conf, acc, w, n_bins, strategy, norm, debias, rng):
    sum_w2 = None
    if strategy == "uniform" and not (debias and w is not None):
        count, sum_conf, sum_acc = uniform_bin_sums(conf, n_bins, acc, w)
    else:
        idx, nb = assign_bins(conf, n_bins, strategy, w)
        count, sum_conf, sum_acc = bin_sums(idx, nb, conf, acc, w)
        if debias and w is not None:
            sum_w2 = np.bincount(idx, weights=w * w, minlength=nb)
    return calibration_error_from_bin_sums(count, sum_conf, sum_acc, norm=norm, debias=debias,
                                           sum_w2=sum_w2, random_state=rng)


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


class _Problems:
    """Validated inputs as ``(confidence, outcome)`` pairs: one pair, or one per class."""

    def __init__(self, p, y, w, mode, ks):
        self.p, self.y, self.w, self.mode, self.ks = p, y, w, mode, ks
        self.n_samples = len(y)
        # all classes of a 2-D matrix: summed per bin in one vectorised pass
        self.is_full_classwise = mode == "classwise" and p.ndim == 2 and len(ks) == p.shape[1]

    def __len__(self):
        return len(self.ks)

    def __iter__(self):
        p, y = self.p, self.y
        if self.mode == "binary":
            yield (p if p.ndim == 1 else p[:, 1]), y == 1
        elif self.mode == "top_label":
            if p.ndim == 1:
                yield np.maximum(p, 1.0 - p), (p > 0.5) == (y == 1)
            else:
                yield p.max(axis=1), p.argmax(axis=1) == y
        else:
            for k in self.ks:
                col = ((p if k == 1 else 1.0 - p) if p.ndim == 1 else p[:, k])
                yield col, y == k


def _classwise_uniform_sums(problems: _Problems, n_bins: int, need_w2: bool):
    """Per-(class, bin) sums of shape (K, n_bins) for all columns of a 2-D matrix, in
    row chunks so that memory stays O(chunk * K) whatever n."""
    p, y, w = problems.p, problems.y, problems.w
    n, k = p.shape
    size = k * n_bins
    offsets = np.arange(k) * n_bins
    count = np.zeros(size)
    sum_conf = np.zeros(size)
    sum_acc = np.zeros(size)
    sum_w2 = np.zeros(size) if (need_w2 and w is not None) else None
    rows = chunk_rows(k * 8 * 4)  # chunks that stay in cache
    for r0 in range(0, n, rows):
        blk = p[r0:r0 + rows]
        idx = assign_uniform(blk, n_bins)
        yb = y[r0:r0 + rows]
        true_key = yb * n_bins + idx[np.arange(len(blk)), yb]
        idx += offsets
        key = idx.ravel()
        if w is None:
            count += np.bincount(key, minlength=size)
            sum_conf += np.bincount(key, weights=blk.ravel(), minlength=size)
            sum_acc += np.bincount(true_key, minlength=size)
        else:
            wb = w[r0:r0 + rows]
            wk = np.repeat(wb, k)
            count += np.bincount(key, weights=wk, minlength=size)
            sum_conf += np.bincount(key, weights=(blk * wb[:, None]).ravel(), minlength=size)
            sum_acc += np.bincount(true_key, weights=wb, minlength=size)
            if sum_w2 is not None:
                sum_w2 += np.bincount(key, weights=wk * wk, minlength=size)
    shape = (k, n_bins)
    return (
        count.reshape(shape), sum_conf.reshape(shape), sum_acc.reshape(shape),
        None if sum_w2 is None else sum_w2.reshape(shape),
    )


def _problems(
    y_true, y_prob, *, mode, labels, sample_weight, pos_label=None, class_index=None
) -> tuple[_Problems, np.ndarray | None]:
    """Validate the inputs once; the (confidence, outcome) pairs are built lazily."""
    p = check_probabilities(y_prob)
    n_classes = 2 if p.ndim == 1 else p.shape[1]
    targets = encode_labels(y_true, n_classes, labels=labels, name="y_true")
    y, classes = targets.y, targets.classes
    n = check_consistent_length(("y_true", y), ("y_prob", p))
    w = check_sample_weight(sample_weight, n)
    if mode == "binary" and n_classes != 2:
        raise ValueError(
            f"mode='binary' needs 1-D y_prob or 2 columns; got {n_classes} columns. "
            "Use mode='top_label' or mode='classwise'."
        )
    ks = [0]
    if mode == "classwise":
        ks = list(range(n_classes))
        if pos_label is not None and class_index is not None:
            raise ValueError("pass pos_label or class_index, not both.")
        if pos_label is not None:
            hit = np.flatnonzero(classes == check_labels([pos_label], name="pos_label")[0])
            if len(hit) != 1:
                raise ValueError(f"pos_label {pos_label!r} is not one of the classes "
                                 f"{[c.item() for c in classes]}.")
            ks = [int(hit[0])]
        elif class_index is not None:
            k = int(class_index)
            if not 0 <= k < n_classes:
                raise ValueError(f"class_index must lie in [0, {n_classes}); got {k}.")
            ks = [k]
    return _Problems(p, y, w, mode, ks), w
