"""Every public callable of calibkit has a numpydoc docstring that documents its signature.

Reference: the numpydoc convention (https://numpydoc.readthedocs.io/en/latest/format.html), read
with ``numpydoc.docscrape``. The walk covers every public module of the package (pkgutil; a
module is private when a part of its name starts with ``_``), ``calibkit.detection`` (installed
from the repository's ``detection/`` folder) included, the functions and classes each
module lists in ``__all__`` (or, without ``__all__``, the public names it defines), and the
public methods a class defines itself. Every callable whose signature has two or more parameters
(``self`` and ``cls`` not counted) must have

* a ``Parameters`` section (``Other Parameters`` counts too) naming every parameter of the
  signature, grouped names (``tau, iou_op : float``) allowed, ``*args`` and ``**kwargs`` written
  with their stars, and nothing that is not in the signature; each entry has a type, which
  states the default when the signature has one (``int, default=15``; ``optional``);
* a ``Returns`` section (or ``Yields`` for a generator) when it returns a value: a return
  annotation other than ``None``, or else a ``return <value>`` / ``yield`` in its body.

A class documents its constructor in the class docstring (numpydoc convention; the mkdocs site
merges ``__init__`` into the class); a dataclass or named tuple may list its fields under
``Attributes``; warnings and exceptions need no ``Parameters``. Wherever a docstring that is
checked gives an array type (``ndarray``, ``array-like``, a tensor) for a parameter, a returned
value or an attribute, the type states its shape (``ndarray of shape (n_samples, n_classes)``).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import pkgutil
import re
import textwrap
import typing
import warnings

import pytest
from numpydoc.docscrape import NumpyDocString

import calibkit

#: packages left out of the walk, with everything under them
SKIPPED_PACKAGES = frozenset()
#: subpackages installed from another folder (pyproject's ``package-dir``): an editable
#: install's ``calibkit.__path__`` does not list them, so the walk adds them by name
MAPPED_PACKAGES = ("calibkit.detection",)
#: top-level modules whose absence skips a module's check instead of failing it
OPTIONAL = {"torch", "torchvision", "dask", "distributed", "matplotlib", "pycocotools"}
#: callables with at least this many parameters (self and cls not counted) need Parameters
#: and, when they return a value, Returns
MIN_PARAMETERS = 2
#: a type that names an array, which must then give its shape
ARRAY_TYPE = re.compile(r"\b(ndarray|array-like|array|tensor|Tensor)\b")


def is_skipped(module_name: str) -> bool:
    return any(module_name == p or module_name.startswith(p + ".") for p in SKIPPED_PACKAGES)


def is_private(module_name: str) -> bool:
    return any(part.startswith("_") for part in module_name.split(".")[1:])


def public_modules() -> list[str]:
    """Names of the public modules of calibkit, parents before children."""
    names = ["calibkit"]
    todo = [("calibkit", calibkit.__path__)]
    for name in MAPPED_PACKAGES:
        if name not in names:
            names.append(name)
            todo.append((name, importlib.import_module(name).__path__))
    while todo:
        package, path = todo.pop(0)
        for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            name = f"{package}.{info.name}"
            if is_private(name) or is_skipped(name) or name in names:
                continue
            names.append(name)
            if info.ispkg:
                todo.append((name, importlib.import_module(name).__path__))
    return names


MODULES = public_modules()


def exposed(module) -> list[object]:
    """The functions and classes a module makes public."""
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = [n for n in vars(module) if not n.startswith("_")]
    out = []
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        home = getattr(obj, "__module__", "") or ""
        if not (home == "calibkit" or home.startswith("calibkit.")) or is_skipped(home):
            continue
        if not hasattr(module, "__all__") and home != module.__name__:
            continue  # imported from elsewhere, checked where it is defined or exported
        out.append(obj)
    return out


@functools.cache
def collect() -> tuple[dict[str, list[tuple[str, object, str]]], dict[str, str]]:
    """Every callable to check, keyed by the module whose test checks it.

    Each value is a list of ``(qualified name, object, kind)`` with kind ``"function"``,
    ``"class"`` or ``"method"``. An object re-exported by several modules is checked once: in
    its home module when that is walked, else in the first module that lists it. The second
    dict maps modules that could not be imported to the reason.
    """
    found: dict[int, tuple[str, str, object]] = {}  # id -> (owner module, qualname, obj)
    unimportable = {}
    for module_name in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in OPTIONAL:
                raise
            unimportable[module_name] = f"optional dependency {exc.name} is not installed"
            continue
        for obj in exposed(module):
            if id(obj) in found:
                continue
            owner = obj.__module__ if obj.__module__ in MODULES else module_name
            found[id(obj)] = (owner, f"{owner}.{obj.__qualname__}", obj)
    by_module: dict[str, list[tuple[str, object, str]]] = {m: [] for m in MODULES}
    for owner, qualname, obj in found.values():
        if inspect.isfunction(obj):
            by_module[owner].append((qualname, obj, "function"))
            continue
        by_module[owner].append((qualname, obj, "class"))
        for method_name, member in vars(obj).items():
            if method_name.startswith("_"):
                continue
            if isinstance(member, (classmethod, staticmethod)):
                member = member.__func__
            if inspect.isfunction(member):
                by_module[owner].append((f"{qualname}.{method_name}", member, "method"))
    return by_module, unimportable


def signature_parameters(obj, kind: str) -> list[inspect.Parameter] | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if kind == "method" and params and params[0].name in ("self", "cls"):
        params = params[1:]
    return params


def documented_name(param: inspect.Parameter) -> str:
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        return f"*{param.name}"
    if param.kind is inspect.Parameter.VAR_KEYWORD:
        return f"**{param.name}"
    return param.name


def returns_value(func) -> bool | str:
    """True when ``func`` returns a value, ``"yields"`` for a generator, False otherwise."""
    func = inspect.unwrap(func)
    annotation = inspect.signature(func).return_annotation
    if annotation is not inspect.Signature.empty:
        if annotation in (None, "None"):
            return False
        if inspect.isgeneratorfunction(func):
            return "yields"
        return True
    if inspect.isgeneratorfunction(func):
        return "yields"
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return False
    stack = list(ast.iter_child_nodes(tree.body[0]))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue  # a nested function's return is not this function's
        if isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def parse(obj) -> tuple[NumpyDocString | None, list[str]]:
    doc = inspect.getdoc(obj) or ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = NumpyDocString(doc)
        except Exception as exc:  # numpydoc raises ValueError on malformed sections
            return None, [f"docstring does not parse as numpydoc: {exc}"]
    return parsed, [f"numpydoc: {w.message}" for w in caught]


def names_of(entry) -> list[str]:
    return [n.strip() for n in entry.name.split(",") if n.strip()]


def is_record(cls) -> bool:
    """A dataclass or a named tuple: its fields are its constructor's parameters."""
    return dataclasses.is_dataclass(cls) or (issubclass(cls, tuple) and hasattr(cls, "_fields"))


def gaps_of(obj, kind: str) -> list[str]:
    """What the docstring of ``obj`` lacks (empty when it is complete)."""
    params = signature_parameters(obj, kind)
    if params is None:
        return []
    doc, problems = parse(obj)
    if doc is None:
        return problems
    is_class = kind == "class"
    is_record_type = is_class and is_record(obj)
    is_exception = is_class and issubclass(obj, BaseException)
    entries = list(doc["Parameters"]) + list(doc["Other Parameters"])
    if is_record_type:
        entries += list(doc["Attributes"])
    by_name = {n: e for e in entries for n in names_of(e)}
    needs_parameters = len(params) >= MIN_PARAMETERS and not is_exception
    if needs_parameters and not entries:
        problems.append("no Parameters section" + (" (or Attributes)" if is_record_type else ""))
    elif entries:
        missing = [documented_name(p) for p in params if documented_name(p) not in by_name]
        if missing:
            problems.append(f"parameters not documented: {', '.join(missing)}")
        in_signature = {documented_name(p) for p in params}
        listed = {n for e in doc["Parameters"] for n in names_of(e)}
        extra = sorted(listed - in_signature)
        if extra:
            problems.append(f"documented but not in the signature: {', '.join(extra)}")
        untyped = [e.name for e in entries if not e.type.strip()]
        if untyped:
            problems.append(f"parameters without a type: {', '.join(untyped)}")
        no_default = [
            p.name for p in params
            if p.default is not inspect.Parameter.empty and p.name in by_name
            and by_name[p.name].type.strip()
            and not re.search(r"\bdefault\b|\boptional\b", by_name[p.name].type)
        ]
        if no_default:
            problems.append(f"default not stated in the type: {', '.join(no_default)}")
    typed = [*entries, *doc["Returns"], *doc["Yields"], *doc["Attributes"]]
    shapeless = [e.name or e.type for e in typed
                 if ARRAY_TYPE.search(e.type) and "shape" not in e.type]
    if shapeless:
        problems.append(f"array types without a shape: {', '.join(dict.fromkeys(shapeless))}")
    if needs_parameters and not is_class:
        returned = returns_value(obj)
        if returned == "yields" and not (doc["Yields"] or doc["Returns"]):
            problems.append("no Yields section")
        elif returned is True and not doc["Returns"]:
            problems.append("no Returns section")
    return problems


@pytest.mark.parametrize("module_name", MODULES)
def test_public_callables_have_numpydoc_docstrings(module_name):
    by_module, unimportable = collect()
    if module_name in unimportable:
        pytest.skip(unimportable[module_name])
    report = []
    for qualname, obj, kind in by_module[module_name]:
        report += [f"{qualname}: {gap}" for gap in gaps_of(obj, kind)]
    assert not report, "incomplete numpydoc docstrings:\n  " + "\n  ".join(report)


def test_walk_covers_the_package():
    by_module, unimportable = collect()
    checked = {q for items in by_module.values() for q, _, _ in items}
    assert len(checked) > 150
    for qualname in (
        "calibkit.metrics.calibration.expected_calibration_error",
        "calibkit.scaling.TemperatureScaling",
        "calibkit.base.Calibrator.fit",
        "calibkit.sklearn.CalibratedClassifier.fit",
        "calibkit.base.Calibrator.predict_proba",
        "calibkit.conformal.split.SplitConformalClassifier.predict_set",
        "calibkit.bench.report.finish_classification",  # exported by calibkit.bench only
        "calibkit.registry.make_calibrator",
        "calibkit.datasets.load_classification",
    ):
        assert qualname in checked, qualname
    for module_name in ("calibkit.detection", "calibkit.detection.metrics",
                        "calibkit.detection.io", "calibkit.detection.shards"):
        assert module_name in MODULES, module_name
    for qualname in (
        "calibkit.detection.metrics.evaluate",
        "calibkit.detection.io.Detections.from_arrays",
        "calibkit.detection.calibrate.DetectionCalibrator.fit_transform",
        "calibkit.detection.shards.MatchState",
    ):
        assert qualname in checked, qualname
    assert not any(m.startswith("calibkit.detection._") for m in MODULES)
    assert "calibkit.bench" in MODULES and "calibkit.metrics.calibration" in MODULES
    assert not any(is_private(m) for m in MODULES)


# The checker itself, on small functions with known gaps.


def _complete(a, b, *args, tau=0.5, iou_op=None, **kwargs):
    """Complete.

    Parameters
    ----------
    a : ndarray of shape (n,)
        First.
    b : int
    *args : float
    tau, iou_op : float, default=0.5
        ``iou_op`` defaults to None (shared type line).
    **kwargs : dict

    Returns
    -------
    float
    """
    return a


def _missing_everything(a, b):
    """Summary only."""
    return a


def _no_value(a, b):
    """No return value.

    Parameters
    ----------
    a, b : int
    """
    if a:
        return
    print(b)

    def inner():
        return 1


def _wrong_names(a, b, **options):
    """Wrong names.

    Parameters
    ----------
    a : int
    c : int
    options : dict
    b
    """


def _generator(a, b):
    """Generator.

    Parameters
    ----------
    a, b : int
    """
    yield a


class _Pair(typing.NamedTuple):
    """Fields of a named tuple as attributes.

    Attributes
    ----------
    statistic : float
    pvalue : float
    """

    statistic: float
    pvalue: float


@dataclasses.dataclass
class _Fields:
    """Fields as attributes.

    Attributes
    ----------
    x, y : float
    """

    x: float
    y: float


class _Ctor:
    """Constructor parameters in the class docstring.

    Parameters
    ----------
    alpha : float, default=1.0
    gamma : int

    Attributes
    ----------
    coef_ : ndarray
    """

    def __init__(self, *, alpha=1.0, beta=2, gamma=3):
        self.alpha = alpha

    def fit(self, x, y):
        """Fit.

        Parameters
        ----------
        x, y : ndarray of shape (n,)

        Returns
        -------
        self : _Ctor
        """
        return self


class _Problem(ValueError):
    """An error."""

    def __init__(self, message, code):
        super().__init__(message, code)


def test_checker_on_known_cases():
    assert gaps_of(_complete, "function") == []
    assert gaps_of(_missing_everything, "function") == [
        "no Parameters section", "no Returns section"]
    assert gaps_of(_no_value, "function") == []
    assert gaps_of(_wrong_names, "function") == [
        "parameters not documented: **options",
        "documented but not in the signature: c, options",
        "parameters without a type: b",
    ]
    assert gaps_of(_generator, "function") == ["no Yields section"]
    assert gaps_of(_Fields, "class") == []
    assert gaps_of(_Pair, "class") == []
    assert gaps_of(_Ctor, "class") == [
        "parameters not documented: beta",
        "default not stated in the type: gamma",
        "array types without a shape: coef_",
    ]
    assert gaps_of(_Ctor.fit, "method") == []
    assert gaps_of(_Problem, "class") == []
