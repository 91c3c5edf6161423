"""Hostile input at every public entry point of the core: each bad argument gives a
ValueError or TypeError whose message names the argument (never another exception, a
traceback from numpy or scipy, a silent wrong answer or a mutated input), and generated
valid input of any scale gives valid output (hypothesis).

The table of what each kind of bad input gets is docs/reliability.md.
"""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from calibkit import metrics
from calibkit.conformal import (
    SplitConformalClassifier,
    class_conditional_coverage,
    empirical_coverage,
    mean_set_size,
    size_stratified_coverage,
)
from calibkit.registry import CALIBRATORS, make_calibrator

pytestmark = pytest.mark.filterwarnings("ignore")

RNG = np.random.default_rng(0)
Z = RNG.normal(size=(60, 3))
Y = (Z + RNG.gumbel(size=Z.shape)).argmax(axis=1)
P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)

#: bad score / probability arrays (each must be refused by every entry point taking scores)
BAD_SCORES = {
    "empty": np.zeros((0, 3)),
    "empty 1-D": np.zeros(0),
    "NaN": np.where(np.eye(60, 3, dtype=bool), np.nan, Z),
    "inf": np.where(np.eye(60, 3, dtype=bool), np.inf, Z),
    "strings": np.array([["a"] * 3] * 60),
    "None": None,
    "3-D": Z[:, :, None],
    "scalar": 3.0,
    "ragged list": [[1.0, 2.0], [3.0]],
    "complex": Z.astype(complex),
    "objects with None": np.array([[None] * 3] * 60, dtype=object),
    "overflowing": Z * 1e308,
    "too few rows": Z[:10],
    "a dict": {"a": 1},
}
#: bad labels
BAD_LABELS = {
    "empty": np.zeros(0),
    "NaN": np.r_[np.nan, Y[1:]],
    "strings and numbers": np.array([0, "a"] * 30, dtype=object),
    "None": np.array([None, *Y[1:]], dtype=object),
    "2-D": np.c_[Y, Y],
    "too few": Y[:10],
    "dates": np.array(["2020-01-01"] * 60, dtype="datetime64[D]"),
    "bytes": np.array([b"a"] * 60),
    "complex": Y.astype(complex),
    "beyond int64": np.array([2**70] * 60, dtype=object),
    "a dict": {1: 2},
}
#: bad sample weights
BAD_WEIGHTS = {
    "negative": -np.ones(60),
    "NaN": np.r_[np.nan, np.ones(59)],
    "all zero": np.zeros(60),
    "wrong length": np.ones(5),
    "strings": np.array(["a"] * 60),
    "2-D": np.ones((60, 2)),
    "inf": np.r_[np.inf, np.ones(59)],
}

ARG_NAMES = {"scores": r"scores|X", "y_prob": r"y_prob", "y": r"\by\b|labels?", "y_true":
             r"y_true|labels?", "sample_weight": "sample_weight", "y_sets": "y_sets"}


def _clean_error(call, argument):
    """The call raises ValueError/TypeError naming ``argument`` and mutates nothing."""
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    assert "Traceback" not in message
    assert re.search(ARG_NAMES.get(argument, argument), message, re.IGNORECASE) or any(
        word in message for word in ("empty", "NaN", "infinite", "shape", "samples",
                                     "converted", "numeric", "None")
    ), message


CASES = []
for method in CALIBRATORS:
    for kind in ("logits", "probs"):
        CASES += [(f"{method}[{kind}].fit scores={k}", method, kind, "fit", "scores", v)
                  for k, v in BAD_SCORES.items()]
        CASES += [(f"{method}[{kind}].fit y={k}", method, kind, "fit", "y", v)
                  for k, v in BAD_LABELS.items()]
        CASES += [(f"{method}[{kind}].fit w={k}", method, kind, "fit", "sample_weight", v)
                  for k, v in BAD_WEIGHTS.items()]
        CASES += [(f"{method}[{kind}].predict scores={k}", method, kind, "predict", "scores", v)
                  for k, v in BAD_SCORES.items() if k != "too few rows"]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_calibrators_refuse_bad_input(case):
    _, method, kind, stage, argument, value = case
    x = Z if kind == "logits" else P
    est = make_calibrator(method, input=kind)
    before = copy.deepcopy(value)
    args = {"scores": x, "y": Y, "sample_weight": None}
    if stage == "fit":
        args[argument] = value
        _clean_error(lambda: est.fit(args["scores"], args["y"],
                                     sample_weight=args["sample_weight"]), argument)
    else:
        est.fit(x, Y)
        _clean_error(lambda: est.predict_proba(value), argument)
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(value, before)


METRICS = [metrics.expected_calibration_error, metrics.brier_score,
           metrics.negative_log_likelihood, metrics.reliability_curve,
           metrics.calibration_error_ci, metrics.smooth_calibration_error,
           metrics.spiegelhalter_test, metrics.hosmer_lemeshow_test,
           metrics.calibration_ks_test, metrics.calibration_kuiper_test,
           metrics.proper_score_decomposition]
METRIC_CASES = (
    [(f"{f.__name__} y_prob={k}", f, "y_prob", v) for f in METRICS
     for k, v in BAD_SCORES.items()]
    + [(f"{f.__name__} y_true={k}", f, "y_true", v) for f in METRICS
       for k, v in BAD_LABELS.items()]
    + [(f"{f.__name__} w={k}", f, "sample_weight", v)
       for f in METRICS if f is not metrics.calibration_error_ci
       for k, v in BAD_WEIGHTS.items()]
)


@pytest.mark.parametrize("case", METRIC_CASES, ids=[c[0] for c in METRIC_CASES])
def test_metrics_refuse_bad_input(case):
    _, f, argument, value = case
    args = {"y_true": Y, "y_prob": P, "sample_weight": None}
    args[argument] = value
    kw = {"n_bootstrap": 5} if f is metrics.calibration_error_ci else {}
    _clean_error(lambda: f(args["y_true"], args["y_prob"], sample_weight=args["sample_weight"],
                           **kw), argument)


BAD_PARAMETERS = {
    "n_bins": [0, -1, 1.5, "3", True, 2**40, np.nan, None],
    "norm": ["l3", None, 1],
    "mode": ["x", None],
    "strategy": ["x", 1],
    "debias": ["yes", 1, None],
    "random_state": [-1, "a", 1.5],
}


@pytest.mark.parametrize("name, value", [(k, v) for k, vs in BAD_PARAMETERS.items()
                                         for v in vs])
def test_metric_parameters_are_checked(name, value):
    with pytest.raises((ValueError, TypeError), match=name):
        metrics.expected_calibration_error(Y, P, **{name: value})


@pytest.mark.parametrize("value", [1.7, "2", -1, True])
def test_reliability_curve_class_index_is_not_coerced(value):
    with pytest.raises((ValueError, TypeError), match="class_index"):
        metrics.reliability_curve(Y, P, mode="classwise", class_index=value)


@pytest.mark.parametrize("params", [
    {"conformity_score": "raps", "lam": -1.0}, {"conformity_score": "raps", "k_reg": -3},
    {"conformity_score": "raps", "k_reg": 1.5}, {"conformity_score": "raps", "lam": np.nan},
    {"conformity_score": "raps", "lam": np.inf}, {"alpha": 0.0}, {"alpha": 1.5},
    {"alpha": np.nan}, {"conformity_score": "x"}, {"random_state": "a"}, {"raps_size": 2.0},
    {"confidence_level": True},
])
def test_conformal_parameters_are_checked_alone(params):
    name = next(iter(params)) if len(params) == 1 else next(k for k in params
                                                           if k != "conformity_score")
    with pytest.raises((ValueError, TypeError), match=name):
        SplitConformalClassifier(**params).fit(P, Y)


@pytest.mark.parametrize("k, value", list(BAD_SCORES.items()))
def test_conformal_refuses_bad_scores(k, value):
    cp = SplitConformalClassifier().fit(P, Y)
    _clean_error(lambda: SplitConformalClassifier().fit(value, Y), "scores")
    if k != "too few rows":
        _clean_error(lambda: cp.predict_set(value), "scores")
        _clean_error(lambda: cp.predict_pvalues(value), "scores")


@pytest.mark.parametrize("k, value", list(BAD_LABELS.items()))
def test_conformal_metrics_refuse_bad_labels(k, value):
    sets = SplitConformalClassifier().fit(P, Y).predict_set(P)
    for f in (empirical_coverage, size_stratified_coverage, class_conditional_coverage):
        _clean_error(lambda f=f: f(value, sets), "y_true")


@pytest.mark.parametrize("k, value", list(BAD_SCORES.items()))
def test_mean_set_size_refuses_bad_sets(k, value):
    _clean_error(lambda: mean_set_size(value), "y_sets")


# ------------------------------------------------------------------ conformal randomness


@pytest.mark.parametrize("random_state", [0, np.random.RandomState(0),
                                          np.random.default_rng(0)])
def test_same_input_same_sets_whatever_the_random_state(random_state):
    m = SplitConformalClassifier(conformity_score="aps", randomized=True,
                                 random_state=random_state).fit(P, Y)
    np.testing.assert_array_equal(m.predict_set(P), m.predict_set(P))
    np.testing.assert_array_equal(m.predict_pvalues(P, smoothed=True),
                                  m.predict_pvalues(P, smoothed=True))


def test_randomised_test_uniforms_are_independent_of_calibration_ones():
    """At n = 9 and alpha = 0.1 randomised APS covers 1 - alpha on average; reusing the
    calibration uniforms at test time (shifted by one) covered 0.946."""
    rng = np.random.default_rng(7)
    hits = []
    for trial in range(1500):
        p = rng.dirichlet(np.ones(4), size=10)
        y = np.array([rng.choice(4, p=row) for row in p])
        m = SplitConformalClassifier(conformity_score="aps", randomized=True, alpha=0.1,
                                     random_state=trial).fit(p[:9], y[:9])
        hits.append(m.predict_set(p[9:])[0, y[9]])
    coverage = np.mean(hits)
    # exact coverage of a randomised split-conformal set: 1 - alpha = 0.9 (n = 9 makes
    # (n + 1)(1 - alpha) an integer); 1500 trials give a standard error of 0.008
    assert abs(coverage - 0.9) < 0.03, coverage


# ------------------------------------------------------------------ properties


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=30, deadline=None)
@given(z=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=4,
                                                 max_side=40), elements=finite),
       method=st.sampled_from(list(CALIBRATORS)), seed=st.integers(0, 100))
def test_any_finite_logits_give_probability_rows(z, method, seed):
    """Valid input of any shape and scale: a clean fit (or a clean error) and probability rows
    that sum to 1, for every calibrator of the registry."""
    assume(len(z) >= z.shape[1])
    rng = np.random.default_rng(seed)
    y = rng.integers(0, z.shape[1], len(z))
    y[: z.shape[1]] = np.arange(z.shape[1])  # every class present
    est = make_calibrator(method, input="logits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(z, y)
        except ValueError as exc:  # e.g. logits that look like probabilities
            assert any(w in str(exc) for w in ("probabilities", "binary", "columns", "top-label"))
            return
        q = est.predict_proba(z)
    assert q.shape == (len(z), z.shape[1])
    assert np.all(np.isfinite(q)) and np.all((q >= 0) & (q <= 1))
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(p=hnp.arrays(np.float64, st.integers(5, 200), elements=st.floats(0, 1)),
       n_bins=st.integers(1, 30), seed=st.integers(0, 1000),
       norm=st.sampled_from(["l1", "l2", "max"]), debias=st.booleans())
def test_binary_ece_is_a_valid_error_and_order_free(p, n_bins, seed, norm, debias):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=len(p)) < p).astype(int)
    w = rng.uniform(0, 2, len(p))
    w[0] = 1.0
    kw = dict(n_bins=n_bins, norm=norm, mode="binary", debias=debias, random_state=0)
    e = metrics.expected_calibration_error(y, p, sample_weight=w, **kw)
    assert 0.0 <= e <= 1.0
    perm = rng.permutation(len(p))
    e2 = metrics.expected_calibration_error(y[perm], p[perm], sample_weight=w[perm], **kw)
    assert e2 == pytest.approx(e, abs=1e-12 if not (debias and norm != "l2") else 0.05)
    # weights only matter up to a common factor
    e3 = metrics.expected_calibration_error(y, p, sample_weight=w * 1e-300, **kw)
    assert e3 == pytest.approx(e, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(c=st.sampled_from([1e-300, 1e-8, 3.0, 1e8, 1e300]), seed=st.integers(0, 1000),
       method=st.sampled_from([m for m, s in CALIBRATORS.items() if s.binary]))
def test_sample_weights_matter_only_up_to_a_common_factor(c, seed, method):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=200) * 2
    y = (rng.uniform(size=200) < 1 / (1 + np.exp(-z))).astype(int)
    w = rng.uniform(0.1, 3.0, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = make_calibrator(method, input="logits").fit(z, y, sample_weight=w).predict_proba(z)
        b = make_calibrator(method, input="logits").fit(z, y, sample_weight=w * c).predict_proba(z)
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(b, a, atol=1e-7)


@pytest.mark.parametrize("value", [-0.5, 1.5, np.nan, np.inf, -np.inf])
def test_independent_probabilities_one_rule_everywhere(value):
    # multilabel outputs, detection scores and OCE class probabilities share one
    # acceptance rule (each value in [0, 1], rows need not sum to 1) and one message
    from calibkit import detection
    from calibkit.metrics.multilabel import check_multilabel

    p = np.full((3, 2), 0.7)
    p[1, 1] = value
    # non-finite values meet the array check's own message first
    message = (r"y_prob must lie in \[0, 1\] \(no NaN\); entry \(1, 1\)" if np.isfinite(value)
               else r"y_prob contains 1 NaN or infinite value")
    with pytest.raises(ValueError, match=message):
        check_multilabel(np.ones((3, 2)), p)
    boxes = np.array([[0.0, 0.0, 10.0, 10.0]] * 3)
    with pytest.raises(ValueError, match=r"scores'\] must lie in \[0, 1\] \(no NaN\); entry 1 "
                                         r".*sigmoid"):
        detection.from_torchvision(
            [{"boxes": boxes, "labels": np.ones(3, int), "scores": p[:, 1]}], [1]
        )
