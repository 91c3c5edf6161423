"""PyTorch back end: a temperature layer for models, and device-native streaming metrics.

* :class:`TemperatureScaler` is an ``nn.Module`` that divides logits by a fitted temperature;
  it can wrap a model (``TemperatureScaler(model)``) or be appended to one
  (``nn.Sequential(model, TemperatureScaler())``). :meth:`TemperatureScaler.fit` runs on the
  device of the logits, with float64 sums, in chunks of rows, so it fits 1e6 x 1000 logits
  without a float64 copy of them.
* :class:`CalibrationError`, :class:`BrierScore` and :class:`NegativeLogLikelihood` keep a
  fixed-size, sum-reducible state (per-bin counts and sums, or two scalars) on the device of
  the predictions. ``compute()`` sums that state over ``torch.distributed`` processes with one
  ``all_reduce``; no prediction is ever gathered.
* :func:`expected_calibration_error` is the functional form: tensors in, a 0-d tensor on the
  same device out.

Bins follow :mod:`calibkit.metrics.binning`: equal-width edges ``linspace(0, 1, n_bins + 1)``,
bin ``j`` is ``[e_j, e_{j+1})`` and the last bin is closed, assigned by comparing against the
edge values (``torch.bucketize(..., right=True)`` is ``searchsorted(side="right")``).

This module imports torch at import time; ``import calibkit`` never imports it.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from calibkit._chunks import WORKING_MEMORY_BYTES, chunk_rows
from calibkit._validation import (
    BOOLEAN,
    DEVICE,
    NONE,
    PROB_EPS,
    SUM_TOL,
    Options,
    check_param,
)
from calibkit.base import ConvergenceWarning
from calibkit.metrics.binning import uniform_edges
from calibkit.scaling import logit_scale

__all__ = [
    "TemperatureScaler",
    "fit_temperature",
    "CalibrationError",
    "BrierScore",
    "NegativeLogLikelihood",
    "expected_calibration_error",
]

INPUT_KINDS = ("probs", "logits")


# --------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------


class TemperatureScaler(nn.Module):
    """Divide logits by a temperature ``T`` fitted by minimising the negative log-likelihood.

    Parameters
    ----------
    model : nn.Module, optional
        If given, ``forward(x)`` returns ``model(x) / T``; otherwise ``forward(logits)``
        returns ``logits / T``.
    temperature : float, default=1.0
        Initial temperature (used as is until :meth:`fit` is called).

    Attributes
    ----------
    temperature : torch.Tensor of shape ()
        0-d float64 buffer (saved in ``state_dict``, moved by ``.to()``).
    n_iter_ : int
        Passes over the logits made by the last :meth:`fit`.

    Notes
    -----
    The fit is :func:`fit_temperature`: the maximum-likelihood ``T`` of
    ``softmax(z / T)``, the same solver as :class:`calibkit.TemperatureScaling`, run on the
    logits' device.
    """

    def __init__(self, model: nn.Module | None = None, *, temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive; got {temperature!r}.")
        self.model = model
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float64))
        self.n_iter_ = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Temperature-scaled logits.

        Parameters
        ----------
        x : torch.Tensor of shape (batch_size, ...)
            The wrapped model's input, or logits of shape (batch_size, n_classes) when there
            is no model.

        Returns
        -------
        torch.Tensor of shape (batch_size, n_classes)
            ``logits / T``, in the logits' dtype and on their device (softmax them for
            probabilities).
        """
        logits = self.model(x) if self.model is not None else x
        return logits / self.temperature.to(device=logits.device, dtype=logits.dtype)

    @torch.no_grad()
    def fit(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        *,
        sample_weight: torch.Tensor | None = None,
        max_iter: int = 100,
        tol: float = 1e-10,
        chunk_size: int | None = None,
    ) -> TemperatureScaler:
        """Fit ``T`` on calibration ``logits`` (n, K) (model outputs, not probabilities) and
        integer ``labels`` (n,). Runs on ``logits.device``; returns ``self``.

        Parameters
        ----------
        logits : torch.Tensor of shape (n_samples, n_classes)
            Floating-point logits, ``n_classes >= 2``; they are not copied.
        labels : torch.Tensor of shape (n_samples,)
            Integer class indices in ``[0, n_classes)``.
        sample_weight : torch.Tensor or array-like of shape (n_samples,), default=None
            Non-negative weights of each sample's NLL, with a positive sum.
        max_iter : int, default=100
            Largest number of passes over the logits.
        tol : float, default=1e-10
            Convergence tolerance on ``log T``.
        chunk_size : int or None, default=None
            Rows per chunk of the float64 sums; None sizes chunks by memory, as
            :func:`fit_temperature`.

        Returns
        -------
        self : TemperatureScaler
            With ``temperature`` (on the buffer's device) and ``n_iter_`` set.
        """
        t, n_iter = fit_temperature(
            logits, labels, sample_weight=sample_weight, max_iter=max_iter, tol=tol,
            chunk_size=chunk_size,
        )
        self.temperature = t.to(self.temperature.device)
        self.n_iter_ = n_iter
        return self

    @torch.no_grad()
    def fit_loader(self, loader, *, device=None, **fit_kwargs) -> TemperatureScaler:
        """Run the wrapped model over ``loader`` (batches ``(x, y)``) and fit on its logits.

        The model runs in eval mode without gradients (its training mode is restored
        afterwards); the logits of every batch are concatenated, then :meth:`fit` runs on
        them.

        Parameters
        ----------
        loader : iterable of pairs (x, y)
            Batches of model inputs ``x`` (tensors the model accepts) and integer labels
            ``y`` (tensors of shape (batch_size,)), e.g. a ``torch.utils.data.DataLoader``.
        device : str, torch.device or None, default=None
            Move every batch there before the forward pass; None leaves them where they are.
        **fit_kwargs : dict
            ``sample_weight``, ``max_iter``, ``tol`` and ``chunk_size`` of :meth:`fit`.

        Returns
        -------
        self : TemperatureScaler
            Fitted.
        """
        if self.model is None:
            raise ValueError("fit_loader needs a model: use TemperatureScaler(model).")
        was_training = self.model.training
        self.model.eval()
        outs, ys = [], []
        for x, y in loader:
            if device is not None:
                x, y = x.to(device), y.to(device)
            outs.append(self.model(x))
            ys.append(y)
        self.model.train(was_training)
        return self.fit(torch.cat(outs), torch.cat(ys), **fit_kwargs)

    def extra_repr(self) -> str:
        return f"temperature={float(self.temperature):.6g}"


@torch.no_grad()
def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    sample_weight: torch.Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-12,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Maximum-likelihood temperature of ``logits`` (n, K) for integer ``labels`` (n,).

    The fit is that of :class:`calibkit.TemperatureScaling` (safeguarded Halley iteration on
    log T, warm-started on a strided subsample of large inputs) with the NLL's derivatives
    summed in float64 on ``logits.device``, over chunks of rows, without copying the logits.
    Warns :class:`~calibkit.base.ConvergenceWarning` when the NLL has no minimiser (e.g.
    separable data, where ``T -> 0``) or ``max_iter`` is reached.

    Parameters
    ----------
    logits : torch.Tensor of shape (n_samples, n_classes)
        Finite floating-point logits, ``n_classes >= 2``.
    labels : torch.Tensor of shape (n_samples,)
        Integer class indices in ``[0, n_classes)``.
    sample_weight : torch.Tensor or array-like of shape (n_samples,), default=None
        Non-negative weights of each sample's NLL, with a positive sum.
    max_iter : int, default=100
        Largest number of passes over the logits.
    tol : float, default=1e-12
        Convergence tolerance on ``log T`` (the relative error of ``T``).
    chunk_size : int or None, default=None
        Rows per chunk; None takes as many rows as fit about
        ``calibkit._chunks.WORKING_MEMORY_BYTES`` (64 MiB) of float64 temporaries
        (16 bytes per logit) on the CPU, twice that on a GPU.

    Returns
    -------
    T : torch.Tensor of shape ()
        The fitted temperature, float64, on ``logits.device``.
    n_iter : int
        Passes over the full logits.

    Notes
    -----
    ``T`` minimises ``L(T) = sum_i w_i [logsumexp(z_i / T) - z_{i, y_i} / T]`` (Guo et al.,
    "On calibration of modern neural networks", ICML 2017); see
    :class:`calibkit.TemperatureScaling` for the iteration.
    """
    from calibkit.scaling import fit_softmax_log_temperature

    z, y, w = _check_logits_labels(logits, labels, sample_weight)
    derivs = SoftmaxNLLDerivatives(None, y, w, z.device, source=z, rows=chunk_size)
    n_iter, converged, theta, status = fit_softmax_log_temperature(derivs, max_iter, tol)
    t = derivs.scale * math.exp(theta)
    if not converged:
        warnings.warn(
            f"temperature fit did not converge ({status}); T = {t:.6g}.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return torch.tensor(t, dtype=torch.float64, device=z.device), n_iter


def _check_logits_labels(logits, labels, sample_weight):
    if not isinstance(logits, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("logits and labels must be torch tensors (use calibkit.TemperatureScaling"
                        " for numpy arrays).")
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (n, K) with K >= 2; got {tuple(logits.shape)}.")
    if logits.shape[0] == 0:
        raise ValueError("logits is empty; at least one sample is needed.")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating tensor; got {logits.dtype}.")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contains NaN or infinite values; remove them first.")
    y = labels.reshape(-1)
    if y.shape[0] != logits.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} entries but logits has {logits.shape[0]} rows.")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices; got {y.dtype}.")
    y = y.to(device=logits.device, dtype=torch.long)
    if bool(((y < 0) | (y >= logits.shape[1])).any()):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}) (column indices of logits).")
    w = None
    if sample_weight is not None:
        w = torch.as_tensor(sample_weight, dtype=torch.float64, device=logits.device).reshape(-1)
        if w.shape[0] != logits.shape[0]:
            raise ValueError(f"sample_weight has {w.shape[0]} entries for {logits.shape[0]} rows.")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError("sample_weight must be finite, non-negative, with a positive sum.")
    return logits, y, w


class SoftmaxNLLDerivatives:
    """The derivatives of the softmax NLL in ``beta = 1 / T`` (the evaluator of
    :func:`calibkit.scaling.fit_softmax_log_temperature`, as ``calibkit.scaling._SoftmaxNLL``
    is for numpy), in torch, float64 throughout, on ``device``.

    The logits are divided by their scale (:func:`calibkit.scaling.logit_scale`, ``beta`` in
    units of ``1 / scale``), as in numpy. Rows are processed in chunks: cache-sized on the
    CPU, large on a GPU (bounded memory).
    """

    def __init__(self, z, y, w, device, source=None, rows=None, scale=None):
        self.torch = torch
        same = source is not None and source.device.type == device.type
        if same and device.index is not None:
            same = source.device.index == device.index
        if same and source.ndim == 2:
            zt = source.detach()
        else:
            zt = torch.as_tensor(z, device=device)
        self.z = zt
        self.y = torch.as_tensor(y, device=zt.device, dtype=torch.long)
        self.w = None if w is None else torch.as_tensor(w, device=zt.device, dtype=torch.float64)
        # few large operations: torch's CPU thread pool synchronises once per operation
        budget = WORKING_MEMORY_BYTES * (2 if zt.device.type != "cpu" else 1)
        self.rows = int(rows) if rows else chunk_rows(zt.shape[1] * 16, budget=budget)
        if scale is None:
            spread = torch.zeros((), dtype=torch.float64, device=zt.device)
            for a in range(0, zt.shape[0], self.rows):
                zc = zt[a : a + self.rows].to(torch.float64)
                spread += (zc.amax(dim=1) - zc.mean(dim=1)).sum()
            scale = logit_scale(np.array([float(spread) / zt.shape[0]]))
        # a Python float: dividing a tensor by a numpy scalar takes a slow path (3x)
        self.scale = float(scale)

    def slope_at_zero_temperature(self):
        torch = self.torch
        total = torch.zeros((), dtype=torch.float64, device=self.z.device)
        for s in range(0, self.z.shape[0], self.rows):
            zc = self.z[s : s + self.rows]
            gap = (zc.amax(dim=1) - zc.gather(1, self.y[s : s + self.rows, None])[:, 0]).double()
            gap = gap / self.scale
            total += gap.sum() if self.w is None else self.w[s : s + self.rows] @ gap
        return float(total)

    def close(self):
        pass

    def subsample(self):
        n = self.z.shape[0]
        if n < 8 * 1024:
            return None
        w = None if self.w is None else self.w[::16]
        return SoftmaxNLLDerivatives(
            None, self.y[::16], w, self.z.device, source=self.z[::16], rows=self.rows,
            scale=self.scale,
        )

    def __call__(self, beta):
        torch = self.torch
        acc = torch.zeros(3, dtype=torch.float64, device=self.z.device)
        with torch.no_grad():
            for s in range(0, self.z.shape[0], self.rows):
                zc = self.z[s : s + self.rows].to(torch.float64) / self.scale
                zc = zc - zc.amax(dim=1, keepdim=True)
                zy = zc.gather(1, self.y[s : s + self.rows, None])[:, 0]
                u = torch.exp(beta * zc)
                s0 = u.sum(dim=1)
                u.mul_(zc)
                m1 = u.sum(dim=1) / s0
                u.mul_(zc)
                m2 = u.sum(dim=1) / s0
                u.mul_(zc)
                m3 = u.sum(dim=1) / s0
                rowvals = torch.stack(
                    [m1 - zy, m2 - m1 * m1, m3 - 3.0 * m1 * m2 + 2.0 * m1**3], dim=1
                )
                if self.w is None:
                    acc += rowvals.sum(dim=0)
                else:
                    acc += self.w[s : s + self.rows] @ rowvals
        l1, l2, l3 = acc.tolist()
        return beta, l1, l2, l3


class SoftmaxRegressionBackend:
    """The array operations of calibkit's penalised softmax-regression solver
    (``calibkit._softmax_regression``, behind Dirichlet, matrix and structured scaling) in
    torch, float64, on ``device``: the twin of its ``NumpyBackend``."""

    def __init__(self, device):
        self.torch = torch
        self.device = device

    def asarray(self, x):
        return self.torch.as_tensor(np.asarray(x) if isinstance(x, list) else x,
                                    dtype=self.torch.float64, device=self.device)

    def to_host(self, x) -> np.ndarray:
        return x.detach().cpu().numpy().astype(np.float64, copy=False)

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float64, device=self.device)

    def ones(self, n):
        return self.torch.ones(n, dtype=self.torch.float64, device=self.device)

    def logsumexp(self, z):
        return self.torch.logsumexp(z, dim=1)

    def exp(self, z):
        return self.torch.exp(z)

    def labels(self, y):
        return self.torch.as_tensor(y, dtype=self.torch.long, device=self.device)

    def hstack(self, a, b):
        return self.torch.cat([a, b], dim=1)


def resolve_device(device, source):
    """The torch device to fit on, or None for numpy."""
    if device is None:
        if source is not None and source.device.type != "cpu":
            return source.device
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be None, 'cpu', 'cuda' or a torch.device; got {device!r}."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device=None.")
    return dev


# --------------------------------------------------------------------------------------
# Streaming metrics with fixed-size, sum-reducible state (mirrors calibkit.metrics.streaming)
# --------------------------------------------------------------------------------------


class _SumStateMetric:
    """State is a dict of float64 tensors that merge by addition. The arguments, the state
    layout, :meth:`state_dict` / :meth:`from_state` and the errors are those of the numpy
    class named by ``_numpy_twin`` (:mod:`calibkit.metrics.streaming`), which also checks a
    state handed to :meth:`from_state`."""

    _numpy_twin: ClassVar[str] = ""

    def __init__(self, *, input: str = "probs", sync_on_compute: bool = True, device=None):
        owner = type(self).__name__
        check_param(input, "input", [Options(*INPUT_KINDS)], owner=owner)
        check_param(sync_on_compute, "sync_on_compute", [BOOLEAN], owner=owner)
        check_param(device, "device", [NONE, DEVICE], owner=owner)
        self.input = input
        self.sync_on_compute = sync_on_compute
        self.device = None if device is None else torch.device(device)
        self._state: dict[str, torch.Tensor] | None = None
        self._n_classes_seen: int | None = None

    def _twin(self):
        from calibkit.metrics import streaming

        return getattr(streaming, self._numpy_twin)(**self._params())

    def _params(self) -> dict:
        return {}

    def reset(self):
        """Forget every update; returns ``self``."""
        self._state = None
        self._n_classes_seen = None
        return self

    def merge(self, other):
        """Add ``other``'s state into this one (same class and settings); returns ``self``."""
        if type(other) is not type(self) or other._params() != self._params():
            raise ValueError(
                "can only merge metrics of the same type and parameters; got "
                f"{type(other).__name__}{other._params()} into "
                f"{type(self).__name__}{self._params()}."
            )
        if other._state is None:
            return self
        if self._state is None:
            self._n_classes_seen = other._n_classes_seen
            self._state = {k: v.clone().to(self.device or v.device)
                           for k, v in other._state.items()}
            return self
        if self._n_classes_seen != other._n_classes_seen:
            raise ValueError(f"cannot merge states over {other._n_classes_seen} and "
                             f"{self._n_classes_seen} classes.")
        for k, v in other._state.items():
            self._state[k] += v.to(self._state[k].device)
        return self

    def state_dict(self) -> dict:
        """``{"params", "n_classes_seen", "state"}`` as the numpy metric's, with the state as
        float64 tensors (copies, on the state's device; ``None`` before any update)."""
        names = self._twin()._state_names
        return {
            "params": self._params(),
            "n_classes_seen": self._n_classes_seen,
            "state": {k: None if self._state is None else self._state[k].clone() for k in names},
        }

    @classmethod
    def from_state(cls, state: dict, *, input: str = "probs", sync_on_compute: bool = True,
                   device=None):
        """Rebuild a metric from :meth:`state_dict` (or the numpy metric's), checked exactly
        as the numpy metric's ``from_state`` checks it."""
        from calibkit.metrics import streaming

        if not isinstance(state, dict) or not {"params", "state"} <= set(state):
            raise ValueError(f"{cls.__name__}.from_state needs a dict with 'params' and "
                             "'state' (the output of state_dict()).")
        arrays = {k: (None if v is None else np.asarray(torch.as_tensor(v).cpu()))
                  for k, v in dict(state["state"]).items()}
        checked = getattr(streaming, cls._numpy_twin).from_state({**state, "state": arrays})
        accepted = inspect.signature(cls.__init__).parameters
        obj = cls(input=input, sync_on_compute=sync_on_compute, device=device,
                  **{k: v for k, v in checked._params().items() if k in accepted})
        if checked._n_classes_seen is not None and getattr(
            checked, checked._state_names[0]
        ) is not None:
            dev = obj.device or torch.device("cpu")
            obj._n_classes_seen = checked._n_classes_seen
            obj._state = {k: torch.as_tensor(getattr(checked, k), dtype=torch.float64,
                                              device=dev)
                          for k in checked._state_names}
        return obj

    def to(self, device):
        """Move the state to ``device``; returns ``self``."""
        self.device = torch.device(device)
        if self._state is not None:
            self._state = {k: v.to(self.device) for k, v in self._state.items()}
        return self

    def compute(self) -> torch.Tensor:
        """The metric over every update, summed over processes when ``torch.distributed``
        is initialised and ``sync_on_compute``; a 0-d float64 tensor on the state's device."""
        if self._state is None:
            raise ValueError(f"{type(self).__name__}.compute() called before any update().")
        state = self._synced_state() if self.sync_on_compute else self._state
        return self._compute(state)

    def _synced_state(self) -> dict[str, torch.Tensor]:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self._state
        names = sorted(self._state)
        flat = torch.cat([self._state[k].reshape(-1) for k in names])
        if dist.get_backend() == "nccl" and flat.device.type != "cuda":
            flat = flat.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)  # flat is a fresh tensor: local state kept
        flat = flat.to(self._state_device())
        out, pos = {}, 0
        for k in names:
            size = self._state[k].numel()
            out[k] = flat[pos : pos + size].reshape(self._state[k].shape)
            pos += size
        return out

    def _state_device(self):
        return next(iter(self._state.values())).device

    def _add(self, n_classes: int, values: dict[str, torch.Tensor]) -> None:
        if self._state is None:
            self._n_classes_seen = n_classes
            self._state = {k: v.clone() for k, v in values.items()}
            return
        for k, v in values.items():
            self._state[k] += v

    def _prepare(self, y_true, y_prob, sample_weight):
        """Check a batch as :func:`calibkit._validation.check_probabilities` and the numpy
        metric do (same rule and tolerance, on the tensor's device): float64 probabilities
        of shape (n,) or (n, K), integer column indices and optional weights."""
        if not isinstance(y_prob, torch.Tensor):
            y_prob = torch.as_tensor(np.asarray(y_prob))
        if not isinstance(y_true, torch.Tensor):
            y_true = torch.as_tensor(np.asarray(y_true))
        dev = self.device or (self._state_device() if self._state is not None else y_prob.device)
        p = y_prob.detach().to(device=dev, dtype=torch.float64)
        if p.ndim == 2 and p.shape[1] == 1:
            p = p[:, 0]
        if p.ndim not in (1, 2) or p.shape[0] == 0:
            raise ValueError(f"y_prob must be non-empty with shape (n,) or (n, K); got "
                             f"{tuple(y_prob.shape)}.")
        if not bool(torch.isfinite(p).all()):
            raise ValueError("y_prob contains NaN or infinite values; remove or impute them "
                             "first.")
        if self.input == "logits":
            p = torch.sigmoid(p) if p.ndim == 1 else torch.softmax(p, dim=1)
        else:
            if bool(((p < 0) | (p > 1)).any()):
                raise ValueError("y_prob must be probabilities but contain values outside "
                                 "[0, 1]; pass input='logits' for logits.")
            if p.ndim == 2 and bool(((p.sum(dim=1) - 1.0).abs() > SUM_TOL).any()):
                raise ValueError(f"y_prob must be probabilities but some rows do not sum to 1 "
                                 f"(tolerance {SUM_TOL}). Normalise the rows.")
        k = 2 if p.ndim == 1 else p.shape[1]
        if self._n_classes_seen is not None and k != self._n_classes_seen:
            raise ValueError(f"y_prob has {k} class column(s) but earlier updates had "
                             f"{self._n_classes_seen}.")
        t = y_true.detach().reshape(-1).to(dev)
        if t.shape[0] != p.shape[0]:
            raise ValueError(f"Inconsistent numbers of samples: y_true has {t.shape[0]}, "
                             f"y_prob has {p.shape[0]}.")
        if t.dtype == torch.bool:
            t = t.long()
        if t.is_floating_point():
            if not bool(torch.isfinite(t).all()) or bool((t != t.round()).any()):
                raise ValueError("y_true must hold integer column indices of y_prob.")
            t = t.long()
        if bool(((t < 0) | (t >= k)).any()):
            raise ValueError(f"y_true must hold column indices in [0, {k}).")
        w = None
        if sample_weight is not None:
            w = torch.as_tensor(sample_weight).detach().to(device=dev, dtype=torch.float64)
            w = w.reshape(-1)
            if w.shape[0] != p.shape[0]:
                raise ValueError(f"sample_weight has {w.shape[0]} entries but there are "
                                 f"{p.shape[0]} samples.")
            if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
                raise ValueError("sample_weight must be finite and non-negative.")
            if not float(w.sum()) > 0:
                raise ValueError("sample_weight sums to zero; at least one sample needs a "
                                 "positive weight.")
        return p, t, w


class CalibrationError(_SumStateMetric):
    """Streaming equal-width calibration error with O(n_bins) state, on the device of the
    predictions: the torch twin of :class:`calibkit.metrics.StreamingCalibrationError`.

    Parameters
    ----------
    n_bins : int, default=15
        Equal-width bins on [0, 1] (see the module docstring for the edges).
    norm : {"l1", "l2", "max"}, default="l1"
        As :func:`calibkit.metrics.expected_calibration_error` (the same formula,
        :func:`calibkit.metrics.calibration_error_from_bin_sums`, applied to the state).
    mode : {"top_label", "binary", "classwise"}, default="top_label"
        ``top_label``: confidence ``max_k p_k``, outcome ``argmax == y_true``; ``binary``:
        confidence ``P(positive)`` (y_prob of shape (n,), or column 1 of (n, 2)), outcome
        ``y_true == 1``; ``classwise``: every class ``k`` binned on ``p_k`` against
        ``1[y_true == k]``, reduced over classes.
    input : {"probs", "logits"}, default="probs"
        What ``y_prob`` is; logits go through softmax (sigmoid for 1-D).
    sync_on_compute : bool, default=True
        Sum the state across ``torch.distributed`` processes in :meth:`compute`.
    device : torch.device, optional
        Where the state lives (default: the device of the first ``y_prob``).
    """

    _numpy_twin = "StreamingCalibrationError"

    def __init__(self, *, n_bins: int = 15, norm: str = "l1", mode: str = "top_label",
                 input: str = "probs", sync_on_compute: bool = True, device=None):
        from calibkit.metrics.streaming import StreamingCalibrationError

        StreamingCalibrationError(n_bins=n_bins, norm=norm, mode=mode)  # the same checks
        super().__init__(input=input, sync_on_compute=sync_on_compute, device=device)
        self.n_bins, self.norm, self.mode = int(n_bins), norm, mode

    def _params(self):
        return {"n_bins": self.n_bins, "norm": self.norm, "mode": self.mode,
                "labels": None, "n_classes": None}

    @torch.no_grad()
    def update(self, y_true, y_prob, sample_weight=None):
        """Add a batch and return ``self``: ``y_true`` (n,) column indices, ``y_prob``
        (n, K) or (n,) (tensors or arrays).

        Parameters
        ----------
        y_true : torch.Tensor or array-like of shape (n_samples,)
            Class indices into the columns of ``y_prob`` (integer, boolean or
            integer-valued floats); 0/1 for 1-D ``y_prob``.
        y_prob : torch.Tensor or array-like of shape (n_samples,) or (n_samples, n_classes)
            Probabilities (rows summing to 1), or logits with ``input="logits"``; 1-D is
            P(positive). Every batch needs the same number of classes.
        sample_weight : torch.Tensor or array-like of shape (n_samples,), default=None
            Non-negative weights, with a positive sum.

        Returns
        -------
        self : CalibrationError
            With the batch's per-bin counts and sums added to the state.
        """
        p, t, w = self._prepare(y_true, y_prob, sample_weight)
        k = 2 if p.ndim == 1 else p.shape[1]
        if self.mode != "binary" and p.ndim == 1:  # P(positive) read as [1 - p, p]
            p = torch.stack([1 - p, p], dim=1)
        if self.mode == "binary":
            if p.ndim == 2:
                if p.shape[1] != 2:
                    raise ValueError(f"mode='binary' needs 1-D y_prob or 2 columns; got {k}.")
                p = p[:, 1]
            conf, acc = p[None, :], (t == 1).to(torch.float64)[None, :]
        elif self.mode == "top_label":
            conf, pred = p.max(dim=1)
            conf, acc = conf[None, :], (pred == t).to(torch.float64)[None, :]
        else:
            conf = p.T
            acc = (t[None, :] == torch.arange(p.shape[1], device=p.device)[:, None]).double()
        rows = conf.shape[0]
        idx = _assign_uniform(conf, self.n_bins)
        flat = (idx + self.n_bins * torch.arange(rows, device=p.device)[:, None]).reshape(-1)
        size = rows * self.n_bins
        wr = None if w is None else w.repeat(rows)
        c, a = conf.reshape(-1), acc.reshape(-1)
        shape = (rows, self.n_bins)
        self._add(k, {
            "count": _bincount(flat, wr, size).reshape(shape),
            "sum_conf": _bincount(flat, c if w is None else c * wr, size).reshape(shape),
            "sum_acc": _bincount(flat, a if w is None else a * wr, size).reshape(shape),
        })
        return self

    def _compute(self, state):
        from calibkit.metrics.calibration import (
            calibration_error_from_bin_sums,
            combine_classwise,
        )

        count, sc, sa = (state[k].cpu().numpy() for k in ("count", "sum_conf", "sum_acc"))
        if np.any(count.sum(axis=-1) <= 0):
            raise ValueError("the metric has no (positively weighted) samples.")
        value = combine_classwise(
            calibration_error_from_bin_sums(count, sc, sa, norm=self.norm), self.norm
        )
        return torch.as_tensor(float(value), dtype=torch.float64, device=state["count"].device)


class BrierScore(_SumStateMetric):
    """Streaming Brier score, the torch twin of :class:`calibkit.metrics.StreamingBrierScore`
    (the definition of :func:`calibkit.metrics.brier_score`).

    Multiclass (K > 2): ``sum_i w_i sum_k (p_ik - 1[y_i = k])^2 / sum_i w_i``; binary
    (y_prob (n,) = P(positive), or (n, 2)): ``sum_i w_i (p_i1 - y_i)^2 / sum_i w_i`` (half
    the two-column sum, as sklearn's ``brier_score_loss``).

    Parameters
    ----------
    input : {"probs", "logits"}, default="probs"
        What ``y_prob`` is; logits go through softmax (sigmoid for 1-D).
    sync_on_compute : bool, default=True
        Sum the state across ``torch.distributed`` processes in :meth:`compute`.
    device : torch.device, optional
        Where the state lives (default: the device of the first ``y_prob``).

    Notes
    -----
    Brier, "Verification of forecasts expressed in terms of probability", Monthly Weather
    Review, 1950.
    """

    _numpy_twin = "StreamingBrierScore"

    def _params(self):
        return {"labels": None, "n_classes": None}

    @torch.no_grad()
    def update(self, y_true, y_prob, sample_weight=None):
        """Add a batch and return ``self``.

        Parameters
        ----------
        y_true : torch.Tensor or array-like of shape (n_samples,)
            Class indices into the columns of ``y_prob``; 0/1 for 1-D ``y_prob``.
        y_prob : torch.Tensor or array-like of shape (n_samples,) or (n_samples, n_classes)
            Probabilities (rows summing to 1), or logits with ``input="logits"``; 1-D is
            P(positive). Every batch needs the same number of classes.
        sample_weight : torch.Tensor or array-like of shape (n_samples,), default=None
            Non-negative weights, with a positive sum.

        Returns
        -------
        self : BrierScore
            With the batch's weighted loss sum and weight sum added to the state.
        """
        p, t, w = self._prepare(y_true, y_prob, sample_weight)
        k = 2 if p.ndim == 1 else p.shape[1]
        if p.ndim == 1:
            p = torch.stack([1 - p, p], dim=1)
        onehot = torch.zeros_like(p)
        onehot.scatter_(1, t.long()[:, None], 1.0)
        err = ((p - onehot) ** 2).sum(dim=1)
        if p.shape[1] == 2:
            err = 0.5 * err
        self._add_loss(k, err, w)
        return self

    def _add_loss(self, k, loss, w):
        n = torch.tensor(float(loss.shape[0]), dtype=torch.float64, device=loss.device)
        self._add(k, {"sum_loss": (loss.sum() if w is None else loss @ w).reshape(1),
                      "sum_weight": (n if w is None else w.sum()).reshape(1)})

    def _compute(self, state):
        return (state["sum_loss"] / state["sum_weight"])[0]


class NegativeLogLikelihood(BrierScore):
    """Streaming mean negative log-likelihood ``-sum_i w_i log p_{i, y_i} / sum_i w_i``, the
    torch twin of :class:`calibkit.metrics.StreamingNegativeLogLikelihood`.

    As :func:`calibkit.metrics.negative_log_likelihood`: probabilities are clipped to
    ``[PROB_EPS, 1 - PROB_EPS]`` before the log (``PROB_EPS`` of :mod:`calibkit._validation`,
    the float64 machine epsilon); logits use ``log_softmax`` directly.

    Parameters
    ----------
    input : {"probs", "logits"}, default="probs"
        What ``y_prob`` is; 1-D logits are log-odds (the logits ``[0, z]``).
    sync_on_compute : bool, default=True
        Sum the state across ``torch.distributed`` processes in :meth:`compute`.
    device : torch.device, optional
        Where the state lives (default: the device of the first ``y_prob``).
    """

    _numpy_twin = "StreamingNegativeLogLikelihood"

    @torch.no_grad()
    def update(self, y_true, y_prob, sample_weight=None):
        """Add a batch and return ``self``.

        Parameters
        ----------
        y_true : torch.Tensor or array-like of shape (n_samples,)
            Class indices into the columns of ``y_prob``; 0/1 for 1-D ``y_prob``.
        y_prob : torch.Tensor or array-like of shape (n_samples,) or (n_samples, n_classes)
            Probabilities (rows summing to 1), or logits with ``input="logits"``; 1-D is
            P(positive) (or its log-odds). Every batch needs the same number of classes.
        sample_weight : torch.Tensor or array-like of shape (n_samples,), default=None
            Non-negative weights, with a positive sum.

        Returns
        -------
        self : NegativeLogLikelihood
            With the batch's weighted NLL sum and weight sum added to the state.
        """
        if self.input == "logits":
            raw = torch.as_tensor(y_prob).detach().to(torch.float64)
            if raw.ndim == 2 and raw.shape[1] == 1:
                raw = raw[:, 0]
            if raw.ndim == 1:
                raw = torch.stack([torch.zeros_like(raw), raw], dim=1)
            _, t, w = self._prepare(y_true, raw, sample_weight)
            logp = torch.log_softmax(raw.to(t.device), dim=1)
        else:
            p, t, w = self._prepare(y_true, y_prob, sample_weight)
            if p.ndim == 1:
                p = torch.stack([1 - p, p], dim=1)
            logp = torch.log(p.clamp(PROB_EPS, 1.0 - PROB_EPS))
        nll = -logp.gather(1, t.long()[:, None]).squeeze(1)
        self._add_loss(logp.shape[1], nll, w)
        return self


@torch.no_grad()
def expected_calibration_error(
    y_true, y_prob, *, n_bins: int = 15, norm: str = "l1", mode: str = "top_label",
    input: str = "probs", sample_weight=None,
) -> torch.Tensor:
    """Equal-width calibration error of tensors, computed on their device.

    Same definitions as :class:`CalibrationError`, on one batch.

    Parameters
    ----------
    y_true : torch.Tensor or array-like of shape (n_samples,)
        Class indices into the columns of ``y_prob``; 0/1 for 1-D ``y_prob``.
    y_prob : torch.Tensor or array-like of shape (n_samples,) or (n_samples, n_classes)
        Probabilities (rows summing to 1), or logits with ``input="logits"``; 1-D is
        P(positive).
    n_bins : int, default=15
        Equal-width bins on [0, 1].
    norm : {"l1", "l2", "max"}, default="l1"
        As :func:`calibkit.metrics.expected_calibration_error`.
    mode : {"top_label", "binary", "classwise"}, default="top_label"
        As :class:`CalibrationError`.
    input : {"probs", "logits"}, default="probs"
        What ``y_prob`` is; logits go through softmax (sigmoid for 1-D).
    sample_weight : torch.Tensor or array-like of shape (n_samples,), default=None
        Non-negative weights, with a positive sum.

    Returns
    -------
    torch.Tensor of shape ()
        The error, float64, on ``y_prob``'s device (the CPU for numpy input).
    """
    metric = CalibrationError(n_bins=n_bins, norm=norm, mode=mode, input=input,
                              sync_on_compute=False)
    return metric.update(y_true, y_prob, sample_weight).compute()


def _assign_uniform(conf: torch.Tensor, n_bins: int) -> torch.Tensor:
    # the edge values of calibkit.metrics.binning itself, so scores on an edge land in the same bin
    inner = torch.as_tensor(uniform_edges(n_bins)[1:-1], device=conf.device)
    return torch.bucketize(conf.contiguous(), inner, right=True)


def _bincount(idx: torch.Tensor, weights, size: int) -> torch.Tensor:
    out = torch.zeros(size, dtype=torch.float64, device=idx.device)
    src = torch.ones_like(idx, dtype=torch.float64) if weights is None else weights
    return out.index_add_(0, idx, src)
