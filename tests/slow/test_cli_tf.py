"""`artq run` on input that only a real TensorFlow export can judge: the report on stdout,
--strict's exit code, and mistakes found once the model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from commands import artq_process as artq
from commands import job_file


def test_json_prints_the_report_only_and_strict_sets_code_4(tmp_path: Path) -> None:
    cal = tmp_path / "cal"
    cal.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(str(cal / f"{i}.png"), rng.integers(0, 255, (32, 32), dtype=np.uint8))
    job = job_file(tmp_path, cal=cal, extra="\n[evaluation]\nprofile = 'production'\n")
    r = artq("run", str(job), "--json", "--set", "quantization.stages=['fp32','int8']")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)  # stdout is exactly one JSON document
    assert rep["status"] == "ok" and set(rep["stages"]) == {"fp32", "int8"}
    # Calibrated on noise: INT8 should drop far more than the 0.5-point production bar.
    # --strict exits 4 on a FAIL (the whole interval over the bar) only; --strict-confident
    # also when the test set cannot tell (NOT RESOLVED).
    state = rep["verdict"]["state"]
    # A confident PASS or FAIL agrees with the point estimate; NOT RESOLVED may sit either side.
    assert state == "unresolved" or (state == "pass") == rep["verdict"]["pass"]
    r2 = artq("run", str(job), "--strict", "--set", "quantization.stages=['fp32','int8']")
    assert r2.returncode == (4 if state == "fail" else 0), r2.stderr
    if state != "pass":
        r3 = artq("run", str(job), "--strict-confident",
                  "--set", "quantization.stages=['fp32','int8']")
        assert r3.returncode == 4, r3.stderr


def test_the_child_started_before_the_job_is_read_changes_nothing(tmp_path: Path) -> None:
    """``artq run`` starts its TensorFlow child as it begins (engine/backends/prewarm.py):
    the same report and model bytes as with ``ARTQ_PREWARM=0``, and the child's start is in
    the run's log."""
    import subprocess
    import sys

    from commands import child_env

    job = job_file(tmp_path, extra="\n[quantization]\nstages = ['fp32', 'int8']\n")
    # The child's start log is a temporary file: a temp folder of this test's own, so a
    # run beside it (another checkout's tests) cannot leave one where this looks.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    reports, folders = [], []
    for prewarm in ("1", "0"):
        r = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(job), "--json",
                            "--no-cache"], capture_output=True, text=True, timeout=300,
                           env={**child_env(), "ARTQ_PREWARM": prewarm, "TMPDIR": str(tmp)})
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        folders.append(Path(rep["run_dir"]))
        for stage in rep["stages"].values():
            stage.pop("items_per_s", None)  # a speed, not a result
        reports.append({k: v for k, v in rep.items()
                        if k not in ("created", "run_dir", "timings", "config_source")})
    assert json.dumps(reports[0]).replace(str(folders[0]), "<run>") == \
        json.dumps(reports[1]).replace(str(folders[1]), "<run>")
    for name in ("fp32.tflite", "int8.tflite"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes()
    early = "--- TensorFlow's start (before this run's log existed) ---"
    assert early in (folders[0] / "log.txt").read_text(errors="replace")
    assert early not in (folders[1] / "log.txt").read_text(errors="replace")
    assert not list(tmp.glob("artq-tf-*.log"))  # removed once copied into the run's log
