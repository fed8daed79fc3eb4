"""The cache changes no result: a run with the cache off, cold and warm gives the same
report (apart from timings, places and the cache's own record) and the same model bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from models import tiny_job

from engine.config import load_config
from engine.job import lanes, run_job

VOLATILE = {"created", "timings", "items_per_s", "run_dir", "config_source", "cache"}


def _strip(d: Any, run_dir: str) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v, run_dir) for k, v in d.items() if k not in VOLATILE}
    if isinstance(d, list):
        return [_strip(v, run_dir) for v in d]
    if isinstance(d, str):
        return d.replace(run_dir, "<run>")
    return d


def _digests(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.glob("*.tflite"))}


def test_cache_off_cold_and_warm_give_the_same_report_and_bytes(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(tiny_job(tmp_path, tiny_model, test_count=100),
                      ["analysis.sensitivity_k=0"])
    cache = tmp_path / "cache"
    # Off: one TensorFlow process. Cold: FP32/FP16 in a second one beside INT8 (the float
    # lane). Warm: the float stages from the cache. All must agree to the byte.
    lanes_opened: list[list[str]] = []
    real_lane = lanes.FloatLane

    def counted(*args: Any, **kw: Any) -> Any:
        lanes_opened.append(list(args[3]))
        return real_lane(*args, **kw)

    monkeypatch.setattr(lanes, "FloatLane", counted)
    monkeypatch.setattr(lanes, "usable_cores", lambda: 2)
    monkeypatch.setenv("ARTQ_PARALLEL", "0")
    off = run_job(cfg)
    monkeypatch.delenv("ARTQ_PARALLEL")
    cold = run_job(cfg, cache_dir=cache)
    warm = run_job(cfg, cache_dir=cache)
    assert lanes_opened == [["fp32", "fp16"]]  # the cold run only
    reports = [json.loads((r.run_dir / "report.json").read_text()) for r in (off, cold, warm)]
    assert "cache" not in reports[0]
    assert reports[1]["cache"] == {"dir": str(cache), "reused": []}
    # The warm run read everything a new calibration would not change, and said so.
    assert reports[2]["cache"]["reused"] == [
        "data.calibration", "data.test", "load", "convert_fp32", "convert_fp16",
        "convert_int8.float_model", "evaluate_fp32", "evaluate_fp16"]
    stripped = [_strip(rep, str(r.run_dir)) for rep, r in zip(reports, (off, cold, warm),
                                                              strict=True)]
    assert stripped[1] == stripped[0]
    assert stripped[2] == stripped[0]
    assert _digests(cold.run_dir) == _digests(off.run_dir) == _digests(warm.run_dir)
    assert set(_digests(off.run_dir)) == {"fp32.tflite", "fp16.tflite", "int8.tflite"}
    # A new calibration count reuses the same entries and converts INT8 afresh.
    other = run_job(load_config(tiny_job(tmp_path, tiny_model, test_count=100),
                                ["analysis.sensitivity_k=0", "calibration.samples=24"]),
                    cache_dir=cache)
    rep = json.loads((other.run_dir / "report.json").read_text())
    assert "convert_fp32" in rep["cache"]["reused"] and "evaluate_fp32" in rep["cache"]["reused"]
    # ... and calibrates the converter's cached float model: the INT8 it gives is the one a
    # run without the cache gives for that count, to the byte.
    assert "convert_int8.float_model" in rep["cache"]["reused"]
    monkeypatch.setenv("ARTQ_PARALLEL", "0")
    fresh = run_job(load_config(tiny_job(tmp_path, tiny_model, test_count=100),
                                ["analysis.sensitivity_k=0", "calibration.samples=24"]))
    assert _digests(fresh.run_dir) == _digests(other.run_dir)
    assert rep["config"]["calibration"]["samples"] == 24
