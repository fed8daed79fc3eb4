"""The guide's FP32-against-INT8 table: size, estimated time, activation RAM, ratios."""

from __future__ import annotations

import os
from typing import Any

from .driver import ModelSource, analyze
from .render import KIB
from .result import Analysis
from .targets import DEFAULT_TARGET, Target, load_target


def headline(
    fp32: ModelSource | Analysis,
    int8: ModelSource | Analysis,
    target: str | os.PathLike[str] | Target = DEFAULT_TARGET,
) -> dict[str, Any]:
    """The guide's FP32-against-INT8 table: size, estimated N6 time, activation RAM, ratios.

    FP32 runs entirely on the Cortex-M55 in float (every layer is a CPU layer because its
    tensors are float); INT8 runs as placed. Each model is a path, a parsed model or its
    analysis on ``target`` already made (a job passes the INT8 analysis it has, so the
    INT8 model is not read and placed twice).
    """
    tgt = load_target(target)
    fp = _analysis(fp32, tgt)
    q = _analysis(int8, tgt)

    def ram(a: Analysis) -> int:
        return a.activations_ram_bytes + a.external_ram_bytes

    def ratio(x: float, y: float) -> float:
        return round(x / y, 2) if y else 0.0

    return {
        "schema": "artq.headline/1",
        "target": tgt.name,
        "fp32": {
            "size_bytes": fp.model_bytes,
            "est_ms": round(fp.latency_ms, 3),
            "activation_ram_bytes": ram(fp),
            "ops_cpu": fp.ops_cpu,
            "ops_npu": fp.ops_npu,
        },
        "int8": {
            "size_bytes": q.model_bytes,
            "est_ms": round(q.latency_ms, 3),
            "activation_ram_bytes": ram(q),
            "ops_cpu": q.ops_cpu,
            "ops_npu": q.ops_npu,
        },
        "size_x_smaller": ratio(fp.model_bytes, q.model_bytes),
        "size_pct_smaller": round(100.0 * (1 - q.model_bytes / fp.model_bytes), 1)
        if fp.model_bytes
        else 0.0,
        "x_faster": ratio(fp.latency_ms, q.latency_ms),
        "ram_x_smaller": ratio(ram(fp), ram(q)),
        "ram_pct_smaller": round(100.0 * (1 - ram(q) / ram(fp)), 1) if ram(fp) else 0.0,
    }


def headline_markdown(h: dict[str, Any]) -> str:
    """The guide's FP32-against-INT8 table from :func:`engine.npu.headline`'s dict."""
    from ..present import speed  # noqa: PLC0415 - one wording with the CLI and the TUI

    fp, q = h["fp32"], h["int8"]
    return "\n".join(
        [
            f"| on {h['target']} | FP32 | INT8 | INT8 vs FP32 |",
            "|---|---:|---:|---:|",
            f"| model size | {fp['size_bytes'] / KIB:,.1f} KiB | {q['size_bytes'] / KIB:,.1f} KiB | "
            f"{h['size_pct_smaller']:.0f} % smaller (×{h['size_x_smaller']:.2f}) |",
            f"| estimated time | {fp['est_ms']:.2f} ms (Cortex-M55, float) | {q['est_ms']:.2f} ms "
            f"(as placed) | {speed(h['x_faster'], 1)} |",
            f"| activation RAM | {fp['activation_ram_bytes'] / KIB:,.1f} KiB | "
            f"{q['activation_ram_bytes'] / KIB:,.1f} KiB | {h['ram_pct_smaller']:.0f} % smaller |",
        ]
    )


def _analysis(model: ModelSource | Analysis, target: Target) -> Analysis:
    if isinstance(model, Analysis):
        if model.target != target.name:
            # Two targets in one table would compare different boards.
            raise ValueError(f"headline on {target.name} got an analysis made on {model.target}")
        return model
    return analyze(model, target)
