"""Per-layer parts of a report: ``layers`` rows, ``sensitivity`` and ``layer_analysis``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .parts import ErrorInfo
from .record import Record, item

_frozen = dataclass(frozen=True, kw_only=True)


@_frozen
class ErrorFigures(Record):
    """One tensor's error in one mode (engine.layers.ErrorStats.to_dict)."""

    sqnr_db: float | None = item()
    rmse_scale: float | None = item()
    cos: float | None = item()
    max_abs: float | None = item()


@_frozen
class LayerError(Record):
    """The ``error`` of a layer row (engine.layers.error_entry)."""

    tensor: str | None = item()
    scale: float | None = item()
    zero_point: int | None = item()
    range: tuple[float, float] | None = item(seq=True)
    layer: ErrorFigures | None = item(of=ErrorFigures, always=True)
    model: ErrorFigures | None = item(of=ErrorFigures, always=True)
    suspect: bool = item(False)
    why: str = item("")


@_frozen
class LayerSensitivity(Record):
    """A layer row's own sensitivity result (a short copy of its SensitivityEntry)."""

    metric: str | None = item(always=True)
    regained_points: float | None = item(always=True)
    cost_ms: float | None = item(always=True)
    suggestion: str = item("", always=True)
    #: What keeping the layer in float regains in ``unit`` ("points" or "dB"): a verdict
    #: judged in dB has no points to regain.
    regained: float | None = item()
    unit: str | None = item()


@_frozen
class LayerRow(Record):
    """``report.json["layers"]``: placement beside error and sensitivity (engine.layers)."""

    index: int | None = item()
    op: str | None = item()
    name: str = item("")
    #: The op's unique name for people (engine.layer_names), as its sensitivity entry says.
    layer: str | None = item()
    output_shape: tuple[int | None, ...] | None = item(seq=True)
    placement: str | None = item()
    reason: str | None = item()
    macs: int | None = item()
    est_us: float | None = item()
    pct: float | None = item()
    error: LayerError | None = item(of=LayerError, always=True)
    sensitivity: LayerSensitivity | None = item(of=LayerSensitivity, always=True)

    @property
    def suspect(self) -> bool:
        return self.error is not None and self.error.suspect


@_frozen
class SensitivityEntry(Record):
    """One mixed model: a suspect (or all of them) kept in float, scored and costed."""

    tensor: str = item("", always=True)
    layer: str = item("", always=True)
    op: str | None = item(always=True)
    kind: str = item("", always=True)
    float_ops: tuple[str, ...] = item((), seq=True, always=True)
    metric: str | None = item(always=True)
    items: int | None = item(always=True)
    #: The suspect tensors of the all-suspects check.
    group: tuple[str, ...] | None = item(seq=True)
    #: The output scored (the verdict's worst) and the unit of ``regained``: "points" or "dB".
    output: str | None = item()
    unit: str | None = item()
    int8: float | None = item()
    value: float | None = item()
    #: What keeping it in float regains on that output, in ``unit``.
    regained: float | None = item()
    #: The mixed model's output matches FP32 exactly (no finite gain to state).
    exact: bool | None = item()
    #: ``regained`` when the unit is points (None for dB, and in reports before ``unit``).
    regained_points: float | None = item(always=True)
    cost_ms: float | None = item(always=True)
    path: str | None = item()
    suggestion: str = item("", always=True)

    @property
    def tried(self) -> bool:
        return (self.regained_points is not None or self.regained is not None
                or bool(self.exact))


@_frozen
class LayerAnalysis(Record):
    """How the per-layer error was measured, the suspects and the ranking (worst first);
    only ``error`` when the analysis failed."""

    debug_samples: int | None = item()
    modes: Mapping[str, str] | None = item()
    reproduced: bool | None = item()
    suspects: tuple[str, ...] | None = item(seq=True)
    ranking: tuple[str, ...] | None = item(seq=True)
    error: ErrorInfo | None = item(of=ErrorInfo)
