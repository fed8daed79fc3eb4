"""The one preprocessing function.

Calibration, evaluation and training all call :func:`preprocess`, so the three can never
diverge (the guide's most common failure: a model calibrated on [0, 255] and evaluated on
[0, 1]). Raw images arrive as uint8 in OpenCV's order: BGR for colour, H×W or H×W×1 for
grey. The output is float32 H×W×C ready for the model's input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .config import PreprocessConfig
from .errors import DataError

_INTERP = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "cubic": cv2.INTER_CUBIC,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """Preprocessing resolved against a model input: every field concrete."""

    height: int
    width: int
    color: str  # rgb | bgr | gray
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "area"

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @classmethod
    def resolve(cls, cfg: PreprocessConfig, input_shape: Sequence[int]) -> PreprocessSpec:
        """Fill the config's defaults from a model input shape (H, W, C), batch excluded."""
        if len(input_shape) != 3:
            raise DataError(
                f"the model input has shape {tuple(input_shape)}; image preprocessing needs (H, W, C)",
                "give model-ready arrays (kind = \"npz\" or \"npy_dir\" with raw = false)",
            )
        h, w, c = (int(v) for v in input_shape)
        if c not in (1, 3):
            raise DataError(
                f"the model input has {c} channels; image preprocessing handles 1 (gray) or 3 (rgb/bgr)",
                "give model-ready arrays with raw = false",
            )
        color = cfg.color or ("gray" if c == 1 else "rgb")
        if (color == "gray") != (c == 1):
            raise DataError(
                f"preprocessing.color = {color!r} gives {1 if color == 'gray' else 3} channel(s) "
                f"but the model input has {c}",
                "set preprocessing.color to match the model",
            )
        rh, rw = cfg.resize if cfg.resize else (h, w)
        if (rh, rw) != (h, w):
            raise DataError(
                f"preprocessing.resize = [{rh}, {rw}] but the model input is {h}×{w}",
                "remove preprocessing.resize or set it to the model's input size",
            )
        mean, std = tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)
        for name, vals in (("mean", mean), ("std", std)):
            if len(vals) not in (1, c):
                raise DataError(
                    f"preprocessing.{name} has {len(vals)} values; the model has {c} channel(s)",
                    "give one value, or one per channel",
                )
        return cls(h, w, color, float(cfg.scale), mean, std, cfg.interpolation)

    def to_dict(self) -> dict[str, object]:
        return {
            "height": self.height,
            "width": self.width,
            "color": self.color,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }


def preprocess_one(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """One raw uint8 image (BGR or grey) → float32 H×W×C for the model."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        if spec.color != "gray":
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            if spec.color == "rgb":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        if img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if spec.color == "gray":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif spec.color == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise DataError(f"an image of shape {img.shape} is not H×W, H×W×1, H×W×3 or H×W×4")
    if img.shape[:2] != (spec.height, spec.width):
        img = cv2.resize(img, (spec.width, spec.height), interpolation=_INTERP[spec.interpolation])
    out = img.astype(np.float32)
    if out.ndim == 2:
        out = out[:, :, None]
    out *= np.float32(spec.scale)
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    if np.any(mean != 0):
        out -= mean
    if np.any(std != 1):
        out /= std
    return out


def preprocess(images: Iterable[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """A batch of raw images → float32 (N, H, W, C). Same path for every split."""
    imgs = list(images)
    out = np.empty((len(imgs), spec.height, spec.width, spec.channels), np.float32)
    for i, img in enumerate(imgs):
        try:
            out[i] = preprocess_one(img, spec)
        except DataError as exc:
            raise DataError(f"item {i}: {exc.message}", exc.hint) from None
    return out
