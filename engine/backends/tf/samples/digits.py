"""The digits sample's Keras CNN and its training (its data: :mod:`engine.samples.digits`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ....samples.digits import SIZE, generate


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

    from ....config import load_config  # noqa: PLC0415
    from ....preprocess import PreprocessSpec, preprocess  # noqa: PLC0415

    cfg = load_config(Path(__file__).resolve().parents[4] / "sample_configs" / "digits_ptq.toml")
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
