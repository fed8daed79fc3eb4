"""Synthetic text: 32×128 grey word crops (recognizer) and 240×320 BGR scenes (detector).

Everything is drawn with OpenCV's Hershey fonts, so nothing is downloaded. Each item has
its own RNG from :func:`engine.samples.split_rng`, so an item depends only on
``(seed, split, index)``: the data is reproducible and the splits never overlap.

The diversity is what the guide asks calibration data to have: several font faces, scales,
thicknesses and an italic flag; brightness, contrast, blur and noise; small rotation and
perspective; textured backgrounds (gradients, smooth noise, lines, blobs).

Labels: words give their strings; scenes give one float32 array (K, 4, 2) per image with
each text box's quadrilateral in pixel (x, y), clockwise from top-left.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ConfigError
from . import Generated, split_rng

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
#: The recognizer's charset. Lower case is left out on purpose: with Hershey fonts and a
#: crop whose text height varies, "o/O", "s/S", "x/X"... differ only in absolute size, which
#: a crop does not carry; no model could read them reliably.
WORD_CHARSET = DIGITS + UPPER
#: Scenes mix all three (a detector does not care which letter, and lower case brings
#: ascenders and descenders into the boxes).
SCENE_CHARSET = DIGITS + UPPER + LOWER

WORD_SHAPE = (32, 128)  # H, W
SCENE_SHAPE = (240, 320)  # H, W (the guide's cv2.resize(img, (320, 240)))
WORD_LENGTHS = (3, 10)
SCENE_BOXES = (1, 4)

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)


def random_text(rng: np.random.Generator, charset: str, lengths: tuple[int, int]) -> str:
    n = int(rng.integers(lengths[0], lengths[1] + 1))
    return "".join(charset[i] for i in rng.integers(0, len(charset), n))


def render_mask(text: str, rng: np.random.Generator, height: int = 40) -> np.ndarray:
    """Ink of ``text`` as a float32 alpha mask in [0, 1], cropped to the ink.

    Drawn large (cap height ≈ ``height`` px) with anti-aliasing and a random face, thickness
    and italic flag; callers shrink it, which keeps the strokes smooth at small sizes.
    """
    font = int(FONTS[rng.integers(len(FONTS))])
    if rng.random() < 0.25:
        font |= cv2.FONT_ITALIC
    (_, cap), _ = cv2.getTextSize("H", font, 1.0, 1)
    scale = height / cap
    thickness = int(rng.integers(1, 5)) if font & 0xF != cv2.FONT_HERSHEY_PLAIN else int(
        rng.integers(2, 6)
    )
    (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    pad = thickness + 4
    canvas = np.zeros((h + base + 2 * pad, w + 2 * pad), np.uint8)
    cv2.putText(canvas, text, (pad, pad + h), font, scale, 255, thickness, cv2.LINE_AA)
    ys, xs = np.nonzero(canvas)
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255.0


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a small random grid upsampled smoothly."""
    small = rng.uniform(-1.0, 1.0, (cells, max(2, cells * w // h))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1.0, 1.0)


def background(
    rng: np.random.Generator, h: int, w: int, channels: int, clutter: int = 3
) -> np.ndarray:
    """A textured float32 background in [0, 255]: gradient + smooth noise + lines + blobs.

    ``clutter`` is the most lines (and the most blobs) drawn.
    """
    c0 = rng.uniform(0, 255, channels).astype(np.float32)
    c1 = np.clip(c0 + rng.uniform(-90, 90, channels), 0, 255).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    tx = np.float32(0.5 * np.cos(angle) / w) * np.arange(w, dtype=np.float32)
    ty = np.float32(0.5 * np.sin(angle) / h) * np.arange(h, dtype=np.float32)
    t = (ty[:, None] + tx[None, :] + np.float32(0.5))[..., None]
    img = c0 + (c1 - c0) * t
    if rng.random() < 0.7:
        amp = np.float32(rng.uniform(5, 40))
        img += amp * _smooth_noise(rng, h, w, int(rng.integers(2, 9)))[..., None]
    img = np.ascontiguousarray(img, np.float32)
    # Lines and blobs: structure that is not text, so a detector must learn the difference.
    for _ in range(int(rng.integers(0, clutter + 1))):
        color = tuple(float(v) for v in rng.uniform(0, 255, channels))
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p0, p1, color, int(rng.integers(1, 4)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, clutter + 1))):
        color = tuple(float(v) for v in rng.uniform(0, 255, channels))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(3, max(4, w // 6))), int(rng.integers(3, max(4, h // 4))))
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.8, 3.0)))
    return img.reshape(h, w, channels)


def _text_color(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A colour (per channel) whose brightness differs from ``under``'s by ≥ 70 levels."""
    base = float(np.mean(under))
    for _ in range(20):
        color = rng.uniform(0, 255, under.shape[-1])
        if abs(float(np.mean(color)) - base) >= 70:
            return color
    return np.full(under.shape[-1], 0.0 if base > 127 else 255.0)


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Photometric jitter shared by both generators: contrast, brightness, blur, noise."""
    img = img * np.float32(rng.uniform(0.6, 1.2)) + np.float32(rng.uniform(-40, 40))
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.1)))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0, 10))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _warp_mask(rng: np.random.Generator, mask: np.ndarray, max_deg: float, persp: float):
    """Rotate and perspective-warp ``mask`` on an enlarged canvas.

    Returns the warped mask and the warped ink rectangle's corners (4, 2), clockwise from
    top-left, in the warped mask's coordinates.
    """
    h, w = mask.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-persp, persp, (4, 2)) * np.float32([w, h]) * np.float32([0.25, 1.0])
    dst = src + jitter.astype(np.float32)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    rot = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (dst - dst.mean(0)) @ rot.T
    dst -= dst.min(0)
    out_w, out_h = (int(np.ceil(v)) + 1 for v in dst.max(0))
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(mask, m, (out_w, out_h), flags=cv2.INTER_LINEAR)
    return warped, dst.astype(np.float32)


def word_image(
    rng: np.random.Generator, charset: str = WORD_CHARSET, lengths: tuple[int, int] = WORD_LENGTHS
) -> tuple[np.ndarray, str]:
    """One 32×128 uint8 grey crop of a random word, as a detector's crop would look."""
    text = random_text(rng, charset, lengths)
    mask, _ = _warp_mask(rng, render_mask(text, rng), max_deg=3.0, persp=0.06)
    hh, ww = WORD_SHAPE
    mh, mw = mask.shape
    # Text fills 55–90 % of the crop height, with a mild horizontal stretch; long words are
    # shrunk (keeping their aspect) to fit the width, as a crop resized to 128 px would be.
    scale = rng.uniform(0.55, 0.9) * hh / mh
    stretch = rng.uniform(0.9, 1.1)
    fit = min(1.0, (ww - 4) / (mw * scale * stretch))
    th = max(6, round(mh * scale * fit))
    tw = max(4, min(ww - 2, round(mw * scale * stretch * fit)))
    small = cv2.resize(mask, (tw, th), interpolation=cv2.INTER_AREA)
    y0 = int(rng.integers(0, hh - th + 1))
    x0 = int(rng.integers(0, ww - tw + 1))
    # Little clutter in a crop: a blob over a character would make the label unreadable.
    img = background(rng, hh, ww, 1, clutter=1)[:, :, 0]
    color = _text_color(rng, img[y0 : y0 + th, x0 : x0 + tw, None])[0]
    region = img[y0 : y0 + th, x0 : x0 + tw]
    img[y0 : y0 + th, x0 : x0 + tw] = region * (1 - small) + color * small
    return _finish(rng, img), text


def scene_image(
    rng: np.random.Generator, charset: str = SCENE_CHARSET, boxes: tuple[int, int] = SCENE_BOXES
) -> tuple[np.ndarray, np.ndarray]:
    """One 240×320 uint8 BGR scene and its text quads (K, 4, 2) float32."""
    hh, ww = SCENE_SHAPE
    img = background(rng, hh, ww, 3)
    want = int(rng.integers(boxes[0], boxes[1] + 1))
    quads: list[np.ndarray] = []
    taken: list[tuple[float, float, float, float]] = []
    for _ in range(want * 15):
        if len(quads) == want:
            break
        text = random_text(rng, charset, WORD_LENGTHS)
        mask, corners = _warp_mask(rng, render_mask(text, rng), max_deg=10.0, persp=0.04)
        # Text height 10–36 px; shrink long words to at most 90 % of the width.
        scale = rng.uniform(10, 36) / 40.0
        scale = min(scale, 0.9 * ww / mask.shape[1], 0.6 * hh / mask.shape[0])
        mh = max(4, round(mask.shape[0] * scale))
        mw = max(4, round(mask.shape[1] * scale))
        sx, sy = mw / mask.shape[1], mh / mask.shape[0]
        if mw >= ww - 8 or mh >= hh - 8:
            continue
        x0 = int(rng.integers(4, ww - mw - 4))
        y0 = int(rng.integers(4, hh - mh - 4))
        box = (x0 - 4, y0 - 4, x0 + mw + 4, y0 + mh + 4)
        if any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3] for t in taken):
            continue
        small = cv2.resize(mask, (mw, mh), interpolation=cv2.INTER_AREA)[..., None]
        region = img[y0 : y0 + mh, x0 : x0 + mw]
        color = _text_color(rng, region)
        img[y0 : y0 + mh, x0 : x0 + mw] = region * (1 - small) + color[None, None, :] * small
        quads.append(corners * np.float32([sx, sy]) + np.float32([x0, y0]))
        taken.append(box)
    q = np.asarray(quads, np.float32).reshape(-1, 4, 2)
    # A small whole-scene perspective (camera tilt), applied to the quads too.
    src = np.float32([[0, 0], [ww, 0], [ww, hh], [0, hh]])
    dst = src + rng.uniform(-0.03, 0.03, (4, 2)).astype(np.float32) * np.float32([ww, hh])
    m = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, m, (ww, hh), borderMode=cv2.BORDER_REFLECT)
    if len(q):
        q = cv2.perspectiveTransform(q.reshape(1, -1, 2), m).reshape(-1, 4, 2)
    # A box the warp pushed past the border is kept (clipped), as a camera would cut it.
    q[..., 0] = q[..., 0].clip(0, ww - 1)
    q[..., 1] = q[..., 1].clip(0, hh - 1)
    return _finish(rng, img), q.astype(np.float32)


def _check(split: str, count: int) -> None:
    from . import SPLITS

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
    if count < 0:
        raise ConfigError(f"count must be ≥ 0, got {count}")


def make_words(
    split: str,
    count: int,
    seed: int,
    charset: str = WORD_CHARSET,
    lengths: tuple[int, int] = WORD_LENGTHS,
    start: int = 0,
) -> Generated:
    """``count`` word crops of ``split`` (items ``start``..``start+count-1``)."""
    _check(split, count)
    if not charset or len(set(charset)) != len(charset):
        raise ConfigError(f"charset {charset!r} is empty or repeats a character")
    images, labels = [], []
    for i in range(start, start + count):
        img, text = word_image(split_rng(seed, split, i), charset, lengths)
        images.append(img)
        labels.append(text)
    return Generated(images, labels)


def make_scenes(split: str, count: int, seed: int, start: int = 0) -> Generated:
    """``count`` scenes of ``split`` (items ``start``..``start+count-1``)."""
    _check(split, count)
    images, labels = [], []
    for i in range(start, start + count):
        img, quads = scene_image(split_rng(seed, split, i))
        images.append(img)
        labels.append(quads)
    return Generated(images, labels)


def ocr_words(split: str, count: int, seed: int) -> Generated:
    """Registered generator: 32×128 grey word crops over digits + upper case, 3–10 chars."""
    return make_words(split, count, seed)


def ocr_scenes(split: str, count: int, seed: int) -> Generated:
    """Registered generator: 240×320 BGR scenes with 1–4 text boxes and their quads."""
    return make_scenes(split, count, seed)
