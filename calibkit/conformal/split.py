"""Split (inductive) conformal classification from scores, with Mondrian strata."""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from calibkit._chunks import chunk_rows
from calibkit._validation import (
    BOOLEAN,
    INPUT_KINDS,
    NONE,
    RANDOM_STATE,
    Array,
    Interval,
    ListOf,
    Options,
    check_consistent_length,
    check_labels,
    check_param,
    check_scores,
    encode_labels,
    like_input,
    validate_params,
)
from calibkit.base import Persistable, check_predict_scores, reset_fitted_state
from calibkit.conformal.scores import (
    SCORES,
    aps_score,
    include_last_label_sets,
    label_ranks,
    lac_score,
    prefix_sets,
    raps_score,
    topk_score,
    true_label_score,
)

__all__ = ["SplitConformalClassifier", "conformal_quantile", "TrivialSetWarning"]

#: the lambda grid searched when ``lam=None`` (the grid of MAPIE's RAPS)
RAPS_LAMBDAS = (0.001, 0.01, 0.1, 0.2, 0.5)


class TrivialSetWarning(UserWarning):
    """The calibration set (or a stratum of it) is too small for the requested ``alpha``:
    the quantile is +inf and every prediction set holds every label."""


class SplitConformalClassifier(Persistable, BaseEstimator):
    """Split conformal prediction sets and p-values from classifier scores.

    Parameters
    ----------
    conformity_score : {"lac", "aps", "raps", "topk"}, default="lac"
        Non-conformity score (see :mod:`calibkit.conformal.scores`). LAC gives the smallest
        average sets; APS and RAPS adapt the set size to the difficulty of each sample
        (better conditional coverage); top-k gives sets of one fixed size.
    alpha : float in (0, 1) or None, default=None
        Miscoverage: sets contain the true label with probability at least ``1 - alpha``.
        Give ``alpha`` or ``confidence_level`` (= 1 - alpha, MAPIE's name), not both;
        neither means ``alpha=0.1``.
    confidence_level : float in (0, 1) or None, default=None
    class_conditional : bool, default=False
        Mondrian by true label: label k of a test sample is judged against the calibration
        samples of class k only, so coverage holds for every class separately.
    randomized : bool, default=False
        APS/RAPS only. ``True``: the scores use a uniform ``u`` (one per calibration sample,
        one per test row) and the set is ``{k : E(x, k) <= q}``, which can be empty; coverage
        is ``1 - alpha`` up to ``1 / (n + 1)``. ``False``: ``u = 1`` (cumulative mass up to
        and including k).
    include_last_label : bool, default=False
        Non-randomised APS/RAPS only. ``False``: exactly ``{k : E(x, k) <= q}`` (may be
        empty). ``True``: also include the label whose cumulative score first reaches the
        threshold (and labels tied with it in probability), so sets are never empty; this is
        the set rule of MAPIE's default ``include_last_label=True``, and it over-covers
        (sets are a superset of the ``False`` ones). Both have coverage >= 1 - alpha.
    k_reg : int >= 0 or None, default=None
        RAPS only: the rank from which the penalty starts. ``None`` tunes it on a held-out
        part (``raps_size``) of the calibration data: the conformal ``1 - alpha`` quantile
        of the rank of the true label.
    lam : float >= 0 or None, default=None
        RAPS only: the weight of the penalty. ``None`` tunes it on the held-out part: the
        value of ``RAPS_LAMBDAS`` giving the smallest mean set size. When either ``k_reg``
        or ``lam`` is tuned, the hold-out does not calibrate; the rest does.
    raps_size : float in (0, 1), default=0.2
    input : {"auto", "logits", "probs", "log_probs"}, default="auto"
        What the scores are; logits are turned into softmax probabilities.
    random_state : int, RandomState, Generator or None, default=None
        Seeds the randomised scores and the RAPS hold-out split. ``fit`` draws one seed
        from it (``random_seed_``); calibration uniforms, test-time uniforms and the RAPS
        split come from three independent streams of that seed, so test-time randomness is
        independent of the calibration draws, and the same input always gives the same
        output, whatever kind of ``random_state`` was passed.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
    alpha_ : float
    quantiles_ : ndarray of shape (n_strata,)
        The threshold ``q`` of each stratum: the ``ceil((n_s + 1)(1 - alpha))``-th smallest
        calibration score of the stratum's ``n_s`` samples; ``+inf`` when that rank exceeds
        ``n_s`` (``alpha < 1 / (n_s + 1)``, warned with :class:`TrivialSetWarning`).
    strata_ : ndarray of shape (n_strata,) or (n_strata, 2)
        Stratum keys: ``[0]`` (marginal), the group labels, class indices, or (group index,
        class index) pairs (shape (n_strata, 2)).
    cal_scores_ : list of ndarray of shape (n_s,)
        Sorted calibration scores of each stratum (used by :meth:`predict_pvalues`).
    groups_ : ndarray of shape (n_groups,) or None
        The sorted Mondrian groups seen in fit (None without ``groups=``).
    k_reg_, lam_ : int and float, or None
        RAPS parameters used (None for other scores).
    random_seed_ : int
        The seed of the random streams, drawn from ``random_state`` at fit.

    Notes
    -----
    With ``n`` exchangeable calibration samples the set contains the true label with
    probability in ``[1 - alpha, 1 - alpha + 1 / (n + 1))`` (upper bound for continuous,
    randomised scores). When ``alpha < 1 / (n + 1)`` no finite threshold is valid: the
    sets are every label (a trivial but valid answer) and a warning says so.
    """

    _parameter_constraints: ClassVar[dict] = {
        "conformity_score": [Options(*SCORES)],
        "alpha": [NONE, Interval("real", 0, 1, closed="neither")],
        "confidence_level": [NONE, Interval("real", 0, 1, closed="neither")],
        "class_conditional": [BOOLEAN],
        "randomized": [BOOLEAN],
        "include_last_label": [BOOLEAN],
        "k_reg": [NONE, Interval("integer", 0, None)],
        "lam": [NONE, Interval("real", 0, None)],
        "raps_size": [Interval("real", 0, 1, closed="neither")],
        "input": [Options(*INPUT_KINDS)],
        "random_state": [RANDOM_STATE],
    }
    _fitted_constraints: ClassVar[dict] = {
        "classes_": [Array(1, "iU")],
        "n_features_in_": [Interval("integer", 1, None)],
        "input_kind_": [Options("logits", "probs")],
        "alpha_": [Interval("real", 0, 1, closed="neither")],
        "quantiles_": [Array(1, "f", allow_inf=True)],
        "strata_": [Array(None, "iU")],
        "cal_scores_": [ListOf(Array(1, "f"))],
        "groups_": [NONE, Array(1, "iU")],
        "k_reg_": [NONE, Interval("integer", 0, None)],
        "lam_": [NONE, Interval("real", 0, None)],
        "random_seed_": [Interval("integer", 0, None)],
    }

    def __init__(
        self,
        *,
        conformity_score="lac",
        alpha=None,
        confidence_level=None,
        class_conditional=False,
        randomized=False,
        include_last_label=False,
        k_reg=None,
        lam=None,
        raps_size=0.2,
        input="auto",
        random_state=None,
    ):
        self.conformity_score = conformity_score
        self.alpha = alpha
        self.confidence_level = confidence_level
        self.class_conditional = class_conditional
        self.randomized = randomized
        self.include_last_label = include_last_label
        self.k_reg = k_reg
        self.lam = lam
        self.raps_size = raps_size
        self.input = input
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(self, scores, y, *, groups=None):
        """Calibrate on held-out scores and labels; every earlier fitted state is discarded.

        Parameters
        ----------
        scores : array-like of shape (n_samples, n_classes) or (n_samples,)
            Held-out scores (logits or probabilities, see ``input``); 1-D is P(positive) or
            the log-odds of a binary problem.
        y : array-like of shape (n_samples,)
            Labels of any type.
        groups : array-like of shape (n_samples,), default=None
            Mondrian categories (any labels): the threshold is computed per group (per group
            and class with ``class_conditional=True``), and :meth:`predict_set` then needs the
            groups of the test samples.

        Returns
        -------
        self
        """
        validate_params(self)
        reset_fitted_state(self)
        self.alpha_ = _check_alpha(self.alpha, self.confidence_level)
        s = check_scores(scores, input=self.input)
        t = encode_labels(y, max(s.n_columns, 2), min_classes=2, warn_column=True)
        n = check_consistent_length(("scores", s.values), ("y", t.y))
        probs = _as_probs(s)
        self.classes_ = t.classes
        self.n_features_in_ = s.n_columns
        self.input_kind_ = s.kind
        g = None
        if groups is not None:
            g = check_labels(groups, name="groups")
            check_consistent_length(("scores", s.values), ("groups", g))
        self.random_seed_ = _draw_seed(self.random_state)
        y_idx = t.y
        self.k_reg_, self.lam_, self.groups_ = None, None, None
        if self.conformity_score == "raps":
            keep = self._tune_raps(probs, y_idx, self._stream(_RAPS_SPLIT))
            probs, y_idx = probs[keep], y_idx[keep]
            g = None if g is None else g[keep]
            n = len(y_idx)
        u = self._stream(_CALIBRATION).uniform(size=(n, 1)) if self._randomized() else None
        cal = true_label_score(
            probs, y_idx, self.conformity_score, u=u, k_reg=self.k_reg_, lam=self.lam_
        )
        strata_cal, self.strata_ = self._strata_fit(g, y_idx)
        order = np.lexsort((cal, strata_cal))
        counts = np.bincount(strata_cal, minlength=len(self.strata_))
        bounds = np.r_[0, np.cumsum(counts)]
        self.cal_scores_ = [cal[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.quantiles_ = np.array([conformal_quantile(c, self.alpha_) for c in self.cal_scores_])
        trivial = ~np.isfinite(self.quantiles_)
        if np.any(trivial):
            warnings.warn(
                f"{int(trivial.sum())} of {len(trivial)} calibration strata hold fewer than "
                f"{math.ceil(1 / self.alpha_) - 1} samples, too few for alpha={self.alpha_:g} "
                "(need alpha >= 1 / (n + 1)); their prediction sets contain every label.",
                TrivialSetWarning,
                stacklevel=2,
            )
        return self

    # ------------------------------------------------------------------ predict
    def predict_set(self, scores, *, groups=None):
        """Prediction sets as a boolean mask.

        Parameters
        ----------
        scores : array-like of shape (n_samples, n_classes) or (n_samples,)
            Test scores of the same kind and width as in fit.
        groups : array-like of shape (n_samples,), default=None
            The Mondrian group of each sample; required exactly when fit had ``groups=``.

        Returns
        -------
        ndarray of bool of shape (n_samples, n_classes)
            ``[i, k]`` is True when label ``classes_[k]`` is in the set of sample i (a tensor
            on the input's device for a torch input).
        """
        probs, row_group = self._check_predict(scores, groups)
        thr = self.quantiles_[self._stratum_index(row_group, probs.shape[1])]
        if self.conformity_score == "lac":
            return like_input(_lac_sets(probs, thr), scores)
        u = self._test_u(len(probs))
        if thr.shape[1] == 1:  # one threshold per row: the sets are prefixes by rank
            out = prefix_sets(
                probs, thr, self.conformity_score, u=u, k_reg=self.k_reg_, lam=self.lam_,
                include_last_label=self._include_last_label(),
            )
            return like_input(out, scores)
        ranks = label_ranks(probs)
        e = self._scores(probs, u, ranks)
        if self._include_last_label():
            out = include_last_label_sets(probs, e, np.broadcast_to(thr, e.shape), ranks)
        else:
            out = e <= thr
        return like_input(out, scores)

    def transform(self, scores, *, groups=None):
        """Same as :meth:`predict_set`.

        Parameters
        ----------
        scores : array-like of shape (n_samples, n_classes) or (n_samples,)
            Test scores of the same kind and width as in fit.
        groups : array-like of shape (n_samples,), default=None
            The Mondrian group of each sample; required exactly when fit had ``groups=``.

        Returns
        -------
        ndarray of bool of shape (n_samples, n_classes)
            The prediction sets as a membership mask.
        """
        return self.predict_set(scores, groups=groups)

    def predict_pvalues(self, scores, *, groups=None, smoothed=False, random_state=None):
        """Conformal p-values of every label.

        ``p(x, k) = (#{i : E_i >= E(x, k)} + 1) / (n_s + 1)`` over the calibration scores
        ``E_i`` of the stratum of (x, k); smoothed:
        ``(#{E_i > E} + theta * (#{E_i = E} + 1)) / (n_s + 1)`` with ``theta ~ U(0, 1)``.
        ``{k : p(x, k) > alpha}`` is the non-randomised prediction set ``{k : E(x, k) <= q}``.
        Cost O((n K + n_cal) log n_cal): sort once, binary search.

        Parameters
        ----------
        scores : array-like of shape (n_samples, n_classes) or (n_samples,)
            Test scores of the same kind and width as in fit.
        groups : array-like of shape (n_samples,), default=None
            As in :meth:`predict_set`.
        smoothed : bool, default=False
            Smoothed (randomised) p-values.
        random_state : int, RandomState or None, default=None
            Smoothed only: ``theta`` is ``RandomState(random_state).random_sample((n, K))``
            (the stream crepes uses for the same seed); ``None`` draws it from a stream of
            the fitted seed, so that repeated calls agree.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            ``p(x, k)`` of every sample and label, in ``(0, 1]`` (a tensor on the input's
            device for a torch input).
        """
        probs, row_group = self._check_predict(scores, groups)
        e = self._scores(probs, self._test_u(len(probs)))
        strata = self._stratum_index(row_group, probs.shape[1])
        flat_e, flat_s = e.ravel(), np.broadcast_to(strata, e.shape).ravel()
        n_ge = np.empty(flat_e.shape)
        n_gt = np.empty(flat_e.shape) if smoothed else None
        sizes = np.array([len(c) for c in self.cal_scores_], dtype=np.float64)
        if len(self.cal_scores_) == 1:
            slices = [(0, np.arange(flat_e.size))]
        else:
            order = np.argsort(flat_s, kind="stable")
            b = np.searchsorted(flat_s[order], np.arange(len(self.cal_scores_) + 1))
            slices = [(k, order[b[k] : b[k + 1]]) for k in range(len(self.cal_scores_))]
        for k, idx in slices:
            c = self.cal_scores_[k]
            n_ge[idx] = len(c) - np.searchsorted(c, flat_e[idx], side="left")
            if smoothed:
                n_gt[idx] = len(c) - np.searchsorted(c, flat_e[idx], side="right")
        denom = sizes[flat_s] + 1.0
        if smoothed:
            check_param(random_state, "random_state", [RANDOM_STATE],
                        owner="SplitConformalClassifier.predict_pvalues")
            if random_state is None:
                theta = self._stream(_PVALUES).random(e.shape).ravel()
            elif isinstance(random_state, np.random.Generator):
                theta = random_state.random(e.shape).ravel()
            else:
                theta = check_random_state(random_state).random_sample(e.shape).ravel()
            p = (n_gt + theta * (n_ge - n_gt + 1.0)) / denom
        else:
            p = (n_ge + 1.0) / denom
        return like_input(p.reshape(e.shape), scores)

    # ------------------------------------------------------------------ helpers
    def _check_fitted_state(self) -> None:
        """A loaded predictor must be complete and its thresholds must be the conformal
        quantiles of its own sorted calibration scores."""
        need = ("classes_", "n_features_in_", "input_kind_", "alpha_", "quantiles_", "strata_",
                "cal_scores_", "groups_", "k_reg_", "lam_", "random_seed_")
        missing = [n for n in need if not hasattr(self, n)]
        if missing:
            raise ValueError(f"the fitted attribute(s) {missing} are missing.")
        k = len(self.classes_)
        if k != max(self.n_features_in_, 2) or len(self.strata_) != len(self.quantiles_) or (
            len(self.cal_scores_) != len(self.quantiles_)
        ):
            raise ValueError("classes_, strata_, quantiles_ and cal_scores_ do not agree in "
                             "length.")
        if (self.conformity_score == "raps") != (self.k_reg_ is not None and self.lam_ is not None):
            raise ValueError("k_reg_ and lam_ are set exactly for conformity_score='raps'.")
        for c, q in zip(self.cal_scores_, self.quantiles_, strict=True):
            if np.any(np.diff(c) < 0) or conformal_quantile(c, self.alpha_) != q:
                raise ValueError("quantiles_ are not the conformal quantiles of the sorted "
                                 "cal_scores_ at alpha_.")

    def _randomized(self) -> bool:
        return bool(self.randomized) and self.conformity_score in ("aps", "raps")

    def _include_last_label(self) -> bool:
        return bool(self.include_last_label) and self.conformity_score in ("aps", "raps") and not (
            self._randomized()
        )

    def _scores(self, probs, u, ranks=None):
        if self.conformity_score == "lac":
            return lac_score(probs)
        if self.conformity_score == "aps":
            return aps_score(probs, u=u, ranks=ranks)
        if self.conformity_score == "raps":
            return raps_score(probs, k_reg=self.k_reg_, lam=self.lam_, u=u, ranks=ranks)
        return topk_score(probs, ranks=ranks)

    def _test_u(self, n):
        if not self._randomized():
            return None
        return self._stream(_TEST).uniform(size=(n, 1))

    def _stream(self, purpose: int) -> np.random.Generator:
        """An independent generator for one ``purpose`` of the fitted seed."""
        return np.random.default_rng([self.random_seed_, purpose])

    def _tune_raps(self, probs, y_idx, rng):
        """Fix ``k_reg_`` and ``lam_``; return the indices that calibrate."""
        if self.k_reg is not None and self.lam is not None:
            self.k_reg_, self.lam_ = int(self.k_reg), float(self.lam)
            return np.arange(len(y_idx))
        n = len(y_idx)
        n_tune = int(round(self.raps_size * n))
        if n_tune < 1 or n - n_tune < 1:
            raise ValueError(
                f"RAPS tuning needs a hold-out of raps_size={self.raps_size} of {n} samples "
                "with samples left to calibrate; pass k_reg and lam, or more data."
            )
        perm = rng.permutation(n)
        tune, keep = perm[:n_tune], np.sort(perm[n_tune:])
        pt, yt = probs[tune], y_idx[tune]
        ranks = label_ranks(pt)
        true_rank = ranks[1][np.arange(len(yt)), yt] + 1.0
        k_star = conformal_quantile(np.sort(true_rank), self.alpha_)
        self.k_reg_ = int(self.k_reg) if self.k_reg is not None else int(
            min(k_star, pt.shape[1]) if np.isfinite(k_star) else pt.shape[1]
        )
        if self.lam is not None:
            self.lam_ = float(self.lam)
            return keep
        best = None
        for lam in RAPS_LAMBDAS:
            e = raps_score(pt, k_reg=self.k_reg_, lam=lam, ranks=ranks)
            q = conformal_quantile(np.sort(e[np.arange(len(yt)), yt]), self.alpha_)
            size = include_last_label_sets(pt, e, np.full(e.shape, q), ranks).sum(1).mean()
            if best is None or size < best[0]:
                best = (size, lam)
        self.lam_ = float(best[1])
        return keep

    def _strata_fit(self, g, y_idx):
        """Stratum of every calibration sample, and the stratum keys (sets ``groups_``)."""
        if g is None:
            if self.class_conditional:
                return y_idx, np.arange(len(self.classes_))
            return np.zeros(len(y_idx), dtype=np.intp), np.array([0])
        self.groups_ = np.unique(g)
        g_idx = np.searchsorted(self.groups_, g)
        if not self.class_conditional:
            return g_idx, self.groups_
        K = len(self.classes_)
        strata = g_idx * K + y_idx
        keys = np.array(
            [(gv, k) for gv in range(len(self.groups_)) for k in range(K)], dtype=np.intp
        )
        return strata, keys

    def _check_predict(self, scores, groups):
        s = check_predict_scores(self, scores, fitted_attribute="quantiles_")
        probs = _as_probs(s)
        fitted_groups = getattr(self, "groups_", None)
        if fitted_groups is None:
            if groups is not None:
                raise ValueError("groups were given to predict but not to fit.")
            return probs, None
        if groups is None:
            raise ValueError("the predictor was fitted with groups=; pass groups= here too.")
        g = check_labels(groups, name="groups")
        check_consistent_length(("scores", probs), ("groups", g))
        idx = np.clip(np.searchsorted(fitted_groups, g), 0, len(fitted_groups) - 1)
        unseen = fitted_groups[idx] != g
        if np.any(unseen):
            bad = list(np.unique(g[unseen])[:5])
            raise ValueError(
                f"groups contains {bad}, not seen in fit (fitted groups: "
                f"{list(fitted_groups)[:10]}); a Mondrian predictor has no threshold for them."
            )
        return probs, idx

    def _stratum_index(self, row_group, K):
        """Stratum of every (sample, label), as an int array broadcastable to (n, K)."""
        if row_group is None:
            if self.class_conditional:
                return np.arange(K)[None, :]
            return np.zeros((1, 1), dtype=np.intp)
        if self.class_conditional:
            return row_group[:, None] * K + np.arange(K)[None, :]
        return row_group[:, None]


#: purposes of the independent random streams of one fitted seed
_CALIBRATION, _TEST, _RAPS_SPLIT, _PVALUES = range(4)


def _draw_seed(random_state) -> int:
    """One seed for the fitted predictor: ``random_state`` itself when it is an int, else one
    draw from it (a RandomState or Generator advances once, at fit), else fresh entropy."""
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)


def conformal_quantile(sorted_scores: np.ndarray, alpha: float) -> float:
    """The ``ceil((n + 1)(1 - alpha))``-th smallest of ``n`` sorted scores; ``+inf`` when that
    rank exceeds ``n`` (or ``n == 0``).

    Parameters
    ----------
    sorted_scores : ndarray of shape (n,)
        Calibration scores in increasing order (not checked).
    alpha : float
        Miscoverage, in (0, 1).

    Returns
    -------
    float
        The threshold ``q``; a rank below 1 (``alpha`` close to 1) takes the smallest score.

    Notes
    -----
    The split (inductive) conformal threshold: for a test score exchangeable with the ``n``
    calibration scores, ``P(E <= q) >= 1 - alpha`` (Papadopoulos et al., "Inductive
    confidence machines for regression", ECML 2002; Lei et al., "Distribution-free
    predictive inference for regression", JASA 2018). The rank is computed with a slack of
    1e-9 so that ``(n + 1)(1 - alpha)`` a hair above an integer in floating point (e.g.
    ``9.000000000000002``) does not round up.
    """
    n = len(sorted_scores)
    # the small slack keeps (n + 1) * (1 - alpha) = 9.000000000000002 from rounding up to 10
    rank = math.ceil((n + 1) * (1.0 - alpha) - 1e-9)
    if rank > n or n == 0:
        return math.inf
    return float(sorted_scores[max(rank, 1) - 1])


def _check_alpha(alpha, confidence_level) -> float:
    """Miscoverage from ``alpha`` or ``confidence_level`` (ranges are checked by the
    parameter constraints); both given is an error, neither means 0.1."""
    if alpha is not None and confidence_level is not None:
        raise ValueError(
            "give alpha (miscoverage) or confidence_level (= 1 - alpha), not both; got "
            f"alpha={alpha!r} and confidence_level={confidence_level!r}."
        )
    if confidence_level is not None:
        return 1.0 - float(confidence_level)
    return 0.1 if alpha is None else float(alpha)


def _lac_sets(probs, thr):
    """``1 - p <= q`` in row blocks: the temporary ``1 - p`` stays in cache."""
    block = chunk_rows(probs.shape[1] * 8)
    out = np.empty(probs.shape, dtype=bool)
    thr = np.broadcast_to(thr, (len(probs), thr.shape[1]))
    for a in range(0, len(probs), block):
        np.less_equal(lac_score(probs[a : a + block]), thr[a : a + block], out=out[a : a + block])
    return out


def _as_probs(s) -> np.ndarray:
    p = s.probs()
    if p.ndim == 1:
        return np.column_stack([1.0 - p, p])
    return p
