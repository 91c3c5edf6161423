"""The methods the benchmarks compare, by the names the CLI accepts."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """A benchmark method: ``module.cls(**kwargs)``; ``top1`` says whether it applies to
    top-1-only data (a binary calibrator of the top-label confidence); ``conformal`` that it
    outputs prediction sets instead of probabilities."""

    label: str
    module: str | None
    cls: str | None
    kwargs: tuple = ()
    top1: bool = True
    conformal: bool = False


CLASSIFICATION_METHODS = {
    "uncalibrated": MethodSpec("Uncalibrated", None, None),
    "temperature": MethodSpec("Temperature scaling", "calibkit.scaling", "TemperatureScaling",
                              top1=False),
    "vector": MethodSpec("Vector scaling", "calibkit.scaling", "VectorScaling", top1=False),
    "platt": MethodSpec("Platt scaling", "calibkit.scaling", "PlattScaling"),
    "isotonic": MethodSpec("Isotonic regression", "calibkit.isotonic", "IsotonicCalibration"),
    "histogram": MethodSpec("Histogram binning (15 bins)", "calibkit.binning", "HistogramBinning"),
    "beta": MethodSpec("Beta calibration", "calibkit.binning", "BetaCalibration"),
    "venn-abers": MethodSpec("Venn-ABERS (IVAP)", "calibkit.venn_abers", "VennAbers"),
    "conformal-lac": MethodSpec("Split conformal, LAC", "calibkit.conformal",
                                "SplitConformalClassifier", (("conformity_score", "lac"),),
                                top1=False, conformal=True),
    "conformal-aps": MethodSpec("Split conformal, APS", "calibkit.conformal",
                                "SplitConformalClassifier", (("conformity_score", "aps"),),
                                top1=False, conformal=True),
    "conformal-raps": MethodSpec("Split conformal, RAPS", "calibkit.conformal",
                                 "SplitConformalClassifier", (("conformity_score", "raps"),),
                                 top1=False, conformal=True),
}

#: the default run: every method except vector scaling, whose fit (2K parameters) costs
#: about 10 s per CIFAR-100 split on this 2-core machine; ``--methods vector`` adds it
DEFAULT_CLASSIFICATION_METHODS = tuple(m for m in CLASSIFICATION_METHODS if m != "vector")


def check_methods(methods, registry: dict, option: str) -> list[str]:
    """Validate method names against ``registry``; raise naming ``option`` and the choices."""
    if isinstance(methods, str):
        methods = [methods]
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in registry]
    if unknown:
        raise ValueError(
            f"unknown method(s) {unknown} for {option}; choose from {list(registry)}."
        )
    if not methods:
        raise ValueError(f"{option} is empty; choose from {list(registry)}.")
    return methods


def available(spec: MethodSpec) -> bool:
    """Whether the class behind ``spec`` can be imported."""
    if spec.module is None:
        return True
    try:
        mod = importlib.import_module(spec.module)
    except ImportError:
        return False
    return hasattr(mod, spec.cls)


def make_classification(method: str, *, input: str, alpha: float, seed: int):
    """A fresh estimator for ``method`` (None for ``"uncalibrated"``).

    Calibrators get ``input=`` (``"logits"`` or ``"probs"``) when they take one; conformal
    predictors get ``alpha`` and, when they are randomised, ``random_state=seed``.
    """
    spec = CLASSIFICATION_METHODS[method]
    if spec.module is None:
        return None
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    kwargs = dict(spec.kwargs)
    params = cls().get_params() if hasattr(cls, "get_params") else {}
    if "input" in params:
        kwargs["input"] = input
    if spec.conformal:
        kwargs["alpha"] = alpha
    if "random_state" in params:
        kwargs["random_state"] = seed
    return cls(**kwargs)
