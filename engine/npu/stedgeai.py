"""The ST Edge AI Core command lines that check artq's prediction with ST's own tools."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def stedgeai_commands(model_path: str | os.PathLike[str]) -> list[str]:
    """ST Edge AI Core command lines that check artq's prediction on a machine with ST's tools:
    analyze (placement and memory), generate (the Neural-ART C code and its epoch report)
    and validate (on the board: accuracy metrics of the deployed model).

    ST's compiler takes an INT8 ``.tflite`` and an ONNX QDQ ``.onnx`` alike, with the same
    options, so the lines differ only in ``--model`` (``int8.onnx`` for an ONNX run)."""
    m = shlex.quote(str(Path(model_path)))
    return [
        f"stedgeai analyze --model {m} --target stm32n6 --st-neural-art",
        f"stedgeai generate --model {m} --target stm32n6 --st-neural-art "
        "--optimization time --compression none --output ./generated",
        f"stedgeai validate --model {m} --target stm32n6 --st-neural-art --mode target "
        "--desc serial:921600 --verbosity 2",
    ]
