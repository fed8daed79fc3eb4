"""ONNX models through the job, on tiny graphs built with onnx.helper (no TensorFlow).

What an FP32 ``.onnx`` is refused for (one line each, naming the file), how calibration
methods move the activation scales, cancel during calibration, and a whole job: FP32 scored
as onnxruntime scores it, with channels-first input fed from H×W×C data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_models import ONNX_TESTS, conv_classifier, onnx

from engine import load_config
from engine.cancel import CancelToken
from engine.errors import CancelledError, ConfigError, EngineError, ModelError
from engine.events import Event, Progress
from engine.job import preflight, run_job

pytestmark = ONNX_TESTS

JOB = """
name = "onnx"
[model]
path = "{model}"
{model_extra}
[data.calibration]
kind = "npz"
path = "{data}"
[data.test]
kind = "npz"
path = "{data}"
[calibration]
samples = 16
{calibration}
[evaluation]
workers = 2
[analysis]
debug_samples = 0
[output]
runs_dir = "{runs}"
{tables}
"""


def _data(path: Path, shape: tuple[int, ...] = (8, 8, 1), n: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.uniform(0, 1, (n, *shape)).astype(np.float32),
             y=rng.integers(0, 4, n))
    return path


def _job(tmp_path: Path, model: Path, data: Path | None = None, model_extra: str = "",
         calibration: str = "", overrides: list[str] | None = None, tables: str = "") -> Any:
    data = data or _data(tmp_path / "d.npz")
    cfg = tmp_path / "job.toml"
    cfg.write_text(JOB.format(model=model, data=data, runs=tmp_path / "runs",
                              model_extra=model_extra, calibration=calibration,
                              tables=tables.format(data=data)))
    return load_config(cfg, overrides)


@pytest.mark.parametrize(("kwargs", "says", "fix"), [
    ({"opset": 12}, "uses ONNX opset 12; artq quantizes opset 13 or newer", "opset_version"),
    ({"quantized": True}, "already quantized (DequantizeLinear, QuantizeLinear nodes)",
     "FP32 .onnx"),
    ({"inputs": 2}, "the model has 2 inputs (x, x2); artq handles single-input models",
     "one input"),
    # 6 is onnx.TensorProto.INT32 (the name would import onnx while collecting).
    ({"in_type": 6}, "the model input 'x' is int32; artq feeds float32", "float32 input"),
    ({"shape": ("N", 1, "H", "W")}, "the model input (?, 1, ?, ?) has unknown dimensions "
     "besides the batch (axis 2, 3)", "model.input_shape"),
])
def test_refusals_are_one_line_naming_the_file(tmp_path: Path, kwargs: dict, says: str,
                                               fix: str) -> None:
    model = conv_classifier(tmp_path / "m.onnx", **kwargs)
    with pytest.raises(ModelError) as info:
        preflight(_job(tmp_path, model))
    err = info.value
    assert err.message.startswith(f"{model}: ") and says in err.message, err.message
    assert fix in err.hint and "\n" not in str(err)


def test_unknown_dims_are_taken_from_model_input_shape(tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "m.onnx", shape=("N", 1, "H", "W"))
    res = run_job(_job(tmp_path, model, model_extra="input_shape = [1, 8, 8]",
                       overrides=["quantization.stages=[\"fp32\"]"]))
    assert res.report.to_dict()["model"]["inputs"][0]["shape"] == [1, 1, 8, 8]


def test_a_file_that_is_not_onnx_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x08\x07not a model at all")
    with pytest.raises(EngineError, match=r"m\.onnx: cannot be read as an ONNX model"):
        preflight(_job(tmp_path, bad))


def test_framework_keys_are_refused_where_they_do_not_apply(tmp_path: Path) -> None:
    from fake_backend import write_keras_stub  # noqa: PLC0415

    keras = write_keras_stub(tmp_path / "m.keras")
    with pytest.raises(ConfigError, match="'mse' calibration is for ONNX models") as info:
        preflight(_job(tmp_path, keras, data=_data(tmp_path / "d.npz"),
                       calibration='method = "mse"'))
    assert info.value.key == "calibration.method"
    model = conv_classifier(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="QAT fine-tunes Keras models"):
        preflight(_job(tmp_path, model, overrides=["quantization.method=\"qat\""],
                       tables='[data.train]\nkind = "npz"\npath = "{data}"'))


def _input_scale(path: Path) -> float:
    """The scale of the model input ``x``: of the DequantizeLinear that reads it (the int8
    input of the default io_type)."""
    m = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "x")
    return float(inits[dq.input[1]])


def test_entropy_calibration_was_dropped_and_says_why(tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="'entropy' calibration was dropped") as info:
        _job(tmp_path, model, calibration='method = "entropy"')
    assert info.value.key == "calibration.method" and "percentile" in info.value.hint


def test_calibration_methods_change_the_scales(tmp_path: Path) -> None:
    """One outlier pixel in 1 of 40 items: min/max stretches the input range to it;
    a 99.9 percentile clips it, so its scale is far finer; MSE keeps it (clipping it would
    cost more than the coarser grid costs the other 2559 values)."""
    model = conv_classifier(tmp_path / "m.onnx")
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 8, 8, 1)).astype(np.float32)
    x[3, 4, 4, 0] = 50.0
    np.savez(data, x=x, y=rng.integers(0, 4, 40))
    scales = {}
    for method in ("minmax", "percentile", "mse"):
        extra = f'method = "{method}"\nsamples = 40' + (
            "\npercentile = 99.9" if method == "percentile" else "")
        cfg = _job(tmp_path, model, data=data, calibration=extra.replace("samples = 40", ""),
                   overrides=["calibration.samples=40", "quantization.stages=[\"fp32\", \"int8\"]",
                              f"name=\"{method}\""])
        res = run_job(cfg)
        d = res.report.to_dict()
        assert d["stages"]["int8"]["quantization"]["calibration"] == method
        scales[method] = _input_scale(res.run_dir / "int8.onnx")
    # int8 asymmetric over [0, 50]: 50 / 255.
    assert scales["minmax"] == pytest.approx(50 / 255, rel=1e-3)
    assert scales["percentile"] < scales["minmax"] / 10
    assert scales["minmax"] * 0.98 < scales["mse"] <= scales["minmax"]


def test_cancel_during_calibration_marks_the_run_cancelled(tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "m.onnx")
    cancel = CancelToken()
    seen: list[Event] = []

    def sink(ev: Event) -> None:
        seen.append(ev)
        if isinstance(ev, Progress) and ev.stage == "convert_int8":
            cancel.cancel()

    with pytest.raises(CancelledError) as info:
        run_job(_job(tmp_path, model), sink, cancel)
    run = Path(info.value.run_dir)  # type: ignore[attr-defined]
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "cancelled"
    assert not (run / "int8.onnx").exists()
    done = [e.done for e in seen if isinstance(e, Progress) and e.stage == "convert_int8"]
    assert done and max(done) < 16  # stopped within the calibration, not after it


def test_onnx_job_end_to_end_scores_fp32_as_onnxruntime_does(tmp_path: Path) -> None:
    """A channels-first model with a dynamic batch, fed H×W×C items (and the same items
    given as C×H×W): FP32's top-1 is what onnxruntime gives on the items themselves."""
    import onnxruntime as ort  # noqa: PLC0415

    model = conv_classifier(tmp_path / "m.onnx", shape=("N", 1, 8, 8), classes=4, seed=3)
    data = _data(tmp_path / "d.npz", seed=1)
    with np.load(data) as z:
        x, y = z["x"], z["y"]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    direct = sess.run(None, {"x": x.transpose(0, 3, 1, 2)})[0]
    expected = float((direct.argmax(1) == y).mean())
    res = run_job(_job(tmp_path, model, data=data))
    d = res.report.to_dict()
    assert d["status"] == "ok" and d["model"]["layout"] == "nchw"
    assert [d["stages"][s]["path"] for s in ("fp32", "fp16", "int8")] == [
        "fp32.onnx", "fp16.onnx", "int8.onnx"]
    assert d["stages"]["fp32"]["metrics"]["top1"] == pytest.approx(expected)
    int8 = onnx.load(str(res.run_dir / "int8.onnx"))
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    # Weights: int8, symmetric (zero point 0), one scale per output channel of the Conv.
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    wq = next(n for n in int8.graph.node if n.op_type == "DequantizeLinear"
              and inits.get(n.input[0]) is not None and inits[n.input[0]].ndim == 4)
    assert inits[wq.input[0]].dtype == np.int8 and inits[wq.input[1]].shape == (8,)
    assert not inits[wq.input[2]].any()
    assert d["stages"]["int8"]["metrics"]["outputs"][0]["acc"] >= 0.9
    assert d["verdict"] is not None
    # The same items saved channels-first score the same.
    nchw = tmp_path / "nchw.npz"
    np.savez(nchw, x=x.transpose(0, 3, 1, 2), y=y)
    again = run_job(_job(tmp_path, model, data=nchw,
                         overrides=["quantization.stages=[\"fp32\"]"])).report.to_dict()
    assert again["stages"]["fp32"]["metrics"]["top1"] == pytest.approx(expected)


def test_per_tensor_error_flags_an_outlier_channel_and_builds_its_mixed_model(
        tmp_path: Path) -> None:
    """One conv filter 300× the others: its channel sets the Conv output's range, so the
    other channels get a level or two. The error analysis flags that tensor as a wasted
    range, and its mixed model keeps the Conv in float (no DequantizeLinear on its weight)."""
    model = conv_classifier(tmp_path / "m.onnx", outlier=300.0)
    # Float I/O: the model quantizes its input itself, so the input's error has a layer row.
    res = run_job(_job(tmp_path, model, overrides=["analysis.debug_samples=8",
                                                    "analysis.sensitivity_k=3",
                                                    "quantization.io_type=\"float32\""]))
    d = res.report.to_dict()
    la = d["layer_analysis"]
    assert la["debug_samples"] == 8 and "QuantizeLinear" in la["modes"]["layer"]
    errors = {r["name"]: r["error"] for r in d["layers"]}
    assert {"x", "r", "g", "l"} <= set(errors)  # every quantized activation is measured
    assert errors["r"]["suspect"] and "channel 0 alone spans the range" in errors["r"]["why"]
    # Rounding alone at a healthy tensor: about 0.29 steps rms, and no error before it.
    assert errors["x"]["layer"]["rmse_scale"] == pytest.approx(0.29, abs=0.05)
    assert not errors["x"]["suspect"]
    assert "r" in la["suspects"] and la["ranking"].index("r") < la["ranking"].index("x")
    entries = {e["tensor"]: e for e in d["sensitivity"]}
    assert entries["r"]["op"] == "Conv" and entries["r"]["float_ops"] == ["r"]
    i = [e["tensor"] for e in d["sensitivity"]].index("r")
    mixed = onnx.load(str(res.run_dir / "sensitivity" / f"mixed_{i}.onnx"))
    conv = next(n for n in mixed.graph.node if n.op_type == "Conv")
    assert conv.input[1] == "w"  # the float weight itself, not a dequantized copy
    assert any(n.op_type == "QuantizeLinear" for n in mixed.graph.node)  # the rest stays int8


def test_model_summary_reads_an_onnx_file_and_says_why_it_is_refused(tmp_path: Path) -> None:
    from engine.inspect_model import model_summary  # noqa: PLC0415

    s = model_summary(conv_classifier(tmp_path / "m.onnx", shape=("N", 1, 8, 8)))
    assert s["format"] == "onnx" and s["error"] == ""
    assert s["inputs"] == [{"name": "x", "shape": [None, 1, 8, 8], "dtype": "float32"}]
    assert s["layer_counts"] == {"Conv": 1, "Relu": 1, "GlobalAveragePool": 1, "Flatten": 1,
                                 "Gemm": 1, "Softmax": 1}
    assert s["params"] == 8 * 9 + 8 + 4 * 8 + 4
    q = model_summary(conv_classifier(tmp_path / "q.onnx", quantized=True))
    assert "already quantized" in q["error"]


def test_the_data_check_reads_a_channels_first_model_s_data_as_images(tmp_path: Path) -> None:
    """The TUI's calibration check preprocesses images for a 1×32×32 input as 32×32×1."""
    import cv2  # noqa: PLC0415

    from engine.datacheck import check  # noqa: PLC0415
    from engine.inspect_model import model_summary  # noqa: PLC0415

    model = conv_classifier(tmp_path / "m.onnx", shape=(1, 1, 32, 32))
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (40, 40), dtype=np.uint8))
    cfg = tmp_path / "job.toml"
    cfg.write_text(JOB.format(model=model, data=tmp_path, runs=tmp_path / "runs", model_extra="",
                              calibration="", tables="").replace(
        f'kind = "npz"\npath = "{tmp_path}"', f'kind = "images"\npath = "{folder}"'))
    res = check(str(cfg), [], model_summary(model))
    assert res["error"] is None
    assert "tensor     6×32×32×1 float32" in "\n".join(res["stats"])


def test_per_tensor_granularity_gives_one_weight_scale(tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "m.onnx")
    res = run_job(_job(tmp_path, model, overrides=[
        "quantization.granularity=\"per_tensor\"", "quantization.stages=[\"fp32\", \"int8\"]"]))
    int8 = onnx.load(str(res.run_dir / "int8.onnx"))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    wq = next(n for n in int8.graph.node if n.op_type == "DequantizeLinear"
              and inits.get(n.input[0]) is not None and inits[n.input[0]].ndim == 4)
    assert inits[wq.input[1]].size == 1
    q = res.report.to_dict()["stages"]["int8"]["quantization"]
    assert q["weights"] == "int8 symmetric per-tensor"
