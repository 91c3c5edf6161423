"""Tests for calibkit.metrics.scores (Brier score, NLL) and calibkit.metrics.scorers.

Reference: the definitions written as loops over samples and classes, then parity with
scikit-learn's ``brier_score_loss`` and ``log_loss``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import brier_score_loss, log_loss

from calibkit.metrics import brier_score, negative_log_likelihood
from calibkit.metrics.scorers import SCORERS, get_scorer, make_calibration_scorer


def ref_brier(y, P):
    total = 0.0
    for row, t in zip(P, y, strict=True):
        if len(row) == 2:
            total += (row[1] - (t == 1)) ** 2
        else:
            total += sum((row[k] - (t == k)) ** 2 for k in range(len(row)))
    return total / len(y)


def ref_nll(y, P):
    eps = np.finfo(np.float64).eps
    return -sum(math.log(min(max(row[t], eps), 1 - eps)) for row, t in zip(P, y, strict=True)) / (
        len(y)
    )


def _data(seed, n=200, k=4):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(k), n)
    return P, rng.integers(0, k, n)


@pytest.mark.parametrize("k", [2, 3, 6])
def test_reference_and_sklearn_parity(k):
    P, y = _data(k, k=k)
    w = np.random.default_rng(0).uniform(0, 2, len(y))
    assert brier_score(y, P) == pytest.approx(ref_brier(y, P), abs=1e-12)
    assert negative_log_likelihood(y, P) == pytest.approx(ref_nll(y, P), abs=1e-12)
    assert brier_score(y, P) == pytest.approx(brier_score_loss(y, P, labels=range(k)), abs=1e-12)
    assert negative_log_likelihood(y, P) == pytest.approx(log_loss(y, P, labels=range(k)),
                                                          abs=1e-12)
    assert brier_score(y, P, sample_weight=w) == pytest.approx(
        brier_score_loss(y, P, sample_weight=w, labels=range(k)), abs=1e-12)
    assert negative_log_likelihood(y, P, sample_weight=w) == pytest.approx(
        log_loss(y, P, sample_weight=w, labels=range(k)), abs=1e-12)


def test_binary_1d_strings_and_saturation():
    rng = np.random.default_rng(1)
    p = rng.random(300)
    p[:5] = [0.0, 1.0, 0.0, 1.0, 0.5]
    y = np.where(rng.random(300) < p, "spam", "ham")
    y[:4] = ["spam", "ham", "ham", "spam"]
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p, pos_label="spam"),
                                              abs=1e-12)
    assert negative_log_likelihood(y, p) == pytest.approx(log_loss(y, p), abs=1e-12)
    assert np.isfinite(negative_log_likelihood(y, p))
    P = np.stack([1 - p, p], axis=1)
    assert brier_score(y, P) == pytest.approx(brier_score(y, p), abs=1e-15)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(1, 30), st.integers(0, 2**31))
def test_property_bounds(k, n, seed):
    P, y = _data(seed, n=n, k=k)
    b = brier_score(y, P)
    assert 0 <= b <= (1 if k == 2 else 2)
    assert negative_log_likelihood(y, P) >= 0
    onehot = np.eye(k)[y]
    assert brier_score(y, onehot) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="sum to 1"):
        brier_score([0, 1], [[0.3, 0.3], [0.5, 0.5]])
    with pytest.raises(ValueError, match="NaN"):
        negative_log_likelihood([0, 1], [0.3, np.nan])
    with pytest.raises(ValueError, match="not in the classes"):
        brier_score(["a", "z"], [0.1, 0.2], labels=["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        negative_log_likelihood([], [])


def test_scorers_in_grid_search():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]
    gs = GridSearchCV(
        LogisticRegression(max_iter=200), {"C": [0.01, 1.0]}, cv=2,
        scoring=SCORERS, refit="neg_log_likelihood",
    ).fit(X, y)
    res = gs.cv_results_
    for name in SCORERS:
        assert np.all(res[f"mean_test_{name}"] <= 0)
    # the scorer is the negated metric on predict_proba
    est = gs.best_estimator_
    assert get_scorer("neg_brier_score")(est, X, y) == pytest.approx(
        -brier_score(y, est.predict_proba(X)), abs=1e-12)
    s = make_calibration_scorer(n_bins=10, norm="l2")
    assert s(est, X, y) <= 0
    # binary estimator: sklearn passes P(positive) only
    yb = (y > 4).astype(int)
    clf = LogisticRegression(max_iter=200).fit(X, yb)
    assert get_scorer("neg_expected_calibration_error")(clf, X, yb) == pytest.approx(
        -__import__("calibkit.metrics", fromlist=["x"]).expected_calibration_error(
            yb, clf.predict_proba(X)), abs=1e-12)
    with pytest.raises(ValueError, match="unknown scorer"):
        get_scorer("ece")


def test_minus_one_one_labels_match_sklearn():
    rng = np.random.default_rng(5)
    p = rng.random(200)
    y = np.where(rng.random(200) < p, 1, -1)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert negative_log_likelihood(y, p) == pytest.approx(log_loss(y, p), abs=1e-12)
