"""Calibration draws (calibration.draws): which items each draw holds, the held-out slice,
the keep rule, the spread, the config keys, the typed report part and its words."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine import present as say
from engine.config import load_config
from engine.data import RawData, prepare, select_calibration
from engine.draws import (
    HELDOUT_MAX,
    HELDOUT_MIN,
    draw_indices,
    draw_seed,
    heldout_indices,
    keep_draw,
    prepare_draws,
    spread,
)
from engine.errors import ConfigError, DataError
from engine.report import CalibrationDraws, Report, Stage

# ------------------------------------------------------------------ which items


def test_draw_zero_is_the_seeds_own_draw() -> None:
    for seed in (0, 7, 123456789):
        assert draw_seed(seed, 0) == seed
        (first, *_) = draw_indices(1000, 100, seed, 3)
        assert np.array_equal(first, select_calibration(1000, 100, seed))


def test_each_draw_is_what_a_run_with_its_seed_draws() -> None:
    idx = draw_indices(500, 100, 0, 4)
    for i, d in enumerate(idx):
        assert np.array_equal(d, select_calibration(500, 100, draw_seed(0, i)))
    assert len({tuple(d) for d in idx}) == 4  # four different draws
    # Derived, not seed + i: seed 1's first draw is not seed 0's second.
    assert draw_seed(0, 1) != 1 and draw_seed(0, 1) != draw_seed(1, 1)
    assert len({draw_seed(s, i) for s in range(5) for i in range(1, 5)}) == 20


def test_heldout_slice_holds_no_draws_item() -> None:
    idx = draw_indices(500, 100, 0, 3)
    held = heldout_indices(500, idx, 0)
    used = set(np.concatenate(idx).tolist())
    assert not used & set(held.tolist())
    assert len(held) == 500 - len(used)  # under the cap: every free item
    assert np.array_equal(held, np.sort(held))
    assert np.array_equal(held, heldout_indices(500, idx, 0))  # reproducible
    big = heldout_indices(5000, draw_indices(5000, 100, 0, 3), 0)
    assert len(big) == HELDOUT_MAX


def _raw(n: int) -> RawData:
    x = np.random.default_rng(0).uniform(0, 1, (n, 4, 4, 1)).astype(np.float32)
    return RawData("npz:cal", None, x, np.arange(n) % 3, (), "float32")


def test_prepare_draws_gives_each_draws_items_and_the_heldout_slice() -> None:
    raw = _raw(60)
    first = prepare(raw.subset(select_calibration(60, 10, 5)), None, (4, 4, 1), "data.calibration")
    d = prepare_draws(raw, None, (4, 4, 1), 10, 5, 3, first)
    assert d.sets[0] is first and d.seeds == tuple(draw_seed(5, i) for i in range(3))
    for i, ds in enumerate(d.sets):
        want = raw.arrays[select_calibration(60, 10, d.seeds[i])]
        assert np.array_equal(ds.x, want)
    rows = {r.tobytes() for ds in d.sets for r in ds.x}
    assert not rows & {r.tobytes() for r in d.heldout.x}
    assert len(d.heldout) >= HELDOUT_MIN and d.heldout.y is not None


def test_too_few_items_to_spare_is_an_error_naming_the_key() -> None:
    raw = _raw(20)
    first = prepare(raw.subset(select_calibration(20, 16, 0)), None, (4, 4, 1), "x")
    with pytest.raises(DataError) as info:
        prepare_draws(raw, None, (4, 4, 1), 16, 0, 3, first)
    assert "calibration.draws = 3" in info.value.message and "of the 20 available" in \
        info.value.message
    assert "calibration.samples" in (info.value.hint or "")


# ------------------------------------------------------------------ the keep rule


def test_median_keeps_the_middle_draw_on_the_heldout_figures() -> None:
    assert keep_draw([0.90, 0.80, 0.85], "median") == 2
    assert keep_draw([0.85, 0.90, 0.80, 0.88, 0.70], "median") == 0
    # Even count: the lower of the two middle ones (0.2, not 0.3).
    assert keep_draw([0.1, 0.4, 0.2, 0.3], "median") == 2
    # Ties go to the lower draw number.
    assert keep_draw([0.5, 0.5, 0.5], "median") == 1
    assert keep_draw([0.7], "median") == 0


def test_best_keeps_the_highest_heldout_figure() -> None:
    assert keep_draw([0.90, 0.95, 0.85], "best") == 1
    assert keep_draw([21.0, 25.5, 25.5], "best") == 1  # dB; the tie to the lower number
    with pytest.raises(ValueError):
        keep_draw([0.1], "worst")


def test_the_test_figures_never_choose() -> None:
    """The keep rule sees the held-out figures only: test figures that would choose
    otherwise change nothing (the job passes it nothing else; see test_onnx_draws)."""
    heldout = [0.80, 0.90, 0.85]
    test = [0.99, 0.50, 0.10]  # best and median on test are draws 0 and 1
    assert keep_draw(heldout, "best") == 1 != int(np.argmax(test))
    assert keep_draw(heldout, "median") == 2 != keep_draw(test, "median")


def test_spread_is_mean_range_and_sample_std() -> None:
    s = spread([0.90, 0.91, 0.95])
    assert s["mean"] == pytest.approx(0.92)
    assert (s["min"], s["max"]) == (0.90, 0.95)
    assert s["std"] == pytest.approx(math.sqrt(((0.02**2) + (0.01**2) + (0.03**2)) / 2))
    assert spread([0.5]) == {"mean": 0.5, "min": 0.5, "max": 0.5, "std": 0.0}
    assert spread([]) == {}


# ------------------------------------------------------------------ config

BASE = """
[model]
path = "model.keras"
[data.calibration]
kind = "npy_dir"
path = "cal"
[data.test]
kind = "npz"
path = "test.npz"
"""


def test_defaults(write_config) -> None:
    cfg = load_config(write_config(BASE))
    assert cfg.calibration.draws == 1 and cfg.calibration.keep == "median"
    cfg = load_config(write_config(BASE), ["calibration.draws=5", "calibration.keep=best"])
    assert cfg.calibration.draws == 5 and cfg.calibration.keep == "best"


@pytest.mark.parametrize(("sets", "key", "words"), [
    (["calibration.draws=0"], "calibration.draws", "greater than or equal to 1"),
    (["calibration.draws=2.5"], "calibration.draws", "valid integer"),
    (['calibration.draws="3"'], "calibration.draws", "valid integer"),
    (["calibration.keep=worst"], "calibration.keep", "'median' or 'best'"),
    (["calibration.draws=3", 'quantization.stages=["fp32", "fp16"]'], "calibration.draws",
     "is 3: each draw converts an INT8 model, but quantization.stages has no int8"),
    (["calibration.draws=3", "quantization.method=qat", 'data.train.kind="npz"',
      'data.train.path="t.npz"'], "calibration.draws", "draws apply to PTQ"),
])
def test_bad_draws_name_the_key(write_config, sets: list[str], key: str, words: str) -> None:
    path = write_config(BASE)
    with pytest.raises(ConfigError) as info:
        load_config(path, sets)
    text = str(info.value)
    assert f"{key}:" in text and words in text, text
    assert "\n" not in text


# ------------------------------------------------------------------ report and words

DRAWS = {
    "count": 3, "keep": "median", "kept": 1,
    "heldout": {"metric": "sequence_accuracy", "output": "logits", "unit": "fraction",
                "items": 256, "mean": 0.92, "min": 0.91, "max": 0.93, "std": 0.01},
    "test": {"metric": "sequence_accuracy", "output": "logits", "unit": "fraction",
             "items": 1000, "mean": 0.9117, "min": 0.91, "max": 0.914, "std": 0.0021},
    "per_draw": [
        {"index": 0, "seed": 0, "items": 100, "sha256": "a" * 64, "size_bytes": 10,
         "heldout": 0.93, "test": 0.91},
        {"index": 1, "seed": 17, "items": 100, "sha256": "b" * 64, "size_bytes": 10,
         "heldout": 0.92, "test": 0.914},
        {"index": 2, "seed": 23, "items": 100, "sha256": "c" * 64, "size_bytes": 10,
         "heldout": 0.91, "test": 0.911},
    ],
}


def _report(draws: dict | None) -> Report:
    int8 = {"path": "int8.tflite", "size_bytes": 10}
    if draws is not None:
        int8["draws"] = draws
    return Report.from_dict({"schema": "artq.report/1", "status": "ok",
                             "stages": {"int8": int8}})


def test_report_part_round_trips_exactly() -> None:
    rep = _report(DRAWS)
    assert rep.to_dict()["stages"]["int8"]["draws"] == DRAWS
    d = rep.stage("int8").draws
    assert isinstance(d, CalibrationDraws) and d.kept_draw.seed == 17
    before_test = {**DRAWS, "test": None,
                   "per_draw": [{**r, "test": None} for r in DRAWS["per_draw"]]}
    assert _report(before_test).to_dict()["stages"]["int8"]["draws"] == before_test
    assert Stage.from_dict({"path": "x"}).draws is None


def test_words_say_spread_kept_draw_and_why() -> None:
    lines = say.draws_lines(_report(DRAWS))
    assert lines[0] == ("INT8 over 3 calibration draws: 91.17 % mean, 91.00–91.40 % "
                        "(std 0.21 pt) seq acc on 1,000 test items; kept draw 1, seed 17 "
                        "(median on the held-out calibration slice)")
    assert lines[1] == ("held-out calibration slice (256 items no draw holds, which chose): "
                        "92.00 % mean, 91.00–93.00 % (std 1.00 pt) seq acc")
    assert lines[3] == "draw 1 (seed 17, 100 items): held-out 92.00 %, test 91.40 % (kept)"
    assert say.draws_lines(_report(None)) == []
    db = {**DRAWS, "keep": "best",
          "test": {**DRAWS["test"], "metric": "sqnr_db", "unit": "dB", "mean": 23.44,
                   "min": 23.1, "max": 23.9, "std": 0.31}}
    assert say.draws_lines(_report(db))[0].startswith(
        "INT8 over 3 calibration draws: 23.4 dB mean, 23.1–23.9 dB (std 0.3 dB) SQNR of "
        "'logits' on 1,000 test items; kept draw 1, seed 17 (best on the held-out")


def test_report_md_has_the_draws_table() -> None:
    from engine.report import render_markdown

    md = render_markdown(_report(DRAWS))
    assert "## Calibration draws" in md
    assert "| 1 | 17 | 100 | 92.00 % | 91.40 % | kept |" in md


def test_sample_config_documents_the_keys() -> None:
    from conftest import SAMPLE_CONFIGS

    text = (SAMPLE_CONFIGS / "digits_ptq.toml").read_text()
    assert "draws = 1" in text and 'keep = "median"' in text
    assert Path(SAMPLE_CONFIGS / "digits_ptq.toml").is_file()
