"""The digits sample: a 10-class classifier on digits rendered with OpenCV.

Each item is one digit in a random Hershey font, scale, stroke and position, on a textured
background, with the diversity the guide asks calibration data to have: brightness,
contrast, blur, noise and small rotations.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import Generated, split_rng

SIZE = 32
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
)


def render(rng: np.random.Generator, digit: int) -> np.ndarray:
    """One 32×32 grey uint8 image of ``digit``."""
    big = 64  # draw at 2× and shrink: smoother strokes
    bg = rng.uniform(0, 90)
    img = np.full((big, big), bg, np.float32)
    # Textured background: a gradient and a few faint lines.
    gx = np.linspace(0, rng.uniform(-40, 40), big, dtype=np.float32)
    img += gx[None, :] if rng.random() < 0.5 else gx[:, None]
    for _ in range(rng.integers(0, 3)):
        p1 = tuple(int(v) for v in rng.integers(0, big, 2))
        p2 = tuple(int(v) for v in rng.integers(0, big, 2))
        cv2.line(img, p1, p2, float(rng.uniform(0, 120)), int(rng.integers(1, 3)))
    font = FONTS[int(rng.integers(len(FONTS)))] | (cv2.FONT_ITALIC if rng.random() < 0.25 else 0)
    scale = rng.uniform(1.3, 2.1)
    thick = int(rng.integers(2, 6))
    text = str(digit)
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    cx = big / 2 + rng.uniform(-6, 6)
    cy = big / 2 + rng.uniform(-6, 6)
    org = (int(cx - w / 2), int(cy + h / 2))
    fg = rng.uniform(150, 255)
    # OpenCV draws text on 8-bit images only: draw a mask and blend it in float.
    mask = np.zeros((big, big), np.uint8)
    cv2.putText(mask, text, org, font, scale, 255, thick, cv2.LINE_AA)
    alpha = mask.astype(np.float32) / 255.0
    img = img * (1.0 - alpha) + fg * alpha
    m = cv2.getRotationMatrix2D((big / 2, big / 2), rng.uniform(-12, 12), rng.uniform(0.85, 1.1))
    img = cv2.warpAffine(img, m, (big, big), borderMode=cv2.BORDER_REFLECT)
    k = int(rng.choice([0, 3, 5]))
    if k:
        img = cv2.GaussianBlur(img, (k, k), 0)
    img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    contrast = rng.uniform(0.6, 1.3)
    brightness = rng.uniform(-30, 30)
    img = (img - img.mean()) * contrast + img.mean() + brightness
    img += rng.normal(0, rng.uniform(0, 12), img.shape)
    if rng.random() < 0.3:  # dark text on light paper as often as not
        img = 255.0 - img
    return np.clip(img, 0, 255).astype(np.uint8)


def generate(split: str, count: int, seed: int) -> Generated:
    images, labels = [], []
    for i in range(count):
        rng = split_rng(seed, split, i)
        d = int(rng.integers(10))
        images.append(render(rng, d))
        labels.append(d)
    return Generated(images, np.asarray(labels, np.int64))
