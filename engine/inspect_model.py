"""Read-only facts for a front-end, without TensorFlow: what a model file holds, what a rule says.

The TUI shows a model's inputs, outputs, parameter count and size before anything runs, so
this reads a Keras 3 ``.keras`` zip (``config.json`` + ``model.weights.h5``) or a legacy
``.h5`` directly. Shapes come from the saved config; an output shape that only a traced
model would know is left as ``None`` rather than guessed. Nothing here raises for a missing
or odd file: the summary says what is wrong in ``error`` so a UI can show it and carry on.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

# Layers whose output has the shape of their input.
_SAME_SHAPE = {
    "Activation", "ReLU", "Softmax", "LeakyReLU", "ELU", "PReLU", "BatchNormalization",
    "Dropout", "LayerNormalization", "Rescaling", "Normalization", "GaussianNoise",
}


def model_summary(path: str | Path) -> dict[str, Any]:
    """``{path, exists, format, size_bytes, inputs, outputs, params, layers, layer_counts, error}``.

    ``inputs``/``outputs`` are ``[{"name", "shape"}]`` with ``None`` for the batch and for
    any dimension the file does not state.
    """
    p = Path(path)
    out: dict[str, Any] = {
        "path": str(p), "exists": p.exists(), "format": "", "size_bytes": 0, "inputs": [],
        "outputs": [], "params": None, "layers": 0, "layer_counts": {}, "error": "",
    }
    if not p.exists():
        out["error"] = "model file not found"
        return out
    if p.is_dir():
        out["format"] = "saved_model" if (p / "saved_model.pb").is_file() else ""
        out["size_bytes"] = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        if not out["format"]:
            out["error"] = "a folder without saved_model.pb is not a SavedModel"
        return out
    out["size_bytes"] = p.stat().st_size
    suffix = p.suffix.lower()
    try:
        if suffix == ".keras":
            out["format"] = "keras"
            with zipfile.ZipFile(p) as z:
                cfg = json.loads(z.read("config.json"))
                weights = z.read("model.weights.h5") if "model.weights.h5" in z.namelist() else b""
            _describe(cfg, out)
            if weights:
                out["params"] = _count_params(io.BytesIO(weights), skip=("optimizer",))
        elif suffix in (".h5", ".hdf5"):
            out["format"] = "h5"
            import h5py  # noqa: PLC0415 - only legacy models need it

            with h5py.File(p, "r") as f:
                raw = f.attrs.get("model_config")
                if raw is not None:
                    _describe(json.loads(raw.decode() if isinstance(raw, bytes) else raw), out)
                group = f.get("model_weights", f)
                out["params"] = _count_params_group(group, skip=("optimizer",))
        elif suffix == ".tflite":
            out["format"] = "tflite"
            out["error"] = "artq quantizes from the float model; use `artq inspect` for a .tflite"
        else:
            out["error"] = f"unsupported model format {suffix or '(no suffix)'}"
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError, ValueError) as exc:
        out["error"] = f"cannot read the model file ({type(exc).__name__}: {exc})"
    return out


def _count_params(fileobj: Any, skip: tuple[str, ...]) -> int | None:
    try:
        import h5py  # noqa: PLC0415
    except ImportError:
        return None
    with h5py.File(fileobj, "r") as f:
        return _count_params_group(f, skip)


def _count_params_group(group: Any, skip: tuple[str, ...]) -> int:
    import h5py  # noqa: PLC0415

    total = 0

    def visit(name: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset) and not name.startswith(skip):
            total += int(obj.size)

    group.visititems(visit)
    return total


def _describe(cfg: dict[str, Any], out: dict[str, Any]) -> None:
    inner = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
    layers = inner.get("layers") or []
    counts: dict[str, int] = {}
    by_name: dict[str, dict[str, Any]] = {}
    for layer in layers:
        cls = str(layer.get("class_name", "?"))
        counts[cls] = counts.get(cls, 0) + 1
        name = layer.get("name") or (layer.get("config") or {}).get("name")
        by_name[str(name)] = layer
    out["layers"] = sum(n for c, n in counts.items() if c != "InputLayer")
    out["layer_counts"] = counts
    for ref in _refs(inner.get("input_layers")):
        layer = by_name.get(ref, {})
        lc = layer.get("config") or {}
        shape = lc.get("batch_shape") or lc.get("batch_input_shape")
        out["inputs"].append({"name": ref, "shape": list(shape) if shape else None,
                              "dtype": lc.get("dtype") if isinstance(lc.get("dtype"), str) else None})
    if not out["inputs"] and layers:  # a Sequential model states its input on the first layer
        lc = layers[0].get("config") or {}
        shape = lc.get("batch_shape") or lc.get("batch_input_shape")
        if shape:
            out["inputs"].append({"name": lc.get("name", "input"), "shape": list(shape)})
    outputs = _refs(inner.get("output_layers")) or ([layers[-1].get("name")] if layers else [])
    for ref in outputs:
        out["outputs"].append({"name": ref, "shape": _output_shape(by_name.get(str(ref), {}))})


def _refs(spec: Any) -> list[str]:
    """Layer names from Keras's ``input_layers``/``output_layers`` (one ref or a list of refs)."""
    if not spec:
        return []
    if isinstance(spec, list) and spec and isinstance(spec[0], str):
        return [spec[0]]
    return [r[0] for r in spec if isinstance(r, list) and r and isinstance(r[0], str)]


def _output_shape(layer: dict[str, Any]) -> list[Any] | None:
    """The output shape when the saved config states it (its input shape, and simple layers)."""
    cls = layer.get("class_name")
    lc = layer.get("config") or {}
    shape = None
    for node in layer.get("inbound_nodes") or []:
        args = node.get("args") if isinstance(node, dict) else None
        if args and isinstance(args[0], dict):
            shape = (args[0].get("config") or {}).get("shape")
            break
    if shape is None:
        return None
    if cls in _SAME_SHAPE:
        return list(shape)
    if cls == "Dense":
        return [*shape[:-1], lc.get("units")]
    if cls == "Reshape" and lc.get("target_shape"):
        return [shape[0], *lc["target_shape"]]
    if cls == "Flatten":
        n = 1
        for d in shape[1:]:
            if d is None:
                return [shape[0], None]
            n *= d
        return [shape[0], n]
    return None


def rule_text(op: str, rule: str) -> str:
    """The human-readable rule behind a layer's placement (Vela-style docstrings), or ""."""
    try:
        from .npu import rules  # noqa: PLC0415 - TF-free, but only the Layers screen needs it
    except ImportError:
        return ""
    table = getattr(rules, "TABLE", {})
    if rule in ("", "table"):
        r = table.get(op)
        if r is None:
            return "not in ST's operator table: it runs in software on the CPU"
        return " ".join(x for x in (r.comment, r.sw_reason) if x)
    candidates = list(getattr(rules, "GENERIC", ()))
    r = table.get(op)
    if r is not None:
        candidates += list(r.constraints)
    for c in candidates:
        if c.name == rule:
            return c.rule
    return rule
