"""A PyTorch model in a job config (``model.torch``, ``model.weights``): its keys and files
checked, and its summary for the workbench — all without importing torch or the user's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, InputFileError
from .modelfile import ModelFile

if TYPE_CHECKING:
    from .config import JobConfig


def check_model_keys(cfg: JobConfig) -> None:
    """model.path or model.torch (with its weights and input shape), one-line errors."""
    m, src = cfg.model, cfg.source
    if m.path and m.torch:
        raise ConfigError("sets both path and torch; a job quantizes one model",
                          "keep model.path for a model file, or model.torch for PyTorch code",
                          file=src, key="model")
    if not m.path and not m.torch:
        raise ConfigError("is required but missing",
                          'set model.path to a model file, or model.torch = "models.py:build" '
                          "for a PyTorch model", file=src, key="model.path")
    if m.weights and not m.torch:
        raise ConfigError("belongs to a PyTorch model (model.torch)",
                          "remove it: a model file holds its own weights", file=src,
                          key="model.weights")
    if m.torch:
        file, sep, name = m.torch.rpartition(":")
        if not sep or not file or not name.isidentifier():
            raise ConfigError(f"{m.torch!r} is not FILE.py:CALLABLE",
                              'write it like model.torch = "models.py:build"', file=src,
                              key="model.torch")
        if not m.input_shape:
            raise ConfigError("is required for a PyTorch model (its code does not state it)",
                              "set model.input_shape = [C, H, W] (NCHW, without the batch)",
                              file=src, key="model.input_shape")


#: The tasks PyTorch QAT trains: cross-entropy on labels, or distillation without them.
QAT_TASKS = ("classification", "generic")


def check_torch_qat(cfg: JobConfig) -> None:
    """What PyTorch QAT cannot do, refused before any work."""
    if cfg.evaluation.task not in QAT_TASKS:
        raise ConfigError(f"QAT of a PyTorch model trains the {' and '.join(QAT_TASKS)} "
                          f"tasks, not {cfg.evaluation.task}",
                          'use PTQ (quantization.method = "ptq") for this model',
                          file=cfg.source, key="evaluation.task")
    if not cfg.quantization.qat.freeze_batch_norm:
        raise ConfigError("is false, which PyTorch QAT cannot do: BatchNorm is folded into "
                          "the convolutions before QAT (folded BatchNorm is frozen)",
                          "remove the key", file=cfg.source,
                          key="quantization.qat.freeze_batch_norm")


def inspect_torch_model(spec: str, weights: str) -> ModelFile:
    """Check a PyTorch model's config (``model.torch``, ``model.weights``) without importing
    torch or the user's code: the file and the weights exist. ``path`` is the spec."""
    file, _, _ = spec.rpartition(":")
    p = Path(file)
    if not p.is_file():
        raise InputFileError(file, "not found" if not p.exists() else "is not a file",
                             'model.torch names a Python file and a callable in it: '
                             '"models.py:build"')
    if p.suffix != ".py":
        raise InputFileError(file, "is not a Python file (.py)",
                             'model.torch names the .py file holding the model code')
    if weights and not Path(weights).is_file():
        raise InputFileError(weights, "not found", "model.weights is the state_dict file "
                             "(torch.save(model.state_dict(), 'model.pt'))")
    return ModelFile(spec, "torch")


def torch_model_summary(spec: str, weights: str,
                        input_shape: Sequence[int] | None) -> dict[str, Any]:
    """:func:`model_summary`'s dict for a PyTorch model (``model.torch``), without torch:
    what the config states (the code, the weights file, the NCHW input)."""
    code = spec.rpartition(":")[0]
    files = [f for f in (code, weights) if f]
    out: dict[str, Any] = {
        "path": spec, "exists": all(Path(f).is_file() for f in files), "format": "torch",
        "size_bytes": sum(Path(f).stat().st_size for f in files if Path(f).is_file()),
        "inputs": [{"name": "input", "shape": [None, *(input_shape or ())]}], "outputs": [],
        "params": None, "layers": 0, "layer_counts": {}, "error": "",
    }
    from .backends.torch import INSTALL_HINT, torch_available  # noqa: PLC0415 - no torch

    if not torch_available():
        out["error"] = f"PyTorch model; torch is not installed: {INSTALL_HINT}"
    return out
