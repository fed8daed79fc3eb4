"""Rebuild a Keras 3 model in tf-keras (Keras 2), weights included, for QAT.

tfmot 0.8 accepts only Keras 2 models, and Keras 3 files do not load into tf-keras. The
architecture is rebuilt from the Keras 3 functional config — layer by layer, wiring the
same graph — and each layer's weights are copied across. Initializers and constraints are
dropped (the weights are copied over them anyway). A layer that cannot be rebuilt stops the
job with one line naming it and saying why.

Runs only inside the TensorFlow child process.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import ModelError

# Config keys that only set how fresh weights are drawn; copied weights make them moot.
_DROP_SUFFIXES = ("_initializer", "_constraint")
_DROP_KEYS = {"optional", "quantization_config", "lora_rank", "lora_alpha"}


def _plain(value: Any) -> Any:
    """Keras 3 serialised objects → what tf-keras accepts."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" or (
            value.get("module") == "keras" and "DTypePolicy" in str(value.get("class_name"))
        ):
            return value.get("config", {}).get("name", "float32")
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"], "config": _plain(value["config"])}
        return {k: _plain(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _layer_config(entry: dict[str, Any]) -> dict[str, Any]:
    cfg = dict(entry.get("config", {}))
    for key in list(cfg):
        if key.endswith(_DROP_SUFFIXES) or key in _DROP_KEYS:
            cfg.pop(key)
    if entry.get("class_name") == "InputLayer" and "batch_shape" in cfg:
        cfg["batch_input_shape"] = cfg.pop("batch_shape")
    return _plain(cfg)


def _make_layer(k: Any, entry: dict[str, Any]) -> Any:
    cls_name = entry["class_name"]
    name = entry.get("config", {}).get("name", cls_name)
    cls = getattr(k.layers, cls_name, None)
    if cls is None:
        raise ModelError(
            f"layer {name!r} ({cls_name}) has no tf-keras equivalent, so QAT cannot rebuild it",
            "use built-in layers that exist in Keras 2 as well, or quantize this model with PTQ",
        )
    cfg = _layer_config(entry)
    if cls_name in ("Bidirectional", "TimeDistributed") and isinstance(cfg.get("layer"), dict):
        inner = cfg["layer"]
        cfg["layer"] = {"class_name": inner["class_name"], "config": _layer_config(inner)}
        if isinstance(cfg.get("backward_layer"), dict):
            back = cfg["backward_layer"]
            cfg["backward_layer"] = {"class_name": back["class_name"], "config": _layer_config(back)}
    # Keras 3 adds constructor arguments tf-keras does not know; drop them one by one.
    for _ in range(20):
        try:
            return cls.from_config(cfg)
        except TypeError as exc:
            m = re.search(r"unexpected keyword argument '(\w+)'", str(exc)) or re.search(
                r"Unrecognized keyword arguments?: \[?'(\w+)'", str(exc)
            )
            if not m or m.group(1) not in cfg:
                raise ModelError(
                    f"layer {name!r} ({cls_name}) cannot be rebuilt in tf-keras: {exc}",
                    "use built-in layers that exist in Keras 2 as well, or use PTQ",
                ) from None
            cfg.pop(m.group(1))
        except (ValueError, KeyError) as exc:
            raise ModelError(
                f"layer {name!r} ({cls_name}) cannot be rebuilt in tf-keras: {exc}",
                "use built-in layers that exist in Keras 2 as well, or use PTQ",
            ) from None
    raise ModelError(f"layer {name!r} ({cls_name}) cannot be rebuilt in tf-keras")


def _is_kt(v: Any) -> bool:
    return isinstance(v, dict) and v.get("class_name") == "__keras_tensor__"


def _resolve(v: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    if _is_kt(v):
        name, node, idx = v["config"]["keras_history"]
        return tensors[(name, node, idx)]
    if isinstance(v, list | tuple):
        return [_resolve(x, tensors) for x in v]
    if isinstance(v, dict):
        return {k: _resolve(x, tensors) for k, x in v.items()}
    return v


def _refs(spec: Any) -> list[tuple[str, int, int]]:
    """input_layers / output_layers: one [name, node, idx] or a list of them."""
    if spec and isinstance(spec[0], str | bytes):
        return [tuple(spec)]  # type: ignore[list-item]
    return [tuple(s) for s in spec]


def rebuild_in_tf_keras(model: Any, k: Any) -> Any:
    """A tf-keras copy of Keras 3 ``model`` (Functional or Sequential), weights copied."""
    cfg = model.get_config()
    cls = type(model).__name__
    if cls == "Sequential":
        tk = k.Sequential(name=cfg.get("name"))
        for entry in cfg["layers"]:
            tk.add(_make_layer(k, entry))
    elif "layers" in cfg and "input_layers" in cfg:
        tensors: dict[tuple[str, int, int], Any] = {}
        layers: dict[str, Any] = {}
        for entry in cfg["layers"]:
            layer = _make_layer(k, entry)
            name = entry.get("name") or entry["config"]["name"]
            layers[name] = layer
            if entry["class_name"] == "InputLayer":
                tensors[(name, 0, 0)] = layer.output
                continue
            for n, node in enumerate(entry.get("inbound_nodes", [])):
                args = _resolve(node.get("args", []), tensors)
                kwargs = _resolve(node.get("kwargs", {}), tensors)
                out = layer(*args, **kwargs)
                outs = out if isinstance(out, list | tuple) else [out]
                for i, t in enumerate(outs):
                    tensors[(name, n, i)] = t
        inputs = [tensors[r] for r in _refs(cfg["input_layers"])]
        outputs = [tensors[r] for r in _refs(cfg["output_layers"])]
        tk = k.Model(inputs[0] if len(inputs) == 1 else inputs,
                     outputs[0] if len(outputs) == 1 else outputs, name=cfg.get("name"))
    else:
        raise ModelError(
            f"a {cls} model (subclassed) has no config artq can rebuild in tf-keras",
            "build it with the functional API or Sequential for QAT, or use PTQ",
        )
    _copy_weights(model, tk)
    return tk


def _copy_weights(src: Any, dst: Any) -> None:
    by_name = {layer.name: layer for layer in dst.layers}
    for layer in src.layers:
        w = layer.get_weights()
        if not w:
            continue
        target = by_name.get(layer.name)
        if target is None:
            raise ModelError(f"layer {layer.name!r} was lost while rebuilding the model in tf-keras")
        try:
            target.set_weights(w)
        except ValueError as exc:
            raise ModelError(
                f"layer {layer.name!r} ({type(layer).__name__}): its weights do not fit the "
                f"tf-keras layer ({exc})",
                "use PTQ for this model, or rebuild the layer with standard options",
            ) from None
