"""`python -m engine.worker run|check|sweep` without TensorFlow: a bad config is one failed
event; the TUI's one spawn helper (tui.jobs) runs each subcommand and stops it.

With a real job (clean protocol, cancel by SIGTERM): tests/slow/test_worker.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from commands import child_env
from conftest import ROOT
from fakes import small_digits

from engine.events import PROTOCOL, Event, RunFailed
from engine.protocol import DataDiagnostics, DataPreview
from tui import jobs

DIGITS_MODEL = json.dumps({"inputs": [{"shape": [None, 32, 32, 1]}]})


@pytest.mark.parametrize("form", [[], ["run"]], ids=["without-subcommand", "run"])
def test_bad_config_is_one_failed_event(tmp_path: Path, form: list[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[calibration]\nsamples = -3\n")
    p = subprocess.Popen([sys.executable, "-m", "engine.worker", *form, str(cfg)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=child_env())
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1
    msg = json.loads(lines[0])
    assert msg["protocol"] == PROTOCOL and msg["kind"] == "run_failed"
    assert msg["error_type"] == "ConfigError" and str(cfg) in msg["message"]


async def _all(subcommand: str, args: list[str]) -> tuple[list[Event], int]:
    proc = await jobs.spawn(subcommand, args)
    err = jobs.read_stderr(proc)
    got = [ev async for ev in jobs.events(proc)]
    rc, _ = await jobs.finish(proc, err)
    return got, rc


async def test_spawn_check_sends_the_preview_then_the_diagnostics(tmp_path: Path) -> None:
    cfg = small_digits(tmp_path)
    got, rc = await _all("check", [str(cfg), "--model", DIGITS_MODEL,
                                   "--set", "calibration.samples=50"])
    assert rc == 0
    assert [type(ev) for ev in got] == [DataPreview, DataDiagnostics]
    preview, diag = got
    assert isinstance(preview, DataPreview) and isinstance(diag, DataDiagnostics)
    assert preview.loaded and preview.error is None
    assert "120 items, 50 drawn (seed 0)" in preview.stats[0]
    assert preview.stats[1] == "tensor     50×32×32×1 float32"
    assert len(preview.images) == 4 and len(preview.images[0]) == 32 == len(preview.images[0][0])
    assert [f["code"] for f in diag.diagnostics] == ["too_few_samples"]
    assert "only 50 calibration samples" in diag.diagnostics[0]["message"]


def _missing_model(tmp_path: Path) -> Path:
    cfg = small_digits(tmp_path)
    cfg.write_text(cfg.read_text().replace("digits.keras", "absent.keras"))
    return cfg


@pytest.mark.parametrize("subcommand", ["run", "sweep"])
async def test_spawn_run_and_sweep_stop_in_preflight_without_a_folder(
        tmp_path: Path, subcommand: str) -> None:
    runs = tmp_path / "runs"
    args = [str(_missing_model(tmp_path))]
    if subcommand == "run":
        args += ["--set", f"output.runs_dir={json.dumps(str(runs))}"]
    else:
        args += ["--set", "calibration.samples=10,20", "--runs-dir", str(runs)]
    got, rc = await _all(subcommand, args)
    assert rc == 2  # bad input, as the CLI says it
    assert len(got) == 1 and isinstance(got[0], RunFailed)
    assert got[0].error_type == "InputFileError" and "absent.keras: model not found" in got[0].message
    assert not runs.exists()  # nothing ran: no run or sweep folder


def test_a_preflight_mistake_is_answered_before_the_job_package_loads(tmp_path: Path) -> None:
    """The worker and ``artq run`` check the model, the data and the target before they
    import the job package (a second of imports on a slow disk) to say what is wrong."""
    cfg, said = str(_missing_model(tmp_path)), tmp_path / "said.txt"
    for call in (f"from engine import worker; code = worker.main(['run', {cfg!r}])",
                 f"from engine.cli import main; code = main(['run', {cfg!r}, '--quiet'])"):
        # Said in a file: the worker points its stdout and stderr elsewhere.
        body = (f"import sys, pathlib\n{call}\n"
                f"pathlib.Path({str(said)!r}).write_text(f\"{{code}} {{'engine.job' in sys.modules}}\")")
        r = subprocess.run([sys.executable, "-c", body], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env=child_env())
        assert said.read_text() == "2 False", (call, r.stderr)
        assert "absent.keras: model not found" in r.stdout + r.stderr


async def test_stop_ends_a_running_check(tmp_path: Path) -> None:
    # The full digits sample: its diagnostics take about a second after the preview.
    proc = await jobs.spawn("check", [str(ROOT / "sample_configs" / "digits_ptq.toml"),
                                      "--model", DIGITS_MODEL])
    stream = jobs.events(proc)
    first = await anext(stream)
    assert isinstance(first, DataPreview)
    assert proc.returncode is None  # still working on the diagnostics
    await jobs.stop(proc)
    assert proc.returncode == -signal.SIGTERM
    assert [ev async for ev in stream] == []  # the diagnostics never came
