"""Bundled samples: synthetic data generators and small models trained on them.

Nothing here downloads anything. A generator renders raw uint8 images (BGR colour or grey,
as OpenCV gives) with their labels, deterministically from ``(seed, split, index)`` so the
train, validation, calibration and test splits never overlap. Models are trained by
``artq samples train NAME``, which runs the sample's data through the same
:func:`engine.preprocess.preprocess` as calibration and evaluation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

WEIGHTS_DIR = Path(__file__).parent / "weights"
SPLITS = ("train", "validation", "calibration", "test")


@dataclass(frozen=True)
class Generated:
    """Raw images and their labels (format set by the task: int classes, strings, quads)."""

    images: list[np.ndarray]
    labels: Any


@dataclass(frozen=True)
class SampleSpec:
    name: str
    description: str
    task: str
    #: Module under engine.samples holding ``build_model`` and ``train``.
    module: str
    #: Weights file under engine/samples/weights/.
    weights: str
    #: Sample config (under sample_configs/) whose preprocessing training uses.
    config: str
    #: Whose backend trains it: "tf" (Keras) or "torch" (PyTorch, module under
    #: engine.backends.torch.samples, weights a state_dict).
    framework: str = "tf"
    #: ONNX samples: the Keras sample exported (``artq samples export-onnx NAME``), not trained.
    exported_from: str = ""


# name -> (module under engine.samples, function name)
GENERATORS: dict[str, tuple[str, str]] = {
    "digits": ("digits", "generate"),
    "ocr_words": ("synth_text", "ocr_words"),
    "ocr_scenes": ("synth_text", "ocr_scenes"),
}

SAMPLES: dict[str, SampleSpec] = {
    "digits": SampleSpec(
        "digits",
        "10-class digit classifier on rendered, noisy 32×32 grey digits",
        "classification",
        "digits",
        "digits.keras",
        "digits_ptq.toml",
    ),
    "crnn_conv": SampleSpec(
        "crnn_conv",
        "CRNN text recognizer with a convolutional sequence head (all on the NPU), "
        "32×128 grey word crops, CTC over digits + upper case",
        "ctc",
        "crnn",
        "crnn_conv.keras",
        "ocr_crnn_conv.toml",
    ),
    "crnn_lstm": SampleSpec(
        "crnn_lstm",
        "CRNN text recognizer with the classic bidirectional-LSTM head (the LSTM runs on the "
        "CPU, not the NPU), 32×128 grey word crops, CTC over digits + upper case",
        "ctc",
        "crnn",
        "crnn_lstm.keras",
        "ocr_crnn_lstm.toml",
    ),
    "east": SampleSpec(
        "east",
        "EAST-style text detector (light backbone: MobileNet-style separable convs at 1/4, "
        "plain 3×3 below; U-shaped merge), 240×320 RGB scenes → score map + RBOX geometry "
        "at 1/4 resolution",
        "east",
        "east",
        "east.keras",
        "ocr_east.toml",
    ),
    "digits_torch": SampleSpec(
        "digits_torch",
        "the digits classifier written in PyTorch (same layers, data and preprocessing), "
        "quantized by QAT and exported to ONNX QDQ",
        "classification",
        "digits",
        "digits_torch.pt",
        "digits_torch_qat.toml",
        framework="torch",
    ),
    "digits_onnx": SampleSpec(
        "digits_onnx",
        "The digits classifier as an FP32 ONNX model with a channels-first 1×1×32×32 input, "
        "as a PyTorch export has it",
        "classification",
        "",
        "digits.onnx",
        "digits_onnx.toml",
        exported_from="digits",
    ),
    "crnn_conv_onnx": SampleSpec(
        "crnn_conv_onnx",
        "The convolutional CRNN text recognizer as an FP32 ONNX model with a channels-first "
        "1×1×32×128 input",
        "ctc",
        "",
        "crnn_conv.onnx",
        "ocr_crnn_conv_onnx.toml",
        exported_from="crnn_conv",
    ),
}


def split_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The RNG for one item: distinct streams per split, so splits never share an item."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def generator(name: str, key: str = "") -> Callable[[str, int, int], Generated]:
    """The generator called ``name``; ``key`` (data.test.generator) names it in an error."""
    if name not in GENERATORS:
        raise ConfigError(
            f"unknown generator {name!r}", f"known generators: {', '.join(sorted(GENERATORS))}",
            key=key,
        )
    module, func = GENERATORS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), func)


def generate(name: str, split: str, count: int, seed: int) -> Generated:
    """``count`` items of ``split`` from generator ``name`` (deterministic)."""
    return generator(name)(split, count, seed)
