"""Tiny Keras models built by the tests themselves (TensorFlow imported on demand)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tiny_digits_classifier(path: Path, train_items: int = 2000, epochs: int = 6) -> Path:
    """A small CNN trained for a few seconds on the digits generator (32×32×1, 10 classes)."""
    import keras
    import numpy as np

    from engine.config import PreprocessConfig
    from engine.preprocess import PreprocessSpec, preprocess
    from engine.samples.digits import generate

    keras.utils.set_random_seed(0)
    spec = PreprocessSpec.resolve(PreprocessConfig(), (32, 32, 1))
    g = generate("train", train_items, 7)
    x = preprocess(g.images, spec)
    inp = keras.Input((32, 32, 1))
    # Named layers: Keras numbers unnamed ones per process, and a test may look one up.
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_in")(inp)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_mid")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_out")(h)
    h = keras.layers.GlobalMaxPooling2D()(h)
    out = keras.layers.Dense(10, activation="softmax")(h)
    m = keras.Model(inp, out)
    m.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    m.fit(x, np.asarray(g.labels), epochs=epochs, batch_size=32, verbose=0)
    m.save(path)
    return path


TINY_JOB = """
name = "tiny"
[model]
path = "{model}"
[data.calibration]
kind = "synthetic"
generator = "digits"
split = "calibration"
count = 64
[data.test]
kind = "synthetic"
generator = "digits"
split = "test"
count = {test_count}
[calibration]
samples = 32
[evaluation]
profile = "prototype"
[analysis]
debug_samples = 0
sensitivity_k = 0
[output]
runs_dir = "{runs}"
"""


def tiny_job(tmp: Path, model: Path, test_count: int = 150, extra: str = "") -> Path:
    cfg = tmp / "job.toml"
    cfg.write_text(
        TINY_JOB.format(model=model, runs=tmp / "runs", test_count=test_count) + extra,
        encoding="utf-8",
    )
    return cfg


def skew_activations(src: Path, dst: Path, factor: float = 100.0) -> Path:
    """The same function with a badly skewed activation range: PTQ's nightmare.

    Channel 0 of the second conv is scaled up ``factor`` times (kernel and bias) and the next
    conv's weights from that channel scaled down as much. ReLU is positively homogeneous, so
    the float model computes exactly the same function, but that tensor's per-tensor INT8
    range now spans ``factor`` × the other channels' values, leaving them a couple of levels.
    """
    import keras

    m = keras.models.load_model(src)
    convs = [layer for layer in m.layers if isinstance(layer, keras.layers.Conv2D)]
    c2, c3 = convs[1], convs[2]
    k, b = c2.get_weights()
    k[..., 0] *= factor
    b[0] *= factor
    c2.set_weights([k, b])
    k3, b3 = c3.get_weights()
    k3[:, :, 0, :] /= factor
    c3.set_weights([k3, b3])
    m.save(dst)
    return dst
