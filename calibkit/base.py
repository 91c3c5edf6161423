"""The calibrator interface shared by every calibkit calibrator.

* :class:`Calibrator`: the sklearn-style base (``fit`` / ``predict_proba`` / ``transform`` /
  ``predict``) with JSON/npz persistence (``to_dict`` / ``from_dict`` / ``save`` / ``load``).
* :class:`BinaryCalibrator`: the base of calibrators that map one score to one probability
  (Platt, isotonic, histogram, beta, Venn-ABERS). It handles binary scores of shape (n,) or
  (n, 2), soft targets, and multiclass scores through one-vs-rest with renormalisation.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import ConvergenceWarning  # noqa: F401  (re-exported)
from sklearn.utils.validation import check_is_fitted

from calibkit import _persistence
from calibkit._validation import (
    INPUT_KINDS,
    Array,
    InstanceOf,
    Interval,
    ListOf,
    Options,
    Scores,
    Targets,
    check_consistent_length,
    check_sample_weight,
    check_scores,
    encode_labels,
    is_torch_tensor,
    like_input,
    validate_params,
)

__all__ = ["Persistable", "Calibrator", "BinaryCalibrator", "ConvergenceWarning", "load", "save"]


class Persistable:
    """Mixin: JSON/npz persistence of an estimator's parameters and fitted state.

    ``to_dict`` / ``from_dict`` / ``save`` / ``load`` store the class name, ``get_params()``
    and every public attribute ending in ``_``; loading looks the class up in a registry of
    calibkit classes (never pickle, never arbitrary imports).
    """

    _registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Persistable._registry[cls.__name__] = cls

    #: what each fitted attribute may hold (merged over subclasses), checked at load
    _fitted_constraints: ClassVar[dict] = {}

    def to_dict(self) -> dict:
        """The class name, parameters and fitted state as a JSON-safe dict (strict JSON:
        non-finite floats are written as tagged strings).

        Returns
        -------
        dict
            Read back by :meth:`from_dict`.
        """
        return _persistence.encode(self, None)

    @classmethod
    def from_dict(cls, data: dict):
        """Rebuild an estimator from :meth:`to_dict` output, checked as :func:`load` checks
        a file.

        Parameters
        ----------
        data : dict
            The output of :meth:`to_dict`.

        Returns
        -------
        Persistable
            An instance of this class (or a subclass); a ``ValueError`` names any
            inconsistency, including a dict that holds another class.
        """
        try:
            obj = _persistence.decode(data)
        except ValueError as exc:
            raise ValueError(f"the dict: {exc}") from exc
        return _expect(cls, obj, "the dict")

    def save(self, path) -> None:
        """Save to ``path``: ``.npz`` stores arrays natively, anything else is strict JSON.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (see :func:`save`).
        """
        save(self, path)

    @classmethod
    def load(cls, path):
        """Load an estimator saved with :meth:`save` (no pickle involved; the file is checked
        as untrusted input).

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save` or :func:`save`.

        Returns
        -------
        Persistable
            An instance of this class (or a subclass); a file that holds another class
            raises ``ValueError``.
        """
        return _expect(cls, load(path), str(path))

    def _check_fitted_state(self) -> None:
        """Check a loaded fitted state as a whole (each attribute was checked against
        ``_fitted_constraints`` already); raise ``ValueError`` when it is inconsistent."""


def _expect(cls, obj, where: str):
    if not isinstance(obj, cls):
        raise ValueError(f"{where} holds a {type(obj).__name__}, not a {cls.__name__}.")
    return obj


class Calibrator(Persistable, ClassifierMixin, BaseEstimator):
    """Base class: subclasses implement ``_fit(scores, targets, sample_weight)`` and
    ``_predict_proba(scores) -> ndarray (n, n_classes)``.

    Fitted attributes common to all calibrators: ``classes_`` (original labels, columns of
    ``predict_proba``), ``n_features_in_`` (score columns seen in fit; 1 for 1-D scores) and
    ``input_kind_`` (``"logits"`` or ``"probs"``, decided at fit and reused at predict).
    """

    #: what each constructor parameter accepts (merged over subclasses; see
    #: :func:`calibkit._validation.validate_params`)
    _parameter_constraints: ClassVar[dict] = {"input": [Options(*INPUT_KINDS)]}
    _fitted_constraints: ClassVar[dict] = {
        "classes_": [Array(1, "iU")],
        "n_features_in_": [Interval("integer", 1, None)],
        "input_kind_": [Options("logits", "probs")],
    }
    #: whether binary soft targets y in [0, 1] are accepted
    _supports_soft_targets: ClassVar[bool] = False
    #: whether ``fit`` receives float32 logits as float32 (the subclass then owns precision)
    _fit_keeps_float32: ClassVar[bool] = False

    # ------------------------------------------------------------------ public API
    def fit(self, scores, y, *, sample_weight=None):
        """Fit on calibration scores and labels; every earlier fitted state is discarded.

        Parameters
        ----------
        scores : array-like or torch tensor of shape (n_samples,) or (n_samples, n_classes)
            Calibration scores: logits or probabilities, as declared by ``input``. 1-D scores
            (or two columns) are a binary problem, ``classes_[1]`` the positive class.
        y : array-like of shape (n_samples,)
            Labels of any type (integers, integer-valued floats, strings, objects), or soft
            targets in [0, 1] for binary calibrators.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; only their ratios matter (the result is the same for ``w``
            and ``c * w``).

        Returns
        -------
        self
        """
        validate_params(self)
        reset_fitted_state(self)
        # a torch tensor input stays available to _fit (scaling methods fit on its device)
        self._torch_scores = scores if is_torch_tensor(scores) else None
        try:
            return self._fit_checked(scores, y, sample_weight)
        finally:
            del self._torch_scores

    def _fit_checked(self, scores, y, sample_weight):
        s = check_scores(
            scores, input=getattr(self, "input", "auto"), keep_float32=self._fit_keeps_float32
        )
        t = encode_labels(y, max(s.n_columns, 2), allow_soft=self._supports_soft_targets,
                          min_classes=2, warn_column=True)
        n = check_consistent_length(("scores", s.values), ("y", t.y))
        w = check_sample_weight(sample_weight, n)
        self._fit(s, t, w)
        self.classes_ = t.classes
        self.n_features_in_ = s.n_columns
        self.input_kind_ = s.kind
        return self

    def predict_proba(self, scores):
        """Calibrated probabilities, shape (n, n_classes), columns following ``classes_``.

        numpy in, numpy out; a torch tensor in gives a tensor on the same device.

        Parameters
        ----------
        scores : array-like or torch tensor of shape (n_samples,) or (n_samples, n_classes)
            Scores of the kind (logits or probabilities) and width seen in :meth:`fit`.

        Returns
        -------
        ndarray or torch tensor of shape (n_samples, n_classes)
            Rows summing to 1.
        """
        s = self._check_predict_scores(scores)
        return like_input(self._predict_proba(s), scores)

    def transform(self, scores):
        """Same as :meth:`predict_proba` (for use inside pipelines).

        Parameters
        ----------
        scores : array-like or torch tensor of shape (n_samples,) or (n_samples, n_classes)
            Scores of the kind and width seen in :meth:`fit`.

        Returns
        -------
        ndarray or torch tensor of shape (n_samples, n_classes)
            The calibrated probabilities.
        """
        return self.predict_proba(scores)

    def fit_transform(self, scores, y, *, sample_weight=None):
        """``fit(scores, y)`` then ``transform(scores)``.

        Parameters
        ----------
        scores : array-like or torch tensor of shape (n_samples,) or (n_samples, n_classes)
            Calibration scores, as in :meth:`fit`.
        y : array-like of shape (n_samples,)
            Labels (or binary soft targets), as in :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the fit.

        Returns
        -------
        ndarray or torch tensor of shape (n_samples, n_classes)
            The calibrated probabilities of ``scores`` under the fitted map, columns following
            ``classes_`` (a tensor on the input's device for tensor input).
        """
        return self.fit(scores, y, sample_weight=sample_weight).transform(scores)

    def predict(self, scores):
        """Labels from ``classes_`` with the highest calibrated probability.

        Parameters
        ----------
        scores : array-like or torch tensor of shape (n_samples,) or (n_samples, n_classes)
            Scores of the kind and width seen in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``classes_[argmax_k q_k]`` (the first class on ties).
        """
        s = self._check_predict_scores(scores)
        return self.classes_[np.argmax(self._predict_proba(s), axis=1)]

    # ------------------------------------------------------------------ helpers
    def _check_fitted_state(self) -> None:
        """A loaded calibrator must be complete, its classes must match its score columns,
        and it must predict probability rows on probe scores (which catches arrays of the
        wrong shape anywhere in the state)."""
        for name in ("classes_", "n_features_in_", "input_kind_"):
            if not hasattr(self, name):
                raise ValueError(f"the fitted attribute {name} is missing.")
        k = len(self.classes_)
        if k != max(self.n_features_in_, 2) or len(np.unique(self.classes_)) != k:
            raise ValueError(f"classes_ holds {k} labels for {self.n_features_in_} score "
                             "column(s); it needs one distinct label per class.")
        self._check_own_fitted_state()
        probe = _probe_scores(self.n_features_in_, self.input_kind_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = np.asarray(self.predict_proba(probe))
        if q.shape != (len(probe), k) or not np.all(np.isfinite(q)) or np.any(
            (q < 0) | (q > 1)
        ) or not np.allclose(q.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("it does not predict probabilities of the right shape on probe "
                             "scores.")

    def _check_own_fitted_state(self) -> None:
        """Class-specific consistency checks of a loaded state (default: none)."""

    def _check_predict_scores(self, scores) -> Scores:
        return check_predict_scores(self, scores, fitted_attribute="classes_")

    def __sklearn_tags__(self):
        from sklearn.utils import TransformerTags

        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        # transform is predict_proba: a float64 output whatever the input dtype
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags

    def _fit(self, scores: Scores, targets: Targets, sample_weight):
        raise NotImplementedError

    def _predict_proba(self, scores: Scores) -> np.ndarray:
        raise NotImplementedError


class BinaryCalibrator(Calibrator):
    """Base of calibrators of one score: ``_fit_binary(s, y, w)`` with 1-D ``Scores`` and
    float targets in [0, 1], and ``_predict_binary(s) -> q`` with q = P(positive).

    Binary scores (n,) or (n, 2) are fitted directly (``classes_[1]`` is the positive class;
    soft targets in [0, 1] are accepted). Multiclass scores (n, K) become K or K(K-1)/2
    binary problems, one fitted copy of the calibrator each (in ``estimators_``); this is the
    one implementation of both strategies in calibkit:

    * one-vs-rest (the default): copy k is fitted on the score of class k (the softmax
      probability ``p_k``, see :meth:`_class_scores`) against ``1[y == k]``; the outputs
      ``q_k`` are renormalised to sum to 1 (a row where every ``q_k`` is 0 becomes uniform);
    * one-vs-one (for calibrators with ``multiclass="one_vs_one"``): copy (i, j), i < j, is
      fitted on the samples of classes i and j with the score of ``P(j | i or j)``
      (``p_j / (p_i + p_j)`` for probabilities, ``z_j - z_i`` for logits) against
      ``1[y == j]``; the pairwise probabilities are coupled by :func:`couple_pairwise` and
      renormalised. ``pairs_`` holds the (i, j) of each copy.
    """

    _supports_soft_targets = True
    _fitted_constraints: ClassVar[dict] = {
        "estimators_": [ListOf(InstanceOf(BaseEstimator, "a calibkit calibrator"))],
        "pairs_": [Array(2, "i", low=0)],
    }

    def _check_fitted_state(self) -> None:
        k = getattr(self, "n_features_in_", 0)
        if k > 2 and self._multiclass_strategy() in ("one_vs_rest", "one_vs_one"):
            n = k * (k - 1) // 2 if self._multiclass_strategy() == "one_vs_one" else k
            ests = getattr(self, "estimators_", None)
            if ests is None or len(ests) != n or any(type(e) is not type(self) for e in ests):
                raise ValueError(f"a fit on {k} classes needs {n} binary {type(self).__name__} "
                                 "copies in estimators_.")
            if self._multiclass_strategy() == "one_vs_one" and not np.array_equal(
                getattr(self, "pairs_", None), _pairs(k)
            ):
                raise ValueError("pairs_ must list the class pairs (i, j), i < j, in order.")
        super()._check_fitted_state()

    def _fit(self, scores, targets, sample_weight):
        if scores.n_columns <= 2:
            y = targets.y if targets.soft else targets.y.astype(np.float64)
            self._fit_binary(scores.positive(), y, sample_weight)
            return
        strategy = self._multiclass_strategy()
        estimators = []
        for score, rows, y01 in _binary_problems(self, scores, targets.y, strategy):
            est = clone(self)
            w = sample_weight if (rows is None or sample_weight is None) else sample_weight[rows]
            est._fit_binary(score, y01, w)
            est.classes_ = np.array([0, 1])
            est.n_features_in_ = 1
            est.input_kind_ = score.kind
            estimators.append(est)
        self.estimators_ = estimators
        if strategy == "one_vs_one":
            self.pairs_ = _pairs(scores.n_columns)
        if "n_iter_" in self._fitted_constraints:
            # an iterative binary calibrator reports its slowest binary problem
            self.n_iter_ = max(est.n_iter_ for est in estimators)
            self.converged_ = all(est.converged_ for est in estimators)

    def _predict_proba(self, scores):
        if scores.n_columns <= 2:
            q = self._predict_binary(scores.positive())
            return np.column_stack([1.0 - q, q])
        strategy = self._multiclass_strategy()
        q = np.column_stack([
            est._predict_binary(score)
            for est, (score, _, _) in zip(
                self.estimators_, _binary_problems(self, scores, None, strategy), strict=True
            )
        ])
        if strategy == "one_vs_one":
            q = couple_pairwise(q, self.pairs_, scores.n_columns)
        return renormalise(q)

    def _multiclass_strategy(self) -> str:
        return getattr(self, "multiclass", "one_vs_rest")

    def _class_scores(self, scores: Scores) -> Scores:
        """The (n, K) scores whose column k is fitted one-vs-rest for class k: the softmax
        probabilities (computed once, not once per class)."""
        return Scores(scores.probs(), "probs")

    def _fit_binary(self, s: Scores, y: np.ndarray, w) -> None:
        raise NotImplementedError

    def _predict_binary(self, s: Scores) -> np.ndarray:
        raise NotImplementedError


def _probe_scores(n_columns: int, kind: str) -> np.ndarray:
    """Deterministic scores spread over the range a calibrator sees: logits in [-6, 6]
    (1-D log-odds for one column), or their softmax / sigmoid."""
    grid = np.linspace(-6.0, 6.0, 9)
    if n_columns == 1:
        z = grid
        return z if kind == "logits" else 1.0 / (1.0 + np.exp(-z))
    z = np.stack([np.roll(grid, j)[: len(grid)] * (1.0 if j % 2 else -0.5)
                  for j in range(n_columns)], axis=1)
    if kind == "logits":
        return z
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _pairs(n_classes: int) -> np.ndarray:
    return np.array([(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)],
                    dtype=np.intp).reshape(-1, 2)


def _binary_problems(calibrator, scores: Scores, y, strategy: str):
    """Yield ``(score, rows, target)`` of each binary problem of a multiclass fit: the 1-D
    ``Scores``, the rows it covers (None for all) and the 0/1 target (None when ``y`` is
    None, at predict time)."""
    k = scores.n_columns
    if strategy == "one_vs_rest":
        cols = calibrator._class_scores(scores)
        for c in range(k):
            target = None if y is None else (y == c).astype(np.float64)
            yield Scores(cols.values[:, c], cols.kind, scores.name), None, target
        return
    for i, j in _pairs(k):
        rows = None if y is None else np.flatnonzero((y == i) | (y == j))
        v = scores.values if rows is None else scores.values[rows]
        if scores.kind == "logits":
            score = Scores(v[:, j] - v[:, i], "logits", scores.name)
        else:
            total = v[:, i] + v[:, j]
            share = np.full(len(v), 0.5)
            np.divide(v[:, j], total, out=share, where=total > 0)
            score = Scores(share, "probs", scores.name)
        target = None if y is None else (y[rows] == j).astype(np.float64)
        yield score, rows, target


def couple_pairwise(q_pair: np.ndarray, pairs: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities from pairwise ones: ``q_i = 1 / (sum_{j != i} 1 / P(i | i or j)
    - (K - 2))`` (the coupling of the ``venn-abers`` package), before renormalisation.

    ``q_pair[:, m]`` is ``P(j | i or j)`` for ``pairs[m] = (i, j)``. A zero pairwise
    probability gives ``q_i = 0``.

    Parameters
    ----------
    q_pair : ndarray of shape (n, n_pairs)
        Pairwise probabilities ``P(j | i or j)``.
    pairs : ndarray of shape (n_pairs, 2)
        The class pair ``(i, j)``, ``i < j``, of each column of ``q_pair``.
    n_classes : int
        ``K``.

    Returns
    -------
    ndarray of shape (n, n_classes)
        The coupled ``q_i``, not yet renormalised.
    """
    inv_sum = np.zeros((len(q_pair), n_classes))
    with np.errstate(divide="ignore"):
        for m, (i, j) in enumerate(pairs):
            inv_sum[:, i] += 1.0 / (1.0 - q_pair[:, m])
            inv_sum[:, j] += 1.0 / q_pair[:, m]
        return 1.0 / (inv_sum - (n_classes - 2))


def reset_fitted_state(estimator) -> None:
    """Delete every fitted attribute (public names ending in ``_``), so that a refit keeps
    nothing of an earlier fit."""
    for name in [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]:
        delattr(estimator, name)


def check_predict_scores(estimator, scores, *, fitted_attribute: str) -> Scores:
    """Scores at predict time: the estimator is fitted (``fitted_attribute`` is set), the
    kind of scores decided in fit (``input_kind_``) is reused, and the number of columns
    equals ``n_features_in_``."""
    check_is_fitted(estimator, fitted_attribute)
    s = check_scores(scores, input=estimator.input_kind_, strict=False)
    if s.n_columns != estimator.n_features_in_:
        raise ValueError(
            f"X has {s.n_columns} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input: scores need the same number of "
            "columns as in fit. Reshape your data."
        )
    return s


def renormalise(q: np.ndarray) -> np.ndarray:
    """Divide each row by its sum; rows summing to 0 become uniform."""
    total = q.sum(axis=1, keepdims=True)
    out = np.full_like(q, 1.0 / q.shape[1])
    np.divide(q, total, out=out, where=total > 0)
    return out


# --------------------------------------------------------------------------------------
# Persistence: the format and its checks live in calibkit._persistence
# --------------------------------------------------------------------------------------


def save(estimator: Persistable, path) -> None:
    """Save a calibkit estimator: ``.npz`` stores arrays natively, anything else is strict
    JSON (no pickle, no non-standard tokens).

    Parameters
    ----------
    estimator : Persistable
        A calibkit calibrator, conformal predictor or detection calibrator (fitted or not).
    path : str or os.PathLike
        The file to write; a name ending in ``.npz`` selects the npz format, any other the
        JSON format. Read it back with :func:`load`.
    """
    if not isinstance(estimator, Persistable):
        raise TypeError(f"save() takes a calibkit estimator; got {type(estimator).__name__}.")
    _persistence.save(estimator, path)


def load(path) -> Persistable:
    """Load any calibkit calibrator, conformal predictor or detection calibrator saved with
    :func:`save`, treating the file as untrusted input (see :mod:`calibkit._persistence`):
    anything else, or anything inconsistent, raises a ``ValueError`` naming the file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` or JSON file written by :func:`save`.

    Returns
    -------
    Persistable
        The estimator, with its parameters and fitted state.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a valid calibkit file.
    """
    return _persistence.load(path)


def find_persistable_class(name: str):
    """The calibkit class called ``name``, or None: a class already defined, else one of the
    modules of the calibrator registry and the conformal predictors, else the module that an
    installed package registers for ``name`` under the ``calibkit.persistable`` entry-point
    group (``calibkit.detection`` registers ``DetectionCalibrator`` there), so that the core
    never imports the layers above it. Only registered modules are imported, never a name
    read from a file."""
    import importlib
    from importlib.metadata import entry_points

    from calibkit.registry import CALIBRATORS

    if name in Persistable._registry:
        return Persistable._registry[name]
    for module in (*dict.fromkeys(spec.module for spec in CALIBRATORS.values()),
                   "calibkit.conformal.split"):
        importlib.import_module(module)
        if name in Persistable._registry:
            return Persistable._registry[name]
    for ep in entry_points(group="calibkit.persistable"):
        if ep.name == name:
            importlib.import_module(ep.value)
            break
    return Persistable._registry.get(name)
