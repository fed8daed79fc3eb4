"""Cross-layer equalization of a Keras model's weights (the math: :mod:`engine.equalize`).

A pair is a conv / depthwise conv (multiplier 1) / dense layer with no activation or ReLU,
then optionally a BatchNorm (when the layer has no activation of its own), then optionally
ReLU, then layers that act on each channel alone and commute with a positive scale (zero
padding, max/average pooling, dropout), then a conv / depthwise conv / dense layer. Every
layer on the way has one caller and one consumer and is not a model output: a second
consumer would see the rescaled channels. Anything else is skipped and listed, ReLU6 among
them (it clips at 6, not at 6/s: equalizing across it would change the float model).

Only the TensorFlow child imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...equalize import divide_out, equalize_pair, relative_diff

_CONVS = ("Conv2D", "DepthwiseConv2D", "Dense")
#: Per-channel layers f with f(x / s) = f(x) / s for s > 0 (dropout: identity at inference).
_PASS = ("ZeroPadding2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
         "GlobalMaxPooling2D", "Dropout")
#: Sweeps over all pairs: a layer in two pairs (a depthwise conv between two convs) is
#: balanced against both in turn, which converges in a few sweeps.
SWEEPS = 20


def _kind(layer: Any) -> str:
    return type(layer).__name__


def _producer(node: Any) -> Any:
    return getattr(node, "operation", None) or getattr(node, "layer", None)


def _graph(model: Any) -> tuple[dict[str, list[Any]], dict[str, int]]:
    """Each layer's consumers (by name), and how many times each layer is called."""
    consumers: dict[str, list[Any]] = {}
    for layer in model.layers:
        for node in getattr(layer, "_inbound_nodes", []):
            for parent in getattr(node, "parent_nodes", []):
                src = _producer(parent)
                if src is not None:
                    consumers.setdefault(src.name, []).append(layer)
    calls = {la.name: len(getattr(la, "_inbound_nodes", [])) for la in model.layers}
    return consumers, calls


def _activation(layer: Any) -> str:
    """'linear', 'relu' or what else the layer applies after its weights."""
    kind = _kind(layer)
    if kind == "ReLU":
        relu = (getattr(layer, "max_value", None) is None
                and float(getattr(layer, "negative_slope", 0) or 0) == 0
                and float(getattr(layer, "threshold", 0) or 0) == 0)
        return "relu" if relu else "relu6" if getattr(layer, "max_value", None) == 6 else "clipped"
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", str(fn)) if fn is not None else "linear"


def _kernel(layer: Any) -> Any:
    # tf-keras names a depthwise conv's weights depthwise_kernel, Keras 3 kernel.
    k = getattr(layer, "depthwise_kernel", None)
    return layer.kernel if k is None else k


def _axes(layer: Any) -> tuple[int, int] | None:
    """(output-channel axis, input-channel axis) of the layer's kernel, or None."""
    kind = _kind(layer)
    if kind == "Dense":
        return 1, 0
    if kind == "Conv2D":
        return (3, 2) if int(getattr(layer, "groups", 1) or 1) == 1 else None
    if kind == "DepthwiseConv2D":
        return (2, 2) if int(layer.depth_multiplier) == 1 else None
    return None


def _pair_from(first: Any, consumers: dict[str, list[Any]], calls: dict[str, int],
               outputs: set[str]) -> tuple[Any, Any | None, Any] | str:
    """(first, batch norm or None, second) starting at ``first``, or why there is none."""
    act = _activation(first)
    if act not in ("linear", "relu"):
        return f"its activation is {act}"
    if _axes(first) is None:
        return "grouped conv or depthwise multiplier > 1"
    bn, seen_relu, layer = None, act == "relu", first
    while True:
        if layer.name in outputs:
            return "its output is a model output"
        nxt = consumers.get(layer.name, [])
        if len(nxt) != 1:
            return f"{layer.name} feeds {len(nxt)} layers"
        layer = nxt[0]
        if calls.get(layer.name, 0) != 1:
            return f"{layer.name} is called more than once"
        kind = _kind(layer)
        if kind in _CONVS:
            if _axes(layer) is None:
                return f"{layer.name} is a grouped conv or depthwise multiplier > 1"
            return first, bn, layer
        if kind == "BatchNormalization" and bn is None and not seen_relu and _bn_last(layer):
            bn = layer
        elif kind in ("ReLU", "Activation") and not seen_relu:
            a = _activation(layer)
            if a != "relu":
                return f"{layer.name} applies {a}"
            seen_relu = True
        elif kind not in _PASS:
            return f"{layer.name} ({kind}) is between"


def _bn_last(layer: Any) -> bool:
    axis = layer.axis
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    return axis in (-1, len(layer.input.shape) - 1)


def find_pairs(model: Any) -> tuple[list[tuple[Any, Any | None, Any]], list[tuple[str, str]]]:
    """The pairs to equalize and (layer, why) for each conv/dense layer that starts none."""
    consumers, calls = _graph(model)
    outputs = {getattr(getattr(t, "_keras_history", None), "operation", None)
               or getattr(getattr(t, "_keras_history", None), "layer", None)
               for t in model.outputs}
    out_names = {o.name for o in outputs if o is not None}
    pairs, skipped = [], []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            skipped.append((layer.name, "a nested model: its layers are not walked"))
            continue
        if _kind(layer) not in _CONVS:
            continue
        if calls.get(layer.name, 0) != 1:
            skipped.append((layer.name, "called more than once"))
            continue
        found = _pair_from(layer, consumers, calls, out_names)
        if isinstance(found, str):
            skipped.append((layer.name, found))
        else:
            pairs.append(found)
    return pairs, skipped


def _fold(bn: Any | None) -> np.ndarray | None:
    if bn is None:
        return None
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.gamma is not None else 1.0
    return gamma / np.sqrt(var + float(bn.epsilon))


def _apply(first: Any, bn: Any | None, second: Any) -> float:
    """Equalize one pair in place; the largest |log s| (0 when nothing moved)."""
    out_axis, _ = _axes(first)  # type: ignore[misc]
    _, in_axis = _axes(second)  # type: ignore[misc]
    k1, k2 = _kernel(first), _kernel(second)
    w1, w2, s = equalize_pair(k1.numpy(), out_axis, k2.numpy(), in_axis, fold=_fold(bn))
    k1.assign(w1)
    k2.assign(w2)
    if getattr(first, "bias", None) is not None:
        first.bias.assign(divide_out(first.bias.numpy(), s, 0))
    if bn is not None:
        bn.moving_mean.assign(divide_out(bn.moving_mean.numpy(), s, 0))
        if bn.beta is not None:
            bn.beta.assign(divide_out(bn.beta.numpy(), s, 0))
    return float(np.max(np.abs(np.log(s)))) if s.size else 0.0


def _predict(model: Any, x: np.ndarray) -> list[np.ndarray]:
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(x), 16):
        res = model(np.asarray(x[i:i + 16], np.float32), training=False)
        res = res if isinstance(res, (list, tuple)) else [res]
        outs.append([np.asarray(r) for r in res])
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def equalize_and_convert(path: str, fmt: str, input_shape: list[int] | None,
                         custom_objects: str, calibration: str, export_dir: str,
                         out_path: str, **convert_args: Any) -> dict[str, Any]:
    """Load the model afresh, equalize it, check its float outputs on the calibration items
    did not move, export it as ``load_and_export`` does and convert it to INT8."""
    from . import convert  # noqa: PLC0415 - the child has imported it already

    model = convert.load_keras(path, fmt, custom_objects)
    x = np.load(calibration, mmap_mode="r")
    done = equalize_model(model, x)
    info = convert.export_keras(model, path, input_shape, export_dir)
    res = convert.convert(export_dir, "int8", out_path, calibration=calibration,
                          **convert_args)
    return {**done, **res, "model": info}


def equalize_model(model: Any, x: np.ndarray) -> dict[str, Any]:
    """Equalize ``model``'s weights in place; what was done, and how far its float outputs
    on ``x`` moved (max |Δ| / max |output|, per output)."""
    pairs, skipped = find_pairs(model)
    before = _predict(model, x)
    sweeps, moved = 0, 0.0
    for sweeps in range(1, SWEEPS + 1):  # noqa: B007 - reported
        moved = max((_apply(*p) for p in pairs), default=0.0)
        if moved < 1e-3:
            break
    after = _predict(model, x)
    return {
        "pairs": [{"first": a.name, "batch_norm": b.name if b is not None else "",
                   "second": c.name} for a, b, c in pairs],
        "skipped": [{"name": n, "why": why} for n, why in skipped],
        "sweeps": sweeps if pairs else 0,
        "float_diff": [relative_diff(b, a) for b, a in zip(before, after, strict=True)],
    }
