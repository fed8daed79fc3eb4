"""The analysis in words: summary lines (CLI and markdown) and the markdown for report.md.

No rich here: the CLI lays out its own tables; report.md gets this markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # result.py imports this module to render itself
    from .result import Analysis, SubgraphReport

KIB = 1024

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


_PRECISION = {
    "int8": "INT8 activations and weights",
    "int16": "INT16 activations with INT8 weights (16x8 quantization)",
    "float32": "float (no quantized layers)",
    "mixed": "integer, with layers left in float",
    "hybrid": "hybrid: INT8 weights with float activations (dynamic-range quantization)",
}


def _dims(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def dynamic_note(a: Analysis) -> str:
    """The dynamic-shape warning in one sentence, or "" for a model with static shapes."""
    if not a.dynamic:
        return ""
    first = a.dynamic[0]
    what = "input" if first.is_input else "tensor"
    more = f" (and {len(a.dynamic) - 1} more tensors)" if len(a.dynamic) > 1 else ""
    return (
        f"dynamic shape: {what} '{first.name}' is {_dims(first.signature)}{more}; the file "
        f"stores {_dims(first.shape)}, so memory and time are estimated for that size, not "
        "yours: convert with a fixed input shape for real figures"
    )


def _subgraph_line(s: SubgraphReport) -> str:
    counts: dict[str, int] = {}
    for op in s.ops:
        counts[op] = counts.get(op, 0) + 1
    ops = ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in counts.items()) or "no operators"
    name = f" '{s.name}'" if s.name else ""
    if s.called_by:
        c = s.called_by[0]
        where = f"subgraph {c.subgraph} op {c.operator}" if c.subgraph else f"layer {c.operator}"
        role = f"{c.role} of {c.op} ({where})"
        role += f" and {len(s.called_by) - 1} more" if len(s.called_by) > 1 else ""
        fate = "runs on the CPU with it"
    else:
        role = f"graph of signature '{s.signature}'" if s.signature else "not run by the main graph"
        fate = "not analysed"
    n = f"{len(s.ops)} op" + ("" if len(s.ops) == 1 else "s")
    return f"Subgraph {s.index}{name}: {role}, {n} ({ops}); {fate}"


def summary_lines(a: Analysis) -> list[str]:
    """The summary as short lines of text (shared by markdown and the CLI)."""
    total = len(a.layers) or 1
    split = a.time_split()
    lat = a.latency_us or 1.0
    note = dynamic_note(a)
    lines = [f"Warning: {note}"] if note else []
    lines += [
        f"Operators: {len(a.layers)} — NPU {a.ops_npu} ({100 * a.ops_npu / total:.0f} %), "
        f"CPU {a.ops_cpu} ({100 * a.ops_cpu / total:.0f} %)"
        + (f"; folded {len(a.folded)} shape ops at compile time" if a.folded else ""),
        f"Precision: {_PRECISION.get(a.precision, a.precision)}",
        f"Epochs: {len(a.epochs)} — {a.epochs_hw} HW, {a.epochs_sw} SW",
        f"Weights in flash: {a.weights_flash_bytes / KIB:.1f} KiB "
        f"({a.weights_raw_bytes / KIB:.1f} KiB raw constants)",
        f"Activations in internal RAM: {a.activations_ram_bytes / KIB:.1f} KiB"
        + (
            f"; external PSRAM: {a.external_ram_bytes / KIB:.1f} KiB"
            if a.external_ram_bytes
            else ""
        ),
        f"Estimated time: {a.latency_ms:.3f} ms ({a.inferences_per_s:.0f} inferences/s)",
        "Where the time goes: "
        + ", ".join(f"{_SPLIT_NAMES[k]} {100 * v / lat:.0f} %" for k, v in split.items() if v > 0),
    ]
    lines += [_subgraph_line(s) for s in a.subgraphs]
    return lines


def markdown(a: Analysis, *, max_layers: int | None = None, commands: Sequence[str] = ()) -> str:
    """Summary, pools, per-layer table and advice, for report.md (``Analysis.to_markdown``)."""
    out = [f"### Neural-ART placement on {a.target}", ""]
    out += [f"- {line}" for line in summary_lines(a)]
    out += ["", "| pool | used | size | use |", "|---|---:|---:|---:|"]
    for p in a.pools:
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
    layers = a.layers if max_layers is None else a.layers[:max_layers]
    for layer in layers:
        out.append(
            f"| {layer.index} | {layer.display_op} | {_md(layer.name, 40)} | "
            f"{'×'.join(str(d) for d in layer.output_shape)} | {layer.placement} | "
            f"{_md(layer.reason, 90)} | {layer.macs:,} | {layer.est_us:.1f} | {layer.pct:.1f} |"
        )
    if max_layers is not None and len(a.layers) > max_layers:
        out.append(f"| … | {len(a.layers) - max_layers} more layers | | | | | | | |")
    if a.advice or a.warnings:
        out += ["", "**Advice**", ""]
        out += [f"- {x}" for x in a.advice]
        out += [f"- ⚠ {w}" for w in a.warnings]
    out += ["", CONFIDENCE_NOTE, ""]
    if commands:
        out += ["**Check with ST's tools** (ST Edge AI Core, `stedgeai`):", "", "```sh"]
        out += list(commands)
        out += ["```", ""]
    return "\n".join(out)
