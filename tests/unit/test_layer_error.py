"""Per-layer error, sensitivity and staged precision.

Fast tests check the statistics on known numbers. Slow tests use real TensorFlow: the
layer mode agrees with TFLite's own QuantizationDebugger on a tiny model, and a planted
activation outlier is ranked first and fixed by keeping it in float, in a real job.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from models import skew_activations, tiny_job

from engine.layers import (
    HEALTHY_RMSE_SCALE,
    ErrorAccumulator,
    RangeAccumulator,
    diagnose,
    float_unit,
    layers_csv,
    merge_layers,
    rank,
    short_name,
)

# ------------------------------------------------------------------ statistics (no TF)


def test_error_accumulator_matches_the_definitions() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(4, 5, 6, 3)).astype(np.float32)
    scale = 0.05
    q = np.round(f / scale) * scale  # plain rounding on a grid
    acc = ErrorAccumulator(scale)
    for i in range(4):  # accumulates across samples like the analysis does
        acc.add(f[i : i + 1], q[i : i + 1])
    s = acc.result()
    e = (q - f).astype(np.float64)
    assert s.mse == pytest.approx(np.mean(e**2), rel=1e-9)
    assert s.sqnr_db == pytest.approx(10 * math.log10(np.sum(f.astype(np.float64) ** 2)
                                                      / np.sum(e**2)), rel=1e-9)
    assert s.max_abs == pytest.approx(np.abs(e).max(), rel=1e-6)
    cos = np.sum(q * f) / (np.linalg.norm(q) * np.linalg.norm(f))
    assert s.cos == pytest.approx(cos, rel=1e-6)
    # Uniform rounding error is 1/√12 of a step: the "healthy" 0.289.
    assert s.rmse_scale == pytest.approx(HEALTHY_RMSE_SCALE, abs=0.02)


def test_one_loud_channel_cannot_hide_the_others() -> None:
    rng = np.random.default_rng(1)
    f = rng.uniform(0, 1, size=(8, 16, 16, 8)).astype(np.float32)
    f[..., 0] *= 100.0  # one channel 100× the others: the range is set by it
    scale = float(f.max()) / 255.0
    q = np.round(f / scale) * scale
    acc = ErrorAccumulator(scale)
    acc.add(f, q)
    rng_acc = RangeAccumulator(scale, -128)
    rng_acc.add(f)
    s, r = acc.result(), rng_acc.result()
    assert s.sqnr_db > 35.0  # the tensor as a whole looks fine...
    assert s.channel_sqnr_db < 15.0  # ...its median channel does not
    assert r.widest_channel == 0 and r.channel_levels_median < 4.0
    d = diagnose(s, r)
    assert d.suspect and d.kind == "range" and "channel 0 alone spans" in d.why


def test_healthy_and_op_precision_diagnoses() -> None:
    rng = np.random.default_rng(2)
    f = rng.uniform(0, 1, size=(4, 8, 8, 8)).astype(np.float32)
    scale = 1.0 / 255.0
    healthy, lossy = ErrorAccumulator(scale), ErrorAccumulator(scale)
    healthy.add(f, np.round(f / scale) * scale)
    lossy.add(f, f + rng.normal(0, 3 * scale, f.shape))  # 3 steps of noise: weights lost
    r = RangeAccumulator(scale, -128)
    r.add(f)
    ok, bad = diagnose(healthy.result(), r.result()), diagnose(lossy.result(), r.result())
    assert not ok.suspect and ok.why == ""
    assert bad.suspect and bad.kind == "op" and bad.why.startswith("rmse/scale 3.")
    assert rank({"a": ok, "b": bad}) == ["b", "a"]


def test_infinite_float_reference_is_named_not_averaged() -> None:
    f = np.array([[1.0, 2.0, np.inf, 4.0]], np.float32)  # rsqrt(0) in the float copy
    q = np.array([[1.0, 2.0, 127.0, 4.0]], np.float32)
    acc = ErrorAccumulator(1.0)
    acc.add(f, q)
    s = acc.result()
    assert s.nonfinite == 1 and s.mse == 0.0 and math.isfinite(s.sqnr_db)
    d = diagnose(s, None)
    assert d.suspect and "inf/NaN for 1 of" in d.why
    assert rank({"ok": diagnose(None, None), "bad": d}) == ["bad"]


def test_float_unit_follows_the_range_through_same_scale_ops() -> None:
    ops = [
        {"op": "CONV_2D", "inputs": ["x"], "outputs": ["c1"]},
        {"op": "MAX_POOL_2D", "inputs": ["c1"], "outputs": ["p1"]},
        {"op": "CONV_2D", "inputs": ["p1"], "outputs": ["c2"]},
        {"op": "CONV_2D", "inputs": ["c2"], "outputs": ["c3"]},
    ]
    assert float_unit("c1", "op", ops) == ["c1"]
    assert float_unit("c1", "range", ops) == ["c1", "p1", "c2"]
    assert float_unit("c3", "range", ops, graph_outputs=["c3"]) == ["c3"]


def test_names_table_and_csv() -> None:
    assert short_name("functional_1/conv2d_1_2/Relu;functional_1/conv2d_1_2/BiasAdd") == "conv2d_1_2"
    assert short_name("functional_1/max_pooling2d_1/MaxPool2d") == "max_pooling2d_1"
    npu = [{"index": 0, "op": "CONV_2D", "name": "t0", "output_shape": [1, 4, 4, 8],
            "placement": "NPU", "reason": "r", "macs": 10, "est_us": 1.5, "pct": 60.0},
           {"index": 1, "op": "SOFTMAX", "name": "t1", "output_shape": [1, 10],
            "placement": "CPU", "reason": "r", "macs": 0, "est_us": 1.0, "pct": 40.0}]
    err = {"tensor": "t0", "scale": 0.1, "zero_point": -128, "range": [0.0, 25.5],
           "layer": {"sqnr_db": 30.0, "rmse_scale": 0.3, "cos": 0.999, "max_abs": 0.05},
           "model": {"sqnr_db": 29.0, "rmse_scale": 0.35, "cos": 0.998, "max_abs": 0.07},
           "suspect": False, "why": ""}
    sens = [{"tensor": "t0", "metric": "top1", "regained_points": 0.5, "cost_ms": 0.4,
             "suggestion": "keep `t0` in float: +0.50 points, +0.40 ms on the CPU"}]
    rows = merge_layers(npu, {"t0": err}, sens)
    assert [set(r) for r in rows] == [{
        "index", "op", "name", "output_shape", "placement", "reason", "macs", "est_us",
        "pct", "error", "sensitivity"}] * 2
    assert rows[0]["error"] is err and rows[1]["error"] is None
    assert rows[0]["sensitivity"] == {k: sens[0][k] for k in
                                      ("metric", "regained_points", "cost_ms", "suggestion")}
    table = list(csv.DictReader(io.StringIO(layers_csv(rows))))
    assert [r["name"] for r in table] == ["t0", "t1"]
    assert table[0]["layer_sqnr_db"] == "30.0" and table[0]["model_rmse_scale"] == "0.35"
    assert table[0]["regained_points"] == "0.5" and table[1]["layer_sqnr_db"] == ""


# ------------------------------------------------------------------ real TensorFlow


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from engine import convert
    from engine.config import PreprocessConfig
    from engine.preprocess import PreprocessSpec, preprocess
    from engine.samples import generate

    tmp = tmp_path_factory.mktemp("layer_error")
    spec = PreprocessSpec.resolve(PreprocessConfig(), (32, 32, 1))
    np.save(tmp / "cal.npy", preprocess(generate("digits", "calibration", 32, 0).images, spec))
    convert.load_and_export(str(tiny_model), "keras", None, str(tmp / "sm"))
    convert.convert(str(tmp / "sm"), "int8", str(tmp / "int8.tflite"),
                    calibration=str(tmp / "cal.npy"))
    return {"dir": tmp, "saved_model": tmp / "sm", "cal": tmp / "cal.npy",
            "int8": tmp / "int8.tflite"}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_layer_mode_agrees_with_tflite_quantization_debugger(exported) -> None:
    import tensorflow as tf

    from engine.layer_error import analyze_layers

    n = 16
    res = analyze_layers(
        state={"saved_model": str(exported["saved_model"])}, emit=lambda e: None,
        calibration=str(exported["cal"]), int8_path=str(exported["int8"]),
        out_dir=str(exported["dir"] / "sens"), debug_samples=n, sensitivity_k=0,
    )
    assert res["reproduced"]  # one calibration gives int8.tflite's ranges again
    cal = np.load(exported["cal"])
    conv = tf.lite.TFLiteConverter.from_saved_model(str(exported["saved_model"]))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([cal[i : i + 1]] for i in range(len(cal)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=lambda: ([cal[i : i + 1]] for i in range(n)))
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    theirs = list(csv.DictReader(dump))
    assert len(theirs) == len(res["errors"]) == 8  # every quantized op of the tiny CNN
    for row in theirs:
        mine = res["errors"][row["tensor_name"]]
        raw = res["raw"][row["tensor_name"]]["layer"]
        assert mine["scale"] == pytest.approx(float(row["scale"]), rel=1e-6)
        assert mine["zero_point"] == int(row["zero_point"])
        mse = float(row["mean_squared_error"])
        if mse > 1e-12:  # pass-through ops (pools) are exact in both
            assert raw["mse"] == pytest.approx(mse, rel=1e-4), row["tensor_name"]
            assert raw["mean_error"] == pytest.approx(float(row["mean_error"]), rel=1e-3, abs=1e-9)
            ours = mine["layer"]["rmse_scale"]
            assert ours == pytest.approx(math.sqrt(mse) / float(row["scale"]), rel=1e-3)
        else:
            assert mine["layer"]["rmse_scale"] < 1e-3
        # Both modes are there for every layer; a healthy model has no suspect.
        assert set(mine["model"]) == {"sqnr_db", "rmse_scale", "cos", "max_abs"}
        assert not mine["suspect"]
    convs = [e for e in res["errors"].values() if "conv2d" in e["tensor"]
             and "Relu" in e["tensor"]]
    assert len(convs) == 3
    for e in convs:  # healthy 8-bit layers: 30–50 dB, rounding-level rmse/scale
        assert 30.0 < e["layer"]["sqnr_db"] < 55.0
        assert 0.1 < e["layer"]["rmse_scale"] < 0.5
        # error accumulates: end to end is never better than the layer's own
        assert e["model"]["sqnr_db"] <= e["layer"]["sqnr_db"] + 0.5


@pytest.fixture(scope="module")
def outlier_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    from engine import load_config
    from engine.job import run_job

    tmp = tmp_path_factory.mktemp("outlier")
    model = skew_activations(tiny_model, tmp / "skewed.keras", factor=100.0)
    extra = "\n".join(["[analysis]", "debug_samples = 32", "sensitivity_k = 2"])
    cfg_path = tiny_job(tmp, model, test_count=300)
    cfg_path.write_text(cfg_path.read_text().replace(
        "[analysis]\ndebug_samples = 0\nsensitivity_k = 0", extra))
    events: list = []
    result = run_job(load_config(cfg_path), events.append)
    return result, events


@pytest.mark.slow
def test_planted_outlier_is_ranked_first_and_float_recovers_it(outlier_run) -> None:
    result, events = outlier_run
    rep = result.report
    drop = rep["verdict"]["drop"]
    assert drop > 3.0  # the outlier costs real accuracy (measured: 9 points)
    planted = next(r for r in rep["layers"] if "conv2d_1_2/Relu" in r["name"])
    assert rep["layer_analysis"]["suspects"][0] == planted["name"]
    err = planted["error"]
    assert err["suspect"] and "alone spans the range" in err["why"]
    assert err["range"][1] > 100.0  # the skewed channel stretched it ~100×
    best = rep["sensitivity"][0]
    assert best["tensor"] == planted["name"]
    assert best["regained_points"] >= 0.7 * drop  # keeping it in float recovers most
    assert best["cost_ms"] > 0  # and costs CPU time on the N6
    assert planted["sensitivity"]["suggestion"].startswith("keep `conv2d_1_2`")
    assert (result.run_dir / best["path"]).is_file()
    # Every layer row carries placement; every quantized one both error modes.
    assert len(rep["layers"]) == len(rep["npu"]["layers"])
    for r in rep["layers"]:
        assert r["placement"] in ("NPU", "CPU")
        if r["error"] is not None:
            for mode in ("layer", "model"):
                assert set(r["error"][mode]) == {"sqnr_db", "rmse_scale", "cos", "max_abs"}
    rows = list(csv.DictReader((result.run_dir / "layers.csv").open()))
    assert len(rows) == len(rep["layers"])
    md = (result.run_dir / "report.md").read_text()
    assert "Per-layer quantization error" in md and best["suggestion"] in md


@pytest.mark.slow
def test_stage_drops_and_findings_reach_the_report(outlier_run) -> None:
    from engine.events import Finding

    result, events = outlier_run
    rep = json.loads((result.run_dir / "report.json").read_text())
    st = rep["stages"]
    assert st["fp32"]["drop"] == 0.0
    assert abs(st["fp16"]["drop"]) < 1.0  # 16 bits keep FP32's accuracy here
    assert st["int8"]["drop"] == pytest.approx(rep["verdict"]["drop"], abs=1e-6)
    assert "the loss comes from 8-bit quantization" in (result.run_dir / "report.md").read_text()
    # 32 calibration samples is below the guide's 100: a finding, as event and in the report.
    assert [f["code"] for f in rep["findings"]] == ["too_few_samples"]
    assert any(isinstance(e, Finding) and e.code == "too_few_samples" for e in events)
