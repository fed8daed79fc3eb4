"""The analysis result: per-layer rows, epochs, pools, and the JSON contract (artq.npu/1).

Renderings in words live in render.py (summary lines, markdown) and advice.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import render

SCHEMA = "artq.npu/1"


@dataclass(frozen=True)
class LayerResult:
    #: Operator index in the model's main subgraph (the order TFLite runs it).
    index: int
    op: str
    #: Name of the layer's output tensor.
    name: str
    output_shape: tuple[int, ...]
    placement: str  # "NPU" | "CPU"
    tier: str  # "HW" | "SW_INT" | "SW_FLOAT"
    kind: str
    reason: str
    rule: str
    provenance: str
    macs: int
    weight_bytes: int
    flash_bytes: int
    activation_bytes: int
    est_us: float
    pct: float
    epoch: int
    #: Which stream bounds an NPU layer: "compute", "memory", "weights", or "cpu".
    bound: str = ""
    #: Fixed epoch overhead included in est_us.
    overhead_us: float = 0.0
    #: Time a CPU layer spends converting int8 ↔ float32, included in est_us.
    convert_us: float = 0.0
    #: The file's own operator when it is not TFLite (ONNX "Conv"); ``op`` is then the
    #: rule-table row that placed it.
    source_op: str = ""

    @property
    def display_op(self) -> str:
        """The operator as the file names it; an ONNX op that maps to a differently named
        row says the row too (``Conv→DEPTHWISE_CONV_2D``)."""
        if not self.source_op or self.source_op.upper() == self.op.replace("_", ""):
            return self.source_op or self.op
        return f"{self.source_op}→{self.op}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "op": self.op,
            "name": self.name,
            "output_shape": list(self.output_shape),
            "placement": self.placement,
            "tier": self.tier,
            "reason": self.reason,
            "rule": self.rule,
            "provenance": self.provenance,
            "macs": self.macs,
            "weight_bytes": self.weight_bytes,
            "flash_bytes": self.flash_bytes,
            "activation_bytes": self.activation_bytes,
            "est_us": round(self.est_us, 3),
            "pct": round(self.pct, 2),
            "epoch": self.epoch,
            "bound": self.bound,
            "overhead_us": round(self.overhead_us, 3),
            "convert_us": round(self.convert_us, 3),
        }
        if self.source_op:
            out["source_op"] = self.source_op
        return out


@dataclass(frozen=True)
class FoldedOp:
    index: int
    op: str
    name: str


@dataclass(frozen=True)
class Epoch:
    index: int
    kind: str  # "HW" | "SW"
    layers: tuple[int, ...]  # operator indices
    ops: tuple[str, ...]


@dataclass(frozen=True)
class FloatIsland:
    """CPU layers between two NPU epochs that work in float: they cost two conversions."""

    layers: tuple[int, ...]
    ops: tuple[str, ...]
    cpu_us: float
    conversion_us: float

    @property
    def total_us(self) -> float:
        return self.cpu_us + self.conversion_us


@dataclass(frozen=True)
class PoolReport:
    name: str
    internal: bool
    size_bytes: int
    used_bytes: int
    buffers: int

    @property
    def over_budget(self) -> bool:
        return self.used_bytes > self.size_bytes


@dataclass(frozen=True)
class SubgraphCall:
    """An operator that runs a subgraph: a WHILE its cond and body, an IF its branches."""

    subgraph: int
    operator: int
    op: str
    #: What the subgraph is to the operator: "cond", "body", "then", "else", "init", ...
    role: str


@dataclass(frozen=True)
class SubgraphReport:
    """A subgraph besides the main one. The analysis places the main graph's operators; a
    control-flow operator's subgraphs run on the CPU with it, and other signatures' graphs
    are not analysed."""

    index: int
    name: str
    ops: tuple[str, ...]
    called_by: tuple[SubgraphCall, ...]
    #: Key of the signature whose graph it is, else "".
    signature: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "ops": list(self.ops),
            "called_by": [
                {"subgraph": c.subgraph, "operator": c.operator, "op": c.op, "role": c.role}
                for c in self.called_by
            ],
            "signature": self.signature,
        }


@dataclass(frozen=True)
class DynamicTensor:
    """A tensor with an unknown dimension (-1 in its shape signature) besides the batch."""

    name: str
    signature: tuple[int, ...]
    #: The shape the file stores, which the estimates use: 1 for each unknown dimension.
    shape: tuple[int, ...]
    is_input: bool


@dataclass(frozen=True)
class Analysis:
    model_path: str
    target: str
    model_bytes: int
    #: "int8", "int16" (16x8: int16 activations, int8 weights), "float32", "mixed" (integer
    #: with float islands) or "hybrid".
    precision: str
    layers: tuple[LayerResult, ...]
    folded: tuple[FoldedOp, ...]
    epochs: tuple[Epoch, ...]
    float_islands: tuple[FloatIsland, ...]
    pools: tuple[PoolReport, ...]
    weights_raw_bytes: int
    weights_flash_bytes: int
    activations_ram_bytes: int
    external_ram_bytes: int
    peak_live_bytes: int
    flash_read_mb_s: float
    advice: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: Subgraphs besides the main one (control-flow bodies and branches, other signatures).
    subgraphs: tuple[SubgraphReport, ...] = ()
    #: Main-graph tensors whose shape is not known before run time.
    dynamic: tuple[DynamicTensor, ...] = ()
    schema: str = field(default=SCHEMA)

    # --------------------------------------------------------------- derived figures

    @property
    def latency_us(self) -> float:
        return sum(layer.est_us for layer in self.layers)

    @property
    def latency_ms(self) -> float:
        return self.latency_us / 1000.0

    @property
    def inferences_per_s(self) -> float:
        return 1e6 / self.latency_us if self.latency_us > 0 else 0.0

    @property
    def ops_npu(self) -> int:
        return sum(1 for layer in self.layers if layer.placement == "NPU")

    @property
    def ops_cpu(self) -> int:
        return sum(1 for layer in self.layers if layer.placement == "CPU")

    @property
    def epochs_hw(self) -> int:
        return sum(1 for e in self.epochs if e.kind == "HW")

    @property
    def epochs_sw(self) -> int:
        return sum(1 for e in self.epochs if e.kind == "SW")

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def time_split(self) -> dict[str, float]:
        """Where the time goes, µs: NPU compute, NPU memory traffic, weight streaming,
        epoch overheads, and CPU layers."""
        out = {
            "npu_compute": 0.0,
            "npu_memory": 0.0,
            "npu_weights": 0.0,
            "npu_overhead": 0.0,
            "cpu": 0.0,
        }
        for layer in self.layers:
            if layer.placement == "CPU":
                out["cpu"] += layer.est_us
            else:
                key = {
                    "compute": "npu_compute",
                    "memory": "npu_memory",
                    "weights": "npu_weights",
                }.get(layer.bound, "npu_overhead")
                overhead = min(layer.est_us, layer.overhead_us)
                out["npu_overhead"] += overhead
                out[key] += layer.est_us - overhead
        return out

    def cpu_time_by_op(self) -> list[tuple[str, int, float]]:
        """(op, count, µs) of CPU layers, largest time first."""
        acc: dict[str, list[float]] = {}
        for layer in self.layers:
            if layer.placement == "CPU":
                a = acc.setdefault(layer.op, [0, 0.0])
                a[0] += 1
                a[1] += layer.est_us
        return sorted(((k, int(v[0]), v[1]) for k, v in acc.items()), key=lambda x: -x[2])

    # --------------------------------------------------------------- renderings

    def summary_dict(self) -> dict[str, Any]:
        total = len(self.layers)
        return {
            "ops_total": total,
            "ops_npu": self.ops_npu,
            "ops_cpu": self.ops_cpu,
            "pct_npu": round(100.0 * self.ops_npu / total, 1) if total else 0.0,
            "epochs_hw": self.epochs_hw,
            "epochs_sw": self.epochs_sw,
            "folded_ops": len(self.folded),
            "weights_raw_bytes": self.weights_raw_bytes,
            "weights_flash_bytes": self.weights_flash_bytes,
            "activations_ram_bytes": self.activations_ram_bytes,
            "external_ram_bytes": self.external_ram_bytes,
            "latency_ms": round(self.latency_ms, 4),
            "inferences_per_s": round(self.inferences_per_s, 1),
            "macs": self.macs,
            "precision": self.precision,
            "time_split_us": {k: round(v, 2) for k, v in self.time_split().items()},
        }

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON contract (``schema: artq.npu/1``). ``subgraphs`` is there only
        for a file with more than one subgraph."""
        out: dict[str, Any] = {
            "schema": self.schema,
            "model": self.model_path,
            "model_bytes": self.model_bytes,
            "target": self.target,
            "summary": self.summary_dict(),
            "pools": [
                {
                    "name": p.name,
                    "internal": p.internal,
                    "size_bytes": p.size_bytes,
                    "used_bytes": p.used_bytes,
                    "buffers": p.buffers,
                    "over_budget": p.over_budget,
                }
                for p in self.pools
            ],
            "epochs": [
                {"index": e.index, "kind": e.kind, "layers": list(e.layers), "ops": list(e.ops)}
                for e in self.epochs
            ],
            "float_islands": [
                {
                    "layers": list(f.layers),
                    "ops": list(f.ops),
                    "cpu_us": round(f.cpu_us, 2),
                    "conversion_us": round(f.conversion_us, 2),
                }
                for f in self.float_islands
            ],
            "folded": [{"index": f.index, "op": f.op, "name": f.name} for f in self.folded],
            "layers": [layer.to_dict() for layer in self.layers],
            "advice": list(self.advice),
            "warnings": list(self.warnings),
        }
        if self.subgraphs:
            out["subgraphs"] = [s.to_dict() for s in self.subgraphs]
        return out

    def summary_lines(self) -> list[str]:
        """The summary as short lines of text (shared by markdown and the CLI)."""
        return render.summary_lines(self)

    def to_markdown(self, *, max_layers: int | None = None, commands: Sequence[str] = ()) -> str:
        """Summary, pools, per-layer table and advice, for report.md.

        ``commands``: the ``stedgeai`` command lines (engine.npu.stedgeai_commands) to print
        under "Check with ST's tools".
        """
        return render.markdown(self, max_layers=max_layers, commands=commands)

    def advice_text(self) -> str:
        return "\n".join(self.advice + tuple(f"warning: {w}" for w in self.warnings))
