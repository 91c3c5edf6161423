"""The methods the benchmarks compare, by the names the CLI accepts.

Calibrators come from the registry (:data:`calibkit.registry.CALIBRATORS`, one spelling with
underscores): a calibrator added there is benchmarked without editing this module. Added
here: ``uncalibrated`` (the baseline; the registry's ``identity``) and the split conformal
predictors ``conformal_lac``, ``conformal_aps`` and ``conformal_raps``.

The default run (:data:`DEFAULT_CLASSIFICATION_METHODS`) holds the registry's
``bench_default`` calibrators; ``--full`` (:data:`FULL_CLASSIFICATION_METHODS`) adds the
others (full-matrix maps with about K^2 parameters, whose fits take minutes on 100 classes).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from calibkit.registry import CALIBRATORS


@dataclass(frozen=True)
class MethodSpec:
    """A benchmark method: ``module.cls(**kwargs)``; ``top1`` says whether it applies to
    top-1-only data (a binary calibrator of the top-label confidence); ``conformal`` that it
    outputs prediction sets instead of probabilities; ``registry`` is the registry name of a
    calibrator (None otherwise).

    Attributes
    ----------
    label : str
        One line for listings.
    module, cls : str or None
        Where the estimator class lives; None for the uncalibrated baseline.
    kwargs : tuple of (str, object) pairs, default=()
        Constructor arguments, as sorted ``(name, value)`` pairs.
    top1 : bool, default=True
        Applies to top-1-only data.
    conformal : bool, default=False
        Outputs prediction sets (``predict_set``) instead of probabilities.
    registry : str or None, default=None
        The calibrator's registry name, made by :func:`calibkit.registry.make_calibrator`.
    default : bool, default=True
        Part of the default run.
    """

    label: str
    module: str | None
    cls: str | None
    kwargs: tuple = ()
    top1: bool = True
    conformal: bool = False
    registry: str | None = None
    default: bool = True


def _registry_methods() -> dict[str, MethodSpec]:
    from calibkit.base import BinaryCalibrator

    out = {}
    for name, spec in CALIBRATORS.items():
        if name == "identity":  # the "uncalibrated" baseline
            continue
        cls = getattr(importlib.import_module(spec.module), spec.cls)
        # top-1-only data has one score per sample: calibrators of one score apply (the
        # one-vs-rest family and Venn-ABERS), maps of whole logit vectors (temperature, ETS,
        # Dirichlet, ...) do not
        top1 = spec.binary and (issubclass(cls, BinaryCalibrator) or not spec.needs_logits)
        out[name] = MethodSpec(spec.summary, spec.module, spec.cls,
                               tuple(sorted(spec.params.items())), top1=top1,
                               registry=name, default=spec.bench_default)
    return out


CLASSIFICATION_METHODS = {
    "uncalibrated": MethodSpec("the uncalibrated probabilities", None, None),
    **_registry_methods(),
    **{f"conformal_{score}": MethodSpec(f"split conformal, {score.upper()}",
                                        "calibkit.conformal", "SplitConformalClassifier",
                                        (("conformity_score", score),), top1=False,
                                        conformal=True)
       for score in ("lac", "aps", "raps")},
}

#: the default run: the registry's ``bench_default`` calibrators and the conformal methods
DEFAULT_CLASSIFICATION_METHODS = tuple(m for m, s in CLASSIFICATION_METHODS.items()
                                       if s.default)
#: every method (``--full``)
FULL_CLASSIFICATION_METHODS = tuple(CLASSIFICATION_METHODS)


def check_methods(methods, registry: dict, option: str) -> list[str]:
    """Validate method names against ``registry``; raise naming ``option`` and the choices.

    Parameters
    ----------
    methods : str or iterable of str
        Method names; a string is one name.
    registry : dict
        The known methods by name (:data:`CLASSIFICATION_METHODS`, ``COCO_METHODS``).
    option : str
        The parameter (``"methods"``) or command-line option (``"--methods"``) named in
        the error message.

    Returns
    -------
    list of str
        The names, duplicates removed, in their first order.

    Raises
    ------
    ValueError
        If a name is unknown or no name is given.
    """
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
    """Whether the class behind ``spec`` can be imported.

    Parameters
    ----------
    spec : MethodSpec
        The method.

    Returns
    -------
    bool
        True for the uncalibrated baseline and for a class whose module imports and defines
        it.
    """
    if spec.module is None:
        return True
    try:
        mod = importlib.import_module(spec.module)
    except ImportError:
        return False
    return hasattr(mod, spec.cls)


def make_classification(method: str, *, input: str, alpha: float, seed: int):
    """A fresh estimator for ``method`` (None for ``"uncalibrated"``).

    Calibrators come from :func:`calibkit.registry.make_calibrator` with ``input=``
    (``"logits"`` or ``"probs"``); conformal predictors get ``alpha`` and, when they are
    randomised, ``random_state=seed``.

    Parameters
    ----------
    method : str
        A name of :data:`CLASSIFICATION_METHODS`.
    input : {"logits", "probs"}
        What the scores are, passed to every estimator that has an ``input`` parameter.
    alpha : float
        Miscoverage level of the conformal predictors (ignored by calibrators).
    seed : int
        ``random_state`` of the estimators that have one.

    Returns
    -------
    Calibrator, SplitConformalClassifier or None
        Unfitted; None for the uncalibrated baseline.
    """
    spec = CLASSIFICATION_METHODS[method]
    if spec.module is None:
        return None
    if spec.registry is not None:
        from calibkit.registry import make_calibrator

        est = make_calibrator(spec.registry, input=input)
        if "random_state" in est.get_params(deep=False):
            est.set_params(random_state=seed)
        return est
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
