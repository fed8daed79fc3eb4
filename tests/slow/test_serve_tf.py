"""A warm worker with real TensorFlow: the relaunch reuses the TensorFlow child and gives the
one-shot run's report and INT8 bytes; SIGTERM during a job cancels it and ends the worker."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from commands import child_env, proc_state
from models import tiny_job

VOLATILE = {"created", "timings", "items_per_s", "run_dir", "config_source", "cache"}


def _strip(d: Any, run_dir: str) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v, run_dir) for k, v in d.items() if k not in VOLATILE}
    if isinstance(d, list):
        return [_strip(v, run_dir) for v in d]
    if isinstance(d, str):
        return d.replace(run_dir, "<run>")
    return d


def _until(proc: subprocess.Popen[str], kind: str) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    got = []
    for line in proc.stdout:
        got.append(json.loads(line))  # every line is protocol: nothing TF prints leaks here
        if got[-1]["kind"] == kind:
            return got
    raise AssertionError(f"the worker ended (code {proc.wait()}) before a {kind} event: {got}")


def _alive(pid: int) -> bool:
    # A zombie (ended, not yet reaped by its parent) is ended too.
    return proc_state(pid) not in (None, "Z")


def test_a_relaunch_on_a_warm_worker_reuses_tensorflow_and_gives_the_same_bytes(
        tiny_model: Path, tmp_path: Path) -> None:
    cfg = str(tiny_job(tmp_path, tiny_model, test_count=100))
    cache = str(tmp_path / "cache")
    serve = subprocess.Popen([sys.executable, "-m", "engine.worker", "serve"], env=child_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             bufsize=1)
    assert serve.stdin is not None

    def send(*overrides: str) -> None:
        req = {"cmd": "run", "config": cfg, "cache": cache, "overrides": list(overrides)}
        serve.stdin.write(json.dumps(req) + "\n")  # type: ignore[union-attr]
        serve.stdin.flush()  # type: ignore[union-attr]

    try:
        send()
        first = _until(serve, "job_done")
        # The child the pool would hand out next dies while idle (a crash): never reused.
        p1 = first[-1]["pool"]
        assert p1["opened"] == 2 and p1["reused"] == 0 and len(p1["idle_pids"]) == 2
        crashed, survivor = p1["idle_pids"][-1], p1["idle_pids"][0]
        os.kill(crashed, signal.SIGKILL)
        send("calibration.samples=24")
        second = _until(serve, "job_done")
        for events in (first, second):
            assert events[-1]["exit_code"] == 0
            assert events[-2]["kind"] == "run_finished" and events[-2]["status"] == "ok"
        p2 = second[-1]["pool"]
        # The cold job opened the main child and the float lane's; the relaunch (FP32/FP16
        # from the cache: one child) took the surviving one instead of starting TensorFlow.
        assert p2["opened"] == 2 and p2["reused"] == 1
        assert p2["idle_pids"] == [survivor]
        warm_run = Path(second[-1]["run_dir"])
        log = (warm_run / "log.txt").read_text(errors="replace")
        assert log  # the reused child's output went to the new run's log

        # A third job, cancelled by SIGTERM as soon as it started: marked cancelled, and the
        # worker ends with its TensorFlow children.
        send("calibration.samples=16")
        started = _until(serve, "run_started")[-1]
        serve.terminate()
        third = _until(serve, "job_done")
        assert third[-2]["kind"] == "run_failed" and third[-2]["status"] == "cancelled"
        assert third[-1]["exit_code"] == 3
        assert serve.wait(60) == 3
        report = json.loads((Path(started["run_dir"]) / "report.json").read_text())
        assert report["status"] == "cancelled"
        assert (Path(started["run_dir"]) / "log.txt").is_file()
        assert not any(_alive(pid) for pid in p2["idle_pids"])
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()

    # The same relaunch as a one-shot `run` without the cache: the same report and bytes.
    one = subprocess.run([sys.executable, "-m", "engine.worker", "run", cfg, "--no-cache",
                          "--set", "calibration.samples=24"], env=child_env(),
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    done = [json.loads(line) for line in one.stdout.splitlines()][-1]
    assert done["kind"] == "run_finished"
    cold_run = Path(done["run_dir"])
    digest = {r: hashlib.sha256((r / "int8.tflite").read_bytes()).hexdigest()
              for r in (warm_run, cold_run)}
    assert digest[warm_run] == digest[cold_run]
    reports = [_strip(json.loads((r / "report.json").read_text()), str(r))
               for r in (warm_run, cold_run)]
    assert reports[0] == reports[1]


def test_warm_starts_tensorflow_before_the_first_job_which_then_takes_it(
        tiny_model: Path, tmp_path: Path) -> None:
    """What the TUI sends when a Keras session opens: the first job then opens no
    TensorFlow process of its own (the job's and the float lane's were started ahead)."""
    cfg = str(tiny_job(tmp_path, tiny_model, test_count=40))
    serve = subprocess.Popen([sys.executable, "-m", "engine.worker", "serve"], env=child_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             bufsize=1)
    assert serve.stdin is not None
    try:
        serve.stdin.write(json.dumps({"cmd": "warm", "format": "keras"}) + "\n")
        serve.stdin.write(json.dumps({"cmd": "run", "config": cfg, "cache": False,
                                      "overrides": []}) + "\n")
        serve.stdin.flush()
        events = _until(serve, "job_done")
        assert events[-2]["kind"] == "run_finished" and events[-2]["status"] == "ok"
        assert events[-1]["pool"]["opened"] == 2 and events[-1]["pool"]["reused"] == 2
        serve.stdin.close()
        assert serve.wait(60) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
