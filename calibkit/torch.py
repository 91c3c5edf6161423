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

import math
import warnings

import numpy as np
import torch
from torch import nn

from calibkit._validation import PROB_EPS
from calibkit.base import ConvergenceWarning
from calibkit.metrics.binning import uniform_edges

__all__ = [
    "TemperatureScaler",
    "fit_temperature",
    "CalibrationError",
    "BrierScore",
    "NegativeLogLikelihood",
    "expected_calibration_error",
]

INPUT_KINDS = ("probs", "logits")
MODES = ("top_label", "binary", "classwise")
NORMS = ("l1", "l2", "max")


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
    temperature : torch.Tensor
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
        integer ``labels`` (n,). Runs on ``logits.device``; returns ``self``."""
        t, n_iter = fit_temperature(
            logits, labels, sample_weight=sample_weight, max_iter=max_iter, tol=tol,
            chunk_size=chunk_size,
        )
        self.temperature = t.to(self.temperature.device)
        self.n_iter_ = n_iter
        return self

    @torch.no_grad()
    def fit_loader(self, loader, *, device=None, **fit_kwargs) -> TemperatureScaler:
        """Run the wrapped model over ``loader`` (batches ``(x, y)``) and fit on its logits."""
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

    Returns ``(T, n_iter)`` with ``T`` a 0-d float64 tensor on ``logits.device``. The fit is
    that of :class:`calibkit.TemperatureScaling` (safeguarded Halley iteration on log T,
    warm-started on a strided subsample of large inputs) with the NLL's derivatives summed
    in float64 on ``logits.device``, over chunks of ``chunk_size`` rows (default: about
    2**22 elements per chunk on the CPU, 2**24 on a GPU), without copying the logits.
    Warns :class:`~calibkit.base.ConvergenceWarning` when the NLL has no minimiser (e.g.
    separable data, where ``T -> 0``) or ``max_iter`` is reached.
    """
    from calibkit.scaling import _TorchSoftmaxNLL, fit_softmax_log_temperature

    z, y, w = _check_logits_labels(logits, labels, sample_weight)
    derivs = _TorchSoftmaxNLL(None, y, w, z.device, source=z, rows=chunk_size)
    n_iter, converged, theta, status = fit_softmax_log_temperature(derivs, max_iter, tol)
    if not converged:
        warnings.warn(
            f"temperature fit did not converge ({status}); T = {math.exp(theta):.6g}.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return torch.tensor(math.exp(theta), dtype=torch.float64, device=z.device), n_iter


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


# --------------------------------------------------------------------------------------
# Streaming metrics with fixed-size, sum-reducible state
# --------------------------------------------------------------------------------------


class _SumStateMetric:
    """State is a dict of float64 tensors that merge by addition."""

    def __init__(self, *, input: str = "probs", sync_on_compute: bool = True, device=None):
        if input not in INPUT_KINDS:
            raise ValueError(f"input must be one of {INPUT_KINDS}; got {input!r}.")
        self.input = input
        self.sync_on_compute = sync_on_compute
        self.device = None if device is None else torch.device(device)
        self._state: dict[str, torch.Tensor] | None = None
        self._shape_key = None

    # -- to implement: _state_shapes(k) -> dict[name, shape]; _update(state, p, y, w); _compute
    def reset(self) -> None:
        """Forget every update (the state goes back to zeros)."""
        if self._state is not None:
            for v in self._state.values():
                v.zero_()

    def merge(self, other) -> None:
        """Add ``other``'s state into this one (same class and settings)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}.")
        if other._state is None:
            return
        self._ensure_state(other._shape_key, other._state_device())
        if self._shape_key != other._shape_key:
            raise ValueError("cannot merge metrics fitted on a different number of classes.")
        for k, v in other._state.items():
            self._state[k] += v.to(self._state[k].device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The raw state tensors (copies)."""
        return {} if self._state is None else {k: v.clone() for k, v in self._state.items()}

    def to(self, device) -> _SumStateMetric:
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

    def _ensure_state(self, key, device):
        if self._state is None:
            dev = self.device or device
            self._state = {
                k: torch.zeros(shape, dtype=torch.float64, device=dev)
                for k, shape in self._state_shapes(key).items()
            }
            self._shape_key = key

    def _prepare(self, preds, target, sample_weight, *, mode: str):
        """Check and convert a batch: float64 probabilities on the state's device."""
        if not isinstance(preds, torch.Tensor):
            preds = torch.as_tensor(np.asarray(preds))
        if not isinstance(target, torch.Tensor):
            target = torch.as_tensor(np.asarray(target))
        dev = self.device or (self._state_device() if self._state is not None else preds.device)
        p = preds.detach().to(device=dev, dtype=torch.float64)
        if p.ndim == 2 and p.shape[1] == 1:
            p = p[:, 0]
        if p.ndim not in (1, 2) or p.shape[0] == 0:
            raise ValueError(f"preds must be non-empty with shape (n,) or (n, K); got "
                             f"{tuple(preds.shape)}.")
        if not bool(torch.isfinite(p).all()):
            raise ValueError("preds contains NaN or infinite values.")
        t = target.detach().reshape(-1).to(dev)
        if t.shape[0] != p.shape[0]:
            raise ValueError(f"target has {t.shape[0]} entries but preds has {p.shape[0]} rows.")
        if t.is_floating_point():
            if not bool(((t == 0) | (t == 1)).all()) and not (p.ndim == 1 or mode == "binary"):
                raise ValueError("target must hold integer class indices.")
        if self.input == "logits":
            p = torch.sigmoid(p) if p.ndim == 1 else torch.softmax(p, dim=1)
        else:
            if bool(((p < 0) | (p > 1)).any()):
                raise ValueError("preds were declared input='probs' but contain values outside "
                                 "[0, 1]; pass input='logits' for logits.")
        if p.ndim == 1 and mode != "binary":  # P(positive) read as [1 - p, p]
            p = torch.stack([1 - p, p], dim=1)
        k = 2 if p.ndim == 1 else p.shape[1]
        if not t.is_floating_point() and bool(((t < 0) | (t >= k)).any()):
            raise ValueError(f"target must lie in [0, {k}) (column indices of preds).")
        w = None
        if sample_weight is not None:
            w = torch.as_tensor(sample_weight).detach().to(device=dev, dtype=torch.float64)
            w = w.reshape(-1)
            if w.shape[0] != p.shape[0] or bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
                raise ValueError("sample_weight must be finite, non-negative, one per row.")
        return p, t, w


class CalibrationError(_SumStateMetric):
    """Streaming equal-width expected calibration error with O(n_bins) state.

    Parameters
    ----------
    n_bins : int, default=15
        Equal-width bins on [0, 1] (see the module docstring for the edges).
    norm : {"l1", "l2", "max"}, default="l1"
        ``l1``: ``sum_b |A_b - C_b| / N`` (the ECE); ``l2``:
        ``sqrt(sum_b n_b (a_b - c_b)^2 / N)``; ``max``: ``max_b |a_b - c_b|`` over non-empty
        bins; ``n_b`` the (weighted) count, ``A_b, C_b`` the sums of outcomes and
        confidences in bin ``b``, ``a_b = A_b / n_b``, ``c_b = C_b / n_b``, ``N = sum n_b``.
    mode : {"top_label", "binary", "classwise"}, default="top_label"
        ``top_label``: confidence ``max_k p_k``, outcome ``argmax == target``; ``binary``:
        confidence ``P(positive)`` (preds of shape (n,), or column 1 of (n, 2)), outcome
        ``target`` (0/1); ``classwise``: every class ``k`` binned separately on
        ``p_k`` vs ``1[target == k]``, the result is the mean of the K per-class errors.
    input : {"probs", "logits"}, default="probs"
        What ``preds`` are; logits go through softmax (sigmoid for 1-D).
    sync_on_compute : bool, default=True
        Sum the state across ``torch.distributed`` processes in :meth:`compute`.
    device : torch.device, optional
        Where the state lives (default: the device of the first ``preds``).
    """

    def __init__(self, *, n_bins: int = 15, norm: str = "l1", mode: str = "top_label",
                 input: str = "probs", sync_on_compute: bool = True, device=None):
        super().__init__(input=input, sync_on_compute=sync_on_compute, device=device)
        if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}.")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}.")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
        self.n_bins = int(n_bins)
        self.norm = norm
        self.mode = mode

    def _state_shapes(self, k):
        rows = (k,) if self.mode == "classwise" else ()
        shape = (*rows, self.n_bins)
        return {"count": shape, "sum_conf": shape, "sum_acc": shape}

    @torch.no_grad()
    def update(self, preds, target, sample_weight=None) -> None:
        """Add a batch: ``preds`` (n, K) or (n,) and ``target`` (n,) class indices."""
        p, t, w = self._prepare(preds, target, sample_weight, mode=self.mode)
        if self.mode == "binary":
            if p.ndim == 2:
                if p.shape[1] != 2:
                    raise ValueError(f"mode='binary' needs preds (n,) or (n, 2); got {p.shape}.")
                p = p[:, 1]
            conf, acc = p[None, :], t.to(torch.float64)[None, :]
        elif self.mode == "top_label":
            conf, pred = p.max(dim=1)
            conf, acc = conf[None, :], (pred == t).to(torch.float64)[None, :]
        else:
            conf = p.T
            acc = (t[None, :] == torch.arange(p.shape[1], device=p.device)[:, None]).double()
        key = p.shape[1] if self.mode == "classwise" else None
        self._ensure_state(key, p.device)
        rows = conf.shape[0]
        idx = _assign_uniform(conf, self.n_bins)
        flat = (idx + self.n_bins * torch.arange(rows, device=p.device)[:, None]).reshape(-1)
        size = rows * self.n_bins
        wr = None if w is None else w.repeat(rows)
        c = conf.reshape(-1)
        a = acc.reshape(-1)
        st = self._state
        shape = st["count"].shape
        st["count"] += _bincount(flat, wr, size).reshape(shape)
        st["sum_conf"] += _bincount(flat, c if w is None else c * wr, size).reshape(shape)
        st["sum_acc"] += _bincount(flat, a if w is None else a * wr, size).reshape(shape)

    def _compute(self, state):
        count, sc, sa = state["count"], state["sum_conf"], state["sum_acc"]
        total = count.sum(dim=-1)
        if bool((total <= 0).any()):
            raise ValueError("the metric has no (positively weighted) samples.")
        nonempty = count > 0
        safe = torch.where(nonempty, count, torch.ones_like(count))
        gap = (sa - sc).abs() / safe  # |a_b - c_b|
        if self.norm == "l1":
            per = (sa - sc).abs().sum(dim=-1) / total
        elif self.norm == "l2":
            per = torch.sqrt((count * gap * gap).sum(dim=-1) / total)
        else:
            per = torch.where(nonempty, gap, torch.zeros_like(gap)).amax(dim=-1)
        if self.mode != "classwise":
            return per
        # class-wise reduction of calibkit.metrics.expected_calibration_error
        if self.norm == "l1":
            return per.mean()
        if self.norm == "l2":
            return torch.sqrt((per * per).mean())
        return per.amax()


class BrierScore(_SumStateMetric):
    """Streaming Brier score, as :func:`calibkit.metrics.brier_score`.

    Multiclass (K > 2): ``sum_i w_i sum_k (p_ik - 1[y_i = k])^2 / sum_i w_i``; binary (preds
    (n,) = P(positive), or (n, 2)): ``sum_i w_i (p_i1 - y_i)^2 / sum_i w_i`` (half the
    two-column sum, as sklearn's ``brier_score_loss``).

    Parameters are those of :class:`CalibrationError` except the binning ones.
    """

    def _state_shapes(self, key):
        return {"sum": (), "weight": ()}

    @torch.no_grad()
    def update(self, preds, target, sample_weight=None) -> None:
        p, t, w = self._prepare(preds, target, sample_weight, mode="binary")
        if p.ndim == 1:
            p = torch.stack([1 - p, p], dim=1)
        onehot = torch.zeros_like(p)
        onehot.scatter_(1, t.long()[:, None], 1.0)
        err = ((p - onehot) ** 2).sum(dim=1)
        if p.shape[1] == 2:
            err = 0.5 * err
        self._ensure_state(None, p.device)
        self._state["sum"] += err.sum() if w is None else err @ w
        self._state["weight"] += p.shape[0] if w is None else w.sum()

    def _compute(self, state):
        return state["sum"] / state["weight"]


class NegativeLogLikelihood(_SumStateMetric):
    """Streaming mean negative log-likelihood ``-sum_i w_i log p_{i, y_i} / sum_i w_i``.

    As :func:`calibkit.metrics.negative_log_likelihood`: probabilities are clipped to
    ``[PROB_EPS, 1 - PROB_EPS]`` before the log (``PROB_EPS`` of :mod:`calibkit._validation`,
    the float64 machine epsilon); logits use ``log_softmax`` directly.
    """

    def _state_shapes(self, key):
        return {"sum": (), "weight": ()}

    @torch.no_grad()
    def update(self, preds, target, sample_weight=None) -> None:
        if self.input == "logits":
            raw = preds.detach().to(torch.float64)
            if raw.ndim == 1:
                raw = torch.stack([torch.zeros_like(raw), raw], dim=1)
            _, t, w = self._prepare(raw, target, sample_weight, mode="top_label")
            logp = torch.log_softmax(raw.to(t.device), dim=1)
        else:
            p, t, w = self._prepare(preds, target, sample_weight, mode="binary")
            if p.ndim == 1:
                p = torch.stack([1 - p, p], dim=1)
            logp = torch.log(p.clamp(PROB_EPS, 1.0 - PROB_EPS))
        nll = -logp.gather(1, t.long()[:, None]).squeeze(1)
        self._ensure_state(None, logp.device)
        self._state["sum"] += nll.sum() if w is None else nll @ w
        self._state["weight"] += logp.shape[0] if w is None else w.sum()

    def _compute(self, state):
        return state["sum"] / state["weight"]


@torch.no_grad()
def expected_calibration_error(
    y_true, y_prob, *, n_bins: int = 15, norm: str = "l1", mode: str = "top_label",
    input: str = "probs", sample_weight=None,
) -> torch.Tensor:
    """Equal-width calibration error of tensors, computed on their device.

    Same definitions as :class:`CalibrationError` (``y_true`` class indices (n,), ``y_prob``
    (n, K) or (n,) for ``mode="binary"``); returns a 0-d float64 tensor on ``y_prob.device``.
    """
    metric = CalibrationError(n_bins=n_bins, norm=norm, mode=mode, input=input,
                              sync_on_compute=False)
    metric.update(y_prob, y_true, sample_weight)
    return metric.compute()


def _assign_uniform(conf: torch.Tensor, n_bins: int) -> torch.Tensor:
    # the edge values of calibkit.metrics.binning itself, so scores on an edge land in the same bin
    inner = torch.as_tensor(uniform_edges(n_bins)[1:-1], device=conf.device)
    return torch.bucketize(conf.contiguous(), inner, right=True)


def _bincount(idx: torch.Tensor, weights, size: int) -> torch.Tensor:
    out = torch.zeros(size, dtype=torch.float64, device=idx.device)
    src = torch.ones_like(idx, dtype=torch.float64) if weights is None else weights
    return out.index_add_(0, idx, src)
