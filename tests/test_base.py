"""Interface-wide tests run against every calibkit calibrator.

Reference: the contract of :class:`calibkit.base.Calibrator` and scikit-learn's estimator
conventions (``sklearn.utils.estimator_checks.check_estimator``): labels of any type with
``classes_`` = sorted unique labels and ``predict_proba`` columns following them; ``predict``
= ``classes_[argmax predict_proba]``; binary scores (n,) and (n, 2) equivalent; integer
sample weights equivalent to repeating rows; a soft target ``t`` equivalent to weights
``(t, 1 - t)`` on the two hard labels (every loss used is linear in the target); persistence
round-trips that give identical predictions; inputs never mutated; torch in -> torch out; and
clear errors for bad input.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn_checks import assert_passes_check_estimator

import calibkit
from calibkit._validation import SaturatedProbabilityWarning

pytestmark = pytest.mark.filterwarnings("ignore::calibkit._validation.SaturatedProbabilityWarning")

CALIBRATORS = [
    "TemperatureScaling",
    "PlattScaling",
    "VectorScaling",
    "IsotonicCalibration",
    "HistogramBinning",
    "BetaCalibration",
    "EnsembleTemperatureScaling",
    "DirichletCalibration",
    "MatrixScaling",
    "StructuredVectorScaling",
    "StructuredMatrixScaling",
    "SplineCalibration",
    "TopVersusAll",
]
#: calibrators whose optimiser only reaches the optimum to a tolerance
TOLERANCE = {"TemperatureScaling": 1e-6, "PlattScaling": 1e-6, "VectorScaling": 1e-5,
             "BetaCalibration": 1e-7, "EnsembleTemperatureScaling": 1e-6,
             "DirichletCalibration": 1e-5, "MatrixScaling": 1e-5,
             "StructuredVectorScaling": 1e-5, "StructuredMatrixScaling": 1e-5}


#: calibrators that need one score column per class (no 1-D binary scores)
NEEDS_COLUMNS = {"VectorScaling"}


def make(name, **params):
    return getattr(calibkit, name)(**params)


def atol(name):
    return TOLERANCE.get(name, 1e-12)


def multiclass_data(n=300, k=3, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    p = softmax(1.5 * z, axis=1)
    y = (rng.uniform(size=(n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return z, y


def binary_data(n=300, seed=1, name=None):
    """1-D binary logits, or the equivalent two columns ``[0, z]`` for ``NEEDS_COLUMNS``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) * 2
    y = (rng.uniform(size=n) < expit(1.3 * z + 0.4)).astype(int)
    if name in NEEDS_COLUMNS:
        z = np.column_stack([np.zeros_like(z), z])
    return z, y


names = pytest.mark.parametrize("name", CALIBRATORS)


# ------------------------------------------------------------------ labels and classes_


@names
def test_string_labels_follow_classes_order(name):
    z, y = multiclass_data()
    labels = np.array(["cat", "ant", "dog"])  # sorted: ant, cat, dog
    sorted_labels = np.sort(labels)
    y_str = sorted_labels[y]  # column k <-> k-th label in sorted order
    cal_int = make(name).fit(z, y)
    cal_str = make(name).fit(z, y_str)
    np.testing.assert_array_equal(cal_str.classes_, sorted_labels)
    np.testing.assert_array_equal(cal_int.classes_, [0, 1, 2])
    proba = cal_str.predict_proba(z)
    assert proba.shape == (len(z), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba, cal_int.predict_proba(z), atol=atol(name))
    pred = cal_str.predict(z)
    np.testing.assert_array_equal(pred, sorted_labels[np.argmax(proba, axis=1)])
    assert set(pred) <= set(labels)
    np.testing.assert_array_equal(cal_str.transform(z), proba)


@names
def test_integer_labels_binary_positive_is_larger_label(name):
    z, y = binary_data(name=name)
    y_37 = np.where(y == 1, 7, 3)
    cal = make(name).fit(z, y_37)
    np.testing.assert_array_equal(cal.classes_, [3, 7])
    ref = make(name).fit(z, y)
    np.testing.assert_allclose(cal.predict_proba(z), ref.predict_proba(z), atol=atol(name))
    assert set(cal.predict(z)) <= {3, 7}
    # the calibrated P(7) increases with the score of the positive class
    lo_hi = np.array([-3.0, 3.0])
    if name in NEEDS_COLUMNS:
        lo_hi = np.column_stack([np.zeros(2), lo_hi])
    q = cal.predict_proba(lo_hi)[:, 1]
    assert q[1] > q[0]


@names
def test_binary_1d_and_two_columns_are_equivalent(name):
    z, y = binary_data()
    two = np.column_stack([np.zeros_like(z), z])  # softmax([0, z]) = [1 - expit(z), expit(z)]
    if name in NEEDS_COLUMNS:
        with pytest.raises(ValueError, match="one column per class"):
            make(name).fit(z, y)
        return
    a = make(name).fit(z, y).predict_proba(z)
    b = make(name).fit(two, y).predict_proba(two)
    assert a.shape == b.shape == (len(z), 2)
    np.testing.assert_allclose(a, b, atol=max(atol(name), 1e-10))
    p = expit(z)
    c = make(name).fit(p, y).predict_proba(p)
    d = make(name).fit(np.column_stack([1 - p, p]), y).predict_proba(np.column_stack([1 - p, p]))
    np.testing.assert_allclose(c, d, atol=max(atol(name), 1e-10))


@names
def test_soft_targets(name):
    cal = make(name)
    z, y = binary_data(name=name)
    if not cal._supports_soft_targets:
        with pytest.raises(ValueError, match="soft targets"):
            cal.fit(z, np.where(y == 1, 0.8, 0.1))
        return
    # hard labels given as floats are hard labels
    np.testing.assert_allclose(cal.fit(z, y.astype(float)).predict_proba(z),
                               make(name).fit(z, y).predict_proba(z), atol=atol(name))
    # a soft target t equals the two hard labels weighted t and 1 - t
    t = np.random.default_rng(2).uniform(0.05, 0.95, size=len(y))
    soft = make(name).fit(z, t)
    doubled = make(name).fit(np.concatenate([z, z]), np.concatenate([np.ones_like(y),
                                                                     np.zeros_like(y)]),
                             sample_weight=np.concatenate([t, 1 - t]))
    np.testing.assert_allclose(soft.predict_proba(z), doubled.predict_proba(z),
                               atol=max(atol(name), 1e-10))
    np.testing.assert_array_equal(soft.classes_, [0, 1])
    # soft targets make no sense for multiclass scores
    zm, _ = multiclass_data()
    with pytest.raises(ValueError, match="soft targets"):
        make(name).fit(zm, np.full(len(zm), 0.5))


@names
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_sample_weight_equals_repetition(name, kind):
    z, y = binary_data(name=name) if kind == "binary" else multiclass_data()
    w = np.random.default_rng(3).integers(0, 4, len(y))
    w[:4] = [1, 2, 3, 1]
    if name in {k for k, v in EXPECTED_FAILED_BY_CALIBRATOR.items()
                if v.get("check_sample_weight_equivalence_on_dense_data") == COUNTS_SAMPLES}:
        # these count samples: weights are relative (mean 1), so scaling them changes nothing
        a = make(name).fit(z, y, sample_weight=w).predict_proba(z)
        b = make(name).fit(z, y, sample_weight=w * 7.0).predict_proba(z)
        np.testing.assert_allclose(a, b, atol=1e-9)
        return
    weighted = make(name).fit(z, y, sample_weight=w)
    repeated = make(name).fit(np.repeat(z, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.predict_proba(z), repeated.predict_proba(z),
                               atol=max(atol(name), 1e-10) * 10)


# ------------------------------------------------------------------ persistence


@names
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_persistence_round_trips(name, kind, tmp_path):
    z, y = binary_data(name=name) if kind == "binary" else multiclass_data()
    labels = np.array(["no", "yes"]) if kind == "binary" else np.array(["a", "b", "c"])
    cal = make(name).fit(z, labels[y])
    expected = cal.predict_proba(z)
    blob = json.loads(json.dumps(cal.to_dict()))
    copies = [type(cal).from_dict(blob)]
    for suffix in (".json", ".npz"):
        path = tmp_path / f"cal{suffix}"
        cal.save(path)
        copies.append(type(cal).load(path))
        copies.append(calibkit.load(path))
    for copy in copies:
        assert type(copy) is type(cal)
        assert copy.get_params() == cal.get_params()
        np.testing.assert_array_equal(copy.classes_, cal.classes_)
        np.testing.assert_array_equal(copy.predict_proba(z), expected)
        np.testing.assert_array_equal(copy.predict(z), cal.predict(z))


# ------------------------------------------------------------------ inputs


@names
def test_inputs_are_never_mutated(name):
    for z, y in (binary_data(name=name), multiclass_data()):
        w = np.random.default_rng(4).uniform(0.5, 2, len(y))
        copies = [a.copy() for a in (z, y, w)]
        cal = make(name).fit(z, y, sample_weight=w)
        cal.predict_proba(z)
        cal.predict(z)
        for original, copy in zip((z, y, w), copies, strict=True):
            np.testing.assert_array_equal(original, copy)
        p = softmax(z, axis=1) if z.ndim == 2 else expit(z)
        p_copy = p.copy()
        make(name).fit(p, y).predict_proba(p)
        np.testing.assert_array_equal(p, p_copy)


@names
def test_torch_tensor_in_tensor_out(name):
    torch = pytest.importorskip("torch")
    for z, y in (binary_data(name=name), multiclass_data()):
        zt = torch.tensor(z, dtype=torch.float32)
        cal = make(name).fit(zt, torch.tensor(y))
        out = cal.predict_proba(zt)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        ref = make(name).fit(z.astype(np.float32), y).predict_proba(z.astype(np.float32))
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-6)
        assert isinstance(cal.predict_proba(z), np.ndarray)  # numpy in, numpy out


def _bad_fit_cases():
    z, y = multiclass_data(60)
    p = softmax(z, axis=1)
    nan = z.copy()
    nan[3, 1] = np.nan
    inf = z.copy()
    inf[0, 0] = np.inf
    return {
        "nan": ((nan, y), {}, "NaN or infinite"),
        "inf": ((inf, y), {}, "NaN or infinite"),
        "3-D scores": ((z[:, :, None], y), {}, "1-D or 2-D"),
        "length mismatch": ((z, y[:-1]), {}, "[Ii]nconsistent"),
        "2-D labels": ((z, np.column_stack([y, y])), {}, "1-D"),
        "labels do not match columns": ((z, np.arange(60) % 5), {}, "distinct label"),
        "one class": ((z, np.zeros(60, dtype=int)), {}, "one class"),
        "empty": ((np.empty((0, 3)), np.empty(0, dtype=int)), {}, "empty"),
        "probs as logits": ((p, y), {"input": "logits"}, "look like probabilities"),
        "logits as probs": ((z, y), {"input": "probs"}, "look like logits"),
        "ambiguous rows": ((np.abs(p - 0.1), y), {}, "Cannot tell"),
        "bad input kind": ((z, y), {"input": "logit"}, "'input' parameter"),
        "negative weight": ((z, y), {"sample_weight": -np.ones(60)}, "non-negative"),
        "weight length": ((z, y), {"sample_weight": np.ones(5)}, "sample_weight"),
    }


BAD_FIT = _bad_fit_cases()


@names
@pytest.mark.parametrize("case", list(BAD_FIT))
def test_bad_input_at_fit_raises_clear_error(name, case):
    (scores, y), kwargs, match = BAD_FIT[case]
    params = {k: v for k, v in kwargs.items() if k != "sample_weight"}
    fit_kwargs = {k: v for k, v in kwargs.items() if k == "sample_weight"}
    with pytest.raises(ValueError, match=match):
        make(name, **params).fit(scores, y, **fit_kwargs)


@names
def test_bad_input_at_predict(name):
    from sklearn.exceptions import NotFittedError

    z, y = multiclass_data(60)
    with pytest.raises(NotFittedError):
        make(name).predict_proba(z)
    cal = make(name).fit(z, y)
    with pytest.raises(ValueError, match="column"):
        cal.predict_proba(z[:, :2])
    bad = z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cal.predict_proba(bad)
    with pytest.raises(ValueError, match="empty"):
        cal.predict_proba(np.empty((0, 3)))
    with pytest.raises(TypeError, match="numeric"):
        cal.predict_proba(np.array([["a", "b", "c"]]))


#: calibrators that turn probabilities into logits (and so clip saturated ones)
TAKES_LOGITS = {"TemperatureScaling", "PlattScaling", "VectorScaling",
                "EnsembleTemperatureScaling", "DirichletCalibration", "MatrixScaling",
                "StructuredVectorScaling", "StructuredMatrixScaling"}


@names
def test_saturated_probabilities_warn_only_where_logits_are_taken(name):
    z, y = multiclass_data(60)
    p = softmax(z, axis=1)
    p[0] = [0.0, 1.0, 0.0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make(name).fit(p, y)
    warned = any(issubclass(w.category, SaturatedProbabilityWarning) for w in caught)
    assert warned == (name in TAKES_LOGITS)


# ------------------------------------------------------------------ scikit-learn checks

#: checks that cannot apply to one calibrator only
SEPARABLE = (
    "an unregularised full map has K (K + 1) parameters for check_estimator's few random "
    "samples: they are separable, the NLL has no minimiser, and two fits agree only to the "
    "optimiser's tolerance"
)
COUNTS_SAMPLES = (
    "weights only matter up to a common factor, and this model counts samples (a mixture "
    "weight and a penalty that shrink with n, or a spline whose knots follow n): weights are "
    "rescaled to mean 1, so integer weights cannot also equal repeated rows"
)
#: checks whose outcome depends on the summation order numpy picks for an array's memory
#: alignment: two fits of the same separable data may stop at different points
MAY_FAIL_BY_CALIBRATOR = {
    "DirichletCalibration": {"check_pipeline_consistency": SEPARABLE},
    "MatrixScaling": {"check_pipeline_consistency": SEPARABLE},
}
EXPECTED_FAILED_BY_CALIBRATOR = {
    "StructuredVectorScaling": {"check_sample_weight_equivalence_on_dense_data": COUNTS_SAMPLES},
    "StructuredMatrixScaling": {"check_sample_weight_equivalence_on_dense_data": COUNTS_SAMPLES},
    "SplineCalibration": {"check_sample_weight_equivalence_on_dense_data": COUNTS_SAMPLES},
    "DirichletCalibration": {"check_sample_weight_equivalence_on_dense_data": SEPARABLE},
    "MatrixScaling": {"check_sample_weight_equivalence_on_dense_data": SEPARABLE},
    "VectorScaling": {
        "check_sample_weight_equivalence_on_dense_data": (
            "fits 1-D (one-column) scores; VectorScaling needs one score column per class"
        ),
    },
}


@names
def test_sklearn_check_estimator(name):
    # check_estimator feeds random features in [0, 1) whose rows do not sum to 1: in
    # input="auto" that is rightly an ambiguity error, so declare them logits
    assert_passes_check_estimator(
        make(name, input="logits"), EXPECTED_FAILED_BY_CALIBRATOR.get(name),
        may_fail=MAY_FAIL_BY_CALIBRATOR.get(name),
    )


def test_every_listed_calibrator_is_a_registered_calibrator():
    for name in CALIBRATORS:
        cls = getattr(calibkit, name)
        assert issubclass(cls, calibkit.Calibrator)
        assert calibkit.Calibrator._registry[name] is cls
