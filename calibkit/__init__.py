"""calibkit: post-hoc calibration for classifiers and object detectors.

Public names are imported lazily (``import calibkit`` stays fast and imports no optional
dependency); ``calibkit.TemperatureScaling`` imports :mod:`calibkit.scaling` on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Calibrator": "calibkit.base",
    "BinaryCalibrator": "calibkit.base",
    "load": "calibkit.base",
    "TemperatureScaling": "calibkit.scaling",
    "PlattScaling": "calibkit.scaling",
    "VectorScaling": "calibkit.scaling",
    "IsotonicCalibration": "calibkit.isotonic",
    "HistogramBinning": "calibkit.binning",
    "BetaCalibration": "calibkit.binning",
    "IdentityCalibration": "calibkit.linear",
    "LinearCalibration": "calibkit.linear",
    "VennAbers": "calibkit.venn_abers",
    "EnsembleTemperatureScaling": "calibkit.ensemble",
    "DirichletCalibration": "calibkit.dirichlet",
    "MatrixScaling": "calibkit.dirichlet",
    "StructuredVectorScaling": "calibkit.structured",
    "StructuredMatrixScaling": "calibkit.structured",
    "SplineCalibration": "calibkit.spline",
    "TopVersusAll": "calibkit.top_versus_all",
    "CalibratedClassifier": "calibkit.sklearn",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'calibkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
