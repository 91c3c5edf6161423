"""Dirichlet calibration and matrix scaling: linear maps of log-probabilities or logits.

* :class:`DirichletCalibration` (Kull et al., 2019): ``q = softmax(W ln p + b)``, with a full
  or a diagonal ``W``, unregularised, L2-regularised or ODIR-regularised (off-diagonal and
  intercept regularisation) with the reference implementation's ``reg_lambda`` / ``reg_mu``.
* :class:`MatrixScaling` (Guo et al., 2017): ``q = softmax(W z + b)`` on the logits, the
  unregularised full map.

Both are fitted by the trust-region Newton method of :mod:`calibkit._softmax_regression`
in float64 (numpy, or torch on a device).
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from scipy.special import softmax

from calibkit._softmax_regression import (
    DiagonalMap,
    FullMap,
    NumpyBackend,
    fit_softmax_map,
)
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

__all__ = ["DirichletCalibration", "MatrixScaling"]

MATRIX_KINDS = ("full", "diagonal")


class DirichletCalibration(Calibrator):
    """Dirichlet calibration: ``q = softmax(W ln p + b)`` (Kull et al., NeurIPS 2019).

    ``p`` are the model's probabilities (the softmax of logits), ``W`` a K x K matrix (full,
    or diagonal) and ``b`` a vector of K intercepts. Binary scores of shape (n,) or (n, 2) are
    the two-class case (``p = [1 - p1, p1]``).

    Parameters
    ----------
    matrix : {"full", "diagonal"}, default="full"
        ``"full"``: every entry of ``W`` is fitted (``"Full"`` in the reference
        implementation); ``"diagonal"``: only its diagonal (``"Diag"``), i.e. vector scaling
        of the log-probabilities.
    reg_lambda : float, default=0.0
        Strength of the penalty on the weights (see Notes).
    reg_mu : float or None, default=None
        ``None``: L2 penalty ``reg_lambda * sum(W^2 + b^2)`` on every weight. A number:
        ODIR, ``reg_lambda * sum_{i != j} W_ij^2 + reg_mu * sum_i b_i^2``.
    reg_norm : bool, default=False
        Divide the strengths as the paper writes them: ``reg_lambda / (K (K - 1))`` and
        ``reg_mu / K`` for ODIR, ``reg_lambda / (K (K + 1))`` for L2.
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are. Logits become ``ln p = log_softmax(z)``; probabilities are
        clipped to ``[PROB_EPS, 1 - PROB_EPS]`` before the logarithm.
    device : {None, "cpu", "cuda"} or torch.device, default=None
        ``None`` fits with numpy (with torch on the tensor's device when the scores are a
        torch tensor on a GPU); a device fits with torch, in float64, on that device.
    max_iter : int, default=200
        Largest number of trust-region Newton iterations.
    tol : float, default=1e-7
        Stop when every component of the gradient of the penalised mean NLL is below ``tol``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_classes, n_classes)
        ``W``.
    intercept_ : ndarray of shape (n_classes,)
        ``b``.
    n_iter_ : int
    converged_ : bool
    classes_ : ndarray of shape (n_classes,)

    Notes
    -----
    The fit minimises, in float64, the weighted mean negative log-likelihood plus the penalty,

    ``L = sum_i s_i [logsumexp(W x_i + b) - (W x_i + b)_{y_i}] / sum_i s_i + penalty``,

    ``x_i = ln p_i``, with the reference implementation's parametrisation
    (``dirichletcal``, ``ref_row=True``): the last class's row of ``[W, b]`` is subtracted
    from every row, which leaves the softmax unchanged and makes the parameters
    identifiable, and the penalty acts on that normalised matrix. For ``"full"`` the last row
    is then 0 and ``(K - 1)(K + 1)`` parameters remain. For ``"diagonal"``, row ``i < K`` is
    ``a_i e_i - a_K e_K`` with intercept ``b_i - b_K``: so, as in the reference
    implementation, ``a_K`` appears ``K - 1`` times off the diagonal, and ODIR and L2 penalise
    it ``K - 1`` times (``coef_`` is stored as ``diag(a)`` with ``b_K = 0``, the same
    probabilities). Same numbers of ``reg_lambda`` / ``reg_mu`` / ``reg_norm`` therefore mean
    the same model as ``dirichletcal.calib.FullDirichletCalibrator`` /
    ``DiagonalDirichletCalibrator`` (whose ``fit`` takes ``ln clip(p, tiny)``). The minimiser
    is a trust-region Newton method with exact Hessian-vector products
    (:func:`calibkit._softmax_regression.fit_softmax_map`), started at the identity map.
    Without regularisation a full ``W`` has ``K^2 - 1`` parameters and overfits small
    calibration sets; ODIR with a cross-validated ``reg_lambda``, ``reg_mu`` is the paper's
    recommendation for many classes.
    """

    _parameter_constraints: ClassVar[dict] = {
        "matrix": [Options(*MATRIX_KINDS)],
        "reg_lambda": [Interval("real", 0, None)],
        "reg_mu": [NONE, Interval("real", 0, None)],
        "reg_norm": [BOOLEAN],
        "device": [NONE, DEVICE],
        "max_iter": [Interval("integer", 1, None)],
        "tol": [Interval("real", 0, None, closed="neither")],
    }
    _fitted_constraints: ClassVar[dict] = {
        "coef_": [Array(2, "f")],
        "intercept_": [Array(1, "f")],
        "n_iter_": [Interval("integer", 0, None)],
        "converged_": [BOOLEAN],
    }

    def _check_own_fitted_state(self) -> None:
        k = max(self.n_features_in_, 2)
        if self.coef_.shape != (k, k) or self.intercept_.shape != (k,):
            raise ValueError(f"coef_ must have shape ({k}, {k}) and intercept_ ({k},).")

    def __init__(self, *, matrix="full", reg_lambda=0.0, reg_mu=None, reg_norm=False,
                 input="auto", device=None, max_iter=200, tol=1e-7):
        self.matrix = matrix
        self.reg_lambda = reg_lambda
        self.reg_mu = reg_mu
        self.reg_norm = reg_norm
        self.input = input
        self.device = device
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, scores, y, *, sample_weight=None):
        """Fit ``W`` and ``b`` on ``scores`` (n,), (n, 2) or (n, K) and labels ``y``.

        Parameters
        ----------
        scores : array-like or torch tensor of shape (n_samples,) or (n_samples, n_classes)
            Calibration scores, as declared by ``input``; 1-D scores are the binary case.
        y : array-like of shape (n_samples,)
            Labels of any type.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample's NLL.

        Returns
        -------
        self : DirichletCalibration
            The fitted calibrator.
        """
        self._torch_scores = scores if is_torch_tensor(scores) else None
        try:
            return super().fit(scores, y, sample_weight=sample_weight)
        finally:
            del self._torch_scores

    def _features(self, scores: Scores) -> np.ndarray:
        return _class_log_probs(scores)

    def _fit(self, scores, targets, sample_weight):
        x = self._features(scores)
        k = x.shape[1]
        lam, mu = float(self.reg_lambda), self.reg_mu
        if self.reg_norm:
            if mu is None:
                lam = lam / (k * (k + 1))
            else:
                lam, mu = lam / (k * (k - 1)), float(mu) / k
        backend = _backend(self.device, self._torch_scores)
        if self.matrix == "full":
            coef_, intercept_, info = fit_full_reference_row(
                backend, x, targets.y, sample_weight, lam, mu, self.max_iter, self.tol)
        else:
            coef_, intercept_, info = _fit_diagonal(
                backend, x, targets.y, sample_weight, lam, mu, self.max_iter, self.tol)
        self.coef_, self.intercept_ = coef_, intercept_
        _set_fit_info(self, info)

    def _predict_proba(self, scores):
        x = self._features(scores)
        if self.matrix == "diagonal":
            return softmax(x * np.diag(self.coef_) + self.intercept_, axis=1)
        return softmax(x @ self.coef_.T + self.intercept_, axis=1)


class MatrixScaling(DirichletCalibration):
    """Matrix scaling: ``q = softmax(W z + b)`` on the logits ``z`` (Guo et al., 2017).

    The unregularised full linear map of the logits, fitted like
    :class:`DirichletCalibration` (``W`` K x K, ``b`` of size K, the last class's row as
    reference). With probabilities as input ``z = ln p`` and this is Dirichlet calibration
    with a full matrix and no regularisation. Binary scores of shape (n,) are the logits
    ``[0, z]``.

    Parameters
    ----------
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are (probabilities become ``ln p``).
    device : {None, "cpu", "cuda"} or torch.device, default=None
        As for :class:`DirichletCalibration`.
    max_iter : int, default=200
        Largest number of trust-region Newton iterations.
    tol : float, default=1e-7
        Stop when every component of the gradient of the mean NLL is below ``tol``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_classes, n_classes)
    intercept_ : ndarray of shape (n_classes,)
    n_iter_ : int
    converged_ : bool

    Notes
    -----
    ``K^2 - 1`` free parameters: with few calibration samples per class the map overfits
    (and on separable data the NLL has no minimiser; the fit then warns); regularised
    alternatives are ODIR :class:`DirichletCalibration` and
    :class:`calibkit.structured.StructuredMatrixScaling`.
    """

    _parameter_constraints: ClassVar[dict] = {
        "device": [NONE, DEVICE],
        "max_iter": [Interval("integer", 1, None)],
        "tol": [Interval("real", 0, None, closed="neither")],
    }

    def __init__(self, *, input="auto", device=None, max_iter=200, tol=1e-7):
        self.input = input
        self.device = device
        self.max_iter = max_iter
        self.tol = tol

    # the parameters DirichletCalibration reads, fixed for matrix scaling
    matrix = "full"
    reg_lambda = 0.0
    reg_mu = None
    reg_norm = False

    def _features(self, scores: Scores) -> np.ndarray:
        return _class_logits(scores)


# --------------------------------------------------------------------------------------
# Shared pieces (also used by calibkit.structured)
# --------------------------------------------------------------------------------------


def _class_logits(scores: Scores) -> np.ndarray:
    """(n, K) logits of the scores: 1-D binary logits are ``[0, z]`` and 1-D probabilities
    ``[ln(1 - p), ln p]``, so that they equal the two-column forms of the same scores."""
    if scores.values.ndim == 1 and scores.kind == "probs":
        p = Scores(scores.values, "probs", scores.name)
        z = p.logits()  # warns on saturated probabilities, as every logit conversion does
        return np.column_stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)])
    z = scores.logits()
    if z.ndim == 1:
        z = np.column_stack([np.zeros_like(z), z])
    return np.asarray(z, dtype=np.float64)


def _class_log_probs(scores: Scores) -> np.ndarray:
    """(n, K) log-probabilities ``log_softmax`` of :func:`_class_logits`."""
    from scipy.special import log_softmax

    return log_softmax(_class_logits(scores), axis=1)


def _backend(device, source):
    """numpy, or torch on the device asked for (or the device of a tensor input)."""
    if device is None and source is None:
        return NumpyBackend()
    from calibkit.torch import SoftmaxRegressionBackend, resolve_device

    dev = resolve_device(device, source)
    return NumpyBackend() if dev is None else SoftmaxRegressionBackend(dev)


def fit_full_reference_row(backend, x, y, sample_weight, lam, mu, max_iter, tol):
    """Full map ``softmax(x W^T + b)`` with the last row of ``[W, b]`` fixed at 0, started
    at ``W = I - 1 e_K^T``, with the L2 (``mu is None``) or ODIR penalty of
    :class:`DirichletCalibration`. Returns ``(W, b, info)``."""
    n, k = x.shape
    model = FullMap(backend, x, free_rows=range(k - 1), base=np.zeros((k, k + 1)))
    start = np.zeros((k - 1, k + 1))
    start[np.arange(k - 1), np.arange(k - 1)] = 1.0
    start[:, k - 1] = -1.0
    coef = np.full((k - 1, k + 1), lam)
    if mu is not None:
        coef[np.arange(k - 1), np.arange(k - 1)] = 0.0
        coef[:, k] = float(mu)
    theta, *info = fit_softmax_map(model, y, sample_weight, coef=coef.ravel(),
                                   centre=np.zeros(coef.size), theta0=start.ravel(),
                                   max_iter=max_iter, tol=tol)
    m = model.matrix(theta)
    return m[:, :k].copy(), m[:, k].copy(), info


def _fit_diagonal(backend, x, y, sample_weight, lam, mu, max_iter, tol):
    n, k = x.shape
    model = DiagonalMap(backend, x, free_bias=range(k - 1), base_scale=0.0)
    coef = np.full(2 * k - 1, lam)
    coef[k - 1] = lam * (k - 1)  # a_K sits in every row of the reference-row matrix
    if mu is not None:
        coef[: k - 1] = 0.0
        coef[k:] = float(mu)
    theta0 = np.concatenate([np.ones(k), np.zeros(k - 1)])
    theta, *info = fit_softmax_map(model, y, sample_weight, coef=coef,
                                   centre=np.zeros(coef.size), theta0=theta0,
                                   max_iter=max_iter, tol=tol)
    a, b = model.scale_bias(theta)
    return np.diag(a), b, info


def _set_fit_info(est, info) -> None:
    n_iter, converged, message = info
    est.n_iter_ = int(n_iter)
    est.converged_ = bool(converged)
    if not converged:
        warnings.warn(
            f"{type(est).__name__} did not converge in {n_iter} Newton iterations ({message}). "
            "Without regularisation the NLL may have no minimiser (separable scores); "
            "regularise or use more calibration data.",
            ConvergenceWarning,
            stacklevel=4,
        )
