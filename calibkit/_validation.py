"""Turning user input into checked float64 arrays.

Every calibrator and metric goes through these helpers, so that errors read the same
everywhere. This module is the single home of

* array conversion (numpy, lists, torch tensors) with NaN/inf/shape/emptiness checks;
* the probabilities <-> logits conversion and its clipping constant :data:`PROB_EPS`;
* label encoding (``classes_``) and soft binary targets;
* sample weights.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import numpy as np

from calibkit._chunks import chunk_rows

#: Probabilities are clipped to ``[PROB_EPS, 1 - PROB_EPS]`` before ``log`` / ``logit``.
PROB_EPS = float(np.finfo(np.float64).eps)

#: Rows of a probability matrix must sum to 1 within this absolute tolerance.
SUM_TOL = 1e-3

INPUT_KINDS = ("auto", "logits", "probs", "log_probs")


class SaturatedProbabilityWarning(UserWarning):
    """Probabilities of exactly 0 or 1 were clipped before taking logits."""


def _is_sparse(x) -> bool:
    """A scipy sparse matrix or array (scipy.sparse is not imported for it: an input can be
    sparse only once scipy.sparse has been imported)."""
    sp = sys.modules.get("scipy.sparse")
    return sp is not None and sp.issparse(x)


def to_numpy(x, *, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array without copying when possible.

    Accepts numpy arrays, array-likes and torch tensors (moved to the CPU). Raises
    ``TypeError`` for non-numeric input.
    """
    if _is_sparse(x):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required. Use "
            "'.toarray()' to convert to a dense numpy array."
        )
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, imported lazily
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from exc
    return arr


def check_array(
    x, *, name: str, ndim: tuple[int, ...] = (1, 2), dtype=np.float64, check_finite: bool = True
) -> np.ndarray:
    """Convert ``x`` to a finite, non-empty float64 array with ``ndim`` in ``ndim``.

    ``check_finite=False`` leaves the NaN/inf check to the caller (:func:`check_scores` does
    it in its own single pass over the data).

    The result is always a fresh array when a conversion happens; callers never
    modify it in place unless they made it themselves, so inputs are never mutated.
    """
    if _is_sparse(x):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required. Use "
            "'.toarray()' to convert to a dense numpy array."
        )
    arr = to_numpy(x, name=name)
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}.")
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must be numeric; an element could not be converted: {exc}"
            ) from exc
    if not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise TypeError(f"{name} must be numeric; got an array of dtype {arr.dtype}.")
    if arr.ndim not in ndim:
        want = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(
            f"{name} must be {want}; got an array of shape {arr.shape}. Reshape your data."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one sample is needed.")
    if arr.size == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    arr = arr.astype(dtype, copy=False)
    if check_finite and not np.all(np.isfinite(arr)):
        _raise_not_finite(arr, name)
    return arr


def _raise_not_finite(arr: np.ndarray, name: str) -> None:
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    raise ValueError(
        f"{name} contains {bad} NaN or infinite value(s); remove or impute them first."
    )


def check_consistent_length(*pairs: tuple[str, np.ndarray]) -> int:
    """Raise unless all named arrays have the same number of rows; return it."""
    lengths = {name: len(a) for name, a in pairs if a is not None}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise ValueError(f"Inconsistent numbers of samples: {desc}.")
    return next(iter(lengths.values()))


def check_sample_weight(sample_weight, n: int, *, rescale: bool = True) -> np.ndarray | None:
    """Validate and normalise ``sample_weight``: shape (n,), finite, non-negative, some
    positive.

    For calibrators and metrics weights only matter up to a common factor, so they are
    returned rescaled by the power of two that brings their largest value into [0.5, 1): the
    scaling is exact (no rounding), so ``w`` and ``c * w`` give bit-identical results when
    ``c`` is a power of two and agree to rounding otherwise, and sums of any weights (all
    1e307, all 1e-300) neither overflow nor underflow. ``rescale=False`` keeps them as given
    (frequency weights of a hypothesis test, whose sum is the sample size) and refuses a sum
    that is not finite.
    """
    if sample_weight is None:
        return None
    w = check_array(sample_weight, name="sample_weight", ndim=(1,))
    if len(w) != n:
        raise ValueError(f"sample_weight has {len(w)} entries but there are {n} samples.")
    if np.any(w < 0):
        raise ValueError("sample_weight must be non-negative.")
    top = w.max()
    if not top > 0:
        raise ValueError(
            "sample_weight sums to zero (all weights are zero); at least one sample needs "
            "a positive weight."
        )
    if not rescale:
        if not np.isfinite(w.sum()):
            raise ValueError("sample_weight sums to infinity; these are frequency weights (a "
                             "weight of 2 counts as two observations): scale them down.")
        return w
    return np.ldexp(w, -np.frexp(top)[1])


def frequency_weights(w: np.ndarray) -> np.ndarray:
    """Relative weights as counts of samples: rescaled to mean 1 over the samples of positive
    weight, for formulas that count samples (a prior of one sample, a test point of weight
    1, a penalty that shrinks with ``n``), so that only the ratios of the weights matter."""
    return w * (np.count_nonzero(w) / w.sum())


def check_input_kind(input: str) -> str:
    if input not in INPUT_KINDS:
        raise ValueError(f"input must be one of {INPUT_KINDS}; got {input!r}.")
    return input


# --------------------------------------------------------------------------------------
# Scores: logits or probabilities
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Validated scores in float64 together with what they are.

    ``kind`` is ``"logits"`` or ``"probs"``. For 1-D scores a logit is the log-odds of
    the positive class and a probability is P(positive); for 2-D scores logits are
    softmax inputs and probabilities are rows summing to 1.
    """

    values: np.ndarray
    kind: str
    name: str = "scores"

    @property
    def n_columns(self) -> int:
        return 1 if self.values.ndim == 1 else self.values.shape[1]

    def logits(self) -> np.ndarray:
        """Logits in float64. Probabilities are clipped to ``[PROB_EPS, 1 - PROB_EPS]``:
        1-D ``log(p) - log(1 - p)``, 2-D ``log(p)`` (a valid softmax input)."""
        if self.kind == "logits":
            return self.values
        _warn_saturated(self.values, self.name)
        p = np.clip(self.values, PROB_EPS, 1.0 - PROB_EPS)
        if p.ndim == 1:
            return np.log(p) - np.log1p(-p)
        return np.log(p)

    def probs(self) -> np.ndarray:
        """Probabilities: ``expit`` for 1-D logits, ``softmax`` over rows for 2-D logits."""
        if self.kind == "probs":
            return self.values
        if self.values.ndim == 1:
            from scipy.special import expit

            return expit(self.values)
        from scipy.special import softmax

        return softmax(self.values, axis=1)

    def log_probs(self) -> np.ndarray:
        """Row-wise log-probabilities of 2-D scores (``log_softmax`` of the logits)."""
        from scipy.special import log_softmax

        return log_softmax(self.logits(), axis=1)

    def positive(self) -> Scores:
        """The 1-D positive-class score of binary scores of shape (n,) or (n, 2).

        Probabilities give ``p[:, 1]``; logits give ``z[:, 1] - z[:, 0]`` (the log-odds).
        """
        v = self.values
        if v.ndim == 1:
            return self
        if v.shape[1] != 2:
            raise ValueError(f"binary scores need 1 or 2 columns; got {v.shape[1]}.")
        if self.kind == "probs":
            return Scores(v[:, 1], "probs", self.name)
        return Scores(v[:, 1] - v[:, 0], "logits", self.name)

    def column(self, k: int) -> Scores:
        """One-vs-rest score of column ``k`` as a 1-D probability."""
        return Scores(self.probs()[:, k], "probs", self.name)


def _rows_sum_to_one(p: np.ndarray) -> np.ndarray:
    return np.abs(p.sum(axis=1) - 1.0) <= SUM_TOL




def _scan_scores(x: np.ndarray):
    """``(min, max, every row sums to 1)`` of 1-D or 2-D scores in one pass over memory.

    Large matrices are read in row blocks that stay in cache while the three reductions run,
    instead of three full passes. NaN propagates to the min/max; +-inf shows in them.
    """
    step = chunk_rows(x.shape[1] * x.itemsize * 2) if x.ndim == 2 else x.size
    if x.ndim == 1 or step >= x.shape[0]:
        rows_ok = x.ndim == 1 or bool(np.all(_rows_sum_to_one(x)))
        return x.min(), x.max(), rows_ok
    lo, hi, rows_ok = x[:1].min(), x[:1].max(), True
    for a in range(0, x.shape[0], step):
        block = x[a : a + step]
        lo = np.minimum(lo, block.min())
        hi = np.maximum(hi, block.max())
        rows_ok = rows_ok and bool(np.all(_rows_sum_to_one(block)))
    return lo, hi, rows_ok


def check_scores(
    scores,
    *,
    input: str = "auto",
    name: str = "scores",
    strict: bool = True,
    keep_float32: bool = False,
    declared: bool = True,
) -> Scores:
    """Validate ``scores`` of shape (n,) or (n, K) and decide whether they are logits.

    ``input="auto"`` decides from the data: any value outside [0, 1] means logits; 1-D
    values all in [0, 1], or 2-D rows all in [0, 1] that sum to 1, mean probabilities;
    2-D values all in [0, 1] whose rows do not all sum to 1 are ambiguous and raise.
    ``"probs"`` requires values in [0, 1] (and rows summing to 1 within :data:`SUM_TOL`
    for 2-D input). ``"logits"`` rejects input that is plainly probabilities.
    ``"log_probs"`` is accepted as logits (softmax is shift-invariant).
    ``strict=False`` (used at predict time, once the kind is known from fit) skips the
    "these look like probabilities" check on logits.
    Taking logits of probabilities of exactly 0 or 1 (:meth:`Scores.logits`) gives a
    :class:`SaturatedProbabilityWarning`; calibrators that work on probabilities do not warn.
    ``declared=False`` words errors for callers without an ``input=`` option (metrics).
    ``keep_float32=True`` keeps float32 logits in float32 (no float64 copy of a large
    matrix); probabilities are always returned in float64.
    """
    check_input_kind(input)
    raw = to_numpy(scores, name=name)
    dtype = np.float32 if keep_float32 and raw.dtype == np.float32 else np.float64
    x = check_array(raw, name=name, dtype=dtype, check_finite=False)
    if x.ndim == 2 and x.shape[1] == 1:  # a single column is the 1-D binary score
        x = x[:, 0]
    # min, max and row sums in one blocked pass: several times cheaper than elementwise masks
    lo, hi, rows_ok = _scan_scores(x)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        _raise_not_finite(x, name)
    in_unit = bool(lo >= 0.0 and hi <= 1.0)
    looks_like_probs = in_unit and rows_ok
    if input == "log_probs":
        if np.any(x > 1e-9):
            raise ValueError(
                f"{name} were declared input='log_probs' but contain positive values; "
                "log-probabilities are <= 0. Pass input='logits' for raw logits."
            )
        return Scores(x, "logits")
    if input == "auto":
        if not in_unit:
            return Scores(x, "logits")
        if looks_like_probs:
            kind = "probs"
        else:
            raise ValueError(
                f"Cannot tell whether {name} are logits or probabilities: every value lies "
                "in [0, 1] but some rows do not sum to 1. Pass input='logits' or "
                "input='probs' explicitly."
            )
    elif input == "probs":
        # metrics have no input= option: tell their users what to do instead
        said = "were declared input='probs' but" if declared else "must be probabilities but"
        if not in_unit:
            fix = (
                "Pass input='logits' (or apply softmax/sigmoid first)."
                if declared
                else "Apply softmax/sigmoid to logits first."
            )
            raise ValueError(
                f"{name} {said} contain values outside [0, 1] (min {x.min():.4g}, max "
                f"{x.max():.4g}); these look like logits. {fix}"
            )
        if x.ndim == 2 and not looks_like_probs:
            bad = int(np.count_nonzero(~_rows_sum_to_one(x)))
            fix = "Normalise the rows, or pass input='logits'." if declared else (
                "Normalise the rows (or apply softmax to logits)."
            )
            raise ValueError(
                f"{name} {said} {bad} row(s) do not sum to 1 (tolerance {SUM_TOL}). {fix}"
            )
        kind = "probs"
    else:  # logits
        if strict and looks_like_probs and x.shape[0] > 1:
            what = "every value lies in [0, 1]" + (
                " and every row sums to 1" if x.ndim == 2 else ""
            )
            raise ValueError(
                f"{name} were declared input='logits' but {what}; these look like "
                "probabilities. Pass input='probs'."
            )
        kind = "logits"
    if kind == "probs":
        x = x.astype(np.float64, copy=False)
    return Scores(x, kind, name)


def check_probabilities(y_prob, *, name: str = "y_prob") -> np.ndarray:
    """Checked float64 probabilities of shape (n,) or (n, K), for metrics.

    The acceptance rule is :func:`check_scores` with ``input="probs"`` (values in [0, 1],
    2-D rows summing to 1 within :data:`SUM_TOL`; a single column is the 1-D P(positive)).
    Valid float64 input takes a fast path that applies the same rule in fewer passes and
    returns the array itself (no copy); anything else goes through :func:`check_scores`.
    """
    p = to_numpy(y_prob, name=name)
    if p.dtype == np.float64 and p.ndim in (1, 2) and p.size > 0 and (
        p.ndim == 1 or p.shape[1] > 1
    ):
        if p.min() >= 0.0 and p.max() <= 1.0:  # False for NaN as well
            if p.ndim == 1 or bool(np.all(_rows_sum_to_one(p))):
                return p
    return check_scores(y_prob, input="probs", name=name, declared=False).values


def check_unit_interval(p: np.ndarray, *, name: str, hint: str = "") -> np.ndarray:
    """Refuse values outside [0, 1] (NaN included): the acceptance rule of independent
    probabilities (multilabel outputs, detection scores), which need not sum to 1.

    Parameters
    ----------
    p : ndarray of any shape
        Numeric values, already converted to a numpy array.
    name : str
        The argument named in the error.
    hint : str, default=""
        Appended to the error (e.g. how to turn logits into probabilities).

    Returns
    -------
    ndarray of the shape of ``p``
        ``p`` itself.

    Raises
    ------
    ValueError
        If an entry is NaN or lies outside [0, 1]; the message gives the first such entry
        (in C order) and its index.
    """
    bad = ~((p >= 0.0) & (p <= 1.0))
    if bad.any():
        j = np.unravel_index(int(np.flatnonzero(bad)[0]), p.shape)
        at = int(j[0]) if len(j) == 1 else tuple(int(i) for i in j)
        raise ValueError(
            f"{name} must lie in [0, 1] (no NaN); entry {at} is {p[j].item()!r}."
            + (f" {hint}" if hint else "")
        )
    return p


def _warn_saturated(p: np.ndarray, name: str) -> None:
    if not (p.max() >= 1.0 or (p.ndim == 1 and p.min() <= 0.0)):
        return  # nothing can be saturated
    sat = (p == 0.0) | (p == 1.0) if p.ndim == 1 else np.any(p == 1.0, axis=1)
    n_sat = int(np.count_nonzero(sat))
    if n_sat:
        warnings.warn(
            f"{n_sat} of {len(p)} rows of {name} are saturated (probability exactly 0 or 1); "
            f"they are clipped to [{PROB_EPS:.3g}, 1 - {PROB_EPS:.3g}] before taking logits.",
            SaturatedProbabilityWarning,
            stacklevel=4,
        )


# --------------------------------------------------------------------------------------
# Labels: one rule for every calibrator, metric and predictor
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Encoded targets. ``y`` holds class indices (int) or, for soft binary targets,
    floats in [0, 1]; ``classes`` are the original labels (``[0, 1]`` when soft)."""

    y: np.ndarray
    classes: np.ndarray
    soft: bool

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def check_labels(y, *, name: str = "y", warn_column: bool = False) -> np.ndarray:
    """Labels as a checked 1-D array in one canonical dtype.

    The rule (scikit-learn's ``type_of_target`` is the reference for what is a class label):

    * booleans, integers, and floats that are all integer-valued (``[0., 1., 2.]``) are
      integer class labels, returned as int64 (object arrays of Python or numpy integers, as
      pandas gives, included);
    * strings (``str`` or object arrays of ``str``) are string class labels;
    * other finite floats are *continuous* (float64): soft targets, which only binary
      calibrators accept;
    * NaN or infinite values, ``None``, a mix of strings and numbers, bytes, dates and any
      other object raise a ``ValueError`` or ``TypeError`` that says which.

    A column vector of shape (n, 1) is flattened (with a ``DataConversionWarning`` when
    ``warn_column``, as scikit-learn estimators do); other shapes raise.
    """
    if y is None:
        # scikit-learn's wording (check_requires_y_none looks for it)
        raise ValueError(f"This estimator requires {name} to be passed, but the target {name} "
                         "is None.")
    arr = to_numpy(y, name=name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        if warn_column:  # sklearn's estimator convention (check_supervised_y_2d)
            from sklearn.exceptions import DataConversionWarning

            warnings.warn(
                f"A column-vector {name} was passed when a 1d array was expected. Please "
                f"change the shape of {name} to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=4,
            )
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample); got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; at least one sample is needed.")
    kind = arr.dtype.kind
    if kind == "O":
        arr = _object_labels(arr, name)
        kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.int64)
    if kind in "iu":
        if kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"{name} holds integer labels beyond the int64 range.")
        return arr.astype(np.int64, copy=False)
    if kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values; labels must be finite.")
        arr = arr.astype(np.float64, copy=False)
        if np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2.0**63):
            return arr.astype(np.int64)
        return arr
    if kind == "U":
        return arr
    if kind == "S":
        raise TypeError(f"{name} holds bytes; use str or integer labels (e.g. decode them).")
    if kind in "mM":
        raise TypeError(
            f"{name} holds {arr.dtype} values; labels must be integers, booleans or strings "
            f"(convert them, e.g. {name}.astype(str))."
        )
    raise TypeError(f"{name} has unsupported label dtype {arr.dtype}; use integers or strings.")


def _object_labels(arr: np.ndarray, name: str) -> np.ndarray:
    """An object array of labels as an int64, float64 or str array (see :func:`check_labels`)."""
    kinds = set()
    for v in arr:
        if v is None:
            raise ValueError(f"{name} contains None (a missing label); every sample needs one.")
        if isinstance(v, (bool, np.bool_)):
            kinds.add("b")
        elif isinstance(v, (int, np.integer)):
            kinds.add("i")
        elif isinstance(v, (float, np.floating)):
            kinds.add("f")
        elif isinstance(v, str):
            kinds.add("U")
        else:
            raise TypeError(
                f"{name} holds a label of type {type(v).__name__} ({v!r}); labels must be "
                "integers, booleans or strings."
            )
    if "U" in kinds and len(kinds) > 1:
        raise TypeError(
            f"{name} mixes strings and numbers; use labels of one type (all strings or all "
            "integers)."
        )
    if kinds == {"U"}:
        return arr.astype(str)
    if kinds == {"b"}:
        return arr.astype(bool)
    if "f" in kinds:
        return arr.astype(np.float64)
    try:
        return arr.astype(np.int64)
    except OverflowError:
        raise ValueError(f"{name} holds integer labels beyond the int64 range.") from None


def _is_soft(y: np.ndarray) -> bool:
    return y.dtype.kind == "f"


def encode_labels(
    y,
    n_classes: int,
    *,
    labels=None,
    allow_soft: bool = False,
    min_classes: int = 1,
    name: str = "y",
    warn_column: bool = False,
) -> Targets:
    """Encode labels against ``n_classes`` columns of scores: the one label encoder.

    Labels are first checked with :func:`check_labels`. Then:

    * ``labels`` given: the label of each column; every label of ``y`` must be one of them;
    * integer labels all in ``[0, n_classes)``: they are the column indices
      (``classes = arange(n_classes)``, classes may be absent from ``y``);
    * otherwise the sorted distinct labels of ``y`` must number exactly ``n_classes``
      (for binary 1-D scores ``n_classes = 2`` and the larger label is the positive class);
    * soft targets (non-integer floats in [0, 1]) are accepted only with ``allow_soft`` and
      ``n_classes == 2``, with ``classes = [0, 1]``.

    ``min_classes``: the least number of distinct labels ``y`` must hold (calibrators need
    2; metrics accept 1).
    """
    arr = check_labels(y, name=name, warn_column=warn_column)
    if _is_soft(arr):
        if not allow_soft or n_classes != 2:
            raise ValueError(
                f"Unknown label type: {name} is continuous (non-integer values); soft "
                "targets in [0, 1] are only supported by binary calibrators (scores of "
                "shape (n,) or (n, 2))."
            )
        if np.any((arr < 0) | (arr > 1)):
            raise ValueError(
                f"Unknown label type: {name} is continuous with values outside [0, 1]; "
                "soft targets must lie in [0, 1]."
            )
        return Targets(arr, np.array([0, 1]), soft=True)
    if labels is not None:
        classes = check_labels(labels, name="labels")
        if len(classes) != n_classes or len(np.unique(classes)) != n_classes:
            raise ValueError(
                f"labels must list {n_classes} distinct labels, one per score column; got "
                f"{_show(classes)}."
            )
        order = np.argsort(classes, kind="stable")
        codes = order[transform_labels(arr, classes[order], name=name)]
        _check_min_classes(codes, min_classes, classes, name)
        return Targets(codes, classes, soft=False)
    if arr.dtype.kind == "i" and arr.min() >= 0 and arr.max() < n_classes:
        _check_min_classes(arr, min_classes, np.arange(n_classes), name)
        return Targets(arr.astype(np.intp, copy=False), np.arange(n_classes), soft=False)
    classes, codes = np.unique(arr, return_inverse=True)
    if len(classes) == n_classes:
        _check_min_classes(codes, min_classes, classes, name)
        return Targets(codes.astype(np.intp, copy=False), classes, soft=False)
    if len(classes) == 1 and min_classes > 1:
        _check_min_classes(codes, min_classes, classes, name)
    raise ValueError(
        f"{name} has {len(classes)} distinct label(s) {_show(classes)} but the scores have "
        f"{n_classes} class column(s). Integer labels must lie in [0, {n_classes}); other "
        "labels must cover every column (or give labels=, the label of each column)."
    )


def transform_labels(y, classes: np.ndarray, *, name: str = "y") -> np.ndarray:
    """Indices into the sorted ``classes`` of every label of ``y``; raise on a label not in
    ``classes`` (labels of both are normalised by :func:`check_labels`)."""
    arr = check_labels(y, name=name)
    classes = check_labels(classes, name="classes")
    if (arr.dtype.kind == "U") != (classes.dtype.kind == "U"):
        raise ValueError(
            f"{name} holds {'strings' if arr.dtype.kind == 'U' else 'numbers'} but the classes "
            f"are {'strings' if classes.dtype.kind == 'U' else 'numbers'}: {_show(classes)}."
        )
    idx = np.clip(np.searchsorted(classes, arr), 0, len(classes) - 1)
    unseen = classes[idx] != arr
    if np.any(unseen):
        bad = np.unique(arr[unseen])
        raise ValueError(f"{name} contains label(s) {_show(bad)} not in the classes "
                         f"{_show(classes)}.")
    return idx.astype(np.intp)


def _check_min_classes(codes, min_classes, classes, name) -> None:
    if min_classes > 1 and len(np.unique(codes)) < min_classes:
        only = _show(classes[np.unique(codes)])
        raise ValueError(
            f"{name} contains only one class {only}; calibration needs at least "
            f"{min_classes} classes."
        )


def _show(values, limit: int = 5) -> str:
    """A short plain list of label values for messages (not a numpy repr)."""
    vals = [v.item() if hasattr(v, "item") else v for v in np.asarray(values)[:limit]]
    more = ", ..." if len(values) > limit else ""
    return "[" + ", ".join(repr(v) for v in vals) + more + "]"


def is_torch_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def like_input(out: np.ndarray, x):
    """Return ``out`` as the same kind of array as ``x``: a torch tensor on ``x``'s device
    (floating dtype of ``x`` when it has one) if ``x`` is a tensor, else ``out``."""
    if not is_torch_tensor(x):
        return out
    import torch

    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    if out.dtype.kind not in "fc":
        dtype = None
    return torch.as_tensor(out, dtype=dtype, device=x.device)


# --------------------------------------------------------------------------------------
# Parameters: one mechanism for constructor and keyword arguments
# --------------------------------------------------------------------------------------


class Interval:
    """Numbers of one kind in an interval: ``Interval("integer", 1, None)`` is ``{1, 2, ...}``,
    ``Interval("real", 0, 1, closed="neither")`` is ``(0, 1)``.

    ``kind="integer"`` accepts Python and numpy integers (never ``bool``, never a float such as
    ``1.5`` or ``2.0``); ``kind="real"`` accepts any real number except ``bool``. NaN lies in no
    interval; ``None`` as a bound means unbounded (infinities are then accepted only for
    ``kind="real"`` when ``allow_inf`` is True).
    """

    def __init__(self, kind: str, left=None, right=None, *, closed: str = "both",
                 allow_inf: bool = False):
        if kind not in ("integer", "real"):
            raise ValueError(f"kind must be 'integer' or 'real'; got {kind!r}.")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(
                f"closed must be 'both', 'left', 'right' or 'neither'; got {closed!r}."
            )
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        self.allow_inf = allow_inf

    def is_type(self, value) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return False
        if self.kind == "integer":
            return isinstance(value, (int, np.integer))
        return isinstance(value, (int, float, np.integer, np.floating))

    def accepts(self, value) -> bool:
        if not self.is_type(value):
            return False
        v = float(value) if self.kind == "real" else int(value)
        if v != v:  # NaN
            return False
        if self.kind == "real" and not self.allow_inf and v in (np.inf, -np.inf):
            return False
        lo_ok = self.left is None or (v >= self.left if self.closed in ("both", "left")
                                      else v > self.left)
        hi_ok = self.right is None or (v <= self.right if self.closed in ("both", "right")
                                       else v < self.right)
        return lo_ok and hi_ok

    def __str__(self) -> str:
        noun = "an int" if self.kind == "integer" else "a float"
        if self.left is None and self.right is None:
            return noun if self.kind == "integer" else "a finite float"
        lb = "[" if self.closed in ("both", "left") and self.left is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        left = "-inf" if self.left is None else f"{self.left:g}"
        right = "inf" if self.right is None else f"{self.right:g}"
        return f"{noun} in the range {lb}{left}, {right}{rb}"


class Options:
    """One of a fixed set of values (compared with ``==`` after a type check, so ``1`` is not
    ``True`` and ``"lac"`` is not ``b"lac"``)."""

    def __init__(self, *values):
        self.values = tuple(values)

    def accepts(self, value) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values) or any(
            isinstance(v, str) and isinstance(value, str) and value == v for v in self.values
        )

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


class InstanceOf:
    """An instance of ``cls`` (described as ``description`` in messages)."""

    def __init__(self, cls, description: str | None = None):
        self.cls = cls
        self.description = description or f"an instance of {getattr(cls, '__name__', cls)}"

    def accepts(self, value) -> bool:
        return isinstance(value, self.cls)

    def __str__(self) -> str:
        return self.description


class Predicate:
    """A constraint given by a test function and a description for messages (``None``,
    booleans, random states, callables, and class-specific checks)."""

    def __init__(self, name: str, test, description: str):
        self.name, self.test, self.description = name, test, description

    def accepts(self, value) -> bool:
        return bool(self.test(value))

    def __str__(self) -> str:
        return self.description


class HasMethods:
    """An object with all of ``methods`` (e.g. an estimator with ``fit`` and
    ``predict_proba``)."""

    def __init__(self, *methods: str):
        self.methods = methods

    def accepts(self, value) -> bool:
        return all(callable(getattr(value, m, None)) for m in self.methods)

    def __str__(self) -> str:
        return "an object with " + " and ".join(f"{m}()" for m in self.methods)


class Array:
    """A numpy array of ``ndim`` dimensions whose dtype kind is one of ``kinds`` (``"b"``
    bool, ``"i"`` integer, ``"f"`` float, ``"U"`` string), with finite values (NaN and
    infinities allowed with ``allow_nan`` / ``allow_inf``) within ``[low, high]``."""

    def __init__(self, ndim=None, kinds: str = "if", *, low=None, high=None,
                 allow_nan: bool = False, allow_inf: bool = False):
        self.ndim, self.kinds, self.low, self.high = ndim, kinds, low, high
        self.allow_nan, self.allow_inf = allow_nan, allow_inf

    def accepts(self, value) -> bool:
        if not isinstance(value, np.ndarray):
            return False
        kind = "i" if value.dtype.kind in "iu" else value.dtype.kind
        if kind not in self.kinds or (self.ndim is not None and value.ndim != self.ndim):
            return False
        if kind in "if" and value.size:
            v = value.astype(np.float64)
            if not self.allow_nan and np.isnan(v).any():
                return False
            if not self.allow_inf and np.isinf(v).any():
                return False
            finite = v[np.isfinite(v)]
            if self.low is not None and finite.size and finite.min() < self.low:
                return False
            if self.high is not None and finite.size and finite.max() > self.high:
                return False
        return True

    def __str__(self) -> str:
        dims = "an array" if self.ndim is None else f"a {self.ndim}-D array"
        rng = "" if self.low is None and self.high is None else (
            f" with values in [{self.low}, {self.high}]"
        )
        return f"{dims} of dtype kind {'/'.join(self.kinds)}{rng}"


class ListOf:
    """A list whose every item satisfies one of ``constraints``."""

    def __init__(self, *constraints):
        self.constraints = constraints

    def accepts(self, value) -> bool:
        return isinstance(value, list) and all(
            any(c.accepts(v) for c in self.constraints) for v in value
        )

    def __str__(self) -> str:
        return "a list of (" + " or ".join(str(c) for c in self.constraints) + ")"


class DictOf:
    """A dict with string keys whose every value satisfies one of ``constraints``."""

    def __init__(self, *constraints):
        self.constraints = constraints

    def accepts(self, value) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str) and any(c.accepts(v) for c in self.constraints)
            for k, v in value.items()
        )

    def __str__(self) -> str:
        return "a dict of str to (" + " or ".join(str(c) for c in self.constraints) + ")"


NONE = Predicate("none", lambda v: v is None, "None")
BOOLEAN = Predicate("boolean", lambda v: isinstance(v, (bool, np.bool_)), "a bool")
RANDOM_STATE = Predicate(
    "random_state",
    lambda v: v is None
    or (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 0)
    or isinstance(v, (np.random.RandomState, np.random.Generator)),
    "None, a non-negative int, a numpy RandomState or a numpy Generator",
)
CALLABLE = Predicate("callable", callable, "a callable")
ITERABLE = Predicate(
    "iterable",
    lambda v: hasattr(v, "__iter__") and not isinstance(v, (str, bytes, dict)),
    "an iterable",
)
DEVICE = Predicate(
    "device",
    lambda v: isinstance(v, str) or type(v).__name__ == "device",
    "a device name such as 'cpu' or 'cuda', or a torch.device",
)


def check_param(value, name: str, constraints, *, owner: str | None = None):
    """Return ``value`` when it satisfies one of ``constraints``; otherwise raise.

    ``constraints`` is a list of :class:`Interval`, :class:`Options`, :class:`InstanceOf` or
    the named constraints :data:`NONE`, :data:`BOOLEAN`, :data:`RANDOM_STATE`,
    :data:`CALLABLE`. The error is a ``ValueError`` when the value has an accepted type but
    lies outside every range or option, and a ``TypeError`` otherwise; its message names the
    parameter (and ``owner``, the class or function), what is accepted, and the value.
    """
    if any(c.accepts(value) for c in constraints):
        return value
    of = f" of {owner}" if owner else ""
    wanted = " or ".join(str(c) for c in constraints)
    right_type = any(
        (isinstance(c, Interval) and c.is_type(value))
        or (isinstance(c, Options) and any(type(value) is type(v) for v in c.values))
        for c in constraints
    )
    error = ValueError if right_type else TypeError
    raise error(f"The {name!r} parameter{of} must be {wanted}; got {value!r}.")


def check_params(owner: str, constraints: dict, **values) -> None:
    """:func:`check_param` for several keyword arguments of the public function ``owner``,
    each against its entry in ``constraints`` (the function's declared constraints)."""
    for name, value in values.items():
        check_param(value, name, constraints[name], owner=owner)


def validate_params(estimator) -> None:
    """Check every constructor parameter of ``estimator`` against the class's
    ``_parameter_constraints`` (a dict: parameter name -> list of constraints, merged over the
    class hierarchy). A parameter without an entry raises ``AttributeError``: every parameter
    of every estimator must declare what it accepts."""
    constraints = parameter_constraints(type(estimator))
    owner = type(estimator).__name__
    for name, value in estimator.get_params(deep=False).items():
        if name not in constraints:
            raise AttributeError(f"{owner} declares no constraint for its parameter {name!r}.")
        check_param(value, name, constraints[name], owner=owner)


def fitted_constraints(cls) -> dict:
    """The ``_fitted_constraints`` of ``cls`` merged over its bases (subclasses win): what
    each fitted attribute may hold, checked when a saved estimator is loaded."""
    merged: dict = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("_fitted_constraints", {}))
    return merged


def parameter_constraints(cls) -> dict:
    """The ``_parameter_constraints`` of ``cls`` merged over its bases (subclasses win)."""
    merged: dict = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("_parameter_constraints", {}))
    return merged
