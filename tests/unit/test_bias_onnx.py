"""Sequential bias correction of QDQ ``.onnx`` models: a tiny float conv net built with
onnx.helper, quantized by onnxruntime's quantize_static as artq's ONNX path does it, with a
per-channel shift planted in its int32 biases (onnxruntime, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_models import ONNX_TESTS, Graph, onnx

from engine.backends.onnx import bias as qdq
from engine.backends.onnx.quantize import shapes_all_known
from engine.bias_correction import channel_error, sqnr
from engine.npu import analyze
from engine.tflite.bias import INT32_MAX, INT32_MIN

pytestmark = ONNX_TESTS

C = 8
SIZE = 12


def _float_model() -> Any:
    """Conv 3×3 → Relu → depthwise Conv 3×3 → Clip(0, 6) → Conv 1×1 → GlobalAveragePool →
    Flatten → Gemm: the conv, depthwise and fully-connected layers of a MobileNet."""
    rng = np.random.default_rng(0)
    g = Graph()
    w1 = g.const(rng.normal(0, 0.3, (C, 3, 3, 3)).astype(np.float32), "w")
    b1 = g.const(rng.normal(0, 0.1, C).astype(np.float32), "b")
    r1 = g.op("Relu", [g.op("Conv", ["x", w1, b1], kernel_shape=[3, 3], pads=[1, 1, 1, 1])])
    w2 = g.const(rng.normal(0, 0.3, (C, 1, 3, 3)).astype(np.float32), "w")
    b2 = g.const(rng.normal(0, 0.1, C).astype(np.float32), "b")
    c2 = g.op("Conv", [r1, w2, b2], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=C)
    lo, hi = g.const(np.float32(0.0), "lo"), g.const(np.float32(6.0), "hi")
    r2 = g.op("Clip", [c2, lo, hi])
    w3 = g.const(rng.normal(0, 0.3, (C, C, 1, 1)).astype(np.float32), "w")
    b3 = g.const(rng.normal(0, 0.1, C).astype(np.float32), "b")
    c3 = g.op("Conv", [r2, w3, b3], kernel_shape=[1, 1])
    f = g.op("Flatten", [g.op("GlobalAveragePool", [c3])])
    w4 = g.const(rng.normal(0, 0.5, (4, C)).astype(np.float32), "w")
    b4 = g.const(np.zeros(4, np.float32), "b")
    y = g.op("Gemm", [f, w4, b4], transB=1)
    return g.model([("x", [1, 3, SIZE, SIZE])], [y])


def _quantize(tmp: Path, x: np.ndarray) -> tuple[bytes, bytes]:
    """(QDQ model, the preprocessed float model it was quantized from), as artq makes them."""
    from onnxruntime.quantization import (  # noqa: PLC0415 - the fixture only
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    src, pre, out = tmp / "fp32.onnx", tmp / "pre.onnx", tmp / "int8.onnx"
    onnx.save(_float_model(), str(src))
    # Pre-processed as the engine's INT8 stage does it: this static graph skips the symbolic
    # pass (and its imports of sympy, and of torch where installed).
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=shapes_all_known(str(src)))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"x": x[i : i + 1]} for i in range(len(x))])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    return out.read_bytes(), pre.read_bytes()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (40, 3, SIZE, SIZE)).astype(np.float32)
    int8, fp32 = _quantize(tmp_path_factory.mktemp("qdq"), x)
    return int8, fp32, x


def _layers(int8: bytes, fp32: bytes) -> list[qdq.QdqLayer]:
    layers, skipped = qdq.qdq_layers(onnx.load_from_string(int8), onnx.load_from_string(fp32))
    assert skipped == []
    return layers


def _with_bias(int8: bytes, name: str, edit: Any) -> bytes:
    """The model with the int32 initializer ``name`` changed by ``edit(values)``."""
    m = onnx.load_from_string(int8)
    init = next(i for i in m.graph.initializer if i.name == name)
    init.CopyFrom(onnx.numpy_helper.from_array(edit(onnx.numpy_helper.to_array(init).astype(np.int64))
                                          .astype(np.int32), name))
    return m.SerializeToString()


def _planted(int8: bytes, fp32: bytes, lsb: float = 5.0) -> bytes:
    """``lsb`` output steps of shift planted in the depthwise conv's bias, alternating
    sign per channel: every later layer inherits it."""
    dw = _layers(int8, fp32)[1]
    units = np.rint(lsb * dw.out_scale / np.asarray(dw.bias_scale)).astype(np.int64)
    sign = np.where(np.arange(C) % 2 == 0, 1, -1)
    return _with_bias(int8, dw.bias, lambda b: b + sign * units)


def _channel_lsb(int8: bytes, fp32: bytes, x: np.ndarray, k: int) -> np.ndarray:
    """|per-channel mean error| of layer ``k``'s output, in its int8 steps."""
    la = _layers(int8, fp32)[k]
    q = qdq.run(int8, x, [la.output]).tensors[la.output]
    ref = qdq.run(fp32, x, [la.name]).tensors[la.name]
    return np.abs(channel_error(q, ref, la)) / la.out_scale


def _output(model: bytes, x: np.ndarray) -> np.ndarray:
    from engine.backends.onnx.run import session  # noqa: PLC0415

    s = session(model)
    return np.concatenate([s.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])


def test_layers_are_the_convs_and_the_gemm_in_graph_order(models) -> None:  # noqa: ANN001
    int8, fp32, _ = models
    layers = _layers(int8, fp32)
    assert [(la.opcode, la.channels) for la in layers] == [("Conv", C)] * 3 + [("Gemm", 4)]
    relu, clip, plain, gemm = (la.act_range for la in layers)
    assert relu == (0.0, np.inf) and clip == (0.0, 6.0) and plain == gemm == (-np.inf, np.inf)
    m = onnx.load_from_string(int8)
    produced = {o for n in m.graph.node for o in n.output}
    assert all(la.output in produced and la.output.endswith("QuantizeLinear_Output")
               for la in layers)


def test_sequential_removes_a_planted_bias(models) -> None:  # noqa: ANN001
    int8, fp32, x = models
    planted = _planted(int8, fp32)
    fixed = qdq.correct(planted, fp32, x)
    before = _channel_lsb(planted, fp32, x, 1)
    after = _channel_lsb(fixed.content, fp32, x, 1)
    # Measurable channels (a Clip at 0 can hide one that the shift pushed below it).
    ok = np.isfinite(before) & np.isfinite(after)
    assert ok.sum() >= C // 2
    assert before[ok].mean() > 3.0
    assert after[ok].mean() < 0.2 * before[ok].mean()
    ref = _output(fp32, x)
    s_planted, s_fixed = sqnr(_output(planted, x), ref), sqnr(_output(fixed.content, x), ref)
    assert s_fixed > s_planted + 6
    assert [f.layer.opcode for f in fixed.fixes] == ["Conv", "Conv", "Conv", "Gemm"]
    assert fixed.fixes[1].changed >= C // 2 and fixed.fixes[1].shift_lsb > 2.0
    assert fixed.items == len(x) and fixed.twins == {la.output: la.name
                                                     for la in _layers(int8, fp32)}


def test_the_corrected_model_keeps_its_nodes_and_npu_placement(models, tmp_path) -> None:  # noqa: ANN001
    int8, fp32, x = models
    planted = _planted(int8, fp32)
    fixed = qdq.correct(planted, fp32, x).content
    a, b = onnx.load_from_string(planted), onnx.load_from_string(fixed)
    assert [n.SerializeToString() for n in a.graph.node] == [
        n.SerializeToString() for n in b.graph.node]
    changed = [i.name for i, j in zip(a.graph.initializer, b.graph.initializer, strict=True)
               if i.SerializeToString() != j.SerializeToString()]
    assert changed and set(changed) <= {la.bias for la in _layers(int8, fp32)}
    (tmp_path / "a.onnx").write_bytes(planted)
    (tmp_path / "b.onnx").write_bytes(fixed)
    pa, pb = analyze(tmp_path / "a.onnx"), analyze(tmp_path / "b.onnx")
    assert [(la.op, la.placement) for la in pa.layers] == [(la.op, la.placement)
                                                           for la in pb.layers]
    assert sum(la.placement == "NPU" for la in pb.layers) >= 4


def test_int32_saturation_and_zero_scale_channels(models) -> None:  # noqa: ANN001
    int8, fp32, x = models
    la = _layers(int8, fp32)[2]  # the 1×1 conv: no activation, every value measurable
    m = onnx.load_from_string(int8)
    inits = {i.name: i for i in m.graph.initializer}
    conv = next(n for n in m.graph.node if n.name == la.node)
    wdq, bdq = (next(n for n in m.graph.node if n.output[0] == conv.input[k]) for k in (1, 2))
    ws, bs = (onnx.numpy_helper.to_array(inits[n.input[1]]).copy() for n in (wdq, bdq))
    # Channel 0: weights nearly zero (a tiny weight scale, so a tiny bias unit) and a bias
    # at the int32 top: its output misses the float one by far more than int32 units can
    # fold. Channel 1: a zero weight scale, so a zero bias scale: nothing to fold into.
    new_ws = ws.copy()
    new_ws[0], new_ws[1] = 1e-9, 0.0
    new_bs = bs * np.where(ws > 0, new_ws / ws, 0.0)
    for n, v in ((wdq, new_ws), (bdq, new_bs.astype(np.float32))):
        inits[n.input[1]].CopyFrom(onnx.numpy_helper.from_array(v, n.input[1]))
    bias = onnx.numpy_helper.to_array(inits[la.bias]).astype(np.int64)
    bias[0], bias[1] = INT32_MAX - 2, 7
    inits[la.bias].CopyFrom(onnx.numpy_helper.from_array(bias.astype(np.int32), la.bias))
    fixed = qdq.correct(m.SerializeToString(), fp32, x)
    fix = fixed.fixes[2]
    out = onnx.numpy_helper.to_array(next(i for i in onnx.load_from_string(fixed.content)
                                     .graph.initializer if i.name == la.bias))
    assert fix.left >= 1 and out[1] == 7  # zero scale: left as it was
    assert fix.saturated >= 1 and out[0] in (INT32_MAX, INT32_MIN)
    assert np.all(out[2:] != bias[2:]) or fix.changed >= 2
    assert np.isfinite(_output(fixed.content, x[:2])).all()  # and the model still runs


def test_carry_applies_the_correction_where_the_target_holds_the_same_bias(models) -> None:  # noqa: ANN001
    int8, fp32, x = models
    planted = _planted(int8, fp32)
    fixed = qdq.correct(planted, fp32, x).content
    content, n = qdq.carry(planted, fixed, planted)
    assert n == sum(1 for f in qdq.correct(planted, fp32, x).fixes if f.changed)
    assert content == fixed or _biases(content) == _biases(fixed)
    # A target whose bias differs from the original keeps its own.
    dw = _layers(int8, fp32)[1]
    other = _with_bias(planted, dw.bias, lambda b: b + 1)
    content, n2 = qdq.carry(planted, fixed, other)
    assert n2 == n - 1 and _biases(content)[dw.bias].tolist() == _biases(other)[dw.bias].tolist()


def _biases(content: bytes) -> dict[str, np.ndarray]:
    m = onnx.load_from_string(content)
    return {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer
            if i.data_type == onnx.TensorProto.INT32}


JOB = """
name = "onnx-bias"
[model]
path = "{model}"
[data.calibration]
kind = "npz"
path = "{data}"
y = ""
[data.test]
kind = "npz"
path = "{data}"
y = ""
[calibration]
samples = 30
[quantization]
bias_correction = "sequential"
[evaluation]
task = "generic"
workers = 2
[analysis]
debug_samples = 8
sensitivity_k = 1
[output]
runs_dir = "{runs}"
"""


def test_an_onnx_job_corrects_its_qdq_model_and_reports_as_a_tflite_one(tmp_path) -> None:  # noqa: ANN001
    import json  # noqa: PLC0415

    from onnx_models import conv_classifier  # noqa: PLC0415

    from engine import load_config  # noqa: PLC0415
    from engine.job import run_job  # noqa: PLC0415
    from engine.report import Report, render_markdown  # noqa: PLC0415

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.uniform(0, 1, (40, 8, 8, 1)).astype(np.float32))
    cfg = tmp_path / "job.toml"
    cfg.write_text(JOB.format(model=conv_classifier(tmp_path / "m.onnx"),
                              data=tmp_path / "d.npz", runs=tmp_path / "runs"))
    res = run_job(load_config(cfg))
    bc = res.report.bias_correction
    assert bc is not None and bc.error is None
    assert (bc.fit_items, bc.heldout_items, bc.test_items) == (24, 6, 40)
    assert [(la.op, la.channels) for la in bc.layers] == [("Conv", 8), ("Gemm", 4)]
    assert all(la.calibration and la.test for la in bc.layers)
    other = res.run_dir / bc.other_path
    assert bc.other_path in ("int8_corrected.onnx", "int8_uncorrected.onnx") and other.is_file()
    kept = res.run_dir / "int8.onnx"
    a, b = onnx.load(str(kept)), onnx.load(str(other))
    assert [n.SerializeToString() for n in a.graph.node] == [
        n.SerializeToString() for n in b.graph.node]
    (o,) = bc.outputs
    cal = o.calibration
    assert cal is not None and cal.before_db is not None and cal.after_db is not None
    # The held-out slice decided: the corrected model only when it is closer there.
    assert bc.corrected == (cal.after_db > cal.before_db)
    assert "int8.onnx" in render_markdown(res.report)
    d = json.loads((res.run_dir / "report.json").read_text())
    assert Report.from_dict(d).to_dict() == d


def test_runs_take_batches_where_the_graph_allows_and_items_where_it_holds_batch_one(
        models) -> None:  # noqa: ANN001
    int8, fp32, x = models
    la = _layers(int8, fp32)[1]
    m = onnx.load_from_string(int8)
    batched = qdq.run(m, x, [la.output]).tensors[la.output]
    one_by_one = qdq._items(m, x, [la.output], 2, None)[la.output]  # noqa: SLF001
    assert batched.dtype == np.int8 and batched.shape == (len(x), SIZE, SIZE, C)
    assert np.array_equal(batched, one_by_one)
    # A Reshape to [1, -1] holds the batch at 1: a batch of items cannot pass through it.
    g = Graph()
    w = g.const(np.ones((2, 3, 1, 1), np.float32), "w")
    flat = g.op("Reshape", [g.op("Conv", ["x", w]), g.const(np.array([1, -1], np.int64))])
    model = g.model([("x", [1, 3, 4, 4])], [flat])
    xs = np.arange(5 * 48, dtype=np.float32).reshape(5, 3, 4, 4)
    got = qdq.run(model, xs, [flat]).tensors[flat]
    assert got.shape == (5, 32)
    assert np.allclose(got, xs.sum(axis=1).reshape(5, 1, 16).repeat(2, axis=1).reshape(5, 32))


def test_integer_graph_io_is_fed_and_read_as_the_evaluation_does(models) -> None:  # noqa: ANN001
    """quantization.io_type = "int8": the input is the int8 tensor and the Gemm's int8
    output is the graph output, under the float output's name."""
    from engine.backends.onnx.io_types import set_io_type  # noqa: PLC0415

    int8, fp32, x = models
    m = onnx.load_from_string(_planted(int8, fp32))
    io = set_io_type(m, "int8")
    assert set(io["input"].values()) == set(io["outputs"].values()) == {"int8"}
    planted = m.SerializeToString()
    layers = _layers(planted, fp32)
    assert [la.opcode for la in layers] == ["Conv"] * 3 + ["Gemm"]
    assert layers[-1].output == layers[-1].name  # the graph output, read as int8
    fixed = qdq.correct(planted, fp32, x)
    before = _channel_lsb(planted, fp32, x, 1)
    after = _channel_lsb(fixed.content, fp32, x, 1)
    ok = np.isfinite(before) & np.isfinite(after)
    assert before[ok].mean() > 3.0 and after[ok].mean() < 0.2 * before[ok].mean()
