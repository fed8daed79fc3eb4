"""Sequential bias correction of an INT8 ``.tflite``: LiteRT and numpy, no TensorFlow.

TFLite's converter rounds every weight to nearest with min/max ranges. On depthwise-heavy
networks the rounding errors of a channel do not average out: they shift the channel's
mean, and the shift grows layer after layer. Each conv, depthwise and fully-connected layer
is corrected in graph order: the current INT8 model and the float model (the FP32
``.tflite`` of the same conversion, whose tensors carry the same names, or failing that sit
at the same places) run on the calibration items with every intermediate tensor kept; the
per-output-channel mean of
(dequantized INT8 − float) is folded into the layer's int32 bias; the next layer is then
measured on the model so corrected. Measuring all layers once and correcting them together
(``sequential=False``, kept for the comparison) corrects each layer also for the error its
predecessors add and are corrected for themselves, so downstream layers are over-corrected.

Only bias values change (:mod:`engine.tflite.bias`), in place: the operators, tensors and
NPU placement stay those of the original.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .cancel import CancelToken
from .evaluate import dequantize, quantize, signature_io
from .metrics import sqnr_db
from .tflite.bias import BIAS_OPS, BiasLayer, bias_layers, fold, read_bias, truncated, write_bias
from .tflite.model import Model
from .tflite.reader import read_model_bytes

#: A channel's mean error is taken from at least this many unclamped values, else left.
MIN_SUPPORT = 8
#: The float model's layer outputs are kept for every fitting item: at most this many bytes
#: (items beyond it are not used to fit).
REF_BUDGET = 1 << 30


class Layer(Protocol):
    """What the math needs of a layer, whatever its file: a ``.tflite``'s
    :class:`~engine.tflite.bias.BiasLayer` or a QDQ ``.onnx``'s layer
    (:mod:`engine.backends.onnx.bias`). Its output tensors are channels-last."""

    name: str
    opcode: str
    out_scale: float
    out_zero_point: int
    act_range: tuple[float, float]

    @property
    def channels(self) -> int: ...

    @property
    def output(self) -> Any: ...

    def unclamped_q(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class LayerFix:
    """What the correction did to one layer."""

    layer: Layer
    #: Channels whose bias changed, hit the int32 limits, or were left (zero scale, no
    #: unclamped value to measure).
    changed: int
    saturated: int
    left: int
    #: Mean |error| removed, in the output's int8 steps (LSB).
    shift_lsb: float


@dataclass
class Correction:
    """The corrected model (the whole file) and what changed, layer by layer."""

    content: bytes
    fixes: list[LayerFix] = field(default_factory=list)
    #: (tensor name, why) of conv/depthwise/FC layers that could not be corrected.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: Each corrected layer's output tensor → its float twin's, in the float model.
    twins: dict[Any, Any] = field(default_factory=dict)
    #: Items the correction was fitted on (fewer than given when REF_BUDGET caps them).
    items: int = 0


def _interpreter(content: bytes):  # noqa: ANN202
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: PLC0415

    from .evaluate import quiet_stderr  # noqa: PLC0415

    with warnings.catch_warnings(), quiet_stderr():
        # LiteRT warns that keeping every tensor costs memory: keeping them is the point.
        warnings.simplefilter("ignore")
        # No XNNPACK: a delegate runs ops whole and their intermediate tensors go with them.
        it = Interpreter(model_content=content, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
    return it


@dataclass
class Run:
    """Some tensors of a model (raw values, by index in a ``.tflite``, by name in an
    ``.onnx``) and its outputs (dequantized, in signature order, by signature name) over a
    set of items."""

    tensors: dict[Any, np.ndarray]
    outputs: dict[str, np.ndarray]


def run(content: bytes, x: np.ndarray, tensors: Sequence[int], *, workers: int = 2,
        cancel: CancelToken | None = None, outputs: bool = True) -> Run:
    """Every item of ``x`` (float32, model-ready; or already of the input's integer type)
    through the model, one at a time; ``outputs=False`` leaves the graph outputs unread
    (a truncated model)."""
    n = len(x)
    workers = max(1, min(workers, n))
    its = [_interpreter(content) for _ in range(workers)]
    tin = signature_io(its[0])[0][0]
    touts = signature_io(its[0])[1] if outputs else []
    xq = x if x.dtype == tin.dtype else quantize(x, tin)
    details = {d["index"]: d for d in its[0].get_tensor_details()}
    got = {i: np.empty((n, *details[i]["shape"][1:]), details[i]["dtype"]) for i in tensors}
    outs = [np.empty((n, *t.shape[1:]), t.dtype) for t in touts]
    nxt = [0]
    lock = threading.Lock()

    def work(w: int) -> None:
        it = its[w]
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n or (cancel is not None and cancel.cancelled):
                return
            it.set_tensor(tin.index, xq[i : i + 1])
            it.reset_all_variables()  # an LSTM's state: from zero for each item
            it.invoke()
            for k, a in got.items():
                a[i] = it.get_tensor(k)[0]
            for t, a in zip(touts, outs, strict=True):
                a[i] = it.get_tensor(t.index)[0]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for f in [pool.submit(work, w) for w in range(workers)]:
            f.result()
    if cancel is not None:
        cancel.check()
    return Run(got, {t.name: dequantize(a, t) for t, a in zip(touts, outs, strict=True)})


def budget_items(model: Model, layers: Sequence[BiasLayer]) -> int:
    """How many items' float layer outputs REF_BUDGET holds (at least MIN_SUPPORT)."""
    per_item = sum(4 * math.prod(max(d, 1) for d in model.main.tensors[la.output].shape[1:])
                   for la in layers)
    return max(MIN_SUPPORT, REF_BUDGET // max(per_item, 1))


def float_twins(int8: Model, fp32: Model, layers: Sequence[BiasLayer]) -> dict[int, int]:
    """Each layer's output tensor in the float model: by name (the converter keeps the
    float graph's names), else by position when both models have the same conv, depthwise
    and FC layers in the same order with the same output shapes (a model converted through
    another exporter, whose names differ). Layers without a twin are left out."""
    by_name = {t.name: t.index for t in fp32.main.tensors}
    shape = {t.index: t.shape for t in fp32.main.tensors}

    def convs(m: Model) -> list[tuple[str, tuple[int, ...], int]]:
        sg = m.main
        return [(o.opcode, sg.tensors[o.outputs[0]].shape, o.outputs[0])
                for o in sg.operators if o.opcode in BIAS_OPS and o.outputs]

    a, b = convs(int8), convs(fp32)
    by_position = ({x[2]: y[2] for x, y in zip(a, b, strict=True)}
                   if [x[:2] for x in a] == [y[:2] for y in b] else {})
    twins: dict[int, int] = {}
    for la in layers:
        own = int8.main.tensors[la.output].shape
        if la.name in by_name and shape[by_name[la.name]] == own:
            twins[la.output] = by_name[la.name]
        elif la.output in by_position:
            twins[la.output] = by_position[la.output]
    return twins


def dequantized(q: np.ndarray, layer: Layer) -> np.ndarray:
    return (q.astype(np.float32) - np.float32(layer.out_zero_point)) * np.float32(layer.out_scale)


def channel_error(q: np.ndarray, ref: np.ndarray, layer: Layer) -> np.ndarray:
    """Per-output-channel mean of dequantized INT8 − float, NaN where unmeasurable.

    The tensors are the layer's output *after* its fused activation: the value before it
    exists in neither model. Where either side is clamped (a ReLU's 0, a ReLU6's 6, the
    int8 limits) the clamp hides the error, so only values strictly inside the clamp on
    both sides count; there the fused output equals the pre-activation value, so the mean
    is the bias error itself. (Choosing the values by the INT8 side leans slightly towards
    positive error next to a ReLU's 0; the rest of the channel outweighs it.)
    """
    c = layer.channels
    qlo, qhi = layer.unclamped_q()
    lo, hi = layer.act_range
    q2 = q.reshape(-1, c)
    r2 = ref.reshape(-1, c)
    m = (q2 > qlo) & (q2 < qhi) & (r2 > lo) & (r2 < hi)
    d = dequantized(q2, layer)
    d -= r2
    d *= m
    e = d.sum(axis=0, dtype=np.float64)
    n = m.sum(axis=0)
    return np.where(n >= MIN_SUPPORT, e / np.maximum(n, 1), np.nan)


def correct(int8: bytes, fp32: bytes, x: np.ndarray, *, sequential: bool = True,
            workers: int = 2, on_layer: Callable[[int, int], None] | None = None,
            cancel: CancelToken | None = None) -> Correction:
    """The INT8 model with each correctable layer's bias corrected on the items ``x``."""
    model = read_model_bytes(int8, "<int8 model>")
    layers, skipped = bias_layers(model)
    twins = float_twins(model, read_model_bytes(fp32, "<fp32 model>"), layers)
    usable = []
    for layer in layers:
        if layer.output in twins:
            usable.append(layer)
        else:
            skipped.append((layer.name, "no float tensor of that name or place"))
    x = x[: budget_items(model, usable)]
    ref = run(fp32, x, [twins[la.output] for la in usable], workers=workers,
              cancel=cancel).tensors
    data = bytearray(int8)
    # The input quantized once for every run of the INT8 model.
    tin = signature_io(_interpreter(int8))[0][0]
    xq = quantize(x, tin)
    out = Correction(b"", skipped=skipped, twins=twins, items=len(x))
    measured: dict[int, np.ndarray] = {}
    for k, layer in enumerate(usable):
        if sequential:
            # Only the ops up to this layer: the rest cannot change its output.
            measured = run(truncated(bytes(data), layer.op_index + 1), xq, [layer.output],
                           workers=workers, cancel=cancel, outputs=False).tensors
        elif not measured:
            measured = run(bytes(data), xq, [la.output for la in usable], workers=workers,
                           cancel=cancel).tensors
        err = channel_error(measured[layer.output], ref[twins[layer.output]], layer)
        old = read_bias(data, layer)
        new, saturated, left = fold(old, err, np.asarray(layer.bias_scale))
        write_bias(data, layer, new)
        shift = float(np.nanmean(np.abs(err))) / layer.out_scale if np.isfinite(err).any() else 0.0
        out.fixes.append(LayerFix(layer, int(np.sum(new != old)), saturated, left, shift))
        if on_layer is not None:
            on_layer(k + 1, len(usable))
    out.content = bytes(data)
    return out


def signal(ref: np.ndarray) -> tuple[float, float]:
    """The reference's variation Σ(ref − mean_c(ref))², each channel (last axis) about its
    own mean, and its power Σref²: what :func:`sqnr` divides by (engine.metrics)."""
    ref = np.asarray(ref, np.float64)
    mean = ref.mean(axis=tuple(range(ref.ndim - 1)), keepdims=True) if ref.ndim > 1 else ref.mean()
    d = ref - mean
    return float(np.vdot(d, d)), float(np.vdot(ref, ref))


def sqnr(pred: np.ndarray, ref: np.ndarray, sig: tuple[float, float] | None = None) -> float:
    """Output SQNR in dB as the report defines it (engine.metrics.sqnr_db: each channel
    about its own mean); +inf for an exact match, −inf when there is no signal. ``sig``:
    the reference's :func:`signal`, when several predictions share one reference."""
    ref64 = np.asarray(ref, np.float64)
    e = np.asarray(pred, np.float64) - ref64
    sst, power = sig if sig is not None else signal(ref64)
    v = sqnr_db(float(np.vdot(e, e)), sst, power)
    return -math.inf if v is None else float(v)


def layer_sqnr(runs: Sequence[Run], ref: Run, layers: Sequence[Layer],
               twins: dict[Any, Any]) -> list[list[float]]:
    """Per layer, the SQNR of its dequantized output in each run against the float run."""
    out = []
    for la in layers:
        r = ref.tensors[twins[la.output]]
        sig = signal(r)
        out.append([sqnr(dequantized(run.tensors[la.output], la), r, sig) for run in runs])
    return out


def better(before: Sequence[float], after: Sequence[float]) -> bool:
    """The corrected model is kept when no output is worse and one is better: a verdict
    rests on every output, so a gain on one never buys a loss on another."""
    return all(a >= b for a, b in zip(after, before, strict=True)) and any(
        a > b for a, b in zip(after, before, strict=True))


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibration items to fit on and the held-out slice that decides (every fifth item);
    with fewer than 10 items there is no slice to spare and both are every item."""
    idx = np.arange(n)
    if n < 10:
        return idx, idx
    held = idx % 5 == 4
    return idx[~held], idx[held]


def carry(original: bytes, corrected: bytes, target: bytes) -> tuple[bytes, int]:
    """``target`` (a model quantized with the same ranges, e.g. a mixed model with one
    layer kept in float) with the correction applied: each bias that the correction
    changed and that ``target`` holds unchanged (same tensor name, same values as
    ``original``, same scales) takes its corrected values. Returns the model and the
    number of biases carried over.

    The sequential correction fits each layer on corrected predecessors, so each value
    corrects the layer's own rounding; it stays right where an earlier layer is in float.
    """
    def biases(content: bytes) -> dict[str, tuple[BiasLayer, np.ndarray]]:
        model = read_model_bytes(content)
        sg = model.main
        return {sg.tensors[la.bias].name: (la, read_bias(content, la))
                for la in bias_layers(model)[0]}

    before, after = biases(original), biases(corrected)
    data = bytearray(target)
    carried = 0
    for name, (la, values) in biases(target).items():
        if name not in before or name not in after:
            continue
        old_layer, old = before[name]
        new = after[name][1]
        if (np.array_equal(old, new) or not np.array_equal(values, old)
                or not np.allclose(la.bias_scale, old_layer.bias_scale, rtol=1e-6)):
            continue
        write_bias(data, la, new)
        carried += 1
    return bytes(data), carried
