"""A model with the user's own layer class: refused with the class's name and the key that
registers it, then converted end to end once ``model.custom_objects`` names the user's dict.
Keras 3 ``.keras`` in a real job; a tf-keras ``.h5`` through the loader both paths share.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from models import tiny_job

from engine import load_config, run_job
from engine.errors import ModelError

# The user's module, as a training script would import it. Not registered with Keras
# (no @register_keras_serializable), so the model file alone cannot be rebuilt.
LAYERS = '''
import keras


class ChannelScale(keras.layers.Layer):
    """A learnt gain per channel."""

    def __init__(self, init=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, shape):
        self.gain = self.add_weight(shape=(shape[-1],), name="gain",
                                    initializer=keras.initializers.Constant(self.init))

    def call(self, x):
        return x * self.gain

    def get_config(self):
        return {**super().get_config(), "init": self.init}


CUSTOM_OBJECTS = {"ChannelScale": ChannelScale}
'''


def _keras3_model(tmp: Path) -> Path:
    import keras

    from engine.config import PreprocessConfig
    from engine.preprocess import PreprocessSpec, preprocess
    from engine.samples.digits import generate

    (tmp / "layers.py").write_text(LAYERS, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("user_layers", tmp / "layers.py")
    assert spec is not None and spec.loader is not None
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    keras.utils.set_random_seed(0)
    g = generate("train", 1200, 7)
    x = preprocess(g.images, PreprocessSpec.resolve(PreprocessConfig(), (32, 32, 1)))
    inp = keras.Input((32, 32, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = user.ChannelScale(0.5, name="gain")(h)
    h = keras.layers.MaxPooling2D(4)(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(10, activation="softmax")(h)
    m = keras.Model(inp, out)
    m.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    m.fit(x, np.asarray(g.labels), epochs=3, batch_size=32, verbose=0)
    path = tmp / "custom.keras"
    m.save(path)
    return path


def test_a_custom_layer_is_refused_by_name_then_runs_once_registered(tmp_path: Path) -> None:
    model = _keras3_model(tmp_path)
    cfg = tiny_job(tmp_path, model)
    with pytest.raises(ModelError) as info:
        run_job(load_config(cfg))
    text = str(info.value)
    assert "custom layer class 'ChannelScale'" in text and "model.custom_objects" in text
    assert "\n" not in text and "Make sure custom classes" not in text

    # The key in the config file, relative to it, as a user writes it.
    toml = cfg.read_text(encoding="utf-8").replace(
        f'path = "{model}"', f'path = "{model}"\ncustom_objects = "layers.py:CUSTOM_OBJECTS"')
    cfg.write_text(toml, encoding="utf-8")
    job = load_config(cfg)
    assert job.model.custom_objects == f"{tmp_path / 'layers.py'}:CUSTOM_OBJECTS"
    result = run_job(job)
    rep = result.report.to_dict()
    assert rep["status"] == "ok"
    int8 = rep["stages"]["int8"]
    assert (result.run_dir / int8["path"]).is_file() and int8["size_bytes"] > 0
    top1 = int8["metrics"]["top1"]
    agree = int8["metrics"]["outputs"][0]["acc"]
    assert math.isfinite(top1) and 0.0 <= top1 <= 1.0
    assert rep["stages"]["fp32"]["metrics"]["top1"] > 0.3  # it learnt: INT8 has work to agree on
    assert agree > 0.8, int8["metrics"]

    # A dict that does not name the class: the message says which dict in which file.
    (tmp_path / "other.py").write_text("CUSTOM = {}\n", encoding="utf-8")
    with pytest.raises(ModelError) as info:
        run_job(load_config(cfg, [f'model.custom_objects="{tmp_path / "other.py"}:CUSTOM"']))
    assert f"the dict CUSTOM in {tmp_path / 'other.py'} (model.custom_objects) does not name" \
        in str(info.value)


# tf-keras (Keras 2) saves .h5; the user's layer subclasses tf_keras's Layer.
TFK_LAYERS = LAYERS.replace("import keras\n", "import tf_keras as keras\n")
BUILD_H5 = """
import os, sys, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {tmp!r})
import numpy as np, tf_keras as k
import tfk_layers
inp = k.Input((8,))
h = k.layers.Dense(4)(inp)
out = tfk_layers.ChannelScale(2.0, name="gain")(h)
m = k.Model(inp, out)
m.save({path!r})
x = np.linspace(-1, 1, 16, dtype="float32").reshape(2, 8)
print(json.dumps(m.predict(x, verbose=0).tolist()))
"""


def test_a_tf_keras_h5_custom_layer_loads_with_the_users_dict(tmp_path: Path) -> None:
    from engine.backends.tf.convert import _load_keras

    (tmp_path / "tfk_layers.py").write_text(TFK_LAYERS, encoding="utf-8")
    path = tmp_path / "custom.h5"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", BUILD_H5.format(tmp=str(tmp_path), path=str(path))],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    expected = np.asarray(json.loads(out.stdout.strip().splitlines()[-1]), np.float32)

    with pytest.raises(ModelError, match=r"custom layer class 'ChannelScale'.*model\.custom_objects"):
        _load_keras(str(path), "h5")
    m = _load_keras(str(path), "h5", f"{tmp_path / 'tfk_layers.py'}:CUSTOM_OBJECTS")
    assert type(m).__module__.startswith("tf_keras")  # Keras 3 cannot: tf-keras loaded it
    assert type(m.get_layer("gain")).__name__ == "ChannelScale"
    x = np.linspace(-1, 1, 16, dtype="float32").reshape(2, 8)
    np.testing.assert_allclose(np.asarray(m(x)), expected, rtol=1e-5, atol=1e-6)
