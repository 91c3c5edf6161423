"""Sharded evaluation: match shards of images separately, merge, get the single-machine result.

COCO matching is independent per image, and everything computed after it (LaECE, LaACE, LRP,
D-ECE, AP, the COCO summary, LRP-optimal thresholds, the calibrators' training sets) needs
only small per-detection columns. A :class:`MatchState` is those columns for one shard of
images (a shard holds *every* detection of each of its images):

==================  ==========================  =========================================
field               shape                       meaning
==================  ==========================  =========================================
``taus``            (T,)                        IoU thresholds of ``tp`` / ``ignored`` / ``iou``
``iou_op``          str                         ``"ge"`` or ``"gt"``
``max_dets``        int                         detections kept per (image, class)
``category_ids``    (K,)                        the ground truth's sorted category ids
``npig``            (K,)                        regular boxes per category (whole ground truth)
``image_id``        (n,)                        the shard's detections, in file order
``category_id``     (n,)
``score``           (n,)
``box``             (n, 4) or None              ``[x, y, w, h]`` (needed to rebuild
                                                :class:`~calibkit.detection.Detections`)
``evaluated``       (n,) bool                   within the first ``max_dets`` of its group
``rank``            (n,)                        rank in its (image, class) group (score order)
``tp``, ``ignored`` (T, n) bool                 greedy matching at each threshold
``iou``             (T, n)                      matched IoU of a TP, else 0
``coco_codes``      (n, 10) uint16 or None      COCO matching at IoU .50:.05:.95, two bits
                                                (TP, ignored) per area range: no range, all,
                                                small, medium, large
``coco_npig``       (K, 5) or None              regular boxes per category and area range
``iou_type``        str                         ``"bbox"`` or ``"segm"``
``dataset``         str                         ``"coco"`` or ``"lvis"`` (the rule set)
``mask``            Masks or None               the detections' masks (``"segm"``)
``area``            (n,) or None                the detections' areas (``"segm"``; else
                                                ``w * h`` of the boxes)
==================  ==========================  =========================================

Under LVIS's rules (``dataset="lvis"``) ``max_dets`` is the cap per image (a shard holds
whole images, so the cap is applied inside it), ``evaluated`` also leaves out detections of
classes not verified on their image, and the codes follow LVIS's matching; read the summary
with :meth:`~MatchState.lvis_summary`.

:meth:`MatchState.merge` concatenates states of disjoint image sets (in the order given);
the merged state equals, column for column, the state of the concatenated detections
(:func:`match_shards` of one shard), and its :meth:`~MatchState.matches`,
:meth:`~MatchState.evaluate` and :meth:`~MatchState.coco_summary` equal
:func:`calibkit.detection.match_many`, :func:`calibkit.detection.evaluate` and
:func:`calibkit.detection.coco_summary` on that concatenation, to the last bit: every
per-detection value is computed inside one image, and every per-class order (descending
score, image id, file order) is rebuilt from the merged columns. :meth:`~MatchState.to_dict`
gives a JSON-safe dict (lists of numbers) and :meth:`~MatchState.from_dict` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from calibkit.detection.io import Detections, GroundTruth, load_dets, load_gt
from calibkit.detection.iou import check_iou_type
from calibkit.detection.masks import Masks
from calibkit.detection.matching import (
    Matches,
    _check_iou_op,
    _check_tau,
    _greedy,
    _group_codes,
    _prepare,
    _resolve,
)

__all__ = ["MatchState", "match_shards", "evaluate_shards"]

#: area ranges of the COCO codes: none (every box counts), then pycocotools' all, small,
#: medium, large
SHARD_AREA_RANGES = np.array([[-np.inf, np.inf], [0**2, 1e5**2], [0**2, 32**2],
                              [32**2, 96**2], [96**2, 1e5**2]])
_ARRAYS = ("category_ids", "npig", "image_id", "category_id", "score", "box", "evaluated",
           "rank", "tp", "ignored", "iou", "coco_codes", "coco_npig", "area")


@dataclass(frozen=True, eq=False)
class MatchState:
    """Per-detection matching columns of a shard of images (see the module docstring).

    Build one with :meth:`from_shard` (or :func:`match_shards`), combine with
    :meth:`merge`, and read results with :meth:`matches`, :meth:`evaluate`,
    :meth:`average_precision`, :meth:`coco_summary` and :meth:`lvis_summary`. The fields
    are those of the table of the module docstring (``n`` detections, ``T`` thresholds,
    ``K`` categories).

    Attributes
    ----------
    taus : tuple of float
        IoU thresholds of ``tp``, ``ignored`` and ``iou``.
    iou_op : {"ge", "gt"}
        The eligibility rule of the matching (see :func:`calibkit.detection.match`).
    max_dets : int
        Detections kept per (image, class) (COCO) or per image (LVIS).
    category_ids : ndarray of shape (K,)
        The ground truth's sorted category ids.
    npig : ndarray of shape (K,)
        Regular boxes per category, over the whole ground truth.
    image_id, category_id : ndarray of shape (n,)
        The shard's detections, in file order.
    score : ndarray of shape (n,)
        Their scores.
    box : ndarray of shape (n, 4) or None
        Their ``[x, y, w, h]`` boxes (None when built with ``keep_boxes=False``).
    evaluated : ndarray of shape (n,), bool
        Within the first ``max_dets`` of its (image, class) (LVIS: see
        :class:`~calibkit.detection.Matches`).
    rank : ndarray of shape (n,), int64
        Rank in its (image, class) group by score (-1 for a detection not evaluated).
    tp, ignored : ndarray of shape (T, n), bool
        Greedy matching at each threshold.
    iou : ndarray of shape (T, n)
        Matched IoU of a TP, else 0.
    coco_codes : ndarray of shape (n, 10), uint16, or None, default=None
        COCO matching at IoU .50:.05:.95, two bits (TP, ignored) per area range (no range,
        all, small, medium, large); None without ``coco=True``.
    coco_npig : ndarray of shape (K, 5) or None, default=None
        Regular boxes per category and area range; None without ``coco=True``.
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU or mask IoU.
    dataset : {"coco", "lvis"}, default="coco"
        The rule set of the matching.
    mask : Masks or None, default=None
        The detections' masks (``"segm"`` with boxes kept), else None.
    area : ndarray of shape (n,) or None, default=None
        The detections' areas (``"segm"`` with boxes kept; else None, the areas being
        ``w * h`` of the boxes).
    """

    taus: tuple
    iou_op: str
    max_dets: int
    category_ids: np.ndarray
    npig: np.ndarray
    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    box: np.ndarray | None
    evaluated: np.ndarray
    rank: np.ndarray
    tp: np.ndarray
    ignored: np.ndarray
    iou: np.ndarray
    coco_codes: np.ndarray | None = None
    coco_npig: np.ndarray | None = None
    iou_type: str = "bbox"
    dataset: str = "coco"
    mask: Masks | None = None
    area: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.score)

    # ------------------------------------------------------------------ build / merge
    @classmethod
    def from_shard(cls, gt, dets, *, taus=(0.0,), iou_op: str = "ge",
                   max_dets: int | None = None, coco: bool = False, keep_boxes: bool = True,
                   iou_type: str = "bbox", dataset: str = "auto") -> MatchState:
        """Match one shard.

        Parameters
        ----------
        gt : path, dict, pycocotools COCO or GroundTruth
            The *whole* ground truth (``npig`` counts every image).
        dets : path, COCO results list or Detections
            Every detection of the shard's images.
        taus : sequence of float, default=(0.0,)
            IoU thresholds in [0, 1) of the greedy matching (``tp``, ``ignored``, ``iou``);
            :meth:`evaluate` needs its ``tau`` (and ``dece_tau``) among them.
        iou_op : {"ge", "gt"}, default="ge"
            As in :func:`calibkit.detection.match`.
        max_dets : int or None, default=None
            As in :func:`calibkit.detection.match` (None: 100 per (image, class) for COCO,
            300 per image for LVIS).
        coco : bool, default=False
            Also keep the COCO codes (for :meth:`average_precision`, :meth:`coco_summary`,
            :meth:`lvis_summary` and ``ap``); the summary under COCO's rules needs
            ``max_dets`` None or at least 100.
        keep_boxes : bool, default=True
            Keep the boxes, masks and areas (needed by :meth:`matches`, :meth:`evaluate`
            and netcal's D-ECE matching).
        iou_type : {"bbox", "segm"}, default="bbox"
            As in :func:`calibkit.detection.match`.
        dataset : {"auto", "coco", "lvis"}, default="auto"
            As in :func:`calibkit.detection.match`.

        Returns
        -------
        MatchState
            One row per detection of ``dets``, in its order.
        """
        iou_type = check_iou_type(iou_type, "MatchState.from_shard")
        gt = load_gt(gt, iou_type=iou_type)
        dets = load_dets(dets, iou_type=iou_type, gt=gt)
        taus = tuple(_check_tau(t) for t in taus)
        _check_iou_op(iou_op)
        dataset, max_dets = _resolve(gt, dataset, max_dets, "MatchState.from_shard")
        prep = _prepare(gt, dets, max_dets, iou_type=iou_type, dataset=dataset)
        tp_s, ig_s, iou_s = _greedy(prep, np.array(taus), iou_op)
        n = len(dets)
        evaluated = np.zeros(n, bool)
        evaluated[prep.det] = True
        rank = np.full(n, -1, np.int64)
        rank[prep.det] = prep.rank
        tp = np.zeros((len(taus), n), bool)
        ig = np.zeros((len(taus), n), bool)
        iou = np.zeros((len(taus), n))
        tp[:, prep.det] = tp_s
        ig[:, prep.det] = ig_s
        iou[:, prep.det] = iou_s
        codes = coco_npig = None
        if coco:
            codes = np.zeros((n, 10), np.uint16)
            # every detection the preparation kept (max_dets per (image, class) under COCO's
            # rules): greedy matching in score order gives the top 100 the same codes
            codes[prep.det] = _coco_codes(prep, np.ones(len(prep.det), bool))
            coco_npig = _coco_npig(gt, dataset)
        segm = iou_type == "segm"
        return cls(taus, iou_op, max_dets, gt.category_ids, prep.npig, dets.image_id,
                   dets.category_id, dets.score, dets.box if keep_boxes else None, evaluated,
                   rank, tp, ig, iou, codes, coco_npig, iou_type, dataset,
                   dets.mask if keep_boxes and segm else None,
                   dets.area if keep_boxes and segm else None)

    @classmethod
    def merge(cls, *states: MatchState) -> MatchState:
        """Concatenate the states of shards with disjoint images, in the order given."""
        if len(states) == 1 and isinstance(states[0], (list, tuple)):
            states = tuple(states[0])
        if not states:
            raise ValueError("merge needs at least one MatchState.")
        first = states[0]
        def settings(x):
            return (x.taus, x.iou_op, x.max_dets, x.iou_type, x.dataset)

        for s in states[1:]:
            if settings(s) != settings(first):
                raise ValueError(
                    "states matched with different settings cannot be merged: "
                    f"{settings(first)} vs {settings(s)}."
                )
            if not (np.array_equal(s.category_ids, first.category_ids)
                    and np.array_equal(s.npig, first.npig)):
                raise ValueError("states come from different ground truths (categories or "
                                 "box counts differ); match every shard against the whole "
                                 "ground truth.")
            if (s.coco_codes is None) != (first.coco_codes is None) or (
                    (s.box is None) != (first.box is None)) or (
                    (s.mask is None) != (first.mask is None)):
                raise ValueError("states to merge must all have (or all lack) coco codes, "
                                 "boxes and masks.")
        if len(states) == 1:
            return first
        seen = [np.unique(s.image_id) for s in states]
        all_ids = np.concatenate(seen)
        if len(np.unique(all_ids)) != len(all_ids):
            ids, counts = np.unique(all_ids, return_counts=True)
            raise ValueError(
                f"image(s) {ids[counts > 1][:5].tolist()} have detections in several shards; "
                "a shard must hold every detection of its images (split by image)."
            )

        def cat(name, axis=0):
            parts = [getattr(s, name) for s in states]
            return None if parts[0] is None else np.concatenate(parts, axis=axis)

        return replace(
            first, image_id=cat("image_id"), category_id=cat("category_id"),
            score=cat("score"), box=cat("box"), evaluated=cat("evaluated"), rank=cat("rank"),
            tp=cat("tp", 1), ignored=cat("ignored", 1), iou=cat("iou", 1),
            coco_codes=cat("coco_codes"), area=cat("area"),
            mask=None if first.mask is None else Masks.concatenate([s.mask for s in states]),
        )

    def take(self, rows) -> MatchState:
        """The state of a row selection (e.g. a permutation)."""
        rows = np.asarray(rows)
        return replace(
            self, image_id=self.image_id[rows], category_id=self.category_id[rows],
            score=self.score[rows], box=None if self.box is None else self.box[rows],
            evaluated=self.evaluated[rows], rank=self.rank[rows], tp=self.tp[:, rows],
            ignored=self.ignored[:, rows], iou=self.iou[:, rows],
            coco_codes=None if self.coco_codes is None else self.coco_codes[rows],
            mask=None if self.mask is None else self.mask.subset(rows),
            area=None if self.area is None else self.area[rows],
        )

    # ------------------------------------------------------------------ serialise
    def to_dict(self) -> dict:
        """A JSON-safe dict (numbers and lists); :meth:`from_dict` reads it back exactly
        (floats are written with Python's shortest round-trip repr)."""
        out = {"taus": list(self.taus), "iou_op": self.iou_op, "max_dets": self.max_dets,
               "iou_type": self.iou_type, "dataset": self.dataset}
        for name in _ARRAYS:
            out[name] = _array_dict(getattr(self, name))
        out["mask"] = None if self.mask is None else {
            key: _array_dict(getattr(self.mask, key)) for key in ("counts", "offsets", "size")}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> MatchState:
        """The state written by :meth:`to_dict`."""
        kw = {"taus": tuple(float(t) for t in d["taus"]), "iou_op": d["iou_op"],
              "max_dets": int(d["max_dets"]), "iou_type": d.get("iou_type", "bbox"),
              "dataset": d.get("dataset", "coco")}
        for f in fields(cls):
            if f.name in _ARRAYS:
                kw[f.name] = _from_array_dict(d.get(f.name))
        m = d.get("mask")
        kw["mask"] = None if m is None else Masks(
            *[_from_array_dict(m[key]) for key in ("counts", "offsets", "size")])
        return cls(**kw)

    # ------------------------------------------------------------------ results
    def detections(self) -> Detections:
        """The merged detections (rows in merge order)."""
        if self.box is None:
            raise ValueError("this state was built with keep_boxes=False; rebuild it with "
                             "keep_boxes=True to get the detections.")
        return Detections(self.image_id, self.category_id, self.score, self.box, self.mask,
                          self.area)

    def matches(self, gt) -> list[Matches]:
        """One :class:`~calibkit.detection.Matches` per threshold of ``taus``, equal to
        :func:`~calibkit.detection.match_many` on the concatenated detections."""
        gt = load_gt(gt)
        self._check_gt(gt)
        dets = self.detections()
        cls = np.searchsorted(gt.category_ids, self.category_id)
        order = _per_class_order(cls, self.score, self.image_id, self.evaluated,
                                 gt.n_categories)
        return [
            Matches(gt, dets, tau, self.iou_op, self.max_dets, cls, self.evaluated,
                    self.tp[t], self.ignored[t], self.iou[t], self.npig, order, self.iou_type,
                    self.dataset)
            for t, tau in enumerate(self.taus)
        ]

    def evaluate(self, gt, **kwargs) -> dict:
        """:func:`calibkit.detection.evaluate` on the concatenated detections. The state
        must hold ``tau`` (and ``dece_tau`` unless equal) among its ``taus``; ``ap=True``
        needs the COCO codes.

        Parameters
        ----------
        gt : path, dict, pycocotools COCO or GroundTruth
            The ground truth the state was matched against.
        **kwargs : dict
            The keyword arguments of :func:`calibkit.detection.evaluate`. ``iou_op``,
            ``max_dets``, ``iou_type`` and ``dataset``, when given (not None or ``"auto"``),
            must be the state's. ``ap=True`` gives the AP from the codes (the state's
            ``max_dets`` detections per (image, class) under COCO's rules, as
            :func:`calibkit.detection.evaluate`). The bootstrap options give the same
            intervals as :func:`calibkit.detection.evaluate` (with ``ap=True`` the AP of each
            resample rematches the merged detections on this machine). Any other keyword is
            a ``TypeError``.

        Returns
        -------
        dict
            The values of :func:`calibkit.detection.evaluate`.

        Raises
        ------
        ValueError
            A threshold missing from ``taus``, matching options other than the state's,
            netcal's D-ECE matching on an LVIS state, or ``ap=True`` without the codes.
        """
        from calibkit.detection.metrics import _bootstrap_matches, _evaluate_matches

        boot = _check_evaluate_options(kwargs, "MatchState.evaluate")
        gt = load_gt(gt)
        tau = float(kwargs.get("tau", 0.0))
        dece_tau = float(kwargs.get("dece_tau", 0.5))
        ms = self.matches(gt)
        by_tau = {m.tau: m for m in ms}
        need = [tau] + ([dece_tau] if kwargs.get("dece_matching", "greedy") == "greedy"
                        else [])
        missing = [t for t in need if t not in by_tau]
        if missing:
            raise ValueError(f"the state was matched at taus={list(self.taus)}; evaluate needs "
                             f"{missing} as well (pass taus=[{tau}, {dece_tau}]).")
        for key in ("iou_op", "max_dets", "iou_type", "dataset"):
            if kwargs.get(key) not in (None, "auto") and kwargs[key] != getattr(self, key):
                raise ValueError(f"the state was matched with {key}={getattr(self, key)!r}; "
                                 f"got {key}={kwargs[key]!r}.")
        if self.dataset == "lvis" and kwargs.get("dece_matching") == "netcal_argmax_any_class":
            raise ValueError("dece_matching='netcal_argmax_any_class' ignores LVIS's federated "
                             "labels; use the greedy matching (the default) on LVIS.")
        ap = None
        if kwargs.get("ap"):
            ap = self.average_precision(gt)
        m = by_tau[tau]
        m_dece = by_tau.get(dece_tau, m)
        options = {k: v for k, v in kwargs.items()
                   if k not in _STATE_OPTIONS + _BOOTSTRAP_OPTIONS}
        out = _evaluate_matches(gt, m.dets, m, m_dece, ap=ap, **options)
        if boot is not None:
            out.update(_bootstrap_matches(gt, m.dets, [m, m_dece], ap=bool(kwargs.get("ap")),
                                          max_dets=self.max_dets, **boot, **options))
        return out

    def average_precision(self, gt) -> float:
        """:func:`calibkit.detection.average_precision` with the state's ``max_dets`` (COCO:
        per (image, class); LVIS: per image) from the codes."""
        precision, _ = self._accumulate(gt, [0], [self._ap_max_dets])
        q = precision[:, :, :, 0, 0]
        has = q[0, 0] > -1
        if not has.any():
            return float("nan")
        return float(q[:, :, has].mean(axis=(0, 1)).mean())

    def coco_summary(self, gt) -> dict:
        """:func:`calibkit.detection.coco_summary` from the codes (COCO's rules)."""
        from calibkit.detection.cocoeval import summarize

        if self.dataset != "coco":
            raise ValueError("this state follows LVIS's rules; read its summary with "
                             "lvis_summary (or match with dataset='coco').")
        if self.max_dets < 100:
            raise ValueError(f"this state keeps max_dets={self.max_dets} detections per (image, "
                             "class); COCO's summary needs the best 100 (match with "
                             "max_dets=None).")
        return summarize(*self._accumulate(gt, [1, 2, 3, 4], [1, 10, 100]))

    def lvis_summary(self, gt) -> dict:
        """:func:`calibkit.detection.lvis_summary` (``max_dets`` = the state's cap per
        image) from the codes (LVIS's rules)."""
        from calibkit.detection.cocoeval import _frequency_groups, summarize_lvis

        if self.dataset != "lvis":
            raise ValueError("this state follows COCO's rules; match with dataset='lvis' for "
                             "LVIS's summary.")
        gt = load_gt(gt)
        groups = _frequency_groups(gt)
        precision, recall = self._accumulate(gt, [1, 2, 3, 4], [self.max_dets])
        return summarize_lvis(precision, recall, groups, self.max_dets)

    @property
    def _ap_max_dets(self) -> int:
        return self.max_dets

    def _accumulate(self, gt, areas, max_dets):
        from calibkit.detection.cocoeval import _accumulate_codes

        if self.coco_codes is None:
            raise ValueError("this state has no COCO codes; build it with coco=True.")
        gt = load_gt(gt)
        self._check_gt(gt)
        k = gt.n_categories
        cap = self.rank < max(max_dets) if self.dataset == "coco" else True
        ev = np.flatnonzero(self.evaluated & cap)
        cls = np.searchsorted(gt.category_ids, self.category_id[ev])
        img = np.searchsorted(gt.image_ids, self.image_id[ev])
        pos = np.lexsort((self.rank[ev], img, cls))
        cls_start = np.searchsorted(cls[pos], np.arange(k + 1))
        codes = np.zeros((len(ev), 10), np.uint16)
        for j, a in enumerate(areas):  # the wanted ranges' bits, renumbered from 0
            bits = (self.coco_codes[ev] >> np.uint16(2 * a)) & np.uint16(3)
            codes |= bits << np.uint16(2 * j)
        return _accumulate_codes(codes, self.score[ev], self.rank[ev], pos, cls_start,
                                 self.coco_npig[:, areas], np.asarray(max_dets, np.int64),
                                 len(areas))

    def _check_gt(self, gt: GroundTruth) -> None:
        if not np.array_equal(gt.category_ids, self.category_ids):
            raise ValueError("gt is not the ground truth this state was matched against "
                             "(its categories differ).")


def match_shards(gt, shards, *, taus=(0.0,), iou_op: str = "ge", max_dets: int | None = None,
                 coco: bool = False, keep_boxes: bool = True, iou_type: str = "bbox",
                 dataset: str = "auto") -> MatchState:
    """Match each shard of images (paths, results lists or Detections, each holding every
    detection of its images) against the whole ground truth and merge the states, in order.

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The whole ground truth.
    shards : iterable of (path, COCO results list or Detections)
        The shards, each holding every detection of its images (an image in two shards is
        refused).
    taus : sequence of float, default=(0.0,)
        As in :meth:`MatchState.from_shard`.
    iou_op : {"ge", "gt"}, default="ge"
        As in :meth:`MatchState.from_shard`.
    max_dets : int or None, default=None
        As in :meth:`MatchState.from_shard`.
    coco : bool, default=False
        As in :meth:`MatchState.from_shard`.
    keep_boxes : bool, default=True
        As in :meth:`MatchState.from_shard`.
    iou_type : {"bbox", "segm"}, default="bbox"
        As in :meth:`MatchState.from_shard`.
    dataset : {"auto", "coco", "lvis"}, default="auto"
        As in :meth:`MatchState.from_shard`.

    Returns
    -------
    MatchState
        Equal to the state of the concatenated shards (see the module docstring).
    """
    gt = load_gt(gt, iou_type=iou_type)
    return MatchState.merge([
        MatchState.from_shard(gt, s, taus=taus, iou_op=iou_op, max_dets=max_dets, coco=coco,
                              keep_boxes=keep_boxes, iou_type=iou_type, dataset=dataset)
        for s in shards
    ])


def evaluate_shards(gt, shards, **kwargs) -> dict:
    """:func:`calibkit.detection.evaluate` of the concatenated shards, matching shard by
    shard (same keyword arguments).

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        The whole ground truth.
    shards : iterable of (path, COCO results list or Detections)
        The shards, as in :func:`match_shards`.
    **kwargs : dict
        The keyword arguments of :func:`calibkit.detection.evaluate`, as
        :meth:`MatchState.evaluate` takes them (``ap=True`` keeps the COCO codes); any
        other keyword is a ``TypeError``.

    Returns
    -------
    dict
        The values of :func:`calibkit.detection.evaluate`.
    """
    _check_evaluate_options(kwargs, "evaluate_shards")
    state = match_shards(gt, shards, coco=bool(kwargs.get("ap")), **_state_options(kwargs))
    return state.evaluate(gt, **kwargs)


# --------------------------------------------------------------------------------------

#: evaluate's options that the state fixes (checked against it) or that give the AP
_STATE_OPTIONS = ("tau", "iou_op", "max_dets", "iou_type", "dataset", "ap")
#: evaluate's bootstrap options
_BOOTSTRAP_OPTIONS = ("n_bootstrap", "confidence_level", "random_state", "return_resamples")


def _state_options(kwargs: dict) -> dict:
    """The matching settings of a state that ``evaluate(**kwargs)`` can read: its ``tau``
    and ``dece_tau`` among the ``taus``, and the same matching options."""
    tau = float(kwargs.get("tau", 0.0))
    dece_tau = float(kwargs.get("dece_tau", 0.5))
    return {"taus": (tau,) if dece_tau == tau else (tau, dece_tau),
            "iou_op": kwargs.get("iou_op", "ge"), "max_dets": kwargs.get("max_dets"),
            "iou_type": kwargs.get("iou_type", "bbox"), "dataset": kwargs.get("dataset", "auto")}


def _check_evaluate_options(kwargs: dict, owner: str) -> dict | None:
    """Refuse a keyword that :func:`calibkit.detection.evaluate` does not take; check the
    bootstrap options as evaluate does. Returns them (``n_bootstrap`` and the rest) for
    :func:`calibkit.detection.metrics._bootstrap_matches`, or None without
    ``n_bootstrap``."""
    import inspect

    from calibkit.detection import bootstrap
    from calibkit.detection.metrics import evaluate

    known = set(inspect.signature(evaluate).parameters) - {"gt", "dets"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"{owner}() got unexpected keyword argument(s) {unknown}; it takes "
                        f"the options of calibkit.detection.evaluate: {sorted(known)}.")
    n_bootstrap = kwargs.get("n_bootstrap")
    confidence_level = kwargs.get("confidence_level", 0.95)
    random_state = kwargs.get("random_state")
    return_resamples = kwargs.get("return_resamples", False)
    if n_bootstrap is None:
        if return_resamples:
            raise ValueError("return_resamples=True needs n_bootstrap (the number of "
                             "resamples).")
        return None
    return {"n_bootstrap": bootstrap._check_n_bootstrap(n_bootstrap, owner),
            "confidence_level": bootstrap._check_confidence_level(confidence_level, owner),
            "random_state": random_state, "return_resamples": bool(return_resamples)}


def _coco_codes(prep, sel: np.ndarray) -> np.ndarray:
    """COCO codes (10 thresholds, the five ranges of SHARD_AREA_RANGES) of prep's evaluated
    detections (zero where ``sel`` is False: beyond rank 100 under COCO's rules)."""
    from calibkit.detection.cocoeval import COCO_IOU_THRESHOLDS

    codes = np.zeros((len(prep.det), len(COCO_IOU_THRESHOLDS)), np.uint16)
    _group_codes(prep, COCO_IOU_THRESHOLDS, SHARD_AREA_RANGES, codes)
    codes[~sel] = 0
    return codes


def _coco_npig(gt: GroundTruth, dataset: str = "coco") -> np.ndarray:
    from calibkit.detection.cocoeval import _npig_by_area

    return _npig_by_area(gt, SHARD_AREA_RANGES, dataset)


def _array_dict(v):
    return None if v is None else {"dtype": str(v.dtype), "shape": list(v.shape),
                                   "data": v.ravel().tolist()}


def _from_array_dict(v):
    return None if v is None else np.asarray(v["data"], dtype=v["dtype"]).reshape(v["shape"])


def _per_class_order(cls, score, image_id, evaluated, n_cls) -> np.ndarray:
    """Evaluated rows by class, descending score, image id, row (the toolbox's order)."""
    rows = np.flatnonzero(evaluated)
    o = np.lexsort((rows, image_id[rows], -score[rows], cls[rows]))
    return rows[o]
