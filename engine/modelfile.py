"""The one TF-free model reader: check a model file and read its metadata.

Preflight, the TUI's model summary and the data diagnostics use it: a mistake the metadata
shows (input shape, class count) fails before TensorFlow is imported.

Catches the mistakes users make — a missing path, a text file named ``.keras``, a legacy
``.h5`` holding a Lambda layer — with one clear line, and refuses code-carrying layers:
``tf_keras.models.load_model(..., safe_mode=True)`` still runs a Lambda layer's code from a
legacy ``.h5`` (measured), so artq reads the file's model config first and stops there.
``TFOpLambda`` layers (tf-keras's record of ``tf.reshape(x, ...)`` on a Keras tensor) carry
no code, only a TensorFlow API name, so they load — unless the name reaches outside the tensor.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputFileError, ModelError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Layers that carry Python code (or bytecode) inside the model file.
UNSAFE_LAYERS = {"Lambda"}
# tf-keras layers that name a public TensorFlow function (config "function"); only tf-keras
# knows them, so a model holding one is loaded with tf-keras.
TF_OP_LAYERS = {"TFOpLambda", "SlicingOpLambda"}
# TensorFlow API names a TFOpLambda may not call: they run Python, touch files or the process.
_UNSAFE_TF_PARTS = {"io", "gfile", "summary", "saved_model", "debugging", "sysconfig",
                    "autograph", "data", "train", "config", "distribute", "lookup", "tpu"}
_UNSAFE_TF_NAMES = {"py_func", "py_function", "numpy_function", "print", "Print",
                    "load_library", "load_op_library", "write_file", "read_file", "eager_py_func"}

#: The formats TensorFlow's backend opens (its child process; the rest run in-process).
TF_FORMATS = ("keras", "h5", "saved_model")


@dataclass(frozen=True)
class ModelFile:
    path: str
    format: str  # keras | h5 | saved_model | onnx
    layer_classes: tuple[str, ...] = ()
    #: Each input's shape with the batch axis (None where unstated), as the stored config
    #: says; None when the file does not say (SavedModel folders, odd configs).
    input_shapes: tuple[tuple[int | None, ...], ...] | None = None
    #: Each output's shape when the config states it (see :func:`model_summary`).
    output_shapes: tuple[tuple[int | None, ...] | None, ...] | None = None

    @property
    def needs_tf_keras(self) -> bool:
        """The model holds tf-keras-only layers (TFOpLambda), which Keras 3 cannot load."""
        return self.format == "h5" and any(c in TF_OP_LAYERS for c in self.layer_classes)


def _io_shapes(cfg: Any) -> tuple[Any, Any]:
    out: dict[str, Any] = {"inputs": [], "outputs": []}
    if isinstance(cfg, dict):
        _describe(cfg, out)
    ins = [i["shape"] for i in out["inputs"]]
    inputs = tuple(tuple(s) for s in ins) if ins and all(ins) else None
    outs = tuple(tuple(o["shape"]) if o["shape"] else None for o in out["outputs"]) or None
    return inputs, outs


def _walk_layers(cfg: Any) -> list[tuple[str, str, Any]]:
    """(class_name, name, config) of every layer in a Keras model config, nested models included."""
    found: list[tuple[str, str, Any]] = []
    if isinstance(cfg, dict):
        cls = cfg.get("class_name")
        inner = cfg.get("config")
        if isinstance(cls, str) and isinstance(inner, dict) and "name" in inner:
            found.append((cls, str(inner.get("name")), inner))
        cfg = list(cfg.values())
    if isinstance(cfg, list):
        for v in cfg:
            found.extend(_walk_layers(v))
    return found


def _refuse_unsafe(path: Path, layers: list[tuple[str, str, Any]]) -> None:
    for cls, name, inner in layers:
        if cls in UNSAFE_LAYERS:
            raise ModelError(
                f"{path}: layer {name!r} is a {cls} layer, which runs Python code stored in the "
                "model file; artq does not load it",
                "replace the Lambda with a built-in or registered custom layer and save the model again",
            )
        if cls in TF_OP_LAYERS:
            fn = inner.get("function")
            parts = fn.split(".") if isinstance(fn, str) and fn else ["(none)"]
            if set(parts) & (_UNSAFE_TF_PARTS | _UNSAFE_TF_NAMES):
                raise ModelError(
                    f"{path}: layer {name!r} is a {cls} layer calling tf.{'.'.join(parts)}, which "
                    "reaches outside the tensor (files, Python or the process); artq does not load it",
                    "replace that call with tensor operations and save the model again",
                )


def inspect_model_file(path: str | Path) -> ModelFile:
    """Identify the model format and check it is safe and readable; no TensorFlow."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(
            str(p), "model not found", "set model.path to a .keras, .h5, .onnx or SavedModel folder")
    if p.suffix.lower() == ".onnx" and p.is_file():
        from .backends.onnx.graph import inspect_onnx  # noqa: PLC0415 - onnx only, no runtime
        return inspect_onnx(p)
    if p.is_dir():
        if not (p / "saved_model.pb").is_file():
            raise InputFileError(
                str(p),
                "is a folder without saved_model.pb, so not a SavedModel",
                "point model.path at a SavedModel folder, a .keras or a .h5 file",
            )
        return ModelFile(str(p), "saved_model")
    if not p.is_file():
        # A FIFO or device would block or stream forever when read below.
        raise InputFileError(str(p), "is not a regular file", "set model.path to a model file")
    suffix = p.suffix.lower()
    try:
        # The signature only; reading here also surfaces an unreadable file before
        # zipfile.is_zipfile, which swallows OSError and would call it "not a Keras model".
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputFileError(
            str(p), f"cannot read ({exc.strerror or exc})", "check the file's permissions"
        ) from None
    if suffix == ".keras":
        if head == HDF5_SIGNATURE:
            raise InputFileError(str(p), "is a legacy Keras HDF5 model named .keras",
                                 "rename it to .h5 so it is read as one")
        if not zipfile.is_zipfile(p):
            if head[:4] == b"PK\x03\x04":  # a zip's start without its end: cut off
                raise InputFileError(str(p), "is truncated: the zip archive is cut off before its end",
                                     "copy or download the model again, or save it again")
            raise InputFileError(
                str(p),
                "is not a Keras 3 model (a .keras file is a zip archive; this one is not)",
                "save the model with model.save('model.keras'), or check the path",
            )
        cfg = _keras_config(p)
        layers = _walk_layers(cfg)
        _refuse_unsafe(p, layers)
        return ModelFile(str(p), "keras", tuple(c for c, _, _ in layers), *_io_shapes(cfg))
    if suffix in (".h5", ".hdf5"):
        if head[:4] == b"PK\x03\x04":
            raise InputFileError(str(p), "is a zip archive, as a Keras 3 model is, named .h5",
                                 "rename it to .keras so it is read as one")
        if head != HDF5_SIGNATURE:
            raise InputFileError(
                str(p), "is not an HDF5 file", "save the model with Keras (model.save('model.h5'))"
            )
        import h5py  # noqa: PLC0415 - only legacy models need it

        try:
            with h5py.File(p, "r") as f:
                raw = f.attrs.get("model_config")
                # save_weights' layouts: Keras 2 (layer_names) and Keras 3 (layers, vars).
                weights_layout = "layer_names" in f.attrs or any(
                    k in f for k in ("model_weights", "layers", "vars", "_layer_checkpoint_dependencies"))
        except OSError as exc:
            raise InputFileError(str(p), f"cannot be read as HDF5 ({exc})") from None
        if raw is None:
            if not weights_layout:
                raise InputFileError(
                    str(p), "is an HDF5 file but not a Keras model (no model_config, no Keras weights)",
                    "set model.path to a model saved by Keras (model.save('model.h5'))",
                )
            raise InputFileError(
                str(p),
                "holds weights only (no model_config), so there is no architecture to convert",
                "save the whole model (model.save), not save_weights",
            )
        try:
            cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InputFileError(str(p), "has a model_config that is cut off or not valid JSON",
                                 "save the model again with Keras") from None
        layers = _walk_layers(cfg)
        _refuse_unsafe(p, layers)
        return ModelFile(str(p), "h5", tuple(c for c, _, _ in layers), *_io_shapes(cfg))
    hint = "give a Keras 3 .keras file, a legacy .h5 file, a SavedModel folder or an FP32 .onnx"
    if suffix == ".tflite":
        hint = "artq quantizes from the float model; for an existing .tflite use `artq inspect`"
    raise InputFileError(str(p), f"unsupported model format {suffix or '(no suffix)'}", hint)


def _keras_config(p: Path) -> Any:
    """The parsed config.json of a .keras archive, with a line that says what is wrong."""
    try:
        with zipfile.ZipFile(p) as z:
            data = z.read("config.json")
    except KeyError:
        raise InputFileError(str(p), "is a zip archive but holds no Keras config.json",
                             "save it again with Keras") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error):
        raise InputFileError(str(p), "is damaged: its config.json cannot be unpacked (truncated or corrupt)",
                             "copy or download the model again, or save it again") from None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputFileError(str(p), "has a config.json that is cut off or not valid JSON",
                             "save the model again with Keras") from None


# ------------------------------------------------------------------ metadata

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
        elif suffix == ".onnx":
            from .backends.onnx.graph import summarize  # noqa: PLC0415 - onnx only, no runtime
            summarize(p, out)
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
    if not inner.get("output_layers") and layers and out["outputs"][0]["shape"] is None:
        # A Sequential model names no output: a classifier head (flat, Dense) still states it.
        out["outputs"] = [{"name": (layers[-1].get("config") or {}).get("name"),
                           "shape": _sequential_head(layers)}]


_FLAT = {"Flatten", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
         "GlobalMaxPooling2D", "Dense"}


def _sequential_head(layers: list[dict[str, Any]]) -> list[Any] | None:
    """[None, units] for a Sequential model ending in Dense on a flat input; else None."""
    rest = [layer for layer in layers if layer.get("class_name") not in _SAME_SHAPE]
    if len(rest) >= 2 and rest[-1].get("class_name") == "Dense" and rest[-2].get("class_name") in _FLAT:
        return [None, (rest[-1].get("config") or {}).get("units")]
    return None


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
        dims = shape[1:]
        return [shape[0], None if None in dims else math.prod(dims)]
    return None


def static_input_shape(shape: Any, override: Sequence[int] | None, what: str,
                       path: str) -> tuple[int, ...]:
    """The input shape without the batch axis: the model's, with ``model.input_shape``
    filling its unknown dimensions. ``shape`` has the batch axis (None for unknown).
    TensorFlow's export and the TF-free preflight both check through here."""
    dims = list(shape)[1:]
    if override:
        if len(override) != len(dims):
            raise ModelError(
                f"{path}: model.input_shape has {len(override)} dims but the model input has "
                f"{len(dims)} ({what} {tuple(shape)})",
                "give the input shape without the batch axis",
            )
        clash = [i for i, (d, v) in enumerate(zip(dims, override, strict=True)) if d is not None and d != v]
        if clash:
            # The model's weights fix these sizes; only its unknown dimensions can be set.
            raise ModelError(
                f"{path}: model.input_shape = {list(override)} does not fit the {what} "
                f"{tuple(shape)}",
                "model.input_shape is for unknown dimensions only: remove it, or match the "
                "model's fixed sizes",
            )
        return tuple(int(v) for v in override)
    if any(d is None for d in dims):
        raise ModelError(
            f"{path}: the model input {tuple(shape)} has unknown dimensions besides the batch",
            "set model.input_shape = [H, W, C] in the config",
        )
    return tuple(int(d) for d in dims)


def model_input_shape(path: str | Path) -> tuple[int, ...] | None:
    """(H, W, C) of a Keras model's input from its stored config, without TensorFlow.

    None when the file does not say (SavedModel folders, unknown dimensions).
    """
    p = Path(path)
    cfg: Any = None
    if p.suffix.lower() == ".keras" and zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            cfg = json.loads(z.read("config.json"))
    elif p.suffix.lower() in (".h5", ".hdf5") and p.is_file():
        import h5py  # noqa: PLC0415 - legacy models only

        with h5py.File(p, "r") as f:
            raw = f.attrs.get("model_config")
        if raw is not None:
            cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if cfg is None:
        return None
    shape = _find_input_shape(cfg)
    if shape is None or any(d is None for d in shape[1:]):
        return None
    return tuple(int(d) for d in shape[1:])


def _find_input_shape(node: Any) -> list[Any] | None:
    if isinstance(node, dict):
        if node.get("class_name") == "InputLayer":
            c = node.get("config") or {}
            return c.get("batch_shape") or c.get("batch_input_shape")
        for key in ("batch_shape", "batch_input_shape", "build_input_shape"):
            inner = (node.get("config") or {}) if isinstance(node.get("config"), dict) else {}
            if isinstance(inner.get(key), list):
                return inner[key]
        for v in node.values():
            found = _find_input_shape(v)
            if found is not None:
                return found
    elif isinstance(node, list):
        for v in node:
            found = _find_input_shape(v)
            if found is not None:
                return found
    return None
