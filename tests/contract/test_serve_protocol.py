"""`python -m engine.worker serve` without TensorFlow: job after job on one worker, each
ending in its run_failed and its job_done event; the end of stdin ends the worker.

With real jobs (the TensorFlow child reused, cancel by SIGTERM): tests/slow/test_serve_tf.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from commands import child_env
from fake_backend import write_keras_stub

from engine.events import PROTOCOL, RunFailed, RunStarted
from engine.protocol import JobDone, read_event

JOB = """
name = "served"
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
[evaluation]
task = "generic"
[output]
runs_dir = "{runs}"
"""


def _job(tmp_path: Path) -> Path:
    """A job whose model passes preflight and whose data fails to load (no TF needed)."""
    model = write_keras_stub(tmp_path / "m.keras")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.array(["a", "b"]))  # strings: no model input, found only when loaded
    cfg = tmp_path / "job.toml"
    cfg.write_text(JOB.format(model=model, data=data, runs=tmp_path / "runs"), encoding="utf-8")
    return cfg


def _serve(requests: list[str], timeout: float = 90) -> tuple[list[dict], int, str]:
    p = subprocess.run([sys.executable, "-m", "engine.worker", "serve"], capture_output=True,
                       text=True, env=child_env(), timeout=timeout,
                       input="".join(r + "\n" for r in requests))
    return [json.loads(line) for line in p.stdout.splitlines()], p.returncode, p.stderr


def test_two_jobs_on_one_worker_each_end_in_their_event(tmp_path: Path) -> None:
    cfg = _job(tmp_path)
    absent = json.dumps(str(tmp_path / "absent.keras"))
    lines, rc, err = _serve([
        json.dumps({"cmd": "run", "config": str(cfg), "cache": False}),
        json.dumps({"cmd": "run", "config": str(cfg), "overrides": [f"model.path={absent}"]}),
    ])
    assert rc == 0, err  # stdin ended: the worker ends cleanly
    assert all(d["protocol"] == PROTOCOL for d in lines)
    kinds = [d["kind"] for d in lines]
    # The first job starts (its folder exists) and fails loading its data; the second stops
    # in preflight, before any folder, exactly as `run` says it.
    first_end = kinds.index("job_done")
    assert kinds[0] == "run_started" and kinds[first_end - 1] == "run_failed"
    assert kinds[first_end + 1:] == ["run_failed", "job_done"]
    started = read_event(json.dumps(lines[0]))
    failed, done = (read_event(json.dumps(d)) for d in lines[first_end - 1:first_end + 1])
    assert isinstance(started, RunStarted) and isinstance(failed, RunFailed)
    assert isinstance(done, JobDone)
    assert failed.status == "failed" and failed.run_dir == started.run_dir
    assert done.exit_code == 2 and done.run_dir == started.run_dir  # bad input, as `run`'s
    run = Path(started.run_dir)
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "failed" and (run / "log.txt").is_file()
    assert done.pool == {"opened": 0, "reused": 0, "idle_pids": []}  # no backend was opened
    second_failed, second_done = (read_event(json.dumps(d)) for d in lines[first_end + 1:])
    assert isinstance(second_failed, RunFailed) and second_failed.run_dir == ""
    assert second_failed.error_type == "InputFileError"
    assert "absent.keras: model not found" in second_failed.message
    assert isinstance(second_done, JobDone) and second_done.exit_code == 2
    assert second_done.run_dir == ""
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the preflight made no folder


def test_a_line_that_is_no_request_fails_alone_and_quit_ends_the_worker(tmp_path: Path) -> None:
    lines, rc, _ = _serve(["not json", json.dumps({"cmd": "run"}), json.dumps({"cmd": "quit"}),
                           json.dumps({"cmd": "run", "config": str(_job(tmp_path))})])
    assert rc == 0
    assert [d["kind"] for d in lines] == ["run_failed", "job_done"] * 2  # nothing after quit
    assert "not a run request: not json" in lines[0]["message"]
    assert lines[1]["exit_code"] == 2 and lines[3]["exit_code"] == 2
    assert not (tmp_path / "runs").exists()


def test_sigterm_while_idle_ends_the_worker(tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-m", "engine.worker", "serve"], env=child_env(),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(json.dumps({"cmd": "run", "config": str(tmp_path / "none.toml")}) + "\n")
    p.stdin.flush()
    assert json.loads(p.stdout.readline())["kind"] == "run_failed"
    assert json.loads(p.stdout.readline())["kind"] == "job_done"  # now idle, stdin open
    p.terminate()
    assert p.wait(30) == 3
    p.stdin.close()
    p.stdout.close()


async def test_the_tui_runner_sends_launches_to_one_warm_worker(tmp_path: Path) -> None:
    import asyncio

    from tui.jobs import WorkerRunner
    from tui.messages import JobEvent, JobExited

    cfg = str(_job(tmp_path))
    runner = WorkerRunner(warm=True)
    pids = []
    for _ in range(2):
        got: list = []
        exited = asyncio.Event()

        def post(msg: object, got: list = got, exited: asyncio.Event = exited) -> None:
            got.append(msg)
            if isinstance(msg, JobExited):
                exited.set()

        await runner.start(cfg, ["calibration.samples=2"], post)
        assert runner.running
        await asyncio.wait_for(exited.wait(), 60)
        assert not runner.running
        assert [type(m) for m in got][-2:] == [JobEvent, JobExited]
        assert isinstance(got[-2].event, RunFailed) and got[-1].returncode == 2
        pids.append(runner.pid)
    assert pids[0] == pids[1]  # the same worker served both
    proc = runner.proc
    assert proc is not None and proc.returncode is None
    await runner.close()
    assert proc.returncode == 0  # stdin closed: it ended on its own
    # Off: a one-shot `run` worker per launch, as before.
    cold = WorkerRunner(warm=False)
    done = asyncio.Event()
    codes: list[int] = []

    def post_cold(msg: object) -> None:
        if isinstance(msg, JobExited):
            codes.append(msg.returncode)
            done.set()

    await cold.start(cfg, [], post_cold)
    await asyncio.wait_for(done.wait(), 60)
    assert codes == [2] and cold.proc is not None and cold.proc.returncode == 2


def test_warm_is_not_answered_and_starts_nothing_for_a_model_it_cannot_pool(
        tmp_path: Path) -> None:
    # An ONNX model's backend runs in the worker itself: nothing to start ahead, no answer,
    # and the worker goes on reading requests.
    lines, rc, _ = _serve([json.dumps({"cmd": "warm", "format": "onnx"}), "not json",
                           json.dumps({"cmd": "quit"})])
    assert rc == 0
    assert [d["kind"] for d in lines] == ["run_failed", "job_done"]  # the bad line's only
    assert lines[-1]["pool"] == {"opened": 0, "reused": 0, "idle_pids": []}


async def test_a_warm_up_and_a_launch_at_once_share_one_warm_worker() -> None:
    # Opening a session asks for the worker (warm-up) and Ctrl+R may follow before it has
    # started: both must get the same one, or the job's worker is not the one the runner
    # keeps and cancels (seen: a cancelled job reported over while its worker lived on).
    import asyncio

    from tui.jobs import WorkerRunner

    runner = WorkerRunner(warm=True)
    first, second = await asyncio.gather(runner._serve_worker(), runner._serve_worker())
    try:
        assert first is second
        assert first.returncode is None
    finally:
        await runner.close()
    assert first.returncode == 0
