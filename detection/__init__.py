"""Detection calibration on top of calibkit: COCO inputs, COCO greedy matching, the
detection calibration metrics (LaECE, LaACE, LRP, D-ECE, AP, OCE) with image-level bootstrap
intervals, LRP-optimal thresholds and class-wise detector calibration
(:class:`DetectionCalibrator`).

``calibkit.detection`` imports calibkit; calibkit never imports ``calibkit.detection``.
"""

from calibkit.detection.calibrate import DetectionCalibrator
from calibkit.detection.io import (
    Detections,
    GroundTruth,
    from_torchvision,
    load_dets,
    load_gt,
    netcal_npz_to_coco,
)
from calibkit.detection.matching import Matches, box_iou, match, match_many, match_netcal
from calibkit.detection.metrics import (
    average_precision,
    box_features,
    dece_netcal,
    dece_pooled,
    evaluate,
    laace,
    laece,
    lrp,
)
from calibkit.detection.oce import oce
from calibkit.detection.thresholds import apply_thresholds, lrp_optimal_thresholds

__all__ = [
    "DetectionCalibrator",
    "Detections",
    "GroundTruth",
    "Matches",
    "apply_thresholds",
    "average_precision",
    "box_features",
    "box_iou",
    "dece_netcal",
    "dece_pooled",
    "evaluate",
    "from_torchvision",
    "laace",
    "laece",
    "load_dets",
    "load_gt",
    "lrp",
    "lrp_optimal_thresholds",
    "match",
    "match_many",
    "match_netcal",
    "netcal_npz_to_coco",
    "oce",
]
