"""Neural-ART placement, memory and time for a ``.tflite`` or an ONNX QDQ ``.onnx``, without
TensorFlow or onnxruntime.

    from engine.npu import analyze, load_target, headline, stedgeai_commands
    a = analyze("int8.tflite", target="stm32n6570-dk")
    a.to_dict()       # JSON contract, schema "artq.npu/1"
    a.to_markdown()   # for report.md

A job that holds the parsed model and the loaded target passes them, so nothing is read
twice, and hands the INT8 analysis to the headline:

    tgt = load_target(name)                       # once per job
    a = analyze(read_model("int8.tflite"), tgt)   # or analyze("int8.tflite", tgt)
    h = headline("fp32.tflite", a, tgt)           # reuses a; reads only the FP32 file

An ONNX model is the same call: ``analyze("int8.onnx", tgt)`` (or ``read_onnx`` from
engine.onnx); engine.onnx.reader builds the same operator view, QDQ folded.

driver.py runs the phases (fold → place → memory → cost → epochs → advice), one module each.
"""

from __future__ import annotations

from .driver import ModelSource, analyze, analyze_model
from .headline import headline, headline_markdown
from .result import SCHEMA, Analysis, LayerResult
from .stedgeai import stedgeai_commands
from .targets import Target, bundled_targets, load_target

__all__ = [
    "SCHEMA",
    "Analysis",
    "LayerResult",
    "ModelSource",
    "Target",
    "analyze",
    "analyze_model",
    "bundled_targets",
    "headline",
    "headline_markdown",
    "load_target",
    "stedgeai_commands",
]
