"""``artq run`` beside a warm worker (``python -m engine.worker listen``), without TensorFlow:
the job goes there and says so, with the error a run here gives; a busy worker, or one of
another artq, is passed over with a note; ``artq worker status|stop`` find and end it.

With real jobs (the same report and bytes as a run here, the client's cancel):
tests/slow/test_warm_worker_tf.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from commands import artq, child_env
from test_serve_protocol import _job


@pytest.fixture
def sock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # A Unix socket's path has a ~100-byte limit: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="aw-") as d:
        os.chmod(d, 0o700)
        monkeypatch.setenv("ARTQ_WORKER_SOCKET", str(Path(d) / "w.sock"))
        yield Path(d) / "w.sock"


def _env(sock: Path) -> dict[str, str]:
    return dict(child_env(), ARTQ_WORKER_SOCKET=str(sock))


def _listen(sock: Path, python: str = sys.executable) -> subprocess.Popen[bytes]:
    """The worker ``artq worker start`` starts, without TensorFlow started ahead."""
    p = subprocess.Popen([python, "-m", "engine.worker", "listen", str(sock), "--warm", ""],
                         env=_env(sock))
    end = time.monotonic() + 30
    while not sock.exists():
        assert p.poll() is None and time.monotonic() < end, "the worker did not listen"
        time.sleep(0.02)
    return p


def _error_line(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith("error:"))


def test_a_run_goes_to_the_warm_worker_says_so_and_fails_as_here(tmp_path: Path,
                                                                  sock: Path) -> None:
    cfg = str(_job(tmp_path))  # starts, then fails loading its data: no TensorFlow needed
    worker = _listen(sock)
    try:
        there = [artq("run", cfg) for _ in range(2)]
        here = artq("run", cfg, "--no-worker")
        status = artq("worker", "status")
        assert worker.poll() is None  # failed jobs leave the worker up
        stop = artq("worker", "stop")
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    for run in there:
        assert run.returncode == here.returncode == 2
        assert f"on the warm worker (pid {worker.pid})" in run.stderr
        # The same error line as a run here, but for the run folder's own name.
        assert _error_line(run.stderr).split(" [run folder")[0] == \
            _error_line(here.stderr).split(" [run folder")[0]
        assert "[run folder marked failed: " in _error_line(run.stderr)
    assert "warm worker" not in here.stderr
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 3
    assert all(json.loads((r / "report.json").read_text())["status"] == "failed" for r in runs)
    for run in there:  # the folders the errors name, with the worker's log of each
        folder = Path(_error_line(run.stderr).split("marked failed: ")[1].rstrip("]"))
        assert folder in runs and (folder / "log.txt").is_file()
    assert status.returncode == 0 and f"pid {worker.pid}" in status.stdout
    assert stop.returncode == 0 and f"(pid {worker.pid}) stopped" in stop.stdout
    assert not sock.exists()  # the worker removed its socket
    after = artq("worker", "status")
    assert after.returncode == 1 and "no warm worker runs" in after.stdout


def test_a_busy_worker_is_passed_over_with_a_note(tmp_path: Path, sock: Path) -> None:
    cfg = str(_job(tmp_path))
    worker = _listen(sock)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as held:
            held.connect(str(sock))  # another client's connection: the worker serves it
            held.sendall(b'{"cmd": "hello"}\n')
            assert json.loads(held.makefile().readline())["pid"] == worker.pid
            run = artq("run", cfg)
        # Free again, it meets the passed-over run's connection (its client gone) and goes on.
        status = artq("worker", "status")
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(30)
    assert run.returncode == 2
    assert "note: the warm worker is busy with another job; running the job here" in run.stderr
    assert "on the warm worker" not in run.stderr
    assert "[run folder marked failed: " in _error_line(run.stderr)
    assert status.returncode == 0 and f"pid {worker.pid}" in status.stdout


def test_a_worker_of_another_artq_is_passed_over_with_a_note(tmp_path: Path,
                                                             sock: Path) -> None:
    cfg = str(_job(tmp_path))
    other_python = tmp_path / "python"  # another interpreter path: another installation
    other_python.symlink_to(sys.executable)
    worker = _listen(sock, str(other_python))
    try:
        run = artq("run", cfg)
        status = artq("worker", "status")
    finally:
        worker.terminate()
        worker.wait(30)
    assert run.returncode == 2 and "on the warm worker" not in run.stderr
    assert "note: the warm worker runs another artq" in run.stderr
    assert "artq worker stop, then artq worker start" in run.stderr
    assert status.returncode == 0 and "runs another artq" in status.stdout
