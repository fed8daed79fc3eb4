"""A fake worker for TUI tests: replays a scripted job without any engine work."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from engine.events import (
    Event,
    Log,
    ModelInfo,
    Progress,
    RunFailed,
    RunFinished,
    RunStarted,
    StageFinished,
    StageMetrics,
    StageStarted,
)
from tui.runner import JobEvent, JobExited

REPORT: dict[str, Any] = {
    "schema": "artq.report/1",
    "status": "ok",
    "name": "fake",
    "stages": {
        "fp32": {"path": "fp32.tflite", "size_bytes": 294_000,
                 "metrics": {"top1": 0.996, "agreement": {"acc": 1.0, "cos": 1.0, "rmse": 0.0}}},
        "fp16": {"path": "fp16.tflite", "size_bytes": 152_000,
                 "metrics": {"top1": 0.996, "agreement": {"acc": 1.0, "cos": 1.0, "rmse": 1e-6}}},
        "int8": {"path": "int8.tflite", "size_bytes": 84_000,
                 "metrics": {"top1": 0.992, "agreement": {"acc": 0.995, "cos": 0.9999, "rmse": 1e-3}}},
    },
    "verdict": {"profile": "high", "threshold": 1.0, "metric": "top1", "fp32": 0.996, "int8": 0.992,
                "drop": 0.4, "pass": True, "advice": "INT8 loses 0.40 points, within the high bar (1)."},
}


def script(run_dir: Path, fail: bool = False) -> list[Event]:
    evs: list[Event] = [
        RunStarted(str(run_dir), "fake", ["fp32", "fp16", "int8"]),
        StageStarted("data", "Loading data", 10),
        Progress("data", 10, 10),
        StageFinished("data", 0.2),
        StageStarted("load", "Loading and exporting the model"),
        ModelInfo([{"name": "input", "shape": [1, 32, 32, 1]}], [{"name": "output_0", "shape": [1, 10]}],
                  73114, "digits.keras"),
        StageFinished("load", 1.5),
        StageStarted("convert_int8", "Converting to INT8", 50),
        Progress("calibrate", 25, 50),
    ]
    if fail:
        return [*evs, RunFailed(str(run_dir), "failed", "ConversionError", "converter crashed",
                                "see log.txt")]
    return [
        *evs,
        Progress("calibrate", 50, 50),
        StageFinished("convert_int8", 2.0),
        StageMetrics("int8", {"top1": 0.992, "agreement": {"acc": 0.995}}, 84_000),
        Log("calibration.samples = 200 but only 100 items exist", "warning"),
        RunFinished(str(run_dir), "ok", str(run_dir / "report.json"), REPORT["verdict"]),
    ]


class FakeRunner:
    """Implements tui.runner.Runner; records what it was asked to run."""

    def __init__(self, runs_dir: Path, fail: bool = False, hold: bool = False) -> None:
        self.runs_dir = runs_dir
        self.fail = fail
        self.hold = hold  # stop mid-job until cancelled
        self.running = False
        self.started: list[tuple[str, list[str]]] = []
        self.cancelled = False
        self._post: Any = None

    async def start(self, config: str, overrides: list[str], post: Any) -> None:
        self.started.append((config, list(overrides)))
        self.running = True
        self._post = post
        run_dir = self.runs_dir / f"20260101-00000{len(self.started)}-fake"
        run_dir.mkdir(parents=True)
        evs = script(run_dir, self.fail)
        if self.hold:
            evs = evs[:9]
        for ev in evs:
            post(JobEvent(ev))
            await asyncio.sleep(0)
        if self.hold:
            return
        report = dict(REPORT, run_dir=str(run_dir), status="failed" if self.fail else "ok")
        (run_dir / "report.json").write_text(json.dumps(report))
        self.running = False
        post(JobExited(1 if self.fail else 0))

    async def cancel(self) -> None:
        self.cancelled = True
        self.running = False
        self._post(JobExited(3))
