"""Tests of :mod:`calibkit.conformal` (split conformal classification and its metrics).

Reference (by definition): the threshold is the ``ceil((n + 1)(1 - alpha))``-th smallest
calibration score (+inf when that rank exceeds n); the set is every label whose score is at
most the threshold; the p-value of a label is ``(#{cal scores >= its score} + 1) / (n + 1)``.
Peers run directly when installed: MAPIE 1.6 (LAC and APS sets, quantiles) and crepes 0.9.1
(p-values).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from calibkit.conformal import (
    SplitConformalClassifier,
    TrivialSetWarning,
    aps_score,
    class_conditional_coverage,
    conformal_quantile,
    empirical_coverage,
    mean_set_size,
    size_stratified_coverage,
)
from calibkit.conformal.scores import include_last_label_sets, label_ranks

pytestmark = pytest.mark.filterwarnings("ignore::calibkit._validation.SaturatedProbabilityWarning")


def quantile_by_definition(cal_scores, alpha):
    ordered = sorted(float(v) for v in cal_scores)
    rank = math.ceil((len(ordered) + 1) * (1 - alpha) - 1e-9)
    return math.inf if rank > len(ordered) else ordered[rank - 1]


def lac_sets_by_definition(cal_probs, cal_y, test_probs, alpha):
    q = quantile_by_definition([1 - cal_probs[i, cal_y[i]] for i in range(len(cal_y))], alpha)
    return np.array([[1 - p <= q for p in row] for row in test_probs])


def pvalues_by_definition(cal_scores, test_scores):
    n = len(cal_scores)
    return np.array(
        [[(sum(c >= e for c in cal_scores) + 1) / (n + 1) for e in row] for row in test_scores]
    )


def synthetic(n=1000, K=5, seed=0, temperature=1.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, K)) * 2
    p = softmax(z / temperature, axis=1)
    y = (rng.uniform(size=(n, 1)) > np.cumsum(softmax(z, axis=1), axis=1)).sum(axis=1)
    return p, np.minimum(y, K - 1), z


def cifar(shared_data, name):
    d = np.load(shared_data / "netcal-cifar" / f"{name}.npz")
    p = d["predictions"].astype(np.float64)
    return p / p.sum(axis=1, keepdims=True), d["ground_truth"]


# ------------------------------------------------------------------ by definition


def test_lac_sets_match_definition_exactly():
    p, y, _ = synthetic(600)
    for alpha in (0.05, 0.1, 0.3):
        model = SplitConformalClassifier(conformity_score="lac", alpha=alpha).fit(p[:400], y[:400])
        np.testing.assert_array_equal(
            model.predict_set(p[400:]), lac_sets_by_definition(p[:400], y[:400], p[400:], alpha)
        )
        assert model.quantiles_[0] == quantile_by_definition(1 - p[np.arange(400), y[:400]], alpha)


@pytest.mark.parametrize("score", ["lac", "aps", "topk"])
def test_pvalues_match_definition_and_sets(score):
    p, y, _ = synthetic(300, K=4)
    model = SplitConformalClassifier(conformity_score=score, alpha=0.2).fit(p[:200], y[:200])
    e_cal = model._scores(p[:200], None)[np.arange(200), y[:200]]
    e_test = model._scores(p[200:], None)
    pv = model.predict_pvalues(p[200:])
    np.testing.assert_allclose(pv, pvalues_by_definition(list(e_cal), e_test), atol=1e-15)
    np.testing.assert_array_equal(pv > 0.2, model.predict_set(p[200:]))


def test_quantile_edge_cases():
    s = np.arange(1.0, 10.0)  # n = 9
    assert conformal_quantile(s, 0.1) == 9.0  # ceil(10 * 0.9) = 9
    assert conformal_quantile(s, 0.5) == 5.0
    assert conformal_quantile(s, 0.09) == math.inf  # alpha < 1 / (n + 1)
    assert conformal_quantile(s[:0], 0.5) == math.inf
    for n in range(1, 60):
        for alpha in (0.01, 0.05, 0.1, 0.2, 0.5):
            v = np.arange(float(n))
            assert conformal_quantile(v, alpha) == quantile_by_definition(v, alpha)


def test_aps_scores_by_definition():
    p, y, _ = synthetic(50, K=6)
    e = aps_score(p)
    for i in range(50):
        order = sorted(range(6), key=lambda k: (-p[i, k], k))
        for r, k in enumerate(order):
            assert e[i, k] == pytest.approx(sum(p[i, j] for j in order[: r + 1]), abs=1e-15)
    u = np.full((50, 1), 0.25)
    np.testing.assert_allclose(aps_score(p, u=u), e - 0.75 * p)


@pytest.mark.parametrize(
    "params",
    [
        {"conformity_score": "aps"},
        {"conformity_score": "aps", "randomized": True},
        {"conformity_score": "aps", "include_last_label": True},
        {"conformity_score": "raps", "k_reg": 2, "lam": 0.05},
        {"conformity_score": "raps", "k_reg": 1, "lam": 0.1, "randomized": True},
        {"conformity_score": "raps", "k_reg": 2, "lam": 0.05, "include_last_label": True},
        {"conformity_score": "topk"},
    ],
)
def test_sort_based_sets_match_score_definition_with_ties(params):
    """predict_set uses np.sort prefixes; the definition ranks every label (stable argsort)
    and thresholds its score. Probabilities on a coarse grid make many ties."""
    rng = np.random.default_rng(0)
    counts = rng.multinomial(20, np.ones(6) / 6, size=800)
    p = counts / 20.0
    y = rng.integers(0, 6, 800)
    for alpha in (0.05, 0.2, 0.5):
        model = SplitConformalClassifier(alpha=alpha, random_state=1, **params)
        model.fit(p[:400], y[:400])
        ranks = label_ranks(p[400:])
        e = model._scores(p[400:], model._test_u(400), ranks)
        q = np.full(e.shape, model.quantiles_[0])
        expected = (
            include_last_label_sets(p[400:], e, q, ranks) if model._include_last_label() else e <= q
        )
        np.testing.assert_array_equal(model.predict_set(p[400:]), expected)
        # calibration scores equal the definition's column of the true label
        # fit draws one uniform per calibration sample from the calibration stream of the
        # fitted seed (random_state=1 is that seed)
        u_cal = (np.random.default_rng([1, 0]).uniform(size=(400, 1)) if model._randomized()
                 else None)
        e_cal = model._scores(p[:400], u_cal, label_ranks(p[:400]))
        np.testing.assert_array_equal(np.sort(e_cal[np.arange(400), y[:400]]), model.cal_scores_[0])


def test_include_last_label_never_empty_and_superset():
    p, y, _ = synthetic(800, K=8, temperature=0.3)
    strict = SplitConformalClassifier(conformity_score="aps", alpha=0.1).fit(p[:400], y[:400])
    loose = SplitConformalClassifier(conformity_score="aps", alpha=0.1, include_last_label=True)
    loose.fit(p[:400], y[:400])
    a, b = strict.predict_set(p[400:]), loose.predict_set(p[400:])
    assert np.all(b >= a) and np.all(b.sum(1) >= 1)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.02, 0.5), st.floats(0.02, 0.5), st.integers(0, 10_000))
def test_sets_grow_as_alpha_shrinks(a1, a2, seed):
    lo, hi = sorted((a1, a2))
    p, y, _ = synthetic(300, K=5, seed=seed)
    for score in ("lac", "aps", "topk"):
        small = SplitConformalClassifier(conformity_score=score, alpha=hi).fit(p[:150], y[:150])
        big = SplitConformalClassifier(conformity_score=score, alpha=lo).fit(p[:150], y[:150])
        assert np.all(big.predict_set(p[150:]) >= small.predict_set(p[150:]))


# ------------------------------------------------------------------ coverage on real outputs


def _binomial_slack(n_cal, n_test, alpha, n_splits):
    var = alpha * (1 - alpha) * (1 / (n_cal + 2) + 1 / n_test)
    return 4 * math.sqrt(var / n_splits)


@pytest.mark.parametrize(
    "name", ["wideresnet-16-4-cifar-10", "densenet-bc-100-cifar-100", "lenet-5-cifar-100"]
)
@pytest.mark.parametrize(
    "params",
    [
        {"conformity_score": "lac"},
        {"conformity_score": "aps", "randomized": True},
        {"conformity_score": "raps", "randomized": True, "k_reg": 2, "lam": 0.01},
        {"conformity_score": "topk"},
        {"conformity_score": "lac", "class_conditional": True},
    ],
)
def test_coverage_over_random_splits(shared_data, name, params):
    p, y = cifar(shared_data, name)
    if p.shape[1] > 10 and params["conformity_score"] in ("raps", "topk"):
        pytest.skip("kept to CIFAR-10 to keep the suite fast")
    rng = np.random.default_rng(0)
    alpha, n_cal, n_test = 0.1, 2000, 3000
    n_splits = 30 if p.shape[1] == 10 else 10
    cov = []
    for seed in range(n_splits):
        perm = rng.permutation(len(y))
        cal, test = perm[:n_cal], perm[n_cal : n_cal + n_test]
        model = SplitConformalClassifier(alpha=alpha, random_state=seed, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrivialSetWarning)
            model.fit(p[cal], y[cal])
        sets = model.predict_set(p[test])
        cov.append(empirical_coverage(y[test], sets))
        if params == {"conformity_score": "lac"} and seed < 3:
            np.testing.assert_array_equal(
                sets[:300], lac_sets_by_definition(p[cal], y[cal], p[test[:300]], alpha)
            )
    slack = _binomial_slack(n_cal, n_test, alpha, n_splits)
    assert np.mean(cov) >= 1 - alpha - slack
    if not params.get("class_conditional") and params["conformity_score"] != "topk":
        # randomised / continuous scores are not far above 1 - alpha either
        assert np.mean(cov) <= 1 - alpha + 1 / (n_cal + 1) + slack + 0.01


def test_class_conditional_coverage_holds_per_class(shared_data):
    p, y = cifar(shared_data, "wideresnet-16-4-cifar-10")
    rng = np.random.default_rng(1)
    per_class = []
    for _ in range(20):
        perm = rng.permutation(len(y))
        model = SplitConformalClassifier(conformity_score="lac", alpha=0.1, class_conditional=True)
        model.fit(p[perm[:5000]], y[perm[:5000]])
        sets = model.predict_set(p[perm[5000:]])
        per_class.append(class_conditional_coverage(y[perm[5000:]], sets))
    # about 500 calibration and 500 test samples per class
    assert np.all(np.mean(per_class, axis=0) >= 0.9 - 4 * math.sqrt(0.09 * (2 / 500) / 20))


# ------------------------------------------------------------------ Mondrian, binary, inputs


def test_groups_mondrian_equals_separate_predictors():
    p, y, _ = synthetic(1200, K=4)
    g = np.array(["a", "b", "c"])[np.arange(1200) % 3]
    model = SplitConformalClassifier(conformity_score="aps", alpha=0.1).fit(p[:800], y[:800],
                                                                            groups=g[:800])
    sets = model.predict_set(p[800:], groups=g[800:])
    pv = model.predict_pvalues(p[800:], groups=g[800:])
    for name in "abc":
        cal = np.flatnonzero(g[:800] == name)
        test = 800 + np.flatnonzero(g[800:] == name)
        alone = SplitConformalClassifier(conformity_score="aps", alpha=0.1).fit(p[cal], y[cal])
        np.testing.assert_array_equal(sets[test - 800], alone.predict_set(p[test]))
        np.testing.assert_array_equal(pv[test - 800], alone.predict_pvalues(p[test]))


def test_groups_and_classes_together():
    p, y, _ = synthetic(3000, K=3)
    g = np.arange(3000) % 2
    model = SplitConformalClassifier(conformity_score="lac", alpha=0.2, class_conditional=True)
    model.fit(p[:2000], y[:2000], groups=g[:2000])
    assert model.strata_.shape == (6, 2)
    sets = model.predict_set(p[2000:], groups=g[2000:])
    for k in range(3):
        cal = (g[:2000] == 1) & (y[:2000] == k)
        q = quantile_by_definition(1 - p[:2000][cal, k], 0.2)
        np.testing.assert_array_equal(sets[g[2000:] == 1, k], 1 - p[2000:][g[2000:] == 1, k] <= q)


def test_binary_scores_give_two_column_sets():
    rng = np.random.default_rng(0)
    s = rng.uniform(size=1000)
    y = (rng.uniform(size=1000) < s).astype(int)
    model = SplitConformalClassifier(conformity_score="lac", alpha=0.2,
                                     class_conditional=True).fit(s[:600], y[:600])
    sets = model.predict_set(s[600:])
    assert sets.shape == (400, 2)
    full = np.c_[1 - s, s]
    np.testing.assert_array_equal(
        sets,
        SplitConformalClassifier(conformity_score="lac", alpha=0.2, class_conditional=True)
        .fit(full[:600], y[:600])
        .predict_set(full[600:]),
    )
    labels = np.array(["neg", "pos"])[y]
    m = SplitConformalClassifier(alpha=0.2).fit(s[:600], labels[:600])
    assert empirical_coverage(labels[600:], m.predict_set(s[600:]), labels=m.classes_) > 0.7


def test_logits_equal_their_softmax():
    p, y, z = synthetic(600)
    for score in ("lac", "aps", "raps",
                  "topk"):
        a = SplitConformalClassifier(conformity_score=score, alpha=0.1,
                                     random_state=0).fit(z[:400], y[:400])
        b = SplitConformalClassifier(conformity_score=score, alpha=0.1,
                                     random_state=0).fit(p[:400], y[:400])
        np.testing.assert_array_equal(a.predict_set(z[400:]), b.predict_set(p[400:]))


def test_randomised_is_reproducible_and_transform_is_predict_set():
    p, y, _ = synthetic(600)
    m = SplitConformalClassifier(conformity_score="aps", randomized=True,
                                 random_state=3).fit(p[:400], y[:400])
    np.testing.assert_array_equal(m.predict_set(p[400:]),
                                  m.predict_set(p[400:]))
    np.testing.assert_array_equal(m.transform(p[400:]), m.predict_set(p[400:]))
    m2 = SplitConformalClassifier(conformity_score="aps", randomized=True,
                                  random_state=3).fit(p[:400], y[:400])
    np.testing.assert_array_equal(m2.predict_set(p[400:]), m.predict_set(p[400:]))


def test_raps_tuning_and_given_parameters():
    p, y, _ = synthetic(2000, K=10, temperature=0.5)
    tuned = SplitConformalClassifier(conformity_score="raps", alpha=0.1, random_state=0).fit(p,
                                                                                             y)
    assert 1 <= tuned.k_reg_ <= 10 and tuned.lam_ in (0.001, 0.01, 0.1, 0.2, 0.5)
    assert sum(len(c) for c in tuned.cal_scores_) == 2000 - 400
    given_ = SplitConformalClassifier(conformity_score="raps", alpha=0.1, k_reg=3,
                                      lam=0.05).fit(p, y)
    assert (given_.k_reg_, given_.lam_) == (3, 0.05)
    assert sum(len(c) for c in given_.cal_scores_) == 2000


def test_confidence_level_is_one_minus_alpha():
    p, y, _ = synthetic(500)
    a = SplitConformalClassifier(alpha=0.15).fit(p[:300], y[:300])
    b = SplitConformalClassifier(confidence_level=0.85).fit(p[:300], y[:300])
    assert a.alpha_ == pytest.approx(b.alpha_)
    np.testing.assert_array_equal(a.predict_set(p[300:]), b.predict_set(p[300:]))
    assert SplitConformalClassifier().fit(p, y).alpha_ == 0.1


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    p, y, _ = synthetic(300)
    m = SplitConformalClassifier().fit(torch.tensor(p[:200]), torch.tensor(y[:200]))
    out = m.predict_set(torch.tensor(p[200:]))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bool


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5])
def test_alpha_out_of_range(alpha):
    p, y, _ = synthetic(100)
    with pytest.raises(ValueError, match="alpha"):
        SplitConformalClassifier(alpha=alpha).fit(p, y)
    with pytest.raises(ValueError, match="confidence_level"):
        SplitConformalClassifier(confidence_level=alpha).fit(p, y)


def test_bad_parameters():
    p, y, _ = synthetic(100)
    with pytest.raises(ValueError, match="not both"):
        SplitConformalClassifier(alpha=0.1, confidence_level=0.9).fit(p, y)
    with pytest.raises(TypeError, match="alpha"):
        SplitConformalClassifier(alpha="0.1").fit(p, y)
    with pytest.raises(ValueError, match="score"):
        SplitConformalClassifier(conformity_score="margin").fit(p, y)
    with pytest.raises(ValueError, match="raps_size"):
        SplitConformalClassifier(conformity_score="raps", raps_size=1.2).fit(p, y)
    with pytest.raises(ValueError, match="input"):
        SplitConformalClassifier(input="odds").fit(p, y)


def test_group_errors():
    p, y, _ = synthetic(300)
    g = np.arange(300) % 2
    m = SplitConformalClassifier().fit(p[:200], y[:200], groups=g[:200])
    with pytest.raises(ValueError, match="not seen in fit"):
        m.predict_set(p[200:], groups=np.full(100, 7))
    with pytest.raises(ValueError, match="groups="):
        m.predict_set(p[200:])
    with pytest.raises(ValueError, match="not to fit"):
        SplitConformalClassifier().fit(p, y).predict_set(p, groups=g)
    with pytest.raises(ValueError, match="Inconsistent"):
        SplitConformalClassifier().fit(p, y, groups=g[:10])


def test_too_small_calibration_gives_full_sets_with_a_warning():
    p, y, _ = synthetic(30)
    with pytest.warns(TrivialSetWarning, match="too few"):
        m = SplitConformalClassifier(alpha=0.01).fit(p[:20], y[:20])
    assert np.isinf(m.quantiles_[0])
    assert m.predict_set(p[20:]).all()
    assert np.all(m.predict_pvalues(p[20:]) > 0.01)
    with pytest.warns(TrivialSetWarning):
        SplitConformalClassifier(conformity_score="aps", alpha=0.2,
                                 class_conditional=True).fit(p[:3], [0, 1, 1])


def test_predict_input_errors():
    p, y, _ = synthetic(100)
    m = SplitConformalClassifier().fit(p, y)
    with pytest.raises(ValueError, match="column"):
        m.predict_set(softmax(p[:, :3], axis=1))
    with pytest.raises(ValueError, match="NaN"):
        m.predict_set(np.full((2, 5), np.nan))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SplitConformalClassifier().predict_set(p)


def test_large_input_validation_is_blocked_but_complete():
    """Scores above 2**18 values are validated in row blocks: every block is checked."""
    p, y, _ = synthetic(70_000, K=5)
    m = SplitConformalClassifier().fit(p[:1000], y[:1000])
    for value, match in ((np.nan, "NaN"), (np.inf, "NaN or infinite"), (1.5, "outside")):
        bad = p.copy()
        bad[-1, 2] = value
        with pytest.raises(ValueError, match=match):
            m.predict_set(bad)
    bad = p.copy()
    bad[-1] *= 0.5
    with pytest.raises(ValueError, match="do not sum to 1"):
        m.predict_set(bad)
    with pytest.raises(ValueError, match="Cannot tell"):
        SplitConformalClassifier().fit(bad, y)


# ------------------------------------------------------------------ metrics


def test_metrics_by_definition():
    rng = np.random.default_rng(0)
    sets = rng.uniform(size=(200, 4)) < 0.4
    y = rng.integers(0, 4, 200)
    hit = [bool(sets[i, y[i]]) for i in range(200)]
    assert empirical_coverage(y, sets) == pytest.approx(sum(hit) / 200)
    assert mean_set_size(sets) == pytest.approx(sum(int(s.sum()) for s in sets) / 200)
    sizes, cov, counts = size_stratified_coverage(y, sets)
    for s, c, n in zip(sizes, cov, counts, strict=True):
        members = [i for i in range(200) if sets[i].sum() == s]
        assert n == len(members) and c == pytest.approx(np.mean([hit[i] for i in members]))
    per = class_conditional_coverage(y, sets)
    for k in range(4):
        assert per[k] == pytest.approx(np.mean([hit[i] for i in range(200) if y[i] == k]))
    assert np.isnan(class_conditional_coverage(np.zeros(200, int), sets)[1])
    with pytest.raises(ValueError, match="labels="):
        empirical_coverage(np.full(200, 9), sets)
    with pytest.raises(ValueError, match="2-D"):
        mean_set_size(sets[0])


# ------------------------------------------------------------------ peers


class _PassThrough:
    """A fitted 'classifier' whose predict_proba returns its input (the scores)."""

    def __new__(cls, y):
        from sklearn.base import BaseEstimator, ClassifierMixin

        class PassThrough(ClassifierMixin, BaseEstimator):
            def fit(self, X, y):
                self.classes_ = np.unique(y)
                return self

            def predict_proba(self, X):
                return np.asarray(X)

        return PassThrough().fit(None, y)


@pytest.mark.parametrize("score", ["lac", "aps"])
@pytest.mark.parametrize("name", ["wideresnet-16-4-cifar-10", "wideresnet-16-4-cifar-100"])
def test_parity_mapie_sets(shared_data, score, name):
    mapie = pytest.importorskip("mapie.classification")
    p, y = cifar(shared_data, name)
    est = _PassThrough(y)
    peer = mapie.SplitConformalClassifier(
        est, confidence_level=0.9, conformity_score=score, prefit=True, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer.conformalize(p[:5000], y[:5000])
        _, peer_sets = peer.predict_set(p[5000:])
    peer_sets = peer_sets[:, :, 0]
    fitted = peer._mapie_classifier
    q_peer = fitted.conformity_score_function_.quantiles_[0]
    # same quantile from the same calibration scores
    assert conformal_quantile(np.sort(fitted.conformity_scores_.ravel()), 0.1) == q_peer
    if score == "lac":
        ours = SplitConformalClassifier(conformity_score="lac", alpha=0.1).fit(p[:5000], y[:5000])
        np.testing.assert_array_equal(ours.predict_set(p[5000:]), peer_sets)
    else:
        # MAPIE's APS calibration scores use its own uniform draws; given its threshold, our
        # include_last_label sets are MAPIE's sets
        ranks = label_ranks(p[5000:])
        e = aps_score(p[5000:], ranks=ranks)
        ours = include_last_label_sets(p[5000:], e, np.full(e.shape, q_peer), ranks)
        np.testing.assert_array_equal(ours, peer_sets)


@pytest.mark.parametrize("smoothed", [False, True])
def test_parity_crepes_pvalues(shared_data, smoothed):
    crepes = pytest.importorskip("crepes")
    p, y = cifar(shared_data, "lenet-5-cifar-10")
    cal, test = slice(0, 3000), slice(3000, 3400)
    alphas_cal = 1 - p[cal][np.arange(3000), y[cal]]
    peer = crepes.ConformalClassifier().fit(alphas_cal)
    theirs = peer.predict_p(1 - p[test], smoothing=smoothed, seed=7)
    ours = SplitConformalClassifier(conformity_score="lac").fit(p[cal], y[cal])
    np.testing.assert_array_equal(
        ours.predict_pvalues(p[test], smoothed=smoothed, random_state=7), theirs
    )
    # class-conditional = crepes' Mondrian bins on the true label
    peer_cc = crepes.ConformalClassifier().fit(alphas_cal, bins=y[cal])
    theirs_cc = np.column_stack(
        [
            peer_cc.predict_p((1 - p[test])[:, k], bins=np.full(400, k),
                              smoothing=False)
            for k in range(10)
        ]
    )
    ours_cc = SplitConformalClassifier(conformity_score="lac",
                                       class_conditional=True).fit(p[cal], y[cal])
    np.testing.assert_array_equal(ours_cc.predict_pvalues(p[test]), theirs_cc)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
@pytest.mark.parametrize("score", ["lac", "aps", "raps", "topk"])
def test_persistence_round_trip(tmp_path, suffix, score):
    from calibkit.base import load

    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5), size=400)
    y = rng.integers(0, 5, size=400)
    groups = rng.integers(0, 2, size=400)
    cp = SplitConformalClassifier(conformity_score=score, alpha=0.2, random_state=0).fit(probs,
        y, groups=groups)
    path = tmp_path / f"cp{suffix}"
    cp.save(path)
    back = load(path)
    test = rng.dirichlet(np.ones(5), size=50)
    g_test = rng.integers(0, 2, size=50)
    np.testing.assert_array_equal(
        back.predict_set(test, groups=g_test), cp.predict_set(test, groups=g_test)
    )
    np.testing.assert_array_equal(
        SplitConformalClassifier.from_dict(cp.to_dict()).predict_pvalues(test, groups=g_test),
        cp.predict_pvalues(test, groups=g_test),
    )


def test_predict_with_a_different_number_of_columns_raises():
    rng = np.random.default_rng(4)
    cp = SplitConformalClassifier(conformity_score="lac", alpha=0.2).fit(
        rng.dirichlet(np.ones(4), size=200), rng.integers(0, 4, size=200)
    )
    with pytest.raises(ValueError, match="expecting 4 features"):
        cp.predict_set(rng.dirichlet(np.ones(3), size=5))
