"""Venn-ABERS predictors: inductive (IVAP) and cross (CVAP), binary and multiclass.

A Venn-ABERS predictor (Vovk, Petej & Fedorova, 2015) fits isotonic regression twice for every
test score ``s``: once with the test point added to the calibration set with label 0 and once
with label 1. The two fitted values at ``s`` are ``p0 <= p1``; the true probability of the
positive class is, under exchangeability, one of them (perfect calibration of the *multi*-
probability ``(p0, p1)``). A single probability is obtained by a minimax merge.

This module computes ``p0`` and ``p1`` exactly (ties included) for every distinct calibration
score in O(k log k) (one sort, then one linear convex-hull pass over the cumulative-sum diagram
in each direction; algorithms 1-4 of the paper), and predicts in O(log k) per test score with
``np.searchsorted``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.model_selection import StratifiedKFold

from calibkit._validation import (
    BOOLEAN,
    NONE,
    RANDOM_STATE,
    Interval,
    ListOf,
    Options,
    Predicate,
    Scores,
    frequency_weights,
    like_input,
)
from calibkit.base import BinaryCalibrator

__all__ = ["VennAbers", "ivap_fit", "ivap_predict"]

MERGES = ("log", "brier")
MULTICLASS = ("one_vs_rest", "one_vs_one")


class VennAbers(BinaryCalibrator):
    """Venn-ABERS calibration from scores: IVAP, or CVAP when ``n_splits`` is set.

    Parameters
    ----------
    merge : {"log", "brier"}, default="log"
        How ``(p0, p1)`` become one probability. IVAP: ``"log"`` gives
        ``p1 / (1 - p0 + p1)`` and ``"brier"`` gives ``p1 + (p0**2 - p1**2) / 2`` (the minimax
        choices for log loss and Brier loss). CVAP with ``m`` folds (as the ``venn-abers``
        package): ``"log"`` gives ``GM(p1) / (GM(1 - p0) + GM(p1))`` with GM the geometric mean
        over folds, ``"brier"`` gives ``mean(p1) + (mean(p0**2) - mean(p1**2)) / 2``.
    n_splits : int or None, default=None
        ``None``: one IVAP on the whole calibration set. ``m >= 2``: CVAP, the calibration set
        is split into ``m`` stratified folds and one IVAP is fitted per fold (once, at
        ``fit``; predictions reuse them).
    multiclass : {"one_vs_rest", "one_vs_one"}, default="one_vs_rest"
        Strategy for (n, K) scores with K > 2. One-vs-rest: IVAP k is fitted on the score of
        class k against ``1[y == k]``; merged probabilities are renormalised to sum to 1.
        One-vs-one: IVAP (i, j), i < j, is fitted on the samples of classes i and j with the
        score ``p_j / (p_i + p_j)`` (``z_j - z_i`` for logits) against ``1[y == j]``; the
        pairwise probabilities are coupled as in the ``venn-abers`` package,
        ``q_i = 1 / (sum_{j != i} 1 / P(i | i or j) - (K - 2))``, then renormalised.
    precision : int or None, default=None
        Opt-in: round *calibration* scores to this many decimals before fitting (as the
        ``venn-abers`` package does). Faster when there are very many distinct scores, but no
        longer exact. ``None`` (default) uses the scores as given.
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are (see :func:`calibkit._validation.check_scores`).
    shuffle : bool, default=True
        CVAP only: shuffle before splitting into folds.
    random_state : int, RandomState or None, default=None
        CVAP only: seed of the fold split.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    ivaps_ : list of dict
        Binary problems: ``ivaps_[fold]`` holds ``c`` (the sorted distinct calibration
        scores, shape (k,)), ``p0`` and ``p1`` (shape (k + 1,)); a test score ``s`` gets
        ``p0[searchsorted(c, s, "right")]`` and ``p1[searchsorted(c, s, "left")]``.
    estimators_ : list of VennAbers
        Multiclass only: one fitted binary predictor per problem, K (one-vs-rest) or
        K(K-1)/2 (one-vs-one, in the order of ``pairs_``), each with its ``ivaps_``
        (the one-vs-rest / one-vs-one strategies of :class:`calibkit.base.BinaryCalibrator`).
    pairs_ : ndarray of shape (K(K-1)/2, 2)
        One-vs-one only: the class indices (i, j) of each problem, j positive.

    Notes
    -----
    The score of a binary problem is used as given (probability of the positive class, or the
    logit difference); Venn-ABERS depends only on the order of scores, so no conversion is
    applied that could create ties. ``sample_weight`` is supported as *frequency* weights,
    rescaled to mean 1 over the samples of positive weight (only the ratios of the weights
    matter): a sample of weight 2 counts as two average samples, and the test point counts as
    one. The validity guarantee of Venn-ABERS holds for unit weights only. CVAP folds are
    stratified on each binary problem's 0/1 target.

    Fit is O(k log k) for k distinct calibration scores (one sort, two linear hull passes),
    predict O(log k) per score. The hull pass is C (compiled when calibkit is installed).

    References
    ----------
    Vovk, Petej & Fedorova, "Large-scale probabilistic predictors with and without guarantees
    of validity", NeurIPS 2015 (arXiv:1511.00213). Manokhin, "Multi-class probabilistic
    classification using inductive and cross Venn-Abers predictors", COPA 2017.
    """

    _parameter_constraints: ClassVar[dict] = {
        "merge": [Options(*MERGES)],
        "n_splits": [NONE, Interval("integer", 2, None)],
        "multiclass": [Options(*MULTICLASS)],
        "precision": [NONE, Interval("integer", 0, 15)],
        "shuffle": [BOOLEAN],
        "random_state": [RANDOM_STATE],
    }
    _fitted_constraints: ClassVar[dict] = {"ivaps_": [ListOf(Predicate(
        "ivap table", lambda t: _is_ivap_table(t),
        "a dict of c (sorted distinct scores, shape (k,)), p0 and p1 (shape (k + 1,), in [0, 1])",
    ))]}

    def _check_own_fitted_state(self) -> None:
        n = 1 if self.n_splits is None else self.n_splits
        if self.n_features_in_ <= 2 and len(getattr(self, "ivaps_", [])) != n:
            raise ValueError(f"ivaps_ needs {n} fold table(s).")

    def __init__(
        self,
        *,
        merge="log",
        n_splits=None,
        multiclass="one_vs_rest",
        precision=None,
        input="auto",
        shuffle=True,
        random_state=None,
    ):
        self.merge = merge
        self.n_splits = n_splits
        self.multiclass = multiclass
        self.precision = precision
        self.input = input
        self.shuffle = shuffle
        self.random_state = random_state

    _supports_soft_targets = False  # Venn-ABERS calibrates 0/1 labels

    # ------------------------------------------------------------------ public API
    def predict_interval(self, scores, *, return_folds=False):
        """The Venn-ABERS multiprobability ``(p0, p1)`` of each class.

        Parameters
        ----------
        scores : array-like of shape (n,) or (n, K)
            Test scores of the same kind and width as in fit.
        return_folds : bool, default=False
            CVAP only: return the per-fold values with a trailing fold axis.

        Returns
        -------
        p0, p1 : ndarray of shape (n,) for binary scores, (n, K) for multiclass
            Binary: the interval for ``classes_[1]``. One-vs-rest: the raw interval of each
            class's IVAP (before renormalisation). One-vs-one: the coupling formula applied to
            the lower and to the upper pairwise bounds (``P(i | i or j)`` lies in ``[p0, p1]``
            when i is the positive class of the pair and in ``[1 - p1, 1 - p0]`` otherwise).
            CVAP (``return_folds=False``): ``1 - GM(1 - p0)`` and ``GM(p1)`` over folds, the
            interval whose log merge equals the CVAP log merge.
        """
        from calibkit.base import _binary_problems

        s = self._check_predict_scores(scores)
        if s.n_columns <= 2:
            per_problem = [(self, s.positive())]
        else:
            per_problem = [
                (est, score) for est, (score, _, _) in zip(
                    self.estimators_,
                    _binary_problems(self, s, None, self._multiclass_strategy()),
                    strict=True,
                )
            ]
        intervals = [est._fold_intervals(score) for est, score in per_problem]
        p0 = np.stack([lo for lo, _ in intervals], axis=1)  # (n, problems, folds)
        p1 = np.stack([hi for _, hi in intervals], axis=1)
        if not return_folds:
            p0, p1 = _reduce_folds(p0, p1)
        if s.n_columns <= 2:
            p0, p1 = p0[:, 0], p1[:, 0]
        elif self.multiclass == "one_vs_one":
            p0, p1 = self._couple_bounds(p0, p1, s.n_columns)
        return like_input(p0, scores), like_input(p1, scores)

    # ------------------------------------------------------------------ one binary problem
    def _class_scores(self, scores):
        # Venn-ABERS depends only on the order of the scores: logits give log-softmax
        # columns (order-equal to the softmax, without its saturation ties)
        if scores.kind == "probs":
            return scores
        return Scores(scores.log_probs(), "logits", scores.name)

    def _fit_binary(self, s, y, w):
        score = s.values
        if self.precision is not None:
            score = np.round(score, int(self.precision))
        if w is not None:
            w = frequency_weights(w)
        folds = []
        for fold in self._folds(y):
            c, p0, p1 = ivap_fit(score[fold], y[fold],
                                 sample_weight=None if w is None else w[fold])
            folds.append({"c": c, "p0": p0, "p1": p1})
        self.ivaps_ = folds

    def _fold_intervals(self, s):
        """``(p0, p1)`` of each fold, each of shape (n, n_folds)."""
        ss = _SortedScores(s.values)
        pairs = [_lookup(f["c"], f["p0"], f["p1"], ss) for f in self.ivaps_]
        return (np.column_stack([lo for lo, _ in pairs]),
                np.column_stack([hi for _, hi in pairs]))

    def _predict_binary(self, s):
        p0, p1 = self._fold_intervals(s)
        return _merge(p0, p1, self.merge)

    def _folds(self, y):
        if self.n_splits is None:
            return [np.arange(len(y))]
        kf = StratifiedKFold(
            n_splits=int(self.n_splits),
            shuffle=bool(self.shuffle),
            random_state=self.random_state if self.shuffle else None,
        )
        return [test for _, test in kf.split(np.zeros(len(y)), y)]

    def _couple_bounds(self, p0, p1, n_classes):
        lo = np.zeros((len(p0), n_classes))
        hi = np.zeros_like(lo)
        with np.errstate(divide="ignore"):
            for m, (i, j) in enumerate(self.pairs_):
                lo[:, j] += 1.0 / p0[:, m]
                hi[:, j] += 1.0 / p1[:, m]
                lo[:, i] += 1.0 / (1.0 - p1[:, m])
                hi[:, i] += 1.0 / (1.0 - p0[:, m])
            return 1.0 / (lo - (n_classes - 2)), 1.0 / (hi - (n_classes - 2))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


# --------------------------------------------------------------------------------------
# IVAP core: fit and predict for one binary problem
# --------------------------------------------------------------------------------------


def _is_ivap_table(t) -> bool:
    if not isinstance(t, dict) or set(t) != {"c", "p0", "p1"}:
        return False
    c, p0, p1 = t["c"], t["p0"], t["p1"]
    arrays = all(isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind == "f"
                 for a in (c, p0, p1))
    return bool(arrays and len(p0) == len(p1) == len(c) + 1 and np.all(np.isfinite(c))
                and np.all(np.diff(c) > 0) and np.all((p0 >= 0) & (p0 <= 1))
                and np.all((p1 >= 0) & (p1 <= 1)))


def ivap_fit(scores, y, *, sample_weight=None):
    """Exact IVAP tables for one binary problem in O(k log k).

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Calibration scores (any monotone scale).
    y : ndarray of shape (n,)
        Labels in {0, 1}.
    sample_weight : ndarray of shape (n,) or None, default=None
        Frequency weights (the test point has weight 1); zero-weight samples are ignored.

    Returns
    -------
    c : ndarray of shape (k,)
        Sorted distinct calibration scores (of positive weight).
    p0, p1 : ndarray of shape (k + 1,)
        ``p0[j]`` (j >= 1) is the isotonic fit at ``c[j-1]`` after adding the test point with
        label 0 tied with ``c[j-1]``; ``p0[0] = 0`` (a test score below every calibration
        score). ``p1[j]`` (j < k) is the isotonic fit at ``c[j]`` with the test point added
        with label 1 tied with ``c[j]``; ``p1[k] = 1``. A test score strictly between
        ``c[j-1]`` and ``c[j]`` has p0 = ``p0[j]`` and p1 = ``p1[j]`` (the same values as when
        it is tied with ``c[j-1]``, resp. ``c[j]``).

    Notes
    -----
    Ties are pooled (one point of the cumulative-sum diagram per distinct score, weight = the
    number of tied samples), exactly as isotonic regression treats them. p1 at every
    calibration point is the slope, over the test point's segment, of the greatest convex
    minorant of the diagram with the test point inserted; moving the test point one group to
    the right changes one point of the diagram, so one stack pass from the left gives all of
    them (algorithms 1-2 of Vovk, Petej & Fedorova, 2015). p0 follows by symmetry: reversing
    the order and flipping the labels turns p0 into ``1 - p1``.
    """
    s = np.asarray(scores, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w is not None:
        keep = w > 0
        s, yy, w = s[keep], yy[keep], w[keep]
    if s.size == 0:  # no calibration point: the vacuous interval [0, 1]
        return s[:0], np.zeros(1), np.ones(1)
    order = np.argsort(s)
    s_sorted = s[order]
    first = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    c = s_sorted[first]
    if w is None:
        group_w = np.diff(np.r_[first, s.size]).astype(np.float64)
        group_y = np.add.reduceat(yy[order], first)
    else:
        group_w = np.add.reduceat(w[order], first)
        group_y = np.add.reduceat((w * yy)[order], first)
    kernel = _hull_kernel()
    upper = kernel(np.r_[0.0, np.cumsum(group_w)], np.r_[0.0, np.cumsum(group_y)])
    flipped = (group_w - group_y)[::-1]
    lower = 1.0 - kernel(np.r_[0.0, np.cumsum(group_w[::-1])], np.r_[0.0, np.cumsum(flipped)])
    p0 = np.r_[0.0, lower[::-1]]
    p1 = np.r_[upper, 1.0]
    # slopes of cumulative sums of labels in [0, 1]; clip the last-ulp rounding
    return c, np.clip(p0, 0.0, 1.0), np.clip(p1, 0.0, 1.0)


def ivap_predict(c, p0, p1, scores):
    """``(p0, p1)`` of test ``scores`` from :func:`ivap_fit` tables.

    ``p0[searchsorted(c, s, "right")]`` and ``p1[searchsorted(c, s, "left")]``: one binary
    search per score, O(log k). Large batches are sorted first so that the searches walk
    the table in order (cache friendly); the result is the same.

    Parameters
    ----------
    c : ndarray of shape (k,)
        Sorted distinct calibration scores, from :func:`ivap_fit`.
    p0, p1 : ndarray of shape (k + 1,)
        The tables of :func:`ivap_fit`.
    scores : array-like of shape (n,)
        Test scores, on the scale of the calibration scores.

    Returns
    -------
    p0, p1 : ndarray of shape (n,)
        The lower and upper Venn-ABERS probabilities of each test score: the isotonic fit at
        the score with the score added to the calibration set with label 0, resp. 1
        (``p0 = 0`` and ``p1 = 1`` for every score when ``k = 0``).
    """
    s = np.asarray(scores, dtype=np.float64)
    return _lookup(c, p0, p1, _SortedScores(s))


class _SortedScores:
    """Test scores with their sort order, shared by every fold of one problem."""

    def __init__(self, s):
        self.s = s
        self.order = np.argsort(s) if s.size > 4096 else None
        self.sorted = s if self.order is None else s[self.order]


def _lookup(c, p0, p1, ss):
    if len(c) == 0:
        return np.full(ss.s.shape, p0[0]), np.full(ss.s.shape, p1[0])
    left = np.searchsorted(c, ss.sorted, side="left")
    # c is strictly increasing, so side="right" differs from "left" exactly on ties
    tied = c[np.minimum(left, len(c) - 1)] == ss.sorted
    a0 = p0[left + tied]
    a1 = p1[left]
    if ss.order is None:
        return a0, a1
    o0 = np.empty_like(a0)
    o1 = np.empty_like(a1)
    o0[ss.order] = a0
    o1[ss.order] = a1
    return o0, o1


def _upper_slopes_py(cw, cy):
    """p1 of each group from the cumulative diagram ``P_b = (cw[b], cy[b])``, b = 0..k.

    With the test point (label 1, weight 1) tied with group i (1-based), the diagram, shifted
    by (-1, -1) left of the test point, is ``Q_0..Q_{i-1}, P_{i-1}, P_i..P_k`` with
    ``Q_a = P_a - (1, 1)``; the test segment is ``[Q_{i-1}, P_{i-1}]``. The stack holds the
    lower hull of the points from its top (leftmost vertex) to ``P_k``; going from group i to
    i + 1 replaces ``P_{i-1}`` (never a hull vertex: the slope into it is >= 1, out of it
    <= 1) by ``Q_i``.
    """
    k = cw.shape[0] - 1
    # slots: Q_a at a (a = 0..k), P_b at k + 1 + b
    xs = np.empty(2 * k + 2)
    ys = np.empty(2 * k + 2)
    for a in range(k + 1):
        xs[a] = cw[a] - 1.0
        ys[a] = cy[a] - 1.0
        xs[k + 1 + a] = cw[a]
        ys[k + 1 + a] = cy[a]
    stack = np.empty(k + 2, dtype=np.int64)
    top = -1
    # lower hull of Q_0, P_0..P_k built from the right, so the top is the leftmost vertex
    for r in range(k + 2):
        pt = 2 * k + 1 - r if r <= k else 0
        while top >= 1:
            b = stack[top]
            c = stack[top - 1]
            turn = (xs[b] - xs[pt]) * (ys[c] - ys[pt]) - (ys[b] - ys[pt]) * (xs[c] - xs[pt])
            if turn > 0.0:
                break
            top -= 1
        top += 1
        stack[top] = pt
    out = np.empty(k)
    for i in range(1, k + 1):
        t = stack[top]
        nx = stack[top - 1]
        out[i - 1] = (ys[nx] - ys[t]) / (xs[nx] - xs[t])
        q = i  # Q_i
        turn = (xs[q] - xs[t]) * (ys[nx] - ys[t]) - (ys[q] - ys[t]) * (xs[nx] - xs[t])
        if turn <= 0.0:  # Q_i on or above the current edge: hull unchanged
            continue
        top -= 1
        while top >= 1:
            b = stack[top]
            c = stack[top - 1]
            turn = (xs[b] - xs[q]) * (ys[c] - ys[q]) - (ys[b] - ys[q]) * (xs[c] - xs[q])
            if turn > 0.0:
                break
            top -= 1
        top += 1
        stack[top] = q
    return out


def _hull_kernel():
    """The hull pass ``_upper_slopes_py`` compiled (C through Cython, built when calibkit
    is installed: the same code, the same arithmetic in the same order)."""
    from calibkit._venn_abers_hull import upper_slopes

    return upper_slopes


def _merge(p0, p1, merge):
    """Merge (..., folds) intervals into (...) probabilities."""
    if merge == "log":
        with np.errstate(divide="ignore"):
            g1 = np.exp(np.mean(np.log(p1), axis=-1))
            g0 = np.exp(np.mean(np.log1p(-p0), axis=-1))
        return g1 / (g0 + g1)
    return np.mean(p1, axis=-1) + 0.5 * np.mean(p0**2, axis=-1) - 0.5 * np.mean(p1**2, axis=-1)


def _reduce_folds(p0, p1):
    if p0.shape[-1] == 1:
        return p0[..., 0], p1[..., 0]
    with np.errstate(divide="ignore"):
        lo = 1.0 - np.exp(np.mean(np.log1p(-p0), axis=-1))
        hi = np.exp(np.mean(np.log(p1), axis=-1))
    return lo, hi


