"""Detection inputs as one internal table of numpy columns.

* :class:`GroundTruth`: the images, the categories and the annotations of a COCO ground-truth
  json (``bbox`` is ``[x, y, w, h]``; ``iscrowd`` marks ignore regions).
* :class:`Detections`: one row per detection: ``image_id``, ``category_id``, ``score`` and
  ``box`` (``[x, y, w, h]``). The row position is the "file order" that breaks score ties.

Readers: :func:`load_gt` (a path, a dict, or a ``pycocotools.coco.COCO``), :func:`load_dets`
(a path, a COCO results list, a ``COCO`` results object, a :class:`Detections`, or
torchvision outputs), :func:`from_torchvision`, :meth:`Detections.from_arrays`, and
:func:`netcal_npz_to_coco` for the netcal detection records (normalised ``yxyx`` boxes).
The json files are read with :mod:`json`; pycocotools objects are accepted but not needed.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import numpy as np

from calibkit._validation import to_numpy

__all__ = [
    "GroundTruth",
    "Detections",
    "load_gt",
    "load_dets",
    "from_torchvision",
    "netcal_npz_to_coco",
]


# --------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Checked COCO ground truth.

    Attributes
    ----------
    image_ids : ndarray of shape (n_images,)
        Sorted unique image ids (``images`` of the json, plus any id used by an annotation).
    image_width, image_height : ndarray of shape (n_images,)
        Image sizes in pixels (NaN where the json has none).
    category_ids : ndarray of shape (n_categories,)
        Sorted category ids (``categories`` of the json, plus any id used by an annotation).
        Every per-class array of this package follows this order.
    category_names : list of str
    ann_image_id, ann_category_id : ndarray of shape (n_annotations,)
    ann_box : ndarray of shape (n_annotations, 4)
        ``[x, y, w, h]``.
    ann_crowd : ndarray of shape (n_annotations,), bool
        ``iscrowd``; as in pycocotools, a json ``ignore`` flag is not honoured.
    """

    image_ids: np.ndarray
    image_width: np.ndarray
    image_height: np.ndarray
    category_ids: np.ndarray
    category_names: list
    ann_image_id: np.ndarray
    ann_category_id: np.ndarray
    ann_box: np.ndarray
    ann_crowd: np.ndarray
    dataset: dict | None = field(default=None, repr=False)

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_categories(self) -> int:
        return len(self.category_ids)

    @classmethod
    def from_arrays(
        cls,
        image_ids,
        category_ids,
        boxes,
        *,
        iscrowd=None,
        images=None,
        categories=None,
        box_format: str = "xywh",
    ) -> GroundTruth:
        """Ground truth from plain arrays.

        Parameters
        ----------
        image_ids, category_ids : array-like of shape (m,)
        boxes : array-like of shape (m, 4)
            ``[x, y, w, h]`` (``box_format="xywh"``) or ``[x1, y1, x2, y2]`` (``"xyxy"``).
        iscrowd : array-like of shape (m,), optional
        images : array-like, optional
            Every image id of the split, including images without annotations.
        categories : array-like, optional
            Every category id, including categories without annotations.
        """
        img = _int_column(image_ids, "image_ids")
        cat = _int_column(category_ids, "category_ids")
        box = _box_column(boxes, "boxes", box_format)
        crowd = (
            np.zeros(len(img), bool)
            if iscrowd is None
            else np.asarray(to_numpy(iscrowd, name="iscrowd"), dtype=bool).ravel()
        )
        _same_length(("image_ids", img), ("category_ids", cat), ("boxes", box), ("iscrowd", crowd))
        all_img = np.unique(np.concatenate([img, _int_column(images, "images")])) if (
            images is not None
        ) else np.unique(img)
        all_cat = np.unique(np.concatenate([cat, _int_column(categories, "categories")])) if (
            categories is not None
        ) else np.unique(cat)
        nan = np.full(len(all_img), np.nan)
        return cls(all_img, nan, nan.copy(), all_cat, [str(c) for c in all_cat],
                   img, cat, box, crowd)

    def to_coco(self) -> dict:
        """A COCO ground-truth dict (``area`` is the box area)."""
        if self.dataset is not None:
            return self.dataset
        images = [
            {"id": int(i), **({} if np.isnan(w) else {"width": float(w), "height": float(h)})}
            for i, w, h in zip(self.image_ids, self.image_width, self.image_height, strict=False)
        ]
        cats = [
            {"id": int(c), "name": n}
            for c, n in zip(self.category_ids, self.category_names, strict=True)
        ]
        anns = [
            {"id": k + 1, "image_id": int(i), "category_id": int(c), "bbox": [float(v) for v in b],
             "area": float(b[2] * b[3]), "iscrowd": int(z)}
            for k, (i, c, b, z) in enumerate(
                zip(self.ann_image_id, self.ann_category_id, self.ann_box, self.ann_crowd,
                    strict=True)
            )
        ]
        return {"images": images, "annotations": anns, "categories": cats}


def load_gt(gt) -> GroundTruth:
    """Read COCO ground truth from a path, a json dict, a ``pycocotools`` ``COCO`` object, or
    return a :class:`GroundTruth` unchanged."""
    if isinstance(gt, GroundTruth):
        return gt
    if isinstance(gt, (str, Path)):
        gt = _read_json(gt, "gt")
    elif hasattr(gt, "dataset") and hasattr(gt, "getAnnIds"):  # pycocotools.coco.COCO
        gt = gt.dataset
    if not isinstance(gt, dict):
        raise TypeError(
            f"gt must be a path to a COCO json, a COCO dict, a pycocotools COCO object or a "
            f"GroundTruth; got {type(gt).__name__}."
        )
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise ValueError(f"gt is not a COCO ground-truth dict: the key {key!r} is missing.")
    anns = gt["annotations"]
    try:
        img = np.fromiter((a["image_id"] for a in anns), np.int64, count=len(anns))
        cat = np.fromiter((a["category_id"] for a in anns), np.int64, count=len(anns))
        box = _boxes_from_lists([a["bbox"] for a in anns], "gt annotation bbox")
        crowd = np.fromiter((bool(a.get("iscrowd", 0)) for a in anns), bool, count=len(anns))
        images = gt["images"]
        im_id = np.fromiter((i["id"] for i in images), np.int64, count=len(images))
        width = np.array([float(i.get("width", np.nan)) for i in images], dtype=np.float64)
        height = np.array([float(i.get("height", np.nan)) for i in images], dtype=np.float64)
        cats = gt["categories"]
        cat_id = np.fromiter((c["id"] for c in cats), np.int64, count=len(cats))
        cat_name = {int(c["id"]): str(c.get("name", c["id"])) for c in cats}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"gt is a malformed COCO ground-truth dict: {exc!r}.") from exc
    _check_boxes(box, "gt annotation bbox")
    all_img, first = np.unique(np.concatenate([im_id, img]), return_index=True)
    wh = np.concatenate([width, np.full(len(img), np.nan)])
    ht = np.concatenate([height, np.full(len(img), np.nan)])
    all_cat = np.unique(np.concatenate([cat_id, cat]))
    names = [cat_name.get(int(c), str(int(c))) for c in all_cat]
    return GroundTruth(all_img, wh[first], ht[first], all_cat, names, img, cat, box, crowd, gt)


# --------------------------------------------------------------------------------------
# Detections
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections as numpy columns; row order is the file order used to break score ties.

    Attributes
    ----------
    image_id, category_id : ndarray of shape (n,), int64
    score : ndarray of shape (n,), float64 in [0, 1]
    box : ndarray of shape (n, 4), float64, ``[x, y, w, h]`` with ``w, h >= 0``
    """

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    box: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    @classmethod
    def from_arrays(
        cls, image_ids, category_ids, scores, boxes, *, box_format: str = "xywh"
    ) -> Detections:
        """Detections from plain arrays.

        Parameters
        ----------
        image_ids, category_ids : array-like of shape (n,)
        scores : array-like of shape (n,)
            Confidences in [0, 1].
        boxes : array-like of shape (n, 4)
            ``[x, y, w, h]`` (``box_format="xywh"``) or ``[x1, y1, x2, y2]`` (``"xyxy"``).
        """
        img = _int_column(image_ids, "image_ids")
        cat = _int_column(category_ids, "category_ids")
        box = _box_column(boxes, "boxes", box_format)
        score = _score_column(scores)
        _same_length(("image_ids", img), ("category_ids", cat), ("scores", score), ("boxes", box))
        return cls(img, cat, score, box)

    def subset(self, mask) -> Detections:
        """The rows selected by a boolean mask or an index array (a new table)."""
        return Detections(self.image_id[mask], self.category_id[mask], self.score[mask],
                          self.box[mask])

    def with_scores(self, scores) -> Detections:
        """A new table with the same boxes and new scores."""
        score = _score_column(scores)
        if len(score) != len(self):
            raise ValueError(f"scores has {len(score)} entries but there are {len(self)} rows.")
        return Detections(self.image_id, self.category_id, score, self.box)

    def to_coco(self) -> list[dict]:
        """COCO results list ``[{image_id, category_id, bbox, score}, ...]``."""
        return [
            {"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(
                self.image_id.tolist(), self.category_id.tolist(), self.box.tolist(),
                self.score.tolist(), strict=False,
            )
        ]


def load_dets(dets, image_ids=None) -> Detections:
    """Read detections from any supported form.

    * a path to a COCO results json, or a COCO results list of dicts
      ``{image_id, category_id, bbox: [x, y, w, h], score}``;
    * a ``pycocotools`` ``COCO`` object made by ``loadRes``;
    * torchvision outputs: a list of dicts with ``boxes`` (xyxy), ``labels``, ``scores``
      (tensors or arrays), one per image, with ``image_ids`` giving each image's id;
    * a :class:`Detections` (returned unchanged).
    """
    if isinstance(dets, Detections):
        return dets
    if isinstance(dets, (str, Path)):
        dets = _read_json(dets, "dets")
    elif hasattr(dets, "dataset") and hasattr(dets, "getAnnIds"):
        dets = dets.dataset.get("annotations", [])
    if isinstance(dets, dict) and "annotations" in dets:
        dets = dets["annotations"]
    if not isinstance(dets, (list, tuple)):
        raise TypeError(
            "dets must be a path to a COCO results json, a list of result dicts, torchvision "
            f"outputs with image_ids, or a Detections table; got {type(dets).__name__}."
        )
    if len(dets) and isinstance(dets[0], dict) and "boxes" in dets[0]:
        if image_ids is None:
            raise ValueError("torchvision outputs need image_ids (one id per output dict).")
        return from_torchvision(dets, image_ids)
    n = len(dets)
    if n == 0:
        return Detections(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                          np.zeros((0, 4)))
    try:
        img = np.fromiter(map(itemgetter("image_id"), dets), np.int64, count=n)
        cat = np.fromiter(map(itemgetter("category_id"), dets), np.int64, count=n)
        score = np.fromiter(map(itemgetter("score"), dets), np.float64, count=n)
        box = _boxes_from_lists(list(map(itemgetter("bbox"), dets)), "dets bbox")
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"dets is not a COCO results list (each item needs image_id, category_id, bbox "
            f"[x, y, w, h] and score): {exc!r}."
        ) from exc
    _check_boxes(box, "dets bbox")
    _check_scores(score)
    return Detections(img, cat, score, box)


def from_torchvision(outputs, image_ids) -> Detections:
    """Detections from torchvision detection outputs.

    Parameters
    ----------
    outputs : list of dict
        One dict per image with ``boxes`` (n_i, 4) in ``[x1, y1, x2, y2]``, ``labels`` (n_i,)
        and ``scores`` (n_i,), as tensors or arrays.
    image_ids : array-like of shape (len(outputs),)
        The image id of each output.
    """
    ids = _int_column(image_ids, "image_ids")
    if len(ids) != len(outputs):
        raise ValueError(f"image_ids has {len(ids)} entries but there are {len(outputs)} outputs.")
    boxes, labels, scores, img = [], [], [], []
    for k, (out, image_id) in enumerate(zip(outputs, ids, strict=False)):
        try:
            b = np.asarray(to_numpy(out["boxes"], name="boxes"), dtype=np.float64).reshape(-1, 4)
            lab = np.asarray(to_numpy(out["labels"], name="labels")).astype(np.int64).ravel()
            s = np.asarray(to_numpy(out["scores"], name="scores"), dtype=np.float64).ravel()
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"outputs[{k}] must be a dict with boxes, labels and scores: {exc!r}."
            ) from exc
        if not (len(b) == len(lab) == len(s)):
            raise ValueError(
                f"outputs[{k}] has {len(b)} boxes, {len(lab)} labels and {len(s)} scores."
            )
        boxes.append(b)
        labels.append(lab)
        scores.append(s)
        img.append(np.full(len(s), image_id, np.int64))
    box = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    return Detections.from_arrays(
        np.concatenate(img) if img else np.zeros(0, np.int64),
        np.concatenate(labels) if labels else np.zeros(0, np.int64),
        np.concatenate(scores) if scores else np.zeros(0),
        box,
        box_format="xyxy",
    )


def netcal_npz_to_coco(dets_npz, gt_npz) -> tuple[dict, list[dict]]:
    """Convert the netcal detection records to a COCO ground-truth dict and a results list.

    The records hold boxes as normalised ``[ymin, xmin, ymax, xmax]``; the COCO boxes are
    ``[xmin, ymin, xmax - xmin, ymax - ymin]`` in the same normalised units, and every image
    gets ``width = height = 1``. The records carry no crowd flags, so every ground-truth box
    is a regular one (``iscrowd = 0``); categories are the ids that occur.

    Parameters
    ----------
    dets_npz, gt_npz : path or mapping of arrays
        ``*_coco_val2017_dets.npz`` and ``coco_val2017_gt_boxes.npz``.
    """
    d = _npz(dets_npz)
    g = _npz(gt_npz)
    gt_images = np.asarray(g["image_ids"], np.int64)
    gi = np.asarray(g["gt_image_index"], np.int64)
    gb = np.asarray(g["gt_boxes_yxyx_norm"], np.float64)
    gc = np.asarray(g["gt_category_ids"], np.int64)
    di = np.asarray(d["det_image_index"], np.int64)
    db = np.asarray(d["det_boxes_yxyx_norm"], np.float64)
    dc = np.asarray(d["det_category_ids"], np.int64)
    ds = np.asarray(d["det_scores"], np.float64)
    det_images = np.asarray(d["image_ids"], np.int64)
    cats = np.unique(np.concatenate([gc, dc]))
    images = [{"id": int(i), "width": 1.0, "height": 1.0} for i in gt_images]
    g_xywh = np.column_stack([gb[:, 1], gb[:, 0], gb[:, 3] - gb[:, 1], gb[:, 2] - gb[:, 0]])
    anns = [
        {"id": k + 1, "image_id": int(i), "category_id": int(c), "bbox": b,
         "area": b[2] * b[3], "iscrowd": 0}
        for k, (i, c, b) in enumerate(zip(gt_images[gi], gc, g_xywh.tolist(), strict=False))
    ]
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": int(c), "name": str(int(c))} for c in cats]}
    d_xywh = np.column_stack([db[:, 1], db[:, 0], db[:, 3] - db[:, 1], db[:, 2] - db[:, 0]])
    results = Detections(det_images[di], dc, ds, d_xywh).to_coco()
    return gt, results


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _read_json(path, name: str):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file {path}.")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: {path} is not valid json: {exc}.") from exc


def _npz(x):
    if isinstance(x, (str, Path)):
        with np.load(x, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    return x


def _boxes_from_lists(boxes: list, name: str) -> np.ndarray:
    n = len(boxes)
    if n == 0:
        return np.zeros((0, 4))
    lengths = np.fromiter(map(len, boxes), np.int64, count=n)
    if np.any(lengths != 4):
        bad = int(np.flatnonzero(lengths != 4)[0])
        raise ValueError(f"{name}[{bad}] must have 4 numbers [x, y, w, h]; got {boxes[bad]!r}.")
    flat = np.fromiter(itertools.chain.from_iterable(boxes), np.float64, count=4 * n)
    return flat.reshape(n, 4)


def _check_boxes(box: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(box)):
        raise ValueError(f"{name} contains NaN or infinite coordinates.")
    neg = (box[:, 2] < 0) | (box[:, 3] < 0)
    if np.any(neg):
        k = int(np.flatnonzero(neg)[0])
        raise ValueError(
            f"{name}: {int(neg.sum())} box(es) have negative width or height (first at row "
            f"{k}: {box[k].tolist()}); boxes must be [x, y, w, h] with w, h >= 0 "
            "(convert [x1, y1, x2, y2] boxes first)."
        )


def _check_scores(score: np.ndarray) -> None:
    if not np.all(np.isfinite(score)):
        raise ValueError("detection scores contain NaN or infinite values.")
    if len(score) and (score.min() < 0.0 or score.max() > 1.0):
        raise ValueError(
            f"detection scores must lie in [0, 1]; got min {score.min():.4g}, max "
            f"{score.max():.4g}. Apply a sigmoid or softmax to logits first."
        )


def _int_column(x, name: str) -> np.ndarray:
    arr = np.asarray(to_numpy(x, name=name))
    if arr.ndim != 1:
        arr = arr.ravel()
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or np.any(arr != np.round(arr)):
            raise TypeError(f"{name} must hold integer ids; got dtype {arr.dtype}.")
    return arr.astype(np.int64)


def _score_column(x) -> np.ndarray:
    s = np.asarray(to_numpy(x, name="scores"), dtype=np.float64).ravel()
    _check_scores(s)
    return s


def _box_column(x, name: str, box_format: str) -> np.ndarray:
    if box_format not in ("xywh", "xyxy"):
        raise ValueError(f"box_format must be 'xywh' or 'xyxy'; got {box_format!r}.")
    b = np.asarray(to_numpy(x, name=name), dtype=np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (n, 4); got {b.shape}.")
    if box_format == "xyxy":
        b = np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])
    _check_boxes(b, name)
    return b


def _same_length(*pairs) -> None:
    lengths = {k: len(v) for k, v in pairs}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise ValueError(f"Inconsistent numbers of rows: {desc}.")
