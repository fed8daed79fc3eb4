"""Sweep variants against the best one, item by item: which differences are noise."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.uncertainty import ITEMS, inputs_digest, save_items, versus, versus_best


class _Variant:
    """What versus_best reads of an engine.sweep.VariantResult."""

    def __init__(self, run_dir: Path, drop: float, key: str | None = "task") -> None:
        self.run_dir, self.drop, self.items_key, self.status = str(run_dir), drop, key, "ok"


def _run(tmp: Path, name: str, wrong: list[int], n: int = 1000, seed: int = 0) -> Path:
    d = tmp / name
    d.mkdir()
    right = np.ones(n, bool)
    right[wrong] = False
    x = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    save_items(d / ITEMS, {"task_fp32": np.ones(n, bool), "task_int8": right,
                           "test_digest": inputs_digest(x)})
    return d


def test_variants_against_the_best_on_the_same_items(tmp_path: Path) -> None:
    best = _run(tmp_path, "best", [0, 1, 2])  # 0.3 points lost
    near = _run(tmp_path, "near", [0, 1, 3, 4, 5])  # 0.5: 3 items only it gets wrong, 1 only best
    far = _run(tmp_path, "far", list(range(40)))  # 4.0: 37 more wrong, none fewer
    vs = versus(best, near, "task")
    assert vs is not None and (vs["lost"], vs["gained"], vs["n"]) == (3, 1, 1000)
    se = math.sqrt(4 - 2**2 / 1000) / 1000
    assert vs["diff"] == pytest.approx(0.2)
    assert vs["low"] == pytest.approx(100 * (0.002 - 1.959964 * se), abs=1e-4)
    assert vs["within_noise"] is True
    vf = versus(best, far, "task")
    assert vf is not None and vf["diff"] == pytest.approx(3.7) and vf["within_noise"] is False
    # 4 items one way, none the other: the normal interval clears 0 (0.40 ± 0.39), but
    # McNemar's exact p is 2/16 = 0.125: noise, not a difference.
    few = _run(tmp_path, "few", [0, 1, 2, 3, 4, 5, 6])
    vw = versus(best, few, "task")
    assert vw is not None and (vw["lost"], vw["gained"]) == (4, 0) and vw["low"] > 0
    assert vw["p_value"] == pytest.approx(0.125) and vw["within_noise"] is True
    # A run without per-item vectors (from before) is not compared.
    old = tmp_path / "old"
    old.mkdir()
    assert versus(best, old, "task") is None
    # Nor one on other test items, however many: pairing them would be a lie.
    other = _run(tmp_path, "other", [0, 1, 3, 4, 5], seed=1)
    assert versus(best, other, "task") is None
    rows = versus_best([_Variant(near, 0.5), _Variant(best, 0.3), _Variant(far, 4.0),
                        _Variant(old, 0.1), _Variant(far, 4.0, key=None)])
    assert rows[1] == {"best": True}  # the smallest drop with vectors ("old" has none)
    assert rows[0] == vs and rows[2] == vf
    assert rows[3] is None and rows[4] is None


def _sweep(tmp: Path) -> dict[str, Any]:
    best = _run(tmp, "best", [0, 1, 2])
    near = _run(tmp, "near", [0, 1, 3, 4, 5])
    far = _run(tmp, "far", list(range(40)))
    variants = []
    for n, d, drop, lost in ((10, far, 4.0, 40), (100, near, 0.5, 5), (500, best, 0.3, 3)):
        half = 1.959964 * math.sqrt(lost - lost**2 / 1000) / 10
        variants.append({
            "set": {"calibration.samples": n}, "status": "ok", "drop": drop, "run_dir": str(d),
            "metrics": {"sequence_accuracy": 0.9, "agreement_acc": 0.998},
            "stage_drops": {"fp16": 0.0}, "sizes": {"int8": 173_568}, "npu_ms": 0.743,
            "convert_s": 3.0, "total_s": 15.7, "state": "unresolved",
            "interval": {"low": drop - half, "high": drop + half, "method": "paired",
                         "n": 1000, "lost": lost, "gained": 0}})
    results = [_Variant(Path(v["run_dir"]), v["drop"]) for v in variants]
    for v, vs in zip(variants, versus_best(results), strict=True):
        v["versus_best"] = vs
    return {"name": "ocr_crnn_conv", "status": "ok", "metric": "sequence_accuracy",
            "variants": variants}


def test_the_sweep_table_says_which_differences_are_noise_in_80_columns(tmp_path: Path) -> None:
    from rich.console import Console

    from engine.cli.sweep import summary_table
    from engine.present_interval import noise_sentence
    from engine.sweep import render_markdown, variant_labels

    data = _sweep(tmp_path)
    con = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    con.print(summary_table(data))
    text = " ".join(con.export_text().split())
    assert "…" not in text
    assert "samples=10 90.00 +4.00 ±1.21 +3.70" in text
    assert "samples=100 90.00 +0.50 ±0.44 ≈ best" in text
    assert "samples=500 90.00 +0.30 ±0.34 best" in text
    said = noise_sentence(variant_labels([v["set"] for v in data["variants"]]),
                          [v["versus_best"] for v in data["variants"]])
    assert said == (
        "Really worse than the best (samples=500): samples=10 (+3.70 ± 1.17 points, 37 ↓ / 0 ↑). "
        "Within noise of it: samples=100 (+0.20 ± 0.39 points, 3 ↓ / 1 ↑) (this test set "
        "cannot tell them from the best, and any trend between them is its noise).")
    md = render_markdown(data)
    assert "| samples=100 | ok | 90.00 % | 0.50 ±0.44 | ≈ best |" in md and said in md


def test_the_chart_draws_each_drop_with_its_interval_on_one_axis() -> None:
    from engine.present_interval import interval_chart

    ivs = [{"low": -0.2, "high": 0.4, "lost": 3, "gained": 1},
           {"low": 0.6, "high": 1.0, "lost": 9, "gained": 0}]
    lines = interval_chart(["a", "b"], [0.1, 0.8, None][:2], ivs, width=13)
    # The axis runs −0.2 … 1.0 over 13 columns: 0.1 points to a column.
    assert lines[0] == "a  ├─┼●──┤        0.10 ±0.30 pts"
    assert lines[1] == "b    │     ├─●─┤  0.80 ±0.20 pts"
    assert interval_chart(["a", "c"], [0.1, None], [ivs[0], None], width=5)[1] == "c  failed"
