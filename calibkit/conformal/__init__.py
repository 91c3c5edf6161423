"""Conformal prediction for classification from scores (probabilities or logits).

* :class:`SplitConformalClassifier`: split conformal sets (LAC, APS, RAPS, top-k), Mondrian
  (class-conditional or any ``groups=``) and p-values.
* :class:`ConformalClassifier`: the same around a scikit-learn classifier (fit, then
  conformalize on a held-out part).
* scores: :mod:`calibkit.conformal.scores`; metrics: :mod:`calibkit.conformal.metrics`.
"""

from calibkit.conformal.classifier import ConformalClassifier
from calibkit.conformal.metrics import (
    class_conditional_coverage,
    empirical_coverage,
    mean_set_size,
    size_stratified_coverage,
)
from calibkit.conformal.scores import aps_score, lac_score, raps_score, topk_score
from calibkit.conformal.split import SplitConformalClassifier, TrivialSetWarning, conformal_quantile

__all__ = [
    "SplitConformalClassifier",
    "ConformalClassifier",
    "TrivialSetWarning",
    "conformal_quantile",
    "lac_score",
    "aps_score",
    "raps_score",
    "topk_score",
    "empirical_coverage",
    "mean_set_size",
    "size_stratified_coverage",
    "class_conditional_coverage",
]
