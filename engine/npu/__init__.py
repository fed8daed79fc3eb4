"""Neural-ART placement, memory and time for a ``.tflite``, without TensorFlow.

    from engine.npu import analyze, load_target, headline, stedgeai_commands
    a = analyze("int8.tflite", target="stm32n6570-dk")
    a.to_dict()       # JSON contract, schema "artq.npu/1"
    a.to_markdown()   # for report.md

The pipeline: read the flatbuffer (engine.tflite), fold shape arithmetic that is constant
once shapes are static, place each remaining operator with the rule table (rules.py),
allocate activation buffers into the target's pools (memory.py), cost each layer
(cost.py), group layers into epochs as ST's tools count them, and write advice.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..tflite.reader import Model, Operator, read_model
from .cost import LayerCost, float_copies, layer_cost
from .memory import MemoryPlan, PoolSpec, allocate, lifetimes
from .report import (
    SCHEMA,
    Analysis,
    Epoch,
    FloatIsland,
    FoldedOp,
    LayerResult,
    PoolReport,
    advise,
    headline_markdown,
)
from .rules import FLOAT_DTYPES, VIEW_OPS, OpView, Placement, place
from .targets import DEFAULT_TARGET, Target, bundled_targets, load_target

__all__ = [
    "SCHEMA",
    "Analysis",
    "LayerResult",
    "Target",
    "analyze",
    "analyze_model",
    "bundled_targets",
    "headline",
    "headline_markdown",
    "load_target",
    "stedgeai_commands",
]

#: Ops never folded although their inputs are constant (state or randomness).
_NO_FOLD = frozenset(
    {
        "RANDOM_UNIFORM",
        "RANDOM_STANDARD_NORMAL",
        "MULTINOMIAL",
        "VAR_HANDLE",
        "READ_VARIABLE",
        "ASSIGN_VARIABLE",
        "CALL_ONCE",
        "WHILE",
        "IF",
        "CUSTOM",
    }
)
#: Activations that the compiler fuses into the NPU layer that feeds them. [I]
_FUSABLE_ACTIVATIONS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"})


@dataclass(frozen=True)
class _Folding:
    constants: frozenset[int]
    folded: tuple[Operator, ...]
    kept: tuple[Operator, ...]


def _fold(model: Model) -> _Folding:
    """Fold operators whose inputs are all constant, and SHAPE of a static tensor.

    ST's compiler sees static shapes (an unknown batch is taken as 1), so the SHAPE →
    STRIDED_SLICE → PACK → RESHAPE chains that a dynamic batch leaves in TFLite files
    fold to constants before placement. [I]
    """
    sg = model.main
    constants = {t.index for t in sg.tensors if t.is_constant}
    folded: list[Operator] = []
    kept: list[Operator] = []
    for op in sg.operators:
        ins = [i for i in op.inputs if i >= 0]
        foldable = (
            op.opcode not in _NO_FOLD
            and bool(op.outputs)
            and (
                (op.opcode == "SHAPE" and ins and not sg.tensors[ins[0]].is_dynamic)
                or (ins and all(i in constants for i in ins))
            )
        )
        if foldable:
            folded.append(op)
            constants.update(op.outputs)
        else:
            kept.append(op)
    return _Folding(frozenset(constants), tuple(folded), tuple(kept))


def _view(model: Model, op: Operator, constants: frozenset[int]) -> OpView:
    t = model.main.tensors
    return OpView(
        op,
        tuple(t[i] if i >= 0 else None for i in op.inputs),
        tuple(t[i] for i in op.outputs),
        constants,
        model,
    )


def _stored_bytes(
    model: Model, op: Operator, folding: _Folding, seen: set[int], producers: dict[int, Operator]
) -> int:
    """Raw constant bytes a layer brings, through folded producers, each buffer once."""
    total = 0
    stack = [i for i in op.inputs if i >= 0 and i in folding.constants]
    visited: set[int] = set()
    while stack:
        i = stack.pop()
        if i in visited:
            continue
        visited.add(i)
        t = model.main.tensors[i]
        if t.is_constant:
            if t.buffer not in seen:
                seen.add(t.buffer)
                total += t.const_bytes
        elif i in producers:
            stack.extend(j for j in producers[i].inputs if j >= 0)
    return total


def _precision(placements: Sequence[Placement], views: Sequence[OpView]) -> str:
    """int8, float32, mixed (INT8 with float layers between conversions) or hybrid."""
    if any(p.rule == "no_hybrid" for p in placements):
        return "hybrid"
    acts = [t for v in views for t in v.activations]
    has_int = any(t.dtype in ("int8", "int16") for t in acts)
    float_layers = [
        v
        for v in views
        if v.opcode not in ("QUANTIZE", "DEQUANTIZE")
        and any(t.dtype in FLOAT_DTYPES for t in v.activations)
    ]
    if float_layers and not has_int:
        return "float32"
    return "mixed" if float_layers else "int8"


def analyze(
    model_path: str | os.PathLike[str],
    target: str | os.PathLike[str] | Target = DEFAULT_TARGET,
) -> Analysis:
    """Place, size and time a ``.tflite`` on a Neural-ART target.

    ``target`` is a bundled target name, the path to a target TOML, or a loaded Target.
    Raises TFLiteReadError for a bad model and TargetError for a bad target.
    """
    tgt = load_target(target)
    return analyze_model(read_model(model_path), tgt)


def analyze_model(model: Model, target: Target) -> Analysis:
    """As :func:`analyze`, on a model already read."""
    sg = model.main
    tensors = sg.tensors
    folding = _fold(model)
    layers_ops = folding.kept
    views = [_view(model, op, folding.constants) for op in layers_ops]
    placements = [place(v) for v in views]

    plan, pool_ratio, requantized = _plan_memory(model, views, placements, folding, target)

    # Cost: raw constant bytes are attributed to the first layer that uses each buffer.
    producers = {o: op for op in folding.folded for o in op.outputs}
    seen_buffers: set[int] = set()
    costs: list[LayerCost] = []
    for v, p in zip(views, placements, strict=True):
        raw = _stored_bytes(model, v.op, folding, seen_buffers, producers)
        costs.append(layer_cost(v, p, target, raw, pool_ratio, requantized.get(len(costs), 0)))
    total_us = sum(c.total_us for c in costs) or 1.0

    epoch_list, epoch_of = _group_epochs(views, placements)

    results: list[LayerResult] = []
    for v, p, c, ep in zip(views, placements, costs, epoch_of, strict=True):
        out = v.outputs[0] if v.outputs else None
        if p.placement == "CPU":
            bound = "cpu"
        else:
            streams = {"compute": c.compute_us, "memory": c.memory_us, "weights": c.weights_us}
            bound = (
                max(streams, key=lambda k: streams[k]) if max(streams.values()) > 0 else "overhead"
            )
        results.append(
            LayerResult(
                index=v.op.index,
                op=v.opcode if v.opcode != "CUSTOM" else f"CUSTOM:{v.op.custom_code or '?'}",
                name=out.name if out is not None else "",
                output_shape=tuple(out.shape) if out is not None else (),
                placement=p.placement,
                tier=p.tier,
                kind=p.kind,
                reason=p.reason,
                rule=p.rule,
                provenance=p.provenance,
                macs=c.macs,
                weight_bytes=c.weight_bytes,
                flash_bytes=c.flash_bytes,
                activation_bytes=c.activation_bytes,
                est_us=c.total_us,
                pct=100.0 * c.total_us / total_us,
                epoch=ep,
                bound=bound,
                overhead_us=c.overhead_us,
                convert_us=c.convert_us,
            )
        )

    islands = _float_islands(results)
    pools_report = tuple(
        PoolReport(u.name, u.internal, u.capacity, u.used, u.buffers) for u in plan.pools
    )
    analysis = Analysis(
        model_path=model.path,
        target=target.name,
        model_bytes=model.size_bytes,
        precision=_precision(placements, views),
        layers=tuple(results),
        folded=tuple(
            FoldedOp(op.index, op.opcode, tensors[op.outputs[0]].name if op.outputs else "")
            for op in folding.folded
        ),
        epochs=epoch_list,
        float_islands=islands,
        pools=pools_report,
        weights_raw_bytes=sum(c.weight_bytes for c in costs),
        weights_flash_bytes=sum(c.flash_bytes for c in costs),
        activations_ram_bytes=plan.internal_bytes,
        external_ram_bytes=plan.external_bytes,
        peak_live_bytes=plan.peak_live,
        flash_read_mb_s=target.flash.read_mb_s,
    )
    advice, warnings = advise(analysis, _graph_notes(views, placements))
    return replace(analysis, advice=tuple(advice), warnings=tuple(warnings))


def _plan_memory(
    model: Model,
    views: Sequence[OpView],
    placements: Sequence[Placement],
    folding: _Folding,
    target: Target,
) -> tuple[MemoryPlan, dict[int, float], dict[int, int]]:
    """Allocate activation buffers into the target's pools.

    Returns the plan; per tensor, the freq ratio of the pool it sits in; per layer (index in
    ``views``), the int8 elements it re-quantizes in place for later readers.
    """
    sg = model.main
    tensors = sg.tensors
    # Views share their input's buffer.
    act_ids = (
        {
            i
            for v in views
            for i in (*v.op.inputs, *v.op.outputs)
            if i >= 0 and i not in folding.constants
        }
        | set(sg.inputs)
        | set(sg.outputs)
    )
    sizes = {i: tensors[i].nbytes for i in act_ids}
    aliases = {
        v.op.outputs[0]: v.op.inputs[0]
        for v, p in zip(views, placements, strict=True)
        if v.opcode in VIEW_OPS
        and p.placement == "NPU"
        and v.op.inputs
        and v.op.outputs
        and v.op.inputs[0] >= 0
        and v.op.inputs[0] not in folding.constants
    }
    steps = [([i for i in v.op.inputs if i >= 0], list(v.op.outputs)) for v in views]
    names = {i: tensors[i].name for i in act_ids}
    # Software-float layers on integer tensors work on float32 copies, live for that step.
    # The conversions run in place: the int8 buffer is expanded into its float32 copy (and
    # the float32 result compacted into its int8 output), so the int8 tensor takes no
    # memory of its own during that step, and a later reader gets it re-quantized in place.
    # [I] from ST's published figures for st_efficientnet_lc_v1 (model zoo README, ST Edge
    # AI 2.0.0): 256 KiB at 128×128 and 784.02 KiB at 224×224 are the float32 copy of the
    # 64×64×16 (112×112×16) map its first global pool reads, plus 16 B, although the int8
    # map (64 / 196 KiB) is read again by the squeeze-and-excite MUL after that pool.
    scratch_id = len(tensors)
    in_place: list[tuple[int, int]] = []
    for step, (v, p) in enumerate(zip(views, placements, strict=True)):
        if p.tier == "SW_FLOAT":
            for t in float_copies(v):
                sizes[scratch_id] = 4 * t.num_elements
                names[scratch_id] = f"float32 copy of {t.name}"
                steps[step][1].append(scratch_id)
                in_place.append((step, t.index))
                scratch_id += 1
    buffers = lifetimes(steps, sizes, names, sg.inputs, sg.outputs, aliases, in_place)
    pools = [
        PoolSpec(p.name, p.size_bytes, p.internal, p.address, p.freq_ratio) for p in target.pools
    ]
    plan: MemoryPlan = allocate(buffers, pools, target.alignment_bytes)
    ratio_of_pool = {p.name: p.freq_ratio for p in target.pools}
    pool_of_root = {a.buffer.id: a.pool for a in plan.allocations}

    def root(i: int) -> int:
        while i in aliases:
            i = aliases[i]
        return i

    pool_ratio = {
        i: ratio_of_pool[pool_of_root[root(i)]] for i in act_ids if root(i) in pool_of_root
    }

    # An int8 input expanded in place and read again later is re-quantized in place after
    # the layer: one more conversion pass over it, per step.
    read_at: dict[int, set[int]] = {}
    for step, (ins, _outs) in enumerate(steps):
        for i in ins:
            read_at.setdefault(root(i), set()).add(step)
    for i in sg.outputs:
        read_at.setdefault(root(i), set()).add(len(steps))
    requantized: dict[int, int] = {}
    for step, t in in_place:
        if t in views[step].op.inputs and any(s > step for s in read_at.get(root(t), ())):
            requantized[step] = requantized.get(step, 0) + tensors[t].num_elements

    return plan, pool_ratio, requantized


def _group_epochs(
    views: Sequence[OpView], placements: Sequence[Placement]
) -> tuple[tuple[Epoch, ...], list[int]]:
    """Epochs as ST's reports count them: one per NPU layer (views and fusable activations
    join the epoch before them), one per CPU layer. Returns them and each layer's epoch."""
    epochs: list[list[Any]] = []  # [kind, [op indices], [ops]]
    epoch_of: list[int] = []
    prev_npu_out: set[int] = set()
    for v, p in zip(views, placements, strict=True):
        if p.placement == "NPU":
            joins = (
                epochs
                and epochs[-1][0] == "HW"
                and (
                    v.opcode in VIEW_OPS
                    or (
                        v.opcode in _FUSABLE_ACTIVATIONS
                        and v.op.inputs
                        and v.op.inputs[0] in prev_npu_out
                    )
                )
            )
            if not joins:
                epochs.append(["HW", [], []])
            prev_npu_out = set(v.op.outputs)
        else:
            epochs.append(["SW", [], []])
            prev_npu_out = set()
        epochs[-1][1].append(v.op.index)
        epochs[-1][2].append(v.opcode)
        epoch_of.append(len(epochs) - 1)
    epoch_list = tuple(Epoch(i, e[0], tuple(e[1]), tuple(e[2])) for i, e in enumerate(epochs))
    return epoch_list, epoch_of


def _graph_notes(views: Sequence[OpView], placements: Sequence[Placement]) -> tuple[str, ...]:
    """Warnings from failure modes seen on real boards [3P] (deployment-zoo KNOWLEDGE.md)."""
    notes: list[str] = []
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
    return tuple(notes)


def _float_islands(layers: Sequence[LayerResult]) -> tuple[FloatIsland, ...]:
    """Runs of CPU layers between two NPU layers that include float work."""
    out: list[FloatIsland] = []
    i, n = 0, len(layers)
    while i < n:
        if layers[i].placement != "CPU":
            i += 1
            continue
        j = i
        while j < n and layers[j].placement == "CPU":
            j += 1
        run = layers[i:j]
        between = i > 0 and j < n
        floaty = any(layer.tier == "SW_FLOAT" for layer in run)
        if between and floaty:
            qdq = [x for x in run if x.op in ("QUANTIZE", "DEQUANTIZE")]
            work = [x for x in run if x.op not in ("QUANTIZE", "DEQUANTIZE")]
            convert = sum(x.est_us for x in qdq) + sum(x.convert_us for x in work)
            out.append(
                FloatIsland(
                    tuple(x.index for x in run),
                    tuple(x.op for x in run),
                    sum(x.est_us - x.convert_us for x in work),
                    convert,
                )
            )
        i = j
    return tuple(out)


# ----------------------------------------------------------------------------- headline


def headline(
    fp32_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    target: str | os.PathLike[str] | Target = DEFAULT_TARGET,
) -> dict[str, Any]:
    """The guide's FP32-against-INT8 table: size, estimated N6 time, activation RAM, ratios.

    FP32 runs entirely on the Cortex-M55 in float (every layer is a CPU layer because its
    tensors are float); INT8 runs as placed.
    """
    tgt = load_target(target)
    fp = analyze(fp32_path, tgt)
    q = analyze(int8_path, tgt)

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


def stedgeai_commands(model_path: str | os.PathLike[str]) -> list[str]:
    """ST Edge AI Core command lines that check artq's prediction on a machine with ST's tools:
    analyze (placement and memory), generate (the Neural-ART C code and its epoch report)
    and validate (on the board: accuracy metrics of the deployed model)."""
    m = shlex.quote(str(Path(model_path)))
    return [
        f"stedgeai analyze --model {m} --target stm32n6 --st-neural-art",
        f"stedgeai generate --model {m} --target stm32n6 --st-neural-art "
        "--optimization time --compression none --output ./generated",
        f"stedgeai validate --model {m} --target stm32n6 --st-neural-art --mode target "
        "--desc serial:921600 --verbosity 2",
    ]
