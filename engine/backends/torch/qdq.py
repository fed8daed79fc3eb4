"""The exported QDQ graph made the shape ST's compiler and onnxruntime's quantizer write.

PyTorch exports a weight's fake quantization as a float initializer → QuantizeLinear →
DequantizeLinear, quantized again at every run; onnxruntime's quantizer (and ST's model zoo)
store the int8 weight itself and dequantize it. Folding the constant QuantizeLinear gives
that form: int8 weight initializers (a quarter of the size), the same numbers (ONNX's
QuantizeLinear rounds half to even, as PyTorch's fake quantization does). Needs only the
``onnx`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    if scale.size > 1:  # per channel: scale and zero point along ``axis``
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    info = np.iinfo(zp.dtype)
    q = np.rint(x / scale) + zp.astype(np.int32)
    return np.clip(q, info.min, info.max).astype(zp.dtype)


def fold_weight_quantization(path: str | Path) -> int:
    """Rewrite ``path`` in place with constant QuantizeLinear nodes folded into int8
    initializers; returns how many were folded."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    model = onnx.load(str(path))
    g = model.graph
    inits: dict[str, Any] = {i.name: i for i in g.initializer}
    # Identity of a constant (PyTorch's export shares one zero-point constant this way).
    alias: dict[str, str] = {}
    keep = []
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            alias[n.output[0]] = n.input[0]
        else:
            keep.append(n)
    for n in keep:
        for i, name in enumerate(n.input):
            if name in alias:
                n.input[i] = alias[name]
    for o in g.output:
        if o.name in alias:  # an output fed by a constant: keep its Identity
            keep.append(onnx.helper.make_node("Identity", [alias[o.name]], [o.name]))
    folded, nodes, renamed = 0, [], {}
    for n in keep:
        if n.op_type == "QuantizeLinear" and all(i in inits for i in n.input[:3]) \
                and len(n.input) >= 3:
            x, scale, zp = (numpy_helper.to_array(inits[i]) for i in n.input[:3])
            if x.dtype == np.float32:
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
                name = f"{n.input[0]}_quantized"
                g.initializer.append(numpy_helper.from_array(_quantize(x, scale, zp, axis), name))
                inits[name] = g.initializer[-1]
                renamed[n.output[0]] = name
                folded += 1
                continue
        nodes.append(n)
    for n in nodes:
        for i, name in enumerate(n.input):
            if name in renamed:
                n.input[i] = renamed[name]
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    unused = [i for i in g.initializer if i.name not in used]
    for i in unused:
        g.initializer.remove(i)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return folded
