"""Ensemble temperature scaling (Zhang, Kailkhura & Han, "Mix-n-Match", ICML 2020).

:class:`EnsembleTemperatureScaling` mixes three distributions with fitted convex weights:
the temperature-scaled softmax, the original softmax and the uniform distribution.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import ClassVar

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import softmax

from calibkit._validation import (
    BOOLEAN,
    DEVICE,
    NONE,
    Array,
    Interval,
    Options,
    Scores,
    is_torch_tensor,
)
from calibkit.base import Calibrator, ConvergenceWarning

__all__ = ["EnsembleTemperatureScaling"]

ETS_LOSSES = ("mse", "log_loss")
#: the temperature is searched with log T in [-LOG_T_RANGE, LOG_T_RANGE] for the squared error
LOG_T_RANGE = 10.0


class EnsembleTemperatureScaling(Calibrator):
    """Ensemble temperature scaling: ``q = w_0 softmax(z / T) + w_1 softmax(z) + w_2 / K``.

    ``T`` is fitted first, then the convex weights ``w`` (``w >= 0``, ``sum w = 1``) with ``T``
    fixed, both by the loss ``loss``. Binary scores (n,) or (n, 2) are the two-class case
    (``softmax([0, z])``); soft targets in [0, 1] are accepted there.

    Parameters
    ----------
    loss : {"mse", "log_loss"}, default="mse"
        ``"mse"``: the squared error ``mean_i sum_k (q_ik - y_ik)^2`` (the multiclass Brier
        score), as in the paper and its reference code, for both ``T`` and ``w``.
        ``"log_loss"``: the mean negative log-likelihood, for both (``T`` is then exactly
        :class:`~calibkit.scaling.TemperatureScaling`'s). The default follows the paper: the
        published ETS results are with the squared error, which is bounded, so a few
        confidently wrong calibration samples cannot dominate the weights, and the uniform
        component keeps the log-loss of the result finite either way.
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are (probabilities become ``ln p``).
    device : {None, "cpu", "cuda"} or torch.device, default=None
        ``None`` fits with numpy (with torch on the tensor's device when the scores are a
        torch tensor on a GPU); a device runs the n x K sums in torch, float64, there.
    max_iter : int, default=100
        Largest number of iterations of each fit (temperature, weights).
    tol : float, default=1e-10
        Tolerance on ``log T`` and on the weights.

    Attributes
    ----------
    temperature_ : float
        ``T``.
    weights_ : ndarray of shape (3,)
        ``(w_0, w_1, w_2)``: temperature-scaled, original and uniform components.
    n_iter_ : int
        Iterations of the temperature fit.
    classes_ : ndarray of shape (n_classes,)

    Notes
    -----
    The paper's reference code fits ``T`` in [0.05, 5] with L-BFGS-B and ``w`` with SLSQP; here
    ``T`` comes from TemperatureScaling's Halley iteration (log loss) or a bounded Brent
    search on ``log T`` in ``[-10, 10]`` (squared error), and ``w`` exactly: both losses are
    convex in ``w`` (the squared error is a quadratic ``w^T A w - 2 b^T w`` with
    ``A_jl = mean_i <p_j,i, p_l,i>``, the log loss ``-mean_i log(sum_j w_j p_j,i,y_i)``), so
    the minimum over the simplex is found by Newton's method on the affine hull of each of
    its 7 faces, keeping the best point that lies in its face.
    """

    _parameter_constraints: ClassVar[dict] = {
        "loss": [Options(*ETS_LOSSES)],
        "device": [NONE, DEVICE],
        "max_iter": [Interval("integer", 1, None)],
        "tol": [Interval("real", 0, None, closed="neither")],
    }
    _fitted_constraints: ClassVar[dict] = {
        "weights_": [Array(1, "f", low=0.0, high=1.0)],
        "temperature_": [Interval("real", 0, None, closed="neither")],
        "n_iter_": [Interval("integer", 0, None)],
        "converged_": [BOOLEAN],
    }

    def _check_own_fitted_state(self) -> None:
        if len(self.weights_) != 3 or not np.isclose(self.weights_.sum(), 1.0):
            raise ValueError("weights_ must be 3 convex weights that sum to 1.")
    _supports_soft_targets = True

    def __init__(self, *, loss="mse", input="auto", device=None, max_iter=100, tol=1e-10):
        self.loss = loss
        self.input = input
        self.device = device
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, scores, y, *, sample_weight=None):
        """Fit ``temperature_`` and ``weights_`` on ``scores`` (n,), (n, 2) or (n, K) and
        labels ``y``.

        Parameters
        ----------
        scores : array-like or torch tensor of shape (n_samples,) or (n_samples, n_classes)
            Calibration scores, as declared by ``input``; 1-D scores are binary log-odds (or
            probabilities of the positive class).
        y : array-like of shape (n_samples,)
            Labels of any type, or binary soft targets in [0, 1].
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample in both losses.

        Returns
        -------
        self : EnsembleTemperatureScaling
            The fitted calibrator.
        """
        self._torch_scores = scores if is_torch_tensor(scores) else None
        try:
            return super().fit(scores, y, sample_weight=sample_weight)
        finally:
            del self._torch_scores

    def _fit(self, scores: Scores, targets, sample_weight):
        from calibkit.dirichlet import _backend, _class_logits

        z = _class_logits(scores)
        n, k = z.shape
        if targets.soft:
            onehot = np.column_stack([1.0 - targets.y, targets.y])
        else:
            onehot = np.zeros((n, k))
            onehot[np.arange(n), targets.y] = 1.0
        s = np.ones(n) if sample_weight is None else sample_weight
        s = s / s.sum()
        backend = _backend(self.device, self._torch_scores)
        ev = _Evaluator(backend, z, onehot, s)
        if self.loss == "log_loss":
            theta, n_iter, converged = self._fit_log_temperature(scores, targets, sample_weight)
        else:
            theta, n_iter, converged = ev.fit_log_temperature_mse(self.tol, self.max_iter)
        temperature = math.exp(theta)
        comps = ev.components(temperature)
        self.weights_ = _simplex_minimum(comps, self.loss, self.max_iter, self.tol)
        self.temperature_ = float(temperature)
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)
        if not converged:
            warnings.warn(
                f"EnsembleTemperatureScaling: the temperature fit did not converge "
                f"(temperature_ = {temperature:.6g}).",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _fit_log_temperature(self, scores, targets, sample_weight):
        from calibkit.scaling import TemperatureScaling

        # the one temperature solver (Halley iteration on log T), on the same scores
        ts = TemperatureScaling(input=scores.kind, device=self.device, max_iter=self.max_iter,
                                tol=self.tol)
        ts._torch_scores = self._torch_scores
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ts._fit(scores, targets, sample_weight)
        return math.log(ts.temperature_), ts.n_iter_, ts.converged_

    def _predict_proba(self, scores):
        from calibkit.dirichlet import _class_logits

        z = _class_logits(scores)
        k = z.shape[1]
        w0, w1, w2 = self.weights_
        return (w0 * softmax(z / self.temperature_, axis=1) + w1 * softmax(z, axis=1)
                + w2 / k)


class _Evaluator:
    """The n x K sums of the fit, in numpy or torch (float64)."""

    def __init__(self, backend, z, onehot, s):
        self.bk = backend
        self.z = backend.asarray(z)
        self.y = backend.asarray(onehot)
        self.s = backend.asarray(s)
        self.p1 = self._softmax(self.z)

    def _softmax(self, a):
        return self.bk.exp(a - self.bk.logsumexp(a)[:, None])

    def brier(self, temperature) -> float:
        q = self._softmax(self.z / temperature)
        return float(self.bk.to_host((((q - self.y) ** 2).sum(1) * self.s).sum()))

    def fit_log_temperature_mse(self, tol, max_iter):
        res = minimize_scalar(lambda t: self.brier(math.exp(t)), bounds=(-LOG_T_RANGE,
                              LOG_T_RANGE), method="bounded",
                              options={"xatol": max(tol, 1e-10), "maxiter": 5 * max_iter})
        at_bound = abs(res.x) > LOG_T_RANGE - 1e-3
        return float(res.x), int(res.nfev), bool(res.success) and not at_bound

    def components(self, temperature):
        """``(A, b, P, v)``: Gram matrix and target products of the three components, and
        for the log loss their probabilities ``P`` (m x 3) at the (sample, class) pairs with
        a positive target, with weights ``v = s_i y_ik`` (the labels' pairs for hard
        targets)."""
        k = self.z.shape[1]
        p0 = self._softmax(self.z / temperature)
        comps = [p0, self.p1]
        s = self.s[:, None]
        a = np.empty((3, 3))
        b = np.empty(3)
        y = self.bk.to_host(self.y)
        rows, cols = np.nonzero(y > 0)
        pair_weight = self.bk.to_host(self.s)[rows] * y[rows, cols]
        py = []
        for j in range(3):
            pj = comps[j] if j < 2 else None
            for m in range(j, 3):
                pm = comps[m] if m < 2 else None
                if pj is None and pm is None:
                    v = 1.0 / k
                elif pm is None:
                    v = 1.0 / k  # sum_k p_jk / K
                else:
                    v = float(self.bk.to_host(((pj * pm) * s).sum()))
                a[j, m] = a[m, j] = v
            b[j] = (float(self.bk.to_host(((pj * self.y) * s).sum())) if pj is not None
                    else 1.0 / k)
            py.append(self.bk.to_host(pj)[rows, cols] if pj is not None
                      else np.full(len(rows), 1.0 / k))
        return a, b, np.column_stack(py), pair_weight


def _simplex_minimum(comps, loss, max_iter, tol) -> np.ndarray:
    """The convex weights ``w`` minimising the loss (see :class:`EnsembleTemperatureScaling`).

    For each non-empty face of the simplex (a subset of the three components), minimise the
    loss on the face's affine hull by Newton's method (a line search keeps the log loss
    finite); a minimiser inside its face is a candidate, and the best candidate is the
    minimum over the simplex (the loss is convex, and the true minimiser lies in the
    relative interior of one face, where it is also the affine-hull minimiser).
    """
    a, b, py, s = comps

    def value(w):
        if loss == "mse":
            return float(w @ a @ w - 2.0 * b @ w)
        q = py @ w
        if np.any(q <= 0):
            return np.inf
        return float(-(s * np.log(q)).sum())

    def grad_hess(w):
        if loss == "mse":
            return 2.0 * (a @ w - b), 2.0 * a
        q = py @ w
        r = s / q
        return -(py.T @ r), (py * (s / q**2)[:, None]).T @ py

    best, best_value = None, np.inf
    for size in (1, 2, 3):
        for face in itertools.combinations(range(3), size):
            w = _face_minimum(face, value, grad_hess, max_iter, tol)
            if w is None or np.any(w < -1e-12):
                continue
            w = np.clip(w, 0.0, None)
            w /= w.sum()
            v = value(w)
            if v < best_value - 1e-15:
                best, best_value = w, v
    return best


def _face_minimum(face, value, grad_hess, max_iter, tol):
    """Newton's method on ``{w : w_j = 0 off face, sum w = 1}`` from the face's centre."""
    face = list(face)
    m = len(face)
    w = np.zeros(3)
    w[face] = 1.0 / m
    if m == 1:
        return w
    # coordinates u on the affine hull: w_face = c + B u, B's columns sum to 0
    basis = np.zeros((3, m - 1))
    for i in range(m - 1):
        basis[face[i], i] = 1.0
        basis[face[-1], i] = -1.0
    current = value(w)
    for _ in range(max_iter):
        g, h = grad_hess(w)
        gu, hu = basis.T @ g, basis.T @ h @ basis
        try:
            step = -np.linalg.solve(hu, gu)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(hu, gu, rcond=None)[0]
        t = 1.0
        while t > 1e-12:
            trial = w + t * (basis @ step)
            new = value(trial)
            if new <= current:
                break
            t *= 0.5
        else:
            break
        w, current = trial, new
        if np.max(np.abs(t * step)) <= tol:
            break
        if np.max(np.abs(w)) > 1e6:  # unbounded on the hull: no minimiser in this face
            return None
    return w
