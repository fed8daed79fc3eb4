"""calibration.draws through the whole job on a tiny ONNX model (onnxruntime, no TensorFlow):
K draws give K INT8 models, the kept one is chosen on held-out calibration items and is the
very model a one-draw run with its seed makes; draw 0 is the run as it always was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_models import ONNX_TESTS, conv_classifier, onnx

from engine import load_config
from engine.backends import BackendOptions
from engine.cancel import CancelToken
from engine.draws import keep_draw
from engine.events import null_sink
from engine.job import run_job

pytestmark = ONNX_TESTS

JOB = """
name = "onnx-draws"
[model]
path = "{model}"
[data.calibration]
kind = "npz"
path = "{cal}"
[data.test]
kind = "npz"
path = "{test}"
y = ""
[calibration]
samples = 12
[evaluation]
task = "generic"
workers = 2
[analysis]
debug_samples = 4
sensitivity_k = 0
[output]
runs_dir = "{runs}"
"""


def _logits_model(path: Path) -> Path:
    """conv_classifier without its Softmax: logits, judged on SQNR, which moves with every
    range the calibration sets (argmax agreement of so small a model barely moves)."""
    model = onnx.load(str(conv_classifier(path, outlier=6.0)))
    softmax = model.graph.node[-1]
    model.graph.node.remove(softmax)
    model.graph.output[0].name = softmax.input[0]
    onnx.save(model, str(path))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("draws")
    # One filter's outlier sets the conv output's range: which items calibrate it matters.
    model = _logits_model(tmp / "m.onnx")
    rng = np.random.default_rng(0)
    # Items of very different scales: a small draw sees some of them, or not.
    scale = rng.choice([0.2, 1.0, 3.0], size=(100, 1, 1, 1)).astype(np.float32)
    np.savez(tmp / "cal.npz", x=rng.uniform(0, 1, (100, 8, 8, 1)).astype(np.float32) * scale)
    np.savez(tmp / "test.npz", x=rng.uniform(0, 1.5, (60, 8, 8, 1)).astype(np.float32))
    cfg = tmp / "job.toml"
    cfg.write_text(JOB.format(model=model, cal=tmp / "cal.npz", test=tmp / "test.npz",
                              runs=tmp / "runs"))

    def run(*sets: str) -> Any:
        return run_job(load_config(cfg, list(sets)))

    return run


@pytest.fixture(scope="module")
def three(job: Any) -> Any:
    return job("calibration.draws=3")


def test_three_draws_three_models_one_kept(three: Any) -> None:
    rep = json.loads((three.run_dir / "report.json").read_text())
    d = rep["stages"]["int8"]["draws"]
    assert d["count"] == 3 and len(d["per_draw"]) == 3
    shas = [r["sha256"] for r in d["per_draw"]]
    assert len(set(shas)) == 3  # three draws, three different INT8 models
    # The kept draw is the rule applied to the held-out figures, and it is int8.onnx.
    held = [r["heldout"] for r in d["per_draw"]]
    assert d["kept"] == keep_draw(held, "median")
    assert _sha(three.run_dir / "int8.onnx") == shas[d["kept"]]
    assert rep["stages"]["int8"]["size_bytes"] == d["per_draw"][d["kept"]]["size_bytes"]
    assert len(set(held)) == 3  # and three different figures to choose from
    # Held-out: calibration items no draw holds; judged as the verdict judges (SQNR).
    assert d["heldout"]["metric"] == "sqnr_db" and d["heldout"]["unit"] == "dB"
    assert 10 <= d["heldout"]["items"] <= 100 - 12
    assert d["test"]["items"] == 60
    tests = [r["test"] for r in d["per_draw"]]
    assert all(0.0 < t < 90.0 for t in tests)
    assert d["test"]["mean"] == pytest.approx(np.mean(tests), abs=1e-6)
    assert d["test"]["std"] == pytest.approx(np.std(tests, ddof=1), abs=1e-6)
    assert (d["test"]["min"], d["test"]["max"]) == (min(tests), max(tests))
    # The kept draw's test figure is the evaluation's own INT8 SQNR, the verdict's.
    sqnr = rep["stages"]["int8"]["metrics"]["outputs"][0]["sqnr_db"]
    assert tests[d["kept"]] == pytest.approx(sqnr, abs=1e-3)
    assert rep["verdict"]["int8"] == pytest.approx(sqnr, abs=1e-3)
    md = (three.run_dir / "report.md").read_text()
    assert "## Calibration draws" in md and f"kept draw {d['kept']}" in md
    assert not (three.run_dir / ".work").exists()  # the other draws' models were scratch


def test_one_draw_is_the_run_as_before_and_the_kept_draw_is_its_seeds_run(
        job: Any, three: Any) -> None:
    d = three.report.stage("int8").draws
    one = job()  # calibration.draws = 1: no draws part, draw 0's model
    assert one.report.stage("int8").draws is None
    assert _sha(one.run_dir / "int8.onnx") == d.per_draw[0].sha256
    kept = d.kept_draw
    again = job(f"calibration.seed={kept.seed}")
    assert _sha(again.run_dir / "int8.onnx") == kept.sha256 == _sha(three.run_dir / "int8.onnx")


def test_best_keeps_the_best_heldout_draw(job: Any) -> None:
    rep = job("calibration.draws=4", "calibration.keep=best").report
    d = rep.stage("int8").draws
    held = [r.heldout for r in d.per_draw]
    assert d.keep == "best" and held[d.kept] == max(held)
    assert d.kept == held.index(max(held)) and len(set(held)) == 4


def test_the_analysis_calibrates_on_the_kept_draw_not_the_last(tmp_path: Path) -> None:
    """The ONNX backend's per-layer analysis reuses its last conversion's ranges; given
    another draw's items it calibrates again on them."""
    from engine.backends.onnx import OnnxBackend

    model = conv_classifier(tmp_path / "m.onnx", outlier=6.0)
    be = OnnxBackend(BackendOptions(tmp_path / "log.txt", tmp_path / "work", null_sink,
                                    CancelToken()))
    be.load(str(model), "onnx", None, str(tmp_path / "export"), stage="load")
    rng = np.random.default_rng(1)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, rng.uniform(0, 1, (8, 1, 8, 8)).astype(np.float32))
    np.save(b, rng.uniform(0, 3, (8, 1, 8, 8)).astype(np.float32))
    ranges = tmp_path / "work" / "onnx_int8" / "ranges.json"
    be.convert("int8", str(tmp_path / "a.onnx"), str(a), "per_channel", "int8", False,
               stage="convert_int8")
    ranges_a = ranges.read_text()
    be.convert("int8", str(tmp_path / "b.onnx"), str(b), "per_channel", "int8", False,
               stage="convert_int8")
    assert ranges.read_text() != ranges_a
    be.analyze_layers(str(a), str(tmp_path / "a.onnx"), str(tmp_path / "sens"), 4, 0,
                      "per_channel", "int8", False, stage="layers")
    assert ranges.read_text() == ranges_a
    shutil.rmtree(tmp_path / "work")
