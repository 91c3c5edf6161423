"""Detection inputs as one internal table of numpy columns.

* :class:`GroundTruth`: the images, the categories and the annotations of a COCO ground-truth
  json (``bbox`` is ``[x, y, w, h]``; ``iscrowd`` marks ignore regions), with the instance
  masks (``segmentation``) when read with ``iou_type="segm"`` and LVIS's federated fields
  (:class:`Federated`) when the images carry them.
* :class:`Detections`: one row per detection: ``image_id``, ``category_id``, ``score``,
  ``box`` (``[x, y, w, h]``), ``area`` and, read with ``iou_type="segm"``, the ``mask``. The
  row position is the "file order" that breaks score ties.

Masks (polygons, uncompressed or compressed RLE, in ground truth and results alike) are kept
as compressed RLEs in a compact :class:`~calibkit.detection.masks.Masks` table, converted and
checked as :mod:`calibkit.detection.masks` describes. With ``iou_type="bbox"`` (the default)
the ``segmentation`` fields are skipped unread.

Readers: :func:`load_gt` (a path, a dict, or a ``pycocotools.coco.COCO``), :func:`load_dets`
(a path, a COCO results list, a ``COCO`` results object, a :class:`Detections`, or
torchvision outputs), :func:`from_torchvision`, :meth:`Detections.from_arrays`, and
:func:`netcal_npz_to_coco` for the netcal detection records (normalised ``yxyx`` boxes).
pycocotools objects are accepted but not needed.

Json files (``.json`` or gzip-compressed ``.json.gz``) are decoded straight into columns,
block by block (a few MiB at a time), so no list of Python dicts is ever built and the
memory in use is the columns plus one block. A box results file in the plain form every
detector writes (a list of ``{"image_id", "category_id", "bbox", "score"}``; with masks,
``{"image_id", "category_id", "score", "segmentation": {"size": [h, w], "counts": str}}``
with an optional ``bbox``; other fields holding a number, true, false or null, such as
``id`` or ``area``, are skipped) is parsed by a compiled reader
(``calibkit.detection._ckernels.parse_results``: the json grammar of exactly those items,
numbers correctly rounded) straight into the columns; any other file (other fields holding
strings, lists or objects, polygons or uncompressed RLEs, an object with ``annotations``,
or anything the reader does not accept) is decoded with msgspec's typed decoder, each
block's complete top-level items into typed records appended to the columns, which also
words every error.
Both give the same columns to the last bit. The typed schema is the validation, for files
and in-memory dicts alike:

* ids (``image_id``, ``category_id``, ``id``) are JSON integers within int64 (``1.5``,
  ``"1"`` and ``true`` are refused);
* ``iscrowd`` is 0, 1, ``true`` or ``false``;
* ``score`` is a real number in [0, 1]; ``bbox`` is 4 finite numbers with ``w, h >= 0``;
* LVIS's ``neg_category_ids`` and ``not_exhaustive_category_ids`` are lists of category ids
  of the ground truth, present on every image or on none.

Every error is a ValueError or TypeError naming the file or argument, the item and the fix.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec
import numpy as np

from calibkit._persistence import open_user_file
from calibkit.detection.masks import (
    SEGMENTATION,
    Masks,
    encode_binary_masks,
    segmentations_to_masks,
)

#: how a detection's overlap with an annotation is measured
IOU_TYPES = ("bbox", "segm")

__all__ = [
    "GroundTruth",
    "Detections",
    "Federated",
    "load_gt",
    "load_dets",
    "from_torchvision",
    "netcal_npz_to_coco",
]


# --------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Federated:
    """LVIS's federated labels: which categories each image is verified *not* to contain,
    which it contains but not exhaustively annotated, and each category's frequency group.

    Attributes
    ----------
    neg : ndarray of shape (m, 2), int64
        ``(image_id, category_id)`` pairs of the images' ``neg_category_ids``: detections of
        that category on that image are false positives.
    not_exhaustive : ndarray of shape (m', 2), int64
        ``(image_id, category_id)`` pairs of the images' ``not_exhaustive_category_ids``: an
        unmatched detection of that category on that image is ignored.
    frequency : ndarray of shape (n_categories,), object
        The categories' ``frequency`` field (``"r"``, ``"c"`` or ``"f"`` in LVIS; None where
        absent), in the order of ``GroundTruth.category_ids``.
    """

    neg: np.ndarray
    not_exhaustive: np.ndarray
    frequency: np.ndarray


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Checked COCO (or LVIS) ground truth.

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
        The categories' ``name`` field (the id as a string where absent), in the order of
        ``category_ids``.
    ann_image_id, ann_category_id : ndarray of shape (n_annotations,)
        int64 ids of each annotation, in file order.
    ann_box : ndarray of shape (n_annotations, 4)
        ``[x, y, w, h]``.
    ann_crowd : ndarray of shape (n_annotations,), bool
        ``iscrowd``; as in pycocotools, a json ``ignore`` flag is not honoured by COCO's rules.
    dataset : dict or None, default=None
        The json dict it was read from, if any.
    ann_area : ndarray of shape (n_annotations,) or None, default=None
        The annotations' ``area`` field (what COCO's area ranges test); None: the box area
        ``w * h`` (see :attr:`area`).
    ann_segm : Masks or None, default=None
        The annotations' masks (read with ``iou_type="segm"``), None otherwise.
    ann_ignore : ndarray of shape (n_annotations,), bool, or None, default=None
        The json ``ignore`` flag (LVIS's rules honour it; COCO's overwrite it with
        ``iscrowd``); None: no annotation has one.
    federated : Federated or None, default=None
        LVIS's per-image label lists and category frequencies, when the images carry
        ``neg_category_ids`` and ``not_exhaustive_category_ids``.
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
    ann_area: np.ndarray | None = field(default=None, repr=False)
    ann_segm: Masks | None = field(default=None, repr=False)
    ann_ignore: np.ndarray | None = field(default=None, repr=False)
    federated: Federated | None = field(default=None, repr=False)

    @property
    def area(self) -> np.ndarray:
        """Area of each annotation: ``ann_area``, or ``w * h`` of the box where absent."""
        if self.ann_area is not None:
            return self.ann_area
        return self.ann_box[:, 2] * self.ann_box[:, 3]

    @property
    def ignore(self) -> np.ndarray:
        """The json ``ignore`` flag of each annotation (False where absent)."""
        if self.ann_ignore is not None:
            return self.ann_ignore
        return np.zeros(len(self.ann_image_id), bool)

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_categories(self) -> int:
        return len(self.category_ids)

    @property
    def is_lvis(self) -> bool:
        """The images carry LVIS's federated label lists."""
        return self.federated is not None

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
        """Ground truth from plain arrays, one entry per annotation.

        The images get no size (NaN width and height) and the categories their id as name;
        the annotations' ``area`` is the box area.

        Parameters
        ----------
        image_ids, category_ids : array-like of int of shape (m,)
            Image id and category id of each annotation.
        boxes : array-like of shape (m, 4)
            ``[x, y, w, h]`` (``box_format="xywh"``) or ``[x1, y1, x2, y2]`` (``"xyxy"``);
            finite, with ``w, h >= 0``.
        iscrowd : array-like of bool of shape (m,) or None, default=None
            Crowd regions; None: no annotation is one.
        images : array-like of int of shape (n_images,) or None, default=None
            Every image id of the split, including images without annotations (the ids of
            ``image_ids`` are added).
        categories : array-like of int of shape (n_categories,) or None, default=None
            Every category id, including categories without annotations (the ids of
            ``category_ids`` are added).
        box_format : {"xywh", "xyxy"}, default="xywh"
            How ``boxes`` are written; ``"xyxy"`` boxes are converted to ``[x, y, w, h]``.

        Returns
        -------
        GroundTruth

        Raises
        ------
        ValueError
            Arrays of different lengths, boxes that are not finite or have a negative
            width or height, an unknown ``box_format``.
        TypeError
            Ids that are not integers.
        """
        img = _int_column(image_ids, "image_ids")
        cat = _int_column(category_ids, "category_ids")
        box = _box_column(boxes, "boxes", box_format)
        crowd = (
            np.zeros(len(img), bool)
            if iscrowd is None
            else np.asarray(_to_numpy(iscrowd, name="iscrowd"), dtype=bool).ravel()
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
        """A COCO ground-truth dict.

        The json dict the ground truth was read from when there is one (:attr:`dataset`,
        returned as is); otherwise a dict built from the columns: images (with ``width`` and
        ``height`` where known), categories and annotations with ``bbox``, ``iscrowd`` and
        ``area`` the box area (masks, ``ignore`` flags and LVIS's fields are not written).
        """
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


def load_gt(gt, *, iou_type: str = "bbox") -> GroundTruth:
    """Read COCO (or LVIS) ground truth from a path (``.json`` or ``.json.gz``), a json dict,
    a ``pycocotools`` ``COCO`` object (or ``lvis`` ``LVIS`` object), or return a
    :class:`GroundTruth` unchanged.

    Parameters
    ----------
    gt : str, Path, dict, pycocotools COCO, lvis LVIS or GroundTruth
        The ground truth: a json file, a COCO ground-truth dict (``images``,
        ``annotations``, ``categories``), the columns of
        ``calibkit.datasets.load_bundled_coco(arrays=True)`` (boxes only), a ``COCO`` or
        ``LVIS`` object (its ``dataset`` is read), or a :class:`GroundTruth` (returned as
        is).
    iou_type : {"bbox", "segm"}, default="bbox"
        ``"segm"`` also reads every annotation's ``segmentation`` (polygons, uncompressed or
        compressed RLE) into masks; a box missing from such an annotation is the box around
        its mask. ``"bbox"`` skips the masks.

    Returns
    -------
    GroundTruth

    Raises
    ------
    ValueError
        A missing key, an id that is not an integer, an ``iscrowd`` other than 0/1/bool, a
        box that is not 4 finite numbers with ``w, h >= 0``, a malformed mask, LVIS fields of
        the wrong type (the message names the item and the field).
    """
    iou_type = _check_iou_type(iou_type, "load_gt")
    if isinstance(gt, GroundTruth):
        if iou_type == "segm" and gt.ann_segm is None:
            raise ValueError("gt was read without its masks; read it with load_gt(..., "
                             "iou_type='segm') for mask IoU.")
        return gt
    if isinstance(gt, dict) and "ann_box" in gt:
        if iou_type == "segm":
            raise ValueError("gt columns hold boxes only; mask IoU needs a COCO ground truth "
                             "with segmentations.")
        return _gt_from_columns(gt)
    segm = iou_type == "segm"
    doc_type = _GtDocSegm if segm else _GtDoc
    source = None
    if isinstance(gt, (str, Path)):
        source = gt
        doc = _decode_file(gt, doc_type, "gt")
    else:
        if hasattr(gt, "dataset") and (hasattr(gt, "getAnnIds") or hasattr(gt, "get_ann_ids")):
            gt = gt.dataset  # pycocotools.coco.COCO or lvis.LVIS
        if not isinstance(gt, dict):
            raise TypeError(
                f"gt must be a path to a COCO json, a COCO dict, a pycocotools COCO object or "
                f"a GroundTruth; got {type(gt).__name__}."
            )
        for key in ("images", "annotations", "categories"):
            if key not in gt:
                raise ValueError(
                    f"gt is not a COCO ground-truth dict: the key {key!r} is missing."
                )
        doc = _convert(gt, doc_type, "gt")
    label = "gt" if source is None else f"gt {source}"
    anns = doc.annotations
    n = len(anns)
    img = np.fromiter(map(attrgetter("image_id"), anns), np.int64, count=n)
    cat = np.fromiter(map(attrgetter("category_id"), anns), np.int64, count=n)
    boxes = list(map(attrgetter("bbox"), anns))
    crowd = np.fromiter((bool(a.iscrowd) for a in anns), bool, count=n)
    ignore = np.fromiter((bool(a.ignore) for a in anns), bool, count=n)
    area = np.fromiter((np.nan if a.area is None else a.area for a in anns), np.float64,
                       count=n)
    segs = list(map(attrgetter("segmentation"), anns)) if segm else None
    images = doc.images
    im_id = np.fromiter(map(attrgetter("id"), images), np.int64, count=len(images))
    width = np.array([np.nan if i.width is None else i.width for i in images], np.float64)
    height = np.array([np.nan if i.height is None else i.height for i in images], np.float64)
    cat_id = np.fromiter(map(attrgetter("id"), doc.categories), np.int64,
                         count=len(doc.categories))
    cat_name = {c.id: str(c.id if c.name is None else c.name) for c in doc.categories}
    cat_freq = {c.id: c.frequency for c in doc.categories}
    federated = _federated_pairs(images, label)
    del doc, anns
    all_img, first = np.unique(np.concatenate([im_id, img]), return_index=True)
    wh = np.concatenate([width, np.full(len(img), np.nan)])[first]
    ht = np.concatenate([height, np.full(len(img), np.nan)])[first]
    masks = None
    if segm:
        pos = np.searchsorted(all_img, img)
        missing = [k for k, s_ in enumerate(segs) if s_ is None]
        if missing:
            raise ValueError(f"{label}: annotation {missing[0]} has no segmentation; mask IoU "
                             "needs one on every annotation (read with iou_type='bbox' for "
                             "boxes).")
        masks = segmentations_to_masks(segs, ht[pos], wh[pos], name=f"{label} annotations")
        del segs
        _check_mask_sizes(masks, ht[pos], wh[pos], f"{label} annotations")
        no_box = np.fromiter((b is None for b in boxes), bool, count=n)
        if no_box.any():
            fill = masks.subset(no_box).to_bbox()
            it = iter(fill.tolist())
            boxes = [next(it) if b is None else b for b in boxes]
    box = _boxes_from_tuples(boxes)
    _check_boxes(box, f"{label}: annotation bbox")
    all_cat = np.unique(np.concatenate([cat_id, cat]))
    names = [cat_name.get(int(c), str(int(c))) for c in all_cat]
    area = np.where(np.isnan(area), box[:, 2] * box[:, 3], area)
    fed = None
    if federated is not None:
        for key, pairs in zip(("neg_category_ids", "not_exhaustive_category_ids"), federated,
                              strict=True):
            unknown = ~np.isin(pairs[:, 1], all_cat)
            if unknown.any():
                k = int(np.flatnonzero(unknown)[0])
                raise ValueError(f"{label}: image {int(pairs[k, 0])} lists category "
                                 f"{int(pairs[k, 1])} in {key}, which is not a category of "
                                 "the ground truth.")
        freq = np.array([cat_freq.get(int(c)) for c in all_cat] + [None], dtype=object)[:-1]
        fed = Federated(federated[0], federated[1], freq)
    dataset = gt if isinstance(gt, dict) else None
    return GroundTruth(all_img, wh, ht, all_cat, names, img, cat, box, crowd,
                       dataset, area, masks, ignore if ignore.any() else None, fed)


def _federated_pairs(images, label: str):
    """(neg, not_exhaustive) ``(image_id, category_id)`` pairs, or None without LVIS fields."""
    has_neg = [i.neg_category_ids is not None for i in images]
    has_nel = [i.not_exhaustive_category_ids is not None for i in images]
    if not (any(has_neg) or any(has_nel)):
        return None
    for k, (a, b) in enumerate(zip(has_neg, has_nel, strict=True)):
        if not (a and b):
            key = "neg_category_ids" if not a else "not_exhaustive_category_ids"
            raise ValueError(f"{label}: images[{k}] (id {images[k].id}) has no {key}; LVIS "
                             "ground truth lists neg_category_ids and "
                             "not_exhaustive_category_ids on every image.")
    out = []
    for attr in ("neg_category_ids", "not_exhaustive_category_ids"):
        lists = [getattr(i, attr) for i in images]
        n = np.fromiter(map(len, lists), np.int64, count=len(lists))
        ids = np.repeat(np.fromiter((i.id for i in images), np.int64, count=len(images)), n)
        cats = np.fromiter(itertools.chain.from_iterable(lists), np.int64, count=int(n.sum()))
        out.append(np.column_stack([ids, cats]).astype(np.int64).reshape(-1, 2))
    return tuple(out)


def _check_mask_sizes(masks: Masks, height, width, name: str, labels=None) -> None:
    """Every mask must have its image's size (where the image's size is known)."""
    known = np.isfinite(height) & np.isfinite(width)
    bad = known & ((masks.size[:, 0] != height) | (masks.size[:, 1] != width))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        lab = k if labels is None else labels[k]
        raise ValueError(
            f"{name}[{lab}].segmentation has size {masks.size[k].tolist()} (height, width) but "
            f"its image is {[int(height[k]), int(width[k])]}; masks must have their image's "
            "size."
        )


def _gt_from_columns(c: dict) -> GroundTruth:
    """Ground truth from the columns of ``calibkit.datasets.load_bundled_coco(arrays=True)``
    (``image_ids``, ``image_width``, ``image_height``, ``category_ids``,
    ``category_names``, ``ann_image_id``, ``ann_category_id``, ``ann_box``, ``ann_area``,
    ``ann_crowd``)."""
    box = _box_column(c["ann_box"], "gt ann_box", "xywh")
    img = _int_column(c["ann_image_id"], "gt ann_image_id")
    cat = _int_column(c["ann_category_id"], "gt ann_category_id")
    crowd = np.asarray(c["ann_crowd"], bool)
    area = np.asarray(c["ann_area"], np.float64)
    _same_length(("ann_box", box), ("ann_image_id", img), ("ann_category_id", cat),
                 ("ann_crowd", crowd), ("ann_area", area))
    images = _int_column(c["image_ids"], "gt image_ids")
    cats = _int_column(c["category_ids"], "gt category_ids")
    if not (np.all(np.diff(images) > 0) and np.all(np.diff(cats) > 0)
            and np.isin(img, images).all() and np.isin(cat, cats).all()):
        raise ValueError("gt columns: image_ids and category_ids must be sorted, unique and "
                         "cover every annotation's ids.")
    return GroundTruth(images, np.asarray(c["image_width"], np.float64),
                       np.asarray(c["image_height"], np.float64), cats,
                       list(c["category_names"]), img, cat, box, crowd, None, area)


# --------------------------------------------------------------------------------------
# Detections
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections as numpy columns; row order is the file order used to break score ties.

    Build one with :func:`load_dets` or :meth:`from_arrays` (which check their input); the
    constructor takes the columns as they are.

    Attributes
    ----------
    image_id, category_id : ndarray of shape (n,), int64
        Image id and category id of each detection.
    score : ndarray of shape (n,), float64 in [0, 1]
        Confidence of each detection.
    box : ndarray of shape (n, 4), float64, ``[x, y, w, h]`` with ``w, h >= 0``
        Box of each detection.
    mask : Masks or None, default=None
        The detections' masks (read with ``iou_type="segm"``), None otherwise; one per row.
    area : ndarray of shape (n,), float64, or None, default=None
        The area that COCO's (and LVIS's) area ranges test, following pycocotools'
        ``loadRes``: the box area ``w * h`` for a result with a ``bbox``, the mask's area for
        a mask without one (torchvision's mask results). None (the default) sets it to
        ``w * h`` of the boxes.

    Raises
    ------
    ValueError
        ``mask`` has a number of rows other than ``len(score)``.
    """

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    box: np.ndarray
    mask: Masks | None = None
    area: np.ndarray | None = None

    def __post_init__(self):
        if self.area is None:
            object.__setattr__(self, "area", self.box[:, 2] * self.box[:, 3])
        if self.mask is not None and len(self.mask) != len(self.score):
            raise ValueError(f"mask has {len(self.mask)} rows but there are {len(self.score)} "
                             "detections.")

    def __len__(self) -> int:
        return len(self.score)

    @classmethod
    def from_arrays(
        cls, image_ids, category_ids, scores, boxes, *, box_format: str = "xywh", masks=None,
    ) -> Detections:
        """Detections from plain arrays (numpy arrays, lists or tensors), one entry per
        detection, in file order.

        Parameters
        ----------
        image_ids, category_ids : array-like of int of shape (n,)
            Image id and category id of each detection.
        scores : array-like of shape (n,)
            Confidences in [0, 1] (finite).
        boxes : array-like of shape (n, 4)
            ``[x, y, w, h]`` (``box_format="xywh"``) or ``[x1, y1, x2, y2]`` (``"xyxy"``);
            finite, with ``w, h >= 0``.
        box_format : {"xywh", "xyxy"}, default="xywh"
            How ``boxes`` are written; ``"xyxy"`` boxes are converted to ``[x, y, w, h]``.
        masks : Masks or None, default=None
            One mask per row (e.g. :func:`calibkit.detection.masks.encode_binary_masks`).
            The ``area`` stays the box area.

        Returns
        -------
        Detections

        Raises
        ------
        ValueError
            Arrays of different lengths, scores outside [0, 1] or not finite, boxes that are
            not finite or have a negative width or height, an unknown ``box_format``.
        TypeError
            Ids that are not integers, or ``masks`` that is not a :class:`Masks` table.
        """
        img = _int_column(image_ids, "image_ids")
        cat = _int_column(category_ids, "category_ids")
        box = _box_column(boxes, "boxes", box_format)
        score = _score_column(scores)
        _same_length(("image_ids", img), ("category_ids", cat), ("scores", score), ("boxes", box))
        if masks is not None and not isinstance(masks, Masks):
            raise TypeError("masks must be a calibkit.detection.masks.Masks table; got "
                            f"{type(masks).__name__}.")
        return cls(img, cat, score, box, masks)

    def subset(self, mask) -> Detections:
        """The rows selected by a boolean mask or an index array (a new table)."""
        return Detections(self.image_id[mask], self.category_id[mask], self.score[mask],
                          self.box[mask], None if self.mask is None else self.mask.subset(mask),
                          self.area[mask])

    def with_scores(self, scores) -> Detections:
        """A new table with the same boxes (and masks) and new scores."""
        score = _score_column(scores)
        if len(score) != len(self):
            raise ValueError(f"scores has {len(score)} entries but there are {len(self)} rows.")
        return Detections(self.image_id, self.category_id, score, self.box, self.mask,
                          self.area)

    @classmethod
    def concatenate(cls, parts) -> Detections:
        """One table of the rows of ``parts``, in order (all with masks, or none)."""
        parts = list(parts)
        if not parts:
            return _empty_dets()
        has = {p.mask is not None for p in parts}
        if len(has) > 1:
            raise ValueError("detection tables to concatenate must all have masks, or none.")

        def cat(name):
            return np.concatenate([getattr(p, name) for p in parts])

        mask = Masks.concatenate([p.mask for p in parts]) if has == {True} else None
        return cls(cat("image_id"), cat("category_id"), cat("score"),
                   cat("box").reshape(-1, 4), mask, cat("area"))

    def to_coco(self) -> list[dict]:
        """COCO results list ``[{image_id, category_id, bbox, score}, ...]``; with masks, each
        result also has its ``segmentation`` (compressed RLE), and a row whose ``area`` is its
        mask's (a result read without a box) is written without ``bbox``, so that reading the
        list back (here or with pycocotools) gives the same areas."""
        rows = [
            {"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(
                self.image_id.tolist(), self.category_id.tolist(), self.box.tolist(),
                self.score.tolist(), strict=False,
            )
        ]
        if self.mask is not None:
            box_area = (self.box[:, 2] * self.box[:, 3]).tolist()
            for r, seg, a, ba in zip(rows, self.mask.to_coco(), self.area.tolist(), box_area,
                                     strict=True):
                r["segmentation"] = seg
                if a != ba:
                    del r["bbox"]
        return rows


def load_dets(dets, image_ids=None, *, iou_type: str = "bbox", gt=None) -> Detections:
    """Read detections from any supported form.

    * a path to a COCO results json, or a COCO results list of dicts
      ``{image_id, category_id, bbox: [x, y, w, h], score}`` (with ``iou_type="segm"``, each
      with a ``segmentation``: compressed or uncompressed RLE, or polygons; ``bbox`` is then
      optional);
    * a ``pycocotools`` ``COCO`` object made by ``loadRes``;
    * torchvision outputs: a list of dicts with ``boxes`` (xyxy), ``labels``, ``scores``
      (tensors or arrays) and, for masks, ``masks``, one per image, with ``image_ids`` giving
      each image's id;
    * a dict of columns ``{"image_id", "category_id", "score", "box"}`` (boxes
      ``[x, y, w, h]``; boxes only), or a dict with the results list under ``annotations``;
    * a :class:`Detections` (returned unchanged).

    Parameters
    ----------
    dets : str, Path, list of dict, dict, pycocotools COCO or Detections
        The detections, in one of the forms above.
    image_ids : array-like of int of shape (n_outputs,) or None, default=None
        The image id of each torchvision output; needed for torchvision outputs only.
    iou_type : {"bbox", "segm"}, default="bbox"
        ``"segm"`` also reads the masks (and needs one on every detection).
    gt : GroundTruth, str, Path or dict, or None, default=None
        Read with ``iou_type="segm"`` only, for its image sizes: polygon masks need their
        image's height and width, and masks are checked against the image sizes where
        given.

    Returns
    -------
    Detections
        One row per detection, in the order given (the "file order" that breaks score
        ties).

    Raises
    ------
    ValueError, TypeError
        An input of another form, or an invalid item (the message names it and the fix).
    """
    iou_type = _check_iou_type(iou_type, "load_dets")
    sizes = None
    if gt is not None and iou_type == "segm":
        g = load_gt(gt, iou_type="bbox") if not isinstance(gt, GroundTruth) else gt
        sizes = (g.image_ids, g.image_height, g.image_width)
    if isinstance(dets, Detections):
        if iou_type == "segm" and dets.mask is None:
            raise ValueError("dets has no masks; mask IoU needs detections read with "
                             "iou_type='segm' (a segmentation per result, or torchvision "
                             "outputs with masks).")
        return dets
    if isinstance(dets, (str, Path)):
        return _read_results_file(dets, iou_type, sizes)
    use_area = False
    if hasattr(dets, "dataset") and hasattr(dets, "getAnnIds"):
        dets = dets.dataset.get("annotations", [])
        use_area = True  # loadRes decided each result's area already
    if isinstance(dets, dict) and "box" in dets and "score" in dets:  # columns
        if iou_type == "segm":
            raise ValueError("dets columns hold boxes only; mask IoU needs results with "
                             "segmentations.")
        return Detections.from_arrays(dets["image_id"], dets["category_id"], dets["score"],
                                      dets["box"])
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
        return from_torchvision(dets, image_ids, iou_type=iou_type)
    if len(dets) == 0:
        return _empty_dets(iou_type == "segm")
    typ = list[_ResultSegm] if iou_type == "segm" else list[_Result]
    items = _convert(list(dets), typ, "dets")
    cols = _result_columns(items, "dets", 0, sizes)
    d = Detections(*cols)
    if use_area and all(isinstance(x, dict) and "area" in x for x in dets):
        area = np.array([x["area"] for x in dets], np.float64)
        d = Detections(d.image_id, d.category_id, d.score, d.box, d.mask, area)
    return d


def from_torchvision(outputs, image_ids, *, iou_type: str = "bbox") -> Detections:
    """Detections from torchvision detection outputs.

    Parameters
    ----------
    outputs : list of dict
        One dict per image with ``boxes`` of shape (n_i, 4) in ``[x1, y1, x2, y2]``,
        ``labels`` of shape (n_i,) (integers) and ``scores`` of shape (n_i,) (in [0, 1]),
        as tensors or arrays; with ``iou_type="segm"`` also ``masks`` of shape
        (n_i, 1, H, W) (Mask R-CNN's mask probabilities, or booleans; (n_i, H, W) works too).
    image_ids : array-like of shape (len(outputs),)
        The image id of each output.
    iou_type : {"bbox", "segm"}, default="bbox"
        ``"segm"``: each mask is thresholded at 0.5 (``mask > 0.5``) and encoded as a
        compressed RLE, as torchvision's COCO evaluation (``prepare_for_coco_segmentation``)
        does; the detection's ``area`` is then its mask's, as pycocotools gives results
        without a box (torchvision writes none for masks).

    Returns
    -------
    Detections
        The outputs' detections, output by output, with boxes converted to
        ``[x, y, w, h]``.

    Raises
    ------
    ValueError, TypeError
        A missing key, a wrong shape, non-integer labels (1.7, NaN) or scores outside
        [0, 1]; the message names the field and the output index.
    """
    segm = _check_iou_type(iou_type, "from_torchvision") == "segm"
    ids = _int_column(image_ids, "image_ids")
    if len(ids) != len(outputs):
        raise ValueError(f"image_ids has {len(ids)} entries but there are {len(outputs)} outputs.")
    boxes, labels, scores, img, masks = [], [], [], [], []
    for k, (out, image_id) in enumerate(zip(outputs, ids, strict=False)):
        if not isinstance(out, dict) or not {"boxes", "labels", "scores"} <= set(out):
            raise ValueError(
                f"outputs[{k}] must be a dict with boxes, labels and scores (torchvision's "
                f"detection output); got {type(out).__name__}"
                + (f" with keys {sorted(out)}" if isinstance(out, dict) else "") + "."
            )
        where = f"outputs[{k}]"
        b = np.asarray(_to_numpy(out["boxes"], name=f"{where}['boxes']"), dtype=np.float64)
        if b.size == 0 and b.ndim <= 2:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"{where}['boxes'] must have shape (n, 4) of [x1, y1, x2, y2]; "
                             f"got shape {b.shape}.")
        n = len(b)
        lab = np.asarray(_to_numpy(out["labels"], name=f"{where}['labels']"))
        s = np.asarray(_to_numpy(out["scores"], name=f"{where}['scores']"))
        for field_name, arr in (("labels", lab), ("scores", s)):
            if arr.shape != (n,):
                raise ValueError(f"{where}['{field_name}'] must have shape ({n},) like its "
                                 f"{n} boxes; got shape {arr.shape}.")
        if lab.size and not np.issubdtype(lab.dtype, np.integer):
            if lab.dtype == bool or not np.issubdtype(lab.dtype, np.number):
                raise TypeError(f"{where}['labels'] must hold integer category ids; got dtype "
                                f"{lab.dtype}.")
            bad = ~np.isfinite(lab) | (lab != np.round(lab))
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{where}['labels'] must hold integer category ids; entry {j} "
                                 f"is {lab[j]!r}.")
        if s.size and (s.dtype == bool or not np.issubdtype(s.dtype, np.number)):
            raise TypeError(f"{where}['scores'] must hold real numbers in [0, 1]; got dtype "
                            f"{s.dtype}.")
        s = s.astype(np.float64)
        _check_scores(s, f"{where}['scores']")
        if not np.isfinite(b).all():
            j = int(np.flatnonzero(~np.isfinite(b).all(axis=1))[0])
            raise ValueError(f"{where}['boxes'] row {j} has NaN or infinite coordinates: "
                             f"{b[j].tolist()}.")
        if segm:
            masks.append(_torchvision_masks(out, n, where))
        boxes.append(b)
        labels.append(lab.astype(np.int64))
        scores.append(s)
        img.append(np.full(n, image_id, np.int64))
    box = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    d = Detections.from_arrays(
        np.concatenate(img) if img else np.zeros(0, np.int64),
        np.concatenate(labels) if labels else np.zeros(0, np.int64),
        np.concatenate(scores) if scores else np.zeros(0),
        box,
        box_format="xyxy",
    )
    if not segm:
        return d
    mask = Masks.concatenate(masks)
    return Detections(d.image_id, d.category_id, d.score, d.box, mask, mask.area())


def _torchvision_masks(out: dict, n: int, where: str) -> Masks:
    """The masks of one torchvision output, thresholded at 0.5 and RLE-encoded."""
    if "masks" not in out:
        raise ValueError(f"{where} has no 'masks'; iou_type='segm' needs Mask R-CNN outputs "
                         "with masks of shape (n, 1, H, W).")
    m = np.asarray(_to_numpy(out["masks"], name=f"{where}['masks']"))
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3 or m.shape[0] != n:
        raise ValueError(f"{where}['masks'] must have shape ({n}, 1, H, W) like its {n} boxes; "
                         f"got shape {m.shape}.")
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.number):
            raise TypeError(f"{where}['masks'] must hold probabilities or booleans; got dtype "
                            f"{m.dtype}.")
        if m.size and not np.all(np.isfinite(m)):
            raise ValueError(f"{where}['masks'] contains NaN or infinite values.")
        m = m > 0.5
    return encode_binary_masks(m)


def netcal_npz_to_coco(dets_npz, gt_npz) -> tuple[dict, list[dict]]:
    """Convert the netcal detection records to a COCO ground-truth dict and a results list.

    The records hold boxes as normalised ``[ymin, xmin, ymax, xmax]``; the COCO boxes are
    ``[xmin, ymin, xmax - xmin, ymax - ymin]`` in the same normalised units, and every image
    gets ``width = height = 1``. The records carry no crowd flags, so every ground-truth box
    is a regular one (``iscrowd = 0``); categories are the ids that occur.

    Parameters
    ----------
    dets_npz : str, Path or mapping of arrays
        The detection records (``*_coco_val2017_dets.npz``): ``image_ids``,
        ``det_image_index``, ``det_boxes_yxyx_norm``, ``det_category_ids``,
        ``det_scores``.
    gt_npz : str, Path or mapping of arrays
        The ground-truth records (``coco_val2017_gt_boxes.npz``): ``image_ids``,
        ``gt_image_index``, ``gt_boxes_yxyx_norm``, ``gt_category_ids``.

    Returns
    -------
    gt : dict
        A COCO ground-truth dict (``images``, ``annotations``, ``categories``).
    results : list of dict
        A COCO results list ``{image_id, category_id, bbox, score}``.
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


# ---- typed schema of the COCO json (msgspec): the decoder is the validator

_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Box = tuple[float, float, float, float]
_Crowd = Union[bool, Literal[0, 1]]  # noqa: UP007 (msgspec reads the Union)


class _Result(msgspec.Struct, gc=False):
    image_id: _Int64
    category_id: _Int64
    bbox: _Box
    score: _Score


class _ResultSegm(msgspec.Struct, gc=False, kw_only=True):
    # a mask result: the segmentation is checked by calibkit.detection.masks; the box is
    # optional (pycocotools then takes the mask's box and area)
    image_id: _Int64
    category_id: _Int64
    score: _Score
    segmentation: SEGMENTATION
    bbox: Union[_Box, None] = None  # noqa: UP007


class _ResultSegmAny(msgspec.Struct, gc=False, kw_only=True):
    # the same, the segmentation untyped: what the typed decoder refuses (bytes counts of
    # in-memory RLEs, malformed masks) is read this way and checked (and named) by
    # calibkit.detection.masks
    image_id: _Int64
    category_id: _Int64
    score: _Score
    segmentation: Any
    bbox: Union[_Box, None] = None  # noqa: UP007


class _Image(msgspec.Struct, gc=False):
    id: _Int64
    width: Union[float, None] = None  # noqa: UP007
    height: Union[float, None] = None  # noqa: UP007
    # LVIS's federated labels
    neg_category_ids: Union[list[_Int64], None] = None  # noqa: UP007
    not_exhaustive_category_ids: Union[list[_Int64], None] = None  # noqa: UP007


class _Category(msgspec.Struct, gc=False):
    id: _Int64
    name: Any = None
    frequency: Any = None  # LVIS: "r", "c" or "f" (checked where it is used)


class _Annotation(msgspec.Struct, gc=False):
    image_id: _Int64
    category_id: _Int64
    bbox: _Box
    iscrowd: _Crowd = 0
    area: Union[float, None] = None  # noqa: UP007
    ignore: _Crowd = 0


class _AnnotationSegm(msgspec.Struct, gc=False, kw_only=True):
    image_id: _Int64
    category_id: _Int64
    bbox: Union[_Box, None] = None  # noqa: UP007
    iscrowd: _Crowd = 0
    area: Union[float, None] = None  # noqa: UP007
    ignore: _Crowd = 0
    segmentation: Union[SEGMENTATION, None] = None  # noqa: UP007


class _AnnotationSegmAny(msgspec.Struct, gc=False, kw_only=True):
    image_id: _Int64
    category_id: _Int64
    bbox: Union[_Box, None] = None  # noqa: UP007
    iscrowd: _Crowd = 0
    area: Union[float, None] = None  # noqa: UP007
    ignore: _Crowd = 0
    segmentation: Any = None


class _GtDoc(msgspec.Struct, gc=False):
    images: list[_Image]
    annotations: list[_Annotation]
    categories: list[_Category]


class _GtDocSegm(msgspec.Struct, gc=False):
    images: list[_Image]
    annotations: list[_AnnotationSegm]
    categories: list[_Category]


class _GtDocSegmAny(msgspec.Struct, gc=False):
    images: list[_Image]
    annotations: list[_AnnotationSegmAny]
    categories: list[_Category]


class _ResultsDoc(msgspec.Struct, gc=False):
    annotations: list[_Result]


class _ResultsDocSegm(msgspec.Struct, gc=False):
    annotations: list[_ResultSegm]


class _ResultsDocSegmAny(msgspec.Struct, gc=False):
    annotations: list[_ResultSegmAny]


#: the untyped-segmentation schema tried when the typed one refuses an input
_FALLBACK = {_GtDocSegm: _GtDocSegmAny, _ResultsDocSegm: _ResultsDocSegmAny,
             list[_ResultSegm]: list[_ResultSegmAny]}


_FIXES = {
    "image_id": "ids must be JSON integers within int64 (not 1.5, \"1\" or true)",
    "category_id": "ids must be JSON integers within int64 (not 1.5, \"1\" or true)",
    "id": "ids must be JSON integers within int64 (not 1.5, \"1\" or true)",
    "iscrowd": "iscrowd must be 0, 1, true or false",
    "ignore": "ignore must be 0, 1, true or false",
    "neg_category_ids": "LVIS's neg_category_ids must be a list of integer category ids",
    "not_exhaustive_category_ids": "LVIS's not_exhaustive_category_ids must be a list of "
                                   "integer category ids",
    "score": "scores must be real numbers in [0, 1], not NaN, strings or booleans (apply a "
             "sigmoid or softmax to logits first)",
    "bbox": "bbox must be [x, y, w, h]: 4 numbers",
    "area": "area must be a number",
    "width": "width must be a number",
    "height": "height must be a number",
}
_PATH = re.compile(r"\$((?:\.\w+|\[\d+\])*)")


def _explain(exc: Exception, name: str, offset: int = 0) -> ValueError:
    """A ValueError naming the input, the item (shifted by ``offset`` for block-wise
    decoding) and the fix, from a msgspec error."""
    msg = str(exc)
    where = ""
    fix = ""
    m = _PATH.search(msg)
    if m:
        parts = re.findall(r"\.(\w+)|\[(\d+)\]", m.group(1))
        names = [f for f, _ in parts if f]
        idx = [int(i) for _, i in parts if i]
        if idx and offset and not names[:1] == ["annotations"]:
            idx[0] += offset
        where = m.group(1)
        if offset and where.startswith("["):
            where = re.sub(r"^\[\d+\]", f"[{idx[0]}]", where)
            msg = msg[:m.start(1)] + where + msg[m.end(1):]
        field_name = names[-1] if names else ""
        if "missing required field" in msg:
            field_name = re.search(r"`(\w+)`", msg).group(1)
        fix = _FIXES.get(field_name, "")
    if name == "dets" and ("missing required field" in msg or "Expected `object`" in msg):
        fix = ("dets is not a COCO results list (each item needs image_id, category_id, bbox "
               "[x, y, w, h] and score)")
    text = f"{name}: {msg}" + (f" (item {where})" if where and "at `$" not in msg else "")
    return ValueError(f"{text}. {fix}." if fix else f"{text}.")


def _convert(obj, typ, name: str):
    """msgspec's strict conversion of in-memory json values (numpy scalars accepted; a mask
    schema falls back to its untyped segmentation)."""
    try:
        return msgspec.convert(obj, typ)
    except msgspec.ValidationError as exc:
        fallback = _FALLBACK.get(typ)
        if fallback is not None:
            return _convert(obj, fallback, name)
        if "numpy" not in str(exc) and "got `" not in str(exc):
            raise _explain(exc, name) from None
        try:
            return msgspec.convert(_plain(obj), typ)
        except msgspec.ValidationError as exc2:
            raise _explain(exc2, name) from None


def _plain(obj):
    """numpy scalars and arrays to plain Python values (ints stay ints)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.bool_, np.integer, np.floating)):
        return obj.item()
    return obj


def _decode_file(path, typ, name: str):
    path, f = open_user_file(path, name)
    with f:
        try:
            raw = f.read()
        except (OSError, EOFError) as exc:
            raise ValueError(f"{name}: {path} cannot be read: {exc}.") from exc
    try:
        return msgspec.json.decode(raw, type=typ)
    except msgspec.ValidationError as exc:
        if typ in _FALLBACK:
            return _decode_raw(raw, _FALLBACK[typ], name, path)
        raise _explain(exc, f"{name} {path}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"{name}: {path} is not valid json: {exc}.") from None


def _decode_raw(raw, typ, name: str, path):
    try:
        return msgspec.json.decode(raw, type=typ)
    except msgspec.ValidationError as exc:
        raise _explain(exc, f"{name} {path}") from None


#: bytes read at a time from a results file
_BLOCK = 1 << 23
_JSON_WS = b" \t\r\n"


def _read_results_file(path, iou_type: str = "bbox", sizes=None) -> Detections:
    """A COCO results file (a json list of result dicts, or an object with
    ``annotations``) into columns, block by block (see the module docstring); with
    ``iou_type="segm"`` each block's masks are converted to compact RLEs before the next
    block is read."""
    try:
        return _read_results_blocks(path, iou_type, sizes)
    except (OSError, EOFError) as exc:  # a damaged or truncated gzip stream, a read error
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"dets: {path} cannot be read ({exc}); the file may be truncated or "
                         "damaged.") from exc


class _Columns:
    """Growing result columns (image_id, category_id, score, box, area), filled in place so
    that reading never holds two copies of them, and the masks block by block."""

    def __init__(self):
        self.capacity = 0
        self.n = 0
        self.arrays = None
        self.masks = []

    def _new_arrays(self, capacity: int) -> list:
        return [np.empty(capacity, np.int64), np.empty(capacity, np.int64),
                np.empty(capacity), np.empty((capacity, 4)), np.empty(capacity)]

    def reserve(self, capacity: int) -> None:
        old = self.arrays
        self.arrays = self._new_arrays(capacity)
        if old is not None:
            for new, a in zip(self.arrays, old, strict=True):
                new[: self.n] = a[: self.n]
        self.capacity = capacity

    def columns(self) -> list:
        """image_id, category_id, score, box, area of the rows filled."""
        n = self.n
        if n < 0.9 * self.capacity:  # much too large (a gzip file): give the memory back
            return [a[:n].copy() for a in self.arrays[:5]]
        return [a[:n] for a in self.arrays[:5]]

    def append(self, parts) -> None:
        img, cat, score, box, mask, area = parts
        cols = (img, cat, score, box, area)
        k = len(cols[0])
        if self.n + k > self.capacity:
            self.reserve(max(int(self.capacity * 1.25), self.n + k))
        for arr, part in zip(self.arrays, cols, strict=True):
            arr[self.n: self.n + k] = part
        if mask is not None:
            self.masks.append(mask)
        self.n += k

    def result(self):
        cols = self.columns()
        mask = Masks.concatenate(self.masks) if self.masks else None
        return cols[:4] + [mask, cols[4]]


# statuses of calibkit.detection._ckernels.parse_results
_PARSE_MORE, _PARSE_END, _PARSE_FULL, _PARSE_UNSUPPORTED, _PARSE_STOP = range(5)
#: the shortest item of the plain forms, ``{"image_id":0,"category_id":0,"bbox":[0,0,0,0],
#: "score":0}`` is 56 bytes (a mask result is longer): a range of b bytes holds at most
#: b // 50 + 1 items
_MIN_ITEM_BYTES = 50
#: data a block must hold to be parsed by several threads
_PARALLEL_BYTES = 1 << 20


def _read_plain_results(path, iou_type: str = "bbox", sizes=None) -> Detections | None:
    """A results file in the plain form by the compiled reader, block by block into the
    columns (each large block split between threads at item boundaries): a json list of
    ``{"image_id", "category_id", "bbox", "score"}``, or with ``iou_type="segm"`` of
    ``{"image_id", "category_id", "score", "segmentation": {"size": [h, w], "counts":
    str}}`` with an optional ``bbox``. None when the file is in another form (or not valid,
    or a mask is not a well-formed compressed RLE of its image's size), which msgspec then
    reads (and words)."""
    path, f = open_user_file(path, "dets")
    with f:
        dets = _PlainReader(f, path.stat().st_size, iou_type == "segm").read()
    if dets is None or dets.mask is None:
        return dets
    return _finish_masks(dets, f"dets {path}", sizes)


def _finish_masks(dets: Detections, label: str, sizes) -> Detections | None:
    """The check of the typed path on mask results read by the compiled reader that the
    parser leaves (masks of their images' sizes), and the box and area of the masks of
    results without a box (pycocotools' ``toBbox`` and ``area``)."""
    from calibkit.detection import _ckernels

    masks = dets.mask  # its strings were checked by the parser (as _check_counts does)
    hts, wds = _image_sizes(dets.image_id, sizes)
    try:
        _check_mask_sizes(masks, hts, wds, label)
    except ValueError:
        return None
    no_box = np.flatnonzero(dets.area < 0)
    if len(no_box):
        from calibkit._chunks import run_ranges

        run_ranges(partial(_ckernels.rle_box_area, masks.counts, masks.offsets, masks.size,
                           no_box, dets.box, dets.area), np.ones(len(no_box)))
    return dets


def _image_sizes(img: np.ndarray, sizes):
    """Height and width of each detection's image (``sizes``: the ground truth's image ids,
    heights and widths, or None), NaN where unknown."""
    n = len(img)
    if sizes is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    ids, hts, wds = sizes
    if not len(ids):
        return np.full(n, np.nan), np.full(n, np.nan)
    pos = np.clip(np.searchsorted(ids, img), 0, len(ids) - 1)
    known = ids[pos] == img
    return np.where(known, hts[pos], np.nan), np.where(known, wds[pos], np.nan)


class _PlainColumns(_Columns):
    """Columns of the compiled reader: :class:`_Columns`' five and, for masks, each mask's
    size and end offset in ``counts`` (the strings, ``c`` bytes used); without masks those
    two are empty."""

    def __init__(self, segm: bool):
        super().__init__()
        self.segm = segm
        self.counts = np.zeros(0, np.uint8)
        self.c = 0

    def _new_arrays(self, capacity: int) -> list:
        rows = capacity if self.segm else 0
        return super()._new_arrays(capacity) + [np.empty((rows, 2), np.int64),
                                                 np.empty(rows, np.int64)]

    def room(self, nbytes: int) -> None:
        """Room for ``nbytes`` more bytes of mask strings."""
        if self.segm and len(self.counts) < self.c + nbytes:
            new = np.empty(max(self.c + nbytes, int(len(self.counts) * 1.25)), np.uint8)
            new[: self.c] = self.counts[: self.c]
            self.counts = new

    def call(self, data, pos, first, eof, stop=-1):
        """Arguments of ``parse_results`` that write from row ``n`` and string byte ``c``."""
        return (data, pos, first, eof, *self.arrays[:5], self.n, stop, self.segm,
                *self.arrays[5:], self.counts, self.c)

    def detections(self) -> Detections:
        n = self.n
        mask = None
        if self.segm:
            offsets = np.zeros(n + 1, np.int64)
            offsets[1:] = self.arrays[6][:n]
            mask = Masks(self.counts[: self.c], offsets, self.arrays[5][:n].copy())
        img, cat, score, box, area = self.columns()
        return Detections(img, cat, score, box, mask, area)


class _PlainReader:
    """The block loop of :func:`_read_plain_results`: ``buf[:filled]`` holds the data read
    and not yet parsed from ``pos`` on (``first``: an item starts at ``pos``)."""

    def __init__(self, f, size: int, segm: bool):
        from calibkit._chunks import kernel_threads

        self.f = f
        self.size = size
        self.segm = segm
        self.buf = bytearray(_BLOCK)
        self.filled = 0
        self.eof = False
        self.cols = _PlainColumns(segm)
        self.threads = kernel_threads()
        self.spare = []  # the columns of the threads after the first, reused block to block

    def fill(self) -> None:
        """Read up to a full buffer (doubled when one item fills it)."""
        if self.filled == len(self.buf):
            self.buf.extend(bytes(len(self.buf)))
        with memoryview(self.buf) as mv:
            k = self.f.readinto(mv[self.filled:])
        self.filled += k
        self.eof = k == 0

    def read(self) -> Detections | None:
        self.fill()
        while True:  # up to the list's opening bracket
            head = self.buf[: self.filled].lstrip(_JSON_WS)
            if head or self.eof:
                break
            self.filled = 0
            self.fill()
        if head[:1] != b"[":
            return None
        pos, first = self.filled - len(head) + 1, True
        cols = self.cols
        cols.reserve(min(self.size // 40 + 1024, 1 << 16))
        if self.segm:  # the strings are part of the file: its size bounds them (unless
            # gzip); pages never written are never resident
            cols.counts = np.empty(self.size + 1024, np.uint8)
        sized = False
        while True:
            n_before = cols.n
            status, pos, first = self.parse(pos, first)
            if not sized and cols.n > n_before:  # the first items give the size of one
                per_item = max(pos / (cols.n - n_before), 16.0)
                cols.reserve(max(int(self.size / per_item * 1.05) + 1024, cols.n + 1))
                sized = True
            if status == _PARSE_FULL:
                cols.reserve(int(cols.capacity * 1.25) + 1024)
            elif status == _PARSE_UNSUPPORTED:  # msgspec reads it, or words the error
                return None
            elif status == _PARSE_END:  # only whitespace may follow
                if (self.buf[pos + 1: self.filled].strip(_JSON_WS)
                        or (not self.eof and self.f.read().strip(_JSON_WS))):
                    return None
                break
            else:  # _PARSE_MORE: keep the unparsed tail, read on
                tail = self.filled - pos
                self.buf[:tail] = self.buf[pos: self.filled]
                self.filled, pos = tail, 0
                self.fill()
        if cols.n == 0:
            return _empty_dets(self.segm)
        # every number is finite and every width and height >= 0 (the parser leaves other
        # files to the typed decoder)
        return cols.detections()

    def parse(self, pos: int, first: bool):
        """Parse ``buf[pos:filled]`` into the columns: on several threads when it is large
        (each from an item boundary found by ``next_item``; the ranges must meet exactly,
        else the block is parsed again on one thread), else on this one."""
        from calibkit.detection import _ckernels

        cols = self.cols
        with memoryview(self.buf) as mv, mv[: self.filled] as data:
            length = self.filled - pos
            if self.threads > 1 and length >= _PARALLEL_BYTES:
                done = self._parse_parallel(data, pos, first, length)
                if done is not None:
                    return done
            cols.room(length)
            status, k, nxt, nxt_first, c = _ckernels.parse_results(
                *cols.call(data, pos, first, self.eof))
        cols.n += k
        cols.c = c
        return status, nxt, nxt_first

    def _parse_parallel(self, data, pos: int, first: bool, length: int):
        from calibkit._chunks import run_tasks
        from calibkit.detection import _ckernels

        starts = [pos]
        for i in range(1, self.threads):
            b = _ckernels.next_item(data, pos + i * length // self.threads)
            if b < 0 or b <= starts[-1]:
                break
            starts.append(b)
        if len(starts) == 1:
            return None
        ends = starts[1:] + [self.filled]
        cols = self.cols
        need = cols.n + (ends[0] - pos) // _MIN_ITEM_BYTES + 2
        if need > cols.capacity:
            cols.reserve(max(need, int(cols.capacity * 1.25)))
        cols.room(ends[0] - pos)
        while len(self.spare) < len(starts) - 1:
            self.spare.append(_PlainColumns(self.segm))
        calls = [partial(_ckernels.parse_results, *cols.call(data, pos, first, False,
                                                             starts[1]))]
        for i in range(1, len(starts)):
            spare = self.spare[i - 1]
            spare.n = spare.c = 0
            rows = (ends[i] - starts[i]) // _MIN_ITEM_BYTES + 2
            if spare.capacity < rows:
                spare.reserve(rows)
            spare.room(ends[i] - starts[i])
            last = i == len(starts) - 1
            calls.append(partial(_ckernels.parse_results, *spare.call(
                data, starts[i], True, self.eof and last, -1 if last else starts[i + 1])))
        out = run_tasks(calls)
        # every range but the last must stop exactly where the next one started
        for (status, _, nxt, _, _), start in zip(out[:-1], starts[1:], strict=True):
            if status != _PARSE_STOP or nxt != start:
                return None
        if out[-1][0] not in (_PARSE_MORE, _PARSE_END):
            return None
        total = cols.n + sum(r[1] for r in out)
        if total > cols.capacity:
            cols.reserve(max(total, int(cols.capacity * 1.25)))
        cols.n += out[0][1]
        cols.c = out[0][4]
        for spare, (_, k, _, _, c) in zip(self.spare, out[1:], strict=False):
            for dst, src in zip(cols.arrays[:5], spare.arrays[:5], strict=True):
                dst[cols.n: cols.n + k] = src[:k]
            if self.segm:
                cols.room(c)
                cols.counts[cols.c: cols.c + c] = spare.counts[:c]
                cols.arrays[5][cols.n: cols.n + k] = spare.arrays[5][:k]
                cols.arrays[6][cols.n: cols.n + k] = spare.arrays[6][:k] + cols.c
                cols.c += c
            cols.n += k
        status, _, nxt, nxt_first, _ = out[-1]
        return status, nxt, nxt_first


def _read_results_blocks(path, iou_type: str, sizes) -> Detections:
    name = "dets"
    fast = _read_plain_results(path, iou_type, sizes)
    if fast is not None:
        return fast
    segm = iou_type == "segm"
    path, f = open_user_file(path, name)
    label = f"{name} {path}"
    decoder = msgspec.json.Decoder(list[_ResultSegm] if segm else list[_Result])
    fallback = msgspec.json.Decoder(list[_ResultSegmAny]) if segm else None
    size = path.stat().st_size
    cols = _Columns()
    offset = 0  # items decoded so far
    with f:
        pending = bytearray()
        while True:  # skip leading whitespace
            block = f.read(_BLOCK)
            pending += block
            stripped = pending.lstrip()
            if stripped or not block:
                break
        if not stripped:
            raise ValueError(f"{name}: {path} is empty; a results file is a json list.")
        if stripped[:1] != b"[":
            # an object (e.g. {"annotations": [...]}): decode it whole
            pending += f.read()
            typ = _ResultsDocSegm if segm else _ResultsDoc
            try:
                doc = msgspec.json.decode(pending, type=typ)
            except msgspec.ValidationError as exc:
                if typ not in _FALLBACK:
                    raise _explain(exc, label) from None
                try:
                    doc = msgspec.json.decode(pending, type=_FALLBACK[typ])
                except msgspec.ValidationError as exc2:
                    raise _explain(exc2, label) from None
            except msgspec.DecodeError as exc:
                raise ValueError(f"{name}: {path} is not valid json: {exc}.") from None
            return Detections(*_result_columns(doc.annotations, label, 0, sizes)) if (
                doc.annotations) else _empty_dets(segm)
        pending = bytearray(stripped)
        eof = False
        while True:
            cut, end = _find_cut(pending, eof)
            if cut > 0:
                items = _decode_items(decoder, pending, cut, label, offset, fallback)
                if items is None:  # the quick cut was not between items: scan exactly
                    cut, end = _scan_cut(pending)
                    if cut <= 0 and eof:
                        raise ValueError(f"{name}: {path} is not valid json: the list is not "
                                         "closed (truncated file?).")
                    items = _decode_items(decoder, pending, cut, label, offset,
                                          fallback) if cut > 0 else []
                    if items is None:
                        raise ValueError(f"{name}: {path} is not valid json near item "
                                         f"{offset}.")
                if items:
                    if cols.capacity == 0:  # first block: size the columns from the file
                        per_item = max((cut + 1) / len(items), 16.0)
                        cols.reserve(int(size / per_item * 1.05) + 1024)
                    cols.append(_result_columns(items, label, offset, sizes))
                    offset += len(items)
                del items
                if end:
                    break
                if cut > 0:
                    pending[cut] = 0x2C  # ","
                    del pending[:cut]
            elif eof:
                raise ValueError(f"{name}: {path} is not valid json: the list is not closed "
                                 "(truncated file?).")
            block = f.read(_BLOCK)
            if not block:
                eof = True
            pending += block
    if offset == 0:
        return _empty_dets(segm)
    return Detections(*cols.result())


def _find_cut(pending: bytearray, eof: bool):
    """Quick cut of a results list after its last complete item: at EOF the closing
    bracket, else the comma after the last ``}``. Returns (position, is_end); a position
    that is not between top-level items makes the decode fail, and the caller scans."""
    if eof:
        k = pending.rfind(b"]")
        if k > 0 and not pending[k + 1:].strip():
            return k, True
        return -1, False
    k = pending.rfind(b"}")
    while k > 0:
        j = k + 1
        while j < len(pending) and pending[j] in b" \t\r\n":
            j += 1
        if j < len(pending) and pending[j] == 0x2C:
            return j, False
        k = pending.rfind(b"}", 0, k)
    return -1, False


def _scan_cut(pending: bytearray):
    """Exact cut: the last top-level comma or the closing bracket (string-aware scan)."""
    from calibkit.detection import _kernels

    pending[0] = 0x5B
    view = np.frombuffer(pending, np.uint8)
    last, end, _, _, _ = _kernels.json_split(view, 0, 0, False, False)
    del view
    if end >= 0:
        if pending[end + 1:].strip():
            raise ValueError("dets: the json has extra data after the results list.")
        return end, True
    return last, False


def _decode_items(decoder, pending: bytearray, cut: int, label: str, offset: int,
                  fallback=None):
    """Decode ``pending[0:cut+1]`` as a list (the separator at 0 and the byte at ``cut``
    written as brackets), with ``fallback`` when ``decoder`` refuses the items; None if it
    is not well-formed json."""
    pending[0] = 0x5B  # "["
    saved = pending[cut]
    pending[cut] = 0x5D  # "]"
    try:
        with memoryview(pending) as mv, mv[: cut + 1] as part:
            try:
                return decoder.decode(part)
            except msgspec.ValidationError:
                if fallback is None:
                    raise
                return fallback.decode(part)
    except msgspec.ValidationError as exc:
        raise _explain(exc, label, offset) from None
    except msgspec.DecodeError:
        return None
    finally:
        pending[cut] = saved


def _result_columns(items, label: str, offset: int = 0, sizes=None):
    """Columns (image_id, category_id, score, box, mask, area) of decoded results, boxes and
    masks checked. Mask results (``_ResultSegm``) without a box get the box around the mask
    and the mask's area, as pycocotools' ``loadRes`` does."""
    n = len(items)
    img = np.fromiter(map(attrgetter("image_id"), items), np.int64, count=n)
    cat = np.fromiter(map(attrgetter("category_id"), items), np.int64, count=n)
    score = np.fromiter(map(attrgetter("score"), items), np.float64, count=n)
    boxes = list(map(attrgetter("bbox"), items))
    mask = None
    no_box = None
    if n and isinstance(items[0], (_ResultSegm, _ResultSegmAny)):
        segs = list(map(attrgetter("segmentation"), items))
        hts, wds = _image_sizes(img, sizes)
        labels = range(offset, offset + n)
        mask = segmentations_to_masks(segs, hts, wds, name=label, labels=labels)
        del segs
        _check_mask_sizes(mask, hts, wds, label, labels)
        no_box = np.fromiter((b is None for b in boxes), bool, count=n)
        if no_box.any():
            it = iter(mask.subset(no_box).to_bbox().tolist())
            boxes = [next(it) if b is None else b for b in boxes]
    box = _boxes_from_tuples(boxes)
    _check_boxes(box, f"{label} bbox", offset)
    area = box[:, 2] * box[:, 3]
    if no_box is not None and no_box.any():
        area[no_box] = mask.subset(no_box).area()
    return img, cat, score, box, mask, area


def _empty_dets(with_masks: bool = False) -> Detections:
    return Detections(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                      np.zeros((0, 4)), Masks.empty() if with_masks else None)


def _boxes_from_tuples(boxes: list) -> np.ndarray:
    n = len(boxes)
    if n == 0:
        return np.zeros((0, 4))
    flat = np.fromiter(itertools.chain.from_iterable(boxes), np.float64, count=4 * n)
    return flat.reshape(n, 4)


def _npz(x):
    if isinstance(x, (str, Path)):
        with np.load(x, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    return x


def _check_boxes(box: np.ndarray, name: str, offset: int = 0) -> None:
    finite = np.isfinite(box).all(axis=1)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{name} contains NaN or infinite coordinates (first at row {k + offset}: "
            f"{box[k].tolist()}); boxes must be 4 finite numbers [x, y, w, h]."
        )
    neg = (box[:, 2] < 0) | (box[:, 3] < 0)
    if np.any(neg):
        k = int(np.flatnonzero(neg)[0])
        raise ValueError(
            f"{name}: {int(neg.sum())} box(es) have negative width or height (first at row "
            f"{k + offset}: {box[k].tolist()}); boxes must be [x, y, w, h] with w, h >= 0 "
            "(convert [x1, y1, x2, y2] boxes first)."
        )


def _check_iou_type(iou_type, owner: str) -> str:
    from calibkit._validation import Options, check_param

    return check_param(iou_type, "iou_type", [Options(*IOU_TYPES)], owner=owner)


def _check_scores(score: np.ndarray, name: str = "detection scores") -> None:
    from calibkit._validation import check_unit_interval

    check_unit_interval(score, name=name, hint=LOGITS_HINT)


#: what to do about scores outside [0, 1]
LOGITS_HINT = "Apply a sigmoid or softmax to logits first."


def _to_numpy(x, *, name: str):
    # imported on use: the json readers and the evaluators do not need it
    from calibkit._validation import to_numpy

    return to_numpy(x, name=name)


def _int_column(x, name: str) -> np.ndarray:
    arr = np.asarray(_to_numpy(x, name=name))
    if arr.ndim != 1:
        arr = arr.ravel()
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or np.any(arr != np.round(arr)):
            raise TypeError(f"{name} must hold integer ids; got dtype {arr.dtype}.")
    return arr.astype(np.int64)


def _score_column(x) -> np.ndarray:
    s = np.asarray(_to_numpy(x, name="scores"), dtype=np.float64).ravel()
    _check_scores(s)
    return s


def _box_column(x, name: str, box_format: str) -> np.ndarray:
    if box_format not in ("xywh", "xyxy"):
        raise ValueError(f"box_format must be 'xywh' or 'xyxy'; got {box_format!r}.")
    b = np.asarray(_to_numpy(x, name=name), dtype=np.float64)
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
