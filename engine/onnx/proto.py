"""The ONNX protobuf schema, loaded without the rest of the ``onnx`` package.

``import onnx`` costs about a second (its helpers import numpy and ml_dtypes), twice
``artq inspect``'s whole budget; the generated schema module alone loads in ~40 ms. It is
registered under its own name, ``onnx.onnx_ml_pb2``, so a later ``import onnx`` in the same
process reuses it (one descriptor pool entry, the same ModelProto class).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

_NAME = "onnx.onnx_ml_pb2"


def schema() -> ModuleType:
    """The ``onnx_ml_pb2`` module (ModelProto, TensorProto, ...)."""
    mod = sys.modules.get(_NAME)
    if mod is not None:
        return mod
    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the onnx package is not installed")
    path = f"{next(iter(spec.submodule_search_locations))}/onnx_ml_pb2.py"
    mspec = importlib.util.spec_from_file_location(_NAME, path)
    if mspec is None or mspec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(mspec)
    sys.modules[_NAME] = mod
    try:
        mspec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[_NAME]
        raise
    return mod


def parse_model(data: bytes) -> Any:
    """A ModelProto parsed from bytes (protobuf's DecodeError on garbage)."""
    model = schema().ModelProto()
    model.ParseFromString(data)
    return model


def infer_shapes(model: Any) -> Any:
    """The model with value_info filled by onnx's own shape inference.

    Imports the whole ``onnx`` package (about a second), so the reader calls it only when
    the file leaves a layer's shape unstated; exporters and artq's quantizer state them.
    """
    import onnx.shape_inference  # noqa: PLC0415 - slow import, needed only here

    return onnx.shape_inference.infer_shapes(model)
