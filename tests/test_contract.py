"""The one contract of every calibkit estimator, generated from the registry.

``calibkit.registry.all_estimators()`` lists every calibrator of the registry, the conformal
predictors and the classes that extensions register (``calibkit.detection``'s
``DetectionCalibrator``), as scikit-learn's ``all_estimators`` drives its checks: a class added
later is checked here without editing this file. Each check runs through an adapter per kind
of estimator (calibrator, conformal predictor, detection calibrator); a class of a new kind
fails until it has one.
"""

from __future__ import annotations

import copy
import inspect
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import calibkit
from calibkit._validation import parameter_constraints, validate_params
from calibkit.base import Calibrator
from calibkit.conformal import SplitConformalClassifier
from calibkit.registry import CALIBRATORS, all_estimators, method_name

ESTIMATORS = all_estimators()
IDS = [name for name, _ in ESTIMATORS]


def _spec(cls):
    specs = [s for s in CALIBRATORS.values() if s.cls == cls.__name__]
    return specs[0] if specs else None


class _CalibratorKind:
    """Calibrators: logits in, probabilities out."""

    def __init__(self, cls):
        self.cls = cls
        spec = _spec(cls)
        self.binary = spec is None or spec.binary
        self.multiclass = spec is None or spec.multiclass

    def make(self, **params):
        est = self.cls()
        if "input" in est.get_params():
            est.set_params(input="logits")
        return est.set_params(**params)

    def data(self, k=3, n=240, seed=0):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, k)) * 2.0
        y = (z + rng.gumbel(size=z.shape)).argmax(axis=1)
        if k == 1:
            z = z[:, 0]
        return z, y

    def fit(self, est, data, y=None, **kw):
        z, y0 = data
        return est.fit(z, y0 if y is None else y, **kw)

    def output(self, est, data):
        return np.asarray(est.predict_proba(data[0]))

    def predict_before_fit(self, est, data):
        est.predict_proba(data[0])


class _ConformalKind(_CalibratorKind):
    """Conformal predictors: scores in, prediction sets out."""

    def __init__(self, cls):
        super().__init__(cls)
        self.binary = self.multiclass = True

    def make(self, **params):
        return self.cls(input="logits", alpha=0.2, random_state=0).set_params(**params)

    def output(self, est, data):
        return np.asarray(est.predict_set(data[0]))

    def predict_before_fit(self, est, data):
        est.predict_set(data[0])


class _DetectionKind:
    """Detection calibrators: COCO ground truth and detections in, detections out."""

    binary = multiclass = False

    def __init__(self, cls):
        self.cls = cls

    def make(self, **params):
        return self.cls().set_params(**params)

    def data(self, k=None, n=None, seed=0):
        from calibkit.detection.synthetic import make_coco_like

        return make_coco_like(24, dets_per_image=20, n_classes=6, seed=seed)

    def fit(self, est, data, y=None, **kw):
        return est.fit(*data)

    def output(self, est, data):
        out = est.transform(data[1])
        return np.column_stack([out.image_id, out.category_id, out.score])

    def predict_before_fit(self, est, data):
        est.transform(data[1])


def _kind(cls):
    from calibkit.detection import DetectionCalibrator

    if issubclass(cls, Calibrator):
        return _CalibratorKind(cls)
    if issubclass(cls, SplitConformalClassifier):
        return _ConformalKind(cls)
    if issubclass(cls, DetectionCalibrator):
        return _DetectionKind(cls)
    raise AssertionError(f"{cls.__name__} is an estimator of a kind the contract test does not "
                         "know yet: add an adapter for it above.")


def _quiet():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")
    return ctx


@pytest.fixture(params=ESTIMATORS, ids=IDS)
def case(request):
    name, cls = request.param
    ctx = _quiet()
    yield cls, _kind(cls)
    ctx.__exit__(None, None, None)


def test_the_registry_covers_the_known_estimators():
    names = set(IDS)
    assert {"TemperatureScaling", "PlattScaling", "VectorScaling", "IsotonicCalibration",
            "HistogramBinning", "BetaCalibration", "VennAbers", "IdentityCalibration",
            "LinearCalibration", "SplitConformalClassifier", "DetectionCalibrator"} <= names
    for spec in CALIBRATORS.values():
        est = calibkit.registry.make_calibrator(spec.name)
        assert method_name(est) == spec.name or spec.params


def test_constructor_is_keyword_only_and_every_parameter_is_declared(case):
    cls, _ = case
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    positional = [p.name for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    assert not positional, f"{cls.__name__} takes {positional} positionally"
    constraints = parameter_constraints(cls)
    assert {p.name for p in params} <= set(constraints)
    validate_params(cls())


def test_clone_get_and_set_params(case):
    cls, kind = case
    est = kind.make()
    params = est.get_params(deep=False)
    twin = clone(est)
    assert twin is not est and twin.get_params(deep=False).keys() == params.keys()
    assert twin.set_params(**params).get_params(deep=False).keys() == params.keys()
    with pytest.raises(ValueError):
        est.set_params(no_such_parameter=1)


def test_predict_before_fit_raises_not_fitted(case):
    cls, kind = case
    with pytest.raises(NotFittedError):
        kind.predict_before_fit(kind.make(), kind.data())


def test_inputs_are_never_mutated(case):
    cls, kind = case
    data = kind.data()
    before = copy.deepcopy(data)
    est = kind.fit(kind.make(), data)
    kind.output(est, data)
    for a, b in zip(data, before, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_save_and_load_round_trip_through_calibkit_load(case, tmp_path, suffix):
    cls, kind = case
    data = kind.data()
    est = kind.fit(kind.make(), data)
    est.save(tmp_path / f"est{suffix}")
    back = calibkit.load(tmp_path / f"est{suffix}")
    assert type(back) is cls
    np.testing.assert_array_equal(kind.output(back, data), kind.output(est, data))
    assert type(cls.from_dict(est.to_dict())) is cls
    # an unfitted estimator round-trips too
    kind.make().save(tmp_path / f"unfitted{suffix}")
    assert type(calibkit.load(tmp_path / f"unfitted{suffix}")) is cls


def test_fit_resets_all_fitted_state(case):
    cls, kind = case
    if kind.binary and kind.multiclass:
        first, second = kind.data(k=4, seed=1), kind.data(k=2, seed=2)
    else:
        first, second = kind.data(seed=1), kind.data(seed=2)
    refit = kind.fit(kind.fit(kind.make(), first), second)
    fresh = kind.fit(kind.make(), second)
    fitted = {k for k in vars(fresh) if k.endswith("_") and not k.startswith("_")}
    assert {k for k in vars(refit) if k.endswith("_") and not k.startswith("_")} == fitted
    np.testing.assert_array_equal(kind.output(refit, second), kind.output(fresh, second))


def test_conformal_refit_without_groups_needs_no_groups():
    kind = _ConformalKind(SplitConformalClassifier)
    z, y = kind.data()
    cp = kind.make().fit(z, y, groups=np.arange(len(y)) % 2)
    cp.fit(z, y)
    assert cp.groups_ is None
    kind.output(cp, (z, y))


@pytest.mark.parametrize("label_form", ["integer_float", "string", "object"])
def test_label_types_give_identical_results(case, label_form):
    cls, kind = case
    if isinstance(kind, _DetectionKind):
        pytest.skip("detection calibrators take COCO category ids, not labels")
    z, y = kind.data()
    names = np.array(["cat", "dog", "emu"])
    labels = {"integer_float": y.astype(np.float64), "string": names[y],
              "object": y.astype(object)}[label_form]
    ref = kind.fit(kind.make(), (z, y))
    other = kind.fit(kind.make(), (z, y), y=labels)
    np.testing.assert_array_equal(kind.output(other, (z, y)), kind.output(ref, (z, y)))
    if label_form == "string":
        assert list(other.classes_) == list(names)
    else:
        np.testing.assert_array_equal(other.classes_, ref.classes_)
