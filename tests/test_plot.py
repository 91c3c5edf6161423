"""Tests for calibkit.plot. Reference: reliability_curve (tested by definition in
test_metrics_calibration.py); the drawn points must be exactly its values."""

from __future__ import annotations

import numpy as np
import pytest

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from calibkit.metrics import reliability_curve  # noqa: E402
from calibkit.plot import ReliabilityDisplay  # noqa: E402


def _data(seed=0, n=300, k=4):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(k), n), rng.integers(0, k, n)


@pytest.mark.parametrize("kw", [
    {}, {"mode": "classwise"}, {"mode": "classwise", "class_index": 1},
    {"strategy": "quantile", "n_bins": 5},
])
def test_from_predictions_draws_the_curve(kw):
    P, y = _data()
    disp = ReliabilityDisplay.from_predictions(y, P, **kw)
    curve = reliability_curve(y, P, **kw)
    x, yy = disp.line_.get_data()
    assert np.allclose(x, curve.mean_confidence) and np.allclose(yy, curve.accuracy)
    assert disp.ax_hist_ is not None and disp.ax_hist_ is not disp.ax_
    assert len(disp.ax_hist_.patches) == len(curve.count)
    plt.close("all")


def test_given_ax_binary_and_no_histogram():
    P, y = _data(k=2)
    fig, ax = plt.subplots()
    disp = ReliabilityDisplay.from_predictions(y, P[:, 1], mode="binary", ax=ax, name="m")
    assert disp.ax_ is ax and disp.figure_ is fig
    assert "m (ECE" in ax.get_legend().get_texts()[1].get_text()
    d2 = ReliabilityDisplay(disp.curve).plot(show_histogram=False)
    assert d2.ax_hist_ is None
    plt.close("all")


def test_from_calibrator_uses_predict_proba_and_classes():
    from calibkit.scaling import TemperatureScaling

    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3)) * 3
    y = rng.integers(0, 3, 300)
    names = np.array(["a", "b", "c"])[y]
    cal = TemperatureScaling().fit(z, names)
    disp = ReliabilityDisplay.from_calibrator(cal, z, names)
    curve = reliability_curve(y, cal.predict_proba(z))
    assert np.allclose(disp.line_.get_data()[1], curve.accuracy)
    assert disp.name == "TemperatureScaling"
    plt.close("all")
