"""Reliability diagrams for detection. matplotlib is imported only when drawing.

* :func:`laece_reliability` / :func:`plot_laece_reliability`: the toolbox's diagram: per
  class and bin, accuracy = mean of IoU (0 for an FP) and confidence = mean score; both are
  averaged over the classes that have detections in the bin. A second series shows the
  share of detections in each bin.
* :func:`dece_reliability` / :func:`plot_dece_reliability`: the confidence-only D-ECE
  diagram: pooled precision per bin (match at IoU 0.5 for the train-time protocol).
"""

from __future__ import annotations

import numpy as np

from calibkit.detection.matching import Matches
from calibkit.metrics.binning import assign_uniform_closure, check_n_bins, uniform_edges

__all__ = [
    "laece_reliability",
    "dece_reliability",
    "plot_laece_reliability",
    "plot_dece_reliability",
]


def laece_reliability(matches: Matches, *, n_bins: int = 25, bin_closure: str = "right"):
    """Class-averaged reliability bins of LaECE.

    The TP and FP detections of the classes with regular ground truth take part.

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (:func:`calibkit.detection.match`).
    n_bins : int, default=25
        Number of equal-width bins on [0, 1].
    bin_closure : {"right", "left", "numpy"}, default="right"
        Which side of each bin is closed (see :func:`calibkit.detection.laece`).

    Returns
    -------
    dict of ndarrays of shape (n_bins,)
        ``edges`` (of shape (n_bins + 1,)), ``accuracy`` and ``confidence`` (class means,
        NaN for a bin empty in every class) and ``fraction`` (share of the detections taking
        part that fall in the bin; a score outside every bin, 1 with ``bin_closure="left"``,
        counts in no bin).
    """
    n_bins = check_n_bins(n_bins)
    k = matches.n_categories
    sel = matches.valid & (matches.npig > 0)[matches.class_index]
    cls = matches.class_index[sel]
    p = matches.dets.score[sel]
    b = assign_uniform_closure(p, n_bins, bin_closure)
    flat = cls * (n_bins + 1) + b
    size = k * (n_bins + 1)
    shape = (k, n_bins + 1)
    count = np.bincount(flat, minlength=size).reshape(shape)[:, :n_bins]
    s_p = np.bincount(flat, weights=p, minlength=size).reshape(shape)[:, :n_bins]
    s_a = np.bincount(flat, weights=matches.iou[sel], minlength=size).reshape(shape)[:, :n_bins]
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = s_a / count
        conf = s_p / count
        n_cls = (count > 0).sum(axis=0)
        acc_mean = np.where(n_cls > 0, np.nansum(acc, axis=0) / n_cls, np.nan)
        conf_mean = np.where(n_cls > 0, np.nansum(conf, axis=0) / n_cls, np.nan)
    total = max(len(p), 1)  # as in dece_reliability: every detection taking part
    return {"edges": uniform_edges(n_bins), "accuracy": acc_mean, "confidence": conf_mean,
            "fraction": count.sum(axis=0) / total}


def dece_reliability(matches: Matches, *, n_bins: int = 10, bin_closure: str = "right"):
    """Pooled precision per confidence bin (the D-ECE diagram); keys as in
    :func:`laece_reliability`.

    The TP and FP detections of the classes with regular ground truth take part, all
    classes pooled.

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (at ``tau=0.5`` for the train-time protocol).
    n_bins : int, default=10
        Number of equal-width bins on [0, 1].
    bin_closure : {"right", "left", "numpy"}, default="right"
        Which side of each bin is closed (see :func:`calibkit.detection.laece`).

    Returns
    -------
    dict of ndarrays of shape (n_bins,)
        ``edges`` (of shape (n_bins + 1,)), ``accuracy`` (share of TPs in the bin) and
        ``confidence`` (mean score in the bin), NaN for an empty bin, and ``fraction``
        (share of the detections taking part that fall in the bin, as in
        :func:`laece_reliability`).
    """
    n_bins = check_n_bins(n_bins)
    sel = matches.valid & (matches.npig > 0)[matches.class_index]
    p = matches.dets.score[sel]
    y = matches.tp[sel].astype(np.float64)
    b = assign_uniform_closure(p, n_bins, bin_closure)
    count = np.bincount(b, minlength=n_bins + 1)[:n_bins]
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(b, weights=y, minlength=n_bins + 1)[:n_bins] / count
        conf = np.bincount(b, weights=p, minlength=n_bins + 1)[:n_bins] / count
    return {"edges": uniform_edges(n_bins), "accuracy": acc, "confidence": conf,
            "fraction": count / max(len(p), 1)}


def plot_laece_reliability(matches: Matches, *, n_bins: int = 25, ax=None, title=None):
    """Draw :func:`laece_reliability` (bars: class-averaged IoU accuracy and its gap to the
    confidence; line: share of detections; dashed: the diagonal).

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (:func:`calibkit.detection.match`).
    n_bins : int, default=25
        Number of equal-width bins (closed on the right, as LaECE_0).
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; None: a new 4.5 x 4.5 inch figure.
    title : str or None, default=None
        Title of the axes (None: ``"LaECE reliability"``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    curve = laece_reliability(matches, n_bins=n_bins)
    return _draw(curve, ax, "Precision x IoU (class mean)", title or "LaECE reliability")


def plot_dece_reliability(matches: Matches, *, n_bins: int = 10, ax=None, title=None):
    """Draw :func:`dece_reliability` (bars: pooled precision and its gap to the confidence;
    line: share of detections; dashed: the diagonal).

    Parameters
    ----------
    matches : Matches
        Detections matched to the ground truth (at ``tau=0.5`` for the train-time protocol).
    n_bins : int, default=10
        Number of equal-width bins (closed on the right).
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; None: a new 4.5 x 4.5 inch figure.
    title : str or None, default=None
        Title of the axes (None: ``"D-ECE reliability"``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    curve = dece_reliability(matches, n_bins=n_bins)
    return _draw(curve, ax, "Precision (pooled)", title or "D-ECE reliability")


def _draw(curve, ax, ylabel, title):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    edges = curve["edges"]
    width = np.diff(edges)
    acc = np.nan_to_num(curve["accuracy"], nan=0.0)
    ax.bar(edges[:-1], acc, width=width, align="edge", edgecolor="black", alpha=0.8,
           label="accuracy")
    conf = np.nan_to_num(curve["confidence"], nan=0.0)
    gap = conf - acc
    ax.bar(edges[:-1], gap, bottom=acc, width=width, align="edge", color="tab:red",
           alpha=0.3, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    centers = edges[:-1] + width / 2
    ax.plot(centers, curve["fraction"], "o-", color="tab:green", markersize=3,
            label="share of detections")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return ax
