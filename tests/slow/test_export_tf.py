"""The export a job starts from: a SavedModel of the serving function and its variables,
and Keras's own export when that function reads a resource the variables do not hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _fp32_outputs(saved_model: Path, x: np.ndarray, tmp: Path) -> np.ndarray:
    from engine.backends.tf import convert
    from engine.evaluate import run_model

    convert.convert(str(saved_model), "fp32", str(tmp / "fp32.tflite"))
    return run_model(str(tmp / "fp32.tflite"), x, workers=1).outputs[0]


def test_the_lean_export_computes_the_keras_model(tmp_path: Path) -> None:
    import keras

    from engine.backends.tf.convert import export_keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.5)(h)  # a seed generator's state: a variable of its own
    out = keras.layers.Dense(3)(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)

    def no_fallback(*args: object, **kwargs: object) -> None:
        raise AssertionError("the lean export failed and fell back to Keras's")

    model.export = no_fallback  # this test is about the lean SavedModel itself
    info = export_keras(model, "m.keras", None, str(tmp_path / "sm"))
    assert info["outputs"][0]["signature"] == "output_0"
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    got = _fp32_outputs(tmp_path / "sm", x, tmp_path)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_a_lookup_table_falls_back_to_keras_export(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    from engine.backends.tf.convert import export_keras

    class Offset(keras.layers.Layer):
        """Adds a constant read from a hash table: a resource, not a variable."""

        def __init__(self) -> None:
            super().__init__()
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer([0], [0.25]), default_value=0.0)

        def call(self, x):  # noqa: ANN001, ANN201
            return x + self.table.lookup(tf.constant([0]))[0]

    inp = keras.Input((4, 4, 1))
    out = Offset()(keras.layers.Conv2D(2, 1)(inp))
    model = keras.Model(inp, out)
    export_keras(model, "m.keras", None, str(tmp_path / "sm"))
    # (TFLite's builtins have no hash table: the conversion would then say so.)
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    x = np.random.default_rng(1).random((1, 4, 4, 1), dtype=np.float32)
    got = serve(tf.constant(x))["output_0"].numpy()
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
