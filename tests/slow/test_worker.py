"""`python -m engine.worker run` on a real job: versioned JSON lines on stdout and nothing
else, TensorFlow's noise in the run's log; SIGTERM cancels and marks the run.

Without TensorFlow (bad config, spawn helper, check, stop): tests/contract/test_worker_protocol.py.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from commands import worker
from models import tiny_job

from engine.events import PROTOCOL, event_from_dict


def test_protocol_is_clean_and_tf_noise_goes_to_the_log(tiny_model: Path, tmp_path: Path) -> None:
    p = worker(tiny_job(tmp_path, tiny_model, test_count=40), "quantization.stages=['fp32','int8']")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    kinds = []
    for line in out.strip().splitlines():
        msg = json.loads(line)  # every line is JSON: nothing foreign on the channel
        assert msg["protocol"] == PROTOCOL
        kinds.append(event_from_dict(msg).kind)
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert "stage_metrics" in kinds
    run_dir = Path(json.loads(out.splitlines()[0])["run_dir"])
    log = (run_dir / "log.txt").read_text()
    assert "fully_quantize" in log  # TF's C++ output landed here
    assert "fully_quantize" not in out


def test_sigterm_cancels_and_marks_the_run(tiny_model: Path, tmp_path: Path) -> None:
    p = worker(tiny_job(tmp_path, tiny_model))
    assert p.stdout is not None
    run_dir = None
    for line in p.stdout:
        msg = json.loads(line)
        if msg["kind"] == "run_started":
            run_dir = Path(msg["run_dir"])
        if msg["kind"] == "stage_started" and msg["stage"] == "load":
            break
    p.send_signal(signal.SIGTERM)
    rest, _ = p.communicate(timeout=60)  # a guard against a hang, not a measure
    assert p.returncode == 3
    last = json.loads(rest.strip().splitlines()[-1])
    assert last["kind"] == "run_failed" and last["status"] == "cancelled"
    assert run_dir is not None
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "cancelled"
    assert (run_dir / "log.txt").exists() and (run_dir / "events.jsonl").stat().st_size > 0
    assert not (run_dir / "int8.tflite").exists()
