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
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from calibkit.detection.calibrators import LinearCalibration
from calibkit.detection.io import Detections, load_dets, load_gt
from calibkit.detection.matching import _check_iou_op, _check_max_dets, _check_tau, match
from calibkit.detection.thresholds import apply_thresholds, lrp_optimal_thresholds
from sklearn.base import BaseEstimator, clone

from calibkit._validation import SaturatedProbabilityWarning
from calibkit.base import Calibrator

__all__ = ["DetectionCalibrator"]

METHODS = ("isotonic", "platt", "temperature", "linear", "identity")
TARGETS = ("iou", "binary")


class DetectionCalibrator(BaseEstimator):
    """Class-wise calibration of detection scores with per-class operating thresholds.

    Parameters
    ----------
    calibrator : {"isotonic", "platt", "temperature", "linear", "identity"} or Calibrator, \
default="isotonic"
        ``"isotonic"``: :class:`calibkit.IsotonicCalibration` (PAV, linear interpolation,
        clipped outside the training range: scikit-learn's ``IsotonicRegression(y_min=0,
        y_max=1, out_of_bounds="clip")``); ``"platt"``: :class:`calibkit.PlattScaling`,
        ``sigmoid(a logit(p) + b)``; ``"temperature"``: :class:`calibkit.TemperatureScaling`,
        ``sigmoid(logit(p) / T)``; both fitted by cross-entropy with soft targets to
        convergence (the toolbox stops its L-BFGS after 100 steps, so parity with it is about
        1e-3 in LaECE, not exact); ``"linear"``: :class:`LinearCalibration`,
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
    max_dets : int, default=100
        Detections per (image, class).
    tie_aware : bool, default=False
        LRP-optimal thresholds evaluated only at ends of tie groups (see
        :func:`calibkit.detection.lrp_optimal_thresholds`); ``False`` reproduces the toolbox.

    Attributes
    ----------
    category_ids_ : ndarray of shape (n_categories,)
        Sorted category ids of the validation ground truth.
    lower_thresholds_, upper_thresholds_ : ndarray of shape (n_categories,)
        ``u_c`` and ``v_c`` (NaN and -1 keep everything).
    models_ : dict
        ``str(category_id)`` (or ``"all"`` when not class-wise) to a fitted calibrator, or to
        ``{"constant": value}`` (all targets equal: the limit of isotonic, Platt and linear
        maps; one detection for isotonic and linear; a Platt fit with a negative slope,
        whose optimum under the toolbox's ``|a|`` is ``a = 0``, the mean target), or
        ``None`` (identity: no training data, one detection for Platt or temperature, or
        equal targets for temperature).
    n_train_ : ndarray of shape (n_categories,)
        Training detections per category.
    """

    def __init__(
        self,
        calibrator="isotonic",
        *,
        classwise=True,
        target="iou",
        thresholds="lrp",
        tau=0.0,
        iou_op="ge",
        max_dets=100,
        tie_aware=False,
    ):
        self.calibrator = calibrator
        self.classwise = classwise
        self.target = target
        self.thresholds = thresholds
        self.tau = tau
        self.iou_op = iou_op
        self.max_dets = max_dets
        self.tie_aware = tie_aware

    # ------------------------------------------------------------------ fit / transform
    def fit(self, gt, dets):
        """Learn ``u_c``, the calibrators and ``v_c`` on validation ``gt`` and ``dets``.

        Parameters
        ----------
        gt : path, dict, pycocotools COCO or GroundTruth
        dets : path, COCO results list, Detections or torchvision outputs

        Returns
        -------
        self
        """
        self._check_params()
        gt = load_gt(gt)
        d0 = load_dets(dets)
        if len(d0) == 0:
            raise ValueError("dets is empty; fitting needs validation detections.")
        kw = {"tau": self.tau, "iou_op": self.iou_op, "max_dets": self.max_dets}
        cats = gt.category_ids
        m0 = match(gt, d0, **kw)
        u = self._learn_thresholds(m0)
        d1 = d0.subset(apply_thresholds(d0, cats, u))
        m1 = match(gt, d1, **kw)
        train = m1.valid & (m1.npig > 0)[m1.class_index]
        # pycocotools' IoU of a box with itself can exceed 1 by an ulp
        y = np.clip(m1.iou, 0.0, 1.0) if self.target == "iou" else m1.tp.astype(np.float64)
        cls = m1.class_index
        models = {}
        n_train = np.bincount(cls[train], minlength=len(cats))
        if self.classwise:
            for k in np.flatnonzero(n_train):
                sel = train & (cls == k)
                models[str(int(cats[k]))] = self._fit_one(d1.score[sel], y[sel])
        else:
            models["all"] = self._fit_one(d1.score[train], y[train]) if train.any() else None
        self.category_ids_ = cats.copy()
        self.lower_thresholds_ = u
        self.models_ = models
        self.n_train_ = n_train
        d2 = d1.with_scores(self._calibrate(d1))
        self.upper_thresholds_ = self._learn_thresholds(match(gt, d2, **kw))
        return self

    def transform(self, dets, image_ids=None):
        """Threshold, calibrate and threshold again; a new detection set.

        Parameters
        ----------
        dets : path, COCO results list, Detections or torchvision outputs
        image_ids : array-like, optional
            Needed for torchvision outputs.

        Returns
        -------
        list of dict or Detections
            A COCO results list (new dicts, other keys copied) when ``dets`` is a list of
            COCO result dicts or a path; a :class:`Detections` otherwise.
        """
        self._check_fitted()
        d = load_dets(dets, image_ids)
        keep = apply_thresholds(d, self.category_ids_, self.lower_thresholds_)
        kept = d.subset(keep)
        new = self._calibrate(kept)
        keep2 = apply_thresholds(kept.with_scores(new), self.category_ids_,
                                 self.upper_thresholds_)
        rows = np.flatnonzero(keep)[keep2]
        scores = new[keep2]
        if isinstance(dets, (str, Path)):
            return Detections(d.image_id[rows], d.category_id[rows], scores,
                              d.box[rows]).to_coco()
        if isinstance(dets, (list, tuple)) and (len(dets) == 0 or "bbox" in dets[0]):
            pairs = zip(rows.tolist(), scores.tolist(), strict=True)
            return [{**dets[i], "score": s} for i, s in pairs]
        return Detections(d.image_id[rows], d.category_id[rows], scores, d.box[rows])

    def fit_transform(self, gt, dets):
        """``fit(gt, dets).transform(dets)``."""
        return self.fit(gt, dets).transform(dets)

    def predict_scores(self, category_ids, scores) -> np.ndarray:
        """Calibrated scores of shape (n,) for given categories, without any thresholding."""
        self._check_fitted()
        cat = np.asarray(category_ids, np.int64).ravel()
        s = np.asarray(scores, np.float64).ravel()
        d = Detections.from_arrays(np.zeros(len(s), np.int64), cat, s, np.zeros((len(s), 4)))
        return self._calibrate(d)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """JSON-safe dict of the parameters and the fitted state."""
        params = self.get_params(deep=False)
        if isinstance(params["calibrator"], Calibrator):
            params["calibrator"] = params["calibrator"].to_dict()
        out = {"__detection_calibrator__": 1, "params": params}
        if hasattr(self, "models_"):
            out["fitted"] = {
                "category_ids_": self.category_ids_.tolist(),
                "lower_thresholds_": _nan_to_none(self.lower_thresholds_),
                "upper_thresholds_": _nan_to_none(self.upper_thresholds_),
                "n_train_": self.n_train_.tolist(),
                "models_": {
                    k: (v.to_dict() if isinstance(v, Calibrator) else v)
                    for k, v in self.models_.items()
                },
            }
        return out

    @classmethod
    def from_dict(cls, data: dict) -> DetectionCalibrator:
        """Rebuild from :meth:`to_dict` output."""
        if not isinstance(data, dict) or "__detection_calibrator__" not in data:
            raise ValueError("data is not a saved DetectionCalibrator.")
        params = dict(data["params"])
        if isinstance(params.get("calibrator"), dict):
            params["calibrator"] = Calibrator.from_dict(params["calibrator"])
        obj = cls(**params)
        fitted = data.get("fitted")
        if fitted:
            obj.category_ids_ = np.asarray(fitted["category_ids_"], np.int64)
            obj.lower_thresholds_ = _none_to_nan(fitted["lower_thresholds_"])
            obj.upper_thresholds_ = _none_to_nan(fitted["upper_thresholds_"])
            obj.n_train_ = np.asarray(fitted["n_train_"], np.int64)
            obj.models_ = {
                k: (Calibrator.from_dict(v) if isinstance(v, dict) and "__calibrator__" in v
                    else v)
                for k, v in fitted["models_"].items()
            }
        return obj

    def save(self, path) -> None:
        """Save as JSON (no pickle)."""
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path) -> DetectionCalibrator:
        """Load a calibrator written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not a valid DetectionCalibrator JSON file: {exc}") from exc
        return cls.from_dict(data)

    # ------------------------------------------------------------------ helpers
    def _check_params(self) -> None:
        if not isinstance(self.calibrator, Calibrator) and self.calibrator not in METHODS:
            raise ValueError(
                f"calibrator must be one of {METHODS} or a calibkit Calibrator instance; "
                f"got {self.calibrator!r}."
            )
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}; got {self.target!r}.")
        th = self.thresholds
        if not (th is None or th == "lrp" or (
            isinstance(th, (int, float)) and not isinstance(th, bool) and 0 <= th <= 1
        )):
            raise ValueError(f"thresholds must be 'lrp', a float in [0, 1] or None; got {th!r}.")
        _check_tau(self.tau)
        _check_iou_op(self.iou_op)
        _check_max_dets(self.max_dets)

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
        c = self.calibrator
        if isinstance(c, str):
            return c
        name = type(c).__name__
        return {"IsotonicCalibration": "isotonic", "PlattScaling": "platt",
                "TemperatureScaling": "temperature",
                "LinearCalibration": "linear"}.get(name, "other")

    def _new_calibrator(self):
        c = self.calibrator
        if isinstance(c, Calibrator):
            return clone(c)
        if c == "isotonic":
            from calibkit.isotonic import IsotonicCalibration

            return IsotonicCalibration(input="probs")
        if c == "platt":
            from calibkit.scaling import PlattScaling

            return PlattScaling(input="probs")
        if c == "temperature":
            from calibkit.scaling import TemperatureScaling

            return TemperatureScaling(input="probs")
        return LinearCalibration(input="probs")

    def _fit_one(self, p: np.ndarray, y: np.ndarray):
        family = self._family()
        if family == "identity" or len(p) == 0:
            return None
        scaling = family in ("platt", "temperature")
        if len(p) == 1 and scaling:
            return None  # the toolbox keeps the identity for one detection
        if np.all(y == y[0]):
            # every calibrator family but temperature tends to this constant
            return None if family in ("temperature", "other") else {"constant": float(y[0])}
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
        for k in range(len(cats)):
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


def _nan_to_none(a: np.ndarray) -> list:
    return [None if np.isnan(v) else float(v) for v in a]


def _none_to_nan(a: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in a], np.float64)
