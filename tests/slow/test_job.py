"""A real PTQ job on a tiny model built here: conversion, evaluation, report contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from models import tiny_job

from engine import load_config, run_job
from engine.events import Progress, RunFinished, StageMetrics, StageStarted
from engine.report import Report


@pytest.fixture(scope="session")
def tiny_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("job")
    events: list = []
    result = run_job(load_config(tiny_job(tmp, tiny_model)), events.append)
    return result, events


def test_report_follows_the_contract(tiny_run) -> None:
    result, _ = tiny_run
    rep = json.loads((result.run_dir / "report.json").read_text())
    assert rep["schema"] == "artq.report/1"
    assert Report.from_dict(rep).to_dict() == rep  # the typed report is the contract
    assert rep["status"] == "ok"
    assert rep["config"]["calibration"]["samples"] == 32
    for stage in ("fp32", "fp16", "int8"):
        st = rep["stages"][stage]
        assert (result.run_dir / st["path"]).is_file()
        assert st["size_bytes"] == (result.run_dir / st["path"]).stat().st_size
        m = st["metrics"]
        assert 0.0 <= m["top1"] <= 1.0
        (out,) = m["outputs"]  # the one output, by the name Keras gives it
        assert set(out) == {"name", "kind", "acc", "rmse", "mae", "l2r", "mean", "std", "nse",
                            "cos", "sqnr_db", "exact"}
        assert out["name"] == rep["model"]["outputs"][0]["name"]
    fp32_out = rep["stages"]["fp32"]["metrics"]["outputs"][0]
    assert fp32_out["rmse"] == 0.0 and fp32_out["exact"] and fp32_out["sqnr_db"] is None
    v = rep["verdict"]
    assert v["profile"] == "prototype" and v["threshold"] == 5.0
    fp32, int8 = rep["stages"]["fp32"]["metrics"]["top1"], rep["stages"]["int8"]["metrics"]["top1"]
    assert v["drop"] == round((fp32 - int8) * 100, 4)  # points, as the verdict rounds them
    assert v["pass"] == (v["drop"] <= 5.0)
    assert rep["timings"]["total_s"] > 0
    assert rep["data"]["calibration"] == {
        "source": "synthetic:digits/calibration", "available": 64, "used": 32, "seed": 0,
    }
    for name in ("config.toml", "events.jsonl", "report.md", "log.txt"):
        assert (result.run_dir / name).is_file(), name
    assert not (result.run_dir / ".work").exists()


def test_tiny_model_learned_and_int8_stays_close(tiny_run) -> None:
    rep = tiny_run[0].report.to_dict()
    fp32 = rep["stages"]["fp32"]["metrics"]
    int8 = rep["stages"]["int8"]["metrics"]
    assert fp32["top1"] > 0.5  # far above chance (0.1): the metric measures something real
    (out,) = int8["outputs"]
    assert out["kind"] == "classes"  # the classification task's output: class scores
    assert out["acc"] > 0.9
    assert out["cos"] > 0.98


def test_int8_model_is_full_integer(tiny_run) -> None:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tiny_run[0].run_dir / "int8.tflite"))
    dtypes = {np.dtype(d["dtype"]).name for d in it.get_tensor_details()}
    assert dtypes <= {"int8", "int32"}, dtypes
    assert it.get_input_details()[0]["shape"].tolist() == [1, 32, 32, 1]  # batch fixed to 1
    ops = {o["op_name"] for o in it._get_ops_details()}
    assert not ops & {"SHAPE", "GATHER", "PACK"}, ops


def test_events_stream_stages_progress_and_metrics(tiny_run) -> None:
    _, events = tiny_run
    started = [e.stage for e in events if isinstance(e, StageStarted)]
    assert started[:2] == ["data", "load"]
    assert {"convert_fp32", "convert_fp16", "convert_int8", "evaluate_int8"} <= set(started)
    cal = [e for e in events if isinstance(e, Progress) and e.stage == "convert_int8"]
    assert cal and cal[-1].done == cal[-1].total == 32
    measured = [e.stage for e in events if isinstance(e, StageMetrics)]
    # FP16 is evaluated in the float lane while INT8 is, so their order varies; both are
    # measured against FP32, which comes first.
    assert sorted(measured) == ["fp16", "fp32", "int8"] and measured[0] == "fp32"
    assert isinstance(events[-1], RunFinished) and events[-1].status == "ok"


@pytest.mark.parametrize(("io_type", "dtype"), [("uint8", "uint8"), ("float32", "float32")])
def test_io_type_and_per_tensor(tiny_model: Path, tmp_path: Path, io_type: str, dtype: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    cfg = load_config(
        tiny_job(tmp_path, tiny_model, test_count=40),
        [f"quantization.io_type={io_type}", "quantization.granularity=per_tensor",
         'quantization.stages=["fp32", "int8"]'],
    )
    result = run_job(cfg)
    it = Interpreter(model_path=str(result.run_dir / "int8.tflite"))
    assert np.dtype(it.get_input_details()[0]["dtype"]).name == dtype
    assert np.dtype(it.get_output_details()[0]["dtype"]).name == dtype
    assert set(result.report.to_dict()["stages"]) == {"fp32", "int8"}
    # per-tensor: every weight tensor has a single scale
    for d in it.get_tensor_details():
        if np.dtype(d["dtype"]).name == "int8" and len(d["shape"]) == 4:
            assert len(d["quantization_parameters"]["scales"]) <= 1
    assert result.report.to_dict()["stages"]["int8"]["metrics"]["outputs"][0]["acc"] > 0.8
