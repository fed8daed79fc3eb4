"""Run an ``.onnx`` stage over a test set with onnxruntime's CPU provider.

Threads as the LiteRT path has them (:func:`engine.evaluate.run_model`): ``workers`` threads,
each running one item at a time with one intra-op thread, sharing one session (its ``run``
is thread-safe and releases the GIL). A model with an integer input or outputs
(``quantization.io_type``) is fed and read as the LiteRT path feeds a ``.tflite``: the
float items quantized with the input's scale and zero point (rounded half away from zero
and clipped, :func:`engine.evaluate.quantize`), the outputs dequantized, so every stage is
compared in float. The scales are the model's own (io_types.model_io), not a side file's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...cancel import CancelToken
from ...errors import EvaluationError, InputFileError
from ...evaluate import RunResult, dequantize, quantize, run_in_chunks
from ...events import Sink, null_sink
from .io_types import model_io


def session(path: str | bytes, threads: int = 1) -> Any:
    """An onnxruntime CPU session on a model file (or a serialized model)."""
    import onnxruntime as ort  # noqa: PLC0415 - only the ONNX backend imports it

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: warnings about unused initializers are noise
    try:
        model = path if isinstance(path, bytes) else str(path)
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors, as one line
        where = "the model" if isinstance(path, bytes) else str(path)
        raise InputFileError(where, f"onnxruntime cannot load it ({exc})") from None


def run_onnx(
    path: str,
    x: np.ndarray,
    *,
    workers: int = 0,
    stage: str = "evaluate",
    sink: Sink = null_sink,
    cancel: CancelToken | None = None,
    log_path: str | None = None,  # noqa: ARG001 - same signature as run_model
) -> RunResult:
    """All items of ``x`` (float32, (N, ...), the model's layout) through the model; float32
    outputs (dequantized where the model's are integer)."""
    import onnx  # noqa: PLC0415

    n = len(x)
    workers = min(workers or os.cpu_count() or 1, max(n, 1))
    sess = session(path)
    try:
        ios = model_io(onnx.load(str(path), load_external_data=False))
    except EvaluationError as exc:
        raise EvaluationError(f"{path}: {exc.message}", exc.hint) from None
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if len(inputs) != 1:
        raise EvaluationError(f"{path}: {len(inputs)} inputs; artq evaluates single-input models")
    name = inputs[0].name
    shape = tuple(inputs[0].shape[1:])
    if tuple(x.shape[1:]) != shape:
        raise EvaluationError(
            f"{path}: the data has items of shape {x.shape[1:]} but the model input is {shape}",
            "check preprocessing.resize, preprocessing.layout and the data")
    tin = ios[0][0]
    tout = {t.name: t for t in ios[1]}
    first = sess.run(None, {name: quantize(x[:1], tin)}) if n else []
    raw = [np.empty((n, *o.shape[1:]), o.dtype) for o in first]
    names = [o.name for o in outputs]

    def items(_w: int, a: int, b: int) -> bool:
        # One session serves every thread: onnxruntime's run() is thread-safe. Each worker
        # quantizes its own chunk, as the LiteRT path does.
        xs = quantize(x[a:b], tin)
        for i in range(a, b):
            if cancel is not None and cancel.cancelled:
                return False
            for k, o in enumerate(sess.run(names, {name: xs[i - a : i - a + 1]})):
                raw[k][i] = o[0]
        return True

    seconds = run_in_chunks(n, workers, items, stage=stage, sink=sink, cancel=cancel)
    return RunResult([dequantize(r, tout[k]) for r, k in zip(raw, names, strict=True)],
                     seconds, workers)
