"""Tiny models for the Neural-ART tests.

Two sources:
- ``craft()`` writes a TFLite flatbuffer directly with the schema's object API (no
  TensorFlow): exact control over shapes, dtypes and options, milliseconds per model. Rule
  tests use it to hit and miss each constraint.
- ``tf_model(name, tmp_path_factory)`` builds real models with TensorFlow (Keras 3 →
  SavedModel → TFLiteConverter), cached once per session in a module-level dict (this
  module is imported once, so every test file shares the cache).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import pytest
from ai_edge_litert import schema_py_generated as fb

REFERENCE_DIR = Path(os.environ.get("ARTQ_REFERENCE_MODELS", "/work/shared/reference_models"))
if not REFERENCE_DIR.is_dir():
    REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference_models"


def reference_model(name: str = "figures.csv") -> Path:
    """A file of the ST reference models. Without them the calling test (or, called at import,
    the module) is skipped with the reason; under CI (CI set, as CI runners set it) it fails:
    CI has ../shared, so a missing file there means the tests silently stopped checking."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        why = (f"{path} not found: the ST reference models live in ../shared/reference_models "
               f"(or $ARTQ_REFERENCE_MODELS)")
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI has them, so these tests must run there", pytrace=False)
        pytest.skip(why, allow_module_level=True)
    return path

# --------------------------------------------------------------------------- crafting

_OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "MEAN": "ReducerOptions",
    "ADD": "AddOptions",
    "MUL": "MulOptions",
    "SUB": "SubOptions",
    "BATCH_MATMUL": "BatchMatMulOptions",
    "SOFTMAX": "SoftmaxOptions",
    "RESHAPE": "ReshapeOptions",
    "CONCATENATION": "ConcatenationOptions",
    "WHILE": "WhileOptions",
    "IF": "IfOptions",
}


@dataclass
class T:
    """A tensor to craft. ``data`` makes it constant."""

    name: str
    shape: Sequence[int]
    dtype: str = "int8"
    data: bytes | None = None
    scales: Sequence[float] | None = (0.05,)
    zero_points: Sequence[int] | None = None
    qdim: int = 0
    sig: Sequence[int] | None = None


@dataclass
class Op:
    opcode: str
    inputs: Sequence[int]
    outputs: Sequence[int]
    options: dict[str, Any] = field(default_factory=dict)
    custom: str | None = None


@dataclass
class Graph:
    """A subgraph besides the main one (a WHILE's cond or body, an IF's branch)."""

    tensors: Sequence[T]
    ops: Sequence[Op]
    inputs: Sequence[int]
    outputs: Sequence[int]
    name: str = ""


def const(name: str, shape: Sequence[int], dtype: str = "int8", value: int = 1, **kw: Any) -> T:
    """A constant tensor filled with ``value``."""
    n = 1
    for d in shape:
        n *= d
    fmt = {"int8": "b", "int32": "i", "float32": "f", "int16": "h", "uint8": "B"}[dtype]
    data = struct.pack(f"<{n}{fmt}", *([value] * n))
    return T(name, shape, dtype, data, **kw)


def ints(name: str, values: Sequence[int]) -> T:
    """A constant int32 vector (axes, shapes)."""
    return T(name, [len(values)], "int32", struct.pack(f"<{len(values)}i", *values), scales=None)


def craft(
    tensors: Sequence[T],
    ops: Sequence[Op],
    inputs: Sequence[int],
    outputs: Sequence[int],
    *,
    description: str = "crafted by tests/npu_models.py",
    subgraphs: Sequence[Graph] = (),
) -> bytes:
    """Pack tensors and operators into a TFLite flatbuffer; ``subgraphs`` follow the main
    one (indices 1, 2, ...), for control-flow operators to run."""
    m = fb.ModelT()
    m.version = 3
    m.description = description.encode()
    m.buffers = [fb.BufferT()]
    m.operatorCodes = []
    codes: dict[tuple[str, str | None], int] = {}
    m.subgraphs = [
        _subgraph(m, codes, g.tensors, g.ops, g.inputs, g.outputs, g.name)
        for g in (Graph(tensors, ops, inputs, outputs), *subgraphs)
    ]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _subgraph(
    m: Any,
    codes: dict[tuple[str, str | None], int],
    tensors: Sequence[T],
    ops: Sequence[Op],
    inputs: Sequence[int],
    outputs: Sequence[int],
    name: str,
) -> Any:
    """One subgraph of ``m``; buffers and operator codes are added to the model's lists."""
    sg = fb.SubGraphT()
    sg.name = name.encode() if name else None
    sg.tensors = []
    for t in tensors:
        tt = fb.TensorT()
        tt.name = t.name.encode()
        tt.shape = list(t.shape)
        tt.type = getattr(fb.TensorType, t.dtype.upper())
        if t.sig is not None:
            tt.shapeSignature = list(t.sig)
        tt.buffer = 0
        if t.data is not None:
            b = fb.BufferT()
            b.data = list(t.data)
            m.buffers.append(b)
            tt.buffer = len(m.buffers) - 1
        if t.scales is not None and t.dtype not in ("float32", "int32", "bool"):
            q = fb.QuantizationParametersT()
            q.scale = list(t.scales)
            q.zeroPoint = list(t.zero_points or [0] * len(t.scales))
            q.quantizedDimension = t.qdim
            tt.quantization = q
        sg.tensors.append(tt)
    sg.operators = []
    for op in ops:
        key = (op.opcode, op.custom)
        if key not in codes:
            oc = fb.OperatorCodeT()
            code = getattr(fb.BuiltinOperator, op.opcode)
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            if op.custom:
                oc.customCode = op.custom.encode()
            codes[key] = len(m.operatorCodes)
            m.operatorCodes.append(oc)
        o = fb.OperatorT()
        o.opcodeIndex = codes[key]
        o.inputs = list(op.inputs)
        o.outputs = list(op.outputs)
        name = _OPTIONS.get(op.opcode)
        if name:
            opts = getattr(fb, name + "T")()
            for k, v in op.options.items():
                setattr(opts, k, v)
            o.builtinOptionsType = getattr(fb.BuiltinOptions, name)
            o.builtinOptions = opts
        sg.operators.append(o)
    sg.inputs = list(inputs)
    sg.outputs = list(outputs)
    return sg


def loop_model(cond: int = 1, body: int = 2, body_calls: int | None = None) -> bytes:
    """WHILE over (counter, x) with a LESS cond (subgraph 1) and a body (subgraph 2) that
    passes its variables through, or runs a WHILE of its own on subgraph ``body_calls``."""
    i, x = T("i", (), "int32", scales=None), T("x", (1, 4))
    inner = (
        [Op("WHILE", [0, 1], [0, 1], {"condSubgraphIndex": 1, "bodySubgraphIndex": body_calls})]
        if body_calls is not None
        else []
    )
    return craft(
        [i, x, T("i_out", (), "int32", scales=None), T("x_out", (1, 4))],
        [Op("WHILE", [0, 1], [2, 3], {"condSubgraphIndex": cond, "bodySubgraphIndex": body})],
        [0, 1],
        [2, 3],
        subgraphs=[
            Graph(
                [i, x, const("n", (), "int32", value=5, scales=None), T("go", (), "bool")],
                [Op("LESS", [0, 2], [3])],
                [0, 1],
                [3],
                "cond",
            ),
            Graph([i, x], inner, [0, 1], [0, 1], "body"),
        ],
    )


def write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / f"{name}.tflite"
    p.write_bytes(data)
    return p


def conv_model(
    *,
    stride: int = 1,
    dtype: str = "int8",
    kernel: int = 3,
    in_shape: Sequence[int] = (1, 8, 8, 4),
    out_ch: int = 8,
    weights_const: bool = True,
    sig: Sequence[int] | None = None,
    weight_dtype: str | None = None,
) -> bytes:
    """INPUT → CONV_2D (SAME) → OUTPUT."""
    n, h, w, c = in_shape
    oh, ow = -(-h // stride), -(-w // stride)
    wdt = weight_dtype or dtype
    weight = (
        const("w", [out_ch, kernel, kernel, c], wdt, scales=[0.01] * out_ch)
        if weights_const
        else T("w", [out_ch, kernel, kernel, c], wdt)
    )
    bias_dtype = "int32" if wdt == "int8" else "float32"
    tensors = [
        T("x", in_shape, dtype, sig=sig),
        weight,
        const(
            "b",
            [out_ch],
            bias_dtype,
            value=0,
            scales=[0.0005] * out_ch if bias_dtype == "int32" else None,
        ),
        T("y", [n, oh, ow, out_ch], dtype),
    ]
    ins = [0] if weights_const else [0, 1]
    opts = {"padding": 0, "strideH": stride, "strideW": stride, "fusedActivationFunction": 1}
    return craft(tensors, [Op("CONV_2D", [0, 1, 2], [3], opts)], ins, [3])


def single_op(
    opcode: str,
    in_shapes: Sequence[Sequence[int]],
    out_shape: Sequence[int],
    options: dict[str, Any] | None = None,
    dtype: str = "int8",
    consts: dict[int, T] | None = None,
) -> bytes:
    """One operator whose inputs are graph inputs unless ``consts`` gives a constant."""
    consts = consts or {}
    tensors: list[T] = []
    graph_in: list[int] = []
    for i, shape in enumerate(in_shapes):
        if i in consts:
            tensors.append(consts[i])
        else:
            tensors.append(T(f"in{i}", shape, dtype))
            graph_in.append(i)
    tensors.append(T("out", out_shape, dtype))
    k = len(tensors) - 1
    return craft(
        tensors, [Op(opcode, list(range(len(in_shapes))), [k], options or {})], graph_in, [k]
    )


def scaled_model(model: Any, num: int, den: int) -> Any:
    """``model`` with every 4-D activation map's height and width scaled by num/den (the same
    fully-convolutional architecture at another input size; weights unchanged)."""
    import dataclasses

    def scale(t: Any) -> Any:
        if t.is_constant or len(t.shape) != 4 or t.shape[1] <= 1:
            return t
        n, h, w, c = t.shape
        return dataclasses.replace(t, shape=(n, h * num // den, w * num // den, c))

    main = dataclasses.replace(model.main, tensors=tuple(scale(t) for t in model.main.tensors))
    return dataclasses.replace(model, subgraphs=(main, *model.subgraphs[1:]))


# --------------------------------------------------------------------------- TensorFlow

_CACHE: dict[str, Path] = {}


def tf_model(name: str, tmp_path_factory: Any) -> Path:
    """A real TFLite model built with TensorFlow, cached for the session.

    Names: conv_int8, conv_float, hybrid, lstm_float, mixed_int8.
    """
    if name not in _CACHE:
        folder = tmp_path_factory.mktemp(f"tf_{name}")
        _CACHE[name] = _BUILDERS[name](folder)
    return _CACHE[name]


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _keras_convnet(tf: Any) -> Any:
    k = tf.keras
    inp = k.Input((16, 16, 3), batch_size=1)
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = k.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = k.layers.Conv2D(16, 1, activation="relu6")(x)
    x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    x = k.layers.Dense(10)(x)
    out = k.layers.Softmax()(x)
    return k.Model(inp, out)


def _saved(tf: Any, model: Any, folder: Path, shape: tuple[int, ...]) -> str:
    path = str(folder / "saved")
    model.export(
        path,
        format="tf_saved_model",
        input_signature=[tf.TensorSpec(shape, tf.float32)],
        verbose=False,
    )
    return path


def _rep(tf: Any, shape: tuple[int, ...]) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)

    def gen() -> Any:
        for _ in range(8):
            yield [rng.random(shape, dtype=np.float32)]

    return gen


def _build_conv(folder: Path, *, quant: str) -> Path:
    tf = _tf()
    tf.keras.utils.set_random_seed(0)
    shape = (1, 16, 16, 3)
    conv = tf.lite.TFLiteConverter.from_saved_model(_saved(tf, _keras_convnet(tf), folder, shape))
    if quant in ("int8", "hybrid"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "int8":
        conv.representative_dataset = _rep(tf, shape)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    out = folder / f"conv_{quant}.tflite"
    out.write_bytes(conv.convert())
    return out


def _build_hybrid(folder: Path) -> Path:
    """Dynamic-range quantization: int8 weights (≥ 1024 elements), float activations."""
    tf = _tf()
    tf.keras.utils.set_random_seed(0)
    k = tf.keras
    inp = k.Input((64,), batch_size=1)
    x = k.layers.Dense(64, activation="relu")(inp)
    out = k.layers.Dense(10)(x)
    conv = tf.lite.TFLiteConverter.from_saved_model(_saved(tf, k.Model(inp, out), folder, (1, 64)))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    p = folder / "hybrid.tflite"
    p.write_bytes(conv.convert())
    return p


def _build_lstm(folder: Path) -> Path:
    tf = _tf()
    tf.keras.utils.set_random_seed(0)
    k = tf.keras
    inp = k.Input((12, 6), batch_size=1)
    x = k.layers.Conv1D(8, 3, padding="same", activation="relu")(inp)
    x = k.layers.LSTM(8, return_sequences=True)(x)
    out = k.layers.Dense(5)(x)
    shape = (1, 12, 6)
    conv = tf.lite.TFLiteConverter.from_saved_model(_saved(tf, k.Model(inp, out), folder, shape))
    p = folder / "lstm_float.tflite"
    p.write_bytes(conv.convert())
    return p


def _build_mixed(folder: Path) -> Path:
    """Full INT8 but one convolution left in float (QuantizationDebugger denylist), as the
    per-layer sensitivity feature produces."""
    tf = _tf()
    tf.keras.utils.set_random_seed(0)
    shape = (1, 16, 16, 3)
    conv = tf.lite.TFLiteConverter.from_saved_model(_saved(tf, _keras_convnet(tf), folder, shape))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _rep(tf, shape)
    debug_conv = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved"))
    debug_conv.optimizations = [tf.lite.Optimize.DEFAULT]
    debug_conv.representative_dataset = _rep(tf, shape)
    # Denylist the 1x1 convolution (third layer) by its output tensor name.
    from ai_edge_litert.interpreter import Interpreter

    probe = Interpreter(model_content=_build_conv_bytes(tf, folder, shape))
    ops = probe._get_ops_details()
    target = [o for o in ops if o["op_name"] == "CONV_2D"][1]
    name = probe.get_tensor_details()[target["outputs"][0]]["name"]
    opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[name])
    dbg = tf.lite.experimental.QuantizationDebugger(
        converter=debug_conv, debug_dataset=_rep(tf, shape), debug_options=opts
    )
    p = folder / "mixed_int8.tflite"
    p.write_bytes(dbg.get_nondebug_quantized_model())
    return p


def _build_conv_bytes(tf: Any, folder: Path, shape: tuple[int, ...]) -> bytes:
    c = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved"))
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = _rep(tf, shape)
    return c.convert()


_BUILDERS = {
    "conv_int8": lambda f: _build_conv(f, quant="int8"),
    "conv_float": lambda f: _build_conv(f, quant="float"),
    "hybrid": _build_hybrid,
    "lstm_float": _build_lstm,
    "mixed_int8": _build_mixed,
}


def edited_target(tmp: Path, old: str, new: str) -> Path:
    """The bundled STM32N6570-DK target with one text edit, written to ``tmp``."""
    from engine.npu import load_target  # noqa: PLC0415

    text = Path(load_target("stm32n6570-dk").path).read_text(encoding="utf-8")
    assert old in text
    p = tmp / "t.toml"
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    return p
