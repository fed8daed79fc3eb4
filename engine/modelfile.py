"""Check a model file before TensorFlow touches it (no TF import here).

Catches the mistakes users make — a missing path, a text file named ``.keras``, a legacy
``.h5`` holding a Lambda layer — with one clear line, and refuses code-carrying layers:
``tf_keras.models.load_model(..., safe_mode=True)`` still runs a Lambda layer's code from a
legacy ``.h5`` (measured), so artq reads the file's model config first and stops there.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputFileError, ModelError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Layers that carry Python code (or bytecode) inside the model file.
UNSAFE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}


@dataclass(frozen=True)
class ModelFile:
    path: str
    format: str  # keras | h5 | saved_model
    layer_classes: tuple[str, ...] = ()


def _walk_layers(cfg: Any) -> list[tuple[str, str]]:
    """(class_name, name) of every layer in a Keras model config, nested models included."""
    found: list[tuple[str, str]] = []
    if isinstance(cfg, dict):
        cls = cfg.get("class_name")
        inner = cfg.get("config")
        if isinstance(cls, str) and isinstance(inner, dict) and "name" in inner:
            found.append((cls, str(inner.get("name"))))
        for v in cfg.values():
            found.extend(_walk_layers(v))
    elif isinstance(cfg, list):
        for v in cfg:
            found.extend(_walk_layers(v))
    return found


def _refuse_unsafe(path: Path, layers: list[tuple[str, str]]) -> None:
    for cls, name in layers:
        if cls in UNSAFE_LAYERS:
            raise ModelError(
                f"{path}: layer {name!r} is a {cls} layer, which runs Python code stored in the "
                "model file; artq does not load it",
                "replace the Lambda with a built-in or registered custom layer and save the model again",
            )


def inspect_model_file(path: str | Path) -> ModelFile:
    """Identify the model format and check it is safe and readable; no TensorFlow."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(
            str(p), "model not found", "set model.path to a .keras, .h5 or SavedModel folder"
        )
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
        raise InputFileError(str(p), "is not a regular file",
                             "set model.path to a .keras, .h5 or SavedModel folder")
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
            raise InputFileError(
                str(p),
                "is not a Keras 3 model (a .keras file is a zip archive; this one is not)",
                "save the model with model.save('model.keras'), or check the path",
            )
        try:
            with zipfile.ZipFile(p) as z:
                cfg = json.loads(z.read("config.json"))
        except (KeyError, json.JSONDecodeError, zipfile.BadZipFile):
            raise InputFileError(
                str(p), "is a zip archive but holds no Keras config.json", "save it again with Keras"
            ) from None
        layers = _walk_layers(cfg)
        _refuse_unsafe(p, layers)
        return ModelFile(str(p), "keras", tuple(c for c, _ in layers))
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
        except OSError as exc:
            raise InputFileError(str(p), f"cannot be read as HDF5 ({exc})") from None
        if raw is None:
            raise InputFileError(
                str(p),
                "holds weights only (no model_config), so there is no architecture to convert",
                "save the whole model (model.save), not save_weights",
            )
        cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        layers = _walk_layers(cfg)
        _refuse_unsafe(p, layers)
        return ModelFile(str(p), "h5", tuple(c for c, _ in layers))
    hint = "give a Keras 3 .keras file, a legacy .h5 file or a SavedModel folder"
    if suffix == ".tflite":
        hint = "artq quantizes from the float model; for an existing .tflite use `artq inspect`"
    raise InputFileError(str(p), f"unsupported model format {suffix or '(no suffix)'}", hint)
