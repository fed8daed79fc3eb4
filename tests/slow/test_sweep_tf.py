"""A real two-variant `artq sweep` on a tiny model: variants in parallel, FP32 shared."""

from __future__ import annotations

import json
from pathlib import Path

from commands import artq_process as artq
from models import tiny_job


def test_sweep_runs_variants_in_parallel_and_shares_fp32(tiny_model: Path, tmp_path: Path) -> None:
    cfg = tiny_job(tmp_path, tiny_model, test_count=100)
    p = artq("sweep", str(cfg), "--set", "calibration.samples=16,32", "--json",
             "--runs-dir", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads(p.stdout)  # stdout is the sweep's JSON and nothing else
    assert data["schema"] == "artq.sweep/1" and data["status"] == "ok"
    assert data["wall_s"] > 0 and data["jobs"] == 2
    assert [v["set"] for v in data["variants"]] == [{"calibration.samples": 16},
                                                    {"calibration.samples": 32}]
    shared = 0
    for v in data["variants"]:
        rep = json.loads(Path(v["report"]).read_text())
        assert Path(v["run_dir"]).parent == tmp_path / "out"
        assert rep["config"]["calibration"]["samples"] == v["set"]["calibration.samples"]
        assert v["drop"] == rep["verdict"]["drop"]
        assert v["metrics"]["top1"] == rep["stages"]["int8"]["metrics"]["top1"]
        assert v["total_s"] == rep["timings"]["total_s"]
        shared += "convert_fp32" in rep["cache"]["reused"]
        # The shared FP32 model is the one this config makes: same bytes in every run.
        assert (Path(v["run_dir"]) / "fp32.tflite").stat().st_size == rep["stages"]["fp32"]["size_bytes"]
    assert shared == 1  # one variant converted FP32, the other reused it
    sweep_dir = next((tmp_path / "out").glob("*-sweep-tiny"))
    assert json.loads((sweep_dir / "sweep.json").read_text())["variants"] == data["variants"]
    assert not (sweep_dir / "cache").exists()  # removed unless --keep-cache
    # Both variants overlapped: the wall time is below the sum of the runs.
    assert data["wall_s"] < data["sum_s"]
