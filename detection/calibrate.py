"""Class-wise post-hoc calibration of an object detector's scores.

The pipeline of the detection calibration toolbox (Kuzucu et al., ECCV 2024), without its
side effects (inputs are never mutated; models and thresholds are keyed by category id):

``fit`` on validation detections

1. ``u_c``: per-class thresholds on the raw scores (LRP-optimal by default); drop the
   detections with ``score < u_c``;
2. match the survivors again; the training set of class c is its TP and FP detections
   (crowd-ignored ones excluded), the target the matched IoU (0 for an FP) or, with
   ``target="binary"``, 1 for a TP;
3. fit one calibrator per class (or one pooled calibrator); a class without training data
   keeps the identity;
4. ``v_c``: thresholds on the calibrated scores of the survivors (matched again).

``transform`` keeps ``score >= u_c``, calibrates, keeps ``calibrated >= v_c``.

Masks (``iou_type="segm"``) change the IoU of every matching step, so the thresholds and the
IoU targets are those of the masks; LVIS ground truth (``dataset="auto"`` detects it) gives
LVIS's federated matching in every step, the 300 best detections per image and the training
sets of LVIS's long tail: many categories with a handful of validation detections. What a
category with few training detections gets:

* none: the identity (or, with ``min_class_detections > 1``, the pooled calibrator);
* fewer than ``min_class_detections`` (default 1, i.e. never): the one calibrator fitted on
  every category's training detections together;
* one: the identity for Platt and temperature scaling (as the toolbox), the constant target
  for isotonic and linear maps;
* all targets equal (e.g. only false positives): that constant for isotonic, Platt and
  linear maps (the limit of each fit), the identity for temperature scaling.

Its thresholds follow the LRP rules whatever its size: no ground truth on the validation
set gives -1, no true positive NaN (both keep every detection).
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from calibkit._validation import (
    BOOLEAN,
    NONE,
    Array,
    DictOf,
    InstanceOf,
    Interval,
    Options,
    Predicate,
    SaturatedProbabilityWarning,
    validate_params,
)
from calibkit.base import Calibrator, Persistable, reset_fitted_state
from calibkit.detection.io import IOU_TYPES, Detections, load_dets, load_gt
from calibkit.detection.matching import DATASETS, IOU_OPS, match
from calibkit.detection.thresholds import apply_thresholds, lrp_optimal_thresholds
from calibkit.registry import CALIBRATORS, calibrator_names, make_calibrator, method_name

__all__ = ["DetectionCalibrator"]

TARGETS = ("iou", "binary")

#: methods whose fit on targets that are all equal tends to that constant
_CONSTANT_LIMIT = ("isotonic", "platt", "sigmoid", "linear", "histogram", "beta")


def _is_constant_model(m) -> bool:
    """A class whose targets were all equal is calibrated to that constant."""
    return (isinstance(m, dict) and set(m) == {"constant"}
            and isinstance(m["constant"], (int, float)) and 0.0 <= m["constant"] <= 1.0)


class DetectionCalibrator(Persistable, BaseEstimator):
    """Class-wise calibration of detection scores with per-class operating thresholds.

    Parameters
    ----------
    method : str or Calibrator, default="isotonic"
        A calibrator of the registry (:data:`calibkit.registry.CALIBRATORS`) that calibrates
        one score: ``"isotonic"``, ``"platt"``, ``"temperature"``, ``"linear"``, ``"beta"``,
        ``"histogram"``, ``"identity"``, ...; ``"venn_abers"`` with ``target="binary"``
        only (it needs 0/1 targets). ``"isotonic"``: :class:`calibkit.IsotonicCalibration`
        (PAV, linear interpolation,
        clipped outside the training range: scikit-learn's ``IsotonicRegression(y_min=0,
        y_max=1, out_of_bounds="clip")``); ``"platt"``: :class:`calibkit.PlattScaling`,
        ``sigmoid(a logit(p) + b)``; ``"temperature"``: :class:`calibkit.TemperatureScaling`,
        ``sigmoid(logit(p) / T)``; both fitted by cross-entropy with soft targets to
        convergence (the toolbox stops its L-BFGS after 100 steps, so parity with it is about
        1e-3 in LaECE, not exact); ``"linear"``: :class:`calibkit.LinearCalibration`,
        ``clip(w p + c, 0, 1)`` with ``w >= 0``; ``"identity"``: scores unchanged, thresholds
        still learned. Any calibkit calibrator instance is cloned per class and fitted on
        ``scores`` of shape (n,) with targets in [0, 1].
    classwise : bool, default=True
        One calibrator per category (``False``: one pooled over all categories).
    target : {"iou", "binary"}, default="iou"
        Training target: the IoU of the matched box (LaECE) or the TP flag (D-ECE).
    thresholds : "lrp", float or None, default="lrp"
        ``"lrp"``: LRP-optimal ``u_c`` and ``v_c``; a float: that score threshold before and
        after calibration (the train-time papers use 0.3); ``None``: no thresholding.
    tau : float, default=0.0
        IoU threshold of a TP (matching, targets and LRP).
    iou_op : {"ge", "gt"}, default="ge"
        ``"ge"``: a box is eligible iff ``IoU >= min(tau, 1 - 1e-10)`` (pycocotools);
        ``"gt"``: ``IoU > tau``.
    max_dets : int or None, default=None
        Detections kept per (image, class) (COCO, None = 100) or per image (LVIS, None = 300).
    tie_aware : bool, default=False
        LRP-optimal thresholds evaluated only at ends of tie groups (see
        :func:`calibkit.detection.lrp_optimal_thresholds`); ``False`` reproduces the toolbox.
    iou_type : {"bbox", "segm"}, default="bbox"
        Box IoU, or mask IoU of the segmentations, in every matching step (``fit`` and
        ``transform`` then read the masks, and ``transform`` returns them).
    dataset : {"auto", "coco", "lvis"}, default="auto"
        COCO's rules or LVIS's federated rules in every matching step (see
        :func:`calibkit.detection.match`); ``"auto"`` follows the ground truth.
    min_class_detections : int, default=1
        A category with fewer training detections than this (none included) is calibrated by
        one calibrator pooled over every category's training detections instead of its own
        (for LVIS's rare categories); 1 keeps every category on its own (the toolbox).

    Attributes
    ----------
    category_ids_ : ndarray of shape (n_categories,)
        Sorted category ids of the validation ground truth.
    lower_thresholds_, upper_thresholds_ : ndarray of shape (n_categories,)
        ``u_c`` and ``v_c`` (NaN and -1 keep everything).
    models_ : dict
        ``str(category_id)`` (or ``"all"`` when not class-wise, and the pooled fallback of
        ``min_class_detections > 1``) to a fitted calibrator, or to
        ``{"constant": value}`` (all targets equal: the limit of isotonic, Platt and linear
        maps; one detection for isotonic and linear; a Platt fit with a negative slope,
        whose optimum under the toolbox's ``|a|`` is ``a = 0``, the mean target), or
        ``None`` (identity: no training data, one detection for Platt or temperature, or
        equal targets for temperature).
    n_train_ : ndarray of shape (n_categories,)
        Training detections per category.
    """

    _parameter_constraints: ClassVar[dict] = {
        "method": [Options(*calibrator_names(binary=True)),
                   InstanceOf(Calibrator, "a calibkit Calibrator")],
        "classwise": [BOOLEAN],
        "target": [Options(*TARGETS)],
        "thresholds": [NONE, Options("lrp"), Interval("real", 0, 1)],
        "tau": [Interval("real", 0, 1, closed="left")],
        "iou_op": [Options(*IOU_OPS)],
        "max_dets": [NONE, Interval("integer", 1, None)],
        "tie_aware": [BOOLEAN],
        "iou_type": [Options(*IOU_TYPES)],
        "dataset": [Options(*DATASETS)],
        "min_class_detections": [Interval("integer", 1, None)],
    }
    _fitted_constraints: ClassVar[dict] = {
        "category_ids_": [Array(1, "i")],
        "lower_thresholds_": [Array(1, "f", low=-1.0, high=1.0, allow_nan=True)],
        "upper_thresholds_": [Array(1, "f", low=-1.0, high=1.0, allow_nan=True)],
        "n_train_": [Array(1, "i", low=0)],
        "models_": [DictOf(NONE, InstanceOf(Calibrator, "a fitted calibkit calibrator"),
                           Predicate("constant", _is_constant_model,
                                     "{'constant': a score in [0, 1]}"))],
    }

    def __init__(
        self,
        *,
        method="isotonic",
        classwise=True,
        target="iou",
        thresholds="lrp",
        tau=0.0,
        iou_op="ge",
        max_dets=None,
        tie_aware=False,
        iou_type="bbox",
        dataset="auto",
        min_class_detections=1,
    ):
        self.method = method
        self.classwise = classwise
        self.target = target
        self.thresholds = thresholds
        self.tau = tau
        self.iou_op = iou_op
        self.max_dets = max_dets
        self.tie_aware = tie_aware
        self.iou_type = iou_type
        self.dataset = dataset
        self.min_class_detections = min_class_detections

    # ------------------------------------------------------------------ fit / transform
    def fit(self, gt, dets):
        """Learn ``u_c``, the calibrators and ``v_c`` on validation ``gt`` and ``dets``.

        Parameters
        ----------
        gt : path, dict, pycocotools COCO, LVIS or GroundTruth
            The validation ground truth (see :func:`~calibkit.detection.load_gt`).
        dets : path, COCO results list or Detections
            The validation detections (see :func:`~calibkit.detection.load_dets`;
            torchvision outputs go through :func:`~calibkit.detection.from_torchvision`
            first); not empty.

        Returns
        -------
        self : DetectionCalibrator
            Fitted.
        """
        self._check_params()
        reset_fitted_state(self)
        gt = load_gt(gt, iou_type=self.iou_type)
        d0 = load_dets(dets, iou_type=self.iou_type, gt=gt)
        if len(d0) == 0:
            raise ValueError("dets is empty; fitting needs validation detections.")
        kw = {"tau": self.tau, "iou_op": self.iou_op, "max_dets": self.max_dets,
              "iou_type": self.iou_type, "dataset": self.dataset}
        return self._fit_matched(gt, d0, lambda d: match(gt, d, **kw))

    def _fit_matched(self, gt, d0: Detections, matcher, m0=None):
        """The fit pipeline with the matching step supplied: ``matcher(dets) -> Matches``
        matches a detection set against ``gt`` (:func:`calibkit.detection.match` here, the
        cluster's matching in :func:`calibkit.detection.dask.fit`); ``m0`` are the matches
        of ``d0`` if already made."""
        cats = gt.category_ids
        m0 = matcher(d0) if m0 is None else m0
        u = self._learn_thresholds(m0)
        d1 = d0.subset(apply_thresholds(d0, cats, u))
        m1 = matcher(d1)
        train = m1.valid & (m1.npig > 0)[m1.class_index]
        # pycocotools' IoU of a box with itself can exceed 1 by an ulp
        y = np.clip(m1.iou, 0.0, 1.0) if self.target == "iou" else m1.tp.astype(np.float64)
        cls = m1.class_index
        models = {}
        n_train = np.bincount(cls[train], minlength=len(cats))
        if self.classwise:
            for k in np.flatnonzero(n_train >= max(self.min_class_detections, 1)):
                sel = train & (cls == k)
                models[str(int(cats[k]))] = self._fit_one(d1.score[sel], y[sel])
        if not self.classwise or self.min_class_detections > 1:
            models["all"] = self._fit_one(d1.score[train], y[train]) if train.any() else None
        self.category_ids_ = cats.copy()
        self.lower_thresholds_ = u
        self.models_ = models
        self.n_train_ = n_train
        d2 = d1.with_scores(self._calibrate(d1))
        self.upper_thresholds_ = self._learn_thresholds(matcher(d2))
        return self

    def transform(self, dets, image_ids=None, *, gt=None) -> Detections:
        """Threshold, calibrate and threshold again; a new detection set.

        Parameters
        ----------
        dets : path, COCO results list, Detections or torchvision outputs
            The detections to calibrate (see :func:`~calibkit.detection.load_dets`). A
            detection of a category the calibrator was not fitted on keeps its score and
            passes both thresholds.
        image_ids : array-like of shape (n_outputs,) or None, default=None
            The image id of each torchvision output; needed for torchvision outputs only.
        gt : path, dict or GroundTruth, or None, default=None
            Only read for its image sizes, which polygon masks in ``dets`` need
            (``iou_type="segm"``); masks are checked against them.

        Returns
        -------
        Detections
            The kept detections with their calibrated scores (and masks), in input order
            (``.to_coco()`` gives a COCO results list).
        """
        self._check_fitted()
        d = load_dets(dets, image_ids, iou_type=self.iou_type, gt=gt)
        keep = apply_thresholds(d, self.category_ids_, self.lower_thresholds_)
        kept = d.subset(keep)
        new = self._calibrate(kept)
        keep2 = apply_thresholds(kept.with_scores(new), self.category_ids_,
                                 self.upper_thresholds_)
        return kept.subset(keep2).with_scores(new[keep2])

    def fit_transform(self, gt, dets) -> Detections:
        """``fit(gt, dets).transform(dets, gt=gt)``: fit on validation detections and return
        them thresholded and calibrated.

        Parameters
        ----------
        gt : path, dict, pycocotools COCO, LVIS or GroundTruth
            The validation ground truth (see :func:`~calibkit.detection.load_gt`).
        dets : path, COCO results list or Detections
            The validation detections (see :meth:`fit`).

        Returns
        -------
        Detections
            The kept detections of ``dets`` with their calibrated scores, as
            :meth:`transform` gives them.
        """
        gt = load_gt(gt, iou_type=self.iou_type)
        return self.fit(gt, dets).transform(dets, gt=gt)

    def predict_scores(self, category_ids, scores) -> np.ndarray:
        """Calibrated scores for given categories, without any thresholding.

        Parameters
        ----------
        category_ids : array-like of shape (n,)
            Category id of each score; a category the calibrator was not fitted on keeps
            its score.
        scores : array-like of shape (n,)
            Scores in [0, 1].

        Returns
        -------
        ndarray of shape (n,)
        """
        self._check_fitted()
        cat = np.asarray(category_ids, np.int64).ravel()
        s = np.asarray(scores, np.float64).ravel()
        d = Detections.from_arrays(np.zeros(len(s), np.int64), cat, s, np.zeros((len(s), 4)))
        return self._calibrate(d)

    # ------------------------------------------------------------------ helpers
    def _check_params(self) -> None:
        validate_params(self)
        family = self._family()
        if self.target == "iou" and family in CALIBRATORS and not CALIBRATORS[family].soft_targets:
            raise ValueError(
                f"method={self.method!r} needs binary targets; use target='binary' (D-ECE) "
                "or a method that fits IoU targets in [0, 1]."
            )

    def _check_fitted_state(self) -> None:
        """A loaded detection calibrator must be complete, with one threshold pair and
        training count per category and models keyed by its category ids."""
        need = ("category_ids_", "lower_thresholds_", "upper_thresholds_", "n_train_",
                "models_")
        missing = [n for n in need if not hasattr(self, n)]
        if missing:
            raise ValueError(f"the fitted attribute(s) {missing} are missing.")
        k = len(self.category_ids_)
        if not (len(self.lower_thresholds_) == len(self.upper_thresholds_)
                == len(self.n_train_) == k) or np.any(np.diff(self.category_ids_) <= 0):
            raise ValueError("category_ids_ must be sorted and distinct, with one lower and "
                             "upper threshold and one training count per category.")
        keys = ({str(int(c)) for c in self.category_ids_} | {"all"} if self.classwise
                else {"all"})
        if not set(self.models_) <= keys:
            raise ValueError(f"models_ has keys {sorted(set(self.models_) - keys)} that are "
                             "not category ids of this calibrator.")

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This DetectionCalibrator is not fitted yet; call fit first.")

    def _learn_thresholds(self, m) -> np.ndarray:
        k = m.n_categories
        if self.thresholds is None:
            return np.full(k, np.nan)
        if self.thresholds == "lrp":
            return lrp_optimal_thresholds(m, tie_aware=self.tie_aware)[0]
        return np.full(k, float(self.thresholds))

    def _family(self) -> str:
        """The registry name of the method (``"other"`` for an unregistered class)."""
        if isinstance(self.method, str):
            return self.method
        return method_name(self.method) or "other"

    def _new_calibrator(self):
        return make_calibrator(self.method, input="probs")

    def _fit_one(self, p: np.ndarray, y: np.ndarray):
        family = self._family()
        if family == "identity" or len(p) == 0:
            return None
        scaling = family in ("platt", "temperature")
        if len(p) == 1 and scaling:
            return None  # the toolbox keeps the identity for one detection
        if np.all(y == y[0]):
            # the fit of these families tends to the constant target; the others (temperature,
            # Venn-ABERS, unregistered calibrators) keep the identity, as the toolbox does
            return {"constant": float(y[0])} if family in _CONSTANT_LIMIT else None
        model = self._new_calibrator()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SaturatedProbabilityWarning)
            model.fit(p, y)
        if family == "platt" and getattr(model, "a_", 1.0) < 0:
            # the toolbox's map uses |a|: with a decreasing unconstrained optimum, the
            # optimum over a >= 0 is a = 0, b = logit(mean target), a constant
            return {"constant": float(np.mean(y))}
        return model

    def _calibrate(self, d: Detections) -> np.ndarray:
        """Calibrated scores of every row of ``d`` (no thresholding)."""
        out = d.score.copy()
        if not self.models_ or len(d) == 0:
            return out
        if not self.classwise:
            return _apply(self.models_.get("all"), out)
        cats = self.category_ids_
        idx = np.clip(np.searchsorted(cats, d.category_id), 0, len(cats) - 1)
        known = cats[idx] == d.category_id
        idx = np.where(known, idx, -1)
        order = np.argsort(idx, kind="stable")
        bounds = np.searchsorted(idx[order], np.arange(-1, len(cats) + 1))
        pooled = self.models_.get("all")
        for k in range(len(cats)):
            if self.n_train_[k] < self.min_class_detections:
                model = pooled
            else:
                model = self.models_.get(str(int(cats[k])))
            a, b = bounds[k + 1], bounds[k + 2]
            if model is None or a == b:
                continue
            rows = order[a:b]
            out[rows] = _apply(model, d.score[rows])
        return out


def _apply(model, p: np.ndarray) -> np.ndarray:
    if model is None or len(p) == 0:
        return p
    if isinstance(model, dict):
        return np.full(len(p), model["constant"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturatedProbabilityWarning)
        q = model.predict_proba(p)[:, 1]
    return np.clip(q, 0.0, 1.0)
