"""Synthetic COCO-like ground truth and detections (for examples, tests and benchmarks)."""

from __future__ import annotations

import numpy as np

__all__ = ["make_coco_like", "write_coco_like"]


def make_coco_like(
    n_images: int = 200,
    *,
    dets_per_image: int = 100,
    n_classes: int = 80,
    gt_per_image: float = 7.0,
    crowd_fraction: float = 0.01,
    score_decimals: int | None = 3,
    overconfidence: float = 0.3,
    seed: int = 0,
    masks: bool = False,
    _columns: bool = False,
) -> tuple[dict, list[dict]]:
    """A COCO ground-truth dict and a COCO results list with realistic structure.

    Each 640 x 480 image has Poisson(``gt_per_image``) boxes from a few classes (a share
    ``crowd_fraction`` of them crowd regions). Detections are jittered copies of the boxes
    (several per box, same class) plus background boxes; a detection's score rises with its
    IoU but is pushed up by ``overconfidence`` (so calibration has something to fix), and is
    rounded to ``score_decimals`` decimals (ties, as in real files).

    With ``masks=True`` every annotation and result also has an instance mask: the ellipse
    inscribed in its box, a 16-vertex polygon for the ground truth (``area`` its mask area)
    and a compressed RLE for the results; a crowd region's mask is its box (its pixels),
    as an uncompressed RLE as in COCO (needs pycocotools).

    Parameters
    ----------
    n_images : int, default=200
        Number of images (ids 1 to ``n_images``).
    dets_per_image : int, default=100
        Detections of each image.
    n_classes : int, default=80
        Number of categories (ids 1 to ``n_classes``, names ``class_<id>``); each image
        draws its boxes and detections from 4 of them, frequent classes more often.
    gt_per_image : float, default=7.0
        Mean number of boxes per image (Poisson).
    crowd_fraction : float, default=0.01
        Probability that a box is a crowd region.
    score_decimals : int or None, default=3
        Decimals the scores are rounded to; None: no rounding.
    overconfidence : float, default=0.3
        Adds ``4 * overconfidence`` to every detection's score logit (0: no shift).
    seed : int, default=0
        Seed of ``numpy.random.default_rng``; the same arguments give the same data.
    masks : bool, default=False
        Also give every annotation and result an instance mask (see above).

    Other Parameters
    ----------------
    _columns : bool, default=False
        Internal: return the numpy columns of the boxes and detections instead of the dicts
        (what :func:`write_coco_like` writes; no masks).

    Returns
    -------
    gt : dict
        ``images`` (with width and height), ``annotations``, ``categories``.
    dets : list of dict
        ``{image_id, category_id, bbox, score}`` (and ``segmentation`` with ``masks=True``),
        ``dets_per_image`` per image, images in id order, sorted by descending score within
        each image.
    """
    rng = np.random.default_rng(seed)
    width, height = 640.0, 480.0
    n_gt = rng.poisson(gt_per_image, n_images)
    img_of_gt = np.repeat(np.arange(n_images), n_gt)
    m = len(img_of_gt)
    # a few classes per image, with a skewed class frequency (like "person" in COCO)
    class_p = 1.0 / np.arange(1, n_classes + 1) ** 0.8
    class_p /= class_p.sum()
    img_classes = rng.choice(n_classes, size=(n_images, 4), p=class_p)
    gt_cls = img_classes[img_of_gt, rng.integers(0, 4, m)]
    gw = rng.uniform(10, 300, m)
    gh = rng.uniform(10, 300, m)
    gx = rng.uniform(0, width - gw)
    gy = rng.uniform(0, height - gh)
    crowd = rng.random(m) < crowd_fraction
    # detections: about 60% near a box, the rest background
    n_det = n_images * dets_per_image
    img_of_det = np.repeat(np.arange(n_images), dets_per_image)
    near = rng.random(n_det) < 0.6
    first = np.concatenate([[0], np.cumsum(n_gt)[:-1]])
    has_gt = n_gt[img_of_det] > 0
    near &= has_gt
    pick = first[img_of_det] + (rng.random(n_det) * np.maximum(n_gt[img_of_det], 1)).astype(int)
    pick = np.where(near, pick, 0)
    jitter = rng.lognormal(-2.3, 0.8, n_det)
    bw = np.where(near, gw[pick] * (1 + rng.normal(0, jitter)), rng.uniform(10, 200, n_det))
    bh = np.where(near, gh[pick] * (1 + rng.normal(0, jitter)), rng.uniform(10, 200, n_det))
    bw, bh = np.abs(bw) + 1.0, np.abs(bh) + 1.0
    bx = np.where(near, gx[pick] + rng.normal(0, jitter) * gw[pick], rng.uniform(0, width, n_det))
    by = np.where(near, gy[pick] + rng.normal(0, jitter) * gh[pick], rng.uniform(0, height, n_det))
    wrong = rng.random(n_det) < 0.1
    cls = np.where(
        near & ~wrong,
        gt_cls[pick],
        img_classes[img_of_det, rng.integers(0, 4, n_det)],
    )
    quality = np.where(near, np.exp(-3.0 * jitter), 0.0)
    logit = 4.0 * quality - 2.0 + overconfidence * 4.0 + rng.normal(0, 1.0, n_det)
    score = 1.0 / (1.0 + np.exp(-logit))
    if score_decimals is not None:
        score = np.round(score, score_decimals)
    score = np.clip(score, 0.0, 1.0)
    order = np.lexsort((-score, img_of_det))
    image_ids = np.arange(1, n_images + 1)
    cat_ids = np.arange(1, n_classes + 1)
    if _columns:
        return (img_of_gt, gt_cls, gx, gy, gw, gh, crowd, image_ids, cat_ids, width, height), (
            image_ids[img_of_det[order]], cat_ids[cls[order]], bx[order], by[order],
            bw[order], bh[order], score[order])
    gt = {
        "images": [{"id": int(i), "width": int(width), "height": int(height)} for i in image_ids],
        "categories": [{"id": int(c), "name": f"class_{c}"} for c in cat_ids],
        "annotations": [
            {"id": k + 1, "image_id": int(image_ids[i]), "category_id": int(cat_ids[c]),
             "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(z)}
            for k, (i, c, x, y, w, h, z) in enumerate(zip(
                img_of_gt.tolist(), gt_cls.tolist(), gx.tolist(), gy.tolist(), gw.tolist(),
                gh.tolist(), crowd.tolist(), strict=False))
        ],
    }
    dets = [
        {"image_id": i, "category_id": c, "bbox": [x, y, w, h], "score": s}
        for i, c, x, y, w, h, s in zip(
            image_ids[img_of_det[order]].tolist(), cat_ids[cls[order]].tolist(),
            bx[order].tolist(), by[order].tolist(), bw[order].tolist(), bh[order].tolist(),
            score[order].tolist(), strict=False)
    ]
    if masks:
        _add_masks(gt, dets, int(height), int(width))
    return gt, dets


def _ellipse(x, y, w, h, k: int = 16) -> list:
    """The ``k``-vertex polygon of the ellipse inscribed in the box ``[x, y, w, h]``."""
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return np.column_stack([x + w / 2 * (1 + np.cos(t)), y + h / 2 * (1 + np.sin(t))]).ravel()


def _box_runs(box, height: int, width: int) -> list:
    """Uncompressed RLE (column-major run lengths, zeros first) of the pixels of a box."""
    x, y, w, h = box
    x0, y0 = int(np.clip(np.floor(x), 0, width)), int(np.clip(np.floor(y), 0, height))
    x1 = int(np.clip(np.ceil(x + w), x0, width))
    y1 = int(np.clip(np.ceil(y + h), y0, height))
    if x1 == x0 or y1 == y0:
        return [height * width]
    inside = y1 - y0
    runs = [x0 * height + y0]
    for _ in range(x1 - x0 - 1):
        runs += [inside, height - inside]
    runs += [inside, (width - x1) * height + (height - y1)]
    return runs


def _add_masks(gt: dict, dets: list, height: int, width: int) -> None:
    """Ellipse masks in the boxes: polygons (crowd regions: uncompressed RLE) for the ground
    truth, compressed RLEs for the results; ``area`` of an annotation is its mask's."""
    from calibkit.detection.masks import pycocotools_mask

    mask_utils = pycocotools_mask()

    def clip(b):  # a polygon inside [-width, 2 width] x [-height, 2 height]
        p = _ellipse(*b).reshape(-1, 2)
        p[:, 0] = np.clip(p[:, 0], -width + 1, 2 * width - 1)
        p[:, 1] = np.clip(p[:, 1], -height + 1, 2 * height - 1)
        return p.ravel().tolist()

    for a in gt["annotations"]:
        if a["iscrowd"]:
            runs = _box_runs(a["bbox"], height, width)
            a["segmentation"] = {"size": [height, width], "counts": runs}
            a["area"] = float(sum(runs[1::2]))
            continue
        poly = clip(a["bbox"])
        rle = mask_utils.merge(mask_utils.frPyObjects([poly], height, width))
        a["area"] = float(mask_utils.area(rle))
        a["segmentation"] = [poly]
    if dets:
        rles = mask_utils.frPyObjects([clip(d["bbox"]) for d in dets], height, width)
        for d, r in zip(dets, rles, strict=True):
            d["segmentation"] = {"size": [height, width], "counts": r["counts"].decode("ascii")}


def write_coco_like(gt_path, dets_path, n_images: int, *, chunk: int = 200_000,
                    **kwargs) -> int:
    """Write :func:`make_coco_like`'s ground truth and results as json files without
    holding the results as one list of dicts (they are written ``chunk`` items at a time),
    for data sets of millions of detections. Returns the number of detections.

    Parameters
    ----------
    gt_path, dets_path : str or Path
        Where the ground-truth json and the results json are written (overwritten).
    n_images : int
        Number of images.
    chunk : int, default=200_000
        Results converted to dicts and written at a time.
    **kwargs : dict
        The other keyword arguments of :func:`make_coco_like` (``masks=True`` writes the
        same ellipse masks, chunk by chunk for the results).

    Returns
    -------
    int
        The number of detections written (``n_images * dets_per_image``).
    """
    import json

    masks = bool(kwargs.pop("masks", False))
    (img_g, cls_g, gx, gy, gw, gh, crowd, image_ids, cat_ids, width, height), cols = (
        make_coco_like(n_images, _columns=True, **kwargs))
    gt = {
        "images": [{"id": int(i), "width": int(width), "height": int(height)}
                   for i in image_ids],
        "categories": [{"id": int(c), "name": f"class_{c}"} for c in cat_ids],
        "annotations": [
            {"id": k + 1, "image_id": int(image_ids[i]), "category_id": int(cat_ids[c]),
             "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(z)}
            for k, (i, c, x, y, w, h, z) in enumerate(zip(
                img_g.tolist(), cls_g.tolist(), gx.tolist(), gy.tolist(), gw.tolist(),
                gh.tolist(), crowd.tolist(), strict=False))
        ],
    }
    if masks:
        _add_masks(gt, [], int(height), int(width))
    with open(gt_path, "w") as f:
        json.dump(gt, f)
    del gt
    img, cat, bx, by, bw, bh, score = cols
    n = len(score)
    with open(dets_path, "w") as f:
        f.write("[")
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            items = [
                {"image_id": i, "category_id": c, "bbox": [x, y, w, h], "score": s}
                for i, c, x, y, w, h, s in zip(
                    img[a:b].tolist(), cat[a:b].tolist(), bx[a:b].tolist(), by[a:b].tolist(),
                    bw[a:b].tolist(), bh[a:b].tolist(), score[a:b].tolist(), strict=False)
            ]
            if masks:
                _add_masks({"annotations": []}, items, int(height), int(width))
            text = json.dumps(items)[1:-1]
            f.write(("," if a else "") + text)
        f.write("]")
    return n
