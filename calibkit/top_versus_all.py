"""Top-versus-all: multiclass calibration as one binary problem on the top-label confidence
(Le Coz, Herbin & Adjed, "Confidence calibration of classifiers with many classes",
NeurIPS 2024; top-label calibration of Gupta & Ramdas, ICLR 2022).

* :class:`TopVersusAll` makes any binary calibrator (Platt, isotonic, histogram, beta,
  Venn-ABERS, spline) a multiclass one without one-vs-rest: it is fitted once, on the
  confidence ``max_k p_k`` against ``1[argmax_k p_k == y]``.
* :func:`top_label_problem` and :func:`top_label_probabilities` are the two halves of the
  reformulation, shared with :class:`calibkit.spline.SplineCalibration`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.base import clone

from calibkit._validation import InstanceOf, Scores
from calibkit.base import Calibrator

__all__ = ["TopVersusAll", "top_label_problem", "top_label_probabilities"]


def top_label_problem(probs: np.ndarray, y: np.ndarray | None = None):
    """The top-label binary problem of probabilities ``probs`` (n, K).

    Parameters
    ----------
    probs : ndarray of shape (n, K)
        Class probabilities (the input is not checked).
    y : ndarray of shape (n,) or None, default=None
        True labels as class indices in ``[0, K)``; None at predict time.

    Returns
    -------
    top : ndarray of shape (n,)
        ``argmax_k p_k`` (the first one on ties).
    confidence : ndarray of shape (n,)
        ``max_k p_k``.
    correct : ndarray of shape (n,) or None
        ``1.0`` where ``top == y`` (class indices), else ``0.0``; None without ``y``.
    """
    top = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), top]
    correct = None if y is None else (top == y).astype(np.float64)
    return top, confidence, correct


def top_label_probabilities(probs: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Full probability vectors from a calibrated top-label confidence.

    With ``p_1`` the top probability, ``p_2`` the second largest and ``s`` the mass of
    the other classes (``1 - p_1`` for rows summing to 1), the top class gets
    ``q' = max(q, p_2 / (s + p_2))`` and every other class ``k`` its share of the rest,
    ``p_k (1 - q') / s`` (uniform over the others when ``s = 0``). The floor on ``q'`` is the
    smallest confidence that keeps the top class first (at the floor it is raised by one ulp
    over the runner-up), so the predicted class never changes.

    Parameters
    ----------
    probs : ndarray of shape (n, K)
    q : ndarray of shape (n,)
        Calibrated confidence of the top class.

    Returns
    -------
    ndarray of shape (n, K)
    """
    n, k = probs.shape
    rows = np.arange(n)
    top = probs.argmax(axis=1)
    rest = probs.copy()
    rest[rows, top] = 0.0
    p2 = rest.max(axis=1)
    # the others' mass (1 - p_1 for rows summing to 1; rows of float32 probabilities may not)
    left = rest.sum(axis=1)
    floor = np.divide(p2, left + p2, out=np.full(n, 1.0 / k), where=(left + p2) > 0)
    q = np.clip(np.maximum(q, floor), 0.0, 1.0)
    share = np.empty_like(rest)
    degenerate = left <= 0
    np.divide(rest, left[:, None], out=share, where=~degenerate[:, None])
    share[degenerate] = 1.0 / (k - 1)
    share[degenerate, top[degenerate]] = 0.0
    out = share * (1.0 - q)[:, None]
    # at the floor the top class ties with the runner-up: one ulp more keeps it the argmax
    out[rows, top] = np.maximum(q, np.nextafter(out.max(axis=1), 2.0) * (q <= floor))
    return out


class TopVersusAll(Calibrator):
    """Top-versus-all (TvA): a binary calibrator of the top-label confidence, for any
    number of classes.

    Fit: ``calibrator`` (a clone) is fitted once on the confidences ``c_i = max_k p_ik``
    against ``1[argmax_k p_ik == y_i]``. Predict: the top class gets the calibrated
    confidence, the other classes share the rest in proportion to their probabilities
    (see :func:`top_label_probabilities`); the predicted class is kept.

    Parameters
    ----------
    calibrator : str or Calibrator, default="isotonic"
        A registry name of a binary calibrator (``"platt"``, ``"isotonic"``,
        ``"histogram"``, ``"beta"``, ``"venn_abers"``, ``"spline"``, ...) or an unfitted
        calibkit calibrator that accepts one score per sample (cloned at fit).
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are; logits go through the softmax. Binary scores (n,) or (n, 2)
        are the two-class case ``[1 - p, p]``.

    Attributes
    ----------
    calibrator_ : Calibrator
        The fitted binary calibrator of the confidence (``input="probs"``).
    classes_ : ndarray of shape (n_classes,)

    Notes
    -----
    Against one-vs-rest, TvA fits one calibrator on all n samples (instead of K calibrators,
    each seeing few positives when K is large), never renormalises K independent outputs,
    and leaves the ranking of the classes as it is. What it calibrates is the top-label
    confidence: class-wise calibration of the other classes is not its target.
    """

    _parameter_constraints: ClassVar[dict] = {
        "calibrator": [InstanceOf(str, "a registry name"),
                       InstanceOf(Calibrator, "a calibkit calibrator of one score")],
    }
    _fitted_constraints: ClassVar[dict] = {
        "calibrator_": [InstanceOf(Calibrator, "a fitted calibkit calibrator")],
    }

    def __init__(self, *, calibrator="isotonic", input="auto"):
        self.calibrator = calibrator
        self.input = input

    def _make_inner(self) -> Calibrator:
        from calibkit.registry import CALIBRATORS, make_calibrator

        if isinstance(self.calibrator, str):
            spec = CALIBRATORS.get(self.calibrator)
            if spec is None or not spec.binary:
                binary = [n for n, s in CALIBRATORS.items() if s.binary]
                raise ValueError(
                    f"calibrator={self.calibrator!r} is not a binary calibrator of the "
                    f"registry; choose one of {', '.join(binary)} or pass an instance."
                )
            est = make_calibrator(self.calibrator)
        else:
            est = clone(self.calibrator)
        if "input" in est.get_params(deep=False):
            est.set_params(input="probs")
        return est

    def _fit(self, scores: Scores, targets, sample_weight):
        probs = _class_probs(scores)
        _, conf, correct = top_label_problem(probs, targets.y)
        n_correct = int(np.count_nonzero(correct))
        if n_correct in (0, len(correct)):
            # the binary problem has one class: the confidence map is not identifiable
            kind = "wrong" if n_correct == 0 else "correct"
            raise ValueError(
                f"all {len(correct)} top-label predictions of the calibration data are {kind}; "
                "top-versus-all calibration needs both correct and wrong top-label "
                "predictions (use more calibration data)."
            )
        self.calibrator_ = self._make_inner().fit(conf, correct, sample_weight=sample_weight)

    def _predict_proba(self, scores):
        probs = _class_probs(scores)
        _, conf, _ = top_label_problem(probs)
        q = np.asarray(self.calibrator_.predict_proba(conf))[:, 1]
        return top_label_probabilities(probs, q)


def _class_probs(scores: Scores) -> np.ndarray:
    """(n, K) probabilities; 1-D binary scores are ``[1 - p, p]``."""
    p = scores.probs()
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    return p

