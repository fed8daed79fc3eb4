"""The typed ``artq.report/1`` (``Report`` and its parts, ``read_report``) and report.md.

``Report.from_dict(d).to_dict() == d`` for every report the job writes; readers (CLI, TUI,
sweep, QAT baseline) go through these types, and engine.present turns them into words.
"""

from ..verdict import Verdict
from .bias import BiasCorrection, BiasLayer, BiasOutput, SkippedLayer, SqnrChange
from .document import REPORT, SCHEMA, Report, ReportError, read_report
from .draws import CalibrationDraw, CalibrationDraws, DrawFigures
from .equalize import Equalization, EqualizedPair
from .layers import (
    ErrorFigures,
    LayerAnalysis,
    LayerError,
    LayerRow,
    LayerSensitivity,
    SensitivityEntry,
)
from .markdown import render_markdown
from .npu import Headline, HeadlineSide, Npu, NpuLayer, NpuSummary, Pool
from .parts import (
    Agreement,
    CacheUse,
    Comparison,
    DataInfo,
    DataSplit,
    ErrorInfo,
    Finding,
    ModelInfo,
    Preprocessing,
    PtqSummary,
    Qat,
    Stage,
    StageMetrics,
)
from .record import Record

__all__ = [
    "REPORT", "SCHEMA", "Agreement", "BiasCorrection", "BiasLayer", "BiasOutput",
    "CalibrationDraw", "CalibrationDraws", "DrawFigures", "Equalization", "EqualizedPair",
    "SkippedLayer", "SqnrChange", "CacheUse", "Comparison", "DataInfo", "DataSplit", "ErrorFigures",
    "ErrorInfo", "Finding", "Headline", "HeadlineSide", "LayerAnalysis", "LayerError",
    "LayerRow", "LayerSensitivity", "ModelInfo", "Npu", "NpuLayer", "NpuSummary", "Pool",
    "Preprocessing", "PtqSummary", "Qat", "Record", "Report", "ReportError", "SensitivityEntry", "Stage",
    "StageMetrics", "Verdict", "read_report", "render_markdown",
]
