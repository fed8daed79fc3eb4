"""ONNX operators onto the Neural-ART rule table (engine/npu/rules.py).

The rule table is written in TFLite's operator names; an ONNX node is placed by the row
that runs the same kernel (``Conv`` with ``group`` = channels is a depthwise convolution,
``Resize`` is nearest-neighbour or bilinear by its ``mode``). Each mapping carries its own
provenance, as the rules do: ``3P`` where real ST compiles of ONNX QDQ models show the op
(shared/design/neural-art.md §4), ``I`` where artq infers that the ONNX op is the same
kernel. :func:`map_node` picks the row and the operands the row's constraints read;
docs/SUPPORTED_OPS.md lists the same table in its ONNX column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: A weight's layout in the rule table's (TFLite's) terms, for re-laying ONNX weights.
CONV_W = "conv"  # [O, I/g, kh, kw] -> [O, kh, kw, I/g]
DW_W = "depthwise"  # [C, 1, kh, kw] -> [1, kh, kw, C]
TCONV_W = "tconv"  # [I, O/g, kh, kw] -> [O, kh, kw, I]
FC_W = "fc"  # [K, N] -> [N, K]
FC_WT = "fc_t"  # [N, K] already (Gemm transB=1)
OPERAND = "operand"  # element-wise operand: right-aligned to the output's rank, then NHWC


@dataclass(frozen=True)
class OnnxOp:
    """How one ONNX operator maps onto the rule table."""

    op: str
    #: The rule-table rows it can map to (which one: ``note``).
    rows: tuple[str, ...]
    provenance: str
    note: str = ""


@dataclass
class Mapped:
    """One ONNX node as the rule table sees it."""

    opcode: str
    #: ONNX tensor names in the row's operand order ("" for an absent operand).
    inputs: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    #: Operand position -> layout of that operand (CONV_W, ..., OPERAND).
    layouts: dict[int, str] = field(default_factory=dict)
    #: Constants the row needs that the node states as attributes: name -> int32 values.
    synthetic: dict[str, tuple[int, ...]] = field(default_factory=dict)


class Facts(Protocol):
    """What a mapping may ask of the graph."""

    def shape(self, name: str) -> tuple[int, ...] | None: ...
    def is_const(self, name: str) -> bool: ...
    def ints(self, name: str) -> tuple[int, ...] | None: ...
    def floats(self, name: str) -> tuple[float, ...] | None: ...


#: Seen in the real ST compiles of ONNX QDQ models that shared/design/neural-art.md §4 lists
#: (MobileNetV2 0.5: Conv, Clip, Add, GlobalAveragePool, Gemm, Softmax; PP-OCRv4: Concat,
#: DepthToSpace, HardSigmoid, Q/DQ).
_S = "3P"
_I = "I"

ONNX_OPS: dict[str, OnnxOp] = {
    o.op: o
    for o in (
        OnnxOp("Conv", ("CONV_2D", "DEPTHWISE_CONV_2D"), _S,
               "DEPTHWISE_CONV_2D when group = input channels = output channels / multiplier; "
               "1-D convolutions as H = 1"),
        OnnxOp("ConvTranspose", ("TRANSPOSE_CONV",), _I),
        OnnxOp("Gemm", ("FULLY_CONNECTED", "BATCH_MATMUL"), _S,
               "FULLY_CONNECTED with a constant B, else BATCH_MATMUL"),
        OnnxOp("MatMul", ("FULLY_CONNECTED", "BATCH_MATMUL"), _I,
               "FULLY_CONNECTED with a constant 2-D B, else BATCH_MATMUL"),
        OnnxOp("Relu", ("RELU",), _I),
        OnnxOp("Clip", ("RELU6", "RELU", "RELU_0_TO_1", "RELU_N1_TO_1", "MINIMUM"), _S,
               "by its bounds: [0, 6] RELU6, [0, ∞) RELU, [0, 1], [−1, 1]; other bounds a "
               "clamp (MINIMUM)"),
        OnnxOp("LeakyRelu", ("LEAKY_RELU",), _I),
        OnnxOp("PRelu", ("PRELU",), _I),
        OnnxOp("HardSwish", ("HARD_SWISH",), _I),
        OnnxOp("Sigmoid", ("LOGISTIC",), _I),
        OnnxOp("Tanh", ("TANH",), _I),
        OnnxOp("Gelu", ("GELU",), _I),
        *(OnnxOp(a, (b,), _S if a == "Add" else _I) for a, b in (
            ("Add", "ADD"), ("Sub", "SUB"), ("Mul", "MUL"), ("Max", "MAXIMUM"),
            ("Min", "MINIMUM"), ("Div", "DIV"), ("Pow", "POW"), ("Abs", "ABS"),
            ("Ceil", "CEIL"), ("Floor", "FLOOR"), ("Round", "ROUND"), ("Neg", "NEG"),
            ("Sqrt", "SQRT"), ("Exp", "EXP"), ("Log", "LOG"), ("Sin", "SIN"), ("Cos", "COS"),
        )),
        OnnxOp("BatchNormalization", ("MUL",), _I,
               "an unfolded batch norm: a per-channel scale and offset"),
        OnnxOp("MaxPool", ("MAX_POOL_2D",), _I),
        OnnxOp("AveragePool", ("AVERAGE_POOL_2D",), _I),
        OnnxOp("GlobalAveragePool", ("MEAN",), _S, "a global pool over H, W"),
        OnnxOp("GlobalMaxPool", ("MAX_POOL_2D",), _I, "a max pool whose window is H × W"),
        OnnxOp("ReduceMean", ("MEAN",), _I, "axes read in NCHW, checked as NHWC"),
        *(OnnxOp(a, (b,), _I) for a, b in (
            ("ReduceMax", "REDUCE_MAX"), ("ReduceMin", "REDUCE_MIN"), ("ReduceSum", "SUM"),
            ("ReduceProd", "REDUCE_PROD"), ("ArgMax", "ARG_MAX"), ("ArgMin", "ARG_MIN"),
        )),
        OnnxOp("Concat", ("CONCATENATION",), _S),
        OnnxOp("Reshape", ("RESHAPE", "TRANSPOSE"), _I,
               "a view, except from or to a channel-first map with channels and H·W > 1: the "
               "NPU keeps maps channel-last, so the flatten order needs a transpose"),
        OnnxOp("Flatten", ("RESHAPE", "TRANSPOSE"), _I, "as Reshape"),
        OnnxOp("Squeeze", ("SQUEEZE",), _I),
        OnnxOp("Unsqueeze", ("EXPAND_DIMS",), _I),
        OnnxOp("Identity", ("RESHAPE",), _I, "no data moves"),
        OnnxOp("Dropout", ("RESHAPE",), _I, "inference: no data moves"),
        OnnxOp("Transpose", ("TRANSPOSE",), _I),
        OnnxOp("Pad", ("PAD",), _I),
        OnnxOp("Slice", ("STRIDED_SLICE",), _I),
        OnnxOp("Split", ("SPLIT",), _I),
        OnnxOp("Gather", ("GATHER",), _I),
        OnnxOp("Tile", ("TILE",), _I),
        OnnxOp("DepthToSpace", ("DEPTH_TO_SPACE",), _S),
        OnnxOp("SpaceToDepth", ("SPACE_TO_DEPTH",), _I),
        OnnxOp("Resize", ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"), _I,
               "by mode: nearest on the NPU, linear in software; cubic is in no table"),
        OnnxOp("Upsample", ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"), _I, "as Resize"),
        OnnxOp("Softmax", ("SOFTMAX",), _S),
        OnnxOp("LogSoftmax", ("LOG_SOFTMAX",), _I),
        OnnxOp("LSTM", ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM"), _I,
               "by direction"),
        OnnxOp("GRU", ("UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN"), _I,
               "a recurrent layer (3 gates), by direction"),
        OnnxOp("RNN", ("UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN"), _I,
               "by direction"),
        OnnxOp("QuantizeLinear", ("QUANTIZE",), _S,
               "folded into the integer tensor it makes; kept where float meets int8"),
        OnnxOp("DequantizeLinear", ("DEQUANTIZE",), _S,
               "folded into the integer tensor it reads; kept where int8 meets float"),
        OnnxOp("Shape", ("SHAPE",), _I),
        OnnxOp("Cast", ("CAST",), _I),
        *(OnnxOp(a, (b,), _I) for a, b in (
            ("Equal", "EQUAL"), ("And", "LOGICAL_AND"), ("Or", "LOGICAL_OR"),
            ("Not", "LOGICAL_NOT"), ("Greater", "GREATER"), ("GreaterOrEqual", "GREATER_EQUAL"),
            ("Less", "LESS"), ("LessOrEqual", "LESS_EQUAL"),
        )),
    )
}

#: ONNX ops named in real compiles as software epochs, though in no row of the table.
SEEN_SOFTWARE = {"HardSigmoid": "3P"}

_NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


def _attr(attrs: Mapping[str, Any], key: str, default: Any) -> Any:
    return attrs.get(key, default)


def _pair(values: Sequence[int] | None, default: int = 1) -> tuple[int, int]:
    """(h, w) from an ONNX spatial attribute; 1-D ops are H = 1."""
    if not values:
        return default, default
    if len(values) == 1:
        return 1, int(values[0])
    return int(values[-2]), int(values[-1])


def _window(attrs: Mapping[str, Any]) -> dict[str, Any]:
    sh, sw = _pair(attrs.get("strides"))
    dh, dw = _pair(attrs.get("dilations"))
    out: dict[str, Any] = {"stride_h": sh, "stride_w": sw}
    if attrs.get("dilations"):
        out |= {"dilation_h_factor": dh, "dilation_w_factor": dw}
    pads = attrs.get("pads")
    auto = attrs.get("auto_pad", "NOTSET")
    out["padding"] = "SAME" if auto in ("SAME_UPPER", "SAME_LOWER") or any(pads or ()) else "VALID"
    return out


def _conv(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 else ""
    group = int(attrs.get("group", 1))
    xs, ws = g.shape(x), g.shape(w)
    cin = xs[1] if xs and len(xs) > 1 else 0
    depthwise = group > 1 and group == cin and ws is not None and len(ws) > 1 and ws[1] == 1
    opts = _window(attrs)
    if group > 1 and not depthwise:
        opts["groups"] = group
    layout = DW_W if depthwise else CONV_W
    opcode = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    return Mapped(opcode, [x, w, b], opts, {1: layout})


def _conv_transpose(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    b = node.input[2] if len(node.input) > 2 else ""
    # TFLite's operand order: output shape, weights, input, bias.
    return Mapped("TRANSPOSE_CONV", ["", node.input[1], node.input[0], b], _window(attrs),
                  {1: TCONV_W})


def _gemm(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    a, b = node.input[0], node.input[1]
    c = node.input[2] if len(node.input) > 2 else ""
    bs, xs = g.shape(b), g.shape(a)
    trans_a = node.op_type == "Gemm" and bool(int(attrs.get("transA", 0)))
    # The contraction length, read in ONNX's own layout: a 4-D operand (attention's
    # [batch, heads, T, d]) is laid out NHWC like a feature map, where its last axis is not d.
    k = {"contraction": xs[-2] if trans_a else xs[-1]} if xs and len(xs) >= 2 else {}
    if trans_a:
        return Mapped("BATCH_MATMUL", [a, b], {"adj_x": True} | k)
    if g.is_const(b) and bs is not None and len(bs) == 2:
        t = node.op_type == "Gemm" and bool(int(attrs.get("transB", 0)))
        return Mapped("FULLY_CONNECTED", [a, b, c], {}, {1: FC_WT if t else FC_W})
    return Mapped("BATCH_MATMUL", [a, b], k)


def _clip(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    lo: float | None = attrs.get("min")
    hi: float | None = attrs.get("max")
    if len(node.input) > 1 and node.input[1]:
        lo = (g.floats(node.input[1]) or (None,))[0]
    if len(node.input) > 2 and node.input[2]:
        hi = (g.floats(node.input[2]) or (None,))[0]
    bounds = {(0.0, 6.0): "RELU6", (0.0, None): "RELU", (0.0, 1.0): "RELU_0_TO_1",
              (-1.0, 1.0): "RELU_N1_TO_1"}
    key = (lo, hi if hi is not None and math.isfinite(hi) else None)
    return Mapped(bounds.get(key, "MINIMUM"), [node.input[0]], {"clip": (lo, hi)})


def _pool(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    kh, kw = _pair(attrs.get("kernel_shape"))
    op = "MAX_POOL_2D" if node.op_type == "MaxPool" else "AVERAGE_POOL_2D"
    return Mapped(op, [node.input[0]], {"filter_height": kh, "filter_width": kw} | _window(attrs))


def _global(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    x = node.input[0]
    xs = g.shape(x) or ()
    if node.op_type == "GlobalMaxPool":
        kh, kw = _pair(tuple(xs[2:]) or None)
        return Mapped("MAX_POOL_2D", [x], {"filter_height": kh, "filter_width": kw})
    axes = tuple(range(1, len(xs) - 1)) if len(xs) == 4 else tuple(range(2, len(xs)))
    return _mean(x, axes, xs, node)


def _mean(x: str, nchw_axes: Sequence[int], xs: Sequence[int], node: Any) -> Mapped:
    rank = len(xs)
    axes = tuple(a % rank for a in nchw_axes) if rank else tuple(nchw_axes)
    if rank == 4:
        axes = tuple(_NCHW_TO_NHWC_AXIS[a] for a in axes)
        if node.op_type == "GlobalAveragePool":
            axes = (1, 2)
    name = f"{node.output[0]}::axes"
    return Mapped("MEAN", [x, name], {}, synthetic={name: axes})


def _reduce(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    x = node.input[0]
    xs = g.shape(x) or ()
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = g.ints(node.input[1])
    if axes is None:
        axes = tuple(range(len(xs)))
    if node.op_type == "ReduceMean":
        return _mean(x, axes, xs, node)
    return Mapped(ONNX_OPS[node.op_type].rows[0], [x], {"axes": tuple(axes)})


def _reshape(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    x, y = g.shape(node.input[0]), g.shape(node.output[0])
    opcode = {"Squeeze": "SQUEEZE", "Unsqueeze": "EXPAND_DIMS"}.get(node.op_type, "RESHAPE")
    if x is not None and y is not None and _reorders(x, y):
        return Mapped("TRANSPOSE", [node.input[0]], {"channel_reorder": True})
    return Mapped(opcode, [node.input[0]], {})


def _reorders(x: Sequence[int], y: Sequence[int]) -> bool:
    """A reshape between a 4-D channel-first map (C and H·W > 1) and another rank reads the
    elements in NCHW order, which the channel-last map does not hold: a transpose. [I]"""
    def spread(s: Sequence[int]) -> bool:
        return len(s) == 4 and s[1] > 1 and s[2] * s[3] > 1

    if len(x) == 4 and len(y) == 4:
        return spread(x) and (x[1] != y[1])
    return spread(x) or spread(y)


def _resize(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    mode = attrs.get("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    rows = {"nearest": "RESIZE_NEAREST_NEIGHBOR", "linear": "RESIZE_BILINEAR",
            "bilinear": "RESIZE_BILINEAR"}
    return Mapped(rows.get(mode, node.op_type), [node.input[0]], {"mode": mode})


def _recurrent(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    d = attrs.get("direction", "forward")
    d = d.decode() if isinstance(d, bytes) else str(d)
    bi = d == "bidirectional"
    kind = "LSTM" if node.op_type == "LSTM" else "RNN"
    opcode = f"{'BIDIRECTIONAL' if bi else 'UNIDIRECTIONAL'}_SEQUENCE_{kind}"
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[node.op_type]
    opts = {"rnn_gates": gates, "hidden_size": int(attrs.get("hidden_size", 0)),
            "directions": 2 if bi else 1, "time_major": not int(attrs.get("layout", 0))}
    return Mapped(opcode, [i for i in node.input[:3]], opts)


def _eltwise(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    ins = [i for i in node.input[:2]]
    return Mapped(ONNX_OPS[node.op_type].rows[0], ins, {}, dict.fromkeys(range(len(ins)), OPERAND))


def _batchnorm(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    return Mapped("MUL", [node.input[0], node.input[1]], {"batch_norm": True}, {1: OPERAND})


def _first(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    """Rows that read the data operand only (shape and axis operands are attributes)."""
    return Mapped(ONNX_OPS[node.op_type].rows[0], [node.input[0]], {})


def _all(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    return Mapped(ONNX_OPS[node.op_type].rows[0], list(node.input), {})


_MAPPERS: dict[str, Callable[[Any, Mapping[str, Any], Facts], Mapped]] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _gemm,
    "Clip": _clip, "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _global,
    "GlobalMaxPool": _global, "ReduceMean": _reduce, "ReduceMax": _reduce,
    "ReduceMin": _reduce, "ReduceSum": _reduce, "ReduceProd": _reduce,
    "Reshape": _reshape, "Flatten": _reshape, "Squeeze": _reshape, "Unsqueeze": _reshape,
    "Resize": _resize, "Upsample": _resize, "LSTM": _recurrent, "GRU": _recurrent,
    "RNN": _recurrent, "BatchNormalization": _batchnorm, "PRelu": _eltwise,
    **dict.fromkeys(("Add", "Sub", "Mul", "Max", "Min", "Div", "Pow"), _eltwise),
    **dict.fromkeys(("Concat", "Equal", "And", "Or", "Greater", "GreaterOrEqual", "Less",
                     "LessOrEqual"), _all),
}


def map_node(node: Any, attrs: Mapping[str, Any], g: Facts) -> Mapped:
    """The rule-table row for one ONNX node, and the operands that row reads. An op in no
    row keeps its ONNX name: the table's default (software on the CPU) places it."""
    mapper = _MAPPERS.get(node.op_type)
    if mapper is not None:
        return mapper(node, attrs, g)
    if node.op_type in ONNX_OPS:
        return _first(node, attrs, g) if node.input else Mapped(
            ONNX_OPS[node.op_type].rows[0], [], {})
    return Mapped(node.op_type, list(node.input), {})


def provenance(op_type: str) -> str:
    """The mapping's provenance (``I`` for an op in no row: artq's default)."""
    known = ONNX_OPS.get(op_type)
    return known.provenance if known else SEEN_SOFTWARE.get(op_type, "I")
