"""The bias_correction stage inside a job (fake backend, crafted .tflite files, LiteRT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_backend import INT8_MODEL, FakeFactory, write_keras_stub

from engine.config import load_config
from engine.events import StageStarted
from engine.job import run_job
from engine.report import Report, render_markdown
from engine.tflite import read_model

JOB = """
name = "fake"
[model]
path = "{model}"
[data.calibration]
kind = "npz"
path = "{data}"
y = ""
[data.test]
kind = "npz"
path = "{test}"
y = ""
[calibration]
samples = 20
[quantization]
bias_correction = "{mode}"
[evaluation]
task = "generic"
workers = 1
[analysis]
debug_samples = 4
sensitivity_k = 1
[output]
runs_dir = "{runs}"
"""


@pytest.fixture(autouse=True)
def no_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("tensorflow", "tf_keras", "keras"):
        monkeypatch.setitem(sys.modules, name, None)


def _job(tmp: Path, mode: str, test_seed: int = 1):  # noqa: ANN202
    rng = np.random.default_rng(0)
    np.savez(tmp / "cal.npz", x=rng.uniform(-1, 1, (20, 8, 8, 1)).astype(np.float32))
    rng = np.random.default_rng(test_seed)
    np.savez(tmp / f"test{test_seed}.npz", x=rng.uniform(-1, 1, (12, 8, 8, 1)).astype(np.float32))
    path = tmp / "job.toml"
    path.write_text(JOB.format(model=write_keras_stub(tmp / "model.keras"), data=tmp / "cal.npz",
                               test=tmp / f"test{test_seed}.npz", runs=tmp / "runs", mode=mode),
                    encoding="utf-8")
    return load_config(path)


def test_sequential_stage_keeps_one_model_and_reports_both(tmp_path: Path) -> None:
    events: list = []
    res = run_job(_job(tmp_path, "sequential"), events.append, backend=FakeFactory())
    started = [e.stage for e in events if isinstance(e, StageStarted)]
    assert started.index("bias_correction") == started.index("convert_int8") + 1
    rep = res.report
    bc = rep.bias_correction
    assert bc is not None and bc.method == "sequential"
    assert (bc.fit_items, bc.heldout_items, bc.test_items) == (16, 4, 12)
    assert [la.op for la in bc.layers] == ["CONV_2D"]
    (out,) = bc.outputs
    assert out.name == "output_0"
    # The fake's INT8 model is no quantization of its float one (weights 0.01 against 1):
    # no bias brings it closer, the held-out slice says so, and the converter's is kept.
    cal = out.calibration
    assert cal is not None and cal.before_db is not None and cal.after_db is not None
    assert cal.after_db < cal.before_db
    assert not bc.corrected and bc.other_path == "int8_corrected.tflite"
    assert (res.run_dir / "int8.tflite").read_bytes() == INT8_MODEL
    assert (res.run_dir / bc.other_path).read_bytes() != INT8_MODEL
    # Same operators either way; the report reads back exactly and says what was kept.
    ops = [o.opcode for o in read_model(res.run_dir / "int8.tflite").main.operators]
    assert ops == [o.opcode for o in read_model(res.run_dir / bc.other_path).main.operators]
    d = json.loads((res.run_dir / "report.json").read_text())
    assert Report.from_dict(d).to_dict() == d
    md = render_markdown(rep)
    assert "## Bias correction" in md and bc.other_path in md


def test_the_choice_never_depends_on_the_test_set(tmp_path: Path) -> None:
    a = run_job(_job(tmp_path, "sequential", 1), backend=FakeFactory()).report.bias_correction
    b = run_job(_job(tmp_path, "sequential", 2), backend=FakeFactory()).report.bias_correction
    assert a is not None and b is not None
    assert a.kept == b.kept
    assert a.outputs[0].calibration == b.outputs[0].calibration
    assert a.outputs[0].test != b.outputs[0].test


def test_off_runs_no_stage_and_keeps_the_converters_model(tmp_path: Path) -> None:
    events: list = []
    res = run_job(_job(tmp_path, "off"), events.append, backend=FakeFactory())
    assert "bias_correction" not in [e.stage for e in events if isinstance(e, StageStarted)]
    assert res.report.bias_correction is None
    assert (res.run_dir / "int8.tflite").read_bytes() == INT8_MODEL
    assert not list(res.run_dir.glob("int8_*.tflite"))


def test_a_correction_that_helps_is_kept_and_the_job_evaluates_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fake_backend  # noqa: PLC0415
    from test_bias_correction import float_model, make_pair  # noqa: PLC0415

    int8 = make_pair()[0]
    monkeypatch.setattr(fake_backend, "INT8_MODEL", int8)
    monkeypatch.setattr(fake_backend, "FLOAT_MODEL", float_model())
    monkeypatch.setattr(fake_backend, "IN_SHAPE", (1, 8, 8, 4))
    cfg = _job(tmp_path, "sequential")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", x=rng.uniform(-1, 1, (20, 8, 8, 4)).astype(np.float32))
    np.savez(tmp_path / "test1.npz", x=rng.uniform(-1, 1, (12, 8, 8, 4)).astype(np.float32))
    res = run_job(cfg, backend=FakeFactory())
    bc = res.report.bias_correction
    assert bc is not None and bc.corrected and bc.other_path == "int8_uncorrected.tflite"
    (out,) = bc.outputs
    assert out.test is not None and out.test.after_db > out.test.before_db + 6
    assert (res.run_dir / "int8_uncorrected.tflite").read_bytes() == int8
    # The evaluation (and so the verdict) scores the kept, corrected model.
    sq = res.report.stage("int8").metrics.outputs[0].sqnr_db
    assert sq == pytest.approx(out.test.after_db, abs=0.01)


def _report(passed: bool, mode: str = "off", method: str = "ptq",
            path: str = "int8.tflite") -> Report:
    return Report.from_dict({
        "schema": "artq.report/1", "status": "ok", "name": "r",
        "config": {"quantization": {"method": method, "bias_correction": mode}},
        "stages": {"int8": {"path": path, "size_bytes": 1}},
        "verdict": {"profile": "general", "threshold": 26.0, "metric": "sqnr_db", "fp32": None,
                    "int8": 6.2, "drop": None, "pass": passed, "advice": "", "output": "dense",
                    "unit": "dB"}})


def test_a_low_sqnr_with_the_correction_off_suggests_it() -> None:
    from engine import present  # noqa: PLC0415

    (line,) = present.bias_lines(_report(False))
    assert "'dense' at 6.2 dB" in line and 'bias_correction = "sequential"' in line
    assert "## Bias correction" in render_markdown(_report(False))
    assert present.bias_lines(_report(True)) == []
    assert present.bias_lines(_report(False, method="qat")) == []
    assert present.bias_lines(_report(False, mode="sequential")) == []
    # A QDQ .onnx is corrected too, so its low SQNR suggests it as well.
    (onnx_line,) = present.bias_lines(_report(False, path="int8.onnx"))
    assert 'bias_correction = "sequential"' in onnx_line


def test_a_failed_correction_keeps_the_converters_model_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.job.bias as stage  # noqa: PLC0415

    def broken(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise ValueError("LiteRT cannot load it")

    monkeypatch.setattr(stage, "correct", broken)
    res = run_job(_job(tmp_path, "sequential"), backend=FakeFactory())
    assert res.status == "ok"
    bc = res.report.bias_correction
    assert bc is not None and not bc.corrected and "LiteRT cannot load it" in (bc.error or "")
    assert (res.run_dir / "int8.tflite").read_bytes() == INT8_MODEL
    assert "Bias correction failed" in render_markdown(res.report)
    d = json.loads((res.run_dir / "report.json").read_text())
    assert Report.from_dict(d).to_dict() == d
