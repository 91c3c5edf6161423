"""Writes the two small mask fixtures of the tests (deterministic; run from the repository
root with ``python tests/data/make_mask_fixtures.py``; needs numpy and pycocotools).

``masks_fixture/``: COCO ground truth and results with instance masks in every form
pycocotools reads (polygons with one or several parts, uncompressed RLE, compressed RLE),
crowd regions (uncompressed RLE, ``iscrowd: 1``), objects in all three area ranges, score
ties, an image with more than 100 detections of one class, detections on crowd regions, in
other classes and on empty images.

``lvis_fixture/``: LVIS ground truth (every image with ``neg_category_ids`` and
``not_exhaustive_category_ids``, categories in the three frequency groups ``r``, ``c``,
``f``, one annotation with ``ignore: 1`` and one with area 0) and results with a box and a
compressed RLE mask each: more than 300 detections on some images, detections of classes
verified present, verified absent, not exhaustively annotated and not verified, one of area
0, and score ties.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils

HERE = Path(__file__).resolve().parent


def star(rng, cx, cy, r, k=None):
    """A star-shaped polygon around (cx, cy) with radius about r (flat x, y list)."""
    k = k or int(rng.integers(5, 10))
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * rng.uniform(0.6, 1.0, k)
    return np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)]).ravel()


def to_rle(polys, h, w):
    return mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in polys], h, w))


def uncompressed(rle):
    """The run lengths of a mask (column-major), as COCO's crowd annotations store them."""
    m = mask_utils.decode(rle).ravel(order="F")
    change = np.flatnonzero(np.diff(m)) + 1
    bounds = np.concatenate([[0], change, [len(m)]])
    runs = np.diff(bounds).tolist()
    if m[0] == 1:
        runs = [0] + runs
    return {"size": list(rle["size"]), "counts": [int(v) for v in runs]}


def compressed(rle):
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def jitter(rng, poly, s):
    return poly + rng.normal(0, s, len(poly))


def bbox(rle):
    return [float(v) for v in mask_utils.toBbox(rle)]


def area(rle):
    return float(mask_utils.area(rle))


# --------------------------------------------------------------------------------------


def coco_masks(seed=0):
    rng = np.random.default_rng(seed)
    n_img, n_cls = 16, 4
    images, anns, dets = [], [], []
    for i in range(1, n_img + 1):
        h, w = int(rng.integers(200, 250)), int(rng.integers(200, 260))
        images.append({"id": i, "height": h, "width": w, "file_name": f"{i:04d}.jpg"})
        if i == n_img:  # an image without annotations (only false positives)
            n_obj = 0
        else:
            n_obj = int(rng.integers(1, 6))
        objs = []
        for _ in range(n_obj):
            cls = int(rng.integers(1, n_cls + 1))
            size = float(rng.choice([8.0, 25.0, 95.0]))  # small, medium, large
            cx, cy = rng.uniform(size, w - size), rng.uniform(size, h - size)
            parts = [star(rng, cx, cy, size)]
            if rng.random() < 0.25:  # a second part
                parts.append(star(rng, cx + size * 0.9, cy, size * 0.4))
            rle = to_rle(parts, h, w)
            if area(rle) == 0:
                continue
            form = rng.choice(["poly", "poly", "rle", "urle"])
            seg = ([[float(v) for v in p] for p in parts] if form == "poly"
                   else compressed(rle) if form == "rle" else uncompressed(rle))
            anns.append({"image_id": i, "category_id": cls, "segmentation": seg,
                         "area": area(rle), "bbox": bbox(rle), "iscrowd": 0})
            objs.append((cls, parts, rle))
        if i % 4 == 1:  # a crowd region (uncompressed RLE)
            cls = int(rng.integers(1, n_cls + 1))
            cx, cy = rng.uniform(30, w - 30), rng.uniform(30, h - 30)
            rle = to_rle([star(rng, cx, cy, 28.0, 12)], h, w)
            anns.append({"image_id": i, "category_id": cls, "segmentation": uncompressed(rle),
                         "area": area(rle), "bbox": bbox(rle), "iscrowd": 1})
            objs.append((cls, [star(rng, cx, cy, 10.0)], None))
        # detections: jittered copies of the objects, false positives, other classes
        for cls, parts, _ in objs:
            for _ in range(int(rng.integers(1, 4))):
                c = cls if rng.random() < 0.85 else int(rng.integers(1, n_cls + 1))
                s = float(rng.uniform(0.5, 4.0))
                dets.append((i, c, [jitter(rng, p, s) for p in parts], h, w, rng))
        for _ in range(int(rng.integers(2, 6))):
            size = float(rng.uniform(5, 40))
            dets.append((i, int(rng.integers(1, n_cls + 1)),
                         [star(rng, rng.uniform(0, w), rng.uniform(0, h), size)], h, w, rng))
        if i == 3:  # more than 100 detections of one class on one image
            for _ in range(105):
                dets.append((i, 2, [star(rng, rng.uniform(0, w), rng.uniform(0, h), 6.0)], h,
                             w, rng))
    results = []
    for k, (i, c, polys, h, w, r) in enumerate(dets):
        rle = to_rle(polys, h, w)
        form = ["rle", "rle", "rle", "urle", "poly"][k % 5]
        if area(rle) == 0 or form == "poly" and any(len(p) < 6 for p in polys):
            form = "rle"
        seg = (compressed(rle) if form == "rle" else uncompressed(rle) if form == "urle"
               else [[float(v) for v in p] for p in polys])
        box = bbox(rle)
        if k % 7 == 0:  # a box that is not the mask's box (area ranges test the box area)
            box = [box[0] - 2.0, box[1] - 1.0, box[2] + 4.0, box[3] + 2.0]
        score = round(float(r.uniform(0.05, 1.0)), 2)  # ties
        results.append({"image_id": i, "category_id": c, "bbox": box, "score": score,
                        "segmentation": seg})
    for k, a in enumerate(anns):
        a["id"] = k + 1
    gt = {"info": {"description": "calibkit mask fixture (synthetic)"},
          "images": images, "annotations": anns,
          "categories": [{"id": c, "name": f"class_{c}", "supercategory": "thing"}
                         for c in range(1, n_cls + 1)]}
    return gt, results


def lvis(seed=1):
    rng = np.random.default_rng(seed)
    n_img = 14
    freqs = ["r", "r", "r", "c", "c", "c", "c", "f", "f", "f", "f", "f"]
    cats = [{"id": c + 1, "name": f"cat_{c + 1}", "frequency": f, "synset": f"s{c + 1}",
             "image_count": 1, "instance_count": 1} for c, f in enumerate(freqs)]
    n_cls = len(cats)
    images, anns, dets = [], [], []
    for i in range(1, n_img + 1):
        h, w = int(rng.integers(190, 240)), int(rng.integers(190, 240))
        present = sorted(set(rng.choice(np.arange(1, n_cls + 1), int(rng.integers(1, 4)),
                                         replace=False).tolist()))
        others = [c for c in range(1, n_cls + 1) if c not in present]
        neg = sorted(rng.choice(others, 3, replace=False).tolist())
        nel = [c for c in present if rng.random() < 0.4]
        images.append({"id": i, "height": h, "width": w, "neg_category_ids": neg,
                       "not_exhaustive_category_ids": nel,
                       "coco_url": f"http://example.invalid/{i}.jpg"})
        objs = []
        for c in present:
            for _ in range(int(rng.integers(1, 4))):
                size = float(rng.choice([7.0, 24.0, 92.0]))
                cx, cy = rng.uniform(size, w - size), rng.uniform(size, h - size)
                poly = star(rng, cx, cy, size)
                rle = to_rle([poly], h, w)
                if area(rle) == 0:
                    continue
                a = {"image_id": i, "category_id": c, "segmentation": [poly.tolist()],
                     "area": area(rle), "bbox": bbox(rle)}
                anns.append(a)
                objs.append((c, poly))
        # the detector: copies of the objects, and many others in every kind of class
        for c, poly in objs:
            for _ in range(int(rng.integers(1, 4))):
                dets.append((i, c, jitter(rng, poly, float(rng.uniform(0.5, 4))), h, w))
        unverified = [c for c in others if c not in neg]
        n_extra = 330 if i in (2, 5) else int(rng.integers(5, 30))
        for _ in range(n_extra):
            kind = rng.random()
            c = (int(rng.choice(present)) if kind < 0.3 else int(rng.choice(neg)) if kind < 0.6
                 else int(rng.choice(unverified)))
            dets.append((i, c, star(rng, rng.uniform(0, w), rng.uniform(0, h),
                                    float(rng.uniform(4, 30))), h, w))
    anns[3]["ignore"] = 1  # an ignored annotation
    anns[5]["area"] = 0.0  # LVIS takes only annotations with area > 0
    for k, a in enumerate(anns):
        a["id"] = k + 1
    results = []
    for k, (i, c, poly, h, w) in enumerate(dets):
        rle = to_rle([poly], h, w)
        box = bbox(rle)
        if k == 17:
            box[2] = 0.0  # a detection of area 0 (left out by LVIS)
        score = round(float(rng.uniform(0.01, 1.0)), 2)
        results.append({"image_id": i, "category_id": c, "bbox": box, "score": score,
                        "segmentation": compressed(rle)})
    gt = {"info": {"description": "calibkit LVIS fixture (synthetic)"}, "images": images,
          "annotations": anns, "categories": cats, "licenses": []}
    return gt, results


def main():
    for folder, (gt, results) in (("masks_fixture", coco_masks()), ("lvis_fixture", lvis())):
        out = HERE / folder
        out.mkdir(exist_ok=True)
        (out / "gt.json").write_text(json.dumps(gt, separators=(",", ":")))
        (out / "results.json").write_text(json.dumps(results, separators=(",", ":")))
        print(f"{folder}: {len(gt['images'])} images, {len(gt['annotations'])} annotations, "
              f"{len(results)} results")


if __name__ == "__main__":
    main()
