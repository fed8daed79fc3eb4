"""calibration.draws with TensorFlow's converter, on the tiny digits model built here:
three draws, three INT8 models; the kept one is byte for byte what a one-draw run with its
seed converts, and the per-layer analysis explains that model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from models import tiny_job

from engine import load_config, run_job
from engine.draws import keep_draw

FAST = ["calibration.samples=8", 'quantization.stages=["fp32", "int8"]']


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_three_draws_and_the_kept_one_is_its_seeds_model(tiny_model: Path,
                                                         tmp_path: Path) -> None:
    job = tiny_job(tmp_path, tiny_model, test_count=60)
    res = run_job(load_config(job, [*FAST, "calibration.draws=3", "analysis.debug_samples=4"]))
    rep = res.report
    d = rep.stage("int8").draws
    assert d is not None and d.count == 3 and len(d.per_draw) == 3
    assert len({r.sha256 for r in d.per_draw}) == 3  # three draws, three INT8 models
    assert [r.items for r in d.per_draw] == [8, 8, 8]
    assert d.kept == keep_draw([r.heldout for r in d.per_draw], "median")
    assert _sha(res.run_dir / "int8.tflite") == d.kept_draw.sha256
    assert d.heldout is not None and d.heldout.metric == "top1" and d.heldout.items >= 10
    assert d.test is not None and d.test.items == 60
    assert all(0.0 <= r.test <= 1.0 for r in d.per_draw)
    assert d.per_draw[d.kept].test == pytest.approx(rep.stage("int8").metrics.value("top1"),
                                                    abs=1e-6)
    # The analysis calibrated on the kept draw's items: its ranges are int8.tflite's.
    assert rep.layer_analysis is not None and rep.layer_analysis.reproduced is True
    assert "INT8 over 3 calibration draws" in (res.run_dir / "report.md").read_text()

    one = run_job(load_config(job, [*FAST, f"calibration.seed={d.kept_draw.seed}"]))
    assert one.report.stage("int8").draws is None
    assert _sha(one.run_dir / "int8.tflite") == d.kept_draw.sha256
