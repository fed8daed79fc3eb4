"""A tf-keras .h5 whose layers are TFOpLambda (tf.compat.v1.shape, tf.reshape, tf.tile and a
slice) converts and evaluates end to end: those layers name a TensorFlow op, no code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from conftest import ROOT
from models import tiny_job

from engine import load_config, run_job
from engine.errors import ModelError

# Built with tf-keras (TF_USE_LEGACY_KERAS=1): TensorFlow functions called on its Keras
# tensors become TFOpLambda layers, as in ST's model zoo .h5 files. Trained a few seconds on
# the digits generator so the INT8 comparison has something to agree on.
BUILD = """
import os, sys, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {root!r})
import numpy as np, tensorflow as tf, tf_keras as k
from engine.config import PreprocessConfig
from engine.preprocess import PreprocessSpec, preprocess
from engine.samples.digits import generate
k.utils.set_random_seed(0)  # python, numpy and TF: one training on every machine
g = generate("train", 1500, 7)
x = preprocess(g.images, PreprocessSpec.resolve(PreprocessConfig(), (32, 32, 1)))
inp = k.Input((32, 32, 1))
h = k.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
h = k.layers.MaxPooling2D(4)(h)
h = k.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
batch = tf.compat.v1.shape(h)[0]
h = tf.reshape(h, [batch, 8 * 8 * 16])
h = tf.tile(h[:, :512], [1, 2])
out = k.layers.Dense(10, activation="softmax")(h)
m = k.Model(inp, out)
m.compile(k.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
m.fit(x, np.asarray(g.labels), epochs=4, batch_size=32, verbose=0)
m.save({path!r})
print(json.dumps(sorted({{type(layer).__name__ for layer in m.layers}})))
"""


def _build(path: Path) -> list[str]:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    out = subprocess.run([sys.executable, "-c", BUILD.format(root=str(ROOT), path=str(path))],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_tf_op_lambda_model_converts_and_evaluates_end_to_end(tmp_path: Path) -> None:
    model = tmp_path / "ops.h5"
    classes = _build(model)
    assert {"TFOpLambda", "SlicingOpLambda"} <= set(classes)
    result = run_job(load_config(tiny_job(tmp_path, model)))
    rep = result.report.to_dict()
    assert rep["status"] == "ok", rep.get("error")
    fp32 = rep["stages"]["fp32"]["metrics"]["top1"]
    int8 = rep["stages"]["int8"]["metrics"]
    assert fp32 > 0.3  # well above chance (0.1): it learnt something for INT8 to agree on
    assert int8["top1"] >= fp32 - 0.1 and int8["outputs"][0]["acc"] > 0.8, (fp32, int8)
    assert (result.run_dir / rep["stages"]["int8"]["path"]).is_file()


def test_an_unregistered_custom_layer_is_named_not_kerass_raw_text(tmp_path: Path) -> None:
    from engine.backends.tf.convert import _load_keras

    layers = [
        {"class_name": "InputLayer", "name": "in", "inbound_nodes": [],
         "config": {"name": "in", "batch_input_shape": [None, 8], "dtype": "float32"}},
        {"class_name": "FancyNorm", "name": "fancy", "inbound_nodes": [[["in", 0, 0, {}]]],
         "config": {"name": "fancy"}},
    ]
    path = tmp_path / "custom.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {
            "name": "m", "layers": layers, "input_layers": [["in", 0, 0]],
            "output_layers": [["fancy", 0, 0]]}})
    with pytest.raises(ModelError) as err:
        _load_keras(str(path), "h5")
    text = str(err.value)
    assert "custom layer class 'FancyNorm'" in text and "model.custom_objects" in text
    assert "custom_object_scope" not in text and "\n" not in text
