"""What the job refuses before any work (no TensorFlow): a bad analysis target, a resume of
a folder that is no QAT run."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import load_config


def test_preflight_checks_the_target(tmp_path: Path) -> None:
    """A bundled name or a target file passes; a typo stops the job before any work."""
    from conftest import ROOT  # noqa: PLC0415

    from engine.errors import TargetError  # noqa: PLC0415
    from engine.job import preflight  # noqa: PLC0415

    job = tmp_path / "job.toml"
    job.write_text(f"""
[model]
path = "{ROOT / 'engine' / 'samples' / 'weights' / 'digits.keras'}"
[data.calibration]
kind = "synthetic"
generator = "digits"
count = 4
[data.test]
kind = "synthetic"
generator = "digits"
split = "test"
count = 4
""")
    bundled = ROOT / "engine" / "targets" / "stm32n6570-dk.toml"
    for target in ("stm32n6570-dk", str(bundled)):
        assert preflight(load_config(job, {"analysis.target": target})).format == "keras"
    with pytest.raises(TargetError, match=r"job\.toml: analysis\.target: unknown target 'n6'"):
        preflight(load_config(job, {"analysis.target": "n6"}))


def test_resume_refuses_a_finished_or_ptq_run(tmp_path: Path) -> None:
    from engine.errors import ConfigError
    from engine.job import resume_config

    with pytest.raises(ConfigError, match="not a run folder"):
        resume_config(tmp_path)
