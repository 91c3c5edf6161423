"""Tests of calibkit.top_versus_all.

Reference (by definition): the inner binary calibrator fitted directly on
``(max_k p_k, 1[argmax = y])``, and the redistribution written out with loops.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibkit import IsotonicCalibration, PlattScaling, TopVersusAll
from calibkit.top_versus_all import top_label_probabilities


def data(n=1500, k=6, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k) * 0.4, size=n)
    y = np.array([rng.choice(k, p=row**0.6 / (row**0.6).sum()) for row in p])
    return p, y


def reference_redistribution(p, q):
    out = np.empty_like(p)
    for i, row in enumerate(p):
        order = np.argsort(-row, kind="stable")
        top, second = order[0], row[order[1]]
        qi = max(q[i], second / (1 - row[top] + second))
        for k in range(len(row)):
            out[i, k] = qi if k == top else row[k] * (1 - qi) / (1 - row[top])
    return out


@pytest.mark.parametrize("inner", ["platt", "isotonic", PlattScaling(), IsotonicCalibration()])
def test_is_the_binary_calibrator_of_the_top_label_confidence(inner):
    p, y = data()
    tva = TopVersusAll(calibrator=inner, input="probs").fit(p, y)
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(int)
    cls = PlattScaling if (inner == "platt" or isinstance(inner, PlattScaling)) else (
        IsotonicCalibration)
    direct = cls(input="probs").fit(conf, correct).predict_proba(conf)[:, 1]
    np.testing.assert_allclose(tva.predict_proba(p), reference_redistribution(p, direct),
                               atol=1e-12)


def test_rejects_a_calibrator_that_is_not_binary():
    p, y = data(200)
    with pytest.raises(ValueError, match="binary calibrator"):
        TopVersusAll(calibrator="vector").fit(p, y)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 8),
       inner=st.sampled_from(["platt", "isotonic", "histogram", "beta"]))
def test_keeps_the_top_class_and_gives_distributions(seed, k, inner):
    p, y = data(n=150, k=k, seed=seed)
    if (p.argmax(axis=1) == y).all() or (p.argmax(axis=1) != y).all():
        return
    q = TopVersusAll(calibrator=inner, input="probs").fit(p, y).predict_proba(p)
    assert np.allclose(q.sum(axis=1), 1) and np.all(q >= 0)
    top = p.argmax(axis=1)
    assert np.all(q[np.arange(len(p)), top] >= q.max(axis=1) - 1e-12)


def test_certain_top_class_spreads_the_rest_uniformly():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.3, 0.2]])
    q = top_label_probabilities(p, np.array([0.7, 0.1]))
    np.testing.assert_allclose(q[0], [0.7, 0.15, 0.15])
    # the floor keeps class 0 first: q' = 0.3 / (0.5 + 0.3) = 0.375
    np.testing.assert_allclose(q[1], [0.375, 0.375, 0.25])


@pytest.mark.parametrize("all_correct", [True, False])
def test_one_sided_top_label_problem_is_a_clear_error(all_correct):
    """Hypothesis found this: every top-label prediction wrong (or right) leaves the binary
    confidence problem with one class; the error says so instead of naming ``y``."""
    z = np.array([[0.0, 1.0, 0.0, 0.0], [0.0] * 4, [0.0] * 4, [0.0] * 4])
    y = z.argmax(axis=1) if all_correct else (z.argmax(axis=1) + 1) % 4
    with pytest.raises(ValueError, match="top-label predictions of the calibration data are "
                       + ("correct" if all_correct else "wrong")):
        TopVersusAll(calibrator="platt", input="logits").fit(z, y)
