"""``quantization.io_type`` for a QDQ ``int8.onnx``: integer input and outputs, as TFLite's
converter makes them, and the scales a runner needs to feed and read such a model.

onnxruntime's quantizer keeps the float model's I/O: the input goes through a
QuantizeLinear first and each output leaves through a DequantizeLinear. With ``"int8"`` the
input's QuantizeLinear is dropped (the graph input *is* the int8 tensor it made) and so are
the outputs' DequantizeLinear (each graph output is the int8 tensor it read); names and
shapes stay, the element type changes. ``"float32"`` keeps the model as the quantizer wrote
it.

``"uint8"`` keeps the activations signed int8 inside (the NPU's "ss/sa" scheme; onnxruntime's
QUInt8 activations everywhere would be what artq's NPU analysis flags) and converts at the
edges, as TFLite's converter does with its uint8→int8 and int8→uint8 QUANTIZE ops: a
uint8 input goes through DequantizeLinear with the same scale and the zero point + 128,
then the int8 QuantizeLinear already there; each int8 output goes through its
DequantizeLinear and a uint8 QuantizeLinear with the zero point + 128. Both pairs are exact
(an integer shift by 128), and the NPU analysis reads each pair as one integer
requantization, like the TFLite model's QUANTIZE.

Between the input and its QuantizeLinear an exporter may put layout operators (a Reshape,
a Transpose): the input is then dequantized into them and their QuantizeLinear stays, one
integer layer as the quantizer writes a quantized Reshape. An input that reaches anything
besides one per-tensor int8 QuantizeLinear that way, or an output not made by a
per-tensor int8 DequantizeLinear, stays float32: what the rewrite did is returned
and recorded in the report, and the runner reads each tensor's type from the model.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ...errors import EvaluationError
from ...evaluate import TensorIO

Q, DQ = "QuantizeLinear", "DequantizeLinear"
#: io_type → onnx's TensorProto element type (INT8, UINT8); float32 needs no rewrite.
_TYPES = {"int8": 3, "uint8": 2}


def set_io_type(model: Any, io_type: str) -> dict[str, Any]:
    """Rewrite ``model`` (a QDQ ModelProto, in place) for ``io_type``. Returns
    ``{"input": {name: dtype}, "outputs": {name: dtype}}``: each graph I/O's type after."""
    g = model.graph
    if io_type in _TYPES:
        inits = {i.name: i for i in g.initializer}
        for inp in [i for i in g.input if i.name not in inits]:
            _integer_input(g, inits, inp, io_type)
        for out in g.output:
            _integer_output(g, inits, out, io_type)
    return describe(model)


def describe(model: Any) -> dict[str, Any]:
    from onnx import helper  # noqa: PLC0415

    g = model.graph
    inits = {i.name for i in g.initializer}

    def dt(v: Any) -> str:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)))

    return {"input": {i.name: dt(i) for i in g.input if i.name not in inits},
            "outputs": {o.name: dt(o) for o in g.output}}


def record(io_type: str, io: dict[str, Any]) -> dict[str, Any]:
    """report.json ``stages.int8.quantization``'s I/O keys for what :func:`set_io_type` did."""
    if io_type == "float32":
        words = "float32 (QuantizeLinear/DequantizeLinear at the model's edges)"
    else:
        words = ("int8, the QuantizeLinear/DequantizeLinear at the model's edges removed"
                 if io_type == "int8" else
                 "uint8, converted to and from the int8 activations at the model's edges")
        kept = [n for n, t in (*io["input"].items(), *io["outputs"].items()) if t != io_type]
        if kept:
            words += (f"; left float32: {', '.join(kept)} (not behind one per-tensor int8 "
                      "QuantizeLinear/DequantizeLinear)")
    return {"io_type": io_type, "io": words,
            "input_dtype": next(iter(io["input"].values()), None),
            "output_dtypes": dict(io["outputs"])}


def apply_to_file(path: str, io_type: str) -> dict[str, Any]:
    """:func:`set_io_type` on a saved model (rewritten in place unless float32)."""
    import onnx  # noqa: PLC0415

    model = onnx.load(path)
    io = set_io_type(model, io_type)
    if io_type != "float32":
        onnx.save(model, path)
    return io


def _maps(g: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    producer = {o: n for n in g.node for o in n.output if o}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            if i:
                consumers[i].append(n)
    return producer, consumers


def _int8_params(node: Any, inits: dict[str, Any]) -> tuple[str, Any] | None:
    """(scale name, zero point initializer) of a per-tensor int8 Q or DQ, else None."""
    from onnx import numpy_helper  # noqa: PLC0415

    if len(node.input) < 3 or node.input[1] not in inits or node.input[2] not in inits:
        return None
    zp = inits[node.input[2]]
    if numpy_helper.to_array(inits[node.input[1]]).size != 1 or zp.data_type != 3:
        return None
    return node.input[1], zp


def _uint8_zero_point(g: Any, zp: Any, name: str) -> str:
    """A uint8 zero point initializer: the int8 one + 128 (same grid, shifted type)."""
    from onnx import numpy_helper  # noqa: PLC0415

    v = numpy_helper.to_array(zp).astype(np.int16) + 128
    g.initializer.append(numpy_helper.from_array(v.astype(np.uint8), name))
    return name


def _rename(g: Any, old: str, new: str) -> None:
    for n in g.node:
        for k, i in enumerate(n.input):
            if i == old:
                n.input[k] = new
        for k, o in enumerate(n.output):
            if o == old:
                n.output[k] = new


def _drop_value_info(g: Any, names: set[str]) -> None:
    keep = [v for v in g.value_info if v.name not in names]
    del g.value_info[:]
    g.value_info.extend(keep)


#: Operators that move values without changing them: Q(op(x)) == op(Q(x)). An exporter
#: often puts one between the input and its QuantizeLinear (tf2onnx's NCHW → NHWC Reshape).
_LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity"})


def _integer_input(g: Any, inits: dict[str, Any], inp: Any, io_type: str) -> None:
    from onnx import helper  # noqa: PLC0415

    producer, consumers = _maps(g)
    graph_out = {o.name for o in g.output}
    # The input's one reader, through layout operators that each have one reader, to a Q.
    chain, t = [], inp.name
    while len(consumers[t]) == 1 and consumers[t][0].op_type in _LAYOUT_OPS and t not in graph_out:
        chain.append(consumers[t][0])
        t = chain[-1].output[0]
    users = consumers[t]
    if len(users) != 1 or users[0].op_type != Q or t in graph_out:
        return
    q = users[0]
    params = _int8_params(q, inits)
    if params is None or q.output[0] in graph_out:
        return
    scale, zp = params
    z = _uint8_zero_point(g, zp, f"{inp.name}_uint8_zero_point") if io_type == "uint8" else ""
    f = f"{inp.name}_dequantized"
    if not chain and io_type == "int8":
        # The graph input takes the place of the int8 tensor the Q made.
        qout = q.output[0]
        g.node.remove(q)
        _rename(g, qout, inp.name)
        _drop_value_info(g, {qout})
    elif not chain:
        g.node.insert(0, helper.make_node(DQ, [inp.name, scale, z], [f],
                                          name=f"{inp.name}_uint8_DequantizeLinear"))
        q.input[0] = f
    else:
        # The layout operators read the dequantized input and their Q stays: DQ → layout → Q
        # is one integer layer, as the quantizer writes it when it quantizes such an op.
        new = []
        src = inp.name
        if io_type == "uint8":  # uint8 → int8 first, one requantization (a DQ → Q pair)
            new += [helper.make_node(DQ, [src, scale, z], [f"{f}_uint8"],
                                     name=f"{inp.name}_uint8_DequantizeLinear"),
                    helper.make_node(Q, [f"{f}_uint8", scale, q.input[2]], [f"{f}_int8"],
                                     name=f"{inp.name}_int8_QuantizeLinear")]
            src = f"{f}_int8"
        new.append(helper.make_node(DQ, [src, scale, q.input[2]], [f],
                                    name=f"{inp.name}_DequantizeLinear"))
        for k, n in enumerate(new):
            g.node.insert(k, n)
        chain[0].input[list(chain[0].input).index(inp.name)] = f
    inp.type.tensor_type.elem_type = _TYPES[io_type]


def _integer_output(g: Any, inits: dict[str, Any], out: Any, io_type: str) -> None:
    from onnx import helper  # noqa: PLC0415

    producer, consumers = _maps(g)
    dq = producer.get(out.name)
    if dq is None or dq.op_type != DQ or dq.input[0] in inits:
        return
    params = _int8_params(dq, inits)
    if params is None or any(o.name == dq.input[0] for o in g.output):
        return
    scale, zp = params
    f = f"{out.name}_dequantized"
    _rename(g, out.name, f)  # the DQ's float output (and any layer that reads it)
    _drop_value_info(g, {out.name, f})
    if io_type == "int8":
        qout = dq.input[0]
        _rename(g, qout, out.name)  # the graph output is the int8 tensor the DQ read
        _drop_value_info(g, {qout})
        if not consumers[out.name]:  # no layer reads the float output: the DQ goes
            g.node.remove(dq)
    else:
        z = _uint8_zero_point(g, zp, f"{out.name}_uint8_zero_point")
        at = list(g.node).index(dq) + 1
        g.node.insert(at, helper.make_node(Q, [f, scale, z], [out.name],
                                           name=f"{out.name}_uint8_QuantizeLinear"))
    out.type.tensor_type.elem_type = _TYPES[io_type]


def model_io(model: Any) -> tuple[list[TensorIO], list[TensorIO]]:
    """The graph's input and outputs with their type and, for an integer one, the scale and
    zero point of the DequantizeLinear that reads it (input) or the QuantizeLinear that
    makes it (output): what a runner quantizes the float data with and dequantizes by."""
    from onnx import helper, numpy_helper  # noqa: PLC0415

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer, consumers = _maps(g)

    def tensor(k: int, v: Any, node: Any | None) -> TensorIO:
        t = v.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in t.shape.dim)
        if dtype.kind not in "iu":
            return TensorIO(k, v.name, shape, dtype, 0.0, 0)
        if node is None or len(node.input) < 2 or node.input[1] not in inits:
            raise EvaluationError(f"the model's {dtype} tensor '{v.name}' has no "
                                  "QuantizeLinear or DequantizeLinear to give its scale",
                                  'quantize with quantization.io_type = "float32"')
        scale = numpy_helper.to_array(inits[node.input[1]]).reshape(-1)
        zp = (numpy_helper.to_array(inits[node.input[2]]).reshape(-1)
              if len(node.input) > 2 and node.input[2] in inits else np.zeros(1, np.int64))
        return TensorIO(k, v.name, shape, dtype, float(scale[0]), int(zp[0]))

    ins = [tensor(k, v, next((n for n in consumers[v.name] if n.op_type == DQ), None))
           for k, v in enumerate(i for i in g.input if i.name not in inits)]
    outs = [tensor(k, v, p if (p := producer.get(v.name)) is not None and p.op_type == Q
                   else None) for k, v in enumerate(g.output)]
    return ins, outs
