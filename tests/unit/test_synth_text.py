"""The synthetic text generators: deterministic, splits disjoint, labels well-formed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.samples import GENERATORS, generate
from engine.samples.synth_text import (
    DIGITS,
    LOWER,
    SCENE_SHAPE,
    WORD_CHARSET,
    WORD_LENGTHS,
    WORD_SHAPE,
    make_words,
)


def digest(img: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()


def test_registered() -> None:
    assert GENERATORS["ocr_words"] == ("synth_text", "ocr_words")
    assert GENERATORS["ocr_scenes"] == ("synth_text", "ocr_scenes")


def test_words_shape_and_labels() -> None:
    g = generate("ocr_words", "test", 50, 3)
    assert len(g.images) == len(g.labels) == 50
    for img, text in zip(g.images, g.labels, strict=True):
        assert img.shape == WORD_SHAPE and img.dtype == np.uint8
        assert WORD_LENGTHS[0] <= len(text) <= WORD_LENGTHS[1]
        assert set(text) <= set(WORD_CHARSET)
        assert img.std() > 5  # not blank: the text is drawn with contrast


def test_scenes_shape_and_quads() -> None:
    g = generate("ocr_scenes", "test", 20, 3)
    h, w = SCENE_SHAPE
    for img, quads in zip(g.images, g.labels, strict=True):
        assert img.shape == (h, w, 3) and img.dtype == np.uint8
        assert quads.dtype == np.float32 and quads.ndim == 3 and quads.shape[1:] == (4, 2)
        assert 1 <= len(quads) <= 4
        assert np.all(quads[..., 0] >= 0) and np.all(quads[..., 0] <= w - 1)
        assert np.all(quads[..., 1] >= 0) and np.all(quads[..., 1] <= h - 1)
        for q in quads:
            # Clockwise from top-left in image coordinates (y down): positive shoelace area.
            x, y = q[:, 0], q[:, 1]
            assert np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) > 0
            assert q[0, 0] < q[1, 0] and q[0, 1] < q[3, 1]  # top-left is left and up


@pytest.mark.parametrize("name", ["ocr_words", "ocr_scenes"])
def test_deterministic_by_seed(name: str) -> None:
    a = generate(name, "calibration", 8, 7)
    b = generate(name, "calibration", 8, 7)
    c = generate(name, "calibration", 8, 8)
    assert [digest(i) for i in a.images] == [digest(i) for i in b.images]
    assert all(np.array_equal(x, y) for x, y in zip(a.labels, b.labels, strict=True))
    assert not set(map(digest, a.images)) & set(map(digest, c.images))


def test_items_depend_on_index_only() -> None:
    # Item 5 is the same whether made in a batch of 10 or alone: training can stream.
    whole = make_words("train", 10, 0)
    alone = make_words("train", 1, 0, start=5)
    assert digest(whole.images[5]) == digest(alone.images[0])
    assert whole.labels[5] == alone.labels[0]


def test_word_splits_are_disjoint() -> None:
    seen: dict[str, str] = {}
    for split in ("train", "validation", "calibration", "test"):
        for img in generate("ocr_words", split, 300, 0).images:
            h = digest(img)
            assert h not in seen, f"a {split} item equals a {seen.get(h)} item"
            seen[h] = split


def test_scene_splits_are_disjoint() -> None:
    hashes = [
        {digest(i) for i in generate("ocr_scenes", split, 40, 0).images}
        for split in ("train", "validation", "calibration", "test")
    ]
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            assert not hashes[i] & hashes[j]


def test_charset_is_configurable() -> None:
    g = make_words("test", 40, 0, charset=DIGITS + LOWER, lengths=(2, 4))
    assert all(set(t) <= set(DIGITS + LOWER) and 2 <= len(t) <= 4 for t in g.labels)
    assert any(set(t) & set(LOWER) for t in g.labels)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown split"):
        generate("ocr_words", "holdout", 1, 0)
    with pytest.raises(ConfigError, match="repeats"):
        make_words("test", 1, 0, charset="aab")
