"""``quantization.io_type`` for ONNX QDQ models: the int8/uint8 rewrite of the graph's edges,
the runner feeding and reading it as the LiteRT path does, the NPU placement of its edges,
the stedgeai lines, and a whole job whose per-tensor errors pair the same tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_models import ONNX_TESTS, Graph, conv_classifier, conv_qdq, onnx, save

from engine import load_config
from engine.backends.onnx import io_types
from engine.backends.onnx.run import run_onnx
from engine.job import run_job
from engine.npu import analyze, stedgeai_commands
from engine.npu.driver import read_any

pytestmark = ONNX_TESTS

Q, DQ = "QuantizeLinear", "DequantizeLinear"


def _rewritten(src: Path, io_type: str) -> tuple[Path, dict]:
    m = onnx.load(str(src))
    io = io_types.set_io_type(m, io_type)
    onnx.checker.check_model(m, full_check=True)
    return save(src.parent, f"{src.stem}_{io_type}", m), io


def _inits(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}


@pytest.fixture(scope="module")
def qdq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conv_qdq(tmp_path_factory.mktemp("io"))


def test_int8_rewrite_makes_the_graph_input_and_output_the_int8_tensors(qdq: Path) -> None:
    before = onnx.load(str(qdq))
    q_in = next(n for n in before.graph.node if n.op_type == Q and n.input[0] == "x")
    path, io = _rewritten(qdq, "int8")
    m = onnx.load(str(path))
    assert io == {"input": {"x": "int8"}, "outputs": {"softmax11": "int8"}}
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT8
    assert [d.dim_value or d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim] == [
        d.dim_value or d.dim_param for d in before.graph.input[0].type.tensor_type.shape.dim]
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT8
    # No Q reads the input; the DQ that read the Q's output reads the input, same scale.
    assert not [n for n in m.graph.node if n.op_type == Q and n.input[0] == "x"]
    dq = next(n for n in m.graph.node if n.op_type == DQ and n.input[0] == "x")
    assert list(dq.input[1:]) == list(q_in.input[1:])
    # The output is made by a Q; no DQ follows it.
    assert next(n for n in m.graph.node if "softmax11" in n.output).op_type == Q
    assert not [n for n in m.graph.node if "softmax11" in n.input]
    assert len(m.graph.node) == len(before.graph.node) - 2


def test_uint8_rewrite_shifts_the_zero_points_and_keeps_int8_inside(qdq: Path) -> None:
    path, io = _rewritten(qdq, "uint8")
    m = onnx.load(str(path))
    inits = _inits(m)
    assert io == {"input": {"x": "uint8"}, "outputs": {"softmax11": "uint8"}}
    ins, outs = io_types.model_io(m)
    fin, fout = io_types.model_io(onnx.load(str(qdq)))
    assert fin[0].dtype == np.float32 and fout[0].dtype == np.float32
    i8in, i8out = io_types.model_io(onnx.load(str(_rewritten(qdq, "int8")[0])))
    assert ins[0].dtype == np.uint8 and ins[0].zero_point == i8in[0].zero_point + 128
    assert ins[0].scale == i8in[0].scale
    assert outs[0].dtype == np.uint8 and outs[0].zero_point == i8out[0].zero_point + 128
    # Every activation zero point but the two edges' is still int8.
    zps = [inits[n.input[2]] for n in m.graph.node if n.op_type in (Q, DQ)
           and n.input[0] not in inits]
    assert sum(z.dtype == np.uint8 for z in zps) == 2
    assert all(z.dtype == np.int8 for z in zps if z.dtype != np.uint8)


def test_float32_keeps_the_model(qdq: Path) -> None:
    m = onnx.load(str(qdq))
    before = m.SerializeToString()
    assert io_types.set_io_type(m, "float32") == {"input": {"x": "float32"},
                                                   "outputs": {"softmax11": "float32"}}
    assert m.SerializeToString() == before


def test_integer_io_runs_give_the_float_io_model_outputs(qdq: Path) -> None:
    """Same items, dequantized outputs: within one output step of the float-I/O model. Not
    equal everywhere: onnxruntime fuses the two graphs' QDQ nodes into different kernels
    (with graph optimisations off the outputs are identical), and the runner rounds input
    halves away from zero as LiteRT does, ONNX's QuantizeLinear to even."""
    x = np.random.default_rng(1).normal(size=(64, 3, 16, 16)).astype(np.float32)
    ref = run_onnx(str(qdq), x, workers=1).outputs[0]
    for io_type in ("int8", "uint8"):
        path, _ = _rewritten(qdq, io_type)
        got = run_onnx(str(path), x, workers=2).outputs[0]
        step = io_types.model_io(onnx.load(str(path)))[1][0].scale
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert np.abs(got - ref).max() <= step * 1.001
        assert (got == ref).mean() > 0.8
        assert (got.argmax(1) == ref.argmax(1)).mean() > 0.95


def test_integer_io_leaves_no_conversion_at_the_edges(qdq: Path) -> None:
    """The same layers on the NPU; float I/O costs a QUANTIZE and a DEQUANTIZE on the CPU at
    the edges, int8 none, uint8 two integer requantizations on the NPU (as TFLite's
    uint8 model has its QUANTIZE ops)."""
    placed = {}
    for io_type in ("float32", "int8", "uint8"):
        path = qdq if io_type == "float32" else _rewritten(qdq, io_type)[0]
        placed[io_type] = [(x["op"], x["placement"]) for x in analyze(path).to_dict()["layers"]]
    edges = {"QUANTIZE", "DEQUANTIZE"}
    inner = {k: [x for x in v if x[0] not in edges] for k, v in placed.items()}
    assert inner["float32"] == inner["int8"] == inner["uint8"]
    assert sum(p == "NPU" for _, p in inner["int8"]) >= 5
    assert [x for x in placed["float32"] if x[0] in edges] == [("QUANTIZE", "CPU"),
                                                             ("DEQUANTIZE", "CPU")]
    assert [x for x in placed["int8"] if x[0] in edges] == []
    assert [x for x in placed["uint8"] if x[0] in edges] == [("QUANTIZE", "NPU")] * 2
    assert placed["uint8"][0][0] == "QUANTIZE" and placed["uint8"][-1][0] == "QUANTIZE"
    for io_type in ("int8", "uint8"):
        a = analyze(_rewritten(qdq, io_type)[0]).to_dict()
        assert not a["float_islands"]


def test_an_input_that_feeds_a_float_layer_too_stays_float(tmp_path: Path) -> None:
    """x goes to a Q and, unquantized, to an Add: the input cannot be integer; the output
    can, and the rewrite says which edge stayed float."""
    g = Graph()
    c = g.op("Relu", [g.qdq("x", scale=0.02, zp=-3)])
    y = g.op("Add", [c, "x"])
    m = g.model([("x", [1, 4])], [g.qdq(y, scale=0.05, zp=1)])
    io = io_types.set_io_type(m, "int8")
    onnx.checker.check_model(m, full_check=True)
    assert io["input"] == {"x": "float32"} and list(io["outputs"].values()) == ["int8"]
    ins, outs = io_types.model_io(m)
    assert ins[0].dtype == np.float32
    assert (outs[0].scale, outs[0].zero_point) == (pytest.approx(0.05), 1)


def test_stedgeai_lines_say_the_onnx_model_io_types(qdq: Path, tmp_path: Path) -> None:
    """ST's compiler makes an ONNX QDQ model's I/O int8 unless told: the lines say the
    graph's own types, so float I/O stays float on the board."""
    for io_type, want in (("float32", "float32"), ("int8", "int8"), ("uint8", "uint8")):
        path = qdq if io_type == "float32" else _rewritten(qdq, io_type)[0]
        cmds = stedgeai_commands(path, read_any(path))
        flags = f"--st-neural-art --input-data-type {want} --output-data-type {want}"
        assert all(flags in c for c in cmds), cmds
    assert "data-type" not in " ".join(stedgeai_commands(qdq))  # no model read: no flags


JOB = """
name = "{name}"
[model]
path = "{model}"
[data.calibration]
kind = "npz"
path = "{data}"
[data.test]
kind = "npz"
path = "{data}"
[calibration]
samples = 16
[quantization]
io_type = "{io_type}"
stages = ["fp32", "int8"]
[evaluation]
workers = 2
[analysis]
debug_samples = 8
sensitivity_k = 0
[output]
runs_dir = "{runs}"
"""


def test_a_job_scores_and_measures_integer_io_as_float_io(tmp_path: Path) -> None:
    """The same model and items with each io_type: the same INT8 predictions (within an
    item), the same per-tensor errors paired with the float model, recorded io_type."""
    model = conv_classifier(tmp_path / "m.onnx", shape=("N", 1, 8, 8), seed=3)
    rng = np.random.default_rng(1)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.uniform(0, 1, (40, 8, 8, 1)).astype(np.float32),
             y=rng.integers(0, 4, 40))
    reports = {}
    for io_type in ("float32", "int8", "uint8"):
        cfg = tmp_path / f"{io_type}.toml"
        cfg.write_text(JOB.format(name=io_type, model=model, data=data, io_type=io_type,
                                  runs=tmp_path / "runs"))
        res = run_job(load_config(cfg))
        reports[io_type] = res.report.to_dict()
        rec = reports[io_type]["stages"]["int8"]["quantization"]
        assert rec["io_type"] == io_type and rec["input_dtype"] == io_type
        assert set(rec["output_dtypes"].values()) == {io_type}
        assert reports[io_type]["config"]["quantization"]["io_type"] == io_type
    acc = {k: r["stages"]["int8"]["metrics"]["top1"] for k, r in reports.items()}
    assert abs(acc["int8"] - acc["float32"]) <= 1 / 40 and abs(acc["uint8"] - acc["int8"]) < 1e-9

    def errors(r: dict) -> dict:
        return {x["name"]: x["error"]["model"]["sqnr_db"] for x in r["layers"] if x["error"]}

    f32, i8, u8 = (errors(reports[k]) for k in ("float32", "int8", "uint8"))
    inner = {k: v for k, v in f32.items() if k != "x"}
    assert len(inner) >= 4
    assert {k: i8[k] for k in inner} == pytest.approx(inner, abs=0.5)
    assert {k: u8[k] for k in inner} == pytest.approx(inner, abs=0.5)
    # The input's error: a layer row where the model quantizes it (float32: its QUANTIZE,
    # uint8: its requantization), measured and ranked in every case.
    assert "x" in f32 and "x" in u8 and "x" not in i8
    for r in reports.values():
        assert "x" in r["layer_analysis"]["ranking"]


def test_a_reshape_before_the_input_quantization_becomes_an_integer_layer(tmp_path: Path) -> None:
    """input → Reshape → Q (tf2onnx's NCHW → NHWC for one channel): the input is dequantized
    into the Reshape and its Q stays, so the Reshape is an integer layer on the NPU and no
    float conversion is left at the edge; the outputs are the float-I/O model's."""
    g = Graph()
    r = g.op("Reshape", ["x", g.const(np.array([1, 4, 4, 1], np.int64), "shape")])
    y = g.op("Relu", [g.qdq(r, scale=0.02, zp=-5)])
    fp = save(tmp_path, "reshape", g.model([("x", [1, 1, 4, 4])], [g.qdq(y, scale=0.02, zp=-5)]))
    x = np.random.default_rng(2).uniform(-1, 1, (30, 1, 4, 4)).astype(np.float32)
    ref = run_onnx(str(fp), x, workers=1).outputs[0]
    placed = {}
    for io_type in ("int8", "uint8"):
        path, io = _rewritten(fp, io_type)
        assert set(io["input"].values()) == {io_type} == set(io["outputs"].values())
        assert np.abs(run_onnx(str(path), x, workers=1).outputs[0] - ref).max() <= 0.02 * 1.001
        placed[io_type] = [(x["op"], x["placement"]) for x in analyze(path).to_dict()["layers"]]
    assert placed["int8"] == [("RESHAPE", "NPU"), ("RELU", "NPU")]
    assert placed["uint8"] == [("QUANTIZE", "NPU"), ("RESHAPE", "NPU"), ("RELU", "NPU"),
                               ("QUANTIZE", "NPU")]
    assert [x["op"] for x in analyze(fp).to_dict()["layers"]][:2] == ["RESHAPE", "QUANTIZE"]
