"""The JSON / npz format of saved calibkit objects, read as untrusted input.

A saved object is a tree of JSON values: ``{"__calibrator__": class name, "format_version":
1, "params": {...}, "fitted": {...}}``, whose leaves are scalars, strings, lists, dicts,
arrays and nested saved objects. Arrays are written inline in JSON
(``{"__ndarray__": values, "dtype": ..., "shape": [...]}``, non-finite values listed
separately so that the file is strict JSON), or as members of an ``.npz`` archive that the
tree references (``{"__array__": "a0"}``). Pickle is never involved.

Reading assumes nothing about the file:

* structure: a file that is not JSON (or not an npz archive), truncated, binary, too large,
  nested too deeply, or missing a required key gives a ``ValueError`` naming the file;
* contents: only classes of calibkit's registries are built; an unknown ``format_version`` is
  refused; parameters go through the constructor's checks; every fitted entry must be a
  fitted attribute the class declares (so a file cannot shadow a method), holding what the
  class declares for it; the class then checks the state as a whole
  (``_check_fitted_state``);
* resources: an npz archive is read member by member, only the members the tree references,
  each and all together within :data:`MAX_ARRAY_BYTES`, judged from the archive's declared
  sizes before anything is decompressed.

:func:`open_user_file` is the one way calibkit opens a user's data file (COCO json, model
outputs): plain or gzip-compressed, told apart by the gzip magic bytes, not by the name.
"""

from __future__ import annotations

import gzip
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "save", "load", "encode", "decode", "open_user_file"]

FORMAT_VERSION = 1

#: largest saved file read (bytes)
MAX_FILE_BYTES = 1 << 30
#: largest total size of the arrays of one saved object once decompressed (bytes)
MAX_ARRAY_BYTES = 1 << 30
#: deepest nesting of a saved tree
MAX_DEPTH = 64
#: array dtype kinds a file may hold: bool, integers, floats, strings
ARRAY_KINDS = "biufU"


class _Invalid(ValueError):
    """A problem with the contents of a saved tree (the caller adds where it was read)."""


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def open_user_file(path, name: str):
    """Open a user's file for binary reading, decompressing it when it is gzip.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    name : str
        The argument that gave the file, named in the error.

    Returns
    -------
    path : pathlib.Path
        ``path`` as a Path.
    file : file object
        The open binary stream (a ``gzip.GzipFile`` when the file starts with the gzip magic
        bytes ``1f 8b``); the caller closes it. Reading a truncated gzip stream raises
        ``EOFError`` or ``OSError``.

    Raises
    ------
    ValueError
        If ``path`` is a directory.
    FileNotFoundError
        If there is nothing at ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a directory; give a file path.")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file {path}.")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return path, (gzip.open(path, "rb") if gz else open(path, "rb"))


def save(obj, path) -> None:
    """Write ``obj`` (a calibkit estimator) to ``path``: ``.npz`` stores arrays natively,
    any other suffix is strict JSON."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file path ending in .json or .npz.")
    try:
        if path.suffix == ".npz":
            arrays: dict[str, np.ndarray] = {}
            tree = encode(obj, arrays)
            with open(path, "wb") as fh:
                np.savez(fh, __tree__=np.array(json.dumps(tree, allow_nan=False)), **arrays)
        else:
            path.write_text(json.dumps(encode(obj, None), allow_nan=False))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be written ({exc.strerror or exc}).") from exc


def encode(obj: Any, arrays: dict | None) -> Any:
    """The JSON tree of ``obj``; arrays go into ``arrays`` (npz) or inline (``None``)."""
    from calibkit.base import Persistable

    if isinstance(obj, Persistable):
        fitted = {k: v for k, v in vars(obj).items() if k.endswith("_") and not k.startswith("_")}
        return {
            "__calibrator__": type(obj).__name__,
            "format_version": FORMAT_VERSION,
            "params": encode(obj.get_params(deep=False), arrays),
            "fitted": encode(fitted, arrays),
        }
    if isinstance(obj, np.ndarray):
        arr = obj.astype(str) if obj.dtype == object else obj
        if arr.dtype.kind not in ARRAY_KINDS:
            raise TypeError(f"cannot save an array of dtype {arr.dtype}.")
        if arrays is not None:
            key = f"a{len(arrays)}"
            arrays[key] = arr
            return {"__array__": key}
        out = {"dtype": arr.dtype.str, "shape": list(arr.shape)}
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            flat = arr.ravel()
            for name, mask in (("nan_at", np.isnan(flat)), ("posinf_at", flat == np.inf),
                               ("neginf_at", flat == -np.inf)):
                if mask.any():
                    out[name] = np.flatnonzero(mask).tolist()
            arr = np.where(np.isfinite(arr), arr, 0.0)
        return {"__ndarray__": arr.tolist(), **out}
    if isinstance(obj, np.generic):
        return encode(obj.item(), arrays)
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
    if isinstance(obj, dict):
        return {str(k): encode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v, arrays) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save a {type(obj).__name__} ({obj!r}).")


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def load(path):
    """Read any saved calibkit object from ``path`` (JSON or npz), checking everything."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a saved calibkit file.")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes; not a calibkit file.")
    try:
        if path.suffix == ".npz":
            with _NpzMembers(path) as members:
                return decode(members.tree(), members)
        return decode(_parse_json(path.read_bytes()), None)
    except _Invalid as exc:
        raise ValueError(f"{path}: {exc}") from exc.__cause__


def decode(tree: Any, arrays=None):
    """Rebuild a saved object from its tree (``arrays``: the npz members, or None)."""
    if not isinstance(tree, dict) or "__calibrator__" not in tree:
        what = type(tree).__name__
        raise _Invalid(f"holds a JSON {what}, not a saved calibkit object (a dict with "
                       "'__calibrator__', 'format_version', 'params' and 'fitted').")
    return _decode(tree, arrays, 0)


def _parse_json(data: bytes):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid("is not a text (JSON) file: it holds binary data; give a file "
                       "written by save().") from exc

    def refuse(name):
        raise _Invalid(f"holds the non-standard JSON token {name}; the file is not strict JSON.")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                       f"{exc.colno}); the file may be truncated.") from exc
    except RecursionError as exc:
        raise _Invalid(f"is nested too deeply (more than {MAX_DEPTH} levels are never "
                       "written by save()).") from exc


class _NpzMembers:
    """Lazy access to the members of an npz archive, within the size budget."""

    def __init__(self, path: Path):
        self.path = path
        self.budget = MAX_ARRAY_BYTES

    def __enter__(self):
        if not zipfile.is_zipfile(self.path):
            raise _Invalid("is not an npz archive (not a zip file); a JSON file must not be "
                           "named .npz.")
        try:
            self.zip = zipfile.ZipFile(self.path)
            self.infos = {i.filename: i for i in self.zip.infolist()}
        except (zipfile.BadZipFile, OSError) as exc:
            raise _Invalid(f"is a damaged npz archive ({exc}).") from exc
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def tree(self):
        arr = self.read("__tree__")
        if arr.dtype.kind != "U" or arr.ndim != 0:
            raise _Invalid("has a '__tree__' member that is not a JSON string.")
        return _parse_json(str(arr).encode("utf-8"))

    def read(self, key: str) -> np.ndarray:
        info = self.infos.get(f"{key}.npy")
        if info is None:
            what = "the tree" if key == "__tree__" else f"the array {key!r} the tree references"
            raise _Invalid(f"lacks {what} (member {key}.npy); the archive is not a complete "
                           "saved calibkit object.")
        if info.file_size > self.budget:
            raise _Invalid(f"member {key}.npy would decompress to {info.file_size} bytes, over "
                           f"the budget of {MAX_ARRAY_BYTES} bytes for one saved object.")
        self.budget -= info.file_size
        try:
            with self.zip.open(info) as fh:
                arr = np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise _Invalid(f"member {key}.npy cannot be read ({exc}).") from exc
        if arr.dtype.kind not in ARRAY_KINDS:
            raise _Invalid(f"member {key}.npy has dtype {arr.dtype}; saved arrays hold "
                           "booleans, numbers or strings.")
        return arr


def _decode(tree: Any, arrays, depth: int):
    if depth > MAX_DEPTH:
        raise _Invalid(f"is nested more than {MAX_DEPTH} levels deep; save() never writes that.")
    if isinstance(tree, list):
        return [_decode(v, arrays, depth + 1) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__calibrator__" in tree:
        return _decode_object(tree, arrays, depth)
    if "__array__" in tree:
        key = tree["__array__"]
        if arrays is None or not isinstance(key, str):
            raise _Invalid(f"references an array {key!r} outside an npz archive.")
        return arrays.read(key)
    if "__ndarray__" in tree:
        return _decode_inline_array(tree)
    if "__float__" in tree:
        value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(tree["__float__"])
        if value is None:
            raise _Invalid(f"holds an unknown special float {tree['__float__']!r}.")
        return value
    return {k: _decode(v, arrays, depth + 1) for k, v in tree.items()}


def _decode_inline_array(tree: dict) -> np.ndarray:
    try:
        dtype = np.dtype(tree["dtype"])
        shape = tuple(int(d) for d in tree["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _Invalid(f"holds an array without a valid dtype and shape ({exc!r}).") from exc
    if dtype.kind not in ARRAY_KINDS:
        raise _Invalid(f"holds an array of dtype {dtype}; saved arrays hold booleans, numbers "
                       "or strings.")
    if any(d < 0 for d in shape) or math.prod(shape) * max(dtype.itemsize, 1) > MAX_ARRAY_BYTES:
        raise _Invalid(f"holds an array of invalid or too large shape {shape}.")
    try:
        arr = np.array(tree["__ndarray__"], dtype=dtype)
        arr = arr.reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _Invalid(f"holds an array whose values do not match its dtype {dtype} and "
                       f"shape {shape} ({exc}).") from exc
    for name, value in (("nan_at", np.nan), ("posinf_at", np.inf), ("neginf_at", -np.inf)):
        if name in tree:
            idx = np.asarray(tree[name])
            if dtype.kind != "f" or idx.dtype.kind not in "iu" or np.any(
                (idx < 0) | (idx >= arr.size)
            ):
                raise _Invalid(f"holds an invalid '{name}' list for an array of shape {shape}.")
            arr.reshape(-1)[idx] = value
    return arr


def _decode_object(tree: dict, arrays, depth: int):
    from calibkit._validation import check_param, fitted_constraints, validate_params
    from calibkit.base import find_persistable_class

    name = tree["__calibrator__"]
    missing = [k for k in ("format_version", "params", "fitted") if k not in tree]
    if missing:
        raise _Invalid(f"the saved {name!r} lacks {missing}; the file is not complete.")
    if tree["format_version"] != FORMAT_VERSION:
        raise _Invalid(f"has format_version {tree['format_version']!r}; this calibkit reads "
                       f"version {FORMAT_VERSION} only.")
    cls = find_persistable_class(name) if isinstance(name, str) else None
    if cls is None:
        raise _Invalid(f"names an unknown class {name!r}; only calibkit's calibrators, "
                       "conformal predictors and detection calibrators can be loaded.")
    params = _decode(tree["params"], arrays, depth + 1)
    fitted = _decode(tree["fitted"], arrays, depth + 1)
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise _Invalid(f"the saved {name} has 'params' or 'fitted' that are not dicts.")
    try:
        obj = cls(**params)
        validate_params(obj)
    except (TypeError, ValueError, AttributeError) as exc:
        raise _Invalid(f"the saved {name} has invalid parameters: {exc}") from exc
    allowed = fitted_constraints(cls)
    for key, value in fitted.items():
        if key not in allowed:
            raise _Invalid(f"the saved {name} has an entry {key!r} that is not a fitted "
                           f"attribute of {name} (those are {sorted(allowed)}).")
        try:
            check_param(value, key, allowed[key], owner=name)
        except (TypeError, ValueError) as exc:
            raise _Invalid(f"the saved {name} has an invalid fitted state: {exc}") from exc
        setattr(obj, key, value)
    if fitted:
        try:
            obj._check_fitted_state()
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
            raise _Invalid(f"the saved {name} has an inconsistent fitted state: {exc}") from exc
    return obj
