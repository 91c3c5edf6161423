"""The one solver of penalised multinomial logistic maps of scores (the linear scaling family).

Dirichlet calibration, matrix scaling and structured vector / matrix scaling all fit

    q_i = softmax(z_i(theta)),  z_i(theta) = Z0_i + J(theta)_i  (linear in theta)

by minimising, in float64,

    L(theta) = sum_i s_i [logsumexp(z_i) - z_{i, y_i}] / sum_i s_i + sum_j c_j (theta_j - t_j)^2

(the weighted mean negative log-likelihood plus a diagonal quadratic penalty with
coefficients ``c`` and centre ``t``). A map (:class:`FullMap`, :class:`DiagonalMap`) gives
``Z0``, the directional derivative ``J(v)`` (an n x K matrix) and its adjoint ``J^T(R)``.
The gradient is ``J^T(s (Q - Y) / S) + 2 c (theta - t)`` and the Hessian-vector product

    H v = J^T(s [Q * D - Q * rowsum(Q * D)] / S) + 2 c v,  D = J(v),

so the fit is a trust-region Newton method with exact Hessian-vector products
(``scipy.optimize.minimize(method="trust-krylov")``, whose Lanczos subproblem solver is
exact on small problems): a second-order method for any number of parameters, at the cost
of one n x K x (K + 1) product per Hessian-vector product for a full matrix.

The n x K work runs in numpy (:class:`NumpyBackend`) or, on a torch device, in torch
(``calibkit.torch.SoftmaxRegressionBackend``, the same operations); the
optimiser itself runs on the host on the parameter vector (K (K + 1) floats at most).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

__all__ = ["FullMap", "DiagonalMap", "fit_softmax_map", "NumpyBackend"]


class NumpyBackend:
    """Array operations of the solver in numpy (float64)."""

    def asarray(self, x):
        return np.asarray(x, dtype=np.float64)

    def to_host(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def zeros(self, shape):
        return np.zeros(shape)

    def ones(self, n):
        return np.ones(n)

    def logsumexp(self, z):
        return logsumexp(z, axis=1)

    def exp(self, z):
        return np.exp(z)

    def labels(self, y):
        return np.asarray(y, dtype=np.intp)

    def hstack(self, a, b):
        return np.hstack([a, b])


class FullMap:
    """``z = x W^T + b`` with ``[W, b]`` a K x (K + 1) matrix of which the rows ``free_rows``
    are parameters (the others stay at ``base``); ``theta`` is those rows, flattened.

    ``base`` (K x (K + 1)) is the value of the matrix at ``theta = 0``: zeros when the free
    rows are the matrix itself, ``[I, 0]`` when ``theta`` is the change from the identity.

    Parameters
    ----------
    backend : NumpyBackend or calibkit.torch.SoftmaxRegressionBackend
        The array operations (numpy, or torch on a device).
    x : ndarray of shape (n, K)
        The features (log-probabilities or logits), one column per class.
    free_rows : array-like of int of shape (n_free,)
        The rows of ``[W, b]`` that are parameters.
    base : ndarray of shape (K, K + 1)
        The matrix at ``theta = 0``.
    """

    def __init__(self, backend, x, *, free_rows, base):
        self.b = backend
        n, k = x.shape
        self.k = k
        ones = backend.ones(n)[:, None]
        self.x1 = backend.asarray(x)
        self.x1 = _hstack(backend, self.x1, ones)  # (n, K + 1)
        self.rows = np.asarray(free_rows, dtype=np.intp)
        self.n_params = len(self.rows) * (k + 1)
        base = np.asarray(base, dtype=np.float64)
        self.base = base
        self.z0 = self.x1 @ backend.asarray(base).T if np.any(base) else backend.zeros((n, k))

    def matrix(self, theta) -> np.ndarray:
        """The K x (K + 1) matrix ``[W, b]`` of ``theta`` (host numpy)."""
        m = self.base.copy()
        m[self.rows] += np.asarray(theta).reshape(len(self.rows), self.k + 1)
        return m

    def direction(self, v):
        full = np.zeros((self.k, self.k + 1))
        full[self.rows] = np.asarray(v).reshape(len(self.rows), self.k + 1)
        return self.x1 @ self.b.asarray(full).T

    def adjoint(self, r) -> np.ndarray:
        g = self.b.to_host(r.T @ self.x1)  # (K, K + 1)
        return g[self.rows].ravel()


class DiagonalMap:
    """``z_j = a_j x_j + b_j`` with ``theta = (a, b[free_bias])`` (other biases stay 0) and
    ``a = base_scale + theta[:K]``.

    Parameters
    ----------
    backend : NumpyBackend or calibkit.torch.SoftmaxRegressionBackend
        The array operations (numpy, or torch on a device).
    x : ndarray of shape (n, K)
        The features (log-probabilities or logits), one column per class.
    free_bias : array-like of int of shape (n_free,)
        The classes whose bias is a parameter.
    base_scale : float
        The scales ``a`` at ``theta = 0`` (1 when ``theta`` is the change from the identity).
    """

    def __init__(self, backend, x, *, free_bias, base_scale):
        self.b = backend
        n, k = x.shape
        self.k = k
        self.x = backend.asarray(x)
        self.bias = np.asarray(free_bias, dtype=np.intp)
        self.n_params = k + len(self.bias)
        self.base_scale = float(base_scale)
        self.z0 = self.x * self.base_scale if self.base_scale else backend.zeros((n, k))

    def scale_bias(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)``, each of shape (K,), for ``theta`` (host numpy)."""
        theta = np.asarray(theta)
        b = np.zeros(self.k)
        b[self.bias] = theta[self.k:]
        return self.base_scale + theta[: self.k], b

    def direction(self, v):
        v = np.asarray(v)
        b = np.zeros(self.k)
        b[self.bias] = v[self.k:]
        return self.x * self.b.asarray(v[: self.k]) + self.b.asarray(b)

    def adjoint(self, r) -> np.ndarray:
        ga = self.b.to_host((r * self.x).sum(0))
        gb = self.b.to_host(r.sum(0))
        return np.concatenate([ga, gb[self.bias]])


def _hstack(backend, a, b):
    return backend.hstack(a, b)


class _Objective:
    """Value, gradient and Hessian-vector products of the penalised NLL; the softmax of the
    last point evaluated is cached for the Hessian-vector products at that point."""

    def __init__(self, model, y, sample_weight, coef, centre):
        b = model.b
        self.model, self.bk = model, b
        n = model.z0.shape[0]
        s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
        s = s / s.sum()
        self.s = b.asarray(s)[:, None]
        self.y = b.labels(y)
        self.rows = b.labels(np.arange(n))
        self.coef = np.asarray(coef, dtype=np.float64)
        self.centre = np.asarray(centre, dtype=np.float64)
        self._key = None

    def _softmax(self, theta):
        key = theta.tobytes()
        if key != self._key:
            z = self.model.z0 + self.model.direction(theta)
            lse = self.bk.logsumexp(z)
            self._q = self.bk.exp(z - lse[:, None])
            self._nll = float(self.bk.to_host((self.s[:, 0] * (lse - z[self.rows, self.y])
                                               ).sum()))
            self._key = key
        return self._q

    def value_grad(self, theta):
        q = self._softmax(theta)
        r = q * self.s
        r[self.rows, self.y] -= self.s[:, 0]
        d = theta - self.centre
        value = self._nll + float(np.sum(self.coef * d * d))
        return value, self.model.adjoint(r) + 2.0 * self.coef * d

    def hessp(self, theta, v):
        q = self._softmax(theta)
        dz = self.model.direction(v)
        qd = q * dz
        r = (qd - q * qd.sum(1)[:, None]) * self.s
        return self.model.adjoint(r) + 2.0 * self.coef * np.asarray(v)


def fit_softmax_map(model, y, sample_weight, *, coef, centre, theta0, max_iter, tol):
    """Minimise the penalised NLL of ``model`` (see the module docstring).

    Parameters
    ----------
    model : FullMap or DiagonalMap
    y : ndarray of shape (n,)
        Class indices.
    sample_weight : ndarray of shape (n,) or None
    coef, centre : ndarray of shape (model.n_params,)
        Penalty ``sum_j coef_j (theta_j - centre_j)^2``.
    theta0 : ndarray of shape (model.n_params,)
        Starting point.
    max_iter : int
        Largest number of trust-region Newton iterations.
    tol : float
        Stop when every component of the gradient is below ``tol``.

    Returns
    -------
    theta : ndarray of shape (model.n_params,)
        The minimiser found.
    n_iter : int
    converged : bool
    message : str
        The optimiser's message and the largest gradient component.
    """
    obj = _Objective(model, y, sample_weight, coef, centre)
    res = minimize(
        obj.value_grad,
        np.asarray(theta0, dtype=np.float64),
        method="trust-krylov",
        jac=True,
        hessp=obj.hessp,
        options={"maxiter": max_iter, "gtol": tol},
    )
    grad_max = float(np.max(np.abs(obj.value_grad(res.x)[1]))) if len(res.x) else 0.0
    # the trust region also stops when no improvement is representable in float64; accept
    # that when the gradient is small
    converged = bool(res.success) or grad_max <= max(tol, 1e-6)
    return res.x, int(res.nit), converged, f"{res.message}; max |gradient| {grad_max:.3g}"
