"""Detection evaluation and calibration on a Dask cluster: matching by image partitions.

Every partition of images is read and matched on a worker into a
:class:`~calibkit.detection.MatchState` (per-detection columns; see
:mod:`calibkit.detection.shards`); the states are merged on the client, and the metrics, the
COCO summary and the calibrator are computed from the merged columns exactly as on one
machine. The result equals the single-machine run on the concatenated detections to the last
bit.

``results`` is either a list of COCO results files (or lists / :class:`Detections`), each
holding every detection of its images, or a ``dask.bag`` of result dicts (partitioned any
way: detections are routed to partitions by image, and the merged rows are put back in the
bag's order).

Dask is imported inside the functions; ``import calibkit.detection`` never imports it.
Tasks run on the active ``distributed`` client if there is one (else Dask's default
scheduler).
"""

from __future__ import annotations

import numpy as np

from calibkit.detection.io import Detections, load_dets, load_gt
from calibkit.detection.shards import MatchState

__all__ = ["evaluate", "fit", "match_state"]

def match_state(gt, results, *, taus=(0.0,), iou_op: str = "ge", max_dets: int | None = None,
                coco: bool = False, n_partitions: int | None = None,
                compute: bool = True, iou_type: str = "bbox",
                dataset: str = "auto") -> MatchState:
    """Match ``results`` partition by partition on the cluster and merge the states.

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        Read on the client and sent to the workers once.
    results : list of (path, results list or Detections), or dask.bag.Bag of result dicts
        One task per item of a list, each holding every detection of its images; a bag's
        detections are routed to partitions by image id.
    taus : sequence of float, default=(0.0,)
        IoU thresholds of the matching (see
        :meth:`calibkit.detection.MatchState.from_shard`).
    iou_op : {"ge", "gt"}, default="ge"
        As in :func:`calibkit.detection.match`.
    max_dets : int or None, default=None
        As in :func:`calibkit.detection.match`.
    coco : bool, default=False
        Also keep the COCO codes (for the AP and the COCO or LVIS summary of the state).
    n_partitions : int or None, default=None
        For a bag: the number of image partitions (None: the bag's partition count);
        ignored for a list.
    compute : bool, default=True
        Return the merged state (``True``) or a ``dask.delayed`` object.
    iou_type : {"bbox", "segm"}, default="bbox"
        As in :func:`calibkit.detection.match`.
    dataset : {"auto", "coco", "lvis"}, default="auto"
        As in :func:`calibkit.detection.match`.

    Returns
    -------
    MatchState or dask.delayed.Delayed
        Rows in the order of the files (or of the bag); with ``compute=False`` the delayed
        computation of that state.
    """
    import dask

    gt = load_gt(gt, iou_type=iou_type)
    g = dask.delayed(gt, pure=True)
    opts = {"taus": tuple(taus), "iou_op": iou_op, "max_dets": max_dets, "coco": coco,
            "iou_type": iou_type, "dataset": dataset}
    if _is_bag(results):
        parts = results.to_delayed()
        n = n_partitions or len(parts)
        split = [dask.delayed(_route, nout=n)(p, n, i, g, iou_type)
                 for i, p in enumerate(parts)]
        states = [dask.delayed(_bucket_state)(g, [s[j] for s in split], opts)
                  for j in range(n)]
        merged = dask.delayed(_merge_rows)(*states)
    else:
        if isinstance(results, (str, Detections)) or not hasattr(results, "__len__"):
            raise TypeError("results must be a list of results files (or lists / "
                            "Detections), each holding whole images, or a dask bag of result "
                            f"dicts; got {type(results).__name__}.")
        states = [dask.delayed(_file_state)(g, r, opts) for r in results]
        merged = dask.delayed(_merge)(*states)
    return merged.compute() if compute else merged


def evaluate(gt, results, *, summary: bool = False, **kwargs) -> dict:
    """:func:`calibkit.detection.evaluate` of ``results`` with the matching on the cluster.

    Parameters
    ----------
    gt : path, dict, pycocotools COCO or GroundTruth
        As in :func:`match_state`.
    results : list of (path, results list or Detections), or dask.bag.Bag of result dicts
        As in :func:`match_state`.
    summary : bool, default=False
        Also return the twelve COCO numbers under ``"coco_summary"``
        (:func:`calibkit.detection.coco_summary`), or under LVIS's rules LVIS's numbers under
        ``"lvis_summary"`` (:func:`calibkit.detection.lvis_summary`).
    **kwargs : dict
        The keyword arguments of :func:`calibkit.detection.evaluate`, bootstrap options
        included (the resamples are drawn on the client from the merged matches); any other
        keyword is a ``TypeError``.

    Returns
    -------
    dict
        Equal to :func:`calibkit.detection.evaluate` on the concatenated results.
    """
    from calibkit.detection.shards import _check_evaluate_options, _state_options

    _check_evaluate_options(kwargs, "calibkit.detection.dask.evaluate")
    options = _state_options(kwargs)
    gt = load_gt(gt, iou_type=options["iou_type"])
    state = match_state(gt, results, coco=bool(kwargs.get("ap")) or summary, **options)
    out = state.evaluate(gt, **kwargs)
    if summary:
        if state.dataset == "lvis":
            out["lvis_summary"] = state.lvis_summary(gt)
        else:
            out["coco_summary"] = state.coco_summary(gt)
    return out


def fit(calibrator, gt, results, *, n_partitions: int | None = None):
    """Fit a :class:`~calibkit.detection.DetectionCalibrator` with every matching step on the
    cluster (the raw results, the survivors of ``u_c``, the calibrated survivors).

    Parameters
    ----------
    calibrator : DetectionCalibrator
        The calibrator to fit (in place); its parameters set the matching.
    gt : path, dict, pycocotools COCO or GroundTruth
        The validation ground truth, read on the client and sent to the workers.
    results : list of (path, results list or Detections), or dask.bag.Bag of result dicts
        The validation detections, as in :func:`match_state`.
    n_partitions : int or None, default=None
        Image partitions of the matching steps after the first (None: the number of files,
        or the bag's partition count); for a bag also those of the first.

    Returns
    -------
    DetectionCalibrator
        ``calibrator``, fitted; equal to ``calibrator.fit(gt, concatenated results)``.
    """
    from calibkit.base import reset_fitted_state

    gt = load_gt(gt, iou_type=calibrator.iou_type)
    calibrator._check_params()
    reset_fitted_state(calibrator)
    kw = {"taus": (calibrator.tau,), "iou_op": calibrator.iou_op,
          "max_dets": calibrator.max_dets, "iou_type": calibrator.iou_type,
          "dataset": calibrator.dataset}
    state = match_state(gt, results, n_partitions=n_partitions, **kw)
    d0 = state.detections()
    if len(d0) == 0:
        raise ValueError("results hold no detections; fitting needs validation detections.")
    n = n_partitions or max(len(results) if not _is_bag(results)
                            else results.npartitions, 1)

    def matcher(dets: Detections):
        return _match_detections(gt, dets, kw, n)

    return calibrator._fit_matched(gt, d0, matcher, m0=state.matches(gt)[0])


# --------------------------------------------------------------------------------------


def _is_bag(x) -> bool:
    return type(x).__name__ == "Bag" and hasattr(x, "to_delayed")


def _file_state(gt, source, opts) -> MatchState:
    dets = load_dets(source, iou_type=opts.get("iou_type", "bbox"), gt=gt)
    return MatchState.from_shard(gt, dets, **opts)


def _merge(*states) -> MatchState:
    return MatchState.merge(list(states))


def _route(items, n: int, part: int, gt=None, iou_type: str = "bbox"):
    """Split one bag partition into ``n`` buckets by image id; each bucket keeps the rows'
    global positions ``(partition, row)`` to restore the bag's order."""
    d = load_dets(list(items), iou_type=iou_type, gt=gt)
    rows = (np.int64(part) << np.int64(32)) + np.arange(len(d), dtype=np.int64)
    bucket = d.image_id % n
    out = []
    for j in range(n):
        sel = bucket == j
        out.append((d.subset(sel), rows[sel]))
    return tuple(out)


def _bucket_state(gt, pieces, opts):
    rows = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, np.int64)
    d = Detections.concatenate([p[0] for p in pieces])
    return MatchState.from_shard(gt, d, **opts), rows


def _merge_rows(*pairs) -> MatchState:
    state = MatchState.merge([p[0] for p in pairs])
    rows = np.concatenate([p[1] for p in pairs])
    return state.take(np.argsort(rows, kind="stable"))


def _match_detections(gt, dets: Detections, kw: dict, n: int):
    """:func:`calibkit.detection.match` of client-side detections, on the cluster: rows
    split into ``n`` partitions by image, matched, merged, put back in row order."""
    import dask

    g = dask.delayed(gt, pure=True)
    bucket = dets.image_id % n
    rows = np.arange(len(dets))
    states = []
    order = []
    for j in range(n):
        sel = bucket == j
        if not sel.any():
            continue
        part = dask.delayed(dets.subset(sel), pure=True)
        states.append(dask.delayed(_file_state)(g, part, {**kw, "coco": False}))
        order.append(rows[sel])
    if not states:
        from calibkit.detection.matching import match

        return match(gt, dets, tau=kw["taus"][0], iou_op=kw["iou_op"],
                     max_dets=kw["max_dets"], iou_type=kw["iou_type"], dataset=kw["dataset"])
    state = dask.delayed(_merge)(*states).compute()
    state = state.take(np.argsort(np.concatenate(order), kind="stable"))
    return state.matches(gt)[0]
