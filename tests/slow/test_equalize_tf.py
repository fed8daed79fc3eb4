"""Cross-layer equalization in a real job: per-tensor INT8 of a depthwise CNN whose
channels span very different weight ranges gets closer to FP32, the float model does not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine import load_config, run_job
from engine.report import Report

JOB = """
name = "dwcnn"
[model]
path = "{model}"
[data.calibration]
kind = "npz"
path = "{data}"
[data.test]
kind = "npz"
path = "{test}"
y = ""
[calibration]
samples = 50
[quantization]
granularity = "per_tensor"
stages = ["fp32", "int8"]
[evaluation]
task = "generic"
[analysis]
debug_samples = 0
sensitivity_k = 0
[output]
runs_dir = "{runs}"
"""


def _model(path: Path) -> Path:
    """conv → BN → ReLU → depthwise → ReLU → conv → pool → dense, with each layer's output
    channels scaled over three decades and the next layer's inputs scaled back: the float
    function of a balanced net, the per-tensor weight grid of an unbalanced one."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(6, 1, name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(4, name="fc")(x)
    m = keras.Model(inp, out)
    m(np.zeros((1, 12, 12, 3), np.float32))
    spread = np.logspace(-1.5, 1.5, 8).astype(np.float32)  # 0.03 … 30
    rng = np.random.default_rng(1)
    spread = spread[rng.permutation(8)]
    c1, bn, dw = (m.get_layer(n) for n in ("c1", "bn1", "dw"))
    c1.kernel.assign(c1.kernel.numpy() * spread)  # BN sees channels × spread ...
    bn.moving_mean.assign(rng.normal(size=8).astype(np.float32) * spread * 0.1)
    bn.moving_variance.assign((spread ** 2).astype(np.float32))  # ... and normalizes them back
    bn.gamma.assign(spread)                                      # ... then rescales
    bn.beta.assign(rng.normal(size=8).astype(np.float32) * spread * 0.1)
    dw.kernel.assign(dw.kernel.numpy() / spread[:, None])
    m.save(path)
    return path


def _run(tmp: Path, model: Path, equalize: bool):
    rng = np.random.default_rng(0)
    np.savez(tmp / "cal.npz", x=rng.normal(size=(50, 12, 12, 3)).astype(np.float32))
    np.savez(tmp / "test.npz", x=rng.normal(size=(40, 12, 12, 3)).astype(np.float32))
    cfg = tmp / f"job_{equalize}.toml"
    cfg.write_text(JOB.format(model=model, data=tmp / "cal.npz", test=tmp / "test.npz",
                              runs=tmp / f"runs_{equalize}"))
    return run_job(load_config(cfg, [f"quantization.equalize={str(equalize).lower()}"]))


def test_equalization_raises_per_tensor_int8_sqnr_and_keeps_fp32(tmp_path: Path) -> None:
    model = _model(tmp_path / "dw.keras")
    plain = _run(tmp_path, model, False).report.to_dict()
    result = _run(tmp_path, model, True)
    rep = json.loads((result.run_dir / "report.json").read_text())
    assert Report.from_dict(rep).to_dict() == rep
    assert "equalization" not in plain
    eq = rep["equalization"]
    assert [(p["first"], p["batch_norm"], p["second"]) for p in eq["pairs"]] == [
        ("c1", "bn1", "dw"), ("dw", "", "c2"), ("c2", "", "fc")]
    assert {s["name"] for s in eq["skipped"]} == {"fc"}  # a model output
    assert max(eq["float_diff"]) < 1e-4  # the same float function
    sq = lambda r: r["stages"]["int8"]["metrics"]["outputs"][0]["sqnr_db"]  # noqa: E731
    (out,) = eq["outputs"]
    assert out["test"]["before_db"] == round(sq(plain), 3)  # the plain job's own INT8
    assert eq["kept"] == "equalized" and out["calibration"]["after_db"] > out["calibration"][
        "before_db"]
    assert sq(rep) > sq(plain) + 6, (sq(plain), sq(rep))  # a clear margin, on the test set
    assert (result.run_dir / "int8_plain.tflite").is_file()
    # FP32 is the original model's conversion in both runs.
    assert rep["stages"]["fp32"]["size_bytes"] == plain["stages"]["fp32"]["size_bytes"]
