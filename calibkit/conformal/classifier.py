"""Split conformal prediction sets around any scikit-learn classifier."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import get_tags, indexable
from sklearn.utils.validation import _check_method_params, _num_samples, check_is_fitted

from calibkit._validation import (
    BOOLEAN,
    NONE,
    RANDOM_STATE,
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
    conformal_response_method,
    is_frozen,
    quiet_saturation,
    response_scores,
)
from calibkit.conformal.scores import SCORES
from calibkit.conformal.split import SplitConformalClassifier

__all__ = ["ConformalClassifier"]


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

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [HasMethods("fit", "predict_proba"), HasMethods("fit", "decision_function")],
        "conformity_score": [Options(*SCORES)],
        "alpha": [NONE, Interval("real", 0, 1, closed="neither")],
        "confidence_level": [NONE, Interval("real", 0, 1, closed="neither")],
        "class_conditional": [BOOLEAN],
        "calibration_size": [Interval("real", 0, 1, closed="neither")],
        "random_state": [RANDOM_STATE],
        "conformal_params": [NONE, InstanceOf(dict, "a dict")],
    }

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

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in any format the estimator accepts.
        y : array-like of shape (n_samples,)
            Labels of any type.
        **fit_params : dict
            Passed to the estimator's ``fit`` (rows of the training part).

        Returns
        -------
        self : ConformalClassifier
        """
        from sklearn.model_selection import train_test_split
        from sklearn.utils import _safe_indexing

        validate_params(self)
        y = check_y(X, y)
        X, y = indexable(X, y)
        self.classes_ = np.unique(check_labels(y, name="y"))
        if len(self.classes_) < 2:
            raise ValueError(f"y contains only one class ({self.classes_[0]!r}); conformal "
                             "sets need at least two classes.")
        if is_frozen(self.estimator):
            est, X_cal, y_cal = self.estimator, X, y
        else:
            size = self.calibration_size
            idx = np.arange(_num_samples(X))
            train, cal = train_test_split(idx, test_size=size, stratify=y,
                                          random_state=self.random_state)
            params = _check_method_params(X, params=fit_params, indices=train)
            est = clone(self.estimator).fit(_safe_indexing(X, train), y[train], **params)
            X_cal, y_cal = _safe_indexing(X, cal), y[cal]
        check_estimator_classes(est, self.classes_)
        self.response_method_ = conformal_response_method(est)
        scores, kind = response_scores(getattr(est, self.response_method_)(X_cal),
                                       self.response_method_)
        conformal = SplitConformalClassifier(
            conformity_score=self.conformity_score, alpha=self.alpha,
            confidence_level=self.confidence_level, class_conditional=self.class_conditional,
            input=kind, random_state=self.random_state, **(self.conformal_params or {}),
        )
        self.conformal_ = conformal.fit(scores, transform_labels(y_cal, self.classes_))
        self.estimator_ = est
        if hasattr(est, "n_features_in_"):
            self.n_features_in_ = est.n_features_in_
        return self

    def predict_set(self, X):
        """Boolean mask (n_samples, n_classes): ``[i, k]`` is True when ``classes_[k]`` is in
        the prediction set of sample ``i``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in any format the estimator accepts.

        Returns
        -------
        ndarray of bool of shape (n_samples, n_classes)
            The prediction sets.
        """
        scores = self._scores(X)
        with quiet_saturation():
            return self.conformal_.predict_set(scores)

    def predict_pvalues(self, X, *, smoothed=False):
        """Conformal p-value of every (sample, class) pair, shape (n_samples, n_classes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in any format the estimator accepts.
        smoothed : bool, default=False
            Smoothed (randomised) p-values, with ``theta`` from a stream of the fitted
            predictor's seed (see
            :meth:`calibkit.conformal.SplitConformalClassifier.predict_pvalues`).

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            ``p(x, k)`` for every sample and label ``classes_[k]``.
        """
        scores = self._scores(X)
        with quiet_saturation():
            return self.conformal_.predict_pvalues(scores, smoothed=smoothed)

    def predict(self, X):
        """The estimator's point prediction.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in any format the estimator accepts.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``estimator_.predict(X)``.
        """
        check_is_fitted(self, "conformal_")
        return self.estimator_.predict(X)

    def predict_proba(self, X):
        """The estimator's (uncalibrated) probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data in any format the estimator accepts.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            ``estimator_.predict_proba(X)``.
        """
        check_is_fitted(self, "conformal_")
        return self.estimator_.predict_proba(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = get_tags(self.estimator).input_tags.sparse
        return tags

    def _scores(self, X):
        check_is_fitted(self, "conformal_")
        check_n_features(self, X)
        raw = getattr(self.estimator_, self.response_method_)(X)
        return response_scores(raw, self.response_method_)[0]
