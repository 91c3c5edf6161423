"""Tests of calibkit.sklearn (CalibratedClassifier, ConformalClassifier) and of the scorers
in a grid search.

Reference: scikit-learn's own ``CalibratedClassifierCV`` (the peer, run directly) wherever
the methods coincide:

* ``method="temperature"``: any estimator whose scores are ``decision_function`` values or
  unsaturated ``predict_proba`` output (sklearn takes ``log(p + 1e-12)``, calibkit clips at
  the float64 epsilon, so exact 0/1 probabilities differ);
* ``method="sigmoid"``: binary ``decision_function`` (sklearn fits Platt on raw
  probabilities otherwise, scikit-learn#34312, and on the raw decision columns one-vs-rest);
* ``method="isotonic"``: ``predict_proba`` estimators without probabilities closer than
  1e-15 (sklearn's isotonic pools such values as ties; it also interpolates in decision
  space where calibkit interpolates in probability space).

And, by definition, calibration must lower the held-out log loss of over-confident models.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, GroupKFold, train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import check_estimator

from calibkit._validation import SaturatedProbabilityWarning
from calibkit._wrapping import response_scores
from calibkit.conformal import ConformalClassifier
from calibkit.registry import CALIBRATORS, make_calibrator
from calibkit.sklearn import CalibratedClassifier


def _data(name):
    if name == "digits":  # a stratified 900-sample subset keeps the suite fast
        X, y = load_digits(return_X_y=True)
        keep = np.sort(train_test_split(np.arange(len(y)), train_size=900, random_state=0,
                                        stratify=y)[0])
        return X[keep], y[keep]
    return load_breast_cancer(return_X_y=True)


def _estimator(name):
    if name == "logreg":  # decision_function, binary (n,) or multiclass (n, K)
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if name == "linear_svc":  # decision_function only
        return make_pipeline(StandardScaler(), LinearSVC())
    if name == "soft_vote":  # predict_proba only, not saturated
        return VotingClassifier(
            [("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
             ("nb", GaussianNB())],
            voting="soft",
        )
    raise ValueError(name)


PARITY_CASES = [
    ("breast_cancer", "logreg", "temperature", 1e-7),
    ("breast_cancer", "linear_svc", "temperature", 1e-7),
    ("breast_cancer", "soft_vote", "temperature", 1e-7),
    ("digits", "logreg", "temperature", 1e-7),
    ("digits", "soft_vote", "temperature", 1e-7),
    ("breast_cancer", "logreg", "sigmoid", 1e-6),
    ("breast_cancer", "linear_svc", "sigmoid", 1e-6),
    ("breast_cancer", "soft_vote", "isotonic", 1e-12),
    ("digits", "soft_vote", "isotonic", 1e-12),
]


@pytest.mark.parametrize("data, est, method, tol", PARITY_CASES)
def test_equals_calibrated_classifier_cv(data, est, method, tol):
    X, y = _data(data)
    X_fit, X_test, y_fit, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                    stratify=y)
    ours = CalibratedClassifier(_estimator(est), method=method, cv=3).fit(X_fit, y_fit)
    peer = CalibratedClassifierCV(_estimator(est), method=method, cv=3).fit(X_fit, y_fit)
    np.testing.assert_allclose(ours.predict_proba(X_test), peer.predict_proba(X_test),
                               rtol=0, atol=tol)
    np.testing.assert_array_equal(ours.classes_, peer.classes_)
    # prefit through FrozenEstimator: no refit, the whole set calibrates, no ensemble
    X_tr, X_cal, y_tr, y_cal = train_test_split(X_fit, y_fit, test_size=0.5, random_state=1,
                                                stratify=y_fit)
    base = _estimator(est).fit(X_tr, y_tr)
    ours = CalibratedClassifier(FrozenEstimator(base), method=method).fit(X_cal, y_cal)
    peer = CalibratedClassifierCV(FrozenEstimator(base), method=method).fit(X_cal, y_cal)
    assert len(ours.calibrated_classifiers_) == 1
    np.testing.assert_allclose(ours.predict_proba(X_test), peer.predict_proba(X_test),
                               rtol=0, atol=tol)


def test_ensemble_false_equals_calibrated_classifier_cv():
    X, y = _data("breast_cancer")
    kw = dict(method="temperature", cv=4, ensemble=False)
    ours = CalibratedClassifier(_estimator("logreg"), **kw).fit(X, y)
    peer = CalibratedClassifierCV(_estimator("logreg"), **kw).fit(X, y)
    assert len(ours.calibrated_classifiers_) == 1
    np.testing.assert_allclose(ours.predict_proba(X), peer.predict_proba(X), atol=1e-7)


OVERCONFIDENT = {
    "naive_bayes": GaussianNB,  # predict_proba, badly over-confident
    "logreg_c100": lambda: make_pipeline(StandardScaler(),
                                         LogisticRegression(C=100.0, max_iter=1000)),
}


ALL_METHODS = ["temperature", "platt", "isotonic", "histogram", "beta", "venn_abers"]
LOG_LOSS_CASES = [
    # every method on a badly over-confident model (naive Bayes) ...
    *[(data, "naive_bayes", m) for data in ("breast_cancer", "digits") for m in ALL_METHODS],
    # ... and the parametric ones on a mildly over-confident one (the non-parametric maps,
    # fitted on ~350 samples, can lose to an already good model, so they are not asserted)
    *[(data, "logreg_c100", m) for data in ("breast_cancer", "digits")
      for m in ("temperature", "platt")],
]


@pytest.mark.parametrize("data, est, method", LOG_LOSS_CASES)
def test_calibration_lowers_held_out_log_loss(data, est, method):
    X, y = _data(data)
    X_tr, X_test, y_tr, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                  stratify=y)
    X_tr, X_cal, y_tr, y_cal = train_test_split(X_tr, y_tr, test_size=0.6, random_state=0,
                                                stratify=y_tr)
    base = OVERCONFIDENT[est]().fit(X_tr, y_tr)
    before = log_loss(y_test, base.predict_proba(X_test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturatedProbabilityWarning)
        cal = CalibratedClassifier(FrozenEstimator(base), method=method).fit(X_cal, y_cal)
        proba = cal.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    after = log_loss(y_test, proba)
    assert after < before, (before, after)


def test_check_estimator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(CalibratedClassifier(LogisticRegression(C=1), cv=3))
        # with sklearn's default cv=5, as CalibratedClassifierCV passes it (check_fit2d_1feature
        # fits a class of 3 samples)
        check_estimator(CalibratedClassifier(LogisticRegression(C=1)))
        check_estimator(ConformalClassifier(LogisticRegression(C=1)))


def test_string_labels_and_calibrator_instance():
    X, y = _data("breast_cancer")
    labels = np.array(["benign", "malignant"])[1 - y]  # sorted: "benign" first
    from calibkit.scaling import PlattScaling

    cal = CalibratedClassifier(_estimator("logreg"), method=PlattScaling(), cv=3).fit(X, labels)
    assert list(cal.classes_) == ["benign", "malignant"]
    assert set(cal.predict(X)) <= {"benign", "malignant"}
    assert np.mean(cal.predict(X) == labels) > 0.95
    assert all(isinstance(p.calibrator, PlattScaling) for p in cal.calibrated_classifiers_)
    assert cal.calibrated_classifiers_[0].calibrator is not cal.method  # cloned
    assert cal.response_method_ == "decision_function"


def test_sample_weight_reaches_calibrator_and_estimator():
    X, y = _data("breast_cancer")
    X_tr, X_cal, y_tr, y_cal = train_test_split(X, y, test_size=0.5, random_state=0)
    base = _estimator("logreg").fit(X_tr, y_tr)
    w = np.random.default_rng(0).integers(0, 3, len(y_cal)).astype(float)
    rep = np.repeat(np.arange(len(y_cal)), w.astype(int))
    a = CalibratedClassifier(FrozenEstimator(base), method="platt").fit(X_cal, y_cal,
                                                                         sample_weight=w)
    b = CalibratedClassifier(FrozenEstimator(base), method="platt").fit(X_cal[rep], y_cal[rep])
    np.testing.assert_allclose(a.predict_proba(X_tr), b.predict_proba(X_tr), atol=1e-8)
    # without routing, an estimator whose fit takes sample_weight receives it
    est = LogisticRegression(max_iter=3000)
    cal = CalibratedClassifier(est, cv=2).fit(X_cal / 100, y_cal, sample_weight=w)
    assert cal.n_features_in_ == X.shape[1]
    with pytest.warns(UserWarning, match="calibrator only"):
        CalibratedClassifier(_NoWeightClassifier(), cv=2).fit(X_cal, y_cal, sample_weight=w)


class _NoWeightClassifier(LogisticRegression):
    def fit(self, X, y):  # noqa: D102 - fit without sample_weight
        return super().fit(X / 100, y)

    def decision_function(self, X):
        return super().decision_function(X / 100)


def test_metadata_routing():
    import sklearn

    X, y = _data("breast_cancer")
    X = StandardScaler().fit_transform(X)
    groups = np.arange(len(y)) % 5
    w = np.random.default_rng(1).random(len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        est = LogisticRegression(max_iter=2000).set_fit_request(sample_weight=True)
        cal = CalibratedClassifier(est, cv=GroupKFold(5)).fit(X, y, sample_weight=w,
                                                             groups=groups)
        assert len(cal.calibrated_classifiers_) == 5
        # the first fold's estimator saw the weights of its training rows
        train = next(GroupKFold(5).split(X, y, groups))[0]
        first = cal.calibrated_classifiers_[0].estimator
        ref = LogisticRegression(max_iter=2000).fit(X[train], y[train], sample_weight=w[train])
        np.testing.assert_allclose(first.coef_, ref.coef_, rtol=1e-6)
        unweighted = LogisticRegression(max_iter=2000).set_fit_request(sample_weight=False)
        cal2 = CalibratedClassifier(unweighted, cv=GroupKFold(5)).fit(
            X, y, sample_weight=w, groups=groups
        )
        ref2 = LogisticRegression(max_iter=2000).fit(X[train], y[train])
        np.testing.assert_allclose(cal2.calibrated_classifiers_[0].estimator.coef_, ref2.coef_,
                                   rtol=1e-6)


def test_grid_search_with_calibkit_scorers():
    from calibkit.metrics import expected_calibration_error
    from calibkit.metrics.scorers import SCORERS, get_scorer

    X, y = _data("breast_cancer")
    X_tr, X_test, y_tr, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    search = GridSearchCV(
        CalibratedClassifier(_estimator("logreg"), cv=3),
        {"method": ["temperature", "isotonic"]},
        scoring=SCORERS,
        refit="neg_expected_calibration_error",
        cv=3,
    ).fit(X_tr, y_tr)
    for name in SCORERS:
        assert np.all(search.cv_results_[f"mean_test_{name}"] <= 0), name  # negated losses
    best = search.best_estimator_
    scorer = get_scorer("neg_expected_calibration_error")
    want = -expected_calibration_error(y_test, best.predict_proba(X_test))
    assert scorer(best, X_test, y_test) == pytest.approx(want, abs=1e-12)
    # greater is better: the chosen method has the largest (least negative) score
    scores = search.cv_results_["mean_test_neg_expected_calibration_error"]
    assert search.best_index_ == int(np.argmax(scores))


def test_conformal_classifier_matches_split_conformal_and_covers():
    from calibkit.conformal import SplitConformalClassifier, empirical_coverage

    X, y = _data("digits")
    X_tr, X_test, y_tr, y_test = train_test_split(X, y, test_size=0.4, random_state=0,
                                                  stratify=y)
    X_tr, X_cal, y_tr, y_cal = train_test_split(X_tr, y_tr, test_size=0.5, random_state=0,
                                                stratify=y_tr)
    base = GaussianNB().fit(X_tr, y_tr)
    cc = ConformalClassifier(FrozenEstimator(base), confidence_level=0.9).fit(X_cal, y_cal)
    ref = SplitConformalClassifier(conformity_score="lac",
                                   alpha=0.1).fit(base.predict_proba(X_cal), y_cal)
    sets = cc.predict_set(X_test)
    np.testing.assert_array_equal(sets, ref.predict_set(base.predict_proba(X_test)))
    assert sets.shape == (len(y_test), 10) and sets.dtype == bool
    assert empirical_coverage(y_test, sets) >= 0.85
    np.testing.assert_array_equal(cc.predict(X_test), base.predict(X_test))
    assert cc.predict_pvalues(X_test).shape == (len(y_test), 10)
    # unfrozen estimator: fitted on 1 - calibration_size of the data
    cc2 = ConformalClassifier(
        _estimator("linear_svc"), conformity_score="aps", alpha=0.1, random_state=0,
        conformal_params={"include_last_label": True},
    ).fit(X_tr, y_tr)
    assert cc2.response_method_ == "decision_function"
    assert empirical_coverage(y_test, cc2.predict_set(X_test)) >= 0.85
    with pytest.raises(ValueError, match="calibration_size"):
        ConformalClassifier(GaussianNB(), calibration_size=1.5).fit(X_tr, y_tr)


def test_response_scores_conversions():
    x = np.array([-2.0, 0.5, 3.0])
    s, kind = response_scores(x, "decision_function")
    assert kind == "logits"
    np.testing.assert_allclose(s[:, 1] - s[:, 0], x)  # the log-odds is kept
    d = np.array([[1.0, 2.0, 3.0], [0.2, 0.3, 0.5]])  # a row that sums to 1 stays logits
    s, kind = response_scores(d, "decision_function")
    np.testing.assert_allclose(s.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(s - d, np.repeat(-d.mean(axis=1, keepdims=True), 3, axis=1))
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    s, kind = response_scores(p, "predict_proba")
    assert kind == "probs"
    np.testing.assert_array_equal(s, p)


def test_methods_and_errors():
    for name in CALIBRATORS:
        assert make_calibrator(name).__class__.__name__ == CALIBRATORS[name].cls
    assert make_calibrator("sigmoid").target_smoothing is True
    X, y = _data("breast_cancer")
    with pytest.raises(ValueError, match="method"):
        CalibratedClassifier(LogisticRegression(), method="bogus").fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        CalibratedClassifier(LogisticRegression()).fit(X[:10], np.zeros(10))
    # as CalibratedClassifierCV: a class with fewer samples than folds warns and fits, with
    # the folds that miss it left out of the ensemble
    y12 = np.r_[np.zeros(9), np.ones(3)]
    with pytest.warns(UserWarning, match="miss a class"):
        cal = CalibratedClassifier(LogisticRegression(), cv=5).fit(X[:12], y12)
    assert 1 <= len(cal.calibrated_classifiers_) < 5
    np.testing.assert_allclose(cal.predict_proba(X[:12]).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="no fold"):
        CalibratedClassifier(LogisticRegression(), cv=5).fit(X[:6], np.r_[np.zeros(5), 1])
    with pytest.raises(ValueError, match="features"):
        cal = CalibratedClassifier(_estimator("logreg"), cv=2).fit(X, y)
        cal.predict_proba(X[:, :5])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CalibratedClassifier(LogisticRegression(), cv="prefit").fit(X, y)
