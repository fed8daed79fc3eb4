"""The exported QDQ graph made the shape ST's compiler and onnxruntime's quantizer write:
int8 weights, int32 biases, and Conv → QuantizeLinear with no float op between.

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


def _absorb_relus(g: Any, inits: dict[str, Any]) -> int:
    """Remove a Relu between a Conv/Gemm and QuantizeLinear whose range starts at 0 (zero
    point at the type's minimum): the quantizer's clamp already zeroes what Relu would, and
    onnxruntime's quantizer (and ST's compiler) want Conv → QuantizeLinear directly."""
    from onnx import numpy_helper  # noqa: PLC0415

    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    drop = []
    for n in g.node:
        if n.op_type != "Relu" or n.output[0] in outputs:
            continue
        src = producer.get(n.input[0])
        users = consumers.get(n.output[0], [])
        if src is None or src.op_type not in ("Conv", "Gemm") or \
                len(consumers.get(n.input[0], [])) != 1 or not users:
            continue
        zps = [numpy_helper.to_array(inits[u.input[2]]) if len(u.input) > 2 and u.input[2] in
               inits else None for u in users]
        if not all(u.op_type == "QuantizeLinear" for u in users) or any(
                z is None or not np.all(z == np.iinfo(z.dtype).min) for z in zps):
            continue
        for u in users:
            u.input[0] = n.input[0]
        drop.append(n)
    for n in drop:
        g.node.remove(n)
    return len(drop)


def _quantize_biases(g: Any, inits: dict[str, Any]) -> int:
    """Conv/Gemm biases as int32 at scale input_scale × weight_scale (zero point 0), as
    onnxruntime's quantizer writes them, so the whole layer is integer."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    producer = {o: n for n in g.node for o in n.output}
    done, nodes = 0, []
    for n in list(g.node):
        nodes.append(n)
        if n.op_type not in ("Conv", "Gemm") or len(n.input) < 3 or n.input[2] not in inits:
            continue
        dq_x, dq_w = producer.get(n.input[0]), producer.get(n.input[1])
        if dq_x is None or dq_w is None or dq_x.op_type != "DequantizeLinear" or \
                dq_w.op_type != "DequantizeLinear" or dq_x.input[1] not in inits or \
                dq_w.input[1] not in inits:
            continue
        bias = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64)
        s_x = float(numpy_helper.to_array(inits[dq_x.input[1]]).reshape(-1)[0])
        s_w = numpy_helper.to_array(inits[dq_w.input[1]]).astype(np.float64).reshape(-1)
        scale = (s_x * s_w * np.ones_like(bias)).astype(np.float32)
        q = np.clip(np.rint(bias / scale), -(2**31), 2**31 - 1).astype(np.int32)
        base = n.input[2]
        names = (f"{base}_quantized", f"{base}_quantized_scale", f"{base}_quantized_zero_point")
        for name, arr in zip(names, (q, scale, np.zeros_like(q)), strict=True):
            g.initializer.append(numpy_helper.from_array(arr, name))
            inits[name] = g.initializer[-1]
        out = f"{base}_dequantized"
        nodes.insert(len(nodes) - 1, onnx.helper.make_node(
            "DequantizeLinear", list(names), [out], axis=0, name=f"{base}_DequantizeLinear"))
        n.input[2] = out
        done += 1
    del g.node[:]
    g.node.extend(nodes)
    return done


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
    _absorb_relus(g, inits)
    _quantize_biases(g, inits)
    used = {i for n in g.node for i in n.input}
    unused = [i for i in g.initializer if i.name not in used]
    for i in unused:
        g.initializer.remove(i)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return folded
