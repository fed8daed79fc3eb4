"""A Keras 3 LSTM crashes TF 2.21's INT8 converter; artq converts it through tf-keras instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine import load_config, run_job
from engine.evaluate import run_model
from engine.tflite import read_model

JOB = """
name = "lstm"
[model]
path = "{model}"
[data.calibration]
kind = "npz"
path = "{data}"
[data.test]
kind = "npz"
path = "{data}"
y = ""
[calibration]
samples = 16
[evaluation]
task = "generic"
[analysis]
debug_samples = 0
sensitivity_k = 0
[output]
runs_dir = "{runs}"
"""


def test_bidirectional_lstm_reaches_full_int8_with_its_lstm_on_the_cpu(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 16, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Reshape((8, 64))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True), name="bilstm")(x)
    out = keras.layers.Dense(5)(x)
    keras.Model(inp, out).save(tmp_path / "lstm.keras")
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((24, 8, 16, 1), dtype=np.float32))
    cfg = tmp_path / "job.toml"
    cfg.write_text(JOB.format(model=tmp_path / "lstm.keras", data=tmp_path / "d.npz",
                              runs=tmp_path / "runs"))

    result = run_job(load_config(cfg))
    rep = result.report.to_dict()
    assert rep["status"] == "ok"
    assert rep["stages"]["int8"]["via"] == "tf-keras rebuild"
    # Random weights, random inputs: still clearly the same function after INT8.
    assert rep["stages"]["int8"]["metrics"]["outputs"][0]["cos"] > 0.8
    lstm = [ly for ly in rep["npu"]["layers"] if "LSTM" in ly["op"]]
    assert len(lstm) == 2 and all(ly["placement"] == "CPU" for ly in lstm)
    assert "recurrent" in lstm[0]["reason"]
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(result.run_dir / "int8.tflite"))
    for d in it.get_tensor_details():
        # The integer LSTM kernel's "intermediate" tensors are empty carriers of scales.
        if np.dtype(d["dtype"]).name not in ("int8", "int16", "int32"):
            assert int(np.prod(d["shape"])) == 0, d["name"]
    # The INT8 LSTM keeps its state in variable tensors between invokes: each test item must
    # start from the initial state, so the outputs cannot depend on the items' order.
    assert any(t.is_variable for t in read_model(result.run_dir / "int8.tflite").main.tensors)
    x = np.load(tmp_path / "d.npz")["x"][:6]
    forward = run_model(str(result.run_dir / "int8.tflite"), x, workers=1).outputs[0]
    backward = run_model(str(result.run_dir / "int8.tflite"), x[::-1], workers=1).outputs[0]
    np.testing.assert_array_equal(forward, backward[::-1])
