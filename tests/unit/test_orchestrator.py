"""The orchestrator end to end with a fake backend: no TensorFlow, no subprocess.

Stage order and events, the report, and how a failure or a cancel in each stage marks the
run (status, error, log, report.json), for PTQ and QAT runs.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_backend import FakeFactory, write_keras_stub

from engine.cancel import CancelToken
from engine.config import load_config
from engine.errors import CancelledError, EngineError, TargetError
from engine.events import (
    STAGE_IDS,
    Event,
    ModelInfo,
    RunFailed,
    RunFinished,
    RunStarted,
    StageFinished,
    StageMetrics,
    StageStarted,
)
from engine.job import run_job
from engine.report import Report

PTQ_STAGES = ["data", "load", "preprocess", "diagnose", "convert_fp32", "convert_fp16",
              "convert_int8", "layers", "evaluate_fp32", "evaluate_fp16", "evaluate_int8",
              "analyze", "sensitivity"]
QAT_STAGES = ["data", "load", "preprocess", "diagnose", "convert_fp32", "convert_fp16",
              "qat_data", "qat_train", "convert_int8", "evaluate_fp32", "evaluate_fp16",
              "evaluate_int8", "analyze"]

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
path = "{data}"
y = ""
{extra}
[calibration]
samples = 16
[evaluation]
task = "generic"
workers = 1
[analysis]
debug_samples = 4
sensitivity_k = 1
[output]
runs_dir = "{runs}"
"""

QAT = """
[data.train]
kind = "npz"
path = "{data}"
y = ""
[quantization]
method = "qat"
[quantization.qat]
compare_ptq = false
"""


@pytest.fixture(autouse=True)
def no_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any import of TensorFlow during these tests fails: the orchestrator must not need it."""
    for name in ("tensorflow", "tf_keras", "keras"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def job(tmp_path: Path):
    """Write the fake job's model, data and config; returns a loader of its config."""
    model = write_keras_stub(tmp_path / "model.keras")
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.uniform(-1, 1, (24, 8, 8, 1)).astype(np.float32))

    def load(qat: bool = False, overrides: list[str] | None = None):  # noqa: ANN202
        extra = QAT.format(data=data) if qat else ""
        path = tmp_path / "job.toml"
        path.write_text(JOB.format(model=model, data=data, runs=tmp_path / "runs",
                                   extra=extra), encoding="utf-8")
        return load_config(path, overrides)

    return load


def _run(cfg: Any, factory: FakeFactory, sink: Any = None,
         cancel: CancelToken | None = None) -> tuple[list[Event], Any]:
    events: list[Event] = []

    def collect(ev: Event) -> None:
        events.append(ev)
        if sink is not None:
            sink(ev)

    result = run_job(cfg, collect, cancel, backend=factory)
    return events, result


def test_full_run_events_in_stage_order_and_report(job) -> None:
    factory = FakeFactory()
    events, result = _run(job(), factory)
    started = [e.stage for e in events if isinstance(e, StageStarted)]
    assert started == PTQ_STAGES
    # One list names every stage, and runs follow its order.
    assert started == sorted(started, key=STAGE_IDS.index)
    finished = [e.stage for e in events if isinstance(e, StageFinished)]
    assert finished == PTQ_STAGES
    assert isinstance(events[0], RunStarted) and events[0].stages == ["fp32", "fp16", "int8"]
    assert isinstance(events[-1], RunFinished) and events[-1].status == "ok"
    assert [e.stage for e in events if isinstance(e, StageMetrics)] == ["fp32", "fp16", "int8"]
    assert [e.params for e in events if isinstance(e, ModelInfo)] == [40]
    # The backend was driven with the stage ids it reports under, and closed.
    (be,) = factory.opened
    assert be.calls == ["load", "convert_fp32", "convert_fp16", "convert_int8", "layers"]
    assert be.closed

    rep = result.report.to_dict()
    on_disk = json.loads((result.run_dir / "report.json").read_text())
    assert on_disk["status"] == rep["status"] == "ok"
    assert set(rep) == {"schema", "artq_version", "status", "name", "run_dir", "created",
                        "config", "config_source", "model", "data", "preprocessing", "stages",
                        "verdict", "findings", "timings", "npu", "headline", "stedgeai",
                        "layers", "sensitivity", "layer_analysis"}
    assert rep["schema"] == "artq.report/1"
    assert rep["model"]["format"] == "keras" and rep["model"]["params"] == 40
    assert rep["data"]["calibration"] == {"source": rep["data"]["calibration"]["source"],
                                          "available": 24, "used": 16, "seed": 0}
    assert set(rep["stages"]) == {"fp32", "fp16", "int8"}
    fp32, int8 = rep["stages"]["fp32"], rep["stages"]["int8"]
    # One output, a conv map (not class scores): named, judged on fidelity in dB, no argmax.
    (ref,) = fp32["metrics"]["outputs"]
    assert ref["name"] == "output_0" and ref["kind"] == "values" and ref["acc"] is None
    assert ref["exact"] and ref["sqnr_db"] is None  # FP32 against itself: no inf in JSON
    assert rep["stages"]["fp16"]["metrics"]["outputs"][0]["exact"]  # the same float model
    (out,) = int8["metrics"]["outputs"]
    # SQNR by hand from the two .tflite files: each channel's variation over the error.
    from engine.evaluate import run_model  # noqa: PLC0415

    x = np.load(result.report.setting("data.test.path"))["x"]
    f32 = run_model(str(result.run_dir / "fp32.tflite"), x, workers=1).outputs[0].astype(float)
    i8 = run_model(str(result.run_dir / "int8.tflite"), x, workers=1).outputs[0].astype(float)
    var = np.sum((f32 - f32.mean(axis=(0, 1, 2))) ** 2)
    assert out["sqnr_db"] == pytest.approx(10 * math.log10(var / np.sum((i8 - f32) ** 2)))
    assert "drop" not in fp32 and "drop" not in int8  # no output is judged in points
    v = rep["verdict"]
    assert v["metric"] == "sqnr_db" and v["unit"] == "dB" and v["drop"] is None
    assert v["output"] == "output_0" and v["int8"] == out["sqnr_db"] and v["threshold"] == 26.0
    assert v["pass"] == (out["sqnr_db"] >= 26.0)
    (j,) = v["outputs"]
    iv = j.pop("interval")
    assert j == {"name": "output_0", "rule": "sqnr", "metric": "sqnr_db", "unit": "dB",
                 "value": out["sqnr_db"], "bar": 26.0, "pass": v["pass"], "judged": True}
    # SQNR's interval: a bootstrap over the 24 test items, around the report's own value.
    assert iv["method"] == "bootstrap" and iv["n"] == 24 and iv["level"] == 0.95
    assert iv["low"] < out["sqnr_db"] < iv["high"]
    assert v["state"] == ("pass" if iv["low"] >= 26.0 else "fail" if iv["high"] < 26.0
                          else "unresolved")
    assert rep["layer_analysis"]["suspects"] == ["y"]
    (sens,) = rep["sensitivity"]
    assert sens["tensor"] == "y" and sens["path"] == "sensitivity/keep_float_1.tflite"
    assert [row["name"] for row in rep["layers"]] == ["y"]
    assert (result.run_dir / "layers.csv").is_file() and (result.run_dir / "report.md").is_file()
    assert {f"{s}_s" for s in PTQ_STAGES} | {"total_s"} == set(rep["timings"])
    assert not (result.run_dir / ".work").exists()


def test_qat_run_stage_order(job) -> None:
    factory = FakeFactory()
    events, result = _run(job(qat=True), factory)
    assert [e.stage for e in events if isinstance(e, StageStarted)] == QAT_STAGES
    assert result.report.to_dict()["qat"] == {"epochs_run": 1, "best_epoch": 1}
    assert "layer_analysis" not in result.report.to_dict()  # the per-layer analysis covers PTQ only
    assert factory.opened[0].options.legacy_keras


def _assert_marked(run_dir: Path, status: str, events: list[Event], error_type: str) -> dict:
    rep = json.loads((run_dir / "report.json").read_text())
    assert rep["status"] == status
    assert rep["error"]["type"] == error_type
    assert "verdict" in rep and rep["verdict"] is None
    last = events[-1]
    assert isinstance(last, RunFailed) and last.status == status and last.error_type == error_type
    # The event log holds the run's events up to the end.
    logged = [json.loads(line)["kind"] for line in
              (run_dir / "events.jsonl").read_text().splitlines()]
    assert logged[0] == "run_started" and logged[-1] == "run_failed"
    assert (run_dir / "report.md").is_file()
    assert not (run_dir / ".work").exists()
    return rep


STAGE_CASES = [(s, False) for s in PTQ_STAGES] + [
    (s, True) for s in ("qat_data", "qat_train")]


@pytest.mark.parametrize(("stage", "qat"), STAGE_CASES)
def test_failure_in_each_stage_marks_the_run_failed_with_its_log(job, stage: str,
                                                                  qat: bool) -> None:
    def boom(ev: Event) -> None:
        if isinstance(ev, StageStarted) and ev.stage == stage:
            raise RuntimeError(f"boom in {stage}")

    events: list[Event] = []
    with pytest.raises(EngineError) as info:
        _run(job(qat=qat), FakeFactory(), sink=lambda ev: (events.append(ev), boom(ev)))
    run_dir = Path(info.value.run_dir)  # type: ignore[attr-defined]
    rep = _assert_marked(run_dir, "failed", events, "EngineError")
    assert rep["error"]["message"] == f"internal error: RuntimeError: boom in {stage}"
    # An internal error leaves its traceback in the run's log.
    assert f"RuntimeError: boom in {stage}" in (run_dir / "log.txt").read_text()
    started = [e.stage for e in events if isinstance(e, StageStarted)]
    assert started[-1] == stage
    assert stage not in [e.stage for e in events if isinstance(e, StageFinished)]


@pytest.mark.parametrize("stage", ["load", "convert_fp32", "convert_fp16", "convert_int8"])
def test_backend_error_fails_the_run_with_its_message(job, stage: str) -> None:
    factory = FakeFactory(fail_in=stage)
    events: list[Event] = []
    with pytest.raises(EngineError) as info:
        _run(job(), factory, sink=events.append)
    rep = _assert_marked(Path(info.value.run_dir), "failed", events,  # type: ignore[attr-defined]
                         "ConversionError")
    assert rep["error"]["message"] == f"fake failure in {stage}"
    assert factory.opened[0].closed


def test_layer_analysis_failure_keeps_the_result(job) -> None:
    events, result = _run(job(), FakeFactory(fail_in="layers"))
    assert result.status == "ok"
    assert result.report.to_dict()["layer_analysis"]["error"]["message"] == "fake failure in layers"
    assert "sensitivity" not in result.report.to_dict() and result.report.to_dict()["verdict"] is not None


@pytest.mark.parametrize(("stage", "qat"), STAGE_CASES)
def test_cancel_in_each_stage_marks_the_run_cancelled(job, stage: str, qat: bool) -> None:
    cancel = CancelToken()

    def cancel_at(ev: Event) -> None:
        if isinstance(ev, StageStarted) and ev.stage == stage:
            cancel.cancel()

    events: list[Event] = []
    with pytest.raises(CancelledError) as info:
        _run(job(qat=qat), FakeFactory(), sink=lambda ev: (events.append(ev), cancel_at(ev)),
             cancel=cancel)
    _assert_marked(Path(info.value.run_dir), "cancelled", events,  # type: ignore[attr-defined]
                   "CancelledError")
    assert stage in [e.stage for e in events if isinstance(e, StageStarted)]


@pytest.mark.parametrize("override", ["analysis.target=no-such-board", "model.path=missing.keras"])
def test_preflight_error_leaves_no_run_folder(job, tmp_path: Path, override: str) -> None:
    factory = FakeFactory()
    with pytest.raises((TargetError, EngineError)):
        _run(job(overrides=[override]), factory)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert factory.opened == []


@pytest.mark.parametrize(("override", "data_shape", "message"), [
    ("model.input_shape=[8,8,3]", (24, 8, 8, 1),
     "model.input_shape = [8, 8, 3] does not fit the Keras input (None, 8, 8, 1)"),
    (None, (24, 8, 8, 3), "items have shape (8, 8, 3) but the model input is (8, 8, 1)"),
])
def test_metadata_mistakes_fail_in_preflight(job, tmp_path: Path, override: str | None,
                                             data_shape: tuple[int, ...], message: str) -> None:
    np.savez(tmp_path / "data.npz", x=np.zeros(data_shape, np.float32))
    factory = FakeFactory()
    with pytest.raises(EngineError, match=re.escape(message)):
        _run(job(overrides=[override] if override else None), factory)
    assert not (tmp_path / "runs").exists()
    assert factory.opened == []


def test_labels_beyond_the_model_classes_fail_in_preflight(job, tmp_path: Path) -> None:
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((24, 8, 8, 1), np.float32), y=np.arange(24) * 20)
    cfg = job(overrides=["evaluation.task=classification", "data.test.y=y",
                         "evaluation.max_samples=20"])
    with pytest.raises(EngineError, match=re.escape(
            f"data.test ({data}): labels run 0..380 but the model has 256 classes")):
        _run(cfg, FakeFactory())
    assert not (tmp_path / "runs").exists()


def test_preprocessing_for_model_ready_arrays_is_a_warning_not_silence(job) -> None:
    events, result = _run(job(overrides=["preprocessing.scale=0.5",
                                         "preprocessing.mean=[0.1]"]), FakeFactory())
    (found,) = [f for f in result.report.findings if f.code == "preprocessing_ignored"]
    assert found.severity == "warning"
    assert "preprocessing.scale, preprocessing.mean set" in found.message
    assert "raw = true" in found.fix
    assert any(getattr(e, "code", None) == "preprocessing_ignored" for e in events)
    # The defaults say nothing.
    _, plain = _run(job(), FakeFactory())
    assert not [f for f in plain.report.findings if f.code == "preprocessing_ignored"]


def test_evaluation_outputs_naming_no_output_stops_the_run(job) -> None:
    from engine.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as info:
        _run(job(overrides=['evaluation.outputs=["boxes"]']), FakeFactory())
    assert "evaluation.outputs: names no output of this model: 'boxes'" in info.value.message
    assert info.value.hint == "the model's outputs are 'output_0'"
    rep = json.loads((Path(info.value.run_dir) / "report.json").read_text())  # type: ignore[attr-defined]
    assert rep["status"] == "failed" and rep["error"]["type"] == "ConfigError"


def test_sensitivity_scores_on_the_worst_output_and_keeps_unscorable_candidates(
        job, monkeypatch: pytest.MonkeyPatch) -> None:
    import fake_backend  # noqa: PLC0415

    real = fake_backend.FakeBackend.analyze_layers

    def with_a_failed_candidate(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN001
        res = real(self, *args, **kwargs)
        # A mixed model the backend could not write: kept with its reason, sorted last.
        res.candidates.append({"tensor": "z", "kind": "op", "float_ops": ["z"], "op": "ADD",
                               "error": "could not build the mixed model"})
        return res

    monkeypatch.setattr(fake_backend.FakeBackend, "analyze_layers", with_a_failed_candidate)
    _, result = _run(job(), FakeFactory())
    rep = result.report.to_dict()
    tried, failed = rep["sensitivity"]
    v = rep["verdict"]
    # The fake's one output is judged in dB: the mixed model is scored on it, in dB.
    assert tried["output"] == v["output"] == "output_0" and tried["unit"] == "dB"
    assert tried["metric"] == "sqnr_db" and tried["int8"] == pytest.approx(v["int8"])
    # The fake's mixed model is the float model itself: FP32 exactly, no finite gain.
    assert tried["exact"] is True and tried["value"] is None and tried["regained"] is None
    assert tried["regained_points"] is None and "matches FP32 exactly" in tried["suggestion"]
    assert Report.from_dict(rep).sensitivity[0].tried
    assert failed["tensor"] == "z" and failed["suggestion"] == "could not build the mixed model"
