"""Where the IoU of a detection and a ground-truth annotation comes from.

One source for every consumer: the greedy matching (:func:`calibkit.detection.match`, the
metrics, thresholds and calibrators built on it), the COCO and LVIS summaries, OCE and
netcal's matching.

* ``iou_type="bbox"``: pycocotools' ``bbIou`` of ``[x, y, w, h]`` boxes, operation by
  operation (``w = min(dx+dw, gx+gw) - max(dx, gx)``, 0 if ``w <= 0``, the same for ``h``,
  ``inter = w*h``, union ``da + ga - inter``, or ``da`` (the detection's area) for a crowd
  region). The compiled kernels compute it inline per (image, class) group.
* ``iou_type="segm"``: pycocotools' ``rleIou`` of the RLE masks with the ``iscrowd`` flags
  (intersection over the detection's mask area for a crowd region), computed for the
  candidate pairs only: per (image, class) group for matching, per image for OCE and
  netcal's matching. Masks stay compressed (:class:`~calibkit.detection.masks.Masks`); the
  compiled kernel (``calibkit.detection._ckernels.mask_iou_groups``, pycocotools' C code
  operation by operation: ``rleFrString``, ``rleToBbox``, ``bbIou``, ``rleIou``) decodes
  each group's strings and runs the groups on every core. It equals
  ``pycocotools.mask.iou`` to the last bit (tested).

Mask IoU needs every mask of an image to have that image's size (pycocotools gives -1 for
masks of different sizes, which would silently never match): :meth:`IoUSource.of` checks
the detections' masks against the image sizes of the ground truth (or, where an image has
none, against its annotations' masks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibkit.detection.io import IOU_TYPES, Detections, GroundTruth, _check_iou_type

__all__ = ["IoUSource", "IOU_TYPES", "check_iou_type"]


def check_iou_type(iou_type, owner: str | None = None) -> str:
    """``iou_type`` checked against :data:`IOU_TYPES` (``"bbox"``, ``"segm"``).

    Parameters
    ----------
    iou_type : {"bbox", "segm"}
        The value to check.
    owner : str or None, default=None
        The function or class named in the error message (``"iou_type"`` when None).

    Returns
    -------
    str
        ``iou_type`` itself.

    Raises
    ------
    ValueError
        ``iou_type`` is not one of :data:`IOU_TYPES`.
    """
    return _check_iou_type(iou_type, owner or "iou_type")


@dataclass(frozen=True, eq=False)
class IoUSource:
    """IoUs of the detections of ``dets`` with the annotations of ``gt``.

    Build it with :meth:`of`, which checks the masks. ``crowd`` arguments of the methods are
    per requested annotation: True gives pycocotools' crowd IoU (intersection over the
    detection's area).

    Attributes
    ----------
    iou_type : {"bbox", "segm"}
        Box IoU (pycocotools' ``bbIou`` of the ``[x, y, w, h]`` boxes) or mask IoU
        (pycocotools' ``rleIou`` of the RLE masks).
    gt : GroundTruth
        The annotations (rows of ``gt.ann_box`` and ``gt.ann_segm``).
    dets : Detections
        The detections (rows of ``dets.box`` and ``dets.mask``).
    """

    iou_type: str
    gt: GroundTruth
    dets: Detections

    @classmethod
    def of(cls, gt: GroundTruth, dets: Detections, iou_type: str = "bbox") -> IoUSource:
        """The IoU source of ``iou_type``; for ``"segm"`` both sides need masks of their
        images' sizes.

        Parameters
        ----------
        gt : GroundTruth
            The ground truth (read with ``iou_type="segm"`` for mask IoU).
        dets : Detections
            The detections (read with ``iou_type="segm"`` for mask IoU).
        iou_type : {"bbox", "segm"}, default="bbox"
            Box IoU or mask IoU.

        Returns
        -------
        IoUSource

        Raises
        ------
        ValueError
            ``iou_type="segm"`` and ``gt`` or ``dets`` has no masks, or a mask does not
            have its image's size (the image's ``height`` and ``width`` in the ground
            truth, else the size of the image's annotation masks).
        """
        iou_type = check_iou_type(iou_type)
        if iou_type == "segm":
            if gt.ann_segm is None:
                raise ValueError("gt has no masks; read it with load_gt(..., iou_type='segm') "
                                 "for mask IoU.")
            if dets.mask is None:
                raise ValueError("dets has no masks; read them with load_dets(..., "
                                 "iou_type='segm') for mask IoU.")
            _check_sizes(gt, dets)
        return cls(iou_type, gt, dets)

    @property
    def inline(self) -> bool:
        """Box IoU, computed by the compiled kernels themselves."""
        return self.iou_type == "bbox"

    def block(self, det_rows, ann_rows, crowd) -> np.ndarray:
        """IoU matrix of the detections ``det_rows`` with the annotations ``ann_rows``.

        Parameters
        ----------
        det_rows : array-like of int of shape (n_rows,)
            Rows of ``dets``.
        ann_rows : array-like of int of shape (n_cols,)
            Rows of the annotations of ``gt``.
        crowd : array-like of bool of shape (n_cols,)
            Per annotation of ``ann_rows``: True gives the crowd IoU (intersection over the
            detection's area).

        Returns
        -------
        ndarray of shape (n_rows, n_cols)
            float64.
        """
        det_rows = np.asarray(det_rows, np.int64)
        ann_rows = np.asarray(ann_rows, np.int64)
        crowd = np.asarray(crowd, bool)
        if self.iou_type == "bbox":
            return box_iou_pycocotools(self.dets.box[det_rows][:, None, :],
                                       self.gt.ann_box[ann_rows][None, :, :], crowd[None, :])
        n, m = len(det_rows), len(ann_rows)
        pre_iou, _ = self._mask_blocks(det_rows, np.zeros(1, np.int64), np.array([n]),
                                       ann_rows, np.zeros(1, np.int64), np.array([m]), crowd)
        return pre_iou.reshape(n, m)

    def pairs(self, det_rows, ann_rows, crowd) -> np.ndarray:
        """IoU of each pair ``(det_rows[i], ann_rows[i])``.

        The pairs are meant to be of one image each (a detection and an annotation of its
        image); mask IoU is computed image by image, one block per detection image over the
        detections and annotations of its pairs.

        Parameters
        ----------
        det_rows : array-like of int of shape (n_pairs,)
            Rows of ``dets``.
        ann_rows : array-like of int of shape (n_pairs,)
            Rows of the annotations of ``gt``.
        crowd : array-like of bool of shape (n_pairs,)
            True gives the pair's crowd IoU (intersection over the detection's area).

        Returns
        -------
        ndarray of shape (n_pairs,)
            float64.
        """
        det_rows = np.asarray(det_rows, np.int64)
        ann_rows = np.asarray(ann_rows, np.int64)
        crowd = np.asarray(crowd, bool)
        if self.iou_type == "bbox":
            return box_iou_pycocotools(self.dets.box[det_rows], self.gt.ann_box[ann_rows],
                                       crowd)
        out = np.zeros(len(det_rows))
        if not len(det_rows):
            return out
        # one mask IoU block per image over the detections and annotations of its pairs
        img = self.dets.image_id[det_rows]
        order = np.argsort(img, kind="stable")
        bounds = np.flatnonzero(np.diff(img[order])) + 1
        for sel in np.split(order, bounds):
            d_u, d_inv = np.unique(det_rows[sel], return_inverse=True)
            key = ann_rows[sel] * 2 + crowd[sel]
            a_u, a_inv = np.unique(key, return_inverse=True)
            blk = self.block(d_u, a_u // 2, (a_u % 2).astype(bool))
            out[sel] = blk[d_inv, a_inv]
        return out

    def group_blocks(self, det, d_lo, d_hi, ann_rows, g_lo, g_hi, crowd):
        """The IoU blocks of the (image, class) groups for the compiled kernels.

        Group ``k`` pairs the detections ``det[d_lo[k]:d_hi[k]]`` (rows of ``dets``) with the
        annotations ``ann_rows[g_lo[k]:g_hi[k]]`` (``crowd`` aligned with ``ann_rows``).

        Parameters
        ----------
        det : ndarray of int64 of shape (n_evaluated,)
            Rows of ``dets``, grouped by (image, class).
        d_lo, d_hi : ndarray of int64 of shape (n_groups,)
            Bounds of each group's detections in ``det``.
        ann_rows : ndarray of int64 of shape (n_group_annotations,)
            Rows of the annotations of ``gt``, grouped by (image, class).
        g_lo, g_hi : ndarray of int64 of shape (n_groups,)
            Bounds of each group's annotations in ``ann_rows``.
        crowd : ndarray of bool of shape (n_group_annotations,)
            Crowd flag of each entry of ``ann_rows`` (crowd IoU: intersection over the
            detection's area).

        Returns
        -------
        pre_iou : ndarray of shape (n_values,)
            The blocks, each of shape ``(d_hi[k] - d_lo[k], g_hi[k] - g_lo[k])``, row-major
            and concatenated; empty for boxes (the kernels compute box IoU inline).
        pre_off : ndarray of shape (n_groups + 1,)
            Group ``k``'s block is ``pre_iou[pre_off[k]:pre_off[k + 1]]``; empty for boxes.
        """
        if self.inline:
            return np.zeros(0), np.zeros(0, np.int64)
        return self._mask_blocks(det, d_lo, d_hi, ann_rows, g_lo, g_hi, crowd)

    def _mask_blocks(self, det, d_lo, d_hi, ann_rows, g_lo, g_hi, crowd):
        """Mask IoU blocks of the groups (see :meth:`group_blocks`), computed by the
        compiled ``rleIou`` (``calibkit.detection._ckernels.mask_iou_groups``: pycocotools'
        C code operation by operation, on every core)."""
        from functools import partial

        from calibkit._chunks import run_ranges
        from calibkit.detection import _ckernels

        d_lo, d_hi = np.asarray(d_lo, np.int64), np.asarray(d_hi, np.int64)
        g_lo, g_hi = np.asarray(g_lo, np.int64), np.asarray(g_hi, np.int64)
        det = np.ascontiguousarray(det, np.int64)
        ann_rows = np.ascontiguousarray(ann_rows, np.int64)
        sizes = (d_hi - d_lo) * (g_hi - g_lo)
        pre_off = np.zeros(len(d_lo) + 1, np.int64)
        np.cumsum(sizes, out=pre_off[1:])
        pre_iou = np.zeros(int(pre_off[-1]))
        dm, gm = self.dets.mask, self.gt.ann_segm
        kernel = partial(
            _ckernels.mask_iou_groups, np.ascontiguousarray(dm.counts, np.uint8),
            np.ascontiguousarray(dm.offsets, np.int64), np.ascontiguousarray(dm.size, np.int64),
            det, d_lo, d_hi, np.ascontiguousarray(gm.counts, np.uint8),
            np.ascontiguousarray(gm.offsets, np.int64), np.ascontiguousarray(gm.size, np.int64),
            ann_rows, g_lo, g_hi, np.ascontiguousarray(crowd, bool).view(np.uint8), pre_off,
            pre_iou)
        # the work of a group: decoding its masks and its pairs
        run_ranges(kernel, (d_hi - d_lo + g_hi - g_lo) * 64 + sizes * 16 + 1)
        return pre_iou, pre_off


def box_iou_pycocotools(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou``, operation by operation, broadcast over the leading axes of
    ``[x, y, w, h]`` boxes ``d`` and ``g`` (``crowd``: intersection over ``d``'s area)."""
    dx, dy, dw, dh = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    gx, gy, gw, gh = g[..., 0], g[..., 1], g[..., 2], g[..., 3]
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(crowd, da, da + gw * gh - inter)
    ok = (w > 0) & (h > 0)
    out = np.zeros(np.broadcast_shapes(w.shape, union.shape))
    np.divide(inter, union, out=out, where=ok & (union != 0))
    return out


def _check_sizes(gt: GroundTruth, dets: Detections) -> None:
    """Every detection mask has its image's size: the image's ``height`` and ``width`` where
    the ground truth gives them, else the size of the image's annotation masks."""
    n_img = gt.n_images
    ref = np.full((n_img, 2), -1, np.int64)
    known = np.isfinite(gt.image_height) & np.isfinite(gt.image_width)
    ref[known, 0] = gt.image_height[known]
    ref[known, 1] = gt.image_width[known]
    g_img = np.searchsorted(gt.image_ids, gt.ann_image_id)
    size_g = gt.ann_segm.size
    # images without a size take their first annotation's mask size; every other
    # annotation mask of the image must agree
    first = np.full(n_img, -1, np.int64)
    with_ann, first_row = np.unique(g_img, return_index=True)
    first[with_ann] = first_row
    fill = ~known & (first >= 0)
    ref[fill] = size_g[first[fill]]
    bad = np.flatnonzero(np.any(size_g != ref[g_img], axis=1)) if len(g_img) else []
    if len(bad):
        k = int(bad[0])
        raise ValueError(f"gt annotation {k} (image {int(gt.ann_image_id[k])}) has a mask of "
                         f"size {size_g[k].tolist()} (height, width) but its image is "
                         f"{ref[g_img[k]].tolist()}; masks must have their image's size.")
    if not len(dets):
        return
    d_img = np.clip(np.searchsorted(gt.image_ids, dets.image_id), 0, max(n_img - 1, 0))
    r = ref[d_img]
    bad = np.flatnonzero((r[:, 0] >= 0) & np.any(dets.mask.size != r, axis=1))
    if len(bad):
        k = int(bad[0])
        raise ValueError(f"detection {k} (image {int(dets.image_id[k])}) has a mask of size "
                         f"{dets.mask.size[k].tolist()} (height, width) but its image is "
                         f"{r[k].tolist()}; masks must have their image's size (encode them "
                         "at the image's resolution).")
