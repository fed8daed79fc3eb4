"""QAT: Keras 3 → tf-keras rebuild, a short run that does not collapse, cancel and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import ROOT
from models import tiny_job

from engine import load_config, run_job
from engine.errors import ModelError

QAT = """
[data.train]
kind = "synthetic"
generator = "digits"
split = "train"
count = {train}
[data.validation]
kind = "synthetic"
generator = "digits"
split = "validation"
count = 200
[quantization]
method = "qat"
[quantization.qat]
epochs = {epochs}
learning_rate = 1e-4
batch_size = 32
patience = 0
seed = 3
compare_ptq = {compare}
"""


def qat_job(tmp: Path, model: Path, epochs: int, train: int = 640, compare: str = "false") -> Path:
    return tiny_job(tmp, model, test_count=300,
                    extra=QAT.format(epochs=epochs, train=train, compare=compare))


def _rebuild(model_builder):  # noqa: ANN001, ANN202
    code = f"""
import os, sys, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {str(ROOT)!r})
import numpy as np, keras, tf_keras
from engine.backends.tf.keras_compat import rebuild_in_tf_keras
from engine.errors import ModelError
{model_builder}
try:
    tk = rebuild_in_tf_keras(m, tf_keras)
except ModelError as e:
    print(json.dumps({{"error": str(e)}})); raise SystemExit
x = np.random.default_rng(0).random((3, 8, 8, 3)).astype("float32")
a = m.predict(x, verbose=0); b = tk.predict(x, verbose=0)
a = a if isinstance(a, list) else [a]; b = b if isinstance(b, list) else [b]
print(json.dumps({{"diff": max(float(np.abs(p - q).max()) for p, q in zip(a, b))}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_keras3_graph_rebuilds_in_tf_keras_with_the_same_numbers() -> None:
    res = _rebuild("""
inp = keras.Input((8, 8, 3))
a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inp)
b = keras.layers.Conv2D(4, 1, name="b")(inp)
c = keras.layers.Add(name="add")([a, b])
d = keras.layers.BatchNormalization(name="bn")(keras.layers.Concatenate(name="cat")([c, a]))
e = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(keras.layers.UpSampling2D(name="up")(d))
m = keras.Model(inp, [e, keras.layers.Dense(3, name="fc")(keras.layers.GlobalAveragePooling2D(name="gap")(d))])
""")
    assert res.get("diff", 1.0) < 1e-5, res


def test_a_layer_tf_keras_lacks_is_named_in_one_line() -> None:
    res = _rebuild("""
inp = keras.Input((8, 8, 3))
x = keras.layers.RMSNormalization(name="rms")(inp)
m = keras.Model(inp, keras.layers.Conv2D(2, 1)(x))
""")
    err = res["error"]
    assert "'rms'" in err and "RMSNormalization" in err and "no tf-keras equivalent" in err
    assert "\n" not in err
    assert issubclass(ModelError, Exception)


def test_one_epoch_does_not_collapse_and_is_compared_with_ptq(tiny_model: Path, tmp_path: Path) -> None:
    result = run_job(load_config(qat_job(tmp_path, tiny_model, epochs=1, compare="true")))
    rep = result.report.to_dict()
    fp32 = rep["stages"]["fp32"]["metrics"]["top1"]
    int8 = rep["stages"]["int8"]["metrics"]["top1"]
    assert fp32 > 0.5
    assert int8 >= fp32 - 0.05, (fp32, int8)  # within a few points: no collapse to chance
    assert rep["qat"]["epochs_run"] == 1 and rep["qat"]["history"][-1]["val_metric"] > 0.5
    ptq = rep["comparison"]["ptq"]
    assert set(ptq) >= {"run_dir", "drop", "metrics", "size_bytes"}
    ptq_rep = json.loads((Path(ptq["run_dir"]) / "report.json").read_text())
    assert ptq_rep["config"]["quantization"]["method"] == "ptq"
    assert ptq["drop"] == ptq_rep["verdict"]["drop"]
    # The INT8 model of a QAT run is full integer too.
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(result.run_dir / "int8.tflite"))
    assert {np.dtype(d["dtype"]).name for d in it.get_tensor_details()} <= {"int8", "int32"}


def test_cancel_mid_epoch_then_resume_matches_an_uninterrupted_run(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = run_job(load_config(qat_job(tmp_path / "a", tiny_model, epochs=3, train=1600))).report.to_dict()

    job = qat_job(tmp_path / "b", tiny_model, epochs=3, train=1600)
    p = subprocess.Popen([sys.executable, "-m", "engine.worker", str(job)], stdout=subprocess.PIPE,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.stdout is not None
    run_dir = None
    for line in p.stdout:
        msg = json.loads(line)
        if msg["kind"] == "run_started":
            run_dir = Path(msg["run_dir"])
        if msg["kind"] == "progress" and msg["stage"] == "qat_train" and "epoch 2/3" in msg["message"]:
            break  # mid-way through epoch 2
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode == 3 and run_dir is not None
    assert json.loads((run_dir / "report.json").read_text())["status"] == "cancelled"
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert 1 <= state["epoch"] < 3  # stopped part-way, after at least one checkpoint

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--resume", str(run_dir), "-q"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    resumed = json.loads((run_dir / "report.json").read_text())
    assert resumed["status"] == "ok"
    assert [h["epoch"] for h in resumed["qat"]["history"]] == [0, 1, 2, 3]  # 0: before tuning
    a = straight["stages"]["int8"]["metrics"]["top1"]
    b = resumed["stages"]["int8"]["metrics"]["top1"]
    assert abs(a - b) <= 0.02, (a, b)  # same seed, same data order: equal within noise
    for ha, hb in zip(straight["qat"]["history"], resumed["qat"]["history"], strict=True):
        assert abs(ha["val_metric"] - hb["val_metric"]) <= 0.02


def test_qat_recovers_at_least_half_of_what_ptq_loses(tiny_model: Path, tmp_path: Path) -> None:
    from models import skew_activations

    skewed = skew_activations(tiny_model, tmp_path / "skewed.keras", factor=90.0)
    job = qat_job(tmp_path, skewed, epochs=6, train=2000, compare="true")
    rep = run_job(load_config(job, ["calibration.samples=100", "quantization.qat.learning_rate=1e-4",
                                    "data.test.count=500"])).report.to_dict()
    ptq_drop = rep["comparison"]["ptq"]["drop"]
    qat_drop = rep["verdict"]["drop"]
    assert ptq_drop > 2.0, ptq_drop  # the skewed range really hurts PTQ
    recovered = (ptq_drop - qat_drop) / ptq_drop
    print(f"skewed model: PTQ drop {ptq_drop:.2f}, QAT drop {qat_drop:.2f}, recovered {recovered:.0%}")
    assert recovered >= 0.5, (ptq_drop, qat_drop)
