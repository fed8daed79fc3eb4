"""The analysis result and its renderings: JSON contract, markdown, advice in words.

No rich here: the CLI renders tables itself; report.md gets the markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "artq.npu/1"

KIB = 1024


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

    def to_dict(self) -> dict[str, Any]:
        return {
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
class Analysis:
    model_path: str
    target: str
    model_bytes: int
    #: "int8", "float32", "mixed" (INT8 with float islands) or "hybrid".
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
        """The versioned JSON contract (``schema: artq.npu/1``)."""
        return {
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

    def summary_lines(self) -> list[str]:
        """The summary as short lines of text (shared by markdown and the CLI)."""
        total = len(self.layers) or 1
        split = self.time_split()
        lat = self.latency_us or 1.0
        lines = [
            f"Operators: {len(self.layers)} — NPU {self.ops_npu} ({100 * self.ops_npu / total:.0f} %), "
            f"CPU {self.ops_cpu} ({100 * self.ops_cpu / total:.0f} %)"
            + (f"; folded {len(self.folded)} shape ops at compile time" if self.folded else ""),
            f"Epochs: {len(self.epochs)} — {self.epochs_hw} HW, {self.epochs_sw} SW",
            f"Weights in flash: {self.weights_flash_bytes / KIB:.1f} KiB "
            f"({self.weights_raw_bytes / KIB:.1f} KiB raw constants)",
            f"Activations in internal RAM: {self.activations_ram_bytes / KIB:.1f} KiB"
            + (
                f"; external PSRAM: {self.external_ram_bytes / KIB:.1f} KiB"
                if self.external_ram_bytes
                else ""
            ),
            f"Estimated time: {self.latency_ms:.3f} ms ({self.inferences_per_s:.0f} inferences/s)",
            "Where the time goes: "
            + ", ".join(
                f"{_SPLIT_NAMES[k]} {100 * v / lat:.0f} %" for k, v in split.items() if v > 0
            ),
        ]
        return lines

    def to_markdown(self, *, max_layers: int | None = None, commands: Sequence[str] = ()) -> str:
        """Summary, pools, per-layer table and advice, for report.md.

        ``commands``: the ``stedgeai`` command lines (engine.npu.stedgeai_commands) to print
        under "Check with ST's tools".
        """
        out = [f"### Neural-ART placement on {self.target}", ""]
        out += [f"- {line}" for line in self.summary_lines()]
        out += ["", "| pool | used | size | use |", "|---|---:|---:|---:|"]
        for p in self.pools:
            if not p.used_bytes and not p.internal:
                continue
            flag = " **over budget**" if p.over_budget else ""
            out.append(
                f"| {p.name} | {p.used_bytes / KIB:.1f} KiB | {p.size_bytes / KIB:.0f} KiB | "
                f"{100 * p.used_bytes / p.size_bytes:.1f} %{flag} |"
            )
        out += [
            "",
            "| # | operator | name | output shape | on | reason | MACs | est. µs | % |",
            "|---:|---|---|---|---|---|---:|---:|---:|",
        ]
        layers = self.layers if max_layers is None else self.layers[:max_layers]
        for layer in layers:
            out.append(
                f"| {layer.index} | {layer.op} | {_md(layer.name, 40)} | "
                f"{'×'.join(str(d) for d in layer.output_shape)} | {layer.placement} | "
                f"{_md(layer.reason, 90)} | {layer.macs:,} | {layer.est_us:.1f} | {layer.pct:.1f} |"
            )
        if max_layers is not None and len(self.layers) > max_layers:
            out.append(f"| … | {len(self.layers) - max_layers} more layers | | | | | | | |")
        if self.advice or self.warnings:
            out += ["", "**Advice**", ""]
            out += [f"- {a}" for a in self.advice]
            out += [f"- ⚠ {w}" for w in self.warnings]
        out += ["", CONFIDENCE_NOTE, ""]
        if commands:
            out += ["**Check with ST's tools** (ST Edge AI Core, `stedgeai`):", "", "```sh"]
            out += list(commands)
            out += ["```", ""]
        return "\n".join(out)

    def advice_text(self) -> str:
        return "\n".join(self.advice + tuple(f"warning: {w}" for w in self.warnings))


_SPLIT_NAMES = {
    "npu_compute": "NPU compute",
    "npu_memory": "NPU memory traffic",
    "npu_weights": "weights from flash",
    "npu_overhead": "epoch overheads",
    "cpu": "CPU layers",
}

CONFIDENCE_NOTE = (
    "_How sure: artq models the NPU from public facts (ST's compiler is not used). On six ST "
    "model-zoo models with published STM32N6570-DK figures (ST Edge AI 2.0.0) it lands within "
    "1 % on weights flash, 25 % on internal RAM (five of six within 17 %) and ×1.15 on time; "
    "benchmarks/inspect_reference.py prints the table. Rules marked 3P (third-party) or I "
    "(inferred) in docs/SUPPORTED_OPS.md are less certain; check with `stedgeai` before "
    "committing to hardware._"
)


def _md(text: str, width: int) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


# ----------------------------------------------------------------------------- advice

_QDQ = ("QUANTIZE", "DEQUANTIZE")


def advise(a: Analysis, notes: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Advice in words (what to change and what it buys) and warnings.

    ``notes`` are graph-level warnings the analysis found (stride-2 depthwise, ...).
    """
    advice: list[str] = []
    warnings: list[str] = []
    total = a.latency_us or 1.0
    n = len(a.layers)
    last_npu = max((i for i, x in enumerate(a.layers) if x.placement == "NPU"), default=-1)
    first_npu = min((i for i, x in enumerate(a.layers) if x.placement == "NPU"), default=n)

    if a.precision == "float32":
        advice.append(
            "every layer runs on the CPU: float32 tensors, and the NPU runs INT8 only; "
            "quantize the model to full INT8 (artq run) to use the NPU"
        )
    elif a.precision == "hybrid":
        advice.append(
            "hybrid (dynamic-range) layers keep float activations and run on the CPU; quantize "
            "with a representative dataset to full INT8"
        )

    by_op: dict[str, list[LayerResult]] = {}
    for layer in a.layers:
        if layer.placement == "CPU":
            by_op.setdefault(layer.op, []).append(layer)
    ranked = sorted(by_op.items(), key=lambda kv: -sum(x.est_us for x in kv[1]))
    for op, group in ranked:
        if a.precision == "float32" and group[0].kind != "recurrent":
            continue  # one sentence above covers every float layer
        us = sum(x.est_us for x in group)
        pct = 100.0 * us / total
        count = f" ({len(group)}×)" if len(group) > 1 else ""
        idx = [a.layers.index(x) for x in group]
        if op in ("SOFTMAX", "LOG_SOFTMAX"):
            advice.append(
                f"{op} runs on the CPU{count}: {_pct(pct)} of the time; apply it on "
                "the host (an argmax needs no softmax)"
            )
        elif group[0].kind == "recurrent":
            advice.append(
                f"the {op} takes {_pct(pct)} of the time on the CPU{count}; recurrent "
                "layers are not accelerated, a convolutional head keeps it on the NPU"
            )
        elif op in _QDQ:
            # Conversions at the model's edges are one-liners to remove; mid-graph ones
            # belong to a float island, which has its own sentence below.
            edge = [x for x, i in zip(group, idx, strict=True) if i < first_npu or i > last_npu]
            if edge:
                epct = _pct(100.0 * sum(x.est_us for x in edge) / total)
                if op == "DEQUANTIZE":
                    advice.append(
                        f"DEQUANTIZE of the output runs on the CPU: {epct} of the time; keep "
                        "the INT8 output (inference_output_type=tf.int8) and dequantize on "
                        "the host"
                    )
                else:
                    advice.append(
                        f"QUANTIZE of the float input runs on the CPU: {epct} of the time; "
                        "feed INT8 input (inference_input_type=tf.int8)"
                    )
        elif group[0].rule == "int8_tensors":
            advice.append(
                f"{op} stays in float on the CPU{count}: {_pct(pct)} of the time; "
                "quantize it to INT8 to move it to the NPU"
            )
        elif group[0].rule in ("global_pool_size", "pool_window_size"):
            advice.append(
                f"{op} runs in software float on the CPU{count}: {_pct(pct)} of the "
                f"time ({group[0].reason.split(':')[0]}); pool in two steps (e.g. an "
                "8×8 average pool first) or at a lower resolution to keep it on the NPU"
            )
        else:
            advice.append(
                f"{op} runs on the CPU{count}: {_pct(pct)} of the time ({group[0].reason})"
            )

    for f in a.float_islands:
        advice.append(
            f"float island at layers {f.layers[0]}–{f.layers[-1]} ({', '.join(dict.fromkeys(f.ops))}) "
            f"between NPU epochs: {f.total_us:.0f} µs, {f.conversion_us:.0f} µs of it converting "
            "int8↔float; keeping these layers in INT8 on the NPU saves it"
        )

    for p in a.pools:
        if p.over_budget:
            warnings.append(
                f"pool {p.name} needs {p.used_bytes / KIB:.0f} KiB, over its "
                f"{p.size_bytes / KIB:.0f} KiB"
            )
    if a.external_ram_bytes:
        ext = next((p.name for p in a.pools if not p.internal and p.used_bytes), "external RAM")
        advice.append(
            f"{a.external_ram_bytes / KIB:.0f} KiB of activations spill to external PSRAM ({ext}), "
            "5–20× slower than internal RAM [3P]; lower the input resolution or narrow the "
            "largest layers"
        )
        warnings.append(
            "[3P] activations spilled to PSRAM are not flagged as SW epochs by ST's "
            "report; check the memory-pool lines of `stedgeai generate`"
        )

    split = a.time_split()
    if split["npu_weights"] > 0.3 * total:
        advice.append(
            f"streaming weights from external flash takes {100 * split['npu_weights'] / total:.0f} % "
            f"of the time ({a.weights_flash_bytes / KIB:.0f} KiB at {a.flash_read_mb_s:.0f} MB/s); "
            "fewer or smaller weights (int4, pruning) shorten it"
        )
    if a.folded:
        ops = ", ".join(dict.fromkeys(f.op for f in a.folded))
        advice.append(
            f"folded {len(a.folded)} shape ops ({ops}) to constants, as ST's compiler "
            "does once shapes are static"
        )

    warnings.extend(notes)
    if any(x.op == "CONCATENATION" and x.placement == "NPU" for x in a.layers):
        warnings.append(
            "[3P] CONCATENATION ran as a SW epoch in 2 of 9 cases in one real "
            "compile; check the epoch list of `stedgeai generate`"
        )
    return advice, warnings


def _pct(p: float) -> str:
    return f"{p:.0f} %" if p >= 10 else f"{p:.1f} %"


def headline_markdown(h: dict[str, Any]) -> str:
    """The guide's FP32-against-INT8 table from :func:`engine.npu.headline`'s dict."""
    fp, q = h["fp32"], h["int8"]
    return "\n".join(
        [
            f"| on {h['target']} | FP32 | INT8 | INT8 vs FP32 |",
            "|---|---:|---:|---:|",
            f"| model size | {fp['size_bytes'] / KIB:,.1f} KiB | {q['size_bytes'] / KIB:,.1f} KiB | "
            f"{h['size_pct_smaller']:.0f} % smaller (×{h['size_x_smaller']:.2f}) |",
            f"| estimated time | {fp['est_ms']:.2f} ms (Cortex-M55, float) | {q['est_ms']:.2f} ms "
            f"(as placed) | ×{h['x_faster']:.1f} faster |",
            f"| activation RAM | {fp['activation_ram_bytes'] / KIB:,.1f} KiB | "
            f"{q['activation_ram_bytes'] / KIB:,.1f} KiB | {h['ram_pct_smaller']:.0f} % smaller |",
        ]
    )
