"""Tiny ONNX graphs built with ``onnx.helper`` for the NPU reader's tests: QDQ-wrapped
layers (as onnxruntime's quantizer writes them), float layers, and real ``quantize_static``
models for the end-to-end checks, and `conv_classifier`, a whole FP32 model for ONNX jobs. Tests import onnx (protobuf) here; only the fixture that
quantizes imports onnxruntime, never the code under test."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest


class _Onnx:
    """The onnx package, imported on the first use of one of its names. Every test process
    imports the ONNX tests' modules when it collects, and ``import onnx`` costs ~0.7 s of CPU
    (ml_dtypes registering its dtypes with numpy); only the process that runs those tests
    (the xdist group "onnx", tests/conftest.py) needs it. Names with a leading underscore
    are pytest's probes while it collects (``issubclass`` asks ``__bases__``): not onnx's."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        import onnx  # noqa: PLC0415 - the point of this class

        try:
            return getattr(onnx, name)
        except AttributeError:  # a submodule its package does not import
            return importlib.import_module(f"onnx.{name}")


onnx: Any = _Onnx()
#: The tests that load onnx run in one xdist worker (``--dist loadgroup`` in pyproject.toml):
#: the others never pay for its import.
ONNX_TESTS = pytest.mark.xdist_group("onnx")


def _np_type(elem_type: int | None) -> type:
    """numpy's type for an ONNX element type; None (the default of the graph's methods, so
    that defining them loads no onnx) is int8."""
    if elem_type is None:
        return np.int8
    return {onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8,
            onnx.TensorProto.INT32: np.int32}[elem_type]


class Graph:
    """A graph under construction; names are generated, each method returns its output."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def _name(self, base: str) -> str:
        self.n += 1
        return f"{base}{self.n}"

    def const(self, arr: Any, base: str = "c") -> str:
        name = self._name(base)
        self.inits.append(onnx.numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> str:
        outs = [self._name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), outs, name=outs[0], **attrs))
        return outs[0]

    def q(self, x: str, scale: float = 0.05, zp: int = 0, dtype: int | None = None) -> str:
        s = self.const(np.float32(scale), "scale")
        z = self.const(np.array(zp, dtype=_np_type(dtype)), "zp")
        return self.op("QuantizeLinear", [x, s, z])

    def dq(self, x: str, scale: float = 0.05, zp: int = 0, dtype: int | None = None) -> str:
        s = self.const(np.float32(scale), "scale")
        z = self.const(np.array(zp, dtype=_np_type(dtype)), "zp")
        return self.op("DequantizeLinear", [x, s, z])

    def qdq(self, x: str, **kw: Any) -> str:
        """Quantize then dequantize: the int8 tensor a QDQ model passes between layers."""
        return self.dq(self.q(x, **kw), **kw)

    def weight(
        self,
        shape: Sequence[int],
        *,
        zp: int = 0,
        per_channel: bool = True,
        axis: int = 0,
        dtype: int | None = None,
    ) -> str:
        """An int8 initializer behind its DequantizeLinear (per-channel along ``axis``)."""
        data = np.ones(shape, dtype=_np_type(dtype))
        w = self.const(data, "w")
        n = shape[axis] if per_channel else 1
        s = self.const(np.full(n, 0.01, np.float32) if per_channel else np.float32(0.01), "ws")
        zps = np.full(n, zp, _np_type(dtype)) if per_channel else np.array(zp, _np_type(dtype))
        z = self.const(zps, "wz")
        return self.op("DequantizeLinear", [w, s, z], axis=axis) if per_channel else self.op(
            "DequantizeLinear", [w, s, z]
        )

    def bias(self, n: int) -> str:
        b = self.const(np.zeros(n, np.int32), "b")
        s = self.const(np.full(n, 0.0005, np.float32), "bs")
        z = self.const(np.zeros(n, np.int32), "bz")
        return self.op("DequantizeLinear", [b, s, z], axis=0)

    def model(
        self,
        inputs: Sequence[tuple[str, Sequence[int | str]]],
        outputs: Sequence[str],
        opset: int = 17,
        input_type: int | None = None,
    ) -> Any:
        """The model (``input_type``: the inputs' element type, None for float)."""
        if input_type is None:
            input_type = onnx.TensorProto.FLOAT
        ins = [onnx.helper.make_tensor_value_info(n, input_type, list(s)) for n, s in inputs]
        outs = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in outputs]
        g = onnx.helper.make_graph(self.nodes, "g", ins, outs, self.inits)
        m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", opset)])
        m.ir_version = 8
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        for o in m.graph.output:  # the inferred type and shape onto the declared outputs
            vi = next((v for v in m.graph.value_info if v.name == o.name), None)
            if vi is not None:
                o.CopyFrom(vi)
        return m


def save(tmp: Path, name: str, model: Any) -> Path:
    path = tmp / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def int_layer(
    op_type: str,
    x_shape: Sequence[int],
    *,
    weight: Sequence[int] | None = None,
    bias: int = 0,
    extra: Sequence[str] = (),
    w_kw: dict[str, Any] | None = None,
    **attrs: Any,
) -> Any:
    """input → Q → DQ → ``op_type`` (weights behind a DQ) → Q → DQ → output: one integer
    layer between the float model boundary's two conversions."""
    g = Graph()
    x = g.qdq("x")
    ins = [x]
    if weight is not None:
        ins.append(g.weight(weight, **(w_kw or {})))
        if bias:
            ins.append(g.bias(bias))
    ins += list(extra)
    y = g.op(op_type, ins, **attrs)
    return g.model([("x", x_shape)], [g.qdq(y)])


def conv_qdq(tmp: Path, name: str = "qdq", *, channels: int = 8, size: int = 16) -> Path:
    """A float conv net quantized by onnxruntime's quantize_static (QDQ, per-channel int8
    weights and activations, after quant_pre_process), as artq's ONNX path makes it."""
    from onnxruntime.quantization import (  # noqa: PLC0415 - the fixture only
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    rng = np.random.default_rng(0)
    g = Graph()
    w1 = g.const(rng.normal(size=(channels, 3, 3, 3)).astype(np.float32), "w")
    b1 = g.const(rng.normal(size=channels).astype(np.float32), "b")
    c1 = g.op("Conv", ["x", w1, b1], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    r1 = g.op("Relu", [c1])
    w2 = g.const(rng.normal(size=(channels, 1, 3, 3)).astype(np.float32), "w")
    c2 = g.op("Conv", [r1, w2], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2],
              group=channels)
    p = g.op("GlobalAveragePool", [c2])
    f = g.op("Flatten", [p])
    w3 = g.const(rng.normal(size=(10, channels)).astype(np.float32), "w")
    y = g.op("Gemm", [f, w3], transB=1)
    sm = g.op("Softmax", [y])
    fp32 = g.model([("x", ["N", 3, size, size])], [sm])
    src, pre, out = tmp / f"{name}_fp32.onnx", tmp / f"{name}_pre.onnx", tmp / f"{name}.onnx"
    onnx.save(fp32, str(src))
    # Without onnxruntime's symbolic pass: ONNX's own inference types this small graph (its
    # batch stays named either way), and the pass imports sympy, and torch where installed.
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(
                [{"x": rng.normal(size=(1, 3, size, size)).astype(np.float32)} for _ in range(4)]
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    return out


def conv_classifier(path: Path, *, shape: tuple = (1, 1, 8, 8), classes: int = 4,
                    opset: int = 17, in_type: int | None = None, inputs: int = 1,
                    quantized: bool = False, seed: int = 0, outlier: float = 1.0) -> Path:
    """Conv 3×3 (NCHW) → Relu → GlobalAveragePool → Flatten → Gemm → Softmax.

    ``shape`` may hold strings (named dynamic dimensions); ``quantized`` inserts a
    QuantizeLinear/DequantizeLinear pair after the input, as a QDQ model has; ``outlier``
    scales the first conv filter, so one channel sets the whole tensor's range; ``in_type``
    is the input's element type, None for float."""
    if in_type is None:
        in_type = onnx.TensorProto.FLOAT
    rng = np.random.default_rng(seed)
    c = shape[1] if isinstance(shape[1], int) else 1
    wa = rng.normal(0, 0.5, (8, c, 3, 3)).astype(np.float32)
    wa[0] = np.abs(wa[0]) * outlier
    w = onnx.numpy_helper.from_array(wa, "w")
    b = onnx.numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b")
    fc = onnx.numpy_helper.from_array(rng.normal(0, 0.5, (classes, 8)).astype(np.float32), "fc")
    fb = onnx.numpy_helper.from_array(np.zeros(classes, np.float32), "fb")
    inits = [w, b, fc, fb]
    nodes = []
    x = "x"
    if quantized:
        inits += [onnx.numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                  onnx.numpy_helper.from_array(np.array(0, np.int8), "zp")]
        nodes += [onnx.helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
                  onnx.helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"])]
        x = "xd"
    nodes += [
        onnx.helper.make_node("Conv", [x, "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        onnx.helper.make_node("Relu", ["c"], ["r"]),
        onnx.helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        onnx.helper.make_node("Flatten", ["g"], ["f"]),
        onnx.helper.make_node("Gemm", ["f", "fc", "fb"], ["l"], transB=1),
        onnx.helper.make_node("Softmax", ["l"], ["y"], axis=1),
    ]
    ins = [onnx.helper.make_tensor_value_info("x", in_type, list(shape))]
    if inputs > 1:
        ins.append(onnx.helper.make_tensor_value_info("x2", onnx.TensorProto.FLOAT, list(shape)))
    out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [shape[0], classes])
    graph = onnx.helper.make_graph(nodes, "tiny", ins, [out], inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
