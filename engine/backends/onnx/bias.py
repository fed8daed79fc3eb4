"""Sequential bias correction of a QDQ ``int8.onnx``, as :mod:`engine.bias_correction` does
it for a ``.tflite``, with onnxruntime and the same math.

onnxruntime's ``quantize_static`` gives each Conv and Gemm an int32 bias initializer behind
a DequantizeLinear whose scale is input scale × weight scale per output channel, and
quantizes the layer's output T with a QuantizeLinear; a Relu or Clip after the layer is
folded into that quantization's clamp (T then carries the activation's name). Each such
layer is corrected in graph order: the current QDQ model (with T's int8 QuantizeLinear
output exposed as a graph output) and the float model it was quantized from (T exposed)
run on the calibration items; the per-output-channel mean of (dequantized INT8 − float),
over the values inside the clamp on both sides, is folded into the int32 bias; the next
layer is measured on the model so corrected.

Only initializer values change: the node list, the tensors and the NPU placement stay
those of the original.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...bias_correction import (
    MIN_SUPPORT,
    REF_BUDGET,
    Correction,
    LayerFix,
    Run,
    channel_error,
)
from ...cancel import CancelToken
from ...errors import CancelledError
from ...tflite.bias import fold, unclamped_q

#: The nodes whose output is an affine map plus a per-output-channel int32 bias.
LAYER_OPS = ("Conv", "Gemm")
#: Items per onnxruntime call where the model takes a batch (its batch axis made dynamic).
BATCH = 16


@dataclass(frozen=True)
class QdqLayer:
    """One Conv or Gemm of a QDQ model whose int32 bias can be corrected."""

    node: str
    opcode: str
    #: The float model's tensor of the layer's output T: T's own name, or the name of T's
    #: DequantizeLinear output where the quantizer renamed T (a graph output).
    name: str
    #: T's int8 QuantizeLinear output: the layer's output as the QDQ model passes it on.
    output: str
    #: The int32 bias initializer.
    bias: str
    #: Real value of one bias unit per output channel (the bias DequantizeLinear's scale).
    bias_scale: tuple[float, ...]
    out_scale: float
    out_zero_point: int
    #: The float model's activation on T (Relu, Clip) in real units.
    act_range: tuple[float, float]

    @property
    def channels(self) -> int:
        return len(self.bias_scale)

    def unclamped_q(self) -> tuple[int, int]:
        return unclamped_q(self.act_range, self.out_scale, self.out_zero_point)


def reference(work_dir: Path, fp32: Path) -> Path:
    """The float model the QDQ model was quantized from: ``quant_pre_process``'s output in
    the INT8 stage's work folder (its tensors carry the QDQ model's names; Pads folded into
    Convs as there), else ``fp32.onnx``."""
    pre = work_dir / "onnx_int8" / "fp32_preprocessed.onnx"
    return pre if pre.is_file() else fp32


def _arr(init: Any) -> np.ndarray:
    from onnx import numpy_helper  # noqa: PLC0415

    return numpy_helper.to_array(init)


def _act_range(node: Any, inits: dict[str, Any]) -> tuple[float, float] | None:
    """The clamp the float model's producer of T applies; None for one not known."""
    if node is None or node.op_type in LAYER_OPS:
        return (-math.inf, math.inf)
    if node.op_type == "Relu":
        return (0.0, math.inf)
    if node.op_type == "Clip":
        attrs = {a.name: a.f for a in node.attribute}  # opset < 11 keeps them as attributes
        bounds = [float(_arr(inits[i]).reshape(-1)[0]) if i in inits else None
                  for i in list(node.input[1:3])]
        lo, hi = (bounds + [None, None])[:2]
        lo = attrs.get("min", -math.inf) if lo is None else lo
        hi = attrs.get("max", math.inf) if hi is None else hi
        return (lo, hi)
    return None


def qdq_layers(model: Any, float_model: Any) -> tuple[list[QdqLayer], list[tuple[str, str]]]:
    """The correctable layers in graph order, and (name, why) for each Conv, Gemm or
    constant-weight MatMul that cannot be corrected."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    users: dict[str, list[Any]] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            users[i].append(n)
    f_inits = {i.name: i for i in float_model.graph.initializer}
    f_producer = {o: n for n in float_model.graph.node for o in n.output}
    f_names = set(f_producer) | {i.name for i in float_model.graph.input}
    found: list[QdqLayer] = []
    skipped: list[tuple[str, str]] = []
    for n in g.node:
        t = n.output[0] if n.output else n.name
        if n.op_type == "MatMul":
            w = producer.get(n.input[1]) if len(n.input) > 1 else None
            if w is not None and w.op_type == "DequantizeLinear" and w.input[0] in inits:
                skipped.append((t, "MatMul has no int32 bias (its Add's constant is int8)"))
            continue
        if n.op_type not in LAYER_OPS:
            continue
        layer, why = _layer(n, t, inits, producer, users, f_inits, f_producer, f_names)
        if layer is None:
            skipped.append((t, why))
        else:
            found.append(layer)
    return found, skipped


def _layer(n: Any, t: str, inits: dict[str, Any], producer: dict[str, Any],
           users: dict[str, list[Any]], f_inits: dict[str, Any], f_producer: dict[str, Any],
           f_names: set[str]) -> tuple[QdqLayer | None, str]:
    from onnx import TensorProto  # noqa: PLC0415

    if len(n.input) < 3 or not n.input[2]:
        return None, "no bias input"
    dq = producer.get(n.input[2])
    if (dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits
            or inits[dq.input[0]].data_type != TensorProto.INT32):
        return None, "bias is not an int32 initializer behind a DequantizeLinear"
    if len(users[dq.input[0]]) != 1 or len(users[n.input[2]]) != 1:
        return None, "bias shared with another node"
    bias = _arr(inits[dq.input[0]])
    scale = _arr(inits[dq.input[1]]).astype(np.float64).reshape(-1)
    zp = _arr(inits[dq.input[2]]) if len(dq.input) > 2 and dq.input[2] else np.zeros(1)
    channels = bias.size
    if bias.ndim != 1 or scale.size not in (1, channels) or np.any(zp != 0):
        return None, f"bias of shape {bias.shape} with {scale.size} scales"
    q = next((u for u in users[t] if u.op_type == "QuantizeLinear"), None)
    if q is None or q.input[1] not in inits:
        return None, "output not quantized"
    qs = _arr(inits[q.input[1]])
    qz = _arr(inits[q.input[2]]) if len(q.input) > 2 and q.input[2] else np.zeros(1, np.uint8)
    if qs.size != 1 or qz.dtype != np.int8:
        return None, f"output quantized {'per channel' if qs.size != 1 else 'to ' + str(qz.dtype)}"
    if t not in f_names:
        # A graph output: the quantizer renamed T and gave its name to T's DequantizeLinear
        # (or, with an integer io_type, to the QuantizeLinear's output itself).
        post = [u.output[0] for u in users[q.output[0]] if u.op_type == "DequantizeLinear"]
        t = next((name for name in (*post, q.output[0]) if name in f_names), "")
        if not t:
            return None, "no float tensor of that name"
    act = _act_range(f_producer.get(t), f_inits)
    if act is None:
        return None, f"float activation {f_producer[t].op_type}"
    bs = tuple(float(s) for s in (scale if scale.size == channels else np.repeat(scale, channels)))
    return QdqLayer(n.name, n.op_type, t, q.output[0], dq.input[0], bs,
                    float(qs.reshape(-1)[0]), int(qz.reshape(-1)[0]), act), ""


def _channels_last(a: np.ndarray) -> np.ndarray:
    """(N, C, ...) → (N, ..., C): the math reads the last axis as channels."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1)) if a.ndim >= 3 else a


def _graph(model: Any, names: Sequence[str], batched: bool) -> bytes:
    """``model`` serialized with the tensors ``names`` as its outputs (only they), its
    nodes cut after the last that makes one of them (ONNX keeps nodes in topological order:
    none after can change them), and with ``batched`` a dynamic batch axis."""
    import onnx  # noqa: PLC0415

    m = onnx.ModelProto()
    m.CopyFrom(model)
    elem = {v.name: v.type.tensor_type.elem_type
            for v in (*m.graph.value_info, *m.graph.output, *m.graph.input)}
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:  # a QuantizeLinear's output has its zero point's type
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits:
            elem[n.output[0]] = inits[n.input[2]].data_type
    wanted = set(names)
    made = [i for i, n in enumerate(m.graph.node) if wanted & set(n.output)]
    if made:
        del m.graph.node[max(made) + 1 :]
    del m.graph.output[:]
    for name in names:
        m.graph.output.add().CopyFrom(onnx.helper.make_tensor_value_info(
            name, elem.get(name) or onnx.TensorProto.FLOAT, None))
    if batched:
        dim = m.graph.input[0].type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "batch"
        del m.graph.value_info[:]  # shapes inferred for batch 1
    return m.SerializeToString()


def run(model: Any, x: np.ndarray, names: Sequence[str], *, workers: int = 2,
        cancel: CancelToken | None = None) -> Run:
    """The tensors ``names`` (raw: int8 for a QuantizeLinear's output; channels-last) for
    every item of ``x`` (float32, the model's layout; quantized first where the model's
    input is integer): BATCH items per call where the model takes a batch, else one at a
    time."""
    import onnx  # noqa: PLC0415

    from ...evaluate import quantize  # noqa: PLC0415
    from .io_types import model_io  # noqa: PLC0415

    if isinstance(model, bytes | bytearray):
        model = onnx.load_from_string(bytes(model))
    names = list(dict.fromkeys(names))
    # An integer input (quantization.io_type) is fed as the evaluation feeds it.
    x = quantize(x, model_io(model)[0][0])
    got: dict[str, np.ndarray] = {}
    if len(x) > 1:
        try:
            got = _batched(model, x, names, workers, cancel)
        except CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a graph that holds batch 1 (a Reshape to [1, -1])
            got = {}
    if not got:
        got = _items(model, x, names, workers, cancel)
    if cancel is not None:
        cancel.check()
    return Run(got, {})


def _store(got: dict[str, np.ndarray], names: Sequence[str], outs: Sequence[np.ndarray],
           n: int, a: int) -> None:
    for k, o in zip(names, outs, strict=True):
        o = _channels_last(o)
        if k not in got:
            got[k] = np.empty((n, *o.shape[1:]), o.dtype)
        got[k][a : a + len(o)] = o


def _batched(model: Any, x: np.ndarray, names: Sequence[str], workers: int,
             cancel: CancelToken | None) -> dict[str, np.ndarray]:
    from .run import session  # noqa: PLC0415

    sess = session(_graph(model, names, True), threads=max(1, workers))
    inp = sess.get_inputs()[0].name
    got: dict[str, np.ndarray] = {}
    for a in range(0, len(x), BATCH):
        if cancel is not None:
            cancel.check()
        xs = np.ascontiguousarray(x[a : a + BATCH])
        outs = sess.run(names, {inp: xs})
        if any(o.shape[:1] != (len(xs),) for o in outs):
            raise ValueError("the graph does not keep the batch axis")
        _store(got, names, outs, len(x), a)
    return got


def _items(model: Any, x: np.ndarray, names: Sequence[str], workers: int,
           cancel: CancelToken | None) -> dict[str, np.ndarray]:
    from .run import session  # noqa: PLC0415

    sess = session(_graph(model, names, False))
    inp = sess.get_inputs()[0].name
    n = len(x)
    got: dict[str, np.ndarray] = {}
    if n:  # the first item sizes the arrays the threads fill
        _store(got, names, sess.run(names, {inp: np.ascontiguousarray(x[:1])}), n, 0)
    nxt = [1]
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n or (cancel is not None and cancel.cancelled):
                return
            _store(got, names, sess.run(names, {inp: np.ascontiguousarray(x[i : i + 1])}), n, i)

    threads = max(1, min(workers, n))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(work) for _ in range(threads)]:
            f.result()
    return got


def budget_items(fp32: Any, layers: Sequence[QdqLayer], x: np.ndarray) -> int:
    """How many items' float layer outputs REF_BUDGET holds (at least MIN_SUPPORT)."""
    if not layers or not len(x):
        return max(MIN_SUPPORT, len(x))
    one = run(fp32, x[:1], [la.name for la in layers], workers=1).tensors
    per_item = sum(4 * a[0].size for a in one.values())
    return max(MIN_SUPPORT, REF_BUDGET // max(per_item, 1))


def correct(int8: bytes, fp32: bytes, x: np.ndarray, *, sequential: bool = True,
            workers: int = 2, on_layer: Callable[[int, int], None] | None = None,
            cancel: CancelToken | None = None) -> Correction:
    """The QDQ model (serialized) with each correctable layer's bias corrected on ``x``."""
    import onnx  # noqa: PLC0415

    model, fmodel = onnx.load_from_string(int8), onnx.load_from_string(fp32)
    layers, skipped = qdq_layers(model, fmodel)
    x = x[: budget_items(fmodel, layers, x)]
    ref = run(fmodel, x, [la.name for la in layers], workers=workers, cancel=cancel).tensors
    inits = {i.name: i for i in model.graph.initializer}
    out = Correction(b"", skipped=skipped, twins={la.output: la.name for la in layers},
                     items=len(x))
    measured: dict[str, np.ndarray] = {}
    for k, layer in enumerate(layers):
        if sequential:
            measured = run(model, x, [layer.output], workers=workers, cancel=cancel).tensors
        elif not measured:
            measured = run(model, x, [la.output for la in layers], workers=workers,
                           cancel=cancel).tensors
        err = channel_error(measured[layer.output], ref[layer.name], layer)
        old = _arr(inits[layer.bias]).astype(np.int64)
        new, saturated, left = fold(old, err, np.asarray(layer.bias_scale))
        _write(inits[layer.bias], new)
        shift = float(np.nanmean(np.abs(err))) / layer.out_scale if np.isfinite(err).any() else 0.0
        out.fixes.append(LayerFix(layer, int(np.sum(new != old)), saturated, left, shift))
        if on_layer is not None:
            on_layer(k + 1, len(layers))
    out.content = model.SerializeToString()
    return out


def _write(init: Any, values: np.ndarray) -> None:
    """The int32 initializer ``init`` given ``values`` in place (same name, type, shape)."""
    from onnx import numpy_helper  # noqa: PLC0415

    old = _arr(init)
    init.CopyFrom(numpy_helper.from_array(values.astype(np.int32).reshape(old.shape), init.name))


def _biases(model: Any) -> dict[str, tuple[Any, np.ndarray, np.ndarray]]:
    """Every int32 initializer behind a DequantizeLinear: name → (initializer, values, scale)."""
    from onnx import TensorProto  # noqa: PLC0415

    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if (n.op_type == "DequantizeLinear" and n.input[0] in inits
                and inits[n.input[0]].data_type == TensorProto.INT32 and n.input[1] in inits):
            out[n.input[0]] = (inits[n.input[0]], _arr(inits[n.input[0]]),
                               _arr(inits[n.input[1]]))
    return out


def carry(original: bytes, corrected: bytes, target: bytes) -> tuple[bytes, int]:
    """``target`` (a QDQ model made from the same ranges, e.g. a mixed model with one node
    left in float) with the correction applied: each int32 bias the correction changed that
    ``target`` holds unchanged (same name, values and scale as ``original``) takes its
    corrected values. Returns the model and the number of biases carried over."""
    import onnx  # noqa: PLC0415

    before = _biases(onnx.load_from_string(original))
    after = _biases(onnx.load_from_string(corrected))
    model = onnx.load_from_string(target)
    carried = 0
    for name, (init, values, scale) in _biases(model).items():
        if name not in before or name not in after:
            continue
        _, old, old_scale = before[name]
        new = after[name][1]
        if (np.array_equal(old, new) or not np.array_equal(values, old)
                or scale.shape != old_scale.shape or not np.allclose(scale, old_scale, rtol=1e-6)):
            continue
        _write(init, new.astype(np.int64))
        carried += 1
    return model.SerializeToString(), carried
