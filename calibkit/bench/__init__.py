"""``calibkit.bench``: every calibrator across model scales, for classifiers and COCO detectors.

The command line (``calibkit bench classification | coco | all``) is a thin layer over these
functions, which only use the public APIs of :mod:`calibkit`, :mod:`calibkit.datasets` and
:mod:`calibkit.detection`::

    from calibkit import datasets
    from calibkit.bench import ClassificationConfig, run_classification, finish_classification

    models = datasets.load_bundled_classification("cifar10")
    result = finish_classification(run_classification(models, ClassificationConfig(seeds=1)))

Protocols, metrics and output files are described in ``docs/benchmarks.md``.
"""

from calibkit.bench.classification import (
    ClassificationConfig,
    evaluate_method,
    run_classification,
    split_indices,
    subsample,
)
from calibkit.bench.coco import (
    COCO_METHODS,
    CocoConfig,
    evaluate_detector,
    run_coco,
    split_images,
    write_coco,
)
from calibkit.bench.methods import CLASSIFICATION_METHODS
from calibkit.bench.ranking import rank_methods
from calibkit.bench.report import finish_classification, summarise, write_classification
from calibkit.bench.scale import fit_power_law, gain_trend, scale_analysis

__all__ = [
    "CLASSIFICATION_METHODS",
    "COCO_METHODS",
    "ClassificationConfig",
    "CocoConfig",
    "evaluate_detector",
    "evaluate_method",
    "finish_classification",
    "fit_power_law",
    "gain_trend",
    "run_classification",
    "run_coco",
    "rank_methods",
    "scale_analysis",
    "split_images",
    "split_indices",
    "subsample",
    "summarise",
    "write_classification",
    "write_coco",
]
