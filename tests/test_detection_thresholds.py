"""Tests of detection.thresholds against a by-definition search: for every prefix of the
per-class order (parity mode) or every distinct score (tie-aware mode), count TP / FP / FN
and the localisation error directly and take the first minimum of LRP."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibkit import detection
from calibkit.detection.synthetic import make_coco_like

A, B = [0, 0, 10, 10], [50, 50, 10, 10]


def lrp_of(tp, iou, npig, tau):
    """LRP with the spec's arithmetic (detection.md 10.6), operation by operation: at tau = 0
    LRP has exact plateaus whose argmin is decided by the rounding of these expressions."""
    n_tp, n_fp = float(tp.sum()), float((~tp).sum())
    n_fn = npig - n_tp
    loc = n_tp - (np.cumsum(np.where(tp, iou, 0.0))[-1] if len(tp) else 0.0)
    return (loc / (1 - tau) + n_fp + n_fn) / (n_tp + n_fp + n_fn)


def thresholds_ref(m, tie_aware):
    thr = np.full(m.n_categories, np.nan)
    best = np.full(m.n_categories, np.nan)
    for c in range(m.n_categories):
        if m.npig[c] == 0:
            thr[c] = -1
            continue
        idx = m.order[m.class_index[m.order] == c]
        if len(idx) == 0 or not m.tp[idx].any():
            best[c] = 1.0
            continue
        s = m.dets.score[idx]
        vals, cands = [], []
        for k in range(len(idx)):
            if tie_aware and k + 1 < len(idx) and s[k + 1] == s[k]:
                continue
            sel = idx[: k + 1]
            sel = sel[~m.ignored[sel]]
            vals.append(lrp_of(m.tp[sel], m.iou[sel], m.npig[c], m.tau))
            cands.append(k)
        j = int(np.argmin(vals))
        thr[c], best[c] = s[cands[j]], vals[j]
    return thr, best


def _gt(boxes):
    return {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}, {"id": 2}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "bbox": b,
                             "iscrowd": 0} for k, b in enumerate(boxes)]}


def test_tie_bug_and_tie_aware_mode():
    far = [[200, 200, 10, 10], [300, 300, 10, 10]]
    dets = [{"image_id": 1, "category_id": 1, "bbox": b, "score": s}
            for b, s in zip([A, B, *far], [0.9, 0.5, 0.5, 0.5], strict=True)]
    m = detection.match(_gt([A, B]), dets, tau=0.5)
    thr, olrp = detection.lrp_optimal_thresholds(m)
    # parity: argmin inside the 0.5 tie group (after the second TP): LRP 0, threshold 0.5,
    # but thresholding at 0.5 keeps both FPs (realised LRP 0.5)
    assert thr[0] == 0.5 and olrp[0] == 0.0
    kept = detection.apply_thresholds(m.dets, [1, 2], thr)
    assert kept.all()
    assert lrp_of(m.tp[kept], m.iou[kept], 2, 0.5) == pytest.approx(0.5)
    thr2, olrp2 = detection.lrp_optimal_thresholds(m, tie_aware=True)
    assert thr2[0] == 0.9 and olrp2[0] == pytest.approx(0.5)  # first of two equal minima
    assert thr[1] == -1 and thr2[1] == -1  # class 2: no ground truth


def test_special_values_and_apply():
    dets = [{"image_id": 1, "category_id": 1, "bbox": [200, 200, 5, 5], "score": 0.4}]
    m = detection.match(_gt([A]), dets, tau=0.5)
    thr, olrp = detection.lrp_optimal_thresholds(m)
    assert np.isnan(thr[0]) and olrp[0] == 1.0  # no TP
    keep = detection.apply_thresholds(m.dets, [1, 2], thr)
    assert keep.all()  # NaN keeps everything
    d = detection.Detections.from_arrays([1, 1, 1], [1, 2, 3], [0.2, 0.2, 0.2], np.ones((3, 4)))
    np.testing.assert_array_equal(detection.apply_thresholds(d, [1, 2], [0.3, 0.2]),
                                  [False, True, True])  # unknown category 3 is kept
    with pytest.raises(ValueError, match="category_ids must be distinct"):
        detection.apply_thresholds(d, [1, 1], [0.3, 0.2])
    with pytest.raises(ValueError, match="one value per category"):
        detection.apply_thresholds(d, [1, 2], [0.3])


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 0.5]), st.booleans())
def test_matches_by_definition_search(seed, tau, tie_aware):
    gt, dets = make_coco_like(5, dets_per_image=20, n_classes=3, crowd_fraction=0.2,
                              score_decimals=1, seed=seed)
    m = detection.match(gt, dets, tau=tau)
    thr, olrp = detection.lrp_optimal_thresholds(m, tie_aware=tie_aware)
    ref_thr, ref_olrp = thresholds_ref(m, tie_aware)
    np.testing.assert_array_equal(thr, ref_thr)
    np.testing.assert_allclose(olrp, ref_olrp, rtol=1e-12)
