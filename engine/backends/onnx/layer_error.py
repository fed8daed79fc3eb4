"""Per-tensor error of a QDQ ``int8.onnx`` against its float model, and mixed models with
the worst tensors' producers kept in float (``nodes_to_exclude``).

Every activation the QDQ model quantizes (a QuantizeLinear on a non-constant tensor T) is
measured on the debug items in two modes, as :mod:`engine.layers` reports them:

- *layer*: the QDQ model's own T before its QuantizeLinear against the same T after its
  DequantizeLinear — the rounding and clipping this tensor's 8-bit grid adds, on the input
  the quantized model really gives it;
- *model*: the float model's T against the QDQ model's dequantized T, both fed the same
  item — all the error accumulated up to T.

Ranges (how the float values use the grid) come from the float model's T. Tensors are
compared channels-last, so a per-channel figure reads NCHW's channel axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...cancel import CancelToken
from ...evaluate import quantize
from ...events import Progress, Sink
from ...layers import (
    Diagnosis,
    ErrorAccumulator,
    RangeAccumulator,
    diagnose,
    error_entry,
    rank,
)
from .. import LayerErrors
from .io_types import model_io

MODES = {
    "layer": "each quantized tensor of int8.onnx before its QuantizeLinear against after its "
             "DequantizeLinear: the rounding and clipping its 8-bit grid adds",
    "model": "int8.onnx end to end against the float model, tensors matched by name: the "
             "error accumulated up to each tensor",
}


_OUT_SUFFIX = "_QuantizeLinear_Input"


def _quantized_tensors(model: Any) -> dict[str, dict[str, Any]]:
    """``{T: {"scale", "zero_point", "post", "node", "op"}}`` for every quantized activation.

    ``post`` is the dequantized T in the QDQ model. With integer I/O (quantization.io_type)
    an output's T has no DequantizeLinear: ``post`` is then the int8 graph output and
    ``integer`` says to dequantize it here; the input's T is the float item itself
    (``item``), ``post`` what its DequantizeLinear gives."""
    from onnx import numpy_helper  # noqa: PLC0415

    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    dq_of = {n.input[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    graph_out = {o.name for o in model.graph.output}

    def params(n: Any) -> tuple[float, int, int] | None:
        scale = numpy_helper.to_array(inits[n.input[1]])
        zp = numpy_helper.to_array(inits[n.input[2]]) if len(n.input) > 2 else np.zeros(1)
        if scale.size != 1:
            return None
        # A uint8 edge (io_type uint8) on the int8 grid: the same levels, zero point − 128.
        shift = 128 if zp.dtype == np.uint8 else 0
        return float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]) - shift, int(zp.reshape(-1)[0])

    out: dict[str, dict[str, Any]] = {}
    for n in model.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in inits:
            continue
        integer = n.output[0] not in dq_of
        if integer and n.output[0] not in graph_out:
            continue
        if (p := params(n)) is None:
            continue
        src = producer.get(n.input[0])
        out[n.input[0]] = {"scale": p[0], "zero_point": p[1], "integer": integer, "post_zp": p[2],
                           "post": n.output[0] if integer else dq_of[n.output[0]].output[0],
                           "node": src.name if src is not None else "",
                           "op": src.op_type if src is not None else "Input"}
    for i in model.graph.input:
        if i.name in inits or i.type.tensor_type.elem_type == 1 or i.name not in dq_of:
            continue
        if (p := params(dq_of[i.name])) is not None:
            out[i.name] = {"scale": p[0], "zero_point": p[1], "item": True,
                           "post": dq_of[i.name].output[0], "node": "", "op": "Input"}
    return out


def _session_with_outputs(model: Any, names: list[str]) -> Any:
    """An onnxruntime session on ``model`` that also returns the tensors ``names``."""
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper  # noqa: PLC0415

    from .run import session  # noqa: PLC0415

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                          for n in names if n not in have)
    return session(m.SerializeToString())


def _fused_activations(f_model: Any, tensors: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{T: fn}`` where the float model makes T with a Relu or Clip that the QDQ model folded
    into the quantization's clamp (its T is the producer's output before the activation):
    the layer mode applies it, so it measures rounding, not the activation."""
    from onnx import numpy_helper  # noqa: PLC0415

    inits = {i.name: numpy_helper.to_array(i) for i in f_model.graph.initializer}
    out: dict[str, Any] = {}
    for n in f_model.graph.node:
        t = n.output[0] if n.output else ""
        if t not in tensors or tensors[t]["op"] == n.op_type:
            continue
        if n.op_type == "Relu":
            out[t] = lambda a: np.maximum(a, 0.0)
        elif n.op_type == "Clip":
            bounds = [float(inits[i]) if i in inits else None for i in list(n.input[1:3])]
            lo, hi = (bounds + [None, None])[:2]
            out[t] = lambda a, lo=lo, hi=hi: np.clip(a, lo, hi)
    return out


def _channels_last(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1) if a.ndim == 4 else a


def measure(float_path: Path, int8_path: str, x: np.ndarray, *, stage: str, sink: Sink,
            cancel: CancelToken, done: int, total: int) -> tuple[dict[str, Any], dict[str, Diagnosis],
                                                              dict[str, dict[str, Any]]]:
    """Errors per quantized tensor over the items of ``x`` (the model's layout)."""
    import onnx  # noqa: PLC0415

    q_model = onnx.load(int8_path)
    tensors = _quantized_tensors(q_model)
    f_model = onnx.load(str(float_path))
    f_names = {v for n in f_model.graph.node for v in n.output} | {
        i.name for i in f_model.graph.input}
    # onnxruntime's quantizer renames a graph output's float tensor T to T_QuantizeLinear_Input
    # (T itself is then its DequantizeLinear's output): it is the float model's T.
    f_of = {t: t if t in f_names else t.removesuffix(_OUT_SUFFIX) for t in tensors}
    names = [t for t in tensors if f_of[t] in f_names]
    pre_names = [t for t in names if not tensors[t].get("item")]
    post = [tensors[t]["post"] for t in names]
    fs = _session_with_outputs(f_model, [f_of[t] for t in names])
    qs = _session_with_outputs(q_model, [*pre_names, *post])
    tin = model_io(q_model)[0][0]  # an integer input (io_type) is fed as the runner feeds it
    in_f, in_q = fs.get_inputs()[0].name, qs.get_inputs()[0].name
    layer = {t: ErrorAccumulator(tensors[t]["scale"]) for t in names}
    model = {t: ErrorAccumulator(tensors[t]["scale"]) for t in names}
    ranges = {t: RangeAccumulator(tensors[t]["scale"], tensors[t]["zero_point"]) for t in names}
    fused = _fused_activations(f_model, tensors)
    for i in range(len(x)):
        cancel.check()
        item = np.ascontiguousarray(x[i : i + 1], np.float32)
        fv = dict(zip(names, fs.run([f_of[t] for t in names], {in_f: item}), strict=True))
        qv = qs.run([*pre_names, *post], {in_q: quantize(item, tin)})
        pre = dict(zip(pre_names, qv[: len(pre_names)], strict=True))
        deq = dict(zip(names, qv[len(pre_names):], strict=True))
        for t in names:
            if tensors[t].get("item"):
                pre[t] = item
            if tensors[t].get("integer"):
                deq[t] = (deq[t].astype(np.float32) - tensors[t]["post_zp"]) * np.float32(
                    tensors[t]["scale"])
            a = fused[t](pre[t]) if t in fused else pre[t]
            f, a, b = (_channels_last(np.asarray(v, np.float32)) for v in (fv[t], a, deq[t]))
            layer[t].add(a, b)
            model[t].add(f, b)
            ranges[t].add(f)
        sink(Progress(stage, done + 2 * (i + 1), total))
    diags: dict[str, Diagnosis] = {}
    errors: dict[str, Any] = {}
    for t in names:
        rng, lay = ranges[t].result(), layer[t].result()
        diags[t] = diagnose(lay, rng)
        errors[t] = error_entry(t, tensors[t]["scale"], tensors[t]["zero_point"], lay,
                                model[t].result(), rng, diags[t])
    return errors, diags, tensors


def analyze(float_path: Path, int8_path: str, x: np.ndarray, out_dir: str, sensitivity_k: int,
            requantize: Any, *, stage: str, sink: Sink, cancel: CancelToken, done: int,
            total: int) -> LayerErrors:
    """The per-tensor errors, and for the ``sensitivity_k`` worst suspects a mixed model
    with the tensor's producing node left in float (``requantize(path, exclude)``)."""
    errors, diags, tensors = measure(float_path, int8_path, x, stage=stage, sink=sink,
                                     cancel=cancel, done=done, total=total)
    order = rank(diags)
    candidates: list[dict[str, Any]] = []
    suspects = [t for t in order if diags[t].suspect and tensors[t]["node"]][:sensitivity_k]
    for t in suspects:
        cancel.check()
        node = tensors[t]["node"]
        # float_ops name ops by their output tensors, as the .tflite candidates do.
        cand: dict[str, Any] = {"tensor": t, "kind": diags[t].kind, "float_ops": [t],
                                "op": tensors[t]["op"]}
        path = Path(out_dir) / f"mixed_{len(candidates)}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            requantize(str(path), (node,))
            cand["path"] = str(path)
        except Exception as exc:  # noqa: BLE001 - one candidate failing leaves the others
            cand["error"] = f"the mixed model could not be made: {exc}"
        candidates.append(cand)
    return LayerErrors(errors=errors, ranking=order, candidates=candidates, reproduced=True,
                       debug_samples=len(x), modes=MODES)
