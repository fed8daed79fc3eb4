"""Stages, metrics, findings, errors, model and data: the parts every report has."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from .draws import CalibrationDraws
from .record import Record, item

_frozen = dataclass(frozen=True, kw_only=True)


@_frozen
class Agreement(Record):
    """One output of a stage against FP32's (engine.metrics.agreement), by the output's name.
    ``kind``: "classes" (a class distribution: ``acc`` is argmax agreement) or "values"
    (``acc`` None). ``sqnr_db`` null with ``exact`` true: identical to FP32."""

    name: str = item("", always=True)
    kind: str = item("values", always=True)
    acc: float | None = item(always=True)
    rmse: float | None = item(always=True)
    mae: float | None = item(always=True)
    l2r: float | None = item(always=True)
    mean: float | None = item(always=True)
    std: float | None = item(always=True)
    nse: float | None = item(always=True)
    cos: float | None = item(always=True)
    sqnr_db: float | None = item(always=True)
    exact: bool = item(False, always=True)


@_frozen
class StageMetrics(Record):
    """The task's metrics (fractions, in the task's order), then every output's agreement
    with FP32 (``outputs``, in the model's order)."""

    task: Mapping[str, Any] = field(default_factory=dict)
    outputs: tuple[Agreement, ...] | None = item(of=Agreement, seq=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Self:
        d = dict(d or {})
        outs = d.pop("outputs", None)
        return cls(task=d,
                   outputs=None if outs is None else tuple(Agreement.from_dict(a) for a in outs))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.task or {})
        if self.outputs is not None:
            out["outputs"] = [a.to_dict() for a in self.outputs]
        return out

    def value(self, name: str) -> float | None:
        """A task metric."""
        v = (self.task or {}).get(name)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    def output(self, name: str | None) -> Agreement | None:
        """An output's agreement by name (None: the first output)."""
        outs = self.outputs or ()
        if name is None:
            return outs[0] if outs else None
        return next((a for a in outs if a.name == name), None)

    def names(self) -> list[str]:
        """The task metrics with a single value (the ones a table shows)."""
        return [k for k, v in (self.task or {}).items() if not isinstance(v, dict | list)]


@_frozen
class Stage(Record):
    """One precision's model: file, size, metrics on the test set, drop against FP32."""

    path: str | None = item()
    size_bytes: int | None = item()
    #: "tf-keras rebuild" when TF's converter needed the model rebuilt in tf-keras.
    via: str | None = item()
    metrics: StageMetrics | None = item(of=StageMetrics)
    items_per_s: float | None = item()
    #: Points lost against FP32 on the primary metric (negative: it scored higher).
    drop: float | None = item()
    #: True when a sweep shared this conversion between its variants.
    shared: bool | None = item()
    #: How the INT8 model was quantized, when the backend says (ONNX: tool, format, calibration,
    #: weights, activations, io, percentile).
    quantization: Mapping[str, Any] | None = item()
    #: INT8 from several calibration draws (calibration.draws > 1): each draw's figures,
    #: their spread, and the draw this stage's file holds.
    draws: CalibrationDraws | None = item(of=CalibrationDraws)


@_frozen
class Finding(Record):
    """A calibration-data diagnosis (engine.diagnostics) or a data warning."""

    code: str = item("", always=True)
    severity: str = item("info", always=True)
    message: str = item("", always=True)
    evidence: str = item("", always=True)
    fix: str = item("", always=True)


@_frozen
class ErrorInfo(Record):
    """An EngineError as the report keeps it (``EngineError.to_dict``)."""

    type: str = item("EngineError", always=True)
    message: str = item("", always=True)
    hint: str | None = item(always=True)


@_frozen
class ModelInfo(Record):
    """The model as exported (empty when the run stopped before)."""

    path: str | None = item()
    format: str | None = item()
    inputs: tuple[Mapping[str, Any], ...] | None = item(seq=True)
    outputs: tuple[Mapping[str, Any], ...] | None = item(seq=True)
    params: int | None = item()
    layers: tuple[str, ...] | None = item(seq=True)
    #: "nchw" for a channels-first input (absent: NHWC).
    layout: str | None = item()
    #: A PyTorch model's ONNX export against PyTorch on test items: ``items``,
    #: ``max_rel_diff`` (largest output difference over that output's largest magnitude).
    export_check: Mapping[str, Any] | None = item()


@_frozen
class DataSplit(Record):
    source: str | None = item()
    items: int | None = item()
    available: int | None = item()
    used: int | None = item()
    seed: int | None = item()
    classes: tuple[str, ...] | None = item(seq=True)


@_frozen
class DataInfo(Record):
    calibration: DataSplit | None = item(of=DataSplit)
    test: DataSplit | None = item(of=DataSplit)
    train: DataSplit | None = item(of=DataSplit)
    validation: DataSplit | None = item(of=DataSplit)


@_frozen
class Preprocessing(Record):
    """How images were turned into the model's input (empty for model-ready arrays)."""

    height: int | None = item()
    width: int | None = item()
    color: str | None = item()
    scale: float | None = item()
    mean: tuple[float, ...] | None = item(seq=True)
    std: tuple[float, ...] | None = item(seq=True)
    interpolation: str | None = item()


@_frozen
class Qat(Record):
    """What QAT's fine-tuning did (engine.qat.qat_train's result, less the size)."""

    history: tuple[Mapping[str, Any], ...] | None = item(None, seq=True)
    best_epoch: int | None = item()
    best_val: float | None = item()
    metric: str | None = item()
    epochs_run: int | None = item()
    stopped_early: bool | None = item()
    train_items: int | None = item()
    validation_items: int | None = item()


@_frozen
class PtqSummary(Record):
    """What a QAT report keeps of its PTQ baseline (``comparison.ptq``)."""

    run_dir: str | None = item(always=True)
    drop: float | None = item(always=True)
    metrics: StageMetrics | None = item(of=StageMetrics, always=True)
    size_bytes: int | None = item(always=True)
    latency_ms: float | None = item(always=True)


@_frozen
class Comparison(Record):
    ptq: PtqSummary | None = item(of=PtqSummary)


@_frozen
class CacheUse(Record):
    """Where the run's cache is and what came from it instead of being recomputed: entry
    names ``data.<split>``, ``load``, ``convert_<stage>``, ``evaluate_<stage>``."""

    dir: str = item("", always=True)
    reused: tuple[str, ...] = item((), seq=True, always=True)


__all__ = [
    "Agreement", "CacheUse", "Comparison", "DataInfo", "DataSplit", "ErrorInfo", "Finding", "ModelInfo",
    "Preprocessing", "PtqSummary", "Qat", "Stage", "StageMetrics",
]
