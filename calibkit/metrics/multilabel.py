"""Metrics of multilabel predictions: independent probabilities of shape (n, L) against a
multilabel indicator matrix ``Y`` of shape (n, L) (label ``l`` present in sample ``i`` iff
``Y[i, l] = 1``).

Each metric treats label ``l`` as the binary problem ``(P[:, l], Y[:, l])`` and reports,
with ``average=``:

* ``None``: one value per label, an array of shape (L,);
* ``"macro"``: the mean of the per-label values;
* ``"micro"``: the value of the pooled binary problem (all n x L pairs together).
"""

from __future__ import annotations

import numpy as np

from calibkit._validation import (
    NONE,
    Options,
    check_array,
    check_param,
    check_sample_weight,
    check_unit_interval,
    to_numpy,
)

__all__ = [
    "check_multilabel",
    "multilabel_calibration_error",
    "multilabel_brier_score",
    "multilabel_log_loss",
]

AVERAGES = ("macro", "micro")


def check_multilabel(y_true, y_prob, sample_weight=None, *, name="y_prob"):
    """Validate a multilabel indicator ``y_true`` and probabilities ``y_prob``, both (n, L).

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Multilabel indicator matrix (every entry 0 or 1).
    y_prob : array-like of shape (n_samples, n_labels)
        Independent probabilities in [0, 1].
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights.
    name : str, default="y_prob"
        The name of ``y_prob`` in error messages.

    Returns
    -------
    Y : ndarray of float64 of shape (n_samples, n_labels)
        The indicator, in {0, 1}.
    P : ndarray of float64 of shape (n_samples, n_labels)
        The probabilities.
    w : ndarray of shape (n_samples,) or None
        The checked weights, rescaled by a power of two
        (:func:`calibkit._validation.check_sample_weight`), or None.

    Raises
    ------
    ValueError
        If the shapes differ, a probability lies outside [0, 1] or an indicator entry is
        not 0 or 1.
    """
    p = check_array(y_prob, name=name, ndim=(2,))
    check_unit_interval(p, name=name, hint="Independent probabilities: apply a sigmoid to "
                        "logits first.")
    y = to_numpy(y_true, name="y_true")
    if y.ndim != 2 or y.shape != p.shape:
        raise ValueError(
            f"y_true must be a multilabel indicator matrix of the shape of {name} "
            f"{p.shape}; got shape {y.shape}."
        )
    y = check_array(y, name="y_true", ndim=(2,))
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must be a multilabel indicator matrix: every entry 0 or 1.")
    w = check_sample_weight(sample_weight, len(p))
    return y, p, w


def multilabel_calibration_error(y_true, y_prob, *, average="macro", sample_weight=None,
                                 **ece_kwargs):
    """Binned calibration error of each label's probabilities (binary mode).

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Multilabel indicator matrix.
    y_prob : array-like of shape (n_samples, n_labels)
        Independent probabilities of the labels (e.g. sigmoids of the logits).
    average : {"macro", "micro"} or None, default="macro"
        See the module docstring.
    sample_weight : array-like of shape (n_samples,), default=None
    **ece_kwargs : dict
        ``n_bins``, ``strategy``, ``norm``, ``debias``, ``random_state`` of
        :func:`~calibkit.metrics.expected_calibration_error` (``mode`` is ``"binary"``).

    Returns
    -------
    float, or ndarray of shape (n_labels,) with ``average=None``
    """
    from calibkit.metrics.calibration import expected_calibration_error

    check_param(average, "average", [Options(*AVERAGES), NONE],
                owner="multilabel_calibration_error")
    if "mode" in ece_kwargs or "labels" in ece_kwargs:
        raise TypeError("multilabel_calibration_error sets mode and labels itself.")
    y, p, w = check_multilabel(y_true, y_prob, sample_weight)

    def ece(yy, pp, ww):
        return float(expected_calibration_error(yy, pp, mode="binary", labels=[0.0, 1.0],
                                                sample_weight=ww, **ece_kwargs))

    if average == "micro":
        ww = None if w is None else np.repeat(w, p.shape[1])
        return ece(y.ravel(), p.ravel(), ww)
    per = np.array([ece(y[:, j], p[:, j], w) for j in range(p.shape[1])])
    return per if average is None else float(per.mean())


def multilabel_brier_score(y_true, y_prob, *, average="macro", sample_weight=None):
    """Brier score ``mean_i w_i (P_il - Y_il)^2`` of each label (see the module docstring for
    ``average``; "macro" and "micro" agree without missing labels).

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Multilabel indicator matrix.
    y_prob : array-like of shape (n_samples, n_labels)
        Independent probabilities of the labels (e.g. sigmoids of the logits).
    average : {"macro", "micro"} or None, default="macro"
        See the module docstring.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the samples (shared by every label).

    Returns
    -------
    float, or ndarray of shape (n_labels,) with ``average=None``
    """
    return _per_label(y_true, y_prob, average, sample_weight, lambda y, p: (p - y) ** 2,
                      "multilabel_brier_score")


def multilabel_log_loss(y_true, y_prob, *, average="macro", sample_weight=None):
    """Binary log loss ``-mean_i w_i [Y_il log P_il + (1 - Y_il) log(1 - P_il)]`` of each
    label, probabilities clipped to ``[PROB_EPS, 1 - PROB_EPS]`` as
    :func:`~calibkit.metrics.negative_log_likelihood`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Multilabel indicator matrix.
    y_prob : array-like of shape (n_samples, n_labels)
        Independent probabilities of the labels (e.g. sigmoids of the logits).
    average : {"macro", "micro"} or None, default="macro"
        See the module docstring.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the samples (shared by every label).

    Returns
    -------
    float, or ndarray of shape (n_labels,) with ``average=None``
    """
    from calibkit._validation import PROB_EPS

    def loss(y, p):
        p = np.clip(p, PROB_EPS, 1.0 - PROB_EPS)
        return -(y * np.log(p) + (1.0 - y) * np.log1p(-p))

    return _per_label(y_true, y_prob, average, sample_weight, loss, "multilabel_log_loss")


def _per_label(y_true, y_prob, average, sample_weight, loss, owner):
    check_param(average, "average", [Options(*AVERAGES), NONE], owner=owner)
    y, p, w = check_multilabel(y_true, y_prob, sample_weight)
    values = loss(y, p)
    per = np.average(values, axis=0, weights=w)
    if average is None:
        return per
    return float(per.mean())
