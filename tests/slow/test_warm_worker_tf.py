"""``artq worker start`` with real TensorFlow: ``artq run`` on the warm worker gives the report
and INT8 bytes of a run here; the client's cancel marks the run cancelled and keeps the worker
up; ``artq worker stop`` ends it and its TensorFlow processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from commands import child_env
from models import tiny_job
from test_serve_tf import _alive, _strip

from engine.events import Event, StageStarted


@pytest.fixture
def sock() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aw-") as d:  # a socket path stays short
        os.chmod(d, 0o700)
        yield Path(d) / "w.sock"


def _artq(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, env=dict(child_env(), ARTQ_WORKER_SOCKET=str(sock)),
                          timeout=600)


def test_runs_on_the_warm_worker_match_runs_here_and_its_cancel_keeps_it_up(
        tiny_model: Path, tmp_path: Path, sock: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import warm

    cfg = str(tiny_job(tmp_path, tiny_model, test_count=100))
    start = _artq(sock, "worker", "start")
    assert start.returncode == 0, start.stderr
    try:
        conn, why = warm.connect(sock)
        assert conn is not None, why
        pid = conn.worker.pid
        conn.close()
        there = _artq(sock, "run", cfg, "--json", "--set", "calibration.samples=24")
        assert there.returncode == 0, there.stderr[-2000:]
        assert f"on the warm worker (pid {pid})" in there.stderr

        # A job cancelled by its client as soon as a stage starts: marked cancelled, its log
        # kept, and the worker still serves.
        conn, _ = warm.connect(sock)
        assert conn is not None
        asked: list[str] = []

        def cancel_at_once(ev: Event) -> None:
            if isinstance(ev, StageStarted) and not asked:  # the first stage: ask once
                asked.append(ev.stage)
                conn.cancel()

        done = conn.run(cfg, ["calibration.samples=16"], False, cancel_at_once)
        conn.close()
        assert asked and done.exit_code == 3 and done.run_dir
        cancelled = Path(done.run_dir)
        assert json.loads((cancelled / "report.json").read_text())["status"] == "cancelled"
        assert (cancelled / "log.txt").is_file()
        status = _artq(sock, "worker", "status")
        assert status.returncode == 0 and f"pid {pid}" in status.stdout
    finally:
        stop = _artq(sock, "worker", "stop")
    assert stop.returncode == 0 and f"(pid {pid}) stopped" in stop.stdout
    assert not _alive(pid) and not sock.exists()

    # The same job here, without the cache: the same report and INT8 bytes.
    here = _artq(sock, "run", cfg, "--json", "--no-cache", "--set", "calibration.samples=24")
    assert here.returncode == 0, here.stderr[-2000:]
    assert "warm worker" not in here.stderr
    runs = [Path(json.loads(r.stdout)["run_dir"]) for r in (there, here)]
    digest = {hashlib.sha256((r / "int8.tflite").read_bytes()).hexdigest() for r in runs}
    assert len(digest) == 1
    reports = [_strip(json.loads(r.stdout), str(d)) for r, d in zip((there, here), runs,
                                                                    strict=True)]
    assert reports[0] == reports[1]
