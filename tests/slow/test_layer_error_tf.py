"""Per-layer error with real TensorFlow: the layer mode agrees with TFLite's own
QuantizationDebugger on a tiny model, and a planted activation outlier is ranked first and
fixed by keeping it in float, in a real job. (The statistics: tests/unit/test_layer_error.py.)
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


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from engine.backends.tf import convert
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


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_layer_mode_agrees_with_tflite_quantization_debugger(exported) -> None:
    import tensorflow as tf

    from engine.backends.tf.layer_error import analyze_layers

    n = 16
    res = analyze_layers(
        state={"saved_model": str(exported["saved_model"])}, emit=lambda e: None, stage="layers",
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
    convs = [e for e in res["errors"].values() if "conv_" in e["tensor"]
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


def test_planted_outlier_is_ranked_first_and_float_recovers_it(outlier_run) -> None:
    result, events = outlier_run
    rep = result.report.to_dict()
    drop = rep["verdict"]["drop"]
    assert drop > 3.0  # the outlier costs real accuracy (measured: 9 points)
    names = [r["name"] for r in rep["layers"]]
    planted = next((r for r in rep["layers"] if "/conv_mid" in r["name"]
                    and "Relu" in r["name"]), None)
    assert planted is not None, names
    assert rep["layer_analysis"]["suspects"][0] == planted["name"]
    err = planted["error"]
    assert err["suspect"] and "alone spans the range" in err["why"]
    assert err["range"][1] > 100.0  # the skewed channel stretched it ~100×
    best = rep["sensitivity"][0]
    assert best["tensor"] == planted["name"]
    assert best["regained_points"] >= 0.7 * drop  # keeping it in float recovers most
    assert best["cost_ms"] > 0  # and costs CPU time on the N6
    assert planted["sensitivity"]["suggestion"].startswith("keep `conv_mid")
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


def test_int8_in_two_steps_is_the_converters_model_and_feeds_the_analysis(
        exported, monkeypatch: pytest.MonkeyPatch) -> None:
    """INT8 as calibrate-then-quantize keeps the calibrated model for the per-layer
    analysis (one converter pass fewer) and is the one-step converter's model: same ops,
    tensors, quantization and weights; the analysis gives the same figures either way."""
    from engine.backends.tf import convert
    from engine.backends.tf.layer_error import analyze_layers
    from engine.tflite.reader import read_model

    keep: dict = {}
    two = exported["dir"] / "int8_two_step.tflite"
    convert.convert(str(exported["saved_model"]), "int8", str(two),
                    calibration=str(exported["cal"]), keep=keep)
    assert keep["calibrated"]
    a, b = read_model(str(exported["int8"])), read_model(str(two))
    ga, gb = a.subgraphs[0], b.subgraphs[0]
    assert [o.opcode for o in ga.operators] == [o.opcode for o in gb.operators]
    assert [(t.name, t.shape, t.dtype, t.quantization) for t in ga.tensors] == \
        [(t.name, t.shape, t.dtype, t.quantization) for t in gb.tensors]
    assert [bytes(a.buffer_data(t)) for t in ga.tensors] == \
        [bytes(b.buffer_data(t)) for t in gb.tensors]

    args = {"emit": lambda e: None, "stage": "layers", "calibration": str(exported["cal"]),
            "int8_path": str(two), "out_dir": str(exported["dir"] / "sens2"),
            "debug_samples": 8, "sensitivity_k": 0}
    sm = str(exported["saved_model"])
    fresh = analyze_layers(state={"saved_model": sm}, **args)
    key = (sm, str(exported["cal"]), "per_channel", False)
    from engine.backends.tf import layer_error

    passes: list[bool] = []

    def counted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        passes.append(bool(k.get("numeric_verify")))
        return quantize(*a, **k)

    quantize = layer_error.quantize
    monkeypatch.setattr(layer_error, "quantize", counted)
    reused = analyze_layers(state={"saved_model": sm, "calibrated": (
        key, keep["calibrated"], ("int8", keep["int8"]))}, **args)
    assert reused["reproduced"] and reused["errors"] == fresh["errors"]
    # The file is the stage's own bytes: only the debug model is quantized, not INT8 again.
    assert passes == [True]
    # A file that is no longer the stage's bytes (bias correction rewrites it) is judged by
    # its ranges, which the kept model's quantization still gives.
    changed = analyze_layers(state={"saved_model": sm, "calibrated": (
        key, keep["calibrated"], ("int8", keep["int8"] + b"-"))}, **args)
    assert changed["reproduced"] and changed["errors"] == fresh["errors"]
