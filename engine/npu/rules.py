"""The Neural-ART rule table: which TFLite operator runs where, and why.

Every TFLite builtin maps to one tier: ``HW`` (an NPU epoch), ``SW_INT`` or ``SW_FLOAT``
(a software epoch on the Cortex-M55). An ``HW`` operator still falls back to the CPU when
one of its constraints fails. Each constraint is a small function whose docstring is the
rule a user reads and whose result ``(ok, detail)`` says what was found, Vela's pattern:
the same table drives placement and ``docs/SUPPORTED_OPS.md``.

A threshold a rule states is formatted into its docstring from the constant the check uses
(``constraint(..., name=CONSTANT)``, Vela's ``docstring_format_args``), so the rule a user
reads cannot drift from the number the code applies.

Each rule carries its provenance, as ``shared/design/neural-art.md`` labels facts:
``ST`` (ST's own material), ``3P`` (third-party transcriptions or measurements) and
``I`` (inference, stated nowhere). A rule resting on 3P or I says so in the docs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..tflite.model import Model, Operator, Tensor
from ..tflite.reader import BUILTIN_NAMES

HW = "HW"
SW_INT = "SW_INT"
SW_FLOAT = "SW_FLOAT"

PROVENANCE_TEXT = {
    "ST": "ST documentation or ST code",
    "3P": "third-party observation",
    "I": "inference (stated nowhere)",
}

#: What a sentence for an NPU-placed operator says about the unit that runs it.
UNITS = {
    "conv": "the convolution accelerators",
    "depthwise": "the convolution accelerators",
    "pool": "the pooling units",
    "eltwise": "the arithmetic units",
    "activation": "the activation units",
    "dma": "the stream engines (DMA)",
    "view": "no data movement (a view of its input)",
    "requant": "the arithmetic units",
}

#: Ops that only reinterpret their input's shape; the compiler makes them views. [I]
VIEW_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
RECURRENT_OPS = frozenset(
    {
        "LSTM",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "BIDIRECTIONAL_SEQUENCE_LSTM",
        "RNN",
        "UNIDIRECTIONAL_SEQUENCE_RNN",
        "BIDIRECTIONAL_SEQUENCE_RNN",
    }
)
RECURRENT_REASON = (
    "recurrent layers are not accelerated; a convolutional sequence head keeps it on the NPU"
)
FLOAT_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16"})


# ----------------------------------------------------------------------------- op view


@dataclass(frozen=True)
class OpView:
    """One operator with its tensors resolved, as the constraints see it."""

    op: Operator
    inputs: tuple[Tensor | None, ...]
    outputs: tuple[Tensor, ...]
    #: Tensor indices known constant at compile time (stored, or folded shape arithmetic).
    constants: frozenset[int]
    model: Model | None = field(default=None, repr=False, compare=False)

    @property
    def opcode(self) -> str:
        return self.op.opcode

    @property
    def options(self) -> Mapping[str, Any]:
        return self.op.options

    def is_const(self, t: Tensor | None) -> bool:
        return t is not None and t.index in self.constants

    @property
    def activations(self) -> tuple[Tensor, ...]:
        """Non-constant inputs and all outputs."""
        ins = tuple(t for t in self.inputs if t is not None and not self.is_const(t))
        return ins + self.outputs

    @property
    def stored_weights(self) -> tuple[Tensor, ...]:
        return tuple(t for t in self.inputs if t is not None and t.is_constant)

    def values(self, t: Tensor | None) -> tuple[int, ...] | None:
        """Values of a small stored integer tensor (axes, paddings), else None."""
        if t is None or self.model is None or not t.is_constant:
            return None
        if t.dtype not in ("int32", "int64") or t.const_bytes > 4096:
            return None
        data = self.model.buffer_data(t)
        code = "i" if t.dtype == "int32" else "q"
        n = len(data) // (4 if code == "i" else 8)
        return struct.unpack_from(f"<{n}{code}", data) if n else ()


# ----------------------------------------------------------------------------- constraints

Check = Callable[[OpView], tuple[bool, str]]


@dataclass(frozen=True)
class Constraint:
    """A named check. ``rule`` (the function's docstring) is what users read."""

    name: str
    check: Check = field(repr=False)
    provenance: str
    #: The constants formatted into the docstring, by the name its ``{placeholder}`` uses.
    doc_args: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def rule(self) -> str:
        doc = self.check.__doc__ or self.name
        return " ".join(doc.split())

    def __call__(self, view: OpView) -> tuple[bool, str]:
        return self.check(view)


def constraint(provenance: str, **doc_args: object) -> Callable[[Check], Constraint]:
    """Make a check a Constraint; ``doc_args`` fill the ``{name}`` placeholders of its
    docstring, so a threshold is written once, as the constant the check compares with."""

    def wrap(fn: Check) -> Constraint:
        if doc_args:
            fn.__doc__ = (fn.__doc__ or "").format(**doc_args)
        return Constraint(fn.__name__, fn, provenance, MappingProxyType(dict(doc_args)))

    return wrap


def _shape(t: Tensor) -> str:
    return "[" + ", ".join(str(d) for d in (t.shape_signature or t.shape)) + "]"


# --- generic constraints: every HW operator must pass them


@constraint("ST")
def static_shapes(v: OpView) -> tuple[bool, str]:
    """Tensors must have static shapes (an unknown batch is taken as 1)."""
    for t in v.activations:
        if t.is_dynamic:
            return (
                False,
                f"dynamic shape {_shape(t)} on tensor '{t.name}': the NPU needs static shapes",
            )
    return True, ""


@constraint("ST")
def no_hybrid(v: OpView) -> tuple[bool, str]:
    """Weights and activations must both be INT8: hybrid operators (int8 weights with float
    activations, from dynamic-range quantization) run on the CPU."""
    int_weights = any(t.dtype in ("int8", "int4") for t in v.stored_weights)
    float_act = any(t.dtype in FLOAT_DTYPES for t in v.activations)
    if int_weights and float_act:
        return False, (
            "hybrid operator (int8 weights, float activations): the NPU needs full-integer "
            "INT8 quantization"
        )
    return True, ""


@constraint("ST")
def int8_tensors(v: OpView) -> tuple[bool, str]:
    """Activations and weights must be INT8 (int32 biases allowed); any layer left in float
    runs on the CPU."""
    for t in (*v.activations, *v.stored_weights):
        if t.dtype in FLOAT_DTYPES:
            return False, f"{t.dtype} tensors: the NPU runs INT8 only"
    return True, ""


@constraint("I")
def no_int16_activations(v: OpView) -> tuple[bool, str]:
    """INT16 activations (TFLite's 16x8 quantization) are not known to run on the NPU; no
    public source shows them there."""
    for t in v.activations:
        if t.dtype == "int16":
            return False, "int16 activations (16x8 quantization): not shown to run on the NPU"
    return True, ""


GENERIC: tuple[Constraint, ...] = (static_shapes, no_hybrid, int8_tensors, no_int16_activations)


# --- operator constraints


@constraint("3P")
def weights_constant(v: OpView) -> tuple[bool, str]:
    """Weights must be constant tensors."""
    # Weights are input 1 of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV.
    w = v.inputs[1] if len(v.inputs) > 1 else None
    if w is None or not v.is_const(w):
        return (
            False,
            "weights are computed at run time (not constant): the NPU needs constant weights",
        )
    return True, ""


@constraint("3P")
def second_operand_constant(v: OpView) -> tuple[bool, str]:
    """The second operand must be constant (activation × activation products run in
    software)."""
    rhs = v.inputs[1] if len(v.inputs) > 1 else None
    if rhs is None or not v.is_const(rhs):
        return (
            False,
            "activation × activation product: only a constant second operand maps to the NPU",
        )
    return True, ""


def _weight(v: OpView) -> Tensor | None:
    # Weights (or the constant second operand) are input 1 of every row that takes them.
    w = v.inputs[1] if len(v.inputs) > 1 else None
    return w if w is not None and v.is_const(w) else None


@constraint("ST")
def weights_signed(v: OpView) -> tuple[bool, str]:
    """Weights must be signed integers: the NPU's scheme is signed symmetric int8 weights
    with signed asymmetric int8 activations ("8b/8b ss/sa"); uint8 weights (an ONNX
    quantizer's QUInt8) do not map and the layer runs on the CPU."""
    w = _weight(v)
    if w is not None and w.dtype in ("uint8", "uint4"):
        return False, (
            f"{w.dtype} weights '{w.name}': the NPU takes signed symmetric int8 weights "
            "(quantize the weights as signed int8, QInt8)"
        )
    return True, ""


@constraint("ST")
def weights_symmetric(v: OpView) -> tuple[bool, str]:
    """Integer weights must be symmetric (zero point 0 on every channel): asymmetric int8
    weights are not the NPU's "ss/sa" scheme and the layer runs on the CPU."""
    w = _weight(v)
    q = w.quantization if w is not None else None
    if w is not None and q is not None and w.dtype in ("int8", "int4"):
        bad = next((z for z in q.zero_points if z != 0), 0)
        if bad:
            return False, (
                f"asymmetric {w.dtype} weights '{w.name}' (zero point {bad}): the NPU takes "
                "symmetric weights (zero point 0; quantize the weights symmetric)"
            )
    return True, ""


#: Width of the convolution accelerator's stride fields, bits (ST's register header).
CONV_STRIDE_BITS = 3
MAX_CONV_STRIDE = (1 << CONV_STRIDE_BITS) - 1


@constraint("I", max_stride=MAX_CONV_STRIDE, bits=CONV_STRIDE_BITS)
def conv_stride(v: OpView) -> tuple[bool, str]:
    """Convolution strides must be at most {max_stride}: the convolution accelerator's stride
    fields are {bits} bits wide (ST's register header; that larger strides fall back is
    inferred)."""
    sh, sw = v.options.get("stride_h", 1), v.options.get("stride_w", 1)
    if max(sh, sw) > MAX_CONV_STRIDE:
        return False, (
            f"stride {sh}×{sw} exceeds the accelerator's {CONV_STRIDE_BITS}-bit stride field "
            f"(max {MAX_CONV_STRIDE})"
        )
    return True, ""


#: Width of the pooling unit's stride field, bits (ST's register header).
POOL_STRIDE_BITS = 4
MAX_POOL_STRIDE = (1 << POOL_STRIDE_BITS) - 1

#: Side of the largest pool window the pooling unit takes, decomposed; larger windows fall
#: back to software float. [3P] that very large pools fall back; [I] where the line is,
#: placed between the global pools ST's model-zoo models run in HW and in SW.
MAX_POOL_SIDE = 32
#: Largest pool window, elements.
MAX_POOL_WINDOW = MAX_POOL_SIDE * MAX_POOL_SIDE

#: Rank of an NHWC feature map, and the axes of H and W a global pool reduces.
NHWC_RANK = 4
HW_AXES = (1, 2)


def _pool_window(v: OpView) -> tuple[int, int]:
    return int(v.options.get("filter_height", 1)), int(v.options.get("filter_width", 1))


@constraint("ST", max_stride=MAX_POOL_STRIDE, bits=POOL_STRIDE_BITS)
def pool_stride(v: OpView) -> tuple[bool, str]:
    """Pooling strides must be 1 to {max_stride} ({bits}-bit stride field of the pooling
    unit)."""
    sh, sw = v.options.get("stride_h", 1), v.options.get("stride_w", 1)
    if not (1 <= sh <= MAX_POOL_STRIDE and 1 <= sw <= MAX_POOL_STRIDE):
        return False, f"pool stride {sh}×{sw} is outside the pooling unit's 1–{MAX_POOL_STRIDE}"
    return True, ""


@constraint("3P", side=MAX_POOL_SIDE)
def pool_window_size(v: OpView) -> tuple[bool, str]:
    """Pool windows up to 3×3 run natively and larger ones are decomposed, but a very large
    window (over {side}×{side} elements, a threshold artq infers) falls back to software
    float."""
    kh, kw = _pool_window(v)
    if kh * kw > MAX_POOL_WINDOW:
        return False, (
            f"pool window {kh}×{kw} is too large for the pooling unit "
            f"(over {MAX_POOL_SIDE}×{MAX_POOL_SIDE})"
        )
    return True, ""


@constraint("3P", h=HW_AXES[0], w=HW_AXES[1], rank=NHWC_RANK)
def mean_is_global_pool(v: OpView) -> tuple[bool, str]:
    """MEAN maps to the NPU only as a global average pool over height and width (axes {h} and
    {w} of a {rank}-D tensor)."""
    x = v.inputs[0]
    axes = v.values(v.inputs[1] if len(v.inputs) > 1 else None)
    if x is None or axes is None:
        return False, "MEAN axes are not constant: only a global pool over H, W maps to the NPU"
    rank = len(x.shape)
    norm = sorted({a % rank for a in axes}) if rank else []
    if rank == NHWC_RANK and norm == list(HW_AXES):
        return True, ""
    return False, f"MEAN over axes {tuple(axes)} of a {rank}-D tensor is not a global H×W pool"


@constraint("3P", side=MAX_POOL_SIDE)
def global_pool_size(v: OpView) -> tuple[bool, str]:
    """A global pool (MEAN over H, W) up to {side}×{side} runs on the pooling unit; a larger
    one falls back to software float (the {side}×{side} threshold is artq's inference)."""
    x = v.inputs[0]
    if x is not None and len(x.shape) == NHWC_RANK and x.shape[1] * x.shape[2] > MAX_POOL_WINDOW:
        return False, (
            f"global pool over {x.shape[1]}×{x.shape[2]} is too large for the pooling unit: it "
            "runs in software float on the CPU"
        )
    return True, ""


def _broadcast_kind(small: tuple[int, ...], out: tuple[int, ...]) -> str | None:
    """Name the broadcast pattern of ``small`` against ``out`` (NHWC), or None if unsupported."""
    s = (1,) * (len(out) - len(small)) + tuple(small)
    if s == tuple(out):
        return "none"
    if all(d == 1 for d in s):
        return "scalar"
    if len(s) != len(out) or not out:
        return None  # an operand of higher rank than the output is no broadcast
    if len(out) != 4:
        # Lower ranks: only full-size or scalar operands are known to map.
        return "channel" if all(d == 1 for d in s[:-1]) and s[-1] == out[-1] else None
    _, h, w, c = s
    _, oh, ow, oc = out
    if (h, w) == (1, 1) and c == oc:
        return "channel"
    if c == 1 and (h, w) in ((oh, 1), (1, ow), (oh, ow)):
        return {(oh, 1): "H", (1, ow): "W", (oh, ow): "H·W"}[(h, w)]
    return None


@constraint("3P")
def broadcast_supported(v: OpView) -> tuple[bool, str]:
    """Element-wise operands must have the output's shape or broadcast as a scalar, per
    channel, per row (H), per column (W) or per plane (H·W)."""
    out = v.outputs[0].shape if v.outputs else ()
    for t in v.inputs:
        if t is None:
            continue
        if _broadcast_kind(t.shape, out) is None:
            return False, f"broadcast of {list(t.shape)} to {list(out)} is not one the NPU supports"
    return True, ""


@constraint("3P")
def quantize_integer(v: OpView) -> tuple[bool, str]:
    """QUANTIZE runs on the NPU when it requantizes integers (int8↔int8, uint8→int8); from
    float it is a software conversion, cheap at the model input and costly mid-graph."""
    x = v.inputs[0]
    if x is not None and x.dtype in FLOAT_DTYPES:
        return False, "float→int8 conversion runs on the CPU (cheap at the input, costly mid-graph)"
    y = v.outputs[0] if v.outputs else None
    if y is not None and y.dtype not in ("int8", "uint8"):
        return False, f"requantization to {y.dtype}: the NPU handles 8-bit only"
    return True, ""


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class OpRule:
    """How one TFLite builtin maps on the Neural-ART."""

    op: str
    tier: str
    provenance: str
    #: "conv", "depthwise", "pool", "eltwise", "activation", "dma", "view", "requant" for HW
    #: ops; the kind of CPU work ("softmax", "recurrent", "eltwise", ...) for SW ops.
    kind: str
    comment: str
    constraints: tuple[Constraint, ...] = ()
    #: Apply the generic INT8 / static-shape constraints (not for conversions themselves).
    generic: bool = True
    #: Sentence for a SW operator, said as its placement reason.
    sw_reason: str = ""


_ELTWISE = (broadcast_supported,)
_RULES: list[OpRule] = [
    OpRule(
        "CONV_2D",
        HW,
        "3P",
        "conv",
        "Kernel H ≤ 3 and W ≤ 6 (≤ 12 at stride ≥ 2) run natively; larger kernels are "
        "decomposed (still HW, slower). Strides 1, 2, 4 preferred; pad ≤ 2 is free; "
        "large dilations and prime channel counts map badly.",
        (weights_constant, weights_signed, weights_symmetric, conv_stride),
    ),
    OpRule(
        "DEPTHWISE_CONV_2D",
        HW,
        "3P",
        "depthwise",
        "As CONV_2D. Seen on boards [3P]: a stride-2 depthwise conv can stall the NPU with "
        "0 SW epochs reported.",
        (weights_constant, weights_signed, weights_symmetric, conv_stride),
    ),
    OpRule(
        "TRANSPOSE_CONV",
        HW,
        "3P",
        "conv",
        "Weights must be constant.",
        (weights_constant, weights_signed, weights_symmetric),
    ),
    OpRule(
        "FULLY_CONNECTED",
        HW,
        "3P",
        "conv",
        "Runs on the convolution accelerators when the weights are constant.",
        (weights_constant, weights_signed, weights_symmetric),
    ),
    OpRule(
        "BATCH_MATMUL",
        HW,
        "3P",
        "conv",
        "HW only with a constant second operand; activation × activation goes to SW.",
        (second_operand_constant, weights_signed, weights_symmetric),
    ),
    OpRule(
        "AVERAGE_POOL_2D",
        HW,
        "3P",
        "pool",
        f"Windows up to 3×3 native, larger decomposed; strides 1–{MAX_POOL_STRIDE}, pads 0–7 "
        "(ST register widths); line buffer width × channels ≤ 2048, else split.",
        (pool_stride, pool_window_size),
    ),
    OpRule("MAX_POOL_2D", HW, "3P", "pool", "As AVERAGE_POOL_2D.", (pool_stride, pool_window_size)),
    OpRule(
        "MEAN",
        HW,
        "3P",
        "pool",
        "A global pool over H, W; any other reduction is SW. Very large global pools fall "
        "back to SW float.",
        (mean_is_global_pool, global_pool_size),
    ),
    *(
        OpRule(name, HW, "3P", "activation", "Activation unit (ReLU, PReLU, LUT functions).")
        for name in (
            "RELU",
            "RELU6",
            "RELU_N1_TO_1",
            "LEAKY_RELU",
            "PRELU",
            "HARD_SWISH",
            "LOGISTIC",
            "TANH",
        )
    ),
    OpRule("RELU_0_TO_1", HW, "I", "activation", "A clipped ReLU, like RELU_N1_TO_1 (inferred)."),
    *(
        OpRule(
            name,
            HW,
            "3P",
            "eltwise",
            "Arithmetic unit; broadcast only scalar / channel / H / W / H·W.",
            _ELTWISE,
        )
        for name in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")
    ),
    *(OpRule(name, HW, "3P", "eltwise", "Arithmetic unit (unary).") for name in ("ABS", "CEIL")),
    OpRule(
        "CONCATENATION",
        HW,
        "3P",
        "dma",
        "Stream engines / runtime DMA helpers; was SW in 2 of 9 cases in one real compile.",
    ),
    *(
        OpRule(name, HW, "3P", "dma", "Stream engines or hybrid DMA helpers (ll_aton_lib.h).")
        for name in (
            "PAD",
            "STRIDED_SLICE",
            "SPLIT",
            "SPLIT_V",
            "TRANSPOSE",
            "PACK",
            "UNPACK",
            "SPACE_TO_DEPTH",
        )
    ),
    *(
        OpRule(name, HW, "I", "dma", "Same DMA helpers as PAD / STRIDED_SLICE (inferred).")
        for name in ("PADV2", "SLICE")
    ),
    *(
        OpRule(name, HW, "3P", "view", "A reshape of its input; no data moves.")
        for name in sorted(VIEW_OPS)
    ),
    OpRule("RESIZE_NEAREST_NEIGHBOR", HW, "3P", "dma", "Nearest-neighbour upsampling."),
    OpRule(
        "QUANTIZE",
        HW,
        "3P",
        "requant",
        "Integer requantization (int8↔int8) on the NPU; from float it is a SW conversion.",
        (quantize_integer,),
        generic=False,
    ),
    *(
        OpRule(name, HW, "3P", "eltwise", "Arithmetic unit (logic and comparisons).")
        for name in ("CAST", "EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT")
    ),
    OpRule("NOT_EQUAL", HW, "I", "eltwise", "A comparison like EQUAL (inferred)."),
    OpRule(
        "DEQUANTIZE",
        SW_FLOAT,
        "3P",
        "convert",
        "int8→float conversion: cheap at the model output, costly mid-graph.",
        generic=False,
        sw_reason="int8→float conversion runs on the CPU (cheap at the output, costly mid-graph)",
    ),
    OpRule(
        "SOFTMAX",
        SW_INT,
        "3P",
        "softmax",
        "SW_INT by default (HW only with the newer --expand-softmax option); seen as the only "
        "SW epoch in real MobileNet compiles.",
        sw_reason="SOFTMAX runs in software on the CPU: ST maps it to a software epoch by "
        "default (apply it on the host if you can)",
    ),
    OpRule(
        "LOG_SOFTMAX",
        SW_INT,
        "3P",
        "softmax",
        "As SOFTMAX.",
        sw_reason="LOG_SOFTMAX runs in software on the CPU, like SOFTMAX",
    ),
    OpRule(
        "RESIZE_BILINEAR",
        SW_INT,
        "3P",
        "resize",
        "Bilinear resize is a software epoch.",
        sw_reason="bilinear resize runs in software on the CPU; RESIZE_NEAREST_NEIGHBOR stays "
        "on the NPU",
    ),
    OpRule(
        "DEPTH_TO_SPACE",
        SW_INT,
        "3P",
        "dma",
        "Software or hybrid DMA.",
        sw_reason="DEPTH_TO_SPACE runs in software on the CPU (or as a hybrid DMA epoch)",
    ),
    *(
        OpRule(
            name,
            SW_INT,
            "3P",
            "eltwise",
            "Software epoch (SW_INT or SW_FLOAT).",
            sw_reason=f"{name} is not accelerated by the NPU: it runs in software on the CPU",
        )
        for name in (
            "GATHER",
            "GATHER_ND",
            "TILE",
            "SUM",
            "REDUCE_MIN",
            "REDUCE_MAX",
            "REDUCE_PROD",
            "EXP",
            "LOG",
            "SQRT",
            "RSQRT",
            "GREATER",
            "GREATER_EQUAL",
            "LESS",
            "LESS_EQUAL",
            "ARG_MAX",
            "ARG_MIN",
            "SQUARED_DIFFERENCE",
            "DIV",
            "POW",
            "SQUARE",
            "NEG",
            "FLOOR",
            "ROUND",
            "SIN",
            "COS",
            "GELU",
        )
    ),
    *(
        OpRule(
            name,
            SW_INT,
            "3P",
            "recurrent",
            "Recurrent layers are not NPU-accelerated; a convolutional sequence head is.",
            sw_reason=RECURRENT_REASON,
        )
        for name in sorted(RECURRENT_OPS)
    ),
    OpRule(
        "WHILE",
        SW_FLOAT,
        "I",
        "recurrent",
        "Control flow runs on the CPU. A WHILE whose body holds gate matrices and "
        "sigmoid/tanh is an LSTM or GRU that TFLite did not fuse: said as recurrent.",
        sw_reason="a WHILE loop (control flow) runs in software on the CPU",
    ),
    OpRule(
        "SHAPE",
        SW_INT,
        "I",
        "shape",
        "Folded to a constant when its input has a static shape (the usual case); "
        "otherwise computed on the CPU at run time.",
        sw_reason="SHAPE of a dynamic tensor is computed at run time on the CPU",
    ),
]

TABLE: dict[str, OpRule] = {r.op: r for r in _RULES}

DEFAULT_PROVENANCE = "I"
DEFAULT_COMMENT = "Not in ST's Neural-ART operator table: runs in software on the CPU."


def rule_for(opcode: str) -> OpRule:
    """The rule for an operator; builtins the table does not name run in software."""
    rule = TABLE.get(opcode)
    if rule is not None:
        return rule
    return OpRule(
        opcode,
        SW_FLOAT,
        DEFAULT_PROVENANCE,
        "other",
        DEFAULT_COMMENT,
        sw_reason=f"{opcode} is not in ST's Neural-ART operator table: it runs in software on "
        "the CPU",
    )


def all_builtins() -> list[str]:
    """Every TFLite builtin operator name in the schema, sorted."""
    return sorted(set(BUILTIN_NAMES.values()))


# ----------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class Placement:
    placement: str  # "NPU" | "CPU"
    tier: str  # HW | SW_INT | SW_FLOAT
    kind: str
    reason: str
    #: Name of the rule that decided (a constraint name, or "table").
    rule: str
    provenance: str


def loop_body(v: OpView) -> tuple[Operator, ...]:
    """Operators of a WHILE's body subgraph (empty when absent)."""
    if v.model is None or v.opcode != "WHILE":
        return ()
    idx = v.options.get("body_subgraph_index", -1)
    if not 0 <= idx < len(v.model.subgraphs):
        return ()
    return v.model.subgraphs[idx].operators


def is_recurrent_loop(v: OpView) -> bool:
    """A WHILE whose body has a matrix product and a sigmoid or tanh: an unfused RNN cell."""
    ops = {o.opcode for o in loop_body(v)}
    return bool(ops & {"FULLY_CONNECTED", "BATCH_MATMUL"}) and bool(ops & {"LOGISTIC", "TANH"})


def _uses_float(v: OpView) -> bool:
    return any(t.dtype in FLOAT_DTYPES for t in v.activations)


def place(v: OpView) -> Placement:
    """Decide where one operator runs, with the reason as a sentence."""
    if v.opcode == "CUSTOM":
        name = v.op.custom_code or "?"
        tier = SW_FLOAT if _uses_float(v) else SW_INT
        return Placement(
            "CPU",
            tier,
            "other",
            f"custom operator '{name}' is not in ST's operator table: it runs on the CPU",
            "table",
            "I",
        )
    rule = rule_for(v.opcode)
    if rule.tier != HW:
        tier = SW_FLOAT if _uses_float(v) and rule.tier == SW_INT else rule.tier
        reason = rule.sw_reason
        if rule.kind == "recurrent":
            tier = SW_FLOAT if _uses_float(v) else SW_INT
            if v.opcode == "WHILE":
                if is_recurrent_loop(v):
                    reason = f"unfused LSTM/GRU loop (WHILE): {RECURRENT_REASON}"
                else:
                    return Placement("CPU", tier, "other", reason, "table", rule.provenance)
        return Placement("CPU", tier, rule.kind, reason, "table", rule.provenance)
    checks = (GENERIC if rule.generic else ()) + rule.constraints
    for c in checks:
        ok, detail = c(v)
        if not ok:
            floaty = _uses_float(v) or c.name in ("pool_window_size", "global_pool_size")
            tier = SW_FLOAT if floaty else SW_INT
            return Placement("CPU", tier, rule.kind, detail, c.name, c.provenance)
    unit = UNITS.get(rule.kind, "the NPU")
    reason = (
        f"runs on the NPU ({unit})"
        if rule.kind != "view"
        else "runs on the NPU as a view (no data movement)"
    )
    return Placement("NPU", HW, rule.kind, reason, "table", rule.provenance)
