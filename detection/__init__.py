"""Detection calibration on top of calibkit: COCO and LVIS inputs (boxes and instance
masks), COCO greedy matching and LVIS's federated rules, the detection calibration metrics
(LaECE, LaACE, LRP, D-ECE, AP, OCE) with image-level bootstrap intervals, the COCO and LVIS
summaries, LRP-optimal thresholds, class-wise detector calibration
(:class:`DetectionCalibrator`) and sharded evaluation (:func:`match_shards`,
:class:`MatchState`; :mod:`calibkit.detection.dask` on a Dask cluster).

``calibkit.detection`` imports calibkit; calibkit never imports ``calibkit.detection``.
Public names are imported on first use, so ``from calibkit.detection import coco_summary``
loads only the readers and the compiled evaluator (not scikit-learn).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DetectionCalibrator": "calibkit.detection.calibrate",
    "Detections": "calibkit.detection.io",
    "Federated": "calibkit.detection.io",
    "GroundTruth": "calibkit.detection.io",
    "Masks": "calibkit.detection.masks",
    "from_torchvision": "calibkit.detection.io",
    "load_dets": "calibkit.detection.io",
    "load_gt": "calibkit.detection.io",
    "netcal_npz_to_coco": "calibkit.detection.io",
    "Matches": "calibkit.detection.matching",
    "box_iou": "calibkit.detection.matching",
    "match": "calibkit.detection.matching",
    "match_many": "calibkit.detection.matching",
    "match_netcal": "calibkit.detection.matching",
    "average_precision": "calibkit.detection.metrics",
    "average_precision_per_class": "calibkit.detection.metrics",
    "laece_per_class": "calibkit.detection.metrics",
    "laace_per_class": "calibkit.detection.metrics",
    "lrp_per_class": "calibkit.detection.metrics",
    "box_features": "calibkit.detection.metrics",
    "dece_netcal": "calibkit.detection.metrics",
    "dece_pooled": "calibkit.detection.metrics",
    "evaluate": "calibkit.detection.metrics",
    "laace": "calibkit.detection.metrics",
    "laece": "calibkit.detection.metrics",
    "lrp": "calibkit.detection.metrics",
    "oce": "calibkit.detection.oce",
    "coco_summary": "calibkit.detection.cocoeval",
    "lvis_summary": "calibkit.detection.cocoeval",
    "MatchState": "calibkit.detection.shards",
    "match_shards": "calibkit.detection.shards",
    "evaluate_shards": "calibkit.detection.shards",
    "apply_thresholds": "calibkit.detection.thresholds",
    "lrp_optimal_thresholds": "calibkit.detection.thresholds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'calibkit.detection' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
