"""The ST Edge AI Core command lines that check artq's prediction with ST's own tools."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ..tflite.model import Model

#: The I/O types ST Edge AI Core's --input-data-type / --output-data-type take.
_IO_TYPES = ("float32", "int8", "uint8")


def stedgeai_commands(model_path: str | os.PathLike[str], model: Model | None = None) -> list[str]:
    """ST Edge AI Core command lines that check artq's prediction on a machine with ST's tools:
    analyze (placement and memory), generate (the Neural-ART C code and its epoch report)
    and validate (on the board: accuracy metrics of the deployed model).

    ST's compiler takes an INT8 ``.tflite`` and an ONNX QDQ ``.onnx`` alike. It keeps a
    ``.tflite``'s I/O types, but not an ONNX quantized model's float32 I/O, which it aligns
    with the int8 activations (ST Edge AI Core's "How to change the I/O data type or
    layout"). So for an ``.onnx`` given with its read ``model`` the lines say the graph's
    own types with ``--input-data-type`` / ``--output-data-type``: what artq evaluated is
    what is deployed (float32 I/O kept for ``io_type = "float32"``, uint8 for ``"uint8"``)."""
    m = shlex.quote(str(Path(model_path)))
    io = _onnx_io_flags(model) if str(model_path).lower().endswith(".onnx") else ""
    return [
        f"stedgeai analyze --model {m} --target stm32n6 --st-neural-art{io}",
        f"stedgeai generate --model {m} --target stm32n6 --st-neural-art{io} "
        "--optimization time --compression none --output ./generated",
        f"stedgeai validate --model {m} --target stm32n6 --st-neural-art{io} --mode target "
        "--desc serial:921600 --verbosity 2",
    ]


def _onnx_io_flags(model: Model | None) -> str:
    """`` --input-data-type T --output-data-type T`` from the graph's I/O; a side whose
    tensors differ in type (or have one the options do not take) gets no flag."""
    if model is None:
        return ""
    sg = model.main
    flags = ""
    for opt, idx in (("--input-data-type", sg.inputs), ("--output-data-type", sg.outputs)):
        types = {sg.tensors[i].dtype for i in idx}
        if len(types) == 1 and (t := types.pop()) in _IO_TYPES:
            flags += f" {opt} {t}"
    return flags
