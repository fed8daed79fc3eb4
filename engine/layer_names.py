"""Names of a TFLite model's ops for people: the Keras layer behind each op's output tensor.

The converter names an op's output tensor after the TF ops it fused, joined by ``;``
(``functional_1/re_lu_1/Relu;functional_1/conv2d_1/convolution``), each a path
``<model>/<layer>/<op>``. The first path is not always the op's own: a conv with a ReLU
layer after it lists the ReLU first, and every Dense of a nested model shares the nested
model's path. :func:`layer_names` picks each op's own path and makes the names of one model
unique, so advice such as "keep `dense_1` in float" points at one op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# TF op names (a path's last part, trailing digits dropped) of a fused activation.
_ACTIVATIONS = frozenset({
    "Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "LeakyRelu", "clip_by_value",
    "Minimum", "Maximum", "HardSigmoid", "hard_sigmoid", "Softplus",
})
# The TF ops that are a kernel op's own computation (its bias included).
_KERNEL_PARTS = {
    "CONV_2D": {"convolution", "Conv2D", "BiasAdd", "Conv2D_1"},
    "DEPTHWISE_CONV_2D": {"depthwise", "convolution", "BiasAdd", "Conv2D"},
    "FULLY_CONNECTED": {"MatMul", "BiasAdd", "Tensordot", "Add", "add"},
    "TRANSPOSE_CONV": {"conv2d_transpose", "conv_transpose", "conv2d_transpose_1", "BiasAdd"},
    "CONV_3D": {"convolution", "Conv3D", "BiasAdd"},
}
# Ops that are an activation themselves: their activation path is their own.
_ACTIVATION_OPS = frozenset({
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "LEAKY_RELU", "ELU",
    "HARD_SWISH", "PRELU", "SOFTMAX", "MINIMUM", "MAXIMUM",
})


def _op_part(path: str) -> str:
    """``functional_1/dense_1/MatMul1`` → ``MatMul`` (MLIR numbers duplicate names)."""
    return path.rsplit("/", 1)[-1].rstrip("0123456789") or path.rsplit("/", 1)[-1]


def own_path(tensor: str, op: str | None = None) -> str:
    """The path of ``tensor``'s name that belongs to the op writing it (``op``: its TFLite
    type): its kernel's path for a conv or a fully connected op, else the first path that
    is not a fused activation, else the first."""
    paths = [p for p in tensor.split(";") if p] or [tensor]
    kernel = _KERNEL_PARTS.get(op or "")
    if kernel:
        for p in paths:
            if _op_part(p) in kernel:
                return p
    if op not in _ACTIVATION_OPS:
        for p in paths:
            if _op_part(p) not in _ACTIVATIONS:
                return p
    return paths[0]


def _name(path: str, depth: int) -> str:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3:
        # <model>/<layer>/<op scopes…>: a layer's own ops nest (bn/moments/mean), so the
        # layer alone first; more of the path only when two ops would share the name.
        return "/".join(parts[1 : 1 + depth])
    if len(parts) == 2:
        return parts[0] if parts[1][:1].isupper() else parts[1]
    return path


def _depth_max(path: str) -> int:
    parts = [p for p in path.split("/") if p]
    return len(parts) - 1 if len(parts) >= 3 else 1


def short_name(tensor: str, op: str | None = None) -> str:
    """The Keras layer behind a TFLite tensor name, for people (not unique: see
    :func:`layer_names`).

    ``functional_1/conv2d_1_2/Relu;functional_1/conv2d_1_2/BiasAdd`` → ``conv2d_1_2``.
    """
    return _name(own_path(tensor, op), 1)


def layer_names(ops: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """``{tensor: name}`` for a model's ops, ``(output tensor, TFLite op type)`` in
    execution order: each named after its own layer, no two alike.

    Two ops of one layer (a nested model's Dense layers, a Flatten's SHAPE and RESHAPE)
    get more of their path (``head/dense``, ``head/dense_1``); names that are still equal
    (the whole path alike) get ``#2``, ``#3`` in execution order.
    """
    own: dict[str, str] = {}
    for tensor, op in ops:
        if tensor and tensor not in own:
            own[tensor] = own_path(tensor, op)
    depth = dict.fromkeys(own, 1)
    while True:
        names = {t: _name(p, depth[t]) for t, p in own.items()}
        groups: dict[str, list[str]] = {}
        for t, n in names.items():
            groups.setdefault(n, []).append(t)
        grown = False
        for members in groups.values():
            if len(members) < 2:
                continue
            for t in members:
                if depth[t] < _depth_max(own[t]):
                    depth[t] += 1
                    grown = True
        if not grown:
            break
    out: dict[str, str] = {}
    used: set[str] = set()
    for t, n in names.items():
        name, k = n, 2
        while name in used:
            name, k = f"{n}#{k}", k + 1
        used.add(name)
        out[t] = name
    return out


def model_layer_names(npu_layers: Iterable[Mapping[str, Any]], errors: Iterable[str],
                      candidates: Iterable[Mapping[str, Any]] = ()) -> dict[str, str]:
    """:func:`layer_names` of a run: the NPU's op list (execution order, op types), then any
    analysed tensor it does not list (op type from the sensitivity candidates). The Layers
    table, layers.csv and the sensitivity entries all name ops through here, so one op has
    one name everywhere."""
    ops = {str(c.get("tensor")): c.get("op") for c in candidates if c.get("tensor")}
    pairs = [(str(layer.get("name") or ""), layer.get("op")) for layer in npu_layers]
    listed = {t for t, _ in pairs}
    pairs += [(t, ops.get(t)) for t in errors if t not in listed]
    return layer_names(pairs)
