"""An FP32 ``.onnx`` read and checked with the ``onnx`` package alone (no onnxruntime, no
TensorFlow), so preflight refuses what the ONNX backend cannot take before any work starts.

Refused, each with one line naming the file and what to do: an opset older than 13 (the
QDQ quantizer's per-channel QuantizeLinear needs 13), several inputs, a non-float32 input,
an already-quantized model given as the float one, and unknown dimensions besides the batch
without ``model.input_shape``. A dynamic batch is taken as 1, as ST's compiler takes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputFileError, ModelError

MIN_OPSET = 13
#: Operators that only a quantized graph holds.
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger",
    "MatMulInteger", "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul",
    "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "QLinearGlobalAveragePool",
    "QLinearConcat", "QLinearSoftmax", "QGemm",
})


@dataclass(frozen=True)
class OnnxIO:
    name: str
    #: With the batch axis; None where the file leaves a dimension unknown.
    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class OnnxInfo:
    path: str
    opset: int
    inputs: tuple[OnnxIO, ...]
    outputs: tuple[OnnxIO, ...]
    ops: tuple[str, ...]
    params: int


def _dtype(elem: int) -> str:
    from onnx import helper  # noqa: PLC0415

    try:
        return str(helper.tensor_dtype_to_np_dtype(elem))
    except (KeyError, ValueError):
        return f"type {elem}"


def _io(value: Any) -> OnnxIO:
    t = value.type.tensor_type
    dims = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in t.shape.dim)
    return OnnxIO(value.name, dims, _dtype(t.elem_type))


def load_proto(path: str | Path) -> Any:
    """The ModelProto, weights included; one line when the file is not an ONNX model."""
    import onnx  # noqa: PLC0415 - only ONNX models need it

    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise InputFileError(str(path), f"cannot be read as an ONNX model ({type(exc).__name__})",
                             "export the model again (torch.onnx.export), or check the path") \
            from None


def describe(proto: Any, path: str) -> OnnxInfo:
    g = proto.graph
    inits = {i.name for i in g.initializer}
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    params = 0
    for i in g.initializer:
        n = 1
        for d in i.dims:
            n *= int(d)
        params += n
    return OnnxInfo(path, int(opset), tuple(_io(v) for v in g.input if v.name not in inits),
                    tuple(_io(v) for v in g.output), tuple(n.op_type for n in g.node), params)


def check(info: OnnxInfo) -> None:
    """The refusals of a float ``.onnx``, each one line naming the file."""
    p = info.path
    if info.opset < MIN_OPSET:
        raise ModelError(
            f"{p}: the model uses ONNX opset {info.opset}; artq quantizes opset {MIN_OPSET} or newer",
            f"export it again with opset_version >= {MIN_OPSET} (torch.onnx.export(..., "
            "opset_version=17)), or convert it with onnx.version_converter")
    quantized = sorted(set(info.ops) & QUANTIZED_OPS)
    if quantized:
        raise ModelError(
            f"{p}: the model is already quantized ({', '.join(quantized)} nodes); artq "
            "quantizes from the float model",
            "give the FP32 .onnx it was made from; to see where a QDQ model runs on the NPU "
            "use `artq inspect`")
    if len(info.inputs) != 1:
        raise ModelError(
            f"{p}: the model has {len(info.inputs)} inputs "
            f"({', '.join(i.name for i in info.inputs)}); artq handles single-input models",
            "export a model with one input")
    if info.inputs[0].dtype != "float32":
        raise ModelError(
            f"{p}: the model input {info.inputs[0].name!r} is {info.inputs[0].dtype}; artq "
            "feeds float32 inputs",
            "export the model with a float32 input (cast inside the model if it needs another type)")


def static_shape(info: OnnxInfo, override: Sequence[int] | None) -> tuple[int, ...]:
    """The input shape without the batch axis, unknown dimensions from ``model.input_shape``."""
    from ...modelfile import static_input_shape  # noqa: PLC0415

    inp = info.inputs[0]
    dims = inp.shape[1:]
    if not override and any(d is None for d in dims):
        unknown = [i + 1 for i, d in enumerate(dims) if d is None]
        raise ModelError(
            f"{info.path}: the model input {_show(inp.shape)} has unknown "
            f"dimensions besides the batch (axis {', '.join(map(str, unknown))})",
            f"set model.input_shape to its {len(dims)} sizes without the batch, in the model's "
            f"order (e.g. [{', '.join(str(d or '?') for d in dims)}])")
    return static_input_shape(inp.shape, override, "ONNX input", info.path)


def _show(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def inspect_onnx(path: str | Path) -> Any:
    """The :class:`engine.modelfile.ModelFile` of a float ``.onnx``, checked."""
    from ...modelfile import ModelFile  # noqa: PLC0415

    info = describe(load_proto(path), str(path))
    check(info)
    return ModelFile(str(path), "onnx", info.ops, (info.inputs[0].shape,),
                     tuple(o.shape for o in info.outputs))


def with_static_input(proto: Any, shape: Sequence[int]) -> Any:
    """The model with its input fixed to ``(1, *shape)`` and shapes inferred again, so every
    stage and the NPU analysis see static shapes; every node named."""
    import onnx  # noqa: PLC0415

    inits = {i.name for i in proto.graph.initializer}
    inp = next(v for v in proto.graph.input if v.name not in inits)
    dims = inp.type.tensor_type.shape.dim
    for d, v in zip(dims, (1, *shape), strict=True):
        d.Clear()
        d.dim_value = int(v)
    for out in proto.graph.output:
        od = out.type.tensor_type.shape.dim
        if od and not od[0].HasField("dim_value"):
            od[0].Clear()
            od[0].dim_value = 1
    # Nodes are excluded from quantization by name (the mixed models): name the nameless.
    taken = {n.name for n in proto.graph.node}
    for i, n in enumerate(proto.graph.node):
        if not n.name:
            name, k = f"{n.op_type}_{i}", 0
            while name in taken:
                k += 1
                name = f"{n.op_type}_{i}_{k}"
            n.name = name
            taken.add(name)
    del proto.graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is a help, never a reason to refuse
        return proto


def summarize(path: Path, out: dict[str, Any]) -> None:
    """Fill :func:`engine.modelfile.model_summary`'s dict for an ``.onnx`` (the TUI's model
    summary); a file it cannot read or would refuse says why in ``error``."""
    out["format"] = "onnx"
    try:
        info = describe(load_proto(path), str(path))
    except InputFileError as exc:
        out["error"] = exc.message
        return
    counts: dict[str, int] = {}
    for op in info.ops:
        counts[op] = counts.get(op, 0) + 1
    out.update(layers=len(info.ops), layer_counts=counts, params=info.params,
               inputs=[{"name": i.name, "shape": list(i.shape), "dtype": i.dtype}
                       for i in info.inputs],
               outputs=[{"name": o.name, "shape": list(o.shape)} for o in info.outputs])
    try:
        check(info)
    except ModelError as exc:
        out["error"] = exc.message
