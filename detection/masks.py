"""Instance masks as compact run-length encodings (pycocotools' compressed RLE).

A :class:`Masks` table holds the masks of a ground truth or of a detection set: the
compressed RLE strings of every mask concatenated into one byte buffer, their offsets and
each mask's ``(height, width)``. That is a few hundred bytes per mask at COCO resolution, and
no Python object per mask; the RLE dicts that ``pycocotools.mask`` takes are built only for
the pairs whose IoU is needed (the candidate pairs of an (image, class) group).

Encoding, conversion and IoU are ``pycocotools.mask``'s (a well-kept library): polygons and
uncompressed RLEs become compressed RLEs exactly as pycocotools' ``COCO.annToRLE`` converts
them (``frPyObjects`` with the image's height and width, the parts of a polygon merged), and
torchvision's mask probabilities are thresholded at 0.5 and encoded with ``mask.encode``, as
torchvision's own COCO evaluation does.

What is checked before pycocotools sees a mask (its C code trusts its input: a compressed
string that ends inside a number is read past its end, runs that do not add up to
``height * width`` give wrong IoUs, or are written past the mask when decoded, and masks of
different sizes get an IoU of -1, i.e. silently never match):

* ``size`` is ``[height, width]``, two integers >= 1 with ``height * width <= 2**29``;
* a compressed ``counts`` is an ASCII string of the characters ``0`` to ``o`` that decodes
  (pycocotools' variable-length code) into runs that are non-negative and add up to
  ``height * width``;
* an uncompressed ``counts`` is a list of non-negative integers adding up to
  ``height * width``;
* a polygon annotation is a non-empty list of polygons, each a list of at least 4 finite
  coordinates ``[x1, y1, x2, y2, ...]`` within ``[-width, 2 width]`` x ``[-height, 2 height]``
  (pycocotools' rasteriser allocates points in proportion to the coordinates), and the image
  needs its ``height`` and ``width``. As in pycocotools, a first polygon of exactly 4 numbers
  makes the whole list read as boxes ``[x, y, w, h]``.

Every error is a ``ValueError`` naming the input, the item and the field.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Union

import msgspec
import numpy as np

__all__ = ["Masks", "segmentations_to_masks", "encode_binary_masks", "RleRecord"]


def pycocotools_mask():
    """``pycocotools.mask``, which every mask operation uses (imported on first use)."""
    try:
        import pycocotools.mask as mask_utils
    except ImportError:
        raise ImportError("instance masks (iou_type='segm') need pycocotools: pip install "
                          "'calibkit[coco]' (or pip install pycocotools).") from None
    return mask_utils


class RleRecord(msgspec.Struct, gc=False):
    """An RLE as the typed json decoder reads it (compressed: ``counts`` a string).

    Other Parameters
    ----------------
    size : tuple of (int, int)
        ``[height, width]`` of the mask.
    counts : str or list of int
        The compressed RLE string, or the run lengths of an uncompressed RLE (column-major,
        zeros first). Not checked here: :func:`segmentations_to_masks` checks it.
    """

    size: tuple[int, int]
    counts: Union[str, list[int]]  # noqa: UP007 (msgspec reads the Union)


#: a COCO ``segmentation`` as the typed json decoder reads it: an RLE or polygons; anything
#: else is decoded untyped and checked by :func:`segmentations_to_masks`
SEGMENTATION = Union[RleRecord, list[list[float]]]  # noqa: UP007

#: largest ``height * width`` of a mask: every run then fits the 6 characters (30 bits) that
#: pycocotools' reader decodes into a 32-bit ``int`` without overflow
MAX_PIXELS = 2**29


@dataclass(frozen=True, eq=False)
class Masks:
    """Compressed RLE masks, one per row of a ground truth or a detection table.

    Build one with :meth:`from_rles`, :func:`segmentations_to_masks` or
    :func:`encode_binary_masks`, which check the strings; the constructor takes the columns
    as they are.

    Attributes
    ----------
    counts : ndarray of shape (n_bytes,), uint8
        The compressed RLE strings of every mask, concatenated.
    offsets : ndarray of shape (n + 1,), int64
        Mask ``i`` is ``counts[offsets[i]:offsets[i + 1]]``.
    size : ndarray of shape (n, 2), int64
        ``[height, width]`` of each mask.
    _buffer : bytes or None, default=None
        ``counts`` as one bytes object, which pycocotools reads; None: made from ``counts``
        on first use (and dropped when the table is pickled).
    """

    counts: np.ndarray
    offsets: np.ndarray
    size: np.ndarray
    _buffer: bytes | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.size)

    @classmethod
    def empty(cls) -> Masks:
        return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64), np.zeros((0, 2), np.int64))

    @classmethod
    def from_rles(cls, rles, *, name: str = "masks") -> Masks:
        """Masks from compressed RLE dicts ``{"size": [h, w], "counts": str or bytes}``
        (checked: see the module docstring).

        Parameters
        ----------
        rles : sequence of dict
            One compressed RLE per mask.
        name : str, default="masks"
            What the items are, named in error messages (``masks[3]`` for the fourth).

        Returns
        -------
        Masks

        Raises
        ------
        ValueError
            An item that is not a compressed RLE dict, a size that is not two integers
            ``>= 1`` with ``height * width <= 2**29``, or counts that pycocotools would
            misread.
        """
        sizes = np.zeros((len(rles), 2), np.int64)
        strings = []
        for i, r in enumerate(rles):
            h, w, c = _compressed_parts(r, f"{name}[{i}]")
            sizes[i] = h, w
            strings.append(c)
        return _from_strings(strings, sizes, name, list(range(len(rles))))

    def rles(self, rows=None) -> list[dict]:
        """The masks of ``rows`` (all when None) as pycocotools RLE dicts
        ``{"size": [h, w], "counts": bytes}``."""
        idx = np.arange(len(self)) if rows is None else np.asarray(rows).reshape(-1)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        buf = self._bytes()
        lo = self.offsets[idx].tolist()
        hi = self.offsets[idx + 1].tolist()
        sz = self.size[idx].tolist()
        return [{"size": s, "counts": buf[a:b]} for a, b, s in zip(lo, hi, sz, strict=True)]

    def _bytes(self) -> bytes:
        """``counts`` as one bytes object (pycocotools reads bytes), made once."""
        if self._buffer is None:
            object.__setattr__(self, "_buffer", self.counts.tobytes())
        return self._buffer

    def __getstate__(self):  # pickled (Dask) without the cached bytes
        return {"counts": self.counts, "offsets": self.offsets, "size": self.size}

    def __setstate__(self, state):
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_buffer", None)

    def to_coco(self) -> list[dict]:
        """The masks as json-ready RLE dicts ``{"size": [h, w], "counts": str}``."""
        return [{"size": r["size"], "counts": r["counts"].decode("ascii")} for r in self.rles()]

    def subset(self, rows) -> Masks:
        """The masks of ``rows`` (a boolean mask or an index array), a new table."""
        from calibkit.detection import _kernels

        idx = np.arange(len(self))[rows] if not isinstance(rows, slice) else (
            np.arange(len(self))[rows])
        idx = np.asarray(idx, np.int64).reshape(-1)
        lo, hi = self.offsets[idx], self.offsets[idx + 1]
        offsets = np.zeros(len(idx) + 1, np.int64)
        np.cumsum(hi - lo, out=offsets[1:])
        buf = self.counts[_kernels.concat_ranges(lo, hi)].tobytes() if len(idx) else b""
        return Masks(np.frombuffer(buf, np.uint8), offsets, self.size[idx], buf)

    @classmethod
    def concatenate(cls, parts) -> Masks:
        """One table of the masks of ``parts``, in order."""
        parts = list(parts)
        if not parts:
            return cls.empty()
        shift = np.cumsum([0] + [len(p.counts) for p in parts[:-1]])
        offsets = np.concatenate([parts[0].offsets[:1]] + [
            p.offsets[1:] + s for p, s in zip(parts, shift, strict=True)])
        # one bytes object, viewed by ``counts`` and read by pycocotools
        buf = b"".join([np.ascontiguousarray(p.counts).data for p in parts])
        return cls(np.frombuffer(buf, np.uint8), offsets.astype(np.int64),
                   np.concatenate([p.size for p in parts]).reshape(-1, 2), buf)

    def area(self) -> np.ndarray:
        """Foreground pixels of each mask (``pycocotools.mask.area``), float64."""
        mask_utils = pycocotools_mask()

        rles = self.rles()
        # pycocotools 2.0.11's area fails on more than 255 masks at once under numpy 2
        return np.concatenate([np.zeros(0)] + [
            np.asarray(mask_utils.area(rles[k:k + 255]), np.float64)
            for k in range(0, len(rles), 255)])

    def to_bbox(self) -> np.ndarray:
        """Box ``[x, y, w, h]`` around each mask (``pycocotools.mask.toBbox``)."""
        mask_utils = pycocotools_mask()

        if len(self) == 0:
            return np.zeros((0, 4))
        return np.asarray(mask_utils.toBbox(self.rles()), np.float64).reshape(-1, 4)


def segmentations_to_masks(segmentations, heights, widths, *, name: str,
                           labels=None) -> Masks:
    """Masks from COCO ``segmentation`` values, converted as pycocotools' ``annToRLE`` does.

    Parameters
    ----------
    segmentations : sequence
        Each a polygon list ``[[x1, y1, ...], ...]``, an uncompressed RLE ``{"size": [h, w],
        "counts": [int, ...]}`` or a compressed RLE ``{"size": [h, w], "counts": str}``.
    heights, widths : array-like of shape (n,)
        The size of each item's image (NaN where unknown; polygons need it).
    name : str
        What the items are, for error messages (e.g. ``"gt annotations"``).
    labels : sequence of int or None, default=None
        The item number to name in errors (default: the position).

    Returns
    -------
    Masks
    """
    mask_utils = pycocotools_mask()

    n = len(segmentations)
    labels = list(range(n) if labels is None else labels)
    fast = _compressed_fast(segmentations)
    if fast is not None:  # every mask a well-typed compressed RLE: one pass in bulk
        strings, sizes = fast
        return _from_strings(strings, sizes, name, labels)
    segmentations = [{"size": list(s.size), "counts": s.counts} if type(s) is RleRecord
                     else s for s in segmentations]
    sizes = np.zeros((n, 2), np.int64)
    strings = [None] * n
    heights = np.asarray(heights, np.float64)
    widths = np.asarray(widths, np.float64)
    _polygons_bulk(segmentations, heights, widths, strings, sizes)
    for i, (seg, h_img, w_img, lab) in enumerate(zip(segmentations, heights, widths, labels,
                                                     strict=True)):
        if strings[i] is not None:
            continue
        where = f"{name}[{lab}].segmentation"
        if isinstance(seg, dict):
            counts = seg.get("counts")
            if isinstance(counts, (list, tuple, np.ndarray)):
                h, w = _size(seg, where)
                c = _uncompressed(counts, h, w, where)
                rle = mask_utils.frPyObjects({"size": [h, w], "counts": c}, h, w)
                strings[i] = rle["counts"]
                sizes[i] = h, w
            else:
                h, w, c = _compressed_parts(seg, where)
                strings[i] = c
                sizes[i] = h, w
        elif isinstance(seg, (list, tuple)):
            h, w = _image_size(h_img, w_img, where)
            polys = _polygons(seg, h, w, where)
            try:
                rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
            except Exception as exc:  # pycocotools raises bare Exceptions
                raise ValueError(f"{where}: pycocotools cannot read these polygons ({exc}); "
                                 "a polygon is [x1, y1, x2, y2, ...].") from None
            strings[i] = rle["counts"]
            sizes[i] = h, w
        else:
            raise ValueError(
                f"{where} must be a list of polygons [[x1, y1, ...], ...] or an RLE dict "
                f"{{'size': [height, width], 'counts': ...}}; got {type(seg).__name__}."
            )
    return _from_strings(strings, sizes, name, list(labels))


def _polygons_bulk(segmentations, heights, widths, strings, sizes) -> None:
    """Convert the polygon annotations in bulk when every one of them passes the checks of
    :func:`_polygons` (done on all coordinates at once), writing ``strings`` and ``sizes``;
    otherwise leave them to the item by item path, which names the offending item.

    Annotations of one polygon with more than 4 coordinates are rasterised by pycocotools'
    ``rleFrPoly`` compiled (:func:`_polygon_strings`: the strings of ``frPyObjects``, bit for
    bit, on every core; one RLE per polygon is the same as merging a single part); the
    others (several parts, or pycocotools' 4-number box quirk) go to pycocotools one by one,
    as ``annToRLE`` converts them.
    """
    mask_utils = pycocotools_mask()

    idx = [i for i, s in enumerate(segmentations) if type(s) is list]
    if not idx:
        return
    h, w = heights[idx], widths[idx]
    if not (np.all(np.isfinite(h) & np.isfinite(w)) and np.all(h == np.round(h))
            and np.all(w == np.round(w)) and h.min() >= 1 and w.min() >= 1
            and (h * w).max() <= MAX_PIXELS):
        return
    n_parts = np.fromiter((len(segmentations[i]) for i in idx), np.int64, count=len(idx))
    parts = [p for i in idx for p in segmentations[i]]
    if n_parts.min() == 0 or not all(type(p) is list for p in parts):
        return
    lengths = np.fromiter(map(len, parts), np.int64, count=len(parts))
    if lengths.min() < 4 or np.any(lengths % 2):
        return
    try:
        flat = np.fromiter(itertools.chain.from_iterable(parts), np.float64,
                           count=int(lengths.sum()))
    except (TypeError, ValueError):
        return
    if not np.all(np.isfinite(flat)):
        return
    ph, pw = np.repeat(h, n_parts), np.repeat(w, n_parts)
    ch, cw = np.repeat(ph, lengths // 2), np.repeat(pw, lengths // 2)
    x, y = flat[0::2], flat[1::2]
    if np.any(x < -cw) or np.any(x > 2 * cw) or np.any(y < -ch) or np.any(y > 2 * ch):
        return
    offsets = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    first_part = np.zeros(len(idx), np.int64)
    np.cumsum(n_parts[:-1], out=first_part[1:])
    batch = (n_parts == 1) & (lengths[first_part] != 4)
    hi, wi = h.astype(np.int64), w.astype(np.int64)
    for k in np.flatnonzero(~batch).tolist():  # one by one, as annToRLE
        polys = [flat[offsets[j]:offsets[j + 1]]
                 for j in range(first_part[k], first_part[k] + n_parts[k])]
        try:
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, int(hi[k]), int(wi[k])))
        except Exception:  # noqa: BLE001 (the item by item path words the error)
            continue
        strings[idx[k]] = rle["counts"]
        sizes[idx[k]] = hi[k], wi[k]
    sel = np.flatnonzero(batch)
    if not len(sel):
        return
    start = offsets[first_part[sel]]
    end = offsets[first_part[sel] + 1]
    hw = np.ascontiguousarray(np.c_[hi[sel], wi[sel]])
    data, lengths = _polygon_strings(flat, start, end, hw)
    pos = np.zeros(len(sel) + 1, np.int64)
    np.cumsum(lengths, out=pos[1:])
    for j, k in enumerate(sel.tolist()):
        strings[idx[k]] = data[pos[j]:pos[j + 1]]
        sizes[idx[k]] = hi[k], wi[k]


def _polygon_strings(flat, start, end, hw):
    """The compressed RLE strings of single polygons, as ``frPyObjects`` makes them
    (pycocotools' ``rleFrPoly`` and ``rleToString`` compiled:
    ``calibkit.detection._ckernels.polygon_strings``), on every core: the bytes joined
    and the length of each."""
    from calibkit._chunks import run_ranges
    from calibkit.detection import _ckernels

    if not len(start):
        return b"", np.zeros(0, np.int64)
    parts = run_ranges(partial(_ckernels.polygon_strings, flat, start, end, hw),
                       end - start + 8)  # the work of a polygon: about its points
    return b"".join(p[0] for p in parts), np.concatenate([p[1] for p in parts])


def _compressed_fast(segmentations):
    """``(strings, sizes)`` when every item is a compressed RLE (a dict, or a typed record)
    with a string ``counts`` and an integer ``[height, width]`` in range (checked in bulk),
    else None (the item by item path then names the offending item)."""
    types = set(map(type, segmentations))
    if types == {RleRecord}:
        counts = list(map(attrgetter("counts"), segmentations))
        size_list = list(map(attrgetter("size"), segmentations))
    elif types == {dict}:
        counts = [s.get("counts") for s in segmentations]
        size_list = [s.get("size") for s in segmentations]
    else:
        return None
    if set(map(type, counts)) != {str}:
        return None
    try:
        sizes = np.array(size_list)
    except (ValueError, TypeError):
        return None
    if sizes.dtype.kind not in "iu" or sizes.shape != (len(segmentations), 2):
        return None
    sizes = sizes.astype(np.int64)
    h, w = sizes[:, 0], sizes[:, 1]
    if h.min() < 1 or w.min() < 1 or (h * w).max() > MAX_PIXELS:
        return None
    if not "".join(counts).isascii():
        return None
    return [c.encode("ascii") for c in counts], sizes


def encode_binary_masks(masks: np.ndarray) -> Masks:
    """Compressed RLEs of binary masks of shape (n, height, width) (``pycocotools.mask.encode``
    on the column-major (height, width, n) stack, as torchvision's COCO evaluation does
    mask by mask)."""
    mask_utils = pycocotools_mask()

    m = np.asarray(masks)
    n = m.shape[0]
    if n == 0:
        return Masks.empty()
    h, w = m.shape[1], m.shape[2]
    if h < 1 or w < 1 or h * w > MAX_PIXELS:
        raise ValueError(f"masks of shape {(h, w)} are not supported (need 1 <= height, width "
                         f"and height * width <= 2**29).")
    rles = mask_utils.encode(np.asfortranarray(np.moveaxis(m.astype(np.uint8), 0, -1)))
    strings = [r["counts"] for r in rles]
    sizes = np.tile(np.array([h, w], np.int64), (n, 1))
    return _pack(strings, sizes)


# --------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------


def _size(rle: dict, where: str) -> tuple[int, int]:
    size = rle.get("size")
    ok = (isinstance(size, (list, tuple, np.ndarray)) and len(size) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                  for v in size))
    if not ok:
        raise ValueError(f"{where}: the RLE's size must be [height, width], two integers; got "
                         f"{size!r}.")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1 or h * w > MAX_PIXELS:
        raise ValueError(f"{where}: the RLE's size {[h, w]} is not a mask size (need height, "
                         "width >= 1 and height * width <= 2**29).")
    return h, w


def _compressed_parts(rle, where: str) -> tuple[int, int, bytes]:
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise ValueError(f"{where} must be an RLE dict {{'size': [height, width], 'counts': "
                         f"...}}; got {type(rle).__name__}"
                         + (f" with keys {sorted(rle)}" if isinstance(rle, dict) else "") + ".")
    h, w = _size(rle, where)
    c = rle["counts"]
    if isinstance(c, str):
        try:
            c = c.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: a compressed RLE's counts must be an ASCII string (the "
                             "characters 0 to o).") from None
    elif isinstance(c, (bytes, bytearray, memoryview)):
        c = bytes(c)
    else:
        raise ValueError(f"{where}: counts must be a compressed RLE string or a list of run "
                         f"lengths; got {type(c).__name__}.")
    return h, w, c


def _uncompressed(counts, h: int, w: int, where: str) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.ndim != 1 or (arr.size and (arr.dtype == bool
                                       or not np.issubdtype(arr.dtype, np.integer))):
        if arr.ndim == 1 and arr.size and np.issubdtype(arr.dtype, np.floating) and np.all(
                np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{where}: an uncompressed RLE's counts must be a list of "
                             "non-negative integers (run lengths).")
    arr = arr.astype(np.int64) if arr.size else np.zeros(0, np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{where}: an uncompressed RLE's counts must be non-negative.")
    if int(arr.sum()) != h * w:
        raise ValueError(f"{where}: the run lengths add up to {int(arr.sum())}, not height * "
                         f"width = {h * w}.")
    return arr


def _image_size(h, w, where: str) -> tuple[int, int]:
    if h is None or w is None or not (np.isfinite(h) and np.isfinite(w)):
        raise ValueError(f"{where} is a polygon, which needs the image's height and width; "
                         "add them to the ground truth's images.")
    hi, wi = int(round(float(h))), int(round(float(w)))
    if hi < 1 or wi < 1 or hi * wi > MAX_PIXELS or hi != h or wi != w:
        raise ValueError(f"{where}: the image size {[h, w]} is not a mask size (need integer "
                         "height, width >= 1 with height * width <= 2**29).")
    return hi, wi


def _polygons(seg, h: int, w: int, where: str) -> list:
    if len(seg) == 0:
        raise ValueError(f"{where} is an empty list; a polygon annotation is a list of "
                         "polygons [[x1, y1, x2, y2, ...], ...].")
    out = []
    for j, p in enumerate(seg):
        if not isinstance(p, (list, tuple, np.ndarray)):
            raise ValueError(f"{where}[{j}] must be a polygon [x1, y1, x2, y2, ...]; got "
                             f"{type(p).__name__}.")
        try:
            arr = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where}[{j}] must be a list of numbers [x1, y1, x2, y2, ...]."
                             ) from None
        if arr.ndim != 1 or len(arr) < 4 or len(arr) % 2:
            raise ValueError(f"{where}[{j}] must be an even number (at least 4) of "
                             f"coordinates [x1, y1, x2, y2, ...]; got {len(p)} entries.")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}[{j}] has NaN or infinite coordinates.")
        x, y = arr[0::2], arr[1::2]
        if x.min() < -w or x.max() > 2 * w or y.min() < -h or y.max() > 2 * h:
            raise ValueError(f"{where}[{j}] has coordinates far outside the {h} x {w} image "
                             "(polygons must lie within [-width, 2 width] x [-height, "
                             "2 height]).")
        out.append(arr)
    return out


def _from_strings(strings, sizes, name: str, labels) -> Masks:
    masks = _pack(strings, sizes)
    bad, why = _check_counts(masks.counts, masks.offsets,
                             (masks.size[:, 0] * masks.size[:, 1]).astype(np.int64))
    if bad >= 0:
        reason = {1: "has a character outside 0 to o",
                  2: "ends inside a number",
                  3: "has a number of more than 6 characters",
                  4: "decodes to a negative or too long run",
                  5: "has runs that do not add up to height * width"}[why]
        h, w = masks.size[bad]
        raise ValueError(f"{name}[{labels[bad]}].segmentation: the compressed RLE's counts "
                         f"{reason} (size [{h}, {w}]); it is not a pycocotools RLE.")
    return masks


def _pack(strings, sizes) -> Masks:
    lengths = np.fromiter(map(len, strings), np.int64, count=len(strings))
    offsets = np.zeros(len(strings) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = b"".join(strings)
    # a read-only view of the joined bytes, which are also what pycocotools reads
    counts = np.frombuffer(buf, np.uint8)
    return Masks(counts, offsets, np.asarray(sizes, np.int64).reshape(-1, 2), buf)


def _check_counts(buf, offsets, pixels):
    """First mask whose compressed string pycocotools' reader (``rleFrString``) would
    misread, and why (see :func:`_from_strings`); ``(-1, 0)`` when all are well formed.
    The reasons (C, ``calibkit.detection._ckernels.check_counts``, on every core): 1 a byte
    outside ``0``-``o``, 2 a number cut short, 3 a number of more than 6 characters, 4 a
    run outside [0, 2**32), 5 runs not adding up to the mask's pixels."""
    from calibkit._chunks import run_ranges
    from calibkit.detection import _ckernels

    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    why = np.zeros(n, np.int64)
    run_ranges(partial(_ckernels.check_counts, np.ascontiguousarray(buf, dtype=np.uint8),
                       offsets, np.ascontiguousarray(pixels, dtype=np.int64), why),
               np.diff(offsets) + 1)
    bad = np.flatnonzero(why)
    return (int(bad[0]), int(why[bad[0]])) if len(bad) else (-1, 0)
