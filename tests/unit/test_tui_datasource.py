"""A data source's fields checked in words and turned into overrides (tui.datasource): an
.npz read from its headers only, the fields a kind does not read left alone, a generator
chosen from the file of the config replacing its path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tui import datasource as ds

GENS = ("digits", "ocr_scenes", "ocr_words")


def test_npz_arrays_come_from_the_headers_with_shapes_and_dtypes(tmp_path: Path) -> None:
    p = tmp_path / "a.npz"
    np.savez(p, x=np.zeros((3, 8, 8, 2), np.float32), y=np.arange(3), s=np.float64(1.0))
    got = {a.name: (a.shape, a.dtype, a.kind) for a in ds.npz_arrays(p)}
    assert got == {"x": ((3, 8, 8, 2), "float32", "f"), "y": ((3,), "int64", "i"),
                   "s": ((), "float64", "f")}
    assert ds.ArrayInfo("x", (3, 8, 8, 2), "float32").text == "x  3×8×8×2 float32"
    # An object array is never unpickled: its header is enough to refuse it as an input.
    np.savez(p, o=np.array([{"a": 1}], dtype=object))
    (info,) = ds.npz_arrays(p)
    assert info.kind == "O"
    src, bad = ds.check("test", {"kind": "npz", "path": str(p), "x": "o", "y": ""}, [info], GENS)
    assert bad == {"x": "'o' holds object, which cannot be a model input"}


def test_a_file_that_is_not_an_npz_is_said(tmp_path: Path) -> None:
    (tmp_path / "t.npz").write_text("text")
    with pytest.raises(ds.SourceError, match="is not a readable .npz file"):
        ds.npz_arrays(tmp_path / "t.npz")
    assert ds.check_path("npz", str(tmp_path / "t.npz"))[0].startswith("is not a readable")


def test_typed_numbers_are_refused_in_words_never_sent_as_text() -> None:
    v = {"kind": "synthetic", "generator": "digits", "count": "ten", "seed": "1.5"}
    src, bad = ds.check("calibration", v, [], GENS)
    assert bad == {"count": "'ten' is not a whole number", "seed": "'1.5' is not a whole number"}
    _, bad = ds.check("calibration", {**v, "generator": "my digits", "count": "3", "seed": "0"},
                      [], GENS)
    assert bad == {"generator": "no generator 'my digits' (there are: digits, ocr_scenes, ocr_words)"}


def test_overrides_send_only_what_differs_and_drop_the_file_for_a_generator() -> None:
    base = {"kind": "npz", "path": "/d/cal.npz", "x": "x", "y": "y", "raw": False}
    src = {"kind": "synthetic", "generator": "digits", "count": 100, "seed": 0}
    assert ds.overrides("calibration", src, base) == {
        "data.calibration.kind": "synthetic", "data.calibration.generator": "digits",
        "data.calibration.count": 100, "data.calibration.path": ""}
    same = {"kind": "npz", "path": "/d/cal.npz", "x": "x", "y": "y", "raw": False}
    assert ds.overrides("calibration", same, base) == {}
    # A table the config lacks (QAT's training data on a PTQ config): every field, and the
    # generator's own split.
    assert ds.overrides("train", src, None) == {
        "data.train.kind": "synthetic", "data.train.generator": "digits",
        "data.train.count": 100, "data.train.seed": 0, "data.train.split": "train"}
