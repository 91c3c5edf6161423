"""The compiled reader of box results files and the compiled kernels' threads.

The compiled reader (``calibkit.detection._ckernels.parse_results``) must give the
columns of msgspec's typed decoder to the last bit on every file it accepts, and accept
nothing that the typed decoder refuses: on any other file it steps aside and the typed
decoder reads it (or words the error). The references are Python's ``float`` (correctly
rounded) for the numbers and the msgspec path for whole files.
"""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibkit import detection
from calibkit._chunks import kernel_threads, run_ranges
from calibkit.detection import _ckernels
from calibkit.detection import io as dio
from calibkit.detection.synthetic import make_coco_like

FIELDS = ("image_id", "category_id", "score", "box", "area")


def _typed_decoder_only(path, **kw):
    """The columns (or the error) of the msgspec path alone."""
    saved = dio._read_plain_results
    dio._read_plain_results = lambda *a, **k: None
    try:
        return detection.load_dets(path, **kw)
    except ValueError as exc:
        return exc
    finally:
        dio._read_plain_results = saved


def _same(a, b):
    if isinstance(a, Exception) or isinstance(b, Exception):
        assert type(a) is type(b) and str(a) == str(b), (a, b)
        return
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape, f
        assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), f  # bits, -0.0 too
    assert (a.mask is None) == (b.mask is None)
    if a.mask is not None:
        assert bytes(a.mask.counts) == bytes(b.mask.counts)
        np.testing.assert_array_equal(a.mask.offsets, b.mask.offsets)
        np.testing.assert_array_equal(a.mask.size, b.mask.size)


def _load_or_error(path, **kw):
    try:
        return detection.load_dets(path, **kw)
    except ValueError as exc:
        return exc


def _edited_files(tmp_path, base: bytes, n: int, *, seed: int, alphabet: bytes,
                  edits: int = 1):
    """``n`` copies of ``base`` with 1 to ``edits`` random one-byte edits each (replace,
    delete or insert a byte of ``alphabet``), written in turn to one file."""
    rng = random.Random(seed)
    path = tmp_path / "edited.json"
    for _ in range(n):
        data = bytearray(base)
        for _ in range(rng.randint(1, edits)):
            k = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[k] = rng.choice(alphabet)
            elif op < 0.7:
                del data[k]
            else:
                data.insert(k, rng.choice(alphabet))
        path.write_bytes(bytes(data))
        yield path


def _parse(text: str):
    """Boxes of a results list parsed by the compiled reader in one call."""
    data = bytearray(text.encode())
    n = text.count("{") + 1
    cols = [np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n), np.zeros((n, 4)),
            np.zeros(n)]
    none = (np.zeros((0, 2), np.int64), np.zeros(0, np.int64))
    status, k, _, _, _ = _ckernels.parse_results(data, data.index(b"[") + 1, True, True,
                                                 *cols, 0, -1, False, *none,
                                                 np.zeros(0, np.uint8), 0)
    return status, k, cols


@pytest.fixture(params=["one thread", "threads"])
def threads(request, monkeypatch):
    """The reader on one thread, and on three threads from the smallest blocks on (each
    block split at item boundaries that the parse must confirm)."""
    if request.param == "threads":
        monkeypatch.setattr(dio, "_PARALLEL_BYTES", 1)
        monkeypatch.setenv("CALIBKIT_NUM_THREADS", "3")
    else:
        monkeypatch.setenv("CALIBKIT_NUM_THREADS", "1")
    return request.param


@pytest.fixture(scope="module")
def results():
    _, dets = make_coco_like(30, seed=3)
    return dets


@pytest.mark.parametrize("form", ["default", "indent", "compact", "crlf", "shuffled", "gzip"])
@pytest.mark.parametrize("block", [1, 2, 7, 97, 1 << 23])
def test_plain_files_equal_the_typed_decoder(tmp_path, monkeypatch, results, form, block,
                                             threads):
    rng = random.Random(0)
    items = results
    if form == "shuffled":  # keys in any order
        items = [dict(rng.sample(list(r.items()), 4)) for r in results]
    text = {"default": lambda: json.dumps(items),
            "indent": lambda: json.dumps(items, indent=2),
            "compact": lambda: json.dumps(items, separators=(",", ":")),
            "crlf": lambda: json.dumps(items, indent="\t").replace("\n", "\r\n"),
            "shuffled": lambda: json.dumps(items),
            "gzip": lambda: json.dumps(items)}[form]()
    path = tmp_path / ("r.json.gz" if form == "gzip" else "r.json")
    if form == "gzip":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    monkeypatch.setattr(dio, "_BLOCK", block)  # items (and numbers) cut everywhere
    fast = dio._read_plain_results(path)
    assert fast is not None  # the compiled reader read it
    assert len(fast) == len(results)
    _same(fast, _typed_decoder_only(path))


@pytest.mark.parametrize("text", [
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5, "id": 3}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5, '
    '"segmentation": {"counts": "]},", "size": [1, 2]}}]',
    '[{"image\\u005fid": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]',
    '[{"image_id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}]',
    '[{"image_id": 1.0, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]',
    '[{"image_id": 1e2, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]',
    '[{"image_id": 9223372036854775808, "category_id": 1, "bbox": [0, 0, 5, 5], '
    '"score": 0.5}]',
    '[{"image_id": -9223372036854775808, "category_id": 1, "bbox": [0, 0, 5, 5], '
    '"score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 1.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": "0.5"}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": NaN}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5, 6], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1e999, 5], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 01, 5], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1., 5], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, .5, 5], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, +5, 5], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5e, 5], "score": 0.5}]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5},]',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}] x',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]\x0b',
    '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, -5, 5], "score": 0.5}]',
    '[{}]',
    '[]',
    '{"annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], '
    '"score": 0.5}]}',
])
def test_other_forms_go_to_the_typed_decoder(tmp_path, text, threads):
    path = tmp_path / "r.json"
    path.write_text(text)
    ref = _typed_decoder_only(path)
    try:
        got = detection.load_dets(path)
    except ValueError as exc:
        got = exc
    _same(got, ref)
    if not text.startswith("[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, -5"):
        assert dio._read_plain_results(path) is None or isinstance(ref, dio.Detections)


def test_mutated_files_equal_the_typed_decoder(tmp_path, results, threads):
    """Random one-byte edits of a valid file: the answer (columns or error) is the typed
    decoder's every time: the compiled reader never accepts what it refuses."""
    n_fast = 0
    for path in _edited_files(tmp_path, json.dumps(results[:6]).encode(), 400, seed=1,
                              alphabet=b' \t\n\r,:[]{}"-+.eE0123456789abcdefghijklmnopqrst'
                                       b'uvwxyz_\\\x0b', edits=2):
        _same(_load_or_error(path), _typed_decoder_only(path))
        n_fast += dio._read_plain_results(path) is not None
    assert n_fast > 50  # many edits (whitespace, digits) keep the plain form


_NUMBER = r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(_NUMBER, fullmatch=True), min_size=4, max_size=4))
def test_numbers_are_correctly_rounded(tokens):
    expect = [float(t) for t in tokens]
    text = ('[{"image_id": 1, "category_id": 2, "bbox": [' + ", ".join(tokens)
            + '], "score": 0.25}]')
    status, k, cols = _parse(text)
    if any(abs(v) == float("inf") for v in expect) or expect[2] < 0 or expect[3] < 0:
        assert status == 3  # out of range, or a negative size: the typed decoder decides
        return
    assert (status, k) == (1, 1)
    assert np.array_equal(cols[3][0].view(np.uint64), np.array(expect).view(np.uint64))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=4, max_size=4),
       st.floats(0, 1))
def test_every_double_reads_back(box, score):
    text = json.dumps([{"image_id": 1, "category_id": 2, "bbox": box, "score": score}])
    status, k, cols = _parse(text)
    if box[2] < 0 or box[3] < 0:
        assert status == 3  # a negative size: the typed decoder words the error
        return
    assert (status, k) == (1, 1)
    assert np.array_equal(cols[3][0].view(np.uint64), np.array(box).view(np.uint64))
    assert cols[2][0] == score


def test_hard_numbers():
    # halfway cases, the largest and smallest doubles, subnormals, more than 19 digits,
    # exact powers of ten at the edge of the fast path
    tokens = ["9007199254740993", "9007199254740993e-5", "2.2250738585072011e-308",
              "2.2250738585072014e-308", "4.9406564584124654e-324", "2.4703282292062328e-324",
              "1.7976931348623157e308", "1e22", "1e23", "0.30000000000000004",
              "123456789012345678901234567890", "1e-400", "-0.0", "0.1e-322",
              "7.0420557077594588669468784357561207962098443483187940792729600000e59",
              "18446744073709551615", "18446744073709551616", "1" + "0" * 300]
    tokens += [repr(float(np.nextafter(1.0, 2) * 10.0**e)) for e in range(-300, 300, 7)]
    for i in range(0, len(tokens), 4):
        chunk = (tokens[i:i + 4] + ["0"] * 4)[:4]
        status, k, cols = _parse('[{"image_id": 1, "category_id": 2, "bbox": ['
                                 + ", ".join(chunk) + '], "score": 0.5}]')
        assert (status, k) == (1, 1), chunk
        expect = np.array([float(t) for t in chunk])
        assert np.array_equal(cols[3][0].view(np.uint64), expect.view(np.uint64)), chunk


def test_ids_are_int64():
    status, k, cols = _parse('[{"image_id": -9223372036854775807, "category_id": '
                             '9223372036854775807, "bbox": [0, 0, 1, 1], "score": 1}]')
    assert (status, k) == (1, 1)
    assert cols[0][0] == -(2**63) + 1 and cols[1][0] == 2**63 - 1


def test_stable_argsort_equals_numpy():
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 15, 16, 17, 33, 1000, 5000):
        key = rng.integers(0, 7, n).astype(float)  # many ties
        np.testing.assert_array_equal(_ckernels.argsort_stable(key),
                                      np.argsort(key, kind="stable"))


def test_item_boundaries():
    data = bytearray(b'[{"a": {"b": 1}, "c": 2} ,\n {"d": 3},{"e": 4}]')
    first = _ckernels.next_item(data, 0)
    assert data[first:].lstrip().startswith(b'{"d"')  # not the "}," inside the first item
    assert data[_ckernels.next_item(data, first):].startswith(b'{"e"')
    assert _ckernels.next_item(data, len(data) - 5) == -1


def test_run_ranges_covers_each_item_once():
    for n in (1, 2, 3, 10, 1000):
        for weights in (np.ones(n), np.r_[1e9, np.ones(n - 1)], np.arange(n) ** 3 + 1e5):
            hits = np.zeros(n, int)

            def fn(lo, hi, hits=hits):
                hits[lo:hi] += 1

            run_ranges(fn, weights)
            assert (hits == 1).all()


def test_threads_give_the_same_bits(monkeypatch):
    gt, dets = make_coco_like(200, seed=1)
    many = detection.coco_summary(gt, dets)
    table = detection.match(gt, dets, tau=0.5)
    monkeypatch.setenv("CALIBKIT_NUM_THREADS", "1")
    assert kernel_threads() == 1
    assert detection.coco_summary(gt, dets) == many
    one = detection.match(gt, dets, tau=0.5)
    for f in ("tp", "ignored", "iou"):
        np.testing.assert_array_equal(getattr(one, f), getattr(table, f))
    monkeypatch.setenv("CALIBKIT_NUM_THREADS", "7")  # more threads than cores
    assert detection.coco_summary(gt, dets) == many


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_bad_thread_count_is_named(monkeypatch, value):
    monkeypatch.setenv("CALIBKIT_NUM_THREADS", value)
    with pytest.raises(ValueError, match="CALIBKIT_NUM_THREADS"):
        kernel_threads()


@pytest.fixture(scope="module")
def mask_data():
    gt, dets = make_coco_like(12, seed=5, masks=True)
    assert any("\\" in r["segmentation"]["counts"] for r in dets)  # escapes are read
    return gt, dets


@pytest.mark.parametrize("boxes", ["with boxes", "masks only", "some boxes", "mask first"])
@pytest.mark.parametrize("block", [1, 97, 1 << 23])
def test_mask_results_equal_the_typed_decoder(tmp_path, monkeypatch, mask_data, boxes, block,
                                              threads):
    gt, dets = mask_data
    items = [dict(r) for r in dets]
    if boxes == "mask first":  # a "}," inside the items: not an item boundary
        items = [{"segmentation": r["segmentation"], **r} for r in items]
    elif boxes != "with boxes":  # pycocotools' loadRes takes the box and area of the mask
        for k, r in enumerate(items):
            if boxes == "masks only" or k % 3:
                del r["bbox"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(items, indent=1))
    monkeypatch.setattr(dio, "_BLOCK", block)
    g = detection.load_gt(gt, iou_type="segm")
    fast = dio._read_plain_results(path, "segm", (g.image_ids, g.image_height, g.image_width))
    assert fast is not None and len(fast) == len(items)
    _same(fast, _typed_decoder_only(path, iou_type="segm", gt=g))
    _same(detection.load_dets(path, iou_type="segm", gt=g),
          _typed_decoder_only(path, iou_type="segm", gt=g))


def test_mutated_mask_files_equal_the_typed_decoder(tmp_path, mask_data, threads):
    gt, dets = mask_data
    g = detection.load_gt(gt, iou_type="segm")
    for path in _edited_files(tmp_path, json.dumps(dets[:5]).encode(), 300, seed=2,
                              alphabet=b' ,:[]{}"-.e0123456789;<=>?@ABCOZ^_`ahio\\\x7f\x01'):
        _same(_load_or_error(path, iou_type="segm", gt=g),
              _typed_decoder_only(path, iou_type="segm", gt=g))


def test_unused_scalar_fields_are_skipped(tmp_path, threads):
    """Fields the results do not use (``id``, ``area``, ``iscrowd``: numbers, true, false,
    null) are skipped by the compiled reader as the typed decoder skips them."""
    _, dets = make_coco_like(5, seed=2)
    extra = [{**r, "id": k, "area": 1.5e3, "iscrowd": False, "note": None}
             for k, r in enumerate(dets)]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(extra))
    fast = dio._read_plain_results(path)
    assert fast is not None
    _same(fast, _typed_decoder_only(path))
    for bad in ('"id": nul', '"id": 1.', '"id": tru', '"id": 01'):  # not json: msgspec words it
        path.write_text(json.dumps(dets[:2]).replace('"image_id"', bad + ', "image_id"', 1))
        assert dio._read_plain_results(path) is None
        with pytest.raises(ValueError, match="not valid json|json"):
            detection.load_dets(path)
