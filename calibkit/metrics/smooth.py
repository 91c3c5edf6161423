"""Smooth ECE and the kernel reliability curve (Błasiok & Nakkiran, "Smooth ECE: Principled
reliability diagrams via kernel smoothing", ICLR 2024).

The residuals ``r_i = f_i - y_i`` are smoothed with a Gaussian kernel of bandwidth ``sigma``
reflected at 0 and 1; smooth ECE is the mean absolute smoothed residual under the smoothed
density of the predictions, and the bandwidth is the fixed point ``smECE(sigma) = sigma``.
The computation follows the authors' reference package ``relplot`` step by step (grid
rounding, discrete reflected convolution, interpolation to a mesh, a density floor and the
bisection for ``sigma``), so the numbers agree with ``relplot.smECE`` to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibkit._validation import (
    Interval,
    Options,
    check_consistent_length,
    check_param,
    check_probabilities,
    check_sample_weight,
    encode_labels,
)

__all__ = ["smooth_calibration_error", "smooth_reliability_curve", "SmoothReliabilityCurve"]

SMOOTH_MODES = ("top_label", "binary")
#: bandwidth search: smallest bandwidth and number of bisection steps (relplot's eps, refine)
MIN_BANDWIDTH = 1e-3
BISECTION_STEPS = 10
#: floor added to the smoothed density (relplot's ``eps`` of ``BaseKernelMixin.smooth``)
DENSITY_FLOOR = 1e-4
#: mesh points of the error and of the curve (relplot's ``smECE_mesh_pts``, ``plot_mesh_pts``)
MESH_POINTS = 200


def smooth_calibration_error(y_true, y_prob, *, bandwidth=None, mode="top_label",
                             sample_weight=None, labels=None, return_bandwidth=False):
    """Smooth ECE (smECE) of Błasiok & Nakkiran (2024).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`~calibkit.metrics.expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities.
    bandwidth : float or None, default=None
        The kernel's standard deviation ``sigma``; None chooses it as the authors do: the
        fixed point of ``sigma -> smECE_sigma``, found by 10 bisection steps on (0, 1]
        (``sigma = 1`` if ``smECE_1 >= 1``; at least ``1e-3``).
    mode : {"top_label", "binary"}, default="top_label"
        ``"top_label"``: ``f = max_k p_k``, ``y = 1[argmax = label]``; ``"binary"``:
        ``f`` = P(positive) (1-D ``y_prob`` or column 1), ``y = 1[label = positive]``.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the residuals and of the density (normalised to mean 1).
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``.
    return_bandwidth : bool, default=False
        Also return the bandwidth used.

    Returns
    -------
    float, or (float, float) with ``return_bandwidth``

    Notes
    -----
    ``smECE_sigma = sum_t |R(t)| / sum_t (D(t) + 1e-4)`` over a mesh of
    ``max(200, round(10 / sigma))`` points ``t`` of [0, 1], where ``R`` and ``D`` are the
    kernel sums ``sum_i w_i r_i K(t, f_i)`` and ``sum_i w_i K(t, f_i)`` of the reflected
    Gaussian kernel, computed as in ``relplot``: the points are split linearly between the
    two nearest nodes of a grid of ``M = max(2000, round(20 / sigma)) // 2 + 1`` nodes, the
    grid is convolved with the kernel sampled on the grid (mirrored at both ends), and the
    result interpolated linearly to the mesh.
    """
    f, r, w = _residuals(y_true, y_prob, mode, labels, sample_weight)
    if bandwidth is None:
        sigma = _fixed_point_bandwidth(f, r, w)
    else:
        sigma = float(check_param(bandwidth, "bandwidth",
                                  [Interval("real", 0, None, closed="neither")],
                                  owner="smooth_calibration_error"))
    value = _smooth_ece(f, r, w, sigma)
    return (value, sigma) if return_bandwidth else value


@dataclass(frozen=True)
class SmoothReliabilityCurve:
    """A kernel reliability curve on a mesh of [0, 1].

    Attributes
    ----------
    mesh : ndarray of shape (m,)
        Confidence values.
    accuracy : ndarray of shape (m,)
        Kernel-smoothed observed frequency at each mesh point (Nadaraya-Watson with the
        reflected Gaussian kernel).
    density : ndarray of shape (m,)
        Kernel density of the predictions at each mesh point (integrates to about 1).
    bandwidth : float
    error : float
        The smooth ECE at that bandwidth.
    """

    mesh: np.ndarray
    accuracy: np.ndarray
    density: np.ndarray
    bandwidth: float
    error: float


def smooth_reliability_curve(y_true, y_prob, *, bandwidth=None, mode="top_label",
                             sample_weight=None, labels=None, n_points=MESH_POINTS):
    """The kernel reliability curve of :func:`smooth_calibration_error` (relplot's
    ``prepare_rel_diagram`` without the bootstrap band).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, encoded as in :func:`~calibkit.metrics.expected_calibration_error`.
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities.
    bandwidth : float or None, default=None
        The kernel's standard deviation ``sigma``; None takes the fixed point of
        :func:`smooth_calibration_error`.
    mode : {"top_label", "binary"}, default="top_label"
        Which confidence and outcome are smoothed, as in :func:`smooth_calibration_error`.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the outcomes and of the density (normalised to mean 1).
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_prob``.
    n_points : int, default=200
        Number of mesh points, evenly spaced on [0, 1] (at least 2).

    Returns
    -------
    SmoothReliabilityCurve
        The curve on the mesh, with the bandwidth and the smooth ECE at that bandwidth.

    Notes
    -----
    With ``K`` the reflected Gaussian kernel of :func:`smooth_calibration_error` (the same
    grid computation), confidences ``f_i``, outcomes ``y_i`` and weights ``w_i`` of mean 1:
    ``accuracy(t) = sum_i w_i y_i K(t, f_i) / (sum_i w_i K(t, f_i) + 1e-4)`` and
    ``density(t) = sum_i w_i K(t, f_i) / n``, as relplot's ``prepare_rel_diagram``.
    """
    f, r, w = _residuals(y_true, y_prob, mode, labels, sample_weight)
    n_points = int(check_param(n_points, "n_points", [Interval("integer", 2, None)],
                               owner="smooth_reliability_curve"))
    sigma = (_fixed_point_bandwidth(f, r, w) if bandwidth is None else float(check_param(
        bandwidth, "bandwidth", [Interval("real", 0, None, closed="neither")],
        owner="smooth_reliability_curve")))
    t = np.linspace(0.0, 1.0, n_points)
    outcome = f - r
    ys = _kernel_apply(f, outcome * w, t, sigma)
    dens = _kernel_apply(f, w, t, sigma) + DENSITY_FLOOR
    density = _kernel_apply(f, w / len(f), t, sigma)
    return SmoothReliabilityCurve(mesh=t, accuracy=ys / dens, density=density,
                                  bandwidth=sigma, error=_smooth_ece(f, r, w, sigma))


# --------------------------------------------------------------------------------------


def _residuals(y_true, y_prob, mode, labels, sample_weight):
    check_param(mode, "mode", [Options(*SMOOTH_MODES)], owner="smooth_calibration_error")
    p = check_probabilities(y_prob)
    k = 2 if p.ndim == 1 else p.shape[1]
    y = encode_labels(y_true, k, labels=labels, name="y_true").y
    n = check_consistent_length(("y_true", y), ("y_prob", p))
    w = check_sample_weight(sample_weight, n)
    if mode == "binary":
        if k != 2:
            raise ValueError(f"mode='binary' needs 1-D y_prob or 2 columns; got {k} columns.")
        f = p if p.ndim == 1 else p[:, 1]
        outcome = (y == 1).astype(np.float64)
    elif p.ndim == 1:
        f = np.maximum(p, 1.0 - p)
        outcome = ((p > 0.5) == (y == 1)).astype(np.float64)
    else:
        top = p.argmax(axis=1)
        f = p[np.arange(n), top]
        outcome = (top == y).astype(np.float64)
    w = np.ones(n) if w is None else w * (n / w.sum())
    return np.asarray(f, dtype=np.float64), f - outcome, w


def _fixed_point_bandwidth(f, r, w) -> float:
    def small_enough(alpha):
        return alpha < MIN_BANDWIDTH or alpha < _smooth_ece(f, r, w, alpha)

    if small_enough(1.0):
        return 1.0
    hi, lo = 1.0, 0.0
    for _ in range(BISECTION_STEPS):
        mid = (hi + lo) / 2
        if small_enough(mid):
            lo = mid
        else:
            hi = mid
    return hi


def _smooth_ece(f, r, w, sigma) -> float:
    t = np.linspace(0.0, 1.0, max(round(10 / sigma), MESH_POINTS))
    ys = _kernel_apply(f, r * w, t, sigma)
    dens = _kernel_apply(f, w, t, sigma) + DENSITY_FLOOR
    rs = ys / dens
    return float(np.sum(np.abs(rs) * dens) / np.sum(dens))


def _kernel_apply(f, values, t, sigma):
    """``sum_i values_i K_sigma(t, f_i)`` for the Gaussian kernel reflected at 0 and 1, on a
    grid (see :func:`smooth_calibration_error`), interpolated to ``t``."""
    m = max(2000, round(20 / sigma)) // 2 + 1
    grid = np.zeros(m)
    pos = f * (m - 1)
    node = np.clip(pos.astype(np.intp), 0, m - 2)
    frac = pos - node
    np.add.at(grid, node, (1.0 - frac) * values)
    np.add.at(grid, node + 1, frac * values)
    u = np.linspace(0.0, 1.0, m)
    kernel = np.exp(-(u - 0.5) ** 2 / (2.0 * sigma**2)) / (np.sqrt(2.0 * np.pi) * sigma)
    mirrored = np.concatenate([grid[::-1][:-1], grid, grid[::-1][1:]])
    smoothed = np.convolve(mirrored, kernel, "valid")[m // 2: m // 2 + m]
    step = 1.0 / (m - 1)
    idx = np.clip((t * (m - 1)).astype(np.intp), 0, m - 2)
    frac_t = (t - idx * step) / step
    return smoothed[idx] * (1.0 - frac_t) + smoothed[idx + 1] * frac_t
