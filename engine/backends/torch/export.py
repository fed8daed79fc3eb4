"""FP32 ``nn.Module`` → ONNX with batch 1, and the check that the export kept the model.

TorchScript's exporter (``dynamo=False``): the dynamo exporter, the default in current
PyTorch, breaks on FakeQuantize, and FP32 and QAT models go the same way so they differ only
by their Q/DQ pairs. Opset 13 is the first with per-channel QuantizeLinear.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConversionError, ModelError
from .lib import require_torch

OPSET = 13
INPUT_NAME = "input"


def export_onnx(module: Any, input_shape: Sequence[int], out_path: str | Path,
                what: str = "the model") -> list[str]:
    """Write ``module`` (eval mode) as ONNX with input ``(1, *input_shape)``; the output names."""
    torch = require_torch()
    module.eval()
    dummy = torch.zeros((1, *input_shape), dtype=torch.float32)
    try:
        with torch.no_grad():
            out = module(dummy)
    except Exception as exc:  # noqa: BLE001 - the user's forward
        raise ModelError(f"{what} fails on an input of shape {tuple(dummy.shape)}: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                         "model.input_shape is [C, H, W] for a PyTorch model (NCHW, no batch)") from None
    n_out = len(out) if isinstance(out, list | tuple) else 1
    names = ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(), redirect_stdout(buf), redirect_stderr(buf):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (dummy,), str(out_path), opset_version=OPSET,
                              dynamo=False, input_names=[INPUT_NAME], output_names=names,
                              do_constant_folding=True)
    except Exception as exc:  # noqa: BLE001 - unsupported operators, tracing failures
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"exporting {what} to ONNX failed: {text}",
                              "the model must trace with torch.onnx.export(..., dynamo=False) "
                              f"at opset {OPSET}") from None
    return names


def torch_outputs(module: Any, x: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """``module``'s outputs on ``x`` (NCHW float32), as numpy arrays, one list per output."""
    torch = require_torch()
    outs: list[list[np.ndarray]] = []
    module.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            o = module(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32)))
            o = o if isinstance(o, list | tuple) else [o]
            outs.append([t.detach().numpy() for t in o])
    return [np.concatenate([b[j] for b in outs]) for j in range(len(outs[0]))]


def onnx_outputs(path: str | Path, x: np.ndarray) -> list[np.ndarray]:
    """The exported model's outputs on ``x``, run as every ONNX stage is (onnxruntime, in
    the ONNX backend)."""
    from ..onnx.run import run_onnx  # noqa: PLC0415

    return run_onnx(str(path), np.ascontiguousarray(x, np.float32)).outputs


def compare(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    """The worst output's largest difference, relative to that output's largest magnitude."""
    worst = 0.0
    for r, g in zip(ref, got, strict=True):
        if r.shape != g.shape:
            return float("inf")
        scale = max(float(np.max(np.abs(r))) if r.size else 0.0, 1e-6)
        worst = max(worst, float(np.max(np.abs(r - g))) / scale if r.size else 0.0)
    return worst


#: Float tolerance: an FP32 export of the same graph differs by rounding only (~1e-6).
TOLERANCE = 1e-3


def check_export(module: Any, onnx_path: str | Path, x: np.ndarray) -> float:
    """Stop with "the export changed the model" unless the ONNX file's outputs on ``x`` match
    ``module``'s within float tolerance; returns the relative difference found."""
    ref = torch_outputs(module, x)
    got = onnx_outputs(onnx_path, x)
    diff = compare(ref, got)
    if not diff <= TOLERANCE:
        raise ConversionError(
            f"the export changed the model: {Path(onnx_path).name} differs from the PyTorch "
            f"module by {diff:.3g} (relative) on {len(x)} items, beyond float tolerance "
            f"{TOLERANCE:g}",
            "the forward must not depend on the batch size or on Python-side state "
            "(torch.onnx.export traces one call); check the tracer's warnings in the log")
    return diff
