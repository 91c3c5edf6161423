"""The one registry of calibkit's calibrators, and discovery of every calibkit estimator.

Everything that enumerates calibration methods reads :data:`CALIBRATORS`: the scikit-learn
meta-estimator (``CalibratedClassifier(method=...)``), the detection calibrator
(``DetectionCalibrator(method=...)``), the benchmarks and the command line. A calibrator
added here (one :class:`CalibratorSpec` naming its class) appears in all of them, and the
contract test (``tests/test_contract.py``) checks it through :func:`all_estimators`.

Names are lower case with underscores (``"venn_abers"``), one spelling everywhere.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

__all__ = [
    "CalibratorSpec",
    "CALIBRATORS",
    "calibrator_names",
    "get_calibrator_class",
    "make_calibrator",
    "method_name",
    "all_estimators",
]


@dataclass(frozen=True)
class CalibratorSpec:
    """One registry entry.

    Attributes
    ----------
    name : str
        The method name users type.
    module, cls : str
        Where the class lives (imported on first use).
    summary : str
        One line for listings.
    params : dict, default={}
        Parameters that make this method from the class (``"sigmoid"`` is ``PlattScaling``
        with ``target_smoothing=True``).
    binary : bool, default=True
        Calibrates one score per sample (1-D scores; binary, top-label and detection use).
    multiclass : bool, default=True
        Calibrates (n, K) score matrices.
    soft_targets : bool, default=True
        Fits targets in [0, 1] (detection calibrates to the matched IoU).
    needs_logits : bool, default=False
        The model acts on logits, not probabilities (scaling methods).
    bench_default : bool, default=True
        Part of the default ``calibkit bench`` run.
    """

    name: str
    module: str
    cls: str
    summary: str
    params: dict = field(default_factory=dict)
    binary: bool = True
    multiclass: bool = True
    soft_targets: bool = True
    needs_logits: bool = False
    bench_default: bool = True


CALIBRATORS: dict[str, CalibratorSpec] = {
    spec.name: spec
    for spec in (
        CalibratorSpec("identity", "calibkit.linear", "IdentityCalibration",
                       "the uncalibrated probabilities"),
        CalibratorSpec("temperature", "calibkit.scaling", "TemperatureScaling",
                       "one temperature dividing the logits", needs_logits=True),
        CalibratorSpec("platt", "calibkit.scaling", "PlattScaling",
                       "logistic regression on the log-odds (one-vs-rest)", needs_logits=True),
        CalibratorSpec("sigmoid", "calibkit.scaling", "PlattScaling",
                       "Platt scaling with Platt's smoothed targets (scikit-learn's sigmoid)",
                       params={"target_smoothing": True}, needs_logits=True,
                       bench_default=False),
        CalibratorSpec("vector", "calibkit.scaling", "VectorScaling",
                       "one weight and one bias per class", binary=False, soft_targets=False,
                       needs_logits=True, bench_default=False),
        CalibratorSpec("isotonic", "calibkit.isotonic", "IsotonicCalibration",
                       "isotonic regression (one-vs-rest)"),
        CalibratorSpec("histogram", "calibkit.binning", "HistogramBinning",
                       "histogram binning, 15 equal-width bins (one-vs-rest)"),
        CalibratorSpec("beta", "calibkit.binning", "BetaCalibration",
                       "beta calibration (one-vs-rest)"),
        CalibratorSpec("linear", "calibkit.linear", "LinearCalibration",
                       "clipped least-squares line (one-vs-rest)", bench_default=False),
        CalibratorSpec("venn_abers", "calibkit.venn_abers", "VennAbers",
                       "inductive Venn-ABERS predictor (one-vs-rest)", soft_targets=False),
        CalibratorSpec("ets", "calibkit.ensemble", "EnsembleTemperatureScaling",
                       "ensemble temperature scaling: convex mix of the temperature-scaled, "
                       "original and uniform distributions (squared error)", needs_logits=True),
        CalibratorSpec("dirichlet", "calibkit.dirichlet", "DirichletCalibration",
                       "Dirichlet calibration, full matrix, ODIR with reg_lambda = reg_mu = 1e-3",
                       params={"matrix": "full", "reg_lambda": 1e-3, "reg_mu": 1e-3},
                       soft_targets=False, needs_logits=True, bench_default=False),
        CalibratorSpec("dirichlet_diagonal", "calibkit.dirichlet", "DirichletCalibration",
                       "Dirichlet calibration, diagonal matrix, unregularised",
                       params={"matrix": "diagonal"}, soft_targets=False, needs_logits=True),
        CalibratorSpec("matrix", "calibkit.dirichlet", "MatrixScaling",
                       "matrix scaling: a full linear map of the logits, unregularised",
                       soft_targets=False, needs_logits=True, bench_default=False),
        CalibratorSpec("svs", "calibkit.structured", "StructuredVectorScaling",
                       "structured vector scaling: temperature, then ridge vector scaling",
                       soft_targets=False, needs_logits=True),
        CalibratorSpec("sms", "calibkit.structured", "StructuredMatrixScaling",
                       "structured matrix scaling: temperature, then ridge matrix scaling",
                       soft_targets=False, needs_logits=True, bench_default=False),
        CalibratorSpec("spline", "calibkit.spline", "SplineCalibration",
                       "spline of the cumulative calibration curve (binary or top-label)",
                       soft_targets=False),
        *(CalibratorSpec(f"tva_{inner}", "calibkit.top_versus_all", "TopVersusAll",
                         f"top-versus-all: {inner} of the top-label confidence",
                         params={"calibrator": inner}, binary=False, soft_targets=False)
          for inner in ("platt", "isotonic", "histogram", "beta", "venn_abers")),
    )
}


def calibrator_names(*, binary=None, multiclass=None, soft_targets=None,
                     bench_default=None) -> list[str]:
    """Registry names, filtered by the capabilities given (``None``: either).

    Parameters
    ----------
    binary, multiclass, soft_targets, bench_default : bool or None, default=None
        Keep only the entries whose :class:`CalibratorSpec` field of that name equals the
        value; None does not filter on the field.

    Returns
    -------
    list of str
        The names of the matching entries, in registry order.
    """
    wanted = {"binary": binary, "multiclass": multiclass, "soft_targets": soft_targets,
              "bench_default": bench_default}
    return [
        name for name, spec in CALIBRATORS.items()
        if all(v is None or getattr(spec, k) == v for k, v in wanted.items())
    ]


def get_calibrator_class(name: str):
    """The class behind a registry name.

    Parameters
    ----------
    name : str
        A key of :data:`CALIBRATORS`.

    Returns
    -------
    type
        The calibrator class (its module is imported on first use).
    """
    spec = _spec(name)
    return getattr(importlib.import_module(spec.module), spec.cls)


def make_calibrator(method, **params):
    """A fresh unfitted calibrator for a registry name or a calibrator instance.

    Parameters
    ----------
    method : str or Calibrator
        A name of :data:`CALIBRATORS`, or an unfitted calibkit calibrator (cloned).
    **params : dict
        Parameters set on the new calibrator (they override the registry's), e.g.
        ``input="probs"``; a parameter the class does not have is skipped, so callers can
        pass ``input`` to every calibrator.

    Returns
    -------
    Calibrator
        Unfitted: the registry's class with the entry's ``params`` (or a clone of
        ``method``), then ``params``.
    """
    from sklearn.base import clone

    from calibkit.base import Calibrator

    if isinstance(method, Calibrator):
        est = clone(method)
    elif isinstance(method, str):
        spec = _spec(method)
        est = get_calibrator_class(method)(**spec.params)
    else:
        raise TypeError(
            f"method must be a calibrator name ({', '.join(CALIBRATORS)}) or a calibkit "
            f"Calibrator instance; got {type(method).__name__}."
        )
    known = est.get_params(deep=False)
    est.set_params(**{k: v for k, v in params.items() if k in known})
    return est


def method_name(calibrator) -> str | None:
    """The registry name of a calibrator instance: the entry of its class whose parameters it
    has (the most specific one, so ``PlattScaling(target_smoothing=True)`` is ``"sigmoid"``),
    or None for a class that is not registered.

    Parameters
    ----------
    calibrator : Calibrator
        A calibrator instance (fitted or not).

    Returns
    -------
    str or None
    """
    cls = type(calibrator)
    params = calibrator.get_params(deep=False)
    best = None
    for name, spec in CALIBRATORS.items():
        if (spec.module, spec.cls) != (cls.__module__, cls.__name__):
            continue
        if all(params.get(k) == v for k, v in spec.params.items()) and (
            best is None or len(spec.params) > len(CALIBRATORS[best].params)
        ):
            best = name
    return best


def all_estimators() -> list[tuple[str, type]]:
    """Every public calibkit estimator class, sorted by name: the registered calibrators, the
    conformal predictors, and the classes that installed extensions (``calibkit.detection``)
    register under the ``calibkit.persistable`` entry-point group.

    This is the list the contract test runs over, as scikit-learn's ``all_estimators`` drives
    its own checks: a class added to the registry is checked without editing any test.

    Returns
    -------
    list of (str, type)
        ``(class name, class)`` pairs, sorted by name.
    """
    from importlib.metadata import entry_points

    from calibkit.base import Persistable

    modules = {spec.module for spec in CALIBRATORS.values()} | {"calibkit.conformal.split"}
    modules |= {ep.value for ep in entry_points(group="calibkit.persistable")}
    for module in sorted(modules):
        importlib.import_module(module)
    found = {
        cls.__name__: cls
        for cls in Persistable._registry.values()
        if cls.__module__ in modules and not cls.__name__.startswith("_")
    }
    return sorted(found.items())


def _spec(name) -> CalibratorSpec:
    if not isinstance(name, str) or name not in CALIBRATORS:
        raise ValueError(
            f"unknown calibration method {name!r}; choose one of {', '.join(CALIBRATORS)} "
            "(or pass a calibkit Calibrator instance)."
        )
    return CALIBRATORS[name]
