"""Phase 4, cost: per-layer MACs, weight and activation bytes, estimated time.

The model, in one paragraph. An NPU layer costs a fixed epoch overhead plus the longest of
three streams that overlap in hardware: compute (MACs at the target's peak MAC rate times
an efficiency for the layer's kind), activation traffic (bytes read and written, slowed by
the freq ratio of the pool each buffer sits in) and weights streamed from external flash
(flash bytes at the flash's effective read rate). A CPU layer costs its MACs and output
elements at the Cortex-M55's cycles per MAC / per element, plus a software-epoch hand-off.
The few constants live in the target TOML; those fitted on published figures say so there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..tflite.model import Model, Operator, Tensor
from .activations import ActivationPlan
from .fold import Folding
from .placement import PlacedLayers, float_copies
from .rules import OpView, Placement, loop_body
from .targets import Target, WeightLayout

MAC_KINDS = frozenset({"conv", "depthwise", "recurrent"})


@dataclass(frozen=True)
class LayerCost:
    macs: int
    #: Raw bytes of the layer's constant tensors (first use of each buffer only).
    weight_bytes: int
    #: Bytes as the compiler lays them out in flash (weight_bytes + layout overhead).
    flash_bytes: int
    #: Bytes of activations read and written.
    activation_bytes: int
    compute_us: float
    memory_us: float
    weights_us: float
    overhead_us: float
    #: Part of compute_us a CPU layer spends converting int8 ↔ float32 copies.
    convert_us: float = 0.0

    @property
    def total_us(self) -> float:
        return self.overhead_us + max(self.compute_us, self.memory_us, self.weights_us)


def _elems(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= max(d, 1)
    return n


def macs(v: OpView) -> int:
    """Multiply-accumulates of one operator (element operations for pools and element-wise
    layers, as ST's ``macc`` column counts them)."""
    op = v.opcode
    out = v.outputs[0] if v.outputs else None
    if out is None:
        return 0
    n_out = _elems(out.shape)
    x = v.inputs[0] if v.inputs else None
    w = v.inputs[1] if len(v.inputs) > 1 else None
    if op == "CONV_2D" and w is not None and len(w.shape) == 4:
        return n_out * w.shape[1] * w.shape[2] * w.shape[3]
    if op == "DEPTHWISE_CONV_2D" and w is not None and len(w.shape) == 4:
        return n_out * w.shape[1] * w.shape[2]
    if op == "FULLY_CONNECTED" and w is not None and len(w.shape) == 2:
        return n_out * w.shape[1]
    if op == "BATCH_MATMUL" and "contraction" in v.options:
        return n_out * int(v.options["contraction"])
    if op == "BATCH_MATMUL" and x is not None and len(x.shape) >= 2:
        k = x.shape[-2] if v.options.get("adj_x") else x.shape[-1]
        return n_out * k
    if op == "TRANSPOSE_CONV" and len(v.inputs) > 2 and v.inputs[2] is not None and w is not None:
        # Each input element is spread over kh x kw x out_channels outputs.
        return _elems(v.inputs[2].shape) * w.shape[0] * w.shape[1] * w.shape[2]
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return (
            n_out * int(v.options.get("filter_height", 1)) * int(v.options.get("filter_width", 1))
        )
    if op in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD") and x is not None:
        return _elems(x.shape)
    if "rnn_gates" in v.options:
        return _onnx_rnn_macs(v)
    if op in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM"):
        return _lstm_macs(v, gates=4)
    if op in ("UNIDIRECTIONAL_SEQUENCE_RNN", "RNN", "BIDIRECTIONAL_SEQUENCE_RNN"):
        return _lstm_macs(v, gates=1)
    if op == "WHILE":
        return _loop_macs(v)
    if op in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"):
        return 0
    return n_out


#: The largest MAC count an estimate carries. Nested loops multiply trip counts; a file that
#: nests many must not overflow the float arithmetic of the timing.
MAX_MACS = 2**63 - 1
#: The most iterations a loop is counted for.
MAX_TRIPS = 1_000_000


def _loop_macs(v: OpView) -> int:
    """MACs of a WHILE: its body's MACs times the trip count (see :func:`_trips`)."""
    m = v.model
    if m is None or not loop_body(v):
        return n_elems_out(v)
    body = v.options["body_subgraph_index"]
    return min(_step_macs(m, body)[body] * _trips(v), MAX_MACS)


def _trips(v: OpView) -> int:
    """A WHILE's trip count: the largest positive int32 scalar constant of the condition
    subgraph, else the leading dimension of a 3-D loop input (a time-major sequence
    [T, batch, features], as TFLite converts an unfused RNN), else 1."""
    m = v.model
    trips = 0
    cond = v.options.get("cond_subgraph_index", -1)
    if m is not None and 0 <= cond < len(m.subgraphs):
        for t in m.subgraphs[cond].tensors:
            if t.is_constant and t.dtype == "int32" and t.num_elements == 1:
                vals = OpView(v.op, (), (), frozenset(), m).values(t) or (0,)
                trips = max(trips, vals[0])
    if trips <= 0:
        trips = max(
            (t.shape[0] for t in v.inputs if t is not None and len(t.shape) == 3), default=1
        )
    return min(trips, MAX_TRIPS)


def _step_macs(m: Model, root: int) -> dict[int, int]:
    """MACs of one run of subgraph ``root`` and of each loop body it runs, bodies first.

    Without recursion: the reader has checked that no subgraph runs itself, but loops can
    nest deeper than Python's stack, and a body that several loops run is counted once.
    """
    order: list[int] = []  # depth-first post-order: every body before the graphs running it
    seen: set[int] = set()
    stack = [(root, False)]
    while stack:
        idx, finished = stack.pop()
        if finished:
            order.append(idx)
            continue
        if idx in seen:
            continue
        seen.add(idx)
        stack.append((idx, True))
        for op in m.subgraphs[idx].operators:
            body = op.options.get("body_subgraph_index", -1) if op.opcode == "WHILE" else -1
            if 0 <= body < len(m.subgraphs) and body not in seen:
                stack.append((body, False))
    steps: dict[int, int] = {}
    for idx in order:
        sg = m.subgraphs[idx]
        constants = frozenset(t.index for t in sg.tensors if t.is_constant)
        total = 0
        for op in sg.operators:
            view = OpView(
                op,
                tuple(sg.tensors[i] if i >= 0 else None for i in op.inputs),
                tuple(sg.tensors[i] for i in op.outputs),
                constants,
                m,
            )
            if op.opcode == "WHILE" and loop_body(view):
                total += steps[op.options["body_subgraph_index"]] * _trips(view)
            else:
                total += macs(view)
        steps[idx] = min(total, MAX_MACS)
    return steps


def n_elems_out(v: OpView) -> int:
    return sum(_elems(t.shape) for t in v.outputs)


def _lstm_macs(v: OpView, gates: int) -> int:
    """Gates x (input + recurrent) matrix products per time step."""
    x = v.inputs[0]
    if x is None or len(x.shape) < 2:
        return 0
    # Input-to-forget weights are input 2 ([hidden, features]) in every LSTM/RNN variant;
    # for RNNs the input weights are input 1.
    w = (
        v.inputs[2]
        if gates == 4 and len(v.inputs) > 2
        else (v.inputs[1] if len(v.inputs) > 1 else None)
    )
    if w is None or len(w.shape) != 2:
        return 0
    hidden, feats = w.shape
    steps = _elems(x.shape[:-1])  # batch x time
    directions = 2 if v.opcode.startswith("BIDIRECTIONAL") else 1
    return directions * steps * gates * hidden * (feats + hidden)


def _onnx_rnn_macs(v: OpView) -> int:
    """An ONNX LSTM / GRU / RNN: gates × (input + recurrent) products per step and direction,
    from X [T, batch, features] (or [batch, T, features]) and ``hidden_size``."""
    x = v.inputs[0]
    hidden = int(v.options.get("hidden_size", 0))
    if x is None or len(x.shape) != 3 or hidden <= 0:
        return 0
    steps = x.shape[0] * x.shape[1]  # time × batch in either layout
    gates, dirs = int(v.options["rnn_gates"]), int(v.options.get("directions", 1))
    return dirs * steps * gates * hidden * (x.shape[2] + hidden)


def flash_bytes(v: OpView, raw: int, layout: WeightLayout) -> int:
    """Flash bytes of a layer's weights: raw bytes plus the depthwise block overhead."""
    if v.opcode == "DEPTHWISE_CONV_2D" and raw and len(v.inputs) > 1 and v.inputs[1] is not None:
        w = v.inputs[1]
        if len(w.shape) == 4:
            taps = w.shape[1] * w.shape[2]
            extra = max(0.0, layout.dw_channel_bytes - layout.dw_tap_bytes * taps)
            return raw + round(extra * w.shape[3])
    return raw


def layer_cost(
    v: OpView,
    placed: Placement,
    target: Target,
    raw_weight_bytes: int,
    pool_ratio: Mapping[int, float],
    requantized: int = 0,
) -> LayerCost:
    """Cost of one placed layer. ``pool_ratio`` maps tensor index to its pool's freq ratio;
    ``requantized`` counts int8 elements a software-float layer converts back after it for
    later readers (its input was expanded to float32 in place)."""
    n_macs = macs(v)
    flash = flash_bytes(v, raw_weight_bytes, target.weights)
    acts: tuple[Tensor, ...] = v.activations
    act_bytes = sum(t.nbytes for t in acts)
    if placed.placement == "NPU":
        npu = target.npu
        if placed.kind == "view":
            return LayerCost(0, raw_weight_bytes, flash, 0, 0.0, 0.0, 0.0, 0.0)
        eff = npu.efficiency.get(placed.kind, 0.1)
        compute = n_macs / (npu.macs_per_cycle * eff) / npu.clock_mhz
        weighted = sum(t.nbytes * pool_ratio.get(t.index, 1.0) for t in acts)
        memory = weighted / (npu.bus_bytes_per_cycle * npu.clock_mhz)
        weights = flash / target.flash.read_mb_s
        return LayerCost(
            n_macs,
            raw_weight_bytes,
            flash,
            act_bytes,
            compute,
            memory,
            weights,
            npu.epoch_overhead_us,
        )
    cpu = target.cpu
    floaty = placed.tier == "SW_FLOAT"
    if placed.kind in ("view", "shape"):
        cycles = 0.0
    elif placed.kind in MAC_KINDS or placed.kind == "conv":
        cycles = n_macs * (cpu.cycles_per_mac_float if floaty else cpu.cycles_per_mac_int8)
    else:
        table = cpu.cycles_per_element_float if floaty else cpu.cycles_per_element_int8
        kind = placed.kind if placed.kind in table else "other"
        out_elems = sum(t.num_elements for t in v.outputs)
        # Reductions and pools read more than they write: count the larger of the two.
        cycles = max(out_elems, n_macs) * table[kind]
    convert = 0.0
    if floaty:
        # A float kernel on integer tensors works on float32 copies: convert each way.
        elems = sum(t.num_elements for t in float_copies(v)) + requantized
        convert = elems * cpu.cycles_per_element_float["convert"]
    return LayerCost(
        n_macs,
        raw_weight_bytes,
        flash,
        act_bytes,
        (cycles + convert) / cpu.clock_mhz,
        0.0,
        0.0,
        cpu.sw_epoch_overhead_us,
        convert / cpu.clock_mhz,
    )


def cost_layers(
    model: Model, folding: Folding, placed: PlacedLayers, memory: ActivationPlan, target: Target
) -> tuple[LayerCost, ...]:
    """Cost every placed layer. Raw constant bytes are attributed to the first layer that
    uses each buffer, through the folded operators that feed it."""
    producers = folding.producers()
    seen_buffers: set[int] = set()
    costs: list[LayerCost] = []
    for i, (v, p) in enumerate(zip(placed.views, placed.placements, strict=True)):
        raw = _stored_bytes(model, v.op, folding.constants, seen_buffers, producers)
        requantized = memory.requantized.get(i, 0)
        costs.append(layer_cost(v, p, target, raw, memory.pool_ratio, requantized))
    return tuple(costs)


def _stored_bytes(
    model: Model,
    op: Operator,
    constants: frozenset[int],
    seen: set[int],
    producers: Mapping[int, Operator],
) -> int:
    """Raw constant bytes a layer brings, through folded producers, each buffer once."""
    total = 0
    stack = [i for i in op.inputs if i >= 0 and i in constants]
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
