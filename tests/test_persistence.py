"""Saved files are untrusted input: every malformed, hostile or inconsistent file gives a
ValueError naming the file (never a KeyError, a numpy pickle hint, a RecursionError, a
silently wrong object or a shadowed method), npz members are read only when referenced and
within a size budget, and what save writes is strict JSON."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import calibkit
from calibkit import (
    BetaCalibration,
    HistogramBinning,
    IsotonicCalibration,
    PlattScaling,
    TemperatureScaling,
    VectorScaling,
    VennAbers,
)
from calibkit.conformal import SplitConformalClassifier


def _fitted(cls=TemperatureScaling, k=3, **params):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, k)) * 2
    y = (z + rng.gumbel(size=z.shape)).argmax(axis=1)
    return cls(input="logits", **params).fit(z, y), z


def _write(tmp_path, tree, name="model.json"):
    path = tmp_path / name
    path.write_text(tree if isinstance(tree, str) else json.dumps(tree))
    return path


def _fails(path, match):
    with pytest.raises(ValueError, match=match) as info:
        calibkit.load(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------ structure


def test_not_a_saved_object(tmp_path):
    _fails(_write(tmp_path, [1, 2, 3]), "not a saved calibkit object")
    _fails(_write(tmp_path, 42), "not a saved calibkit object")
    _fails(_write(tmp_path, {"a": 1}), "not a saved calibkit object")


@pytest.mark.parametrize("drop", ["params", "fitted", "format_version"])
def test_missing_keys_are_named(tmp_path, drop):
    tree = _fitted()[0].to_dict()
    del tree[drop]
    _fails(_write(tmp_path, tree), drop)


def test_truncated_binary_and_empty_files(tmp_path):
    text = json.dumps(_fitted()[0].to_dict())
    _fails(_write(tmp_path, text[: len(text) // 2]), "not valid JSON")
    (tmp_path / "bin.json").write_bytes(b"\x00\xff\xfe\x89PNG")
    _fails(tmp_path / "bin.json", "binary data")
    _fails(_write(tmp_path, ""), "not valid JSON")


def test_json_named_npz_gets_no_pickle_advice(tmp_path):
    path = _write(tmp_path, _fitted()[0].to_dict(), name="model.npz")
    with pytest.raises(ValueError, match="not an npz archive") as info:
        calibkit.load(path)
    assert "pickle" not in str(info.value)


def test_deep_nesting(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    _fails(_write(tmp_path, deep), "nested too deeply|not a saved")
    tree = _fitted()[0].to_dict()
    inner: dict = {}
    node = inner
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    tree["params"]["input"] = inner
    _fails(_write(tmp_path, tree), "nested more than")


def test_dangling_array_reference_and_missing_tree(tmp_path):
    est, _ = _fitted()
    est.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "no_tree.npz", "w") as z:
        for n, data in members.items():
            if n != "__tree__.npy":
                z.writestr(n, data)
    _fails(tmp_path / "no_tree.npz", "lacks the tree")
    tree = json.loads(str(np.load(tmp_path / "m.npz")["__tree__"]))
    tree["fitted"]["classes_"] = {"__array__": "a99"}
    np.savez(tmp_path / "dangling.npz", __tree__=np.array(json.dumps(tree)))
    _fails(tmp_path / "dangling.npz", "a99")


def test_directory_and_missing_file(tmp_path):
    _fails(tmp_path, "is a directory")
    with pytest.raises(FileNotFoundError):
        calibkit.load(tmp_path / "nope.json")


# ------------------------------------------------------------------ contents


def test_unknown_format_version_and_class(tmp_path):
    tree = _fitted()[0].to_dict()
    _fails(_write(tmp_path, {**tree, "format_version": 2}), "format_version")
    _fails(_write(tmp_path, {**tree, "__calibrator__": "os.system"}), "unknown class")


@pytest.mark.parametrize("params, match", [
    ({"tol": -1.0}, "tol"),
    ({"max_iter": "10"}, "max_iter"),
    ({"unknown": 1}, "invalid parameters"),
])
def test_parameters_go_through_the_constructor_checks(tmp_path, params, match):
    tree = _fitted()[0].to_dict()
    tree["params"].update(params)
    _fails(_write(tmp_path, tree), match)


@pytest.mark.parametrize("key", ["fit", "predict_proba", "__class__", "classes"])
def test_entries_that_are_not_fitted_attributes_are_refused(tmp_path, key):
    tree = _fitted()[0].to_dict()
    tree["fitted"][key] = 1.0
    _fails(_write(tmp_path, tree), "not a fitted attribute")


@pytest.mark.parametrize("cls, key, value, match", [
    (TemperatureScaling, "temperature_", 0.0, "temperature_"),
    (TemperatureScaling, "temperature_", -2.0, "temperature_"),
    (TemperatureScaling, "classes_", {"__ndarray__": [0, 1], "dtype": "<i8", "shape": [2]},
     "classes_"),
    (TemperatureScaling, "n_features_in_", 7, "classes_"),
    (VectorScaling, "w_", {"__ndarray__": [1.0, 2.0], "dtype": "<f8", "shape": [2]}, "w_"),
    (VectorScaling, "w_", {"__ndarray__": ["a", "b", "c"], "dtype": "<U1", "shape": [3]}, "w_"),
    (TemperatureScaling, "input_kind_", "pickle", "input_kind_"),
])
def test_inconsistent_fitted_state_is_refused(tmp_path, cls, key, value, match):
    tree = _fitted(cls)[0].to_dict()
    tree["fitted"][key] = value
    _fails(_write(tmp_path, tree), match)


def test_binary_calibrator_states_are_checked(tmp_path):
    est, _ = _fitted(IsotonicCalibration)
    tree = est.to_dict()
    del tree["fitted"]["estimators_"][0]
    _fails(_write(tmp_path, tree), "estimators_")
    est, _ = _fitted(IsotonicCalibration, k=2)
    tree = est.to_dict()
    tree["fitted"]["y_thresholds_"]["__ndarray__"] = tree["fitted"]["y_thresholds_"][
        "__ndarray__"][::-1]
    _fails(_write(tmp_path, tree), "y_thresholds_")


def test_conformal_thresholds_must_match_their_scores(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), 200)
    cp = SplitConformalClassifier(alpha=0.1).fit(p, rng.integers(0, 4, 200))
    tree = cp.to_dict()
    tree["fitted"]["quantiles_"]["__ndarray__"] = [0.0]
    _fails(_write(tmp_path, tree), "quantiles_")


def test_object_arrays_are_never_read(tmp_path):
    tree = _fitted()[0].to_dict()
    tree["fitted"]["classes_"] = {"__ndarray__": [0, 1, 2], "dtype": "|O", "shape": [3]}
    _fails(_write(tmp_path, tree), "dtype")
    np.savez(tmp_path / "obj.npz", __tree__=np.array(json.dumps(tree)))
    _fails(tmp_path / "obj.npz", "dtype")


# ------------------------------------------------------------------ resources


def test_npz_reads_only_referenced_members_within_budget(tmp_path, monkeypatch):
    from calibkit import _persistence

    est, z = _fitted()
    est.save(tmp_path / "m.npz")
    tree = str(np.load(tmp_path / "m.npz")["__tree__"])
    big = np.zeros(50_000_000 // 8)  # 50 MB of zeros: compresses about 1000:1
    members = dict(np.load(tmp_path / "m.npz"))  # __tree__ and the referenced arrays
    np.savez_compressed(tmp_path / "bomb.npz", **members, junk=big)
    assert (tmp_path / "bomb.npz").stat().st_size < 1_000_000
    read = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array",
                        lambda fh, **kw: read.append(fh.name) or real(fh, **kw))
    back = calibkit.load(tmp_path / "bomb.npz")
    assert not any("junk" in name for name in read)
    np.testing.assert_array_equal(back.predict_proba(z), est.predict_proba(z))
    # a referenced member over the budget is refused before it is decompressed
    monkeypatch.setattr(_persistence, "MAX_ARRAY_BYTES", 1000)
    t = json.loads(tree)
    t["fitted"]["classes_"] = {"__array__": "junk"}
    np.savez_compressed(tmp_path / "bomb2.npz", __tree__=np.array(json.dumps(t)), junk=big)
    _fails(tmp_path / "bomb2.npz", "budget")


# ------------------------------------------------------------------ output


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_save_writes_strict_json_and_round_trips_infinities(tmp_path, suffix):
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(3), 5)
    with pytest.warns(UserWarning):  # too few samples: an infinite quantile
        cp = SplitConformalClassifier(alpha=0.01).fit(p, [0, 1, 2, 0, 1])
    assert np.isinf(cp.quantiles_[0])
    path = tmp_path / f"cp{suffix}"
    cp.save(path)
    if suffix == ".json":
        text = path.read_text()
        assert "Infinity" not in text and "NaN" not in text
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard token {c}"))
    back = calibkit.load(path)
    assert np.isinf(back.quantiles_[0])
    np.testing.assert_array_equal(back.predict_set(p), cp.predict_set(p))


def test_every_calibrator_round_trips_through_calibkit_load(tmp_path):
    for cls in (TemperatureScaling, PlattScaling, VectorScaling, IsotonicCalibration,
                HistogramBinning, BetaCalibration, VennAbers):
        est, z = _fitted(cls)
        for suffix in (".json", ".npz"):
            est.save(tmp_path / f"m{suffix}")
            back = calibkit.load(tmp_path / f"m{suffix}")
            assert type(back) is cls
            np.testing.assert_array_equal(back.predict_proba(z), est.predict_proba(z))


def test_class_load_refuses_another_class(tmp_path):
    est, _ = _fitted()
    est.save(tmp_path / "t.json")
    with pytest.raises(ValueError, match="not a PlattScaling"):
        PlattScaling.load(tmp_path / "t.json")
