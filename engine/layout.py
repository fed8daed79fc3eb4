"""Channels-first models (most ONNX exports from PyTorch) and the one data view.

artq reads, preprocesses and diagnoses every item as H×W×C (images as OpenCV gives them);
a model whose input is C×H×W gets its items reordered at the model's edge only, so the same
image folder or ``.npz`` feeds a Keras and an ONNX model alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def detect(shape: Sequence[int]) -> str | None:
    """``nchw`` or ``nhwc`` for an image input (batch excluded), from where its 1 or 3
    channels sit; None when it is not an image or the shape does not say (3×32×3)."""
    if len(shape) != 3:
        return None
    first, last = shape[0] in (1, 3), shape[-1] in (1, 3)
    if first and not last:
        return "nchw"
    if last and not first:
        return "nhwc"
    return None


def resolve(given: str | None, model_shape: Sequence[int]) -> str:
    """``preprocessing.layout`` when set, else the layout the model's input shows."""
    return given or detect(model_shape) or "nhwc"


def data_view(model_shape: tuple[int, ...], layout: str | None) -> tuple[int, ...]:
    """The item shape artq's data has for a model input shape (batch excluded)."""
    if layout == "nchw" and len(model_shape) == 3:
        c, h, w = model_shape
        return (h, w, c)
    return tuple(model_shape)


def to_model(x: np.ndarray, layout: str | None) -> np.ndarray:
    """A batch in artq's view (N, H, W, C) → the model's layout."""
    if layout == "nchw" and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def from_model(x: np.ndarray, layout: str | None) -> np.ndarray:
    """A batch in the model's layout → artq's view (model-ready arrays given as C×H×W)."""
    if layout == "nchw" and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x
