"""`python -m engine.cli` as the real process a user starts: exit codes, one-line errors on
stderr, and SIGTERM. (The same checks in-process, in milliseconds: tests/unit/test_cli.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from commands import artq_process, child_env, job_file, one_line


def test_bad_input_is_one_line_and_code_2(tmp_path: Path) -> None:
    r = artq_process("run", str(job_file(tmp_path, model=tmp_path / "nope.keras")))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert line.startswith("error: ") and str(tmp_path / "nope.keras") in line
    assert r.stdout == "" and not (tmp_path / "runs").exists()


def test_help_through_the_entry_point() -> None:
    r = artq_process("--help")
    assert r.returncode == 0 and "exit codes" in r.stdout and r.stderr == ""


def test_sigterm_cancels_a_run_and_marks_its_folder(tmp_path: Path) -> None:
    env = child_env()
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job_file(tmp_path))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    events: list[Path] = []
    while time.monotonic() < deadline and p.poll() is None:
        events = list((tmp_path / "runs").glob("*/events.jsonl"))
        if events and '"load"' in events[0].read_text():
            break  # exporting the model: mid-job
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 3, err
    assert "Traceback" not in err and "run folder marked cancelled" in err
    report = json.loads((events[0].parent / "report.json").read_text())
    assert report["status"] == "cancelled"
