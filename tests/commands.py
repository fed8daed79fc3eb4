"""Running artq's commands from a test: in this process (``artq``, milliseconds) or as the
real process a user or a UI starts (``artq_process``, ``worker``: for tests/contract/ and
tests/slow/ only)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "engine" / "samples" / "weights" / "digits.keras"
# Wide enough that rich never wraps a one-line error: the tests count lines.
COLUMNS = "200"


def proc_state(pid: int) -> str | None:
    """The process's state letter in /proc (R, S, T stopped, Z zombie…); None once it is
    gone. Read after the command's name, which may hold spaces and parentheses."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def child_env() -> dict[str, str]:
    return dict(os.environ, COLUMNS=COLUMNS, PYTHONPATH=str(ROOT))


def artq(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``artq ARGS`` through ``engine.cli.main`` in this process, as a finished process.

    The exit code is main's return value, or argparse's ``SystemExit`` code (``--help``, a
    usage error); stdout and stderr are what the command printed to each.
    """
    from engine.cli import main  # noqa: PLC0415 - after conftest has set sys.path

    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_columns = Path.cwd(), os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS  # rich reads it when a command makes its consoles
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(old_cwd)
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns
    return subprocess.CompletedProcess(["artq", *args], code, out.getvalue(), err.getvalue())


def artq_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m engine.cli ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=child_env(), timeout=300,
    )


def worker(config: Path, *sets: str) -> subprocess.Popen[str]:
    """``python -m engine.worker CONFIG --set …``, its JSON lines on stdout."""
    args = [sys.executable, "-m", "engine.worker", str(config)]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


JOB = """
[model]
path = "{model}"
[data.calibration]
kind = "{cal_kind}"
path = "{cal}"
[data.test]
kind = "synthetic"
generator = "digits"
split = "test"
count = 10
[calibration]
samples = {samples}
[output]
runs_dir = "{runs}"
"""


def job_file(tmp: Path, model: Path = DIGITS, cal: Path | None = None, cal_kind: str = "images",
             samples: int = 10, extra: str = "") -> Path:
    """A job config in ``tmp`` on the bundled digits model; runs go to ``tmp/runs``."""
    if cal is None:
        cal = tmp / "cal"
        cal.mkdir(exist_ok=True)
        for i in range(3):
            cv2.imwrite(str(cal / f"{i}.png"), np.full((32, 32), 40 * i, np.uint8))
    p = tmp / "job.toml"
    p.write_text(JOB.format(model=model, cal=cal, cal_kind=cal_kind, samples=samples,
                            runs=tmp / "runs") + extra)
    return p


def no_complete_run(tmp: Path) -> None:
    """Any run folder under ``tmp/runs`` is marked failed."""
    runs = tmp / "runs"
    for run in runs.iterdir() if runs.is_dir() else []:
        report = run / "report.json"
        assert report.is_file(), f"{run} has no report.json"
        assert json.loads(report.read_text())["status"] == "failed"


def one_line(err: str) -> str:
    """The one line of an error that stopped a command before any work."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in err
    return lines[0]


def error_line(err: str) -> str:
    """The one error line of a run that failed after some stages ("done …" lines) finished."""
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]
