"""Tests of detection.plot: the class-averaged bins equal a per-class loop over the
definition (mean IoU accuracy and mean score per class and bin, averaged over the classes
present in the bin); the figures draw with the Agg backend."""

from __future__ import annotations

import numpy as np
import pytest

from calibkit import detection
from calibkit.detection.plot import (
    dece_reliability,
    laece_reliability,
    plot_dece_reliability,
    plot_laece_reliability,
)
from calibkit.detection.synthetic import make_coco_like


def test_laece_bins_by_definition():
    gt, dets = make_coco_like(20, dets_per_image=20, n_classes=4, seed=4)
    m = detection.match(gt, dets)
    curve = laece_reliability(m, n_bins=10)
    edges = np.linspace(0, 1, 11)
    for j in range(10):
        accs, confs = [], []
        for c in range(m.n_categories):
            sel = m.valid & (m.class_index == c)
            p = m.dets.score[sel]
            in_bin = (p <= edges[j + 1]) & ((p > edges[j]) if j else (p >= 0))
            if m.npig[c] and in_bin.any():
                accs.append(m.iou[sel][in_bin].mean())
                confs.append(p[in_bin].mean())
        if accs:
            assert curve["accuracy"][j] == pytest.approx(np.mean(accs))
            assert curve["confidence"][j] == pytest.approx(np.mean(confs))
        else:
            assert np.isnan(curve["accuracy"][j])
    assert curve["fraction"].sum() == pytest.approx(1.0)


def test_dece_curve_matches_metric_and_plots_draw():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gt, dets = make_coco_like(20, dets_per_image=20, n_classes=4, seed=4)
    m5 = detection.match(gt, dets, tau=0.5)
    c = dece_reliability(m5)
    ok = ~np.isnan(c["accuracy"])
    gap = np.sum(c["fraction"][ok] * np.abs(c["accuracy"][ok] - c["confidence"][ok]))
    assert gap == pytest.approx(detection.dece_pooled(m5))
    ax = plot_laece_reliability(detection.match(gt, dets))
    assert ax.get_title() == "LaECE reliability"
    _, ax2 = plt.subplots()
    assert plot_dece_reliability(m5, ax=ax2) is ax2
    plt.close("all")
