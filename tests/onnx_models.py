"""Tiny ONNX models built with ``onnx.helper`` (no TensorFlow, no PyTorch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_classifier(path: Path, *, shape: tuple = (1, 1, 8, 8), classes: int = 4,
                    opset: int = 17, in_type: int = TensorProto.FLOAT, inputs: int = 1,
                    quantized: bool = False, seed: int = 0, outlier: float = 1.0) -> Path:
    """Conv 3×3 (NCHW) → Relu → GlobalAveragePool → Flatten → Gemm → Softmax.

    ``shape`` may hold strings (named dynamic dimensions); ``quantized`` inserts a
    QuantizeLinear/DequantizeLinear pair after the input, as a QDQ model has; ``outlier``
    scales the first conv filter, so one channel sets the whole tensor's range."""
    rng = np.random.default_rng(seed)
    c = shape[1] if isinstance(shape[1], int) else 1
    wa = rng.normal(0, 0.5, (8, c, 3, 3)).astype(np.float32)
    wa[0] = np.abs(wa[0]) * outlier
    w = numpy_helper.from_array(wa, "w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b")
    fc = numpy_helper.from_array(rng.normal(0, 0.5, (classes, 8)).astype(np.float32), "fc")
    fb = numpy_helper.from_array(np.zeros(classes, np.float32), "fb")
    inits = [w, b, fc, fb]
    nodes = []
    x = "x"
    if quantized:
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "zp")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"])]
        x = "xd"
    nodes += [
        helper.make_node("Conv", [x, "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["l"], transB=1),
        helper.make_node("Softmax", ["l"], ["y"], axis=1),
    ]
    ins = [helper.make_tensor_value_info("x", in_type, list(shape))]
    if inputs > 1:
        ins.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, list(shape)))
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], classes])
    graph = helper.make_graph(nodes, "tiny", ins, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
