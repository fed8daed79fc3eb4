"""The int32 biases of an INT8 model's conv, depthwise and fully-connected layers: where
they are in the file, what one bias unit is worth, and how to change them in place.

A bias buffer keeps its size when its values change, so a corrected model is the same
flatbuffer with some bytes rewritten: same operators, same tensors, same offsets, which is
why the NPU places it exactly as the original. No TensorFlow, no re-serialisation.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from .model import Model, Operator

#: The layers whose output is an affine map plus a per-output-channel bias.
BIAS_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# The clamp a fused activation applies, in real units (lo, hi).
_ACTIVATION_RANGE = {
    "NONE": (-math.inf, math.inf),
    "RELU": (0.0, math.inf),
    "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0),
}


@dataclass(frozen=True)
class BiasLayer:
    """One layer whose int32 bias can be corrected."""

    op_index: int
    opcode: str
    #: The op's output tensor name: the same in the float model of the same conversion.
    name: str
    output: int  # tensor index of the int8 output
    bias: int  # tensor index of the int32 bias
    #: (start, length) of the bias data in the file.
    span: tuple[int, int]
    #: Real value of one bias unit per output channel: input scale × weight scale.
    bias_scale: tuple[float, ...]
    out_scale: float
    out_zero_point: int
    #: The fused activation's clamp in real units: where the output is clamped, an error
    #: is hidden and the layer's pre-activation value cannot be read.
    act_range: tuple[float, float]

    @property
    def channels(self) -> int:
        return len(self.bias_scale)

    def unclamped_q(self) -> tuple[int, int]:
        return unclamped_q(self.act_range, self.out_scale, self.out_zero_point)


def unclamped_q(act_range: tuple[float, float], scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 values an output can take strictly inside its clamp: the activation's
    range on the int8 grid, within −128…127."""
    lo, hi = act_range
    qlo, qhi = -128, 127
    if math.isfinite(lo):
        qlo = max(qlo, zero_point + round(lo / scale))
    if math.isfinite(hi):
        qhi = min(qhi, zero_point + round(hi / scale))
    return qlo, qhi


def bias_layers(model: Model) -> tuple[list[BiasLayer], list[tuple[str, str]]]:
    """The correctable layers of the main subgraph in graph order, and (name, why) for
    each conv/depthwise/FC layer that cannot be corrected."""
    sg = model.main
    users: dict[int, int] = {}
    for g in model.subgraphs:
        for t in g.tensors:
            if t.buffer > 0:
                users[t.buffer] = users.get(t.buffer, 0) + 1
    found: list[BiasLayer] = []
    skipped: list[tuple[str, str]] = []
    for op in sg.operators:
        if op.opcode not in BIAS_OPS:
            continue
        name = sg.tensors[op.outputs[0]].name if op.outputs else f"op {op.index}"
        layer, why = _layer(model, op, users)
        if layer is None:
            skipped.append((name, why))
        else:
            found.append(layer)
    return found, skipped


def _layer(model: Model, op: Operator, users: dict[int, int]) -> tuple[BiasLayer | None, str]:
    sg = model.main
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None, "no bias tensor"
    x, w, b, y = (sg.tensors[i] for i in (*op.inputs[:3], op.outputs[0]))
    if x.dtype != "int8" or w.dtype != "int8" or y.dtype != "int8":
        return None, f"not an int8 layer ({x.dtype} input, {w.dtype} weights, {y.dtype} output)"
    if b.dtype != "int32" or not b.is_constant:
        return None, f"bias is {b.dtype}{'' if b.is_constant else ', not constant'}"
    if users.get(b.buffer, 0) != 1:
        # Deduplicated buffers: changing one layer's bias would change another's.
        return None, "bias buffer shared with another tensor"
    if not (x.quantization and w.quantization and y.quantization):
        return None, "missing quantization parameters"
    channels = y.shape[-1] if y.shape else 0
    start, length = model.buffer_spans[b.buffer]
    if length != 4 * channels or b.num_elements != channels:
        return None, f"bias has {b.num_elements} values for {channels} output channels"
    ws = w.quantization.scales
    if len(ws) not in (1, channels):
        return None, f"{len(ws)} weight scales for {channels} output channels"
    xs = x.quantization.scales[0]
    scale = tuple(float(xs) * float(s) for s in (ws if len(ws) == channels else ws * channels))
    act = str(op.options.get("fused_activation_function", "NONE"))
    if act not in _ACTIVATION_RANGE:
        return None, f"fused activation {act}"
    return BiasLayer(op.index, op.opcode, y.name, op.outputs[0], op.inputs[2], (start, length),
                     scale, float(y.quantization.scales[0]),
                     int((y.quantization.zero_points or (0,))[0]), _ACTIVATION_RANGE[act]), ""


def read_bias(data: bytes | bytearray, layer: BiasLayer) -> np.ndarray:
    start, length = layer.span
    return np.frombuffer(bytes(data[start : start + length]), dtype="<i4").astype(np.int64)


def write_bias(data: bytearray, layer: BiasLayer, values: np.ndarray) -> None:
    """Overwrite the layer's bias in ``data`` (the whole file) with int32 ``values``."""
    v = np.asarray(values)
    if v.shape != (layer.channels,) or v.min(initial=0) < INT32_MIN or v.max(initial=0) > INT32_MAX:
        raise ValueError(f"{layer.name}: {v.shape} bias values do not fit its int32 bias")
    start, length = layer.span
    data[start : start + length] = v.astype("<i4").tobytes()


def fold(bias: np.ndarray, mean_error: np.ndarray,
         bias_scale: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The int32 bias with the per-channel mean output error taken out.

    ``mean_error`` is in real units (NaN where it could not be measured); one bias unit is
    worth ``bias_scale`` (input scale × weight scale). Returns the new bias (int64 values
    within int32), the number of channels that hit the int32 limits, and the number left
    as they were (scale zero or not finite, or no measurement).
    """
    bias = np.asarray(bias, np.int64)
    err = np.asarray(mean_error, np.float64)
    scale = np.asarray(bias_scale, np.float64)
    ok = np.isfinite(err) & np.isfinite(scale) & (scale > 0)
    step = np.zeros_like(err)
    with np.errstate(over="ignore"):  # an overflow is inf, clipped to the int32 limit below
        np.divide(err, scale, out=step, where=ok)
    # Clip in float first: an error over a tiny scale can exceed what int64 holds.
    want = np.clip(bias - np.rint(step), INT32_MIN, INT32_MAX)
    new = np.where(ok, want, bias).astype(np.int64)
    saturated = int(np.sum(ok & ((new == INT32_MIN) | (new == INT32_MAX))))
    return new, saturated, int(np.sum(~ok))


def truncated(data: bytes, ops: int) -> bytes:
    """The model with only its first ``ops`` operators in the main subgraph (the length
    word of its operator vector lowered in place): LiteRT runs operators in the stored
    order, so this computes the tensors up to that op and skips the rest. Reading a layer
    needs no more; the graph outputs past it are left unwritten and must not be read."""
    from ai_edge_litert import schema_py_generated as fb  # noqa: PLC0415

    sg = fb.Model.GetRootAs(data, 0).Subgraphs(0)
    start = sg._tab.Vector(sg._tab.Offset(10))  # noqa: SLF001 - slot 10: operators
    (n,) = struct.unpack_from("<I", data, start - 4)
    if not 0 < ops <= n:
        raise ValueError(f"cannot keep {ops} of {n} operators")
    out = bytearray(data)
    struct.pack_into("<I", out, start - 4, ops)
    return bytes(out)
