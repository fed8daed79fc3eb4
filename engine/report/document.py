"""The typed ``artq.report/1``: what a run's report.json holds, as frozen dataclasses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from ..errors import EngineError
from ..verdict import Verdict
from .bias import BiasCorrection
from .equalize import Equalization
from .layers import LayerAnalysis, LayerRow, SensitivityEntry
from .npu import Headline, Npu, NpuLayer
from .parts import (
    CacheUse,
    Comparison,
    DataInfo,
    ErrorInfo,
    Finding,
    ModelInfo,
    Preprocessing,
    PtqSummary,
    Qat,
    Stage,
)
from .record import Record, item

SCHEMA = "artq.report/1"
REPORT = "report.json"


class ReportError(EngineError):
    """A report.json that is not ``artq.report/1`` (another tool's, or another version's)."""


@dataclass(frozen=True, kw_only=True)
class Report(Record):
    """A run's report. Fields after ``timings`` are absent (None) when the run did not get
    that far or the job has no such part (QAT only, NPU analysis only with INT8, …)."""

    schema: str = item(SCHEMA, always=True)
    artq_version: str | None = item(always=True)
    status: str = item("ok", always=True)  # "ok" | "failed" | "cancelled"
    name: str = item("", always=True)
    run_dir: str | None = item(always=True)
    created: str | None = item(always=True)
    #: The job config as run (JobConfig.to_dict()), kept as JSON: old runs' configs may not
    #: load under today's rules, and readers only look things up in it.
    config: Mapping[str, Any] = item(None, always=True)
    config_source: str | None = item(always=True)
    model: ModelInfo = item(None, of=ModelInfo, always=True)
    data: DataInfo = item(None, of=DataInfo, always=True)
    preprocessing: Preprocessing | None = item(of=Preprocessing, always=True)
    stages: Mapping[str, Stage] = item(None, of=Stage, mapping=True, always=True)
    verdict: Verdict | None = item(of=Verdict, always=True)
    findings: tuple[Finding, ...] = item((), of=Finding, seq=True, always=True)
    #: Seconds per stage, keyed "<stage>_s", and "total_s".
    timings: Mapping[str, float] = item(None, always=True)
    npu: Npu | None = item(of=Npu)
    headline: Headline | None = item(of=Headline)
    stedgeai: tuple[str, ...] | None = item(seq=True)
    layers: tuple[LayerRow, ...] | None = item(of=LayerRow, seq=True)
    sensitivity: tuple[SensitivityEntry, ...] | None = item(of=SensitivityEntry, seq=True)
    layer_analysis: LayerAnalysis | None = item(of=LayerAnalysis)
    comparison: Comparison | None = item(of=Comparison)
    qat: Qat | None = item(of=Qat)
    equalization: Equalization | None = item(of=Equalization)
    bias_correction: BiasCorrection | None = item(of=BiasCorrection)
    error: ErrorInfo | None = item(of=ErrorInfo)
    cache: CacheUse | None = item(of=CacheUse)

    def __post_init__(self) -> None:
        # None stands for "not given" so constructed reports need not spell out the empties.
        for name, empty in (("config", {}), ("model", ModelInfo()), ("data", DataInfo()),
                            ("stages", {}), ("timings", {})):
            if getattr(self, name) is None:
                object.__setattr__(self, name, empty)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Self:
        """Strict about the schema string, tolerant of every part a short run leaves out."""
        schema = (d or {}).get("schema")
        if schema != SCHEMA:
            raise ReportError(f"not an {SCHEMA} report (schema {schema!r})",
                              "it was written by another tool or another version of artq")
        return super().from_dict(d)

    # ------------------------------------------------------------------ what readers ask

    @property
    def finished(self) -> bool:
        """A run that got as far as a model of some precision."""
        return bool(self.stages)

    def stage(self, name: str) -> Stage:
        """The stage, or an empty one: readers ask for FP16 of a run that skipped it."""
        return self.stages.get(name) or Stage()

    def setting(self, dotted: str, default: Any = None) -> Any:
        """A config value by its key path, e.g. ``quantization.method``."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def method(self) -> str:
        return str(self.setting("quantization.method", "") or "")

    @property
    def primary(self) -> str | None:
        """The metric the verdict judges (None before there is a verdict)."""
        return self.verdict.metric if self.verdict is not None else None

    def metric_names(self) -> list[str]:
        """Task metrics with one value, in the order the stages give them."""
        names: list[str] = []
        for st in self.stages.values():
            for n in st.metrics.names() if st.metrics else ():
                if n not in names:
                    names.append(n)
        return names

    def drop(self, stage: str) -> float | None:
        """A stage's drop against FP32 in points: as the job wrote it, else computed from
        the verdict's metric (reports from before stages had ``drop``)."""
        st = self.stage(stage)
        if st.drop is not None:
            return st.drop
        if stage == "int8" and self.verdict is not None and self.verdict.drop is not None:
            return self.verdict.drop  # the verdict judges INT8's drop
        base, this = self.stage("fp32").metrics, st.metrics
        if self.primary is None or base is None or this is None:
            return None
        b, v = base.value(self.primary), this.value(self.primary)
        return None if b is None or v is None else round((b - v) * 100.0, 4)

    def timing(self, stage: str) -> float | None:
        return self.timings.get(f"{stage}_s")

    def npu_layer(self, index: int | None) -> NpuLayer | None:
        """The NPU's view of the layer at ``index`` (tier, rule, epoch, bound)."""
        for layer in (self.npu.layers if self.npu else None) or ():
            if layer.index == index:
                return layer
        return None

    def suspects(self) -> list[LayerRow]:
        """Suspect layers, worst first (the analysis's ranking)."""
        order = list((self.layer_analysis.ranking if self.layer_analysis else None) or ())
        rows = [r for r in self.layers or () if r.suspect]
        return sorted(rows, key=lambda r: order.index(r.name) if r.name in order else len(order))

    def ptq_summary(self) -> PtqSummary:
        """What a QAT run keeps of this (PTQ) run as its baseline: ``comparison.ptq``."""
        int8 = self.stage("int8")
        return PtqSummary(
            run_dir=self.run_dir, drop=self.verdict.drop if self.verdict else None,
            metrics=int8.metrics, size_bytes=int8.size_bytes,
            latency_ms=self.npu.summary.latency_ms if self.npu and self.npu.summary else None)


def read_report(run_dir: str | Path) -> Report | None:
    """The run's report, or None when the run never finished, the file is damaged or it is
    not an ``artq.report/1``."""
    try:
        d = json.loads((Path(run_dir) / REPORT).read_text(encoding="utf-8"))
        return Report.from_dict(d)
    except (OSError, json.JSONDecodeError, ReportError, TypeError, AttributeError, ValueError):
        return None
