"""The NPU parts of a report: ``npu`` (artq.npu/1 as readers need it) and ``headline``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .parts import ErrorInfo
from .record import Record, item

_frozen = dataclass(frozen=True, kw_only=True)


@_frozen
class NpuSummary(Record):
    ops_total: int | None = item()
    ops_npu: int | None = item()
    ops_cpu: int | None = item()
    pct_npu: float | None = item()
    epochs_hw: int | None = item()
    epochs_sw: int | None = item()
    folded_ops: int | None = item()
    weights_raw_bytes: int | None = item()
    weights_flash_bytes: int | None = item()
    activations_ram_bytes: int | None = item()
    external_ram_bytes: int | None = item()
    latency_ms: float | None = item()
    inferences_per_s: float | None = item()
    macs: int | None = item()
    precision: str | None = item()
    time_split_us: Mapping[str, float] | None = item()


@_frozen
class Pool(Record):
    name: str | None = item()
    internal: bool | None = item()
    size_bytes: int | None = item()
    used_bytes: int | None = item()
    buffers: int | None = item()
    over_budget: bool | None = item()


@_frozen
class NpuLayer(Record):
    """One operator as placed on the NPU or the CPU (engine.npu.report.LayerResult)."""

    index: int | None = item()
    op: str | None = item()
    name: str | None = item()
    output_shape: tuple[int | None, ...] | None = item(seq=True)
    placement: str | None = item()
    tier: str | None = item()
    reason: str | None = item()
    rule: str | None = item()
    provenance: str | None = item()
    macs: int | None = item()
    weight_bytes: int | None = item()
    flash_bytes: int | None = item()
    activation_bytes: int | None = item()
    est_us: float | None = item()
    pct: float | None = item()
    epoch: int | None = item()
    bound: str | None = item()
    overhead_us: float | None = item()
    convert_us: float | None = item()
    #: The ONNX operator of an ONNX model's layer (``op`` is then the rule-table row).
    source_op: str | None = item()


@_frozen
class Npu(Record):
    """The INT8 model placed on the target; only ``error`` when the analysis failed."""

    schema: str | None = item()
    model: str | None = item()
    model_bytes: int | None = item()
    target: str | None = item()
    summary: NpuSummary | None = item(of=NpuSummary)
    pools: tuple[Pool, ...] | None = item(of=Pool, seq=True)
    epochs: tuple[Mapping[str, Any], ...] | None = item(seq=True)
    float_islands: tuple[Mapping[str, Any], ...] | None = item(seq=True)
    folded: tuple[Mapping[str, Any], ...] | None = item(seq=True)
    layers: tuple[NpuLayer, ...] | None = item(of=NpuLayer, seq=True)
    advice: tuple[str, ...] | None = item(seq=True)
    warnings: tuple[str, ...] | None = item(seq=True)
    error: ErrorInfo | None = item(of=ErrorInfo)


@_frozen
class HeadlineSide(Record):
    size_bytes: int | None = item()
    est_ms: float | None = item()
    activation_ram_bytes: int | None = item()
    ops_cpu: int | None = item()
    ops_npu: int | None = item()


@_frozen
class Headline(Record):
    """The guide's FP32-against-INT8 table on the N6 (engine.npu.headline)."""

    schema: str | None = item()
    target: str | None = item()
    fp32: HeadlineSide | None = item(of=HeadlineSide)
    int8: HeadlineSide | None = item(of=HeadlineSide)
    size_x_smaller: float | None = item()
    size_pct_smaller: float | None = item()
    x_faster: float | None = item()
    ram_x_smaller: float | None = item()
    ram_pct_smaller: float | None = item()
