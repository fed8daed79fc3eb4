"""The digits sample: a 10-class classifier on digits rendered with OpenCV.

Each item is one digit in a random Hershey font, scale, stroke and position, on a textured
background, with the diversity the guide asks calibration data to have: brightness,
contrast, blur, noise and small rotations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def build_model(k: Any = None) -> Any:
    """A small CNN: three conv blocks, global pooling, dense, softmax (NPU-friendly ops)."""
    if k is None:
        import keras as k  # noqa: PLC0415

    L = k.layers
    inp = k.Input((SIZE, SIZE, 1), name="image")
    x = inp
    for i, filters in enumerate((16, 32, 64)):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = L.BatchNormalization(name=f"bn{i + 1}")(x)
        x = L.ReLU(name=f"relu{i + 1}")(x)
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}b")(x)
        x = L.BatchNormalization(name=f"bn{i + 1}b")(x)
        x = L.ReLU(name=f"relu{i + 1}b")(x)
        if i < 2:
            x = L.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(10, name="logits")(x)
    out = L.Softmax(name="probs")(x)
    return k.Model(inp, out, name="digits")


def train(out_path: Path, seed: int, epochs: int | None, log: Callable[[str], None]) -> dict[str, Any]:
    """Train on 12,000 rendered digits; preprocessing from sample_configs/digits_ptq.toml."""
    import keras  # noqa: PLC0415

    from ..config import load_config  # noqa: PLC0415
    from ..preprocess import PreprocessSpec, preprocess  # noqa: PLC0415

    cfg = load_config(Path(__file__).resolve().parents[2] / "sample_configs" / "digits_ptq.toml")
    spec = PreprocessSpec.resolve(cfg.preprocessing, (SIZE, SIZE, 1))
    keras.utils.set_random_seed(seed)
    n_train, n_val, n_test = 12000, 1000, 2000
    epochs = epochs or 8
    t0 = time.perf_counter()
    tr = generate("train", n_train, seed)
    va = generate("validation", n_val, seed)
    te = generate(cfg.data.test.split, n_test, cfg.data.test.seed)
    xtr, xva, xte = (preprocess(g.images, spec) for g in (tr, va, te))
    log(f"data: {n_train} train, {n_val} validation, {n_test} test ({time.perf_counter() - t0:.1f} s)")
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    sched = keras.callbacks.LearningRateScheduler(lambda e: 2e-3 * (0.6**e))
    hist = model.fit(xtr, tr.labels, validation_data=(xva, va.labels), epochs=epochs,
                     batch_size=64, verbose=0, callbacks=[sched])
    for e, (loss, acc) in enumerate(zip(hist.history["loss"], hist.history["val_accuracy"], strict=True)):
        log(f"epoch {e + 1}/{epochs}: loss {loss:.4f}, validation accuracy {acc:.4f}")
    test_acc = float(np.mean(np.argmax(model.predict(xte, verbose=0), axis=1) == te.labels))
    # Save an uncompiled copy: the optimizer state would triple the file for nothing.
    clean = build_model()
    clean.set_weights(model.get_weights())
    clean.save(out_path)
    return {
        "seed": seed,
        "epochs": epochs,
        "train_items": n_train,
        "validation_items": n_val,
        "test_items": n_test,
        "batch": 64,
        "optimizer": "Adam, 2e-3 × 0.6 per epoch",
        "fp32_metrics": {"top1": round(test_acc, 4)},
        "train_seconds": round(time.perf_counter() - t0, 1),
        "params": int(model.count_params()),
    }
