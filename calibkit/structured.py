"""Structured vector and matrix scaling (Berta, Holzmüller, Jordan & Bach, AISTATS 2026).

Both first apply temperature scaling and mix the result with the uniform distribution
(weight ``e = 1 / (n + 1)``, ``n`` calibration samples), then fit a ridge-regularised linear
map of the log of that, ``x = log((1 - e) softmax(z / T) + e / K)``:

* :class:`StructuredVectorScaling` (SVS): ``q = softmax((1 + v) * x + b)``;
* :class:`StructuredMatrixScaling` (SMS): ``q = softmax((I + D) x + b)`` with a full ``D``.

These are the ``svs`` and ``sms`` calibrators of the ``probmetrics`` package (its ``"bfgs"``
optimiser, ridge penalty), fitted here by the trust-region Newton method of
:mod:`calibkit._softmax_regression` in float64.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from scipy.special import log_softmax, softmax

from calibkit._softmax_regression import DiagonalMap, FullMap, fit_softmax_map
from calibkit._validation import BOOLEAN, DEVICE, NONE, Array, Interval, Scores
from calibkit.base import Calibrator, ConvergenceWarning

__all__ = ["StructuredVectorScaling", "StructuredMatrixScaling"]


class _Structured(Calibrator):
    """Temperature scaling, then a ridge-regularised map of
    ``x = log((1 - e) softmax(z / T) + e / K)`` with ``e = 1 / (n + 1)``."""

    _parameter_constraints: ClassVar[dict] = {
        "lambda_intercept": [Interval("real", 0, None)],
        "lambda_diagonal": [Interval("real", 0, None)],
        "rho": [Interval("real", None, None)],
        "tau": [Interval("real", None, None)],
        "device": [NONE, DEVICE],
        "max_iter": [Interval("integer", 1, None)],
        "tol": [Interval("real", 0, None, closed="neither")],
    }
    _fitted_constraints: ClassVar[dict] = {
        "temperature_": [Interval("real", 0, None, closed="neither")],
        "mixture_weight_": [Interval("real", 0, 1)],
        "scale_": [Array(1, "f")],
        "coef_": [Array(2, "f")],
        "intercept_": [Array(1, "f")],
        "n_iter_": [Interval("integer", 0, None)],
        "converged_": [BOOLEAN],
    }

    def _check_own_fitted_state(self) -> None:
        k = max(self.n_features_in_, 2)
        shapes = {"scale_": (k,), "coef_": (k, k), "intercept_": (k,)}
        for name, shape in shapes.items():
            if hasattr(self, name) and getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}.")

    def _fit(self, scores: Scores, targets, sample_weight):
        from calibkit.dirichlet import _backend, _class_logits
        from calibkit.scaling import TemperatureScaling

        z = _class_logits(scores)
        n, k = z.shape
        ts = TemperatureScaling(input="logits", device=self.device)
        ts._torch_scores = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ts._fit(Scores(z, "logits"), targets, sample_weight)
        self.temperature_ = float(ts.temperature_)
        # weights count samples (mean 1): the mixture and the penalty depend on n, and only
        # the ratios of the weights matter
        n_eff = float(n if sample_weight is None else np.count_nonzero(sample_weight))
        self.mixture_weight_ = 1.0 / (n_eff + 1.0)
        x = self._features(Scores(z, "logits"))
        scale = k ** self.rho / n_eff ** self.tau
        backend = _backend(self.device, self._torch_scores)
        theta, *info = self._fit_map(backend, x, targets.y, sample_weight, scale, k)
        self.n_iter_, self.converged_ = int(info[0]), bool(info[1])
        if not self.converged_:
            warnings.warn(f"{type(self).__name__} did not converge ({info[2]}).",
                          ConvergenceWarning, stacklevel=3)
        self._store(theta, k)

    def _features(self, scores):
        """``log((1 - e) softmax(z / T) + e / K)``, ``e = mixture_weight_``."""
        from calibkit.dirichlet import _class_logits

        log_p = log_softmax(_class_logits(scores) / self.temperature_, axis=1)
        e = self.mixture_weight_
        k = log_p.shape[1]
        # log of the mixture with the uniform distribution, without underflow of p
        return np.logaddexp(np.log1p(-e) + log_p, np.log(e / k))


class StructuredVectorScaling(_Structured):
    """Structured vector scaling (SVS): temperature scaling, then
    ``q = softmax((1 + v) * x + b)`` with ``x = log((1 - e) softmax(z / T) + e / K)``,
    ``e = 1 / (n + 1)``, and a ridge penalty.

    Parameters
    ----------
    lambda_intercept : float, default=1.0
        Penalty ``lambda_intercept * K^rho / n^tau * sum_k b_k^2``.
    lambda_diagonal : float, default=1.0
        Penalty ``lambda_diagonal * K^rho / n^tau * sum_k v_k^2``.
    rho, tau : float, default=1.0
        Exponents of the number of classes ``K`` and of the number of samples ``n`` (the number
        of samples with non-zero ``sample_weight`` when given: weights only set the samples'
        relative importance) in the penalty strengths.
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are.
    device : {None, "cpu", "cuda"} or torch.device, default=None
        ``None`` fits with numpy; a device fits with torch, float64, on that device.
    max_iter : int, default=200
        Largest number of trust-region Newton iterations.
    tol : float, default=1e-7
        Stop when every gradient component of the penalised mean NLL is below ``tol``.

    Attributes
    ----------
    temperature_ : float
        ``T`` of the first stage (maximum likelihood, unpenalised).
    mixture_weight_ : float
        ``e = 1 / (n + 1)``, the weight of the uniform distribution in ``x``.
    scale_ : ndarray of shape (n_classes,)
        ``1 + v``.
    intercept_ : ndarray of shape (n_classes,)
        ``b``.
    n_iter_ : int
    converged_ : bool

    Notes
    -----
    The second stage minimises ``mean_i s_i NLL_i + r_b ||b||^2 + r_v ||v||^2`` (weighted mean,
    ``r = lambda K^rho / n^tau``), as ``probmetrics.calibrators.SVSCalibrator`` with its
    defaults (``penalty="ridge"``, ``opt="bfgs"``; its first stage is the ``"ts-mix"``
    calibrator: temperature scaling mixed with the uniform distribution), which optimises in
    float32.
    """

    def __init__(self, *, lambda_intercept=1.0, lambda_diagonal=1.0, rho=1.0, tau=1.0,
                 input="auto", device=None, max_iter=200, tol=1e-7):
        self.lambda_intercept = lambda_intercept
        self.lambda_diagonal = lambda_diagonal
        self.rho = rho
        self.tau = tau
        self.input = input
        self.device = device
        self.max_iter = max_iter
        self.tol = tol

    def _fit_map(self, backend, x, y, w, scale, k):
        model = DiagonalMap(backend, x, free_bias=range(k), base_scale=1.0)
        coef = np.concatenate([np.full(k, self.lambda_diagonal * scale),
                               np.full(k, self.lambda_intercept * scale)])
        return fit_softmax_map(model, y, w, coef=coef, centre=np.zeros(2 * k),
                               theta0=np.zeros(2 * k), max_iter=self.max_iter, tol=self.tol)

    def _store(self, theta, k):
        self.scale_ = 1.0 + theta[:k]
        self.intercept_ = theta[k:].copy()

    def _predict_proba(self, scores):
        return softmax(self._features(scores) * self.scale_ + self.intercept_, axis=1)


class StructuredMatrixScaling(_Structured):
    """Structured matrix scaling (SMS): temperature scaling, then
    ``q = softmax((I + D) x + b)`` with ``x`` as in :class:`StructuredVectorScaling`, a full
    ``D`` and a ridge
    penalty that treats its diagonal and off-diagonal entries separately.

    Parameters
    ----------
    lambda_intercept : float, default=1.0
        Penalty ``lambda_intercept * K^rho / n^tau * sum_k b_k^2``.
    lambda_diagonal : float, default=1.0
        Penalty ``lambda_diagonal * K^rho / n^tau * sum_k D_kk^2``.
    lambda_off_diagonal : float, default=1.0
        Penalty ``lambda_off_diagonal * (K (K - 1))^rho / n^tau * sum_{j != k} D_jk^2``.
    rho, tau : float, default=1.0
        Exponents in the penalty strengths (``n``: the number of samples
        with non-zero ``sample_weight`` when given).
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
    device : {None, "cpu", "cuda"} or torch.device, default=None
    max_iter : int, default=200
    tol : float, default=1e-7

    Attributes
    ----------
    temperature_ : float
    mixture_weight_ : float
    coef_ : ndarray of shape (n_classes, n_classes)
        ``I + D``.
    intercept_ : ndarray of shape (n_classes,)
    n_iter_ : int
    converged_ : bool

    Notes
    -----
    As ``probmetrics.calibrators.SMSCalibrator`` with its defaults (``penalty="ridge"``,
    ``opt="bfgs"``). ``K (K + 1)`` parameters: each Hessian-vector product of the fit costs
    two n x K x (K + 1) matrix products.
    """

    _parameter_constraints: ClassVar[dict] = {
        "lambda_off_diagonal": [Interval("real", 0, None)],
    }

    def __init__(self, *, lambda_intercept=1.0, lambda_diagonal=1.0, lambda_off_diagonal=1.0,
                 rho=1.0, tau=1.0, input="auto", device=None, max_iter=200, tol=1e-7):
        self.lambda_intercept = lambda_intercept
        self.lambda_diagonal = lambda_diagonal
        self.lambda_off_diagonal = lambda_off_diagonal
        self.rho = rho
        self.tau = tau
        self.input = input
        self.device = device
        self.max_iter = max_iter
        self.tol = tol

    def _fit_map(self, backend, x, y, w, scale, k):
        base = np.hstack([np.eye(k), np.zeros((k, 1))])
        model = FullMap(backend, x, free_rows=range(k), base=base)
        n_eff_scale = scale / k ** self.rho  # 1 / n^tau
        coef = np.full((k, k + 1), self.lambda_off_diagonal * (k * (k - 1)) ** self.rho
                       * n_eff_scale)
        coef[np.arange(k), np.arange(k)] = self.lambda_diagonal * scale
        coef[:, k] = self.lambda_intercept * scale
        self._model = model
        out = fit_softmax_map(model, y, w, coef=coef.ravel(), centre=np.zeros(coef.size),
                              theta0=np.zeros(coef.size), max_iter=self.max_iter,
                              tol=self.tol)
        return out

    def _store(self, theta, k):
        m = self._model.matrix(theta)
        del self._model
        self.coef_ = m[:, :k].copy()
        self.intercept_ = m[:, k].copy()

    def _predict_proba(self, scores):
        return softmax(self._features(scores) @ self.coef_.T + self.intercept_, axis=1)

