"""scikit-learn meta-estimator: calibrate any classifier with any calibkit calibrator.

:class:`CalibratedClassifier` is a drop-in for ``sklearn.calibration.CalibratedClassifierCV``.
The estimator's ``decision_function`` (preferred) or ``predict_proba`` becomes the scores of a
calibkit calibrator; the conversion of those scores into logits happens in one place
(:func:`response_scores`) and is declared to the calibrator through its ``input`` parameter,
so probabilities are never mistaken for logits or the other way round.
"""

from __future__ import annotations

import warnings
from inspect import signature
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.model_selection import LeaveOneOut, check_cv, cross_val_predict
from sklearn.utils import Bunch, get_tags, indexable
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import (
    _check_method_params,
    _check_sample_weight,
    _num_samples,
    check_is_fitted,
)

from calibkit._validation import (
    BOOLEAN,
    ITERABLE,
    NONE,
    HasMethods,
    InstanceOf,
    Interval,
    Options,
    check_labels,
    transform_labels,
    validate_params,
)
from calibkit._wrapping import (
    check_estimator_classes,
    check_n_features,
    check_y,
    is_frozen,
    quiet_saturation,
    response_method,
    response_scores,
)
from calibkit.base import Calibrator
from calibkit.registry import CALIBRATORS, make_calibrator

__all__ = ["CalibratedClassifier"]


class CalibratedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """A classifier whose probabilities are calibrated by a calibkit calibrator.

    Parameters
    ----------
    estimator : classifier
        Any scikit-learn classifier with ``decision_function`` or ``predict_proba``. Wrap an
        already fitted classifier in ``sklearn.frozen.FrozenEstimator`` (or pass
        ``cv="prefit"``) to calibrate it on the data given to :meth:`fit` without refitting.
    method : str or Calibrator, default="temperature"
        A name of the calibrator registry (:data:`calibkit.registry.CALIBRATORS`):
        ``"temperature"``, ``"platt"``, ``"sigmoid"`` (Platt scaling with Platt's smoothed
        targets, as scikit-learn's ``method="sigmoid"``), ``"vector"``, ``"isotonic"``,
        ``"histogram"``, ``"beta"``, ``"linear"``, ``"venn_abers"``, ``"identity"``, ...;
        or an unfitted calibkit :class:`~calibkit.base.Calibrator` instance (cloned for
        every fold).
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

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [HasMethods("fit", "predict_proba"), HasMethods("fit", "decision_function")],
        "method": [Options(*CALIBRATORS), InstanceOf(Calibrator, "a calibkit Calibrator")],
        "cv": [Interval("integer", 2, None), HasMethods("split", "get_n_splits"),
               Options("prefit"), ITERABLE],
        "ensemble": [BOOLEAN, Options("auto")],
        "n_jobs": [NONE, Interval("integer")],
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
        validate_params(self)
        y = check_y(X, y)
        X, y = indexable(X, y)
        self.classes_ = np.unique(check_labels(y, name="y"))
        if len(self.classes_) < 2:
            raise ValueError(
                f"y contains only one class ({self.classes_[0]!r}); calibration needs at "
                "least two classes."
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        routed = self._route_params(sample_weight, fit_params)
        estimator = self.estimator
        prefit = self.cv == "prefit" or is_frozen(estimator)
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
                with warnings.catch_warnings():
                    # the folds that miss a class are reported below, once
                    warnings.filterwarnings("ignore", message=".*least populated class.*")
                    folds = list(cv.split(X, y, **routed.splitter.split))
                usable = [(tr, te) for tr, te in folds
                          if len(np.unique(y[tr])) == len(self.classes_) == len(np.unique(y[te]))]
                if not usable:
                    raise ValueError(
                        f"no fold of cv={self.cv!r} has every class of y in both its training "
                        f"and its calibration part (class counts "
                        f"{np.unique(y, return_counts=True)[1].tolist()}); use fewer folds, "
                        "more data, or ensemble=False."
                    )
                if len(usable) < len(folds):
                    warnings.warn(
                        f"{len(folds) - len(usable)} of {len(folds)} folds miss a class of y in "
                        "their training or calibration part (the smallest class has "
                        f"{np.unique(y, return_counts=True)[1].min()} sample(s)); they are left "
                        f"out and the ensemble has {len(usable)} calibrated classifier(s).",
                        UserWarning,
                        stacklevel=2,
                    )
                pairs = Parallel(n_jobs=self.n_jobs)(
                    delayed(self._fit_fold)(
                        clone(estimator), X, y, train, test, sample_weight, routed.estimator.fit
                    )
                    for train, test in usable
                )
            else:
                est = clone(estimator)
                method_name = response_method(est)
                oof = cross_val_predict(
                    est, X, y, cv=cv, method=method_name, n_jobs=self.n_jobs,
                    params=routed.estimator.fit,
                )
                est.fit(X, y, **routed.estimator.fit)
                check_estimator_classes(est, self.classes_)
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

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in any format the estimator accepts.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow :attr:`classes_`.
        """
        check_is_fitted(self, "calibrated_classifiers_")
        check_n_features(self, X)
        proba = np.zeros((_num_samples(X), len(self.classes_)))
        for pair in self.calibrated_classifiers_:
            proba += pair.predict_proba(X)
        return proba / len(self.calibrated_classifiers_)

    def predict(self, X):
        """The class in :attr:`classes_` with the highest calibrated probability.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in any format the estimator accepts.

        Returns
        -------
        ndarray of shape (n_samples,)
            The predicted labels (the first class on ties).
        """
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
            elif not (self.cv == "prefit" or is_frozen(self.estimator)):
                warnings.warn(
                    f"{type(self.estimator).__name__}.fit does not accept sample_weight; the "
                    "weights are used by the calibrator only.",
                    UserWarning,
                    stacklevel=3,
                )
        return Bunch(estimator=Bunch(fit=fit_kwargs), splitter=Bunch(split={}))

    def _check_cv(self, y):
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
        check_estimator_classes(estimator, self.classes_)
        method_name = response_method(estimator)
        raw = getattr(estimator, method_name)(X)
        scores, kind = response_scores(raw, method_name)
        cal = self._fit_calibrator(scores, kind, y, sample_weight)
        return CalibratedPair(estimator, cal, method_name)

    def _fit_calibrator(self, scores, kind, y, sample_weight):
        cal = make_calibrator(self.method, input=kind)
        # integer codes: every column of the scores is a class of classes_, even when a
        # calibration fold happens to miss one of them
        codes = transform_labels(y, self.classes_)
        return cal.fit(scores, codes, sample_weight=sample_weight)



class CalibratedPair:
    """A fitted estimator and the calibrator of its ``response_method`` output."""

    def __init__(self, estimator, calibrator, response_method):
        self.estimator = estimator
        self.calibrator = calibrator
        self.response_method = response_method

    def predict_proba(self, X) -> np.ndarray:
        raw = getattr(self.estimator, self.response_method)(X)
        scores, _ = response_scores(raw, self.response_method)
        with quiet_saturation():
            return np.asarray(self.calibrator.predict_proba(scores))

    def __repr__(self) -> str:
        return f"CalibratedPair({self.estimator!r}, {self.calibrator!r})"


