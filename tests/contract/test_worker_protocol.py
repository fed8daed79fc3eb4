"""`python -m engine.worker` refuses a bad config with one failed event (no TensorFlow).

With a real job (clean protocol, cancel by SIGTERM): tests/slow/test_worker.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from commands import worker

from engine.events import PROTOCOL


def test_bad_config_is_one_failed_event(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[calibration]\nsamples = -3\n")
    p = worker(cfg)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1
    msg = json.loads(lines[0])
    assert msg["protocol"] == PROTOCOL and msg["kind"] == "run_failed"
    assert msg["error_type"] == "ConfigError" and str(cfg) in msg["message"]
