"""Image-level bootstrap of the detection metrics: percentile intervals and paired comparisons.

A resample draws ``n`` images with replacement from the ``n`` images of the ground truth; image
``i`` appears ``c_bi`` times in resample ``b`` (multinomial counts, :func:`image_resample_counts`).
Matching is per image, so a copy of an image brings exactly the matches of the original: its
detections keep their TP / FP / ignored flags and IoUs, its regular boxes count again in
``npig``. Nothing is rematched; every metric is recomputed from per-image sums weighted by
``c_bi``:

* LaECE, LaACE, LRP (and components) and D-ECE are functions of per-class (and per-bin)
  sums over detections and boxes, so resample ``b`` needs ``sum_i c_bi S_i`` for the per-image
  sums ``S_i``: one sparse-matrix product for all resamples. A class takes part in resample
  ``b`` iff it has a regular box there (``npig > 0``), exactly as in :func:`evaluate`.
* AP visits the detections of each class in the per-class order with weights ``c_bi``
  (see ``_ap_from_table`` in :mod:`calibkit.detection.metrics`).

What a duplicated image means, metric by metric. The resampled data set is the images in
ascending id order, each repeated ``c_bi`` times, the copies taking consecutive positions (as
if copy ``k`` had an image id between the original's and the next image's id):

* LaECE, LaACE, LRP and its components, D-ECE (greedy or netcal matching): a copy adds the
  image's TP / FP / ignored detections and its regular boxes once more; class membership
  (a class counts iff it has regular boxes in the resample) and the toolbox's exclusion rules
  are applied to the resampled sums. The order plays no part, so the weighted value equals
  :func:`evaluate` on that literal data set up to floating-point summation order (1e-15).
* AP: COCO's per-class order breaks score ties by image id, then file order, so the copies
  of an image are adjacent among tied detections. The weighted computation treats the ``c``
  copies of a detection as ``c`` adjacent detections with its flags, which is the same
  sequence of TP / FP flags unless one image holds several detections of a class with equal
  scores mixing TPs and FPs (their copies interleave: TP FP TP FP, not TP TP FP FP); such
  blocks are repeated explicitly. The weighted AP therefore also equals COCO's AP of the
  literal data set up to summation order.

The one discontinuity: the toolbox's rule that drops a class whose LaECE / LaACE is *exactly*
0 from the mean could flip if one summation order gives exactly 0 and the other 1e-17. That
needs every bin of the class to cancel exactly, which in practice happens only when every
detection's score equals its target, and then both orders give exactly 0.

The intervals are percentile intervals: the ``(1 - c)/2`` and ``(1 + c)/2`` quantiles
(``numpy.nanquantile``, linear interpolation) of the resampled values, resamples where a
metric is NaN (no class qualifies) left out.
"""

from __future__ import annotations

import numpy as np

from calibkit._validation import RANDOM_STATE, Interval, check_param
from calibkit.detection.matching import _regular
from calibkit.metrics.binning import assign_uniform_closure

__all__ = ["image_resample_counts", "percentile_interval", "paired_bootstrap"]

#: metrics where a larger value is better (every other metric is an error)
HIGHER_IS_BETTER = ("ap",)

#: entries of one (resample chunk, feature) product kept in memory at once
_CHUNK_ENTRIES = 1 << 21


def image_resample_counts(n_images: int, n_bootstrap: int, random_state=None) -> np.ndarray:
    """Multinomial image counts of ``n_bootstrap`` bootstrap resamples.

    Row ``b`` counts how often each of the ``n_images`` images was drawn when ``n_images``
    images are drawn with replacement (``numpy.random.Generator.integers``); rows sum to
    ``n_images``. The counts depend only on ``(n_images, n_bootstrap, random_state)``, so two
    evaluations of different detections on the same ground truth with the same integer
    ``random_state`` use the same resamples (a paired bootstrap).

    Parameters
    ----------
    n_images : int
        Number of images (``>= 0``); 0 gives rows of no column.
    n_bootstrap : int
        Number of resamples (``>= 1``).
    random_state : int, RandomState, Generator or None, default=None
        Seed of the draws: an integer (``>= 0``) seeds ``numpy.random.default_rng``; a
        ``Generator`` is used (and advanced) as is; a ``RandomState`` gives one seed for a
        new ``Generator``; None: fresh randomness.

    Returns
    -------
    ndarray of shape (n_bootstrap, n_images), int64
    """
    n_images = int(check_param(n_images, "n_images", [Interval("integer", 0, None)],
                               owner="image_resample_counts"))
    n_bootstrap = _check_n_bootstrap(n_bootstrap, "image_resample_counts")
    rng = _generator(random_state, "image_resample_counts")
    counts = np.zeros((n_bootstrap, n_images), np.int64)
    if n_images == 0:
        return counts
    rows = max(1, _CHUNK_ENTRIES // n_images)
    for s in range(0, n_bootstrap, rows):
        e = min(n_bootstrap, s + rows)
        draws = rng.integers(0, n_images, size=(e - s, n_images))
        draws += (np.arange(e - s) * n_images)[:, None]
        counts[s:e] = np.bincount(draws.ravel(), minlength=(e - s) * n_images).reshape(
            e - s, n_images)
    return counts


def percentile_interval(values, confidence_level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval: the ``(1 - c)/2`` and ``(1 + c)/2`` quantiles of the
    non-NaN ``values`` (``numpy.quantile``, linear interpolation, after dropping the NaNs).

    Parameters
    ----------
    values : array-like of shape (n_resamples,)
        The resampled values of one metric (flattened if of another shape).
    confidence_level : float in (0, 1), default=0.95
        Coverage ``c`` of the interval.

    Returns
    -------
    (low, high) : tuple of float
        ``(nan, nan)`` when every value is NaN (or there is none).
    """
    confidence_level = _check_confidence_level(confidence_level, "percentile_interval")
    v = np.asarray(values, np.float64).ravel()
    v = v[~np.isnan(v)]
    if not len(v):
        return (float("nan"), float("nan"))
    a = 1.0 - confidence_level
    lo, hi = np.quantile(v, [a / 2, 1 - a / 2])
    return (float(lo), float(hi))


def paired_bootstrap(base: dict, other: dict, *, confidence_level: float = 0.95) -> dict:
    """Does ``other`` improve on ``base`` across the same bootstrap resamples?

    ``base`` and ``other`` are results of :func:`calibkit.detection.evaluate` with
    ``return_resamples=True`` on the same ground truth with the same ``n_bootstrap`` and the
    same integer ``random_state`` (so the resamples are the same images), e.g. uncalibrated
    and calibrated detections.

    Parameters
    ----------
    base : dict
        The reference result, with its ``"resamples"``.
    other : dict
        The result compared with it, with its ``"resamples"``.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the intervals of the differences.

    Returns
    -------
    dict
        For every metric in both: ``{"difference": other - base, "ci": (low, high),
        "share_better": float, "holds": bool}``. ``difference`` is the point difference,
        ``ci`` the percentile interval of the per-resample differences, ``share_better`` the
        share of resamples (NaN ones left out) where ``other`` is better (lower, or higher for
        AP), and ``holds`` says that the whole interval lies on the better side of 0.

    Raises
    ------
    ValueError
        A result without ``"resamples"``, or a metric with different numbers of resamples.
    """
    confidence_level = _check_confidence_level(confidence_level, "paired_bootstrap")
    if "resamples" not in base or "resamples" not in other:
        raise ValueError("paired_bootstrap needs results of evaluate(..., n_bootstrap=N, "
                         "return_resamples=True).")
    out = {}
    for key, rb in base["resamples"].items():
        ro = other["resamples"].get(key)
        if ro is None:
            continue
        if len(ro) != len(rb):
            raise ValueError(f"the two results have {len(rb)} and {len(ro)} resamples of "
                             f"{key!r}; use the same n_bootstrap and random_state.")
        sign = 1.0 if key in HIGHER_IS_BETTER else -1.0
        diff = np.asarray(ro, np.float64) - np.asarray(rb, np.float64)
        ok = ~np.isnan(diff)
        lo, hi = percentile_interval(diff, confidence_level)
        better = float(np.mean(sign * diff[ok] > 0)) if ok.any() else float("nan")
        out[key] = {
            "difference": float(other[key] - base[key]),
            "ci": (lo, hi),
            "share_better": better,
            "holds": bool(hi < 0) if sign < 0 else bool(lo > 0),
        }
    return out


# --------------------------------------------------------------------------------------
# The resampled metrics (called by calibkit.detection.evaluate)
# --------------------------------------------------------------------------------------


def _evaluate_resamples(gt, dets, ms, flags, *, n_bootstrap, random_state, ap, max_dets,
                        laece_bins, bin_closure, class_mean_drop_zero_error,
                        empty_class_policy, laace_include_ignored, dece_bins) -> dict:
    """Every metric of :func:`evaluate` on each resample: ``{key: ndarray (n_bootstrap,)}``.

    ``ms`` are evaluate's matches (the first at ``tau``, the last for D-ECE) and ``flags``
    netcal's matched flags (None for greedy D-ECE).
    """
    from calibkit.detection import metrics as mt

    counts = image_resample_counts(gt.n_images, n_bootstrap, random_state)
    feats = _Features(gt)
    m = ms[0]
    k = gt.n_categories
    img = np.searchsorted(gt.image_ids, m.dets.image_id)
    reg = _regular(gt, m.dataset)
    g_npig = feats.add(np.searchsorted(gt.image_ids, gt.ann_image_id[reg]),
                       np.searchsorted(gt.category_ids, gt.ann_category_id[reg]), 1.0, k)
    # LaECE, LaACE and LRP at tau
    v = m.valid
    cls, p, iou, tp = m.class_index, m.dets.score, m.iou, m.tp
    g_n = feats.add(img[v], cls[v], 1.0, k)
    g_tp = feats.add(img[v & tp], cls[v & tp], 1.0, k)
    g_loc = feats.add(img[v & tp], cls[v & tp], 1.0 - iou[v & tp], k)
    sel = m.evaluated if laace_include_ignored else v
    g_dev = feats.add(img[sel], cls[sel], np.abs(p[sel] - iou[sel]), k)
    extra = sel & ~v
    g_extra = feats.add(img[extra], cls[extra], 1.0, k) if extra.any() else None
    b = assign_uniform_closure(p[v], laece_bins, bin_closure)
    inb = b < laece_bins
    g_gap = feats.add(img[v][inb], cls[v][inb] * laece_bins + b[inb], (iou[v] - p[v])[inb],
                      k * laece_bins)
    # D-ECE
    if flags is None:
        md = ms[-1]
        vd = md.valid
        g_dn = g_n if md is m else feats.add(img[vd], cls[vd], 1.0, k)
        bd = assign_uniform_closure(p[vd], dece_bins, bin_closure)
        inb = bd < dece_bins
        y = md.tp[vd].astype(np.float64)
        g_dgap = feats.add(img[vd][inb], cls[vd][inb] * dece_bins + bd[inb],
                           (y - p[vd])[inb], k * dece_bins)
    else:
        everything = np.zeros(len(p), np.intp)
        g_dn = feats.add(img, everything, 1.0, 1)
        bd = assign_uniform_closure(p, dece_bins, bin_closure)
        inb = bd < dece_bins
        g_dgap = feats.add(img[inb], bd[inb], (flags.astype(np.float64) - p)[inb], dece_bins)
    table = mt._ap_table(gt, m.dets, max_dets, iou_type=m.iou_type,
                         dataset=m.dataset) if ap else None

    keys = ("laece", "laace", "lrp", "lrp_loc", "lrp_fp", "lrp_fn", "dece")
    out = {key: np.empty(n_bootstrap) for key in keys}
    npig_all = np.empty((n_bootstrap, k))
    step = max(1, _CHUNK_ENTRIES // max(feats.n_features, 1))
    for s in range(0, n_bootstrap, step):
        e = min(n_bootstrap, s + step)
        sums = feats.sums(counts[s:e])
        npig = sums(g_npig)
        npig_all[s:e] = npig
        has_gt = npig > 0
        n = sums(g_n)
        e_laece = mt._laece_from_sums(sums(g_gap).reshape(-1, k, laece_bins), n, has_gt)
        out["laece"][s:e] = mt._class_mean(e_laece, class_mean_drop_zero_error,
                                           empty_class_policy)
        n_sel = n if g_extra is None else n + sums(g_extra)
        e_laace = mt._laace_from_sums(sums(g_dev), n_sel, n, has_gt)
        out["laace"][s:e] = mt._class_mean(e_laace, class_mean_drop_zero_error,
                                           empty_class_policy)
        n_tp = sums(g_tp)
        per_class = mt._lrp_from_sums(n_tp, n - n_tp, sums(g_loc), npig, m.tau)
        for key, val in per_class.items():
            out[key][s:e] = mt._nanmean(val)
        if flags is None:
            gap = sums(g_dgap).reshape(-1, k, dece_bins)
            gap = np.where(has_gt[:, :, None], gap, 0.0).sum(axis=1)
            n_d = np.where(has_gt, sums(g_dn), 0.0).sum(axis=1)
        else:
            gap, n_d = sums(g_dgap), sums(g_dn)[:, 0]
        out["dece"][s:e] = mt._pooled_ece_from_sums(gap, n_d)
    if table is not None:
        out["ap"] = mt._nanmean(mt._ap_from_table(table, counts, npig_all))
    return out


def _intervals(resamples: dict, confidence_level: float) -> dict:
    return {f"{key}_ci": percentile_interval(val, confidence_level)
            for key, val in resamples.items()}


class _Features:
    """Per-image sums of named groups of features, and their weighted totals per resample.

    ``add`` registers a group (entries: image index, index within the group, value) and
    returns its slice; ``sums(counts)`` returns a function giving, for a group, the array of
    shape (n_resamples, group size) of ``sum_i counts[b, i] * S_i`` (one sparse product for
    every group at once).
    """

    def __init__(self, gt):
        self.n_images = gt.n_images
        self.n_features = 0
        self._rows, self._cols, self._vals = [], [], []
        self._matrix = None

    def add(self, image, index, value, size: int) -> slice:
        value = np.broadcast_to(np.asarray(value, np.float64), np.shape(image))
        nz = value != 0
        self._rows.append(self.n_features + np.asarray(index)[nz])
        self._cols.append(np.asarray(image)[nz])
        self._vals.append(value[nz])
        group = slice(self.n_features, self.n_features + size)
        self.n_features += size
        return group

    def sums(self, counts: np.ndarray):
        if self._matrix is None:
            from scipy.sparse import coo_matrix

            self._matrix = coo_matrix(
                (np.concatenate(self._vals), (np.concatenate(self._rows),
                                              np.concatenate(self._cols))),
                shape=(self.n_features, self.n_images)).tocsr()  # duplicates are summed
        # (n_features, n_resamples): the product runs over resamples in the inner loop
        total = self._matrix @ np.ascontiguousarray(counts.T, dtype=np.float64)
        return lambda group: total[group].T


def _generator(random_state, owner: str) -> np.random.Generator:
    check_param(random_state, "random_state", [RANDOM_STATE], owner=owner)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def _check_n_bootstrap(n_bootstrap, owner: str) -> int:
    return int(check_param(n_bootstrap, "n_bootstrap", [Interval("integer", 1, None)],
                           owner=owner))


def _check_confidence_level(confidence_level, owner: str) -> float:
    return float(check_param(confidence_level, "confidence_level",
                             [Interval("real", 0, 1, closed="neither")], owner=owner))
