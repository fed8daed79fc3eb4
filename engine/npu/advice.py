"""Phase 6, advice: in words, what runs on the CPU, what to change and what it buys; and
warnings from graph patterns that have failed on real boards."""

from __future__ import annotations

from .placement import PlacedLayers
from .render import KIB, dynamic_note
from .result import Analysis, LayerResult
from .rules import VIEW_OPS

_QDQ = ("QUANTIZE", "DEQUANTIZE")


def advise(a: Analysis, notes: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Advice in words (what to change and what it buys) and warnings.

    ``notes`` are graph-level warnings the analysis found (stride-2 depthwise, ...).
    """
    advice: list[str] = []
    warnings: list[str] = [note] if (note := dynamic_note(a)) else []
    onnx = a.model_path.lower().endswith(".onnx")
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
    elif a.precision == "int16":
        advice.append(
            "int16 activations (16x8 quantization) are not shown to run on the NPU, so its "
            "layers are placed on the CPU; quantize with int8 activations to use the NPU"
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
                how = (
                    'quantization.io_type = "int8"'
                    if onnx
                    else f"inference_{'output' if op == 'DEQUANTIZE' else 'input'}_type=tf.int8"
                )
                if op == "DEQUANTIZE":
                    advice.append(
                        f"DEQUANTIZE of the output runs on the CPU: {epct} of the time; keep "
                        f"the INT8 output ({how}) and dequantize on the host"
                    )
                else:
                    advice.append(
                        f"QUANTIZE of the float input runs on the CPU: {epct} of the time; "
                        f"feed INT8 input ({how})"
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


def graph_notes(placed: PlacedLayers) -> tuple[str, ...]:
    """Warnings from failure modes seen on real boards [3P] (deployment-zoo KNOWLEDGE.md)."""
    notes: list[str] = []
    views, placements = placed.views, placed.placements
    dw2 = sum(
        1
        for v, p in zip(views, placements, strict=True)
        if v.opcode == "DEPTHWISE_CONV_2D"
        and p.placement == "NPU"
        and max(v.options.get("stride_h", 1), v.options.get("stride_w", 1)) == 2
    )
    if dw2:
        notes.append(
            f"[3P] stride-2 depthwise convolutions ({dw2} here) have stalled the NPU on ST Edge "
            "AI 4.0.1 while the report showed 0 SW epochs; validate on the board"
        )
    producer = {o: v for v in views for o in v.op.outputs}
    for v in views:
        if v.opcode in ("RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU") and v.op.inputs:
            r = producer.get(v.op.inputs[0])
            if r is not None and r.opcode in VIEW_OPS and r.op.inputs:
                c = producer.get(r.op.inputs[0])
                if c is not None and c.opcode in (
                    "CONV_2D",
                    "DEPTHWISE_CONV_2D",
                    "FULLY_CONNECTED",
                ):
                    notes.append(
                        f"[3P] a {r.opcode} between {c.opcode} (layer {c.op.index}) and its "
                        f"{v.opcode} has stalled the NPU on real boards; fuse the activation "
                        "before reshaping"
                    )
                    break
    notes.extend(weight_notes(placed))
    return tuple(notes)


#: Rows whose weights the NPU wants per output channel.
_PER_CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")


def weight_notes(placed: PlacedLayers) -> list[str]:
    """Per-tensor weights where ST's scheme (and artq's default granularity) is per-channel.
    They run on the NPU, so this is a warning, not a placement. [ST]"""
    layers = []
    for v in placed.views:
        w = v.inputs[1] if v.opcode in _PER_CHANNEL_OPS and len(v.inputs) > 1 else None
        q = w.quantization if w is not None else None
        if w is None or q is None or q.per_channel or w.dtype != "int8" or not w.shape:
            continue
        # Output channels: last of a depthwise kernel [1, kh, kw, C], else first.
        channels = w.shape[-1] if v.opcode == "DEPTHWISE_CONV_2D" else w.shape[0]
        if channels > 1:
            layers.append(v.op.index)
    notes: list[str] = []
    if layers:
        notes.append(
            f"[ST] per-tensor weights on {len(layers)} layer(s) ({_first(layers)}) where "
            "per-channel is expected: they run on the NPU but cost accuracy (MobileNet v2: "
            "69.75 % per-channel vs 65.84 % per-tensor); quantize with granularity = "
            '"per_channel"'
        )
    unsigned = [
        v.op.index
        for v in placed.views
        if v.opcode not in _QDQ and any(t.dtype == "uint8" for t in v.activations)
    ]
    if unsigned:
        notes.append(
            f"[ST] uint8 activations on {len(unsigned)} layer(s) ({_first(unsigned)}): the "
            "NPU's scheme is signed int8 activations (onnxruntime's QUInt8 is not); "
            "quantize activations as signed int8 (QInt8)"
        )
    qop = sorted({str(v.options.get("onnx_op")) for v in placed.views
                  if str(v.options.get("onnx_op", "")).startswith(_QOPERATOR)})
    if qop:
        notes.append(
            f"QOperator-format operators ({', '.join(qop)}) are in no row of the rule table "
            "and are placed on the CPU here; artq reads ONNX QDQ models (quantize_static with "
            "quant_format=QDQ), the format ST's model zoo uses"
        )
    return notes


#: ONNX operators of onnxruntime's QOperator format (QLinearConv, ConvInteger, ...).
_QOPERATOR = ("QLinear", "ConvInteger", "MatMulInteger", "DynamicQuantize")


def _first(indices: list[int], n: int = 5) -> str:
    return ", ".join(str(i) for i in indices[:n]) + (" …" if len(indices) > n else "")
