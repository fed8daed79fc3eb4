"""PyTorch's backend: the user's own ``nn.Module`` in, ONNX out.

A PyTorch model reaches the N6 as ONNX, so this backend's job ends at ``.onnx`` files: the
FP32 module exported with batch 1 (checked against PyTorch's own outputs), and for QAT the
fake-quantized module exported as QuantizeLinear/DequantizeLinear pairs. Everything after
(FP16, PTQ, evaluation, placement) is the ONNX path's. Only this package imports torch, and
only when a function here runs: importing it without torch installed is fine; calling it
says how to install torch (:func:`require_torch`).
"""

from __future__ import annotations

import importlib.util
import sys

from ...errors import ModelError

#: What a user types to get torch; CPU-only machines need PyTorch's CPU wheel index.
INSTALL_HINT = ('pip install -e ".[torch]" (on a CPU-only machine install torch==2.13.0 from '
                "https://download.pytorch.org/whl/cpu first, or pip pulls the CUDA build)")


def torch_available() -> bool:
    if "torch" in sys.modules:  # imported already, or blocked (sys.modules["torch"] = None)
        return sys.modules["torch"] is not None
    return importlib.util.find_spec("torch") is not None


def missing_torch() -> ModelError:
    """The one line a PyTorch config gets when torch is not installed."""
    return ModelError("this config has a PyTorch model (model.torch) and torch is not "
                      "installed", INSTALL_HINT)
