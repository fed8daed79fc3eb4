"""Per-layer error, sensitivity and staged precision: the statistics on known numbers.

With real TensorFlow (the QuantizationDebugger check, a planted outlier in a real job):
tests/slow/test_layer_error_tf.py.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

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
        "index", "op", "name", "layer", "output_shape", "placement", "reason", "macs", "est_us",
        "pct", "error", "sensitivity"}] * 2
    assert rows[0]["error"] is err and rows[1]["error"] is None
    assert rows[0]["sensitivity"] == {k: sens[0][k] for k in
                                      ("metric", "regained_points", "cost_ms", "suggestion")}
    table = list(csv.DictReader(io.StringIO(layers_csv(rows))))
    assert [r["name"] for r in table] == ["t0", "t1"]
    assert table[0]["layer_sqnr_db"] == "30.0" and table[0]["model_rmse_scale"] == "0.35"
    assert table[0]["regained_points"] == "0.5" and table[1]["layer_sqnr_db"] == ""


def test_a_verdict_in_db_carries_its_regain_to_the_row_and_the_csv() -> None:
    """Judged in dB there are no points to regain: the row and layers.csv keep the dB."""
    npu = [{"index": 0, "op": "DEPTHWISE_CONV_2D", "name": "t0", "output_shape": [1, 4, 4, 8],
            "placement": "NPU", "reason": "r", "macs": 10, "est_us": 1.5, "pct": 100.0}]
    sens = [{"tensor": "t0", "metric": "sqnr_db", "regained_points": None, "regained": 0.49,
             "unit": "dB", "cost_ms": 2.72,
             "suggestion": "keep `t0` in float: +0.49 dB, +2.72 ms on the CPU"}]
    rows = merge_layers(npu, {}, sens)
    assert rows[0]["sensitivity"]["regained"] == 0.49 and rows[0]["sensitivity"]["unit"] == "dB"
    table = list(csv.DictReader(io.StringIO(layers_csv(rows))))
    assert (table[0]["regained_points"], table[0]["regained"], table[0]["regained_unit"]) == (
        "", "0.49", "dB")
    from engine.report import LayerRow

    row = LayerRow.from_dict(rows[0])
    assert row.to_dict()["sensitivity"] == rows[0]["sensitivity"]  # the typed report keeps them
