"""Real model outputs bundled with calibkit, and loaders for your own in the same formats.

Bundled (``calibkit/data/``, sources and licences in ``DATA-LICENSES.md`` there):

* ``cifar100``: LeNet-5, DenseNet-BC-100, WRN-16-4 on the CIFAR-100 test set (full softmax);
* ``cifar10``: LeNet-5, WRN-16-4 on the CIFAR-10 test set (full softmax);
* ``imagenet``: 14 ImageNet models from 5.0M to 115M parameters, **top-1 only**
  (true label, predicted label, confidence) on the 50,000 validation images;
* ``coco``: three detectors on COCO val2017 with the shared ground truth, as COCO dicts
  (boxes normalised: every image has width = height = 1).

User directories (:func:`load_directory`), one model per file:

* classification ``.npz`` with ``logits`` or ``probs`` of shape (n, K) and ``labels`` (n,),
  optional ``params`` (parameter count, scalar); or a top-1 ``.npz`` with ``true_label``,
  ``pred_label`` and ``confidence`` (n,);
* top-1 ``.csv`` / ``.csv.gz`` with header ``true_label,pred_label,confidence``;
* detection: a COCO ground-truth json (``images``, ``annotations``, ``categories``) plus one
  COCO results json (a list of ``{image_id, category_id, bbox, score}``) per detector
  (:func:`load_coco`); ``.json.gz`` is read too.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from calibkit._persistence import open_user_file
from calibkit._validation import check_unit_interval

__all__ = [
    "ClassificationOutputs",
    "DetectionOutputs",
    "DATA_DIR",
    "manifest",
    "list_models",
    "load_classification",
    "load_bundled_classification",
    "load_bundled_coco",
    "load_directory",
    "load_coco",
    "load_coco_directory",
]

#: Folder of the bundled data and its ``manifest.json``.
DATA_DIR = Path(__file__).resolve().parent / "data"

FAMILIES = ("cifar100", "cifar10", "imagenet")


@dataclass(frozen=True)
class ClassificationOutputs:
    """One classifier's outputs on a labelled test set.

    Attributes
    ----------
    name, family : str
        Model name and the family it is compared within (a scale series).
    labels : ndarray of shape (n,)
        True labels (integers).
    input : {"logits", "probs", "top1"}
        What ``scores`` holds; ``"top1"`` for top-1-only data (``scores`` is None).
    scores : ndarray of shape (n, K) or None, default=None
        Full score vectors (``input`` says logits or probabilities); None for top-1-only data.
    pred_label, confidence : ndarray of shape (n,) or None, default=None
        Top-1 prediction and its probability; set for top-1-only data.
    params : float or None, default=None
        Parameter count.
    info : dict, default={}
        The manifest entry (bundled) or ``{"name": name, "file": path, "params": params}``.
    """

    name: str
    family: str
    labels: np.ndarray
    input: str
    scores: np.ndarray | None = None
    pred_label: np.ndarray | None = None
    confidence: np.ndarray | None = None
    params: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def top1_only(self) -> bool:
        return self.scores is None

    @property
    def n_samples(self) -> int:
        return len(self.labels)

    def subset(self, index) -> ClassificationOutputs:
        """The same model on the rows ``index`` (an integer array, slice or boolean mask).

        Parameters
        ----------
        index : ndarray of shape (m,), slice or ndarray of bool of shape (n,)
            The rows to keep, as numpy indexing takes them.

        Returns
        -------
        ClassificationOutputs
            ``labels``, ``scores``, ``pred_label`` and ``confidence`` restricted to the rows;
            the other fields unchanged.
        """

        def take(a):
            return None if a is None else a[index]

        return replace(
            self,
            labels=self.labels[index],
            scores=take(self.scores),
            pred_label=take(self.pred_label),
            confidence=take(self.confidence),
        )


@dataclass(frozen=True)
class DetectionOutputs:
    """Detectors evaluated on one COCO ground truth.

    Attributes
    ----------
    ground_truth : dict
        COCO ground truth (``images``, ``annotations``, ``categories``).
    detections : dict of str to list of dict
        Detector name -> COCO results (``image_id``, ``category_id``, ``bbox`` [x, y, w, h],
        ``score``).
    info : dict of str to dict, default={}
        Detector name -> manifest entry (bundled) or ``{"name": name, "file": path,
        "params": None}``.
    """

    ground_truth: dict
    detections: dict
    info: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.detections)

    @property
    def image_ids(self) -> np.ndarray:
        """Sorted image ids of the ground truth (dicts or columns)."""
        if "ann_box" in self.ground_truth:
            return np.asarray(self.ground_truth["image_ids"], np.int64)
        return np.array(sorted(im["id"] for im in self.ground_truth["images"]), np.int64)

    def subset_images(self, image_ids) -> DetectionOutputs:
        """The same detectors and ground truth restricted to ``image_ids``.

        Parameters
        ----------
        image_ids : iterable of int
            The images to keep.

        Returns
        -------
        DetectionOutputs
            The images, annotations and detections of those images, in the form (dicts or
            columns) of this object; ``info`` unchanged.
        """
        if "ann_box" in self.ground_truth:  # columns (``arrays=True``)
            ids = np.asarray(list(image_ids), np.int64)
            g = self.ground_truth
            a = np.isin(g["ann_image_id"], ids)
            im = np.isin(g["image_ids"], ids)
            gt = {**g, "image_ids": g["image_ids"][im], "image_width": g["image_width"][im],
                  "image_height": g["image_height"][im]}
            for k in ("ann_image_id", "ann_category_id", "ann_box", "ann_area", "ann_crowd"):
                gt[k] = g[k][a]
            dets = {k: {c: v[c][np.isin(v["image_id"], ids)] for c in v}
                    for k, v in self.detections.items()}
            return DetectionOutputs(gt, dets, self.info)
        keep = {int(i) for i in image_ids}
        gt = dict(self.ground_truth)
        gt["images"] = [im for im in gt["images"] if im["id"] in keep]
        gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
        dets = {
            k: [d for d in v if d["image_id"] in keep] for k, v in self.detections.items()
        }
        return DetectionOutputs(gt, dets, self.info)


# --------------------------------------------------------------------------------------
# Bundled data
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def manifest() -> dict:
    """The bundled-data manifest: ``{"models": [...], "ground_truth": {...}}``.

    Each model entry has ``name``, ``family``, ``task`` (``"classification"``, ``"top1"`` or
    ``"detection"``), ``dataset``, ``architecture``, ``params`` (published parameter count or
    None) with ``params_source``, ``source`` (repository, commit, path, licence), ``file`` and
    ``stored`` (what was reduced).
    """
    return json.loads((DATA_DIR / "manifest.json").read_text())


def list_models(family: str | None = None, *, task: str | None = None) -> list[str]:
    """Names of the bundled models, optionally of one ``family`` or ``task``.

    Parameters
    ----------
    family : {"cifar100", "cifar10", "imagenet", "coco"} or None, default=None
        Only the models of this family; None for every family.
    task : {"classification", "top1", "detection"} or None, default=None
        Only the models whose manifest entry has this ``task``; None for every task.

    Returns
    -------
    list of str
        Model names in manifest order.
    """
    _check_family(family, allow_coco=True)
    return [
        m["name"]
        for m in manifest()["models"]
        if (family is None or m["family"] == family) and (task is None or m["task"] == task)
    ]


def load_classification(family: str, name: str) -> ClassificationOutputs:
    """Load one bundled classifier, e.g. ``load_classification("cifar100", "wideresnet-16-4")``.

    CIFAR scores are float16 log-probabilities (``input="logits"``: softmax gives the stored
    probabilities back within 2e-4); ImageNet data is top-1 only.

    Parameters
    ----------
    family : {"cifar100", "cifar10", "imagenet"}
        The family the model belongs to.
    name : str
        The model name, one of ``list_models(family)``.

    Returns
    -------
    ClassificationOutputs
        The model's outputs, with ``params`` and ``info`` from its manifest entry.
    """
    _check_family(family)
    entries = {m["name"]: m for m in manifest()["models"] if m["family"] == family}
    if name not in entries:
        raise ValueError(
            f"unknown model {name!r} in family {family!r}; available: {sorted(entries)}."
        )
    entry = entries[name]
    out = _read_classification_file(DATA_DIR / entry["file"], name=name, family=family)
    return replace(out, params=entry["params"], info=entry)


def load_bundled_classification(
    families=FAMILIES, models=None
) -> list[ClassificationOutputs]:
    """Load every bundled classifier of ``families`` (or only those named in ``models``).

    Parameters
    ----------
    families : str or sequence of str, default=("cifar100", "cifar10", "imagenet")
        The families to load, in this order; a string is one family.
    models : iterable of str or None, default=None
        Only the models with these names (each must be in one of ``families``); None for all.

    Returns
    -------
    list of ClassificationOutputs
        One entry per model, by family in the order of ``families``, then in manifest order.
    """
    if isinstance(families, str):
        families = [families]
    for f in families:
        _check_family(f)
    wanted = None if models is None else set(models)
    known = {m["name"] for m in manifest()["models"] if m["family"] in families}
    if wanted is not None and wanted - known:
        raise ValueError(
            f"unknown model name(s) {sorted(wanted - known)} in families {list(families)}; "
            f"available: {sorted(known)}."
        )
    return [
        load_classification(m["family"], m["name"])
        for f in families
        for m in manifest()["models"]
        if m["family"] == f and (wanted is None or m["name"] in wanted)
    ]


def load_bundled_coco(detectors=None, *, arrays: bool = False) -> DetectionOutputs:
    """The bundled COCO val2017 detections of three detectors with their ground truth.

    Boxes are normalised (images have width = height = 1); scores below 0.3 were dropped by
    the source.

    Parameters
    ----------
    detectors : list of str, default=None
        Detector names; None for all three.
    arrays : bool, default=False
        ``False``: COCO dicts (a ground-truth dict and results lists), converted from the
        compact stored arrays. ``True``: the same data as numpy columns, with no
        per-detection Python objects: the ground truth is a dict with ``image_ids``,
        ``image_width``, ``image_height``, ``category_ids``, ``category_names``,
        ``ann_image_id``, ``ann_category_id``, ``ann_box`` (n, 4) ``[x, y, w, h]``,
        ``ann_area`` and ``ann_crowd``; each detector's results a dict with ``image_id``,
        ``category_id``, ``score`` and ``box`` (n, 4). ``calibkit.detection.load_gt`` and
        ``load_dets`` read both forms to the same tables.

    Returns
    -------
    DetectionOutputs
        The ground truth, the results of each detector in ``detectors`` (keyed by name, in
        that order) and their manifest entries in ``info``.
    """
    entries = {m["name"]: m for m in manifest()["models"] if m["family"] == "coco"}
    names = list(entries) if detectors is None else list(detectors)
    unknown = sorted(set(names) - set(entries))
    if unknown:
        raise ValueError(f"unknown detector(s) {unknown}; available: {sorted(entries)}.")
    gt_entry = manifest()["ground_truth"]["coco"]
    categories = json.loads((DATA_DIR / gt_entry["categories"]).read_text())
    make_gt = _coco_gt_columns if arrays else _coco_ground_truth
    make_dets = _coco_result_columns if arrays else _coco_results
    with np.load(DATA_DIR / gt_entry["file"], allow_pickle=False) as g:
        gt = make_gt(
            g["image_ids"], g["image_index"], g["boxes_yxyx"], g["category_ids"], categories
        )
    dets = {}
    for name in names:
        with np.load(DATA_DIR / entries[name]["file"], allow_pickle=False) as d:
            dets[name] = make_dets(
                d["image_ids"][d["image_index"]], d["boxes_yxyx"], d["category_ids"], d["scores"]
            )
    return DetectionOutputs(gt, dets, {n: entries[n] for n in names})


def _check_family(family, *, allow_coco=False) -> None:
    ok = FAMILIES + (("coco",) if allow_coco else ())
    if family is not None and family not in ok:
        raise ValueError(f"unknown family {family!r}; choose one of {list(ok)}.")


def _xywh(boxes_yxyx: np.ndarray) -> np.ndarray:
    # float64 arithmetic on the stored float32 corners, rounded once to float32 precision
    b = boxes_yxyx.astype(np.float64)
    return np.column_stack([b[:, 1], b[:, 0], b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]])


def _coco_ground_truth(image_ids, image_index, boxes_yxyx, category_ids, categories) -> dict:
    xywh = _xywh(boxes_yxyx)
    images = [{"id": int(i), "width": 1, "height": 1} for i in image_ids]
    img = image_ids[image_index].tolist()
    cat = category_ids.astype(np.int64).tolist()
    area = (xywh[:, 2] * xywh[:, 3]).tolist()
    anns = [
        {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "area": a, "iscrowd": 0}
        for k, (i, c, b, a) in enumerate(zip(img, cat, xywh.tolist(), area, strict=True))
    ]
    return {"images": images, "annotations": anns, "categories": categories}


def _coco_gt_columns(image_ids, image_index, boxes_yxyx, category_ids, categories) -> dict:
    """The ground truth of :func:`_coco_ground_truth` as columns (same values)."""
    xywh = _xywh(boxes_yxyx)
    img_ids = np.asarray(image_ids, np.int64)
    cat = category_ids.astype(np.int64)
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in categories}
    all_cat = np.unique(np.concatenate([np.array(sorted(names), np.int64), cat]))
    all_img = np.unique(img_ids)
    return {
        "image_ids": all_img,
        "image_width": np.ones(len(all_img)),
        "image_height": np.ones(len(all_img)),
        "category_ids": all_cat,
        "category_names": [names.get(int(c), str(int(c))) for c in all_cat],
        "ann_image_id": img_ids[image_index],
        "ann_category_id": cat,
        "ann_box": xywh,
        "ann_area": xywh[:, 2] * xywh[:, 3],
        "ann_crowd": np.zeros(len(cat), bool),
    }


def _coco_result_columns(image_ids, boxes_yxyx, category_ids, scores) -> dict:
    """The results of :func:`_coco_results` as columns (same values)."""
    return {"image_id": np.asarray(image_ids, np.int64),
            "category_id": category_ids.astype(np.int64),
            "score": scores.astype(np.float64), "box": _xywh(boxes_yxyx)}


def _coco_results(image_ids, boxes_yxyx, category_ids, scores) -> list[dict]:
    xywh = _xywh(boxes_yxyx).tolist()
    return [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(
            image_ids.tolist(),
            category_ids.astype(np.int64).tolist(),
            xywh,
            scores.astype(np.float64).tolist(), strict=True,
        )
    ]


# --------------------------------------------------------------------------------------
# User data
# --------------------------------------------------------------------------------------


def load_directory(path, *, family: str | None = None) -> list[ClassificationOutputs]:
    """Load every classifier file in ``path`` (``*.npz``, ``*.csv``, ``*.csv.gz``), sorted
    by name; the model name is the file name without its suffix.

    All files must share the same labels count (the same test set), which makes paired
    comparisons across models valid.

    Parameters
    ----------
    path : str or os.PathLike
        The directory. Each file is a classification ``.npz`` (``logits`` or ``probs`` of
        shape (n, K) with ``labels`` (n,), optional ``params``) or a top-1 ``.npz`` / ``.csv``
        / ``.csv.gz`` (``true_label``, ``pred_label``, ``confidence``), as described in the
        module docstring.
    family : str or None, default=None
        The ``family`` of every model; None (or an empty string) uses the directory name.

    Returns
    -------
    list of ClassificationOutputs
        One entry per file, sorted by file name; ``info`` is ``{"name", "file", "params"}``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory.
    ValueError
        If it holds no model file, a file is malformed, or files disagree on the number of
        samples; the message names the file.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"path {str(root)!r} is not a directory (give a folder of model files)."
        )
    files = sorted(
        p
        for p in root.iterdir()
        if p.is_file() and (p.suffix == ".npz" or p.name.endswith((".csv", ".csv.gz")))
    )
    if not files:
        raise ValueError(
            f"{root} holds no model file: expected *.npz (logits or probs, labels) or "
            "*.csv (true_label,pred_label,confidence)."
        )
    family = family or root.name
    out = [_read_classification_file(p, name=_stem(p), family=family) for p in files]
    sizes = {o.info["file"]: o.n_samples for o in out}
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{Path(k).name}: {v}" for k, v in sizes.items())
        raise ValueError(
            f"files in {root} have different numbers of samples ({desc}); every file must "
            "hold the same test set."
        )
    return out


def load_coco(ground_truth, detections: dict) -> DetectionOutputs:
    """Load a COCO ground-truth json and one COCO results json per detector.

    Parameters
    ----------
    ground_truth : path or dict
        COCO ground truth with ``images``, ``annotations`` and ``categories``.
    detections : dict of str to path or list
        Detector name -> COCO results (list of ``{image_id, category_id, bbox, score}``).
        Paths may be ``.json`` or ``.json.gz``.

    Returns
    -------
    DetectionOutputs
        The ground truth and each detector's results (not copied), with ``info[name] =
        {"name": name, "file": path or name, "params": None}``.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        If a file is not valid JSON, the ground truth lacks a key, no detector is given, or a
        results list is not a list of detections with the four keys or names an image not in
        the ground truth.
    """
    if isinstance(ground_truth, dict):
        gt = ground_truth
    else:
        gt = _read_json(ground_truth, "ground_truth")
    where = ground_truth if not isinstance(ground_truth, dict) else "ground_truth"
    missing = [k for k in ("images", "annotations", "categories") if k not in gt]
    if not isinstance(gt, dict) or missing:
        raise ValueError(
            f"{where} is not a COCO ground truth: missing key(s) {missing} "
            "(need images, annotations, categories)."
        )
    if not detections:
        raise ValueError("no detector results given; pass at least one NAME=DETS.json.")
    image_ids = {im["id"] for im in gt["images"]}
    dets, info = {}, {}
    for name, src in detections.items():
        res = src if isinstance(src, list) else _read_json(src, f"detections[{name!r}]")
        label = src if not isinstance(src, list) else name
        _check_results(res, label, image_ids)
        dets[name] = res
        info[name] = {"name": name, "file": str(label), "params": None}
    return DetectionOutputs(gt, dets, info)


def load_coco_directory(path) -> DetectionOutputs:
    """Load a directory holding one COCO ground-truth json (the file with an ``annotations``
    key) and one COCO results json per detector (named after the file).

    Parameters
    ----------
    path : str or os.PathLike
        The directory; its ``.json`` and ``.json.gz`` files are read.

    Returns
    -------
    DetectionOutputs
        As :func:`load_coco`, with ``info[name]["file"]`` the results file of each detector.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory.
    ValueError
        If the directory does not hold exactly one ground-truth json, or a file is invalid.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"path {str(root)!r} is not a directory (give a folder of model files)."
        )
    files = sorted(p for p in root.iterdir() if p.name.endswith((".json", ".json.gz")))
    gts, dets = [], {}
    for p in files:
        obj = _read_json(p)
        if isinstance(obj, dict) and "annotations" in obj:
            gts.append((p, obj))
        else:
            dets[_stem(p)] = (p, obj)
    if len(gts) != 1:
        raise ValueError(
            f"{root} must hold exactly one COCO ground-truth json (with 'annotations'); "
            f"found {len(gts)}: {[str(p.name) for p, _ in gts]}."
        )
    out = load_coco(gts[0][1], {k: v[1] for k, v in dets.items()})
    info = {k: {"name": k, "file": str(v[0]), "params": None} for k, v in dets.items()}
    return DetectionOutputs(out.ground_truth, out.detections, info)


# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------


def _stem(p: Path) -> str:
    name = p.name
    for suffix in (".csv.gz", ".json.gz", ".npz", ".csv", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


def _read_classification_file(path: Path, *, name: str, family: str) -> ClassificationOutputs:
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        else:
            arrays = _read_top1_csv(path)
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: cannot be read: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: cannot be read ({exc}); the file may be truncated or not "
                         "an npz archive.") from exc
    return _classification_from_arrays(arrays, path=path, name=name, family=family)


def _read_top1_csv(path: Path) -> dict:
    path, raw = open_user_file(path, "path")
    with io.TextIOWrapper(raw, encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        want = ["true_label", "pred_label", "confidence"]
        if [h.strip() for h in header] != want:
            raise ValueError(
                f"{path}: the first line must be the header {','.join(want)}; got "
                f"{','.join(header)!r}."
            )
        try:
            a = np.loadtxt(fh, delimiter=",", ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path}: malformed row ({exc}).") from exc
    if a.shape[1] != 3 or a.shape[0] == 0:
        raise ValueError(f"{path}: expected 3 columns and at least one row; got {a.shape}.")
    return {"true_label": a[:, 0], "pred_label": a[:, 1], "confidence": a[:, 2]}


def _classification_from_arrays(arrays: dict, *, path, name, family) -> ClassificationOutputs:
    params = None
    if "params" in arrays:
        raw = np.asarray(arrays["params"])
        if raw.size != 1 or raw.dtype.kind not in "iuf" or not (
            np.isfinite(raw).all() and float(raw.ravel()[0]) > 0
        ):
            raise ValueError(f"{path}: 'params' must hold one positive number (the parameter "
                             f"count); got an array of shape {raw.shape} and dtype {raw.dtype}.")
        params = float(raw.ravel()[0])
    info = {"name": name, "file": str(path), "params": params}
    if {"true_label", "pred_label", "confidence"} <= set(arrays):
        y = _int_labels(arrays["true_label"], path, "true_label")
        pred = _int_labels(arrays["pred_label"], path, "pred_label")
        conf = np.asarray(arrays["confidence"], dtype=np.float64)
        if not (len(y) == len(pred) == len(conf)):
            raise ValueError(
                f"{path}: true_label, pred_label and confidence have different lengths "
                f"({len(y)}, {len(pred)}, {len(conf)})."
            )
        if conf.ndim != 1:
            raise ValueError(f"{path}: confidence must be one probability per row.")
        check_unit_interval(conf, name=f"{path}: confidence")
        return ClassificationOutputs(
            name, family, y, "top1", pred_label=pred, confidence=conf, params=params, info=info
        )
    kinds = [k for k in ("logits", "probs") if k in arrays]
    if len(kinds) != 1 or "labels" not in arrays:
        raise ValueError(
            f"{path}: a classification .npz needs 'labels' and exactly one of 'logits' or "
            f"'probs' (or true_label, pred_label, confidence); it has {sorted(arrays)}."
        )
    kind = kinds[0]
    scores = np.asarray(arrays[kind])
    y = _int_labels(arrays["labels"], path, "labels")
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            f"{path}: '{kind}' must have shape (n, K) with K >= 2; got {scores.shape}."
        )
    if len(scores) != len(y):
        raise ValueError(
            f"{path}: '{kind}' has {len(scores)} rows but 'labels' has {len(y)} entries."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{path}: '{kind}' contains NaN or infinite values.")
    if kind == "probs":
        sums = scores.sum(axis=1, dtype=np.float64)
        if np.any(scores < 0) or np.any(scores > 1) or np.any(np.abs(sums - 1.0) > 1e-3):
            raise ValueError(
                f"{path}: 'probs' must be probabilities in [0, 1] whose rows sum to 1 "
                "(within 1e-3); store raw scores under 'logits' instead."
            )
    if y.max() >= scores.shape[1]:
        raise ValueError(
            f"{path}: labels must lie in [0, {scores.shape[1]}) (one column per class); "
            f"found {int(y.max())}."
        )
    return ClassificationOutputs(name, family, y, kind, scores=scores, params=params, info=info)


def _int_labels(a, path, key) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"{path}: '{key}' must be a non-empty 1-D array; got shape {a.shape}.")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{path}: '{key}' must hold integer class indices.")
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{path}: '{key}' must hold integer class indices; got {a.dtype}.")
    if np.any(a < 0):
        raise ValueError(f"{path}: '{key}' must be non-negative class indices.")
    return a.astype(np.int64)


def _read_json(path, name: str = "path"):
    path, fh = open_user_file(path, name)
    try:
        with fh:
            return json.load(fh)
    except (json.JSONDecodeError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: {path} is not valid JSON ({exc}).") from exc


def _check_results(res, label, image_ids) -> None:
    if not isinstance(res, list):
        raise ValueError(
            f"{label}: COCO results must be a JSON list of detections "
            "({image_id, category_id, bbox, score})."
        )
    need = ("image_id", "category_id", "bbox", "score")
    bad = next((d for d in res if not isinstance(d, dict) or any(k not in d for k in need)), None)
    if bad is not None:
        raise ValueError(f"{label}: each detection needs the keys {list(need)}; got {bad!r}.")
    unknown = {d["image_id"] for d in res} - image_ids
    if unknown:
        raise ValueError(
            f"{label}: {len(unknown)} image id(s) not in the ground truth, e.g. "
            f"{sorted(unknown)[:3]}."
        )
