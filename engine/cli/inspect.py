"""``artq inspect MODEL.tflite|MODEL.onnx``: Neural-ART placement, memory and time, layer by layer.

The front-end only: the analysis is engine.npu (no TensorFlow, no rich). rich is imported
when a human table is printed, so ``--json`` stays as light as the engine.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from ..errors import EngineError, UserInputError

DESCRIPTION = """\
Predict which layers of an INT8 .tflite or an ONNX QDQ .onnx run on the STM32N6 Neural-ART
NPU and which fall back to the Cortex-M55, why, and what the model needs in flash, RAM and
time.

artq answers from a model of the NPU built on public facts (ST's compiler is not needed):
each operator is placed by the rule table in docs/SUPPORTED_OPS.md, activation buffers are
allocated into the target's memory pools by lifetime, and each layer is timed from the
target's MAC rate, memory speeds and epoch overhead. A float model places every layer on
the CPU and says why. An ONNX model is read with the onnx package's protobuf alone: its
QuantizeLinear/DequantizeLinear pairs fold into int8 tensors, each ONNX operator is placed
by the row of the same kernel, and a layer keeps its ONNX operator and shape.
"""

EPILOG = """\
output:
  summary      operators on NPU/CPU, precision, epochs HW/SW, weights in flash, activations
               per pool, estimated ms and inferences/s, where the time goes; a warning first
               when shapes are dynamic; the other subgraphs (WHILE cond/body, IF branches)
  layers       #, operator, name, output shape, NPU/CPU, reason, MACs, est. µs, % of total
  advice       what runs on the CPU and what to change

--json prints the versioned contract (schema "artq.npu/1"): summary.{ops_total, ops_npu,
ops_cpu, epochs_hw, epochs_sw, weights_flash_bytes, activations_ram_bytes,
external_ram_bytes, latency_ms, precision} and layers[] with {index, op, name,
output_shape, placement, reason, macs, est_us} (an ONNX layer adds source_op, its ONNX
operator; op is then the rule-table row); a file with more than one subgraph adds
subgraphs[] with {index, name, ops, called_by, signature}.

targets: a bundled name (stm32n6570-dk) or the path to a target .toml; copy
engine/targets/stm32n6570-dk.toml to ask what-if questions (bigger pools, faster flash).

examples:
  artq inspect runs/latest/int8.tflite
  artq inspect model.tflite --json > npu.json
  artq inspect model.tflite --target my_board.toml --csv layers.csv
  artq inspect runs/latest/int8.onnx
"""

CSV_COLUMNS = (
    "index",
    "op",
    "name",
    "output_shape",
    "placement",
    "tier",
    "reason",
    "rule",
    "provenance",
    "macs",
    "weight_bytes",
    "flash_bytes",
    "activation_bytes",
    "est_us",
    "pct",
    "epoch",
    "source_op",
)


def add_parser(subparsers: Any) -> None:
    """Add the ``inspect`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "inspect",
        help="which layers run on the Neural-ART NPU, memory and estimated time",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        metavar="MODEL.tflite|MODEL.onnx",
        help="the INT8 .tflite or ONNX QDQ .onnx model to analyse",
    )
    p.add_argument(
        "--target",
        metavar="NAME|FILE",
        default="stm32n6570-dk",
        help="bundled target name or path to a target .toml (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the analysis as JSON on stdout")
    p.add_argument("--csv", metavar="FILE", help="also write the per-layer table to a CSV file")
    p.set_defaults(func=run)


def _write_csv(path: str, analysis: Any) -> None:
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for layer in analysis.layers:
                d = layer.to_dict()
                d["output_shape"] = "x".join(str(x) for x in layer.output_shape)
                w.writerow([d.get(c, "") for c in CSV_COLUMNS])
    except OSError as exc:
        raise UserInputError(
            f"{path}: cannot write the CSV ({exc.strerror or exc})",
            "pass a writable path to --csv",
        ) from None


def _flatbuffers_without_numpy() -> None:
    """Import flatbuffers in its numpy-optional mode, in this short-lived command only.

    flatbuffers imports numpy (~0.12 s, a quarter of inspect's half-second budget) for its
    ``AsNumpy`` accessors alone; the reader never calls them (``struct`` decodes vectors),
    and nothing else in an ``artq inspect`` process touches flatbuffers. Its ``compat``
    module decides, so it is loaded first (without the package, whose ``__init__`` would
    already import numpy) and told there is none while the schema is imported. Anything
    unexpected leaves the normal import to happen. Library callers are not affected.
    """
    if "numpy" in sys.modules or "flatbuffers" in sys.modules:
        return
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("flatbuffers")
    if spec is None or not spec.submodule_search_locations:
        return
    path = f"{spec.submodule_search_locations[0]}/compat.py"
    cspec = importlib.util.spec_from_file_location("flatbuffers.compat", path)
    if cspec is None or cspec.loader is None:
        return
    compat = importlib.util.module_from_spec(cspec)
    try:
        cspec.loader.exec_module(compat)
        real = compat.import_numpy
    except Exception:  # noqa: BLE001 - an optimisation only; the plain import still works
        return
    sys.modules["flatbuffers.compat"] = compat
    compat.import_numpy = lambda: None
    try:
        import flatbuffers  # noqa: F401, PLC0415
        from ai_edge_litert import schema_py_generated  # noqa: F401, PLC0415
    finally:
        compat.import_numpy = real


def run(args: argparse.Namespace) -> int:
    """Run ``artq inspect``; returns the exit code."""
    _flatbuffers_without_numpy()
    from ..npu import analyze

    try:
        analysis = analyze(args.model, args.target)
        if args.csv:
            _write_csv(args.csv, analysis)
    except EngineError as err:
        _print_error(err)
        return err.exit_code
    if args.json:
        json.dump(analysis.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    _print_human(analysis)
    return 0


def _print_error(err: EngineError) -> None:
    from rich.text import Text

    from .console import Console

    text = f"error: {err.message}" + (f" ({err.hint})" if err.hint else "")
    Console(stderr=True, soft_wrap=True).print(Text(text, style="bold red"))


def _print_human(a: Any) -> None:
    from rich.text import Text

    from .console import Console

    con = Console(soft_wrap=False, highlight=False)
    con.print(Text(f"{a.model_path} on {a.target}", style="bold"))
    # Text, not markup: lines carry tensor and subgraph names, and "[/x]" in one is no tag.
    for line in a.summary_lines():
        con.print(Text(f"  {line}", style="yellow" if line.startswith("Warning:") else ""))

    # Laid out by hand like the layer table (rich's Table costs import and render time).
    pools = Text()
    pools.append("Activation pools\n", style="bold")
    pools.append(f"  {'pool':<10} {'used KiB':>9} {'size KiB':>9} {'use':>8}\n", style="bold")
    for p in a.pools:
        if not p.used_bytes and not p.internal:
            continue
        pct = 100 * p.used_bytes / p.size_bytes if p.size_bytes else 0.0
        pools.append(
            f"  {p.name:<10} {p.used_bytes / 1024:>9.1f} {p.size_bytes / 1024:>9.0f} {pct:>6.1f} %"
        )
        if p.over_budget:
            pools.append("  OVER BUDGET", style="bold red")
        pools.append("\n")
    con.print(pools, soft_wrap=True, crop=False)

    _print_layers(con, a)
    if a.advice or a.warnings:
        con.print(Text("Advice", style="bold"))
        for line in a.advice:
            con.print(Text(f"  - {line}"))
        for line in a.warnings:
            con.print(Text(f"  ! {line}", style="yellow"))


_UNIT = {
    "conv": "conv. accelerators",
    "depthwise": "conv. accelerators",
    "pool": "pooling unit",
    "eltwise": "arithmetic unit",
    "activation": "activation unit",
    "dma": "stream engines (DMA)",
    "view": "view, no data moves",
    "requant": "arithmetic unit",
}


def _print_layers(con: Any, a: Any) -> None:
    """The per-layer table, laid out by hand: rich's Table takes ~0.5 s on 200 rows,
    which alone would break inspect's half-second budget."""
    import textwrap

    from rich.text import Text

    # An 80-column terminal cannot hold every column: the tensor name goes first.
    wide = con.width >= 120
    rows = []
    for layer in a.layers:
        npu = layer.placement == "NPU"
        reason = (
            _UNIT.get(layer.kind, "NPU")
            if npu and layer.reason.startswith("runs on the NPU")
            else layer.reason
        )
        rows.append(
            (
                str(layer.index),
                layer.display_op,
                _ellipsis(layer.name, 32) if wide else "",
                "×".join(str(d) for d in layer.output_shape),
                layer.placement,
                reason,
                _short(layer.macs),
                f"{layer.est_us:.1f}",
                f"{layer.pct:.1f}",
            )
        )
    heads = ("#", "operator", "name", "output", "on", "reason", "MACs", "µs", "%")
    cols = [0, 1, 2, 3, 4, 5, 6, 7, 8] if wide else [0, 1, 3, 4, 5, 6, 7, 8]
    right = {0, 6, 7, 8}
    widths = {
        c: max(len(heads[c]), *(len(r[c]) for r in rows)) if rows else len(heads[c]) for c in cols
    }
    fixed = sum(widths[c] for c in cols if c != 5) + 2 * (len(cols) - 1)
    widths[5] = max(18, min(widths[5], con.width - fixed - 1))

    def cell(c: int, text: str) -> str:
        return text.rjust(widths[c]) if c in right else text.ljust(widths[c])

    # One Text printed once: a console print per row costs more than the analysis.
    out = Text()
    out.append("Layers\n", style="bold")
    out.append("  ".join(cell(c, heads[c]) for c in cols) + "\n", style="bold")
    indent = " " * sum(widths[c] + 2 for c in cols[: cols.index(5)])
    for r in rows:
        wrapped = textwrap.wrap(r[5], widths[5]) or [""]
        npu = r[4] == "NPU"
        for k, c in enumerate(cols):
            if k:
                out.append("  ")
            text = cell(c, wrapped[0] if c == 5 else r[c])
            style = (
                ("green" if npu else "bold yellow") if c == 4 else ("dim" if c == 5 and npu else "")
            )
            out.append(text, style=style)
        out.append("\n")
        for more in wrapped[1:]:
            out.append(indent + more + "\n")
    con.print(out, end="", soft_wrap=True, crop=False)


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(n: int) -> str:
    """MACs in a narrow column: 1.8M, 590k, 64."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)
