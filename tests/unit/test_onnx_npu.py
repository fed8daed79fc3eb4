"""ONNX QDQ models through the NPU analysis: QDQ folding, each ONNX operator onto its rule
(hit and missed), channel-first shapes in cost and memory, float islands, malformed QDQ,
unreadable files. Graphs are built with onnx.helper (tests/onnx_models.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_models import ONNX_TESTS, Graph, int_layer, onnx, save

from engine.errors import OnnxReadError
from engine.npu import analyze
from engine.npu.result import Analysis, LayerResult
from engine.onnx import read_onnx

pytestmark = ONNX_TESTS


def run(tmp_path: Path, model: Any, name: str = "m") -> Analysis:
    return analyze(save(tmp_path, name, model))


def layer(a: Analysis, source_op: str) -> LayerResult:
    found = [x for x in a.layers if x.source_op == source_op]
    assert len(found) == 1, [(x.source_op, x.op) for x in a.layers]
    return found[0]


# --------------------------------------------------------------------------- QDQ folding


def test_qdq_conv_is_one_integer_layer_on_the_npu(tmp_path: Path) -> None:
    m = int_layer("Conv", ["N", 3, 16, 16], weight=[8, 3, 3, 3], bias=8,
                  kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    a = run(tmp_path, m)
    # The input's Q and the output's DQ stay (float model boundary); the rest fold.
    assert [x.op for x in a.layers] == ["QUANTIZE", "CONV_2D", "DEQUANTIZE"]
    conv = layer(a, "Conv")
    assert (conv.placement, conv.rule, conv.provenance) == ("NPU", "table", "3P")
    assert conv.output_shape == (1, 8, 16, 16)  # ONNX's own channel-first shape
    assert conv.macs == 16 * 16 * 8 * 3 * 3 * 3
    assert conv.weight_bytes == 8 * 27 + 8 * 4  # int8 kernel + int32 bias
    assert a.precision == "int8"
    assert a.activations_ram_bytes >= 16 * 16 * 8  # the int8 map, not a float one


def test_same_estimate_as_the_same_tflite_layer(tmp_path: Path) -> None:
    """Channel-first ONNX and channel-last TFLite of one int8 conv (int8 in and out, no
    conversions): the same MACs, weights, activation memory and time."""
    from npu_models import conv_model, write

    g = Graph()
    x = g.dq("x")  # an int8 graph input, as io_type = "int8" leaves it
    w = g.weight([6, 4, 3, 3])
    y = g.op("Conv", [x, w, g.bias(6)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    onnx_a = run(tmp_path, g.model([("x", [1, 4, 8, 8])], [g.q(y)], input_type=onnx.TensorProto.INT8))
    tfl_a = analyze(write(tmp_path, "conv", conv_model(out_ch=6)))
    (o,), (t,) = onnx_a.layers, tfl_a.layers
    assert (o.op, o.placement, o.macs, o.weight_bytes, o.activation_bytes) == (
        t.op, t.placement, t.macs, t.weight_bytes, t.activation_bytes)
    assert o.est_us == pytest.approx(t.est_us)
    assert onnx_a.activations_ram_bytes == tfl_a.activations_ram_bytes
    assert onnx_a.latency_ms == pytest.approx(tfl_a.latency_ms)
    assert o.output_shape == (1, 6, 8, 8) and t.output_shape == (1, 8, 8, 6)


def test_weights_read_as_the_kernels_hold_them(tmp_path: Path) -> None:
    m = int_layer("Conv", [1, 4, 8, 8], weight=[6, 4, 3, 3], kernel_shape=[3, 3])
    model = read_onnx(save(tmp_path, "m", m))
    conv = next(op for op in model.main.operators if op.opcode == "CONV_2D")
    x, w = (model.main.tensors[i] for i in conv.inputs[:2])
    y = model.main.tensors[conv.outputs[0]]
    assert x.shape == (1, 8, 8, 4) and y.shape == (1, 6, 6, 6)  # NHWC
    assert w.shape == (6, 3, 3, 4) and w.dtype == "int8" and w.is_constant
    assert w.quantization is not None and len(w.quantization.scales) == 6
    assert w.quantization.quantized_dimension == 0
    assert x.dtype == "int8" and x.quantization is not None


def test_dynamic_batch_is_taken_as_one(tmp_path: Path) -> None:
    a = run(tmp_path, int_layer("Relu", ["batch", 4, 8, 8]))
    relu = layer(a, "Relu")
    assert relu.placement == "NPU" and relu.output_shape == (1, 4, 8, 8)
    assert not a.dynamic


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("strides", "placement", "rule"), [([2, 2], "NPU", "table"), ([8, 8], "CPU", "conv_stride")]
)
def test_conv_stride(tmp_path: Path, strides: list[int], placement: str, rule: str) -> None:
    m = int_layer("Conv", [1, 3, 32, 32], weight=[4, 3, 3, 3], kernel_shape=[3, 3],
                  strides=strides)
    conv = layer(run(tmp_path, m), "Conv")
    assert (conv.placement, conv.rule) == (placement, rule)


def test_depthwise_conv_is_told_by_its_groups(tmp_path: Path) -> None:
    m = int_layer("Conv", [1, 8, 16, 16], weight=[8, 1, 3, 3], kernel_shape=[3, 3], group=8)
    conv = layer(run(tmp_path, m), "Conv")
    assert (conv.op, conv.placement) == ("DEPTHWISE_CONV_2D", "NPU")
    assert conv.macs == 14 * 14 * 8 * 9


def test_conv_with_computed_weights_runs_on_the_cpu(tmp_path: Path) -> None:
    g = Graph()
    y = g.op("Conv", [g.qdq("x"), g.qdq("k")], kernel_shape=[3, 3])
    m = g.model([("x", [1, 3, 8, 8]), ("k", [4, 3, 3, 3])], [g.qdq(y)])
    conv = layer(run(tmp_path, m), "Conv")
    assert (conv.placement, conv.rule) == ("CPU", "weights_constant")


@pytest.mark.parametrize(
    ("w_kw", "rule", "words"),
    [
        ({"zp": 3}, "weights_symmetric", "asymmetric int8 weights"),
        # 2 is onnx.TensorProto.UINT8 (the name would import onnx while collecting).
        ({"zp": 128, "dtype": 2}, "weights_signed", "uint8 weights"),
    ],
)
def test_malformed_qdq_weights_are_flagged(
    tmp_path: Path, w_kw: dict[str, Any], rule: str, words: str
) -> None:
    m = int_layer("Conv", [1, 3, 8, 8], weight=[4, 3, 3, 3], kernel_shape=[3, 3], w_kw=w_kw)
    conv = layer(run(tmp_path, m), "Conv")
    assert (conv.placement, conv.rule, conv.provenance) == ("CPU", rule, "3P")
    assert words in conv.reason


def test_per_tensor_weights_run_but_are_flagged(tmp_path: Path) -> None:
    m = int_layer("Conv", [1, 3, 8, 8], weight=[4, 3, 3, 3], kernel_shape=[3, 3],
                  w_kw={"per_channel": False})
    a = run(tmp_path, m)
    assert layer(a, "Conv").placement == "NPU"
    assert any("per-tensor weights on 1 layer(s) (1)" in w for w in a.warnings), a.warnings
    good = run(tmp_path, int_layer("Conv", [1, 3, 8, 8], weight=[4, 3, 3, 3],
                                   kernel_shape=[3, 3]), "good")
    assert not any("per-tensor" in w for w in good.warnings)


def test_uint8_activations_are_flagged(tmp_path: Path) -> None:
    """onnxruntime's QUInt8 activations are not the NPU's signed scheme."""
    g = Graph()
    kw = {"zp": 128, "dtype": onnx.TensorProto.UINT8}
    y = g.op("Conv", [g.qdq("x", **kw), g.weight([4, 3, 3, 3])], kernel_shape=[3, 3])
    a = run(tmp_path, g.model([("x", [1, 3, 8, 8])], [g.qdq(y, **kw)]))
    assert any("uint8 activations on 1 layer(s) (1)" in w for w in a.warnings), a.warnings
    signed = run(tmp_path, int_layer("Conv", [1, 3, 8, 8], weight=[4, 3, 3, 3],
                                     kernel_shape=[3, 3]), "signed")
    assert not any("uint8 activations" in w for w in signed.warnings)


def test_qoperator_format_is_named(tmp_path: Path) -> None:
    g = Graph()
    xq = g.q("x")
    s, z = g.const(np.float32(0.05)), g.const(np.int8(0))
    w = g.const(np.ones((4, 3, 3, 3), np.int8))
    ws, wz = g.const(np.float32(0.01)), g.const(np.int8(0))
    y = g.op("QLinearConv", [xq, s, z, w, ws, wz, s, z], kernel_shape=[3, 3])
    a = run(tmp_path, g.model([("x", [1, 3, 8, 8])], [g.dq(y)]))
    conv = layer(a, "QLinearConv")
    assert conv.placement == "CPU"
    assert any("QOperator-format operators (QLinearConv)" in w for w in a.warnings), a.warnings


def test_gemm_with_constant_weights_and_matmul_of_activations(tmp_path: Path) -> None:
    fc = layer(run(tmp_path, int_layer("Gemm", [1, 16], weight=[10, 16], transB=1)), "Gemm")
    assert (fc.op, fc.placement, fc.macs) == ("FULLY_CONNECTED", "NPU", 160)
    mm = layer(run(tmp_path, int_layer("MatMul", [1, 16], weight=[16, 10], w_kw={"axis": 1}),
                   "mm"), "MatMul")
    assert (mm.op, mm.placement, mm.macs) == ("FULLY_CONNECTED", "NPU", 160)
    g = Graph()
    y = g.op("MatMul", [g.qdq("a"), g.qdq("b")])
    aa = layer(run(tmp_path, g.model([("a", [1, 4, 8]), ("b", [1, 8, 4])], [g.qdq(y)]), "aa"),
               "MatMul")
    assert (aa.op, aa.placement, aa.rule) == ("BATCH_MATMUL", "CPU", "second_operand_constant")
    assert aa.macs == 4 * 4 * 8
    g = Graph()  # attention's [batch, heads, T, d] @ [batch, heads, d, T]
    y = g.op("MatMul", [g.qdq("q"), g.qdq("k")])
    att = layer(run(tmp_path, g.model([("q", [1, 2, 5, 16]), ("k", [1, 2, 16, 5])],
                                      [g.qdq(y)]), "att"), "MatMul")
    assert att.output_shape == (1, 2, 5, 5) and att.macs == 2 * 5 * 5 * 16


@pytest.mark.parametrize(
    ("op", "attrs", "size", "placement", "rule"),
    [
        ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, 16, "NPU", "table"),
        ("MaxPool", {"kernel_shape": [2, 2], "strides": [16, 16]}, 32, "CPU", "pool_stride"),
        ("AveragePool", {"kernel_shape": [3, 3]}, 16, "NPU", "table"),
        ("AveragePool", {"kernel_shape": [40, 40]}, 48, "CPU", "pool_window_size"),
        ("GlobalAveragePool", {}, 8, "NPU", "table"),
        ("GlobalAveragePool", {}, 40, "CPU", "global_pool_size"),
        ("GlobalMaxPool", {}, 8, "NPU", "table"),
    ],
)
def test_pools(
    tmp_path: Path, op: str, attrs: dict[str, Any], size: int, placement: str, rule: str
) -> None:
    pool = layer(run(tmp_path, int_layer(op, [1, 4, size, size], **attrs)), op)
    assert (pool.placement, pool.rule) == (placement, rule)


@pytest.mark.parametrize(
    ("axes", "placement", "rule"),
    [([2, 3], "NPU", "table"), ([1], "CPU", "mean_is_global_pool")],
)
def test_reduce_mean_axes_are_read_channel_first(
    tmp_path: Path, axes: list[int], placement: str, rule: str
) -> None:
    mean = layer(run(tmp_path, int_layer("ReduceMean", [1, 4, 8, 8], axes=axes)), "ReduceMean")
    assert (mean.op, mean.placement, mean.rule) == ("MEAN", placement, rule)


@pytest.mark.parametrize(
    ("operand", "placement"),
    [([1, 4, 1, 1], "NPU"), ([4, 1, 1], "NPU"), ([1, 1, 8, 8], "NPU"), ([1, 4, 8, 1], "CPU")],
)
def test_elementwise_broadcast_in_channel_first(
    tmp_path: Path, operand: list[int], placement: str
) -> None:
    g = Graph()
    c = g.dq(g.const(np.ones(operand, np.int8), "k"))
    y = g.op("Add", [g.qdq("x"), c])
    add = layer(run(tmp_path, g.model([("x", [1, 4, 8, 8])], [g.qdq(y)])), "Add")
    assert add.placement == placement, add.reason
    if placement == "CPU":
        assert add.rule == "broadcast_supported"


@pytest.mark.parametrize(
    ("op", "attrs", "row", "placement"),
    [
        ("Relu", {}, "RELU", "NPU"),
        ("Sigmoid", {}, "LOGISTIC", "NPU"),
        ("HardSwish", {}, "HARD_SWISH", "NPU"),
        ("LeakyRelu", {"alpha": 0.1}, "LEAKY_RELU", "NPU"),
        ("Softmax", {}, "SOFTMAX", "CPU"),
        ("HardSigmoid", {}, "HardSigmoid", "CPU"),
        ("Transpose", {"perm": [0, 2, 3, 1]}, "TRANSPOSE", "NPU"),
        ("DepthToSpace", {"blocksize": 2}, "DEPTH_TO_SPACE", "CPU"),
    ],
)
def test_activations_and_table_rows(
    tmp_path: Path, op: str, attrs: dict[str, Any], row: str, placement: str
) -> None:
    x = layer(run(tmp_path, int_layer(op, [1, 4, 8, 8], **attrs)), op)
    assert (x.op, x.placement) == (row, placement)


@pytest.mark.parametrize(
    ("lo", "hi", "row"), [(0.0, 6.0, "RELU6"), (-1.0, 1.0, "RELU_N1_TO_1"), (-2.0, 3.0, "MINIMUM")]
)
def test_clip_by_its_bounds(tmp_path: Path, lo: float, hi: float, row: str) -> None:
    g = Graph()
    y = g.op("Clip", [g.qdq("x"), g.const(np.float32(lo)), g.const(np.float32(hi))])
    clip = layer(run(tmp_path, g.model([("x", [1, 4, 8, 8])], [g.qdq(y)])), "Clip")
    assert (clip.op, clip.placement) == (row, "NPU")


@pytest.mark.parametrize(("mode", "row", "placement"),
                         [("nearest", "RESIZE_NEAREST_NEIGHBOR", "NPU"),
                          ("linear", "RESIZE_BILINEAR", "CPU"), ("cubic", "Resize", "CPU")])
def test_resize_by_mode(tmp_path: Path, mode: str, row: str, placement: str) -> None:
    g = Graph()
    scales = g.const(np.array([1, 1, 2, 2], np.float32))
    y = g.op("Resize", [g.qdq("x"), "", scales], mode=mode)
    r = layer(run(tmp_path, g.model([("x", [1, 4, 8, 8])], [g.qdq(y)])), "Resize")
    assert (r.op, r.placement) == (row, placement)
    assert r.output_shape == (1, 4, 16, 16)


def test_flatten_of_a_channel_first_map_needs_a_transpose(tmp_path: Path) -> None:
    spread = layer(run(tmp_path, int_layer("Flatten", [1, 4, 8, 8])), "Flatten")
    assert (spread.op, spread.placement) == ("TRANSPOSE", "NPU")
    pooled = layer(run(tmp_path, int_layer("Flatten", [1, 4, 1, 1]), "p"), "Flatten")
    assert (pooled.op, pooled.macs) == ("RESHAPE", 0)


def test_exporter_flatten_chain_folds_and_stays_integer(tmp_path: Path) -> None:
    """torch.onnx writes a flatten as Shape → Gather → Unsqueeze → Concat → Reshape on a
    dynamic batch: the chain folds (the batch is 1) and the Reshape stays an int8 layer."""
    g = Graph()
    c = g.dq(g.q(g.op("Conv", [g.qdq("x"), g.weight([4, 3, 3, 3])], kernel_shape=[3, 3])))
    n = g.op("Gather", [g.op("Shape", [c]), g.const(np.array(0, np.int64))], axis=0)
    n = g.op("Unsqueeze", [n, g.const(np.array([0], np.int64))])
    target = g.op("Concat", [n, g.const(np.array([-1], np.int64))], axis=0)
    r = g.op("Reshape", [c, target])
    y = g.op("Gemm", [g.qdq(r), g.weight([10, 144])], transB=1)
    a = run(tmp_path, g.model([("x", ["N", 3, 8, 8])], [g.qdq(y)]))
    assert [f.op for f in a.folded] == ["SHAPE", "GATHER", "EXPAND_DIMS", "CONCATENATION"]
    assert [(x.display_op, x.placement) for x in a.layers] == [
        ("QuantizeLinear→QUANTIZE", "CPU"), ("Conv→CONV_2D", "NPU"),
        ("Reshape→TRANSPOSE", "NPU"), ("Gemm→FULLY_CONNECTED", "NPU"),
        ("DequantizeLinear→DEQUANTIZE", "CPU"),
    ]
    assert layer(a, "Reshape").output_shape == (1, 144)
    assert not a.dynamic and not a.warnings


def test_lstm_runs_on_the_cpu_with_its_macs(tmp_path: Path) -> None:
    g = Graph()
    w = g.const(np.zeros((1, 4 * 16, 8), np.float32))
    r = g.const(np.zeros((1, 4 * 16, 16), np.float32))
    y = g.op("LSTM", ["x", w, r], hidden_size=16)
    a = run(tmp_path, g.model([("x", [10, 1, 8])], [y]))
    lstm = layer(a, "LSTM")
    assert (lstm.op, lstm.placement, lstm.kind) == ("UNIDIRECTIONAL_SEQUENCE_LSTM", "CPU",
                                                    "recurrent")
    assert lstm.macs == 10 * 4 * 16 * (8 + 16)


# --------------------------------------------------------------------------- islands, float


def _sandwich(middle: list[str]) -> Any:
    """Conv (QDQ) → ``middle`` → Conv (QDQ): Q/DQ only around the first middle op's input
    and the last one's output, as a quantizer leaves layers it did not quantize."""
    g = Graph()
    w = [8, 8, 1, 1]
    c1 = g.op("Conv", [g.qdq("x"), g.weight(w)], kernel_shape=[1, 1])
    t = g.dq(g.q(c1))
    for op in middle:
        t = g.op(op, [t])
    c2 = g.op("Conv", [g.qdq(t), g.weight(w)], kernel_shape=[1, 1])
    return g.model([("x", [1, 8, 16, 16])], [g.qdq(c2)])


def test_float_island_between_qdq_regions_costs_two_conversions(tmp_path: Path) -> None:
    a = run(tmp_path, _sandwich(["Sin", "Cos"]))
    assert [x.display_op for x in a.layers] == [
        "QuantizeLinear→QUANTIZE", "Conv→CONV_2D", "DequantizeLinear→DEQUANTIZE", "Sin", "Cos",
        "QuantizeLinear→QUANTIZE", "Conv→CONV_2D", "DequantizeLinear→DEQUANTIZE",
    ]
    assert [x.placement for x in a.layers][1:7] == ["NPU", "CPU", "CPU", "CPU", "CPU", "NPU"]
    (island,) = a.float_islands
    assert island.ops == ("DEQUANTIZE", "SIN", "COS", "QUANTIZE")
    assert island.conversion_us > 0 and island.total_us > island.conversion_us
    assert a.precision == "mixed"
    assert any("float island at layers 2–5" in s for s in a.advice), a.advice


def test_qdq_wrapped_layer_is_integer(tmp_path: Path) -> None:
    """Wrapped in Q/DQ, an op with a software int8 kernel reads and writes int8: no island."""
    a = run(tmp_path, _sandwich(["Sin"]))
    assert [x.op for x in a.layers] == ["QUANTIZE", "CONV_2D", "SIN", "CONV_2D", "DEQUANTIZE"]
    sin = layer(a, "Sin")
    assert (sin.placement, sin.tier) == ("CPU", "SW_INT")
    assert not a.float_islands and a.precision == "int8"
    # An op in no row runs in software float: its int8 tensors are converted both ways.
    b = run(tmp_path, _sandwich(["HardSigmoid"]), "hs")
    hs = layer(b, "HardSigmoid")
    assert (hs.tier, hs.provenance) == ("SW_FLOAT", "3P") and hs.convert_us > 0
    (island,) = b.float_islands
    assert island.ops == ("HardSigmoid",) and island.conversion_us == pytest.approx(hs.convert_us)


def test_requantization_between_integer_tensors_stays_on_the_npu(tmp_path: Path) -> None:
    g = Graph()
    x = g.q("x", scale=0.05)
    y = g.q(g.dq(x, scale=0.05), scale=0.1)  # DQ → Q: int8 → int8 with a new scale
    a = run(tmp_path, g.model([("x", [1, 4, 8, 8])], [g.dq(y, scale=0.1)]))
    assert [(x.op, x.placement) for x in a.layers] == [
        ("QUANTIZE", "CPU"), ("QUANTIZE", "NPU"), ("DEQUANTIZE", "CPU")]


def test_unquantized_model_falls_back_entirely(tmp_path: Path) -> None:
    g = Graph()
    w = g.const(np.ones((4, 3, 3, 3), np.float32))
    y = g.op("Relu", [g.op("Conv", ["x", w], kernel_shape=[3, 3])])
    a = run(tmp_path, g.model([("x", [1, 3, 8, 8])], [y]))
    assert a.precision == "float32" and a.ops_npu == 0
    assert all(x.rule == "int8_tensors" for x in a.layers)
    assert any("quantize the model to full INT8" in s for s in a.advice)


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty file"),
        (b"hello, this is a text file\n", "not an ONNX model"),
        (b"\x08\x07", "not an ONNX model"),
    ],
)
def test_not_onnx_is_one_line(tmp_path: Path, content: bytes, words: str) -> None:
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(OnnxReadError) as err:
        analyze(p)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert str(p) in str(err.value)


def test_truncated_model_is_one_line(tmp_path: Path) -> None:
    good = save(tmp_path, "good", int_layer("Conv", [1, 3, 8, 8], weight=[4, 3, 3, 3],
                                            kernel_shape=[3, 3]))
    p = tmp_path / "cut.onnx"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(OnnxReadError) as err:
        analyze(p)
    assert "\n" not in str(err.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(OnnxReadError, match="no such file"):
        analyze(tmp_path / "none.onnx")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(OnnxReadError, match="is a folder"):
        analyze(tmp_path / "dir.onnx")


# --------------------------------------------------------------------------- report lines


def test_report_markdown_and_stedgeai_lines_for_an_onnx_model(tmp_path: Path) -> None:
    from engine.npu import headline, stedgeai_commands

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    int8 = save(run_dir, "int8", int_layer("Conv", [1, 3, 8, 8], weight=[4, 3, 3, 3],
                                           kernel_shape=[3, 3]))
    g = Graph()
    y = g.op("Conv", ["x", g.const(np.ones((4, 3, 3, 3), np.float32))], kernel_shape=[3, 3])
    fp32 = save(run_dir, "fp32", g.model([("x", [1, 3, 8, 8])], [y]))
    cmds = stedgeai_commands(int8)
    assert [c.split()[:3] for c in cmds] == [
        ["stedgeai", verb, "--model"] for verb in ("analyze", "generate", "validate")
    ]
    assert all(f"--model {int8} --target stm32n6 --st-neural-art" in c for c in cmds)
    a = analyze(int8)
    md = a.to_markdown(commands=cmds)
    assert "| 1 | Conv→CONV_2D |" in md and f"stedgeai validate --model {int8}" in md
    h = headline(fp32, a)
    assert (h["fp32"]["ops_npu"], h["int8"]["ops_npu"]) == (0, 1)
    assert h["int8"]["size_bytes"] == int8.stat().st_size


def test_report_types_the_onnx_operator(tmp_path: Path) -> None:
    from engine.report.npu import Npu

    d = analyze(save(tmp_path, "m", int_layer("Relu", [1, 4, 8, 8]))).to_dict()
    npu = Npu.from_dict(d)
    assert [x.source_op for x in npu.layers or ()] == ["QuantizeLinear", "Relu", "DequantizeLinear"]
    assert all(not x.extra for x in npu.layers or ())
    assert npu.to_dict() == d


# --------------------------------------------------------------------------- more shapes


def test_conv1d_is_a_conv_of_height_one(tmp_path: Path) -> None:
    conv = layer(run(tmp_path, int_layer("Conv", [1, 4, 32], weight=[8, 4, 3],
                                         kernel_shape=[3])), "Conv")
    assert (conv.op, conv.placement, conv.output_shape) == ("CONV_2D", "NPU", (1, 8, 30))
    assert conv.macs == 30 * 8 * 4 * 3


def test_conv_transpose(tmp_path: Path) -> None:
    t = layer(run(tmp_path, int_layer("ConvTranspose", [1, 4, 8, 8], weight=[4, 6, 2, 2],
                                      kernel_shape=[2, 2], strides=[2, 2], w_kw={"axis": 1})),
              "ConvTranspose")
    assert (t.op, t.placement, t.output_shape) == ("TRANSPOSE_CONV", "NPU", (1, 6, 16, 16))
    assert t.macs == (4 * 8 * 8) * 6 * 2 * 2


def test_split_and_concat_keep_every_output_integer(tmp_path: Path) -> None:
    g = Graph()
    g.nodes.append(onnx.helper.make_node(
        "Split", [g.qdq("x")], ["s_a", "s_b"], name="split", axis=1, num_outputs=2))
    a, b = g.qdq("s_a"), g.qdq("s_b")
    y = g.op("Concat", [b, a], axis=1)
    m = g.model([("x", [1, 8, 4, 4])], [g.qdq(y)], opset=18)
    an = run(tmp_path, m)
    assert [(x.op, x.placement) for x in an.layers] == [
        ("QUANTIZE", "CPU"), ("SPLIT", "NPU"), ("CONCATENATION", "NPU"), ("DEQUANTIZE", "CPU")]
    assert an.precision == "int8"


def test_prelu_with_a_per_channel_slope(tmp_path: Path) -> None:
    g = Graph()
    slope = g.dq(g.const(np.ones((4, 1, 1), np.int8), "slope"))
    y = g.op("PRelu", [g.qdq("x"), slope])
    p = layer(run(tmp_path, g.model([("x", [1, 4, 8, 8])], [g.qdq(y)])), "PRelu")
    assert (p.op, p.placement) == ("PRELU", "NPU")


def test_bidirectional_gru_macs(tmp_path: Path) -> None:
    g = Graph()
    w = g.const(np.zeros((2, 3 * 16, 8), np.float32))
    r = g.const(np.zeros((2, 3 * 16, 16), np.float32))
    y = g.op("GRU", ["x", w, r], hidden_size=16, direction="bidirectional")
    gru = layer(run(tmp_path, g.model([("x", [10, 1, 8])], [y])), "GRU")
    assert (gru.op, gru.placement) == ("BIDIRECTIONAL_SEQUENCE_RNN", "CPU")
    assert gru.macs == 2 * 10 * 3 * 16 * (8 + 16)


def test_shapes_the_file_leaves_out_are_inferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without value_info (an exporter that writes none), onnx's shape inference fills the
    layers' shapes: the same analysis as with them. With them, it is not called."""
    from engine.onnx import proto

    calls: list[int] = []
    real = proto.infer_shapes
    monkeypatch.setattr(proto, "infer_shapes", lambda mp: calls.append(1) or real(mp))
    g = Graph()
    c = g.op("Conv", [g.qdq("x"), g.weight([4, 3, 3, 3])], kernel_shape=[3, 3])
    m = g.model([("x", [1, 3, 8, 8])], [g.qdq(g.op("Relu", [g.qdq(c)]))])
    full = run(tmp_path, m, "full")
    assert calls == []
    del m.graph.value_info[:]
    bare = run(tmp_path, m, "bare")
    assert calls == [1]
    assert [(x.op, x.output_shape, x.macs) for x in bare.layers] == [
        (x.op, x.output_shape, x.macs) for x in full.layers]
    assert layer(bare, "Conv").output_shape == (1, 4, 6, 6)
