"""scikit-learn meta-estimator: calibrate any classifier with any calibkit calibrator.

:class:`CalibratedClassifier` is a drop-in for ``sklearn.calibration.CalibratedClassifierCV``.
The estimator's ``decision_function`` (preferred) or ``predict_proba`` becomes the scores of a
calibkit calibrator; the conversion of those scores into logits happens in one place
(:func:`response_scores`) and is declared to the calibrator through its ``input`` parameter,
so probabilities are never mistaken for logits or the other way round.
"""

from __future__ import annotations

import importlib
import warnings
from contextlib import contextmanager
from inspect import signature
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.model_selection import LeaveOneOut, check_cv, cross_val_predict
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch, get_tags, indexable
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import (
    _check_method_params,
    _check_sample_weight,
    _num_samples,
    check_is_fitted,
    column_or_1d,
)

from calibkit.base import Calibrator

__all__ = [
    "CalibratedClassifier",
    "ConformalClassifier",
    "METHODS",
    "make_calibrator",
    "response_scores",
]

#: ``method=`` names: (module, class, parameters) of the calibrator each one builds.
#: ``"sigmoid"`` is scikit-learn's Platt scaling, with Platt's smoothed targets.
METHODS = {
    "temperature": ("calibkit.scaling", "TemperatureScaling", {}),
    "platt": ("calibkit.scaling", "PlattScaling", {}),
    "sigmoid": ("calibkit.scaling", "PlattScaling", {"target_smoothing": True}),
    "vector": ("calibkit.scaling", "VectorScaling", {}),
    "isotonic": ("calibkit.isotonic", "IsotonicCalibration", {}),
    "histogram": ("calibkit.binning", "HistogramBinning", {}),
    "beta": ("calibkit.binning", "BetaCalibration", {}),
    "venn_abers": ("calibkit.venn_abers", "VennAbers", {}),
}


class CalibratedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """A classifier whose probabilities are calibrated by a calibkit calibrator.

    Parameters
    ----------
    estimator : classifier
        Any scikit-learn classifier with ``decision_function`` or ``predict_proba``. Wrap an
        already fitted classifier in ``sklearn.frozen.FrozenEstimator`` (or pass
        ``cv="prefit"``) to calibrate it on the data given to :meth:`fit` without refitting.
    method : str or Calibrator, default="temperature"
        ``"temperature"`` (:class:`~calibkit.scaling.TemperatureScaling`), ``"platt"``
        (:class:`~calibkit.scaling.PlattScaling`), ``"sigmoid"`` (Platt scaling with
        Platt's smoothed targets, as scikit-learn's ``method="sigmoid"``), ``"vector"``,
        ``"isotonic"``, ``"histogram"``, ``"beta"``, ``"venn_abers"``, or an unfitted
        calibkit :class:`~calibkit.base.Calibrator` instance (cloned for every fold).
    cv : int, cross-validation splitter, iterable or "prefit", default=5
        How calibration data is separated from training data. An int ``k`` means stratified
        k-fold; ``"prefit"`` means the estimator is already fitted and all of ``X`` calibrates
        it (the same as passing a ``FrozenEstimator``).
    ensemble : bool or "auto", default="auto"
        ``True``: one (estimator, calibrator) pair per fold, the estimator fitted on the
        training part and the calibrator on the held-out part; ``predict_proba`` averages the
        pairs. ``False``: one calibrator fitted on out-of-fold scores
        (``cross_val_predict``) and one estimator refitted on all data. ``"auto"`` is
        ``False`` for a ``FrozenEstimator`` or ``cv="prefit"``, else ``True``. A frozen or
        prefit estimator always gets one calibrator fitted on all of ``X``.
    n_jobs : int, default=None
        Folds fitted in parallel (joblib).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels; the columns of :meth:`predict_proba`.
    calibrated_classifiers_ : list of CalibratedPair
        The fitted (estimator, calibrator) pairs (one unless ``ensemble=True``).
    response_method_ : str
        ``"decision_function"`` or ``"predict_proba"``: the output that was calibrated.
    n_features_in_ : int
        Number of features seen by the estimator (when it reports it).

    Notes
    -----
    Scores passed to the calibrator (:func:`response_scores`): a binary
    ``decision_function`` ``x`` becomes the two-column logits ``(-x/2, x/2)`` whose
    log-odds is ``x``; a multiclass ``decision_function`` is used as logits with each row
    centred (softmax is unchanged); ``predict_proba`` is passed as probabilities
    (``input="probs"``), which calibkit turns into logits as ``log p`` (multiclass) or
    ``log p1 - log p0`` (binary) after clipping to ``[eps, 1 - eps]``.
    """

    _parameter_constraints: dict = {
        "estimator": [
            HasMethods(["fit", "predict_proba"]),
            HasMethods(["fit", "decision_function"]),
        ],
        "method": [StrOptions(set(METHODS)), Calibrator],
        "cv": ["cv_object", StrOptions({"prefit"})],
        "ensemble": ["boolean", StrOptions({"auto"})],
        "n_jobs": [Integral, None],
    }

    def __init__(self, estimator, *, method="temperature", cv=5, ensemble="auto", n_jobs=None):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.ensemble = ensemble
        self.n_jobs = n_jobs

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the estimator(s) and calibrator(s).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, in any format the estimator accepts.
        y : array-like of shape (n_samples,)
            Labels of any type.
        sample_weight : array-like of shape (n_samples,), default=None
            Used by the calibrator, and by the estimator when its ``fit`` accepts it (or,
            with metadata routing enabled, when it requests it).
        **fit_params : dict
            Passed to the estimator's ``fit`` (routed when metadata routing is enabled).

        Returns
        -------
        self : CalibratedClassifier
        """
        self._validate_params()
        y = _check_y(X, y)
        X, y = indexable(X, y)
        self.classes_ = LabelEncoder().fit(y).classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"y contains only one class ({self.classes_[0]!r}); calibration needs at "
                "least two classes."
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        routed = self._route_params(sample_weight, fit_params)
        estimator = self.estimator
        prefit = self.cv == "prefit" or _is_frozen(estimator)
        ensemble = self.ensemble
        if ensemble == "auto":
            ensemble = not prefit

        if prefit:
            if self.cv == "prefit":
                check_is_fitted(estimator)
            pairs = [self._fit_pair(estimator, X, y, sample_weight)]
        else:
            cv = self._check_cv(y)
            if ensemble:
                pairs = Parallel(n_jobs=self.n_jobs)(
                    delayed(self._fit_fold)(
                        clone(estimator), X, y, train, test, sample_weight, routed.estimator.fit
                    )
                    for train, test in cv.split(X, y, **routed.splitter.split)
                )
            else:
                est = clone(estimator)
                method_name = _response_method(est)
                oof = cross_val_predict(
                    est, X, y, cv=cv, method=method_name, n_jobs=self.n_jobs,
                    params=routed.estimator.fit,
                )
                est.fit(X, y, **routed.estimator.fit)
                _check_estimator_classes(est, self.classes_)
                scores, kind = response_scores(oof, method_name)
                cal = self._fit_calibrator(scores, kind, y, sample_weight)
                pairs = [CalibratedPair(est, cal, method_name)]

        self.calibrated_classifiers_ = pairs
        self.response_method_ = pairs[0].response_method
        first = pairs[0].estimator
        if hasattr(first, "n_features_in_"):
            self.n_features_in_ = first.n_features_in_
        if hasattr(first, "feature_names_in_"):
            self.feature_names_in_ = first.feature_names_in_
        return self

    def predict_proba(self, X):
        """Calibrated probabilities, the mean over :attr:`calibrated_classifiers_`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow :attr:`classes_`.
        """
        check_is_fitted(self, "calibrated_classifiers_")
        self._check_n_features(X)
        proba = np.zeros((_num_samples(X), len(self.classes_)))
        for pair in self.calibrated_classifiers_:
            proba += pair.predict_proba(X)
        return proba / len(self.calibrated_classifiers_)

    def predict(self, X):
        """The class in :attr:`classes_` with the highest calibrated probability."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def get_metadata_routing(self):
        """Metadata routing: ``fit`` params go to the estimator's ``fit`` and the
        splitter's ``split``; ``sample_weight`` is consumed by the calibrator."""
        return (
            MetadataRouter(owner=self)
            .add_self_request(self)
            .add(
                estimator=self.estimator,
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
            .add(
                splitter=self.cv,
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = get_tags(self.estimator).input_tags.sparse
        return tags

    # ------------------------------------------------------------------ helpers
    def _route_params(self, sample_weight, fit_params):
        if _routing_enabled():
            return process_routing(self, "fit", sample_weight=sample_weight, **fit_params)
        fit_kwargs = dict(fit_params)
        if sample_weight is not None:
            if "sample_weight" in signature(self.estimator.fit).parameters:
                fit_kwargs["sample_weight"] = sample_weight
            elif not (self.cv == "prefit" or _is_frozen(self.estimator)):
                warnings.warn(
                    f"{type(self.estimator).__name__}.fit does not accept sample_weight; the "
                    "weights are used by the calibrator only.",
                    UserWarning,
                    stacklevel=3,
                )
        return Bunch(estimator=Bunch(fit=fit_kwargs), splitter=Bunch(split={}))

    def _check_cv(self, y):
        n_folds = self.cv if isinstance(self.cv, int) else getattr(self.cv, "n_splits", None)
        if isinstance(n_folds, int):
            counts = np.unique(y, return_counts=True)[1]
            if np.any(counts < n_folds):
                raise ValueError(
                    f"cv={self.cv!r} requests {n_folds} folds but the smallest class has only "
                    f"{counts.min()} sample(s); every fold needs every class. Use fewer folds "
                    "or more data."
                )
        if isinstance(self.cv, LeaveOneOut):
            raise ValueError(
                "cv=LeaveOneOut() leaves one class out of every calibration fold; use a "
                "stratified splitter instead."
            )
        return check_cv(self.cv, y, classifier=True)

    def _fit_fold(self, estimator, X, y, train, test, sample_weight, fit_params):
        from sklearn.utils import _safe_indexing

        params = _check_method_params(X, params=fit_params, indices=train)
        estimator.fit(_safe_indexing(X, train), y[train], **params)
        sw = None if sample_weight is None else sample_weight[test]
        return self._fit_pair(estimator, _safe_indexing(X, test), y[test], sw)

    def _fit_pair(self, estimator, X, y, sample_weight):
        _check_estimator_classes(estimator, self.classes_)
        method_name = _response_method(estimator)
        raw = getattr(estimator, method_name)(X)
        scores, kind = response_scores(raw, method_name)
        cal = self._fit_calibrator(scores, kind, y, sample_weight)
        return CalibratedPair(estimator, cal, method_name)

    def _fit_calibrator(self, scores, kind, y, sample_weight):
        cal = make_calibrator(self.method)
        if "input" in cal.get_params(deep=False):
            cal.set_params(input=kind)
        # integer codes: every column of the scores is a class of classes_, even when a
        # calibration fold happens to miss one of them
        codes = np.searchsorted(self.classes_, y)
        return cal.fit(scores, codes, sample_weight=sample_weight)

    def _check_n_features(self, X):
        n = getattr(self, "n_features_in_", None)
        shape = getattr(X, "shape", None)
        if n is not None and shape is not None and len(shape) == 2 and shape[1] != n:
            raise ValueError(
                f"X has {shape[1]} features, but {type(self).__name__} is expecting {n} "
                "features as input."
            )


class ConformalClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Split conformal prediction sets for any scikit-learn classifier.

    The estimator is fitted on one part of the data and
    :class:`calibkit.conformal.SplitConformalClassifier` is fitted on its scores for the
    other part (``predict_proba``, else ``decision_function`` as logits, see
    :func:`response_scores`). A ``FrozenEstimator`` is not refitted: all the data given to
    :meth:`fit` calibrate it.

    Parameters
    ----------
    estimator : classifier
        Any classifier with ``predict_proba`` or ``decision_function``.
    conformity_score : {"lac", "aps", "raps", "topk"}, default="lac"
        Non-conformity score (the ``score`` of ``SplitConformalClassifier``; named as in
        MAPIE, and not ``score``, which is the accuracy method of every sklearn classifier).
    alpha, confidence_level : float in (0, 1) or None, default=None
        Miscoverage, or ``confidence_level = 1 - alpha`` (give at most one; neither means
        ``alpha=0.1``).
    class_conditional : bool, default=False
        Mondrian by true label: coverage ``1 - alpha`` within every class.
    calibration_size : float in (0, 1), default=0.25
        Fraction of the data held out (stratified) for calibration when the estimator is not
        frozen.
    random_state : int, RandomState or None, default=None
        Seeds the train/calibration split and the conformal predictor.
    conformal_params : dict or None, default=None
        Other parameters of ``SplitConformalClassifier`` (``randomized``,
        ``include_last_label``, ``k_reg``, ``lam``, ``raps_size``).

    Attributes
    ----------
    estimator_ : classifier
        The fitted estimator.
    conformal_ : SplitConformalClassifier
        The fitted conformal predictor.
    classes_ : ndarray of shape (n_classes,)
        Labels; the columns of :meth:`predict_set`.
    response_method_ : str
        ``"predict_proba"`` or ``"decision_function"``.
    """

    def __init__(self, estimator, *, conformity_score="lac", alpha=None, confidence_level=None,
                 class_conditional=False, calibration_size=0.25, random_state=None,
                 conformal_params=None):
        self.estimator = estimator
        self.conformity_score = conformity_score
        self.alpha = alpha
        self.confidence_level = confidence_level
        self.class_conditional = class_conditional
        self.calibration_size = calibration_size
        self.random_state = random_state
        self.conformal_params = conformal_params

    def fit(self, X, y, **fit_params):
        """Fit the estimator on a training part and the conformal predictor on the rest.

        Returns
        -------
        self : ConformalClassifier
        """
        from sklearn.model_selection import train_test_split
        from sklearn.utils import _safe_indexing

        from calibkit.conformal import SplitConformalClassifier

        y = _check_y(X, y)
        X, y = indexable(X, y)
        self.classes_ = LabelEncoder().fit(y).classes_
        if len(self.classes_) < 2:
            raise ValueError(f"y contains only one class ({self.classes_[0]!r}); conformal "
                             "sets need at least two classes.")
        if _is_frozen(self.estimator):
            est, X_cal, y_cal = self.estimator, X, y
        else:
            size = self.calibration_size
            if not (isinstance(size, float) and 0.0 < size < 1.0):
                raise ValueError(f"calibration_size must be a float in (0, 1); got {size!r}.")
            idx = np.arange(_num_samples(X))
            train, cal = train_test_split(idx, test_size=size, stratify=y,
                                          random_state=self.random_state)
            params = _check_method_params(X, params=fit_params, indices=train)
            est = clone(self.estimator).fit(_safe_indexing(X, train), y[train], **params)
            X_cal, y_cal = _safe_indexing(X, cal), y[cal]
        _check_estimator_classes(est, self.classes_)
        self.response_method_ = _conformal_response_method(est)
        scores, kind = response_scores(getattr(est, self.response_method_)(X_cal),
                                       self.response_method_)
        conformal = SplitConformalClassifier(
            self.conformity_score, alpha=self.alpha, confidence_level=self.confidence_level,
            class_conditional=self.class_conditional, input=kind,
            random_state=self.random_state, **(self.conformal_params or {}),
        )
        self.conformal_ = conformal.fit(scores, np.searchsorted(self.classes_, y_cal))
        self.estimator_ = est
        if hasattr(est, "n_features_in_"):
            self.n_features_in_ = est.n_features_in_
        return self

    def predict_set(self, X):
        """Boolean mask (n_samples, n_classes): ``[i, k]`` is True when ``classes_[k]`` is in
        the prediction set of sample ``i``."""
        scores = self._scores(X)
        with _quiet_saturation():
            return self.conformal_.predict_set(scores)

    def predict_pvalues(self, X, *, smoothed=False):
        """Conformal p-value of every (sample, class) pair, shape (n_samples, n_classes)."""
        scores = self._scores(X)
        with _quiet_saturation():
            return self.conformal_.predict_pvalues(scores, smoothed=smoothed)

    def predict(self, X):
        """The estimator's point prediction."""
        check_is_fitted(self, "conformal_")
        return self.estimator_.predict(X)

    def predict_proba(self, X):
        """The estimator's (uncalibrated) probabilities."""
        check_is_fitted(self, "conformal_")
        return self.estimator_.predict_proba(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = get_tags(self.estimator).input_tags.sparse
        return tags

    def _scores(self, X):
        check_is_fitted(self, "conformal_")
        CalibratedClassifier._check_n_features(self, X)
        raw = getattr(self.estimator_, self.response_method_)(X)
        return response_scores(raw, self.response_method_)[0]


class CalibratedPair:
    """A fitted estimator and the calibrator of its ``response_method`` output."""

    def __init__(self, estimator, calibrator, response_method):
        self.estimator = estimator
        self.calibrator = calibrator
        self.response_method = response_method

    def predict_proba(self, X) -> np.ndarray:
        raw = getattr(self.estimator, self.response_method)(X)
        scores, _ = response_scores(raw, self.response_method)
        with _quiet_saturation():
            return np.asarray(self.calibrator.predict_proba(scores))

    def __repr__(self) -> str:
        return f"CalibratedPair({self.estimator!r}, {self.calibrator!r})"


def make_calibrator(method) -> Calibrator:
    """A fresh unfitted calibrator for a ``method=`` name or a calibrator instance."""
    if isinstance(method, Calibrator):
        return clone(method)
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {sorted(METHODS)} or a calibkit Calibrator instance; "
            f"got {method!r}."
        )
    module, name, params = METHODS[method]
    return getattr(importlib.import_module(module), name)(**params)


def response_scores(raw, response_method: str) -> tuple[np.ndarray, str]:
    """Turn ``decision_function`` or ``predict_proba`` output into calibrator scores.

    Returns ``(scores, kind)`` with ``kind`` the calibrator ``input=`` value.
    Binary decision values ``x`` of shape (n,) or (n, 1) become logits ``(-x/2, x/2)``
    (log-odds ``x``). Multiclass decision values ``d`` become ``d - mean(d, axis=1)``, which
    leaves the softmax unchanged and keeps rows from ever looking like probabilities.
    ``predict_proba`` output is returned as probabilities.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if response_method == "predict_proba":
        return raw, "probs"
    if raw.ndim == 1 or raw.shape[1] == 1:
        x = raw.reshape(-1)
        return np.column_stack([-0.5 * x, 0.5 * x]), "logits"
    return raw - raw.mean(axis=1, keepdims=True), "logits"


def _response_method(estimator) -> str:
    for name in ("decision_function", "predict_proba"):
        if hasattr(estimator, name):
            return name
    raise TypeError(
        f"{type(estimator).__name__} has neither decision_function nor predict_proba; "
        "CalibratedClassifier needs one of them."
    )


@contextmanager
def _quiet_saturation():
    """At predict time, saturated probabilities were already reported by ``fit``."""
    from calibkit._validation import SaturatedProbabilityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturatedProbabilityWarning)
        yield


def _check_y(X, y) -> np.ndarray:
    """1-D classification targets (a column vector warns, as in sklearn), non-empty."""
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    if len(y) == 0:
        raise ValueError("y is empty (0 samples); at least two samples of two classes are "
                         "needed.")
    return y


def _conformal_response_method(estimator) -> str:
    # conformal scores are probabilities: use them when the estimator has them
    if hasattr(estimator, "predict_proba"):
        return "predict_proba"
    return _response_method(estimator)


def _check_estimator_classes(estimator, classes) -> None:
    est_classes = getattr(estimator, "classes_", None)
    if est_classes is None:
        return
    if len(est_classes) != len(classes) or np.any(np.asarray(est_classes) != classes):
        raise ValueError(
            f"the estimator was fitted on classes {list(est_classes)} but y has classes "
            f"{list(classes)}; every training fold must contain every class (use a "
            "stratified splitter) and a prefit estimator must know all classes of y."
        )


def _is_frozen(estimator) -> bool:
    try:
        from sklearn.frozen import FrozenEstimator
    except ImportError:  # pragma: no cover - sklearn < 1.6
        return False
    return isinstance(estimator, FrozenEstimator)
