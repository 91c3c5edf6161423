"""Parametric scaling calibrators: temperature, Platt (logistic) and vector scaling.

* :class:`TemperatureScaling`: one parameter, ``softmax(z / T)`` (multiclass) or
  ``sigmoid(z / T)`` (binary), fitted by a safeguarded Newton-Halley iteration on ``log T``.
* :class:`PlattScaling`: ``sigmoid(a * z + b)`` on one score, fitted by a 2-D Newton method;
  multiclass scores are calibrated one-vs-rest by :class:`~calibkit.base.BinaryCalibrator`.
* :class:`VectorScaling`: ``softmax(w * z + b)`` with one weight and one bias per class,
  fitted by a trust-region Newton method with the exact Hessian.

Every fit minimises the (weighted) negative log-likelihood in float64 with analytic
derivatives, reports ``n_iter_`` and ``converged_``, and warns with
:class:`~calibkit.base.ConvergenceWarning` when it did not converge.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit, logsumexp, softmax

from calibkit._chunks import chunk_rows, effective_n_jobs
from calibkit._validation import (
    BOOLEAN,
    DEVICE,
    NONE,
    Array,
    Interval,
    Scores,
    frequency_weights,
)
from calibkit.base import BinaryCalibrator, Calibrator, ConvergenceWarning

__all__ = ["TemperatureScaling", "PlattScaling", "VectorScaling"]

#: log T is kept in [-LOG_T_BOUND, LOG_T_BOUND]; reaching a bound means the NLL has no
#: minimiser (separable scores: T -> 0; scores unrelated to the labels: T -> inf).
LOG_T_BOUND = 30.0
#: largest change of log T in one iteration (a factor e**2 on T)
MAX_LOG_T_STEP = 2.0
_SEPARABLE = (
    "the NLL has no minimiser (T -> 0): every sample's label already has the largest score "
    "(or ties for it), so the NLL does not increase as T decreases"
)


class TemperatureScaling(Calibrator):
    """Temperature scaling: divide the logits by one fitted temperature ``T``.

    Multiclass scores (n, K), K >= 3: ``q = softmax(z / T)``. Binary scores of shape (n,)
    (log-odds) or (n, 2): ``q = sigmoid(z / T)`` with ``z`` the positive-class log-odds
    (``z[:, 1] - z[:, 0]`` for two columns); soft targets in [0, 1] are accepted.
    Probabilities (``input="probs"``) are first turned into logits ``log p`` (multiclass) or
    ``log(p / (1 - p))`` (binary).

    Parameters
    ----------
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are; see :func:`calibkit._validation.check_scores`.
    device : {None, "cpu", "cuda"} or torch.device, default=None
        ``None`` fits with numpy (or with torch on the tensor's device when the scores are
        a torch tensor on a GPU). A device fits the multiclass NLL with torch, in float64,
        on that device; torch is imported only then.
    max_iter : int, default=100
        Largest number of passes over the data (each pass gives the NLL and its first three
        derivatives in ``log T``).
    tol : float, default=1e-12
        Convergence tolerance on ``log T`` (equivalently on the relative error of ``T``).
        The iteration stops once the last step, or the step predicted from the observed
        (cubic) rate of convergence, is below ``tol``; the last step is applied. For
        float32 logits a step below the float32 resolution of ``1 / T`` (1.2e-7) also stops.
    n_jobs : int or None, default=None
        Threads of the numpy multiclass fit over row blocks (numpy releases the GIL): 1 is
        one thread, -1 every core; ``None`` takes up to 4 cores for inputs of 2**20 or more
        elements (as numpy's BLAS calls do unasked) and one thread below.

    Attributes
    ----------
    temperature_ : float
        The fitted temperature ``T > 0``; the logits are divided by it.
    n_iter_ : int
        Passes over the full calibration set.
    converged_ : bool
        Whether the stopping rule was met within ``max_iter`` passes.
    classes_ : ndarray of shape (n_classes,)
        Class labels, the columns of :meth:`predict_proba`.

    Notes
    -----
    The fit runs on the logits divided by their scale ``s`` (:func:`logit_scale`: the mean
    over rows of ``max_j z_ij - mean_j z_ij``, or of ``|z_i|`` for binary log-odds), which
    makes it scale-equivariant, ``T(c z) = c T(z)``, and starts it where the softmax is not
    saturated for logits of any magnitude; ``log(T / s)`` is kept within +-30.
    The fit minimises ``L(T) = sum_i w_i [logsumexp(z_i / T) - z_{i, y_i} / T]`` (binary:
    the binary cross-entropy of ``sigmoid(z_i / T)`` against ``y_i`` in [0, 1]) over
    ``theta = log T``. ``L`` is convex in ``beta = 1 / T``, so ``dL/dbeta`` is monotone in
    ``theta`` and has at most one root; Halley's method on it (falling back to Newton,
    and to bisection when a step leaves the bracket) converges cubically. One pass gives
    ``L`` and ``dL/dbeta = sum w (E[z] - z_y)``, ``d2L/dbeta2 = sum w Var[z]`` and the third
    cumulant, with ``E``, ``Var`` under ``softmax(z / T)``. For large inputs the first
    iterations run on a strided subsample of rows; the full data then needs two or three
    passes. float32 logits are kept in float32 for the exponentials (the sums are
    accumulated in float64): the fitted ``T`` then agrees with a float64 fit to about 1e-8.
    """

    _parameter_constraints: ClassVar[dict] = {
        "device": [NONE, DEVICE],
        "max_iter": [Interval("integer", 1, None)],
        "tol": [Interval("real", 0, None, closed="neither")],
        "n_jobs": [NONE, Interval("integer", -1, -1), Interval("integer", 1, None)],
    }
    _fitted_constraints: ClassVar[dict] = {
        "temperature_": [Interval("real", 0, None, closed="neither")],
        "n_iter_": [Interval("integer", 0, None)],
        "converged_": [BOOLEAN],
    }
    _supports_soft_targets = True
    _fit_keeps_float32 = True

    def __init__(self, *, input="auto", device=None, max_iter=100, tol=1e-12, n_jobs=None):
        self.input = input
        self.device = device
        self.max_iter = max_iter
        self.tol = tol
        self.n_jobs = n_jobs

    def _fit(self, scores: Scores, targets, w):
        if scores.n_columns <= 2:
            x = scores.positive().logits().astype(np.float64, copy=False)
            t = targets.y.astype(np.float64, copy=False)
            scale = logit_scale(np.abs(x))
            derivs = _BinaryNLL(x / scale, t, w)
            if derivs.slope_at_zero_temperature() <= 0.0:
                n_iter, converged, theta, status = 0, False, -LOG_T_BOUND, _SEPARABLE
            else:
                n_iter, converged, theta, status = _solve_log_temperature(
                    derivs, 0.0, self.max_iter, self.tol
                )
        else:
            z = scores.logits()
            device = None
            if self.device is not None or self._torch_scores is not None:
                from calibkit.torch import SoftmaxNLLDerivatives, resolve_device

                device = resolve_device(self.device, self._torch_scores)
            if device is not None:
                derivs = SoftmaxNLLDerivatives(z, targets.y, w, device, self._torch_scores)
            else:
                derivs = _SoftmaxNLL(z, targets.y, w, n_jobs=self.n_jobs)
            scale = derivs.scale
            n_iter, converged, theta, status = fit_softmax_log_temperature(
                derivs, self.max_iter, self.tol
            )
        # the fit runs on logits divided by their scale: T = scale * exp(theta) is then
        # equivariant, T(c z) = c T(z), and the iteration starts where the softmax is not
        # saturated whatever the magnitude of the logits
        self.temperature_ = float(scale * math.exp(theta))
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)
        if not converged:
            warnings.warn(
                f"TemperatureScaling did not converge ({status}); temperature_ = "
                f"{self.temperature_:.6g} after {n_iter} iterations.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _predict_proba(self, scores: Scores) -> np.ndarray:
        if scores.n_columns <= 2:
            q = expit(scores.positive().logits() / self.temperature_)
            return np.column_stack([1.0 - q, q])
        z = scores.logits()
        # shift before dividing: z / T can overflow to inf (then inf - inf is NaN), while
        # (z - max) / T only underflows to -inf, whose softmax weight is 0
        return softmax((z - z.max(axis=1, keepdims=True)) / self.temperature_, axis=1)


class PlattScaling(BinaryCalibrator):
    """Platt scaling: logistic regression on one score, ``q = sigmoid(a * z + b)``.

    ``z`` is the positive-class log-odds: the 1-D logit, ``z[:, 1] - z[:, 0]`` for (n, 2)
    logits, or ``log(p / (1 - p))`` for probabilities. Multiclass scores are calibrated
    one-vs-rest on ``logit(p_k)`` and renormalised (see
    :class:`~calibkit.base.BinaryCalibrator`). Soft targets in [0, 1] are accepted.

    Parameters
    ----------
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are.
    target_smoothing : bool, default=False
        Replace the targets by Platt's (1999) regularised targets
        ``t+ = (N+ + 1) / (N+ + 2)`` for positives and ``t- = 1 / (N- + 2)`` for negatives,
        ``N+``, ``N-`` being the numbers of positives and negatives (with weights: their
        weighted sums, weights rescaled to mean 1, so that only their ratios matter); a soft
        target ``y`` becomes ``y * t+ + (1 - y) * t-``. This is what scikit-learn's
        ``CalibratedClassifierCV(method="sigmoid")`` does; it keeps ``a`` finite on
        separable scores.
    max_iter : int, default=100
        Largest number of Newton iterations.
    tol : float, default=1e-10
        Stop when the Newton step is below ``tol * max(1, |a|, |b|)`` (max-norm).

    Attributes
    ----------
    a_ : float
        Slope (binary case; one-vs-rest copies are in ``estimators_``).
    b_ : float
        Intercept.
    n_iter_ : int
        Newton iterations (the largest over the one-vs-rest copies).
    converged_ : bool
        Whether every fit converged.
    estimators_ : list of PlattScaling
        Multiclass only: one fitted binary calibrator per class.

    Notes
    -----
    Minimises ``sum_i w_i [log(1 + exp(eta_i)) - t_i * eta_i]`` with ``eta = a z + b`` by
    Newton's method with the exact gradient and Hessian in float64, started at
    ``a = 0, b = logit(mean t)``, with a backtracking line search on the loss.
    scikit-learn writes the same model as ``1 / (1 + exp(A f + B))``: ``A = -a``,
    ``B = -b``.
    """

    _parameter_constraints: ClassVar[dict] = {
        "target_smoothing": [BOOLEAN],
        "max_iter": [Interval("integer", 1, None)],
        "tol": [Interval("real", 0, None, closed="neither")],
    }
    _fitted_constraints: ClassVar[dict] = {
        "a_": [Interval("real")],
        "b_": [Interval("real")],
        "n_iter_": [Interval("integer", 0, None)],
        "converged_": [BOOLEAN],
    }

    def __init__(self, *, input="auto", target_smoothing=False, max_iter=100, tol=1e-10):
        self.input = input
        self.target_smoothing = target_smoothing
        self.max_iter = max_iter
        self.tol = tol

    def _fit_binary(self, s: Scores, y: np.ndarray, w) -> None:
        x = s.logits().astype(np.float64, copy=False)
        t = y.astype(np.float64, copy=False)
        if self.target_smoothing:
            t = _platt_targets(t, w)
        mean_t = t.mean() if w is None else _dot(w, t) / w.sum()
        mean_t = float(np.clip(mean_t, 1e-12, 1 - 1e-12))
        (a, b), n_iter, converged = fit_logistic_newton(
            x[:, None], t, w,
            np.array([0.0, math.log(mean_t / (1.0 - mean_t))]), self.max_iter, self.tol,
        )
        self.a_, self.b_ = float(a), float(b)
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)
        if not converged:
            warnings.warn(
                f"PlattScaling did not converge in {n_iter} Newton iterations (a_ = {a:.6g}, "
                f"b_ = {b:.6g}). Separable scores drive a_ to infinity; use "
                "target_smoothing=True or more data.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _predict_binary(self, s: Scores) -> np.ndarray:
        return expit(self.a_ * s.logits() + self.b_)


class VectorScaling(Calibrator):
    """Vector scaling: ``q = softmax(w * z + b)`` with one weight and one bias per class.

    Needs scores with one column per class, shape (n, K) with K >= 2; 1-D binary scores
    are rejected (use :class:`PlattScaling`, which is the same model for one score).
    Probabilities are turned into logits ``log p`` first.

    Parameters
    ----------
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are.
    max_iter : int, default=200
        Largest number of trust-region Newton iterations.
    tol : float, default=1e-10
        The fit stops when every component of the gradient of the mean NLL is below ``tol``.

    Attributes
    ----------
    w_ : ndarray of shape (n_classes,)
        Per-class weights (1 = unchanged).
    b_ : ndarray of shape (n_classes,)
        Per-class biases, centred to sum to 0 (a common shift does not change softmax).
    n_iter_ : int
        Newton iterations.
    converged_ : bool
        Whether the fit met its tolerance (or stopped at machine precision with a gradient
        below ``max(tol, 1e-6)``).

    Notes
    -----
    Minimises the mean weighted NLL ``sum_i w_i [logsumexp(w * z_i + b) - w_y z_{i,y} - b_y]
    / sum_i w_i`` in float64, on the logits divided by their scale (:func:`logit_scale`, so
    the fit is the same for logits of any magnitude; ``w_`` is reported for the raw logits),
    with ``scipy.optimize.minimize(method="trust-exact")``, the exact Hessian and the
    analytic gradient ``d/dw_k = sum_i w_i (q_ik - 1[y_i = k]) z_ik``,
    ``d/db_k = sum_i w_i (q_ik - 1[y_i = k])``, starting from ``w = 1``, ``b = 0``.
    """

    _parameter_constraints: ClassVar[dict] = {
        "max_iter": [Interval("integer", 1, None)],
        "tol": [Interval("real", 0, None, closed="neither")],
    }
    _fitted_constraints: ClassVar[dict] = {
        "w_": [Array(1, "f")],
        "b_": [Array(1, "f")],
        "n_iter_": [Interval("integer", 0, None)],
        "converged_": [BOOLEAN],
    }

    def __init__(self, *, input="auto", max_iter=200, tol=1e-10):
        self.input = input
        self.max_iter = max_iter
        self.tol = tol

    def _fit(self, scores: Scores, targets, sample_weight):
        if scores.values.ndim == 1:
            raise ValueError(
                "VectorScaling needs scores with one column per class, shape (n, K) with "
                "K >= 2; got 1-D binary scores (n_features = 1). Use PlattScaling for one "
                "score per sample, or pass two columns."
            )
        z = scores.logits().astype(np.float64, copy=False)
        n, k = z.shape
        # fit on logits divided by their scale (the weights scale back exactly): the
        # Hessian is then well conditioned for logits of any magnitude
        scale = logit_scale(z.max(axis=1) - z.mean(axis=1))
        z = z / scale
        y = targets.y
        sw = np.ones(n) if sample_weight is None else sample_weight
        sw = sw / sw.sum()
        rows = np.arange(n)

        def probs(params):
            a = z * params[:k] + params[k:]
            lse = logsumexp(a, axis=1)
            return a, lse, np.exp(a - lse[:, None])

        def loss_grad(params):
            a, lse, q = probs(params)
            loss = _dot(sw, lse - a[rows, y])
            q[rows, y] -= 1.0
            q *= sw[:, None]
            return loss, np.concatenate([np.einsum("ij,ij->j", q, z), q.sum(axis=0)])

        def hessian(params):
            # d2L/da_ij da_ik = sw_i (q_ij 1[j=k] - q_ij q_ik), with da_k/dw_k = z_k, da_k/db_k = 1
            q = probs(params)[2]
            qz = q * z
            qs, qzs = q * sw[:, None], qz * sw[:, None]
            h_ww = np.diag((qzs * z).sum(axis=0)) - qzs.T @ qz
            h_wb = np.diag(qzs.sum(axis=0)) - qzs.T @ q
            h_bb = np.diag(qs.sum(axis=0)) - qs.T @ q
            return np.block([[h_ww, h_wb], [h_wb.T, h_bb]])

        x0 = np.concatenate([np.ones(k), np.zeros(k)])
        # a trust-region Newton method with the exact Hessian: (2K)^2 entries are cheap next
        # to the n x K passes, and it needs ~10 iterations where L-BFGS needs hundreds
        res = minimize(
            loss_grad,
            x0,
            method="trust-exact",
            jac=True,
            hess=hessian,
            options={"maxiter": self.max_iter, "gtol": self.tol},
        )
        grad_max = float(np.max(np.abs(loss_grad(res.x)[1])))
        # the trust region also stops when the model cannot predict an improvement at
        # machine precision; accept that when the gradient is small.
        converged = bool(res.success) or grad_max <= max(self.tol, 1e-6)
        self.w_ = res.x[:k] / scale
        self.b_ = res.x[k:] - res.x[k:].mean()
        self.n_iter_ = int(res.nit)
        self.converged_ = converged
        if not converged:
            warnings.warn(
                f"VectorScaling did not converge in {res.nit} Newton iterations "
                f"(max |gradient| {grad_max:.3g}; {res.message}).",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _predict_proba(self, scores: Scores) -> np.ndarray:
        return softmax(scores.logits() * self.w_ + self.b_, axis=1)

    def _check_own_fitted_state(self) -> None:
        if not (len(self.w_) == len(self.b_) == self.n_features_in_ >= 2):
            raise ValueError("w_ and b_ need one entry per score column.")


# --------------------------------------------------------------------------------------
# Temperature: one-dimensional root finding on dL/dbeta in theta = log T
# --------------------------------------------------------------------------------------


def logit_scale(spread: np.ndarray) -> float:
    """The scale of a set of logits: the mean of ``spread`` (per row: ``max_j z - mean_j z``
    for softmax logits, ``|z|`` for binary log-odds) in float64, or 1 when that is 0 (every
    row constant: the NLL does not depend on T) or not finite.

    Temperature scaling fits ``T / scale``, so that ``T`` is equivariant to the scale of the
    logits and the iteration never starts in saturation.
    """
    s = float(np.mean(spread, dtype=np.float64))
    return s if (s > 0.0 and math.isfinite(s)) else 1.0


def fit_softmax_log_temperature(derivs, max_iter: int, tol: float):
    """log T minimising a multiclass NLL given by ``derivs`` (numpy or torch evaluator).

    Separable scores (every label already the arg-max) have no minimiser and return at
    once; large inputs start from log T fitted on a strided subsample of rows, so that the
    full data then need 2-3 passes. Closes ``derivs``. Returns
    ``(n_iter, converged, theta, status)`` as :func:`_solve_log_temperature`.
    """
    try:
        if derivs.slope_at_zero_temperature() <= 0.0:
            return 0, False, -LOG_T_BOUND, _SEPARABLE
        theta0 = 0.0
        sub = derivs.subsample()
        if sub is not None:
            try:
                theta0 = _solve_log_temperature(sub, 0.0, max_iter, 1e-6)[2]
            finally:
                sub.close()
        return _solve_log_temperature(derivs, theta0, max_iter, tol)
    finally:
        derivs.close()


def _solve_log_temperature(derivs, theta0: float, max_iter: int, tol: float):
    """Safeguarded Halley iteration on ``h(theta) = dL/dbeta`` with ``beta = exp(-theta)``.

    ``derivs(beta)`` returns ``(beta_used, L1, L2, L3)``: the first three derivatives of
    the NLL in ``beta`` at ``beta_used`` (which may be ``beta`` rounded to float32).
    ``h`` is decreasing in ``theta`` (``dh/dtheta = -beta L2 <= 0``), so the root is
    bracketed by every evaluation. A step below ``derivs.resolution`` (float32: 2**-23) also
    stops: re-evaluating would round to the same ``beta``. Returns
    ``(n_iter, converged, theta, status)``.
    """
    theta = float(np.clip(theta0, -LOG_T_BOUND, LOG_T_BOUND))
    # float32 evaluations round beta to float32: a smaller step cannot be evaluated
    resolution = getattr(derivs, "resolution", 0.0)
    lo, hi = -LOG_T_BOUND, LOG_T_BOUND  # h > 0 left of the root, h < 0 right of it
    prev_step = None
    status = "max_iter reached"
    for it in range(1, max_iter + 1):
        beta_used, l1, l2, l3 = derivs(math.exp(-theta))
        theta = -math.log(beta_used)
        if l1 == 0.0:
            return it, True, theta, "zero gradient"
        if l1 > 0:
            lo = theta
        else:
            hi = theta
        if not l2 > 0.0:
            return it, False, theta, "the NLL does not depend on T (constant logits per row)"
        dh = -beta_used * l2
        d2h = beta_used * l2 + beta_used**2 * l3
        newton = -l1 / dh
        denom = 1.0 - l1 * d2h / (2.0 * dh * dh)
        halley = 0.5 <= denom <= 2.0
        step = newton / denom if halley else newton
        step = float(np.clip(step, -MAX_LOG_T_STEP, MAX_LOG_T_STEP))
        new = theta + step
        if not lo < new < hi:
            at_bound = abs(theta) >= LOG_T_BOUND - 1e-6  # float32 may round beta
            if at_bound and (l1 > 0) == (theta > 0):
                why = "T -> infinity" if l1 > 0 else "T -> 0: the scores separate the classes"
                return it, False, theta, f"the NLL has no minimiser ({why})"
            if new >= hi == LOG_T_BOUND or new <= lo == -LOG_T_BOUND:
                new = float(np.clip(new, -LOG_T_BOUND, LOG_T_BOUND))  # try the bound itself
            else:
                new = 0.5 * (lo + hi)  # bisection inside a bracket that Newton left
            step = new - theta
            halley = False
        size = abs(step)
        if size <= max(tol, resolution):
            return it, True, new, "step below tol"
        if prev_step is not None and size <= 1e-3 and size < prev_step:
            # error left after this step, from the observed rate (cubic for Halley)
            predicted = size**4 / prev_step**3 if halley else size**3 / prev_step**2
            if predicted <= tol:
                return it, True, new, "predicted error below tol"
        prev_step = size
        theta = new
    return max_iter, False, theta, status


class _BinaryNLL:
    """Derivatives in beta of ``sum w [log(1 + exp(beta x)) - t beta x]`` (float64)."""

    def __init__(self, x, t, w):
        self.x, self.t = x, t
        self.w = np.ones_like(x) if w is None else w

    def slope_at_zero_temperature(self):
        """``lim dL/dbeta`` as ``beta -> inf``; <= 0 means the NLL decreases as T -> 0."""
        step = np.sign(self.x) * 0.5 + 0.5
        return _dot(self.w * self.x, step - self.t)

    def __call__(self, beta):
        s = expit(beta * self.x)
        v = s * (1.0 - s)
        wx = self.w * self.x
        return (
            beta,
            _dot(wx, s - self.t),
            _dot(wx * self.x, v),
            _dot(wx * self.x * self.x, v * (1.0 - 2.0 * s)),
        )


class _SoftmaxNLL:
    """Derivatives in beta of ``sum_i w_i [logsumexp(beta u_i) - beta u_{i,y_i}]`` for the
    logits ``u = z / scale`` (:func:`logit_scale`), so ``beta`` is in units of ``1 / scale``.

    One pass over row chunks that stay in cache: ``e = exp(b (z - max_j z))`` with
    ``b = beta / scale`` in the dtype of ``z`` (float32 logits stay float32), the row sums of
    ``e``, ``e z`` in float64 and of ``e z**2``, ``e z**3`` in the input dtype, then per-row
    cumulants in float64, divided by ``scale``, ``scale**2`` and ``scale**3``: the scale
    costs no elementwise work. When those raw moments overflow (logits near the top of the
    dtype's range), the chunks are divided by ``scale`` first. ``n_jobs`` threads share the
    row blocks (numpy releases the GIL).
    """

    def __init__(self, z, y, w, *, n_jobs=None, scale=None):
        self.z = z
        n, k = z.shape
        self.resolution = float(np.finfo(z.dtype).eps) if z.dtype == np.float32 else 0.0
        self.m = z.max(axis=1)
        if scale is None:  # an equivariant statistic; strided rows of large inputs suffice
            step = 16 if n >= 8 * 1024 else 1
            spread = self.m[::step].astype(np.float64) - z[::step].mean(axis=1, dtype=np.float64)
            scale = logit_scale(spread)
        self.scale = scale
        zy = z[np.arange(n), y]
        with np.errstate(over="ignore", invalid="ignore"):
            self.zy = (zy.astype(np.float64) - self.m) / scale
        self._prescale = not np.all(np.isfinite(self.zy))
        if self._prescale:
            self._use_prescaled()
        self.w = w
        # three buffers of the input dtype: 131 rows of 1,000 classes in float32 or float64
        self.rows = chunk_rows(k * 8)
        threads = effective_n_jobs(n_jobs, size=z.size)
        self.n_threads = max(1, min(threads, n // self.rows or 1))
        self._pool = ThreadPoolExecutor(self.n_threads) if self.n_threads > 1 else None
        self._n_jobs = n_jobs
        self._y = y

    def _use_prescaled(self):
        """Divide each chunk by ``scale`` before subtracting the (scaled) row maximum: slower,
        but finite where ``z - max_j z`` or its cube would overflow."""
        z, n = self.z, self.z.shape[0]
        self._prescale = True
        self._inv = z.dtype.type(1.0 / self.scale)
        self._m_scaled = self.m * self._inv
        zy = z[np.arange(n), self._y] * self._inv
        self.zy = zy.astype(np.float64) - self._m_scaled

    def slope_at_zero_temperature(self):
        """``lim dL/dbeta = sum w (max_j u - u_y)`` as ``beta -> inf``."""
        return float(-self.zy.sum()) if self.w is None else -_dot(self.w, self.zy)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def subsample(self):
        """The same problem on every ``step``-th row (about 1/16 of the data), or None."""
        n = self.z.shape[0]
        step = 16
        if n < 8 * 1024:
            return None
        idx = np.arange(0, n, step)
        w = None if self.w is None else self.w[idx]
        return _SoftmaxNLL(self.z[idx], self._y[idx], w, n_jobs=self._n_jobs, scale=self.scale)

    def __call__(self, beta):
        dtype = self.z.dtype
        if self._prescale:
            b = dtype.type(beta)
            beta_used = float(b)
        else:
            b = dtype.type(beta / self.scale)
            beta_used = float(b) * self.scale
        l1, l2, l3 = self._derivatives(b)
        if not self._prescale and not (np.isfinite(l1) and np.isfinite(l2) and np.isfinite(l3)):
            self._use_prescaled()
            return self(beta)
        return beta_used, l1, l2, l3

    def _derivatives(self, b):
        n = self.z.shape[0]
        bounds = np.linspace(0, n, self.n_threads + 1).astype(int)
        with np.errstate(over="ignore", invalid="ignore"):
            if self._pool is None:
                parts = [self._block(b, 0, n)]
            else:
                futures = [self._pool.submit(self._block, b, lo, hi)
                           for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
                parts = [f.result() for f in futures]
        l1, l2, l3 = np.sum(parts, axis=0)
        return float(l1), float(l2), float(l3)

    def _block(self, b, lo, hi):
        z, zy, w = self.z, self.zy, self.w
        pre = self._prescale
        m = self._m_scaled if pre else self.m
        # raw moments are in units of z: divide by scale, scale**2, scale**3
        s1 = 1.0 if pre else 1.0 / self.scale
        k = z.shape[1]
        rows = self.rows
        zc_buf = np.empty((rows, k), z.dtype)
        e_buf = np.empty((rows, k), z.dtype)
        u_buf = np.empty((rows, k), z.dtype)
        acc = np.zeros(3)
        for s in range(lo, hi, rows):
            t = min(s + rows, hi)
            r = t - s
            zc, e, u = zc_buf[:r], e_buf[:r], u_buf[:r]
            if pre:
                np.multiply(z[s:t], self._inv, out=zc)
                np.subtract(zc, m[s:t, None], out=zc)
            else:
                np.subtract(z[s:t], m[s:t, None], out=zc)
            np.multiply(zc, b, out=e)
            np.exp(e, out=e)
            s0 = e.sum(axis=1).astype(np.float64)
            np.multiply(e, zc, out=u)
            m1 = u.sum(axis=1).astype(np.float64) / s0 * s1
            m2 = np.einsum("ij,ij->i", u, zc).astype(np.float64) / s0 * (s1 * s1)
            np.multiply(u, zc, out=u)
            m3 = np.einsum("ij,ij->i", u, zc).astype(np.float64) / s0 * (s1 * s1 * s1)
            var = m2 - m1 * m1
            k3 = m3 - 3.0 * m1 * m2 + 2.0 * m1**3
            g = m1 - zy[s:t]
            if w is None:
                acc += (g.sum(), var.sum(), k3.sum())
            else:
                ws = w[s:t]
                acc += (_dot(ws, g), _dot(ws, var), _dot(ws, k3))
        return acc


# --------------------------------------------------------------------------------------
# Platt: two-parameter logistic regression by Newton's method
# --------------------------------------------------------------------------------------


def _platt_targets(t, w):
    """Platt's regularised targets: positives -> (N+ + 1)/(N+ + 2), negatives -> 1/(N- + 2).

    ``N+`` and ``N-`` are counted in samples: with weights, ``sum w t`` and ``sum w (1 - t)``
    for weights rescaled to mean 1 over the samples of positive weight, so that ``w`` and
    ``c * w`` give the same targets (scikit-learn counts the raw weighted sums, which agree
    when the weights have mean 1).
    """
    if w is None:
        n_pos, n_neg = float(t.sum()), float((1.0 - t).sum())
    else:
        ww = frequency_weights(w)
        n_pos, n_neg = _dot(ww, t), _dot(ww, 1.0 - t)
    return t * ((n_pos + 1.0) / (n_pos + 2.0)) + (1.0 - t) * (1.0 / (n_neg + 2.0))


def fit_logistic_newton(features, t, w, theta0, max_iter, tol, *, intercept=True):
    """Weighted logistic regression with soft targets by damped Newton, in float64: the one
    solver of Platt scaling and beta calibration.

    Minimises ``L(theta) = sum_i w_i [log(1 + exp(eta_i)) - t_i eta_i]`` with
    ``eta = features @ theta[:d]`` (plus ``theta[d]`` with an intercept), written
    ``-log_expit(eta) + (1 - t) eta``, stable for any ``eta``; gradient ``X^T (w (q - t))``,
    Hessian ``X^T diag(w q (1 - q)) X`` with ``q = sigmoid(eta)``. Each Newton step is damped
    by backtracking (Armijo) on ``L``; a singular Hessian falls back to its pseudo-inverse.

    Parameters
    ----------
    features : ndarray of shape (n, d)
        Features (the intercept is not a column: see ``intercept``).
    t : ndarray of shape (n,)
        Targets in [0, 1].
    w : ndarray of shape (n,) or None
        Sample weights.
    theta0 : ndarray of shape (d,) or (d + 1,)
        Start (the intercept last).
    max_iter : int
    tol : float
        Stop when a step (after damping) is below ``tol * max(1, max |theta|)`` (max-norm).
    intercept : bool, default=True
        Fit an intercept (the last parameter).

    Returns
    -------
    theta : ndarray of shape (d,) or (d + 1,)
    n_iter : int
    converged : bool
        False when ``max_iter`` was reached (separable data drive ``theta`` to infinity).
    """
    ww = np.ones(len(t)) if w is None else w
    w_neg = ww * (1.0 - t)
    params = np.asarray(theta0, dtype=np.float64).copy()
    # contiguous columns: d is 1 to 3, and dot products of contiguous vectors are several
    # times faster than products with an (n, d) matrix
    cols = [np.ascontiguousarray(features[:, j], dtype=np.float64)
            for j in range(features.shape[1])]
    d = len(cols)

    def eta_of(p):
        eta = np.full(len(t), p[d]) if intercept else np.zeros(len(t))
        for j in range(d):
            eta += cols[j] * p[j]
        return eta

    def loss(p):
        eta = eta_of(p)
        log_q = log_expit(eta)
        return _dot(w_neg, eta) - _dot(ww, log_q), log_q

    def small(step):
        return np.max(np.abs(step)) <= tol * max(1.0, np.max(np.abs(params)))

    current, log_q = loss(params)
    for it in range(1, max_iter + 1):
        q = np.exp(log_q)
        r = ww * (q - t)
        v = ww * q * (1.0 - q)
        vc = [v * c for c in cols]
        grad = [_dot(r, c) for c in cols]
        hess = [[_dot(vc[i], cols[j]) for j in range(d)] for i in range(d)]
        if intercept:  # the column of ones, without materialising it
            grad.append(float(r.sum()))
            side = [float(a.sum()) for a in vc]
            hess = [row + [side[i]] for i, row in enumerate(hess)] + [side + [float(v.sum())]]
        grad, hess = np.array(grad), np.array(hess)
        try:
            step = -np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = -np.linalg.pinv(hess) @ grad
        if not np.all(np.isfinite(step)):
            step = -np.linalg.pinv(hess) @ grad
        # backtracking: Newton is exact for a quadratic, the logistic loss needs damping
        # only far from the optimum (e.g. after a poor start on badly scaled scores). Near
        # the optimum the predicted decrease falls below the rounding of the loss, where a
        # line search cannot see progress: the full Newton step is taken there.
        alpha = 1.0
        resolved = -float(grad @ step) > 1e-13 * max(1.0, abs(current))
        for _ in range(60):
            trial = params + alpha * step
            new, trial_log_q = loss(trial)
            if (not resolved or new <= current + 1e-4 * alpha * float(grad @ step)
                    or small(alpha * step)):
                break
            alpha *= 0.5
        params, current, log_q = trial, new, trial_log_q
        if small(alpha * step):
            return params, it, True
    return params, max_iter, False


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _dot(a, b) -> float:
    """Dot product of two 1-D arrays without BLAS: a threaded ``ddot`` is much slower
    than this single pass when the cores are busy."""
    return float(np.einsum("i,i->", a, b))
