"""What one job knows: its frozen config, and a typed field for each thing a stage makes.

Every field that ends up in report.json is named here, so :func:`build_report` is the one
place that turns a job, finished or not, into the ``artq.report/1`` dict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..events import STAGE_IDS, STAGE_LABELS, Sink, StageFinished, StageStarted
from ..modelfile import ModelFile
from ..rundir import RunDir
from ..verdict import Verdict

if TYPE_CHECKING:
    from ..backends import LayerErrors
    from ..cache import StageCache
    from ..config import JobConfig
    from ..draws import Draws
    from ..errors import EngineError
    from ..npu.targets import Target
    from ..report import Report

REPORT_SCHEMA = "artq.report/1"


@dataclass
class JobContext:
    """One run's inputs (``cfg`` is frozen) and what its stages produced so far; turned
    into report.json whatever happens."""

    cfg: JobConfig
    run: RunDir
    model_file: ModelFile
    #: analysis.target, loaded once by preflight for every NPU analysis of the job.
    target: Target
    resume: bool = False
    #: Results shared with other runs (see engine.cache); None with --no-cache.
    cache: StageCache | None = None
    #: Cache entries this run read instead of computing (report.json ``cache.reused``).
    cached: list[str] = field(default_factory=list)
    model_key: str = ""
    #: The PTQ run a QAT run compares itself with (its report).
    ptq_ref: Report | None = None
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)

    # --- made by the stages, in the order they run
    model: dict[str, Any] = field(default_factory=dict)  # load
    #: Where the exported model is (the run's scratch or the cache's entry).
    export_dir: Path | None = None  # load
    #: The model input's channel order (engine.layout); data is H×W×C until the model's edge.
    layout: str = "nhwc"  # preprocess
    data: dict[str, Any] = field(default_factory=dict)  # preprocess (+ qat_data)
    #: calibration.draws > 1: every draw's items and the held-out slice (not reported as such).
    draws: Draws | None = None  # preprocess
    preprocessing: dict[str, Any] = field(default_factory=dict)  # preprocess
    findings: list[dict[str, Any]] = field(default_factory=list)  # preprocess, diagnose
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # convert_*, evaluate_*
    qat: dict[str, Any] | None = None  # qat_train
    equalization: dict[str, Any] | None = None  # equalize
    bias_correction: dict[str, Any] | None = None  # bias_correction
    layer_errors: LayerErrors | None = None  # layers (TF side, not reported as such)
    layer_analysis: dict[str, Any] | None = None  # layers
    npu: dict[str, Any] | None = None  # analyze
    stedgeai: list[str] | None = None  # analyze
    headline: dict[str, Any] | None = None  # analyze
    npu_markdown: str = ""  # analyze
    sensitivity: list[dict[str, Any]] | None = None  # sensitivity
    layers: list[dict[str, Any]] | None = None  # layers.csv
    verdict: Verdict | None = None
    comparison: dict[str, Any] | None = None

    @property
    def work(self) -> Path:
        return self.run.work

    def stage_file(self, stage: str) -> Path:
        """Where a stage's model is written: ``<stage>.tflite`` or ``<stage>.onnx``."""
        from ..backends import stage_files  # noqa: PLC0415

        return self.run.path / f"{stage}{stage_files(self.model_file.format).suffix}"


class timed:  # noqa: N801 - used as a statement: ``with timed(ctx, emit, "load") as t:``
    """Time one stage and announce it; the stage id must be one of ``events.STAGES``."""

    def __init__(self, ctx: JobContext, emit: Sink, stage: str, label: str | None = None,
                 total: int | None = None) -> None:
        if stage not in STAGE_IDS:
            raise ValueError(f"unknown stage id {stage!r}; add it to engine.events.STAGES")
        self.ctx, self.emit, self.stage, self.total = ctx, emit, stage, total
        self.label = label or STAGE_LABELS[stage]
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> timed:
        self.t0 = time.perf_counter()
        self.emit(StageStarted(self.stage, self.label, self.total))
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        secs = time.perf_counter() - self.t0
        self.ctx.timings[self.stage] = round(secs, 3)
        if exc_type is None:
            self.emit(StageFinished(self.stage, round(secs, 3), self.summary))


def build_report(ctx: JobContext, status: str, err: EngineError | None = None) -> dict[str, Any]:
    """report.json (``artq.report/1``) from what the job has so far."""
    ctx.timings["total"] = round(time.perf_counter() - ctx.started, 3)
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "artq_version": __version__,
        "status": status,
        "name": ctx.cfg.name,
        "run_dir": str(ctx.run.path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": ctx.cfg.to_dict(),
        "config_source": ctx.cfg.source,
        "model": ctx.model,
        "data": ctx.data,
        "preprocessing": ctx.preprocessing,
        "stages": ctx.stages,
        "verdict": ctx.verdict.to_dict() if ctx.verdict else None,
        "findings": ctx.findings,
        # In stage order: with a float lane, stages end in no fixed order.
        "timings": {f"{k}_s": v for k, v in sorted(ctx.timings.items(), key=_stage_order)},
    }
    optional = {"npu": ctx.npu, "headline": ctx.headline, "stedgeai": ctx.stedgeai,
                "layers": ctx.layers, "sensitivity": ctx.sensitivity,
                "layer_analysis": ctx.layer_analysis, "comparison": ctx.comparison,
                "qat": ctx.qat, "equalization": ctx.equalization,
                "bias_correction": ctx.bias_correction}
    report.update({k: v for k, v in optional.items() if v is not None})
    if err is not None:
        report["error"] = err.to_dict()
    if ctx.cache is not None:
        report["cache"] = {"dir": str(ctx.cache.root),
                           "reused": sorted(ctx.cached, key=lambda k: _stage_order((k, 0)))}
    return report


def _stage_order(item: tuple[str, Any]) -> tuple[int, str]:
    """Stage ids in pipeline order (``data.test`` with ``data``), anything else (``total``)
    after; the sort is stable, so one stage's entries keep the order they came in."""
    base = item[0].split(".")[0]
    return (STAGE_IDS.index(base), "") if base in STAGE_IDS else (len(STAGE_IDS), "")
