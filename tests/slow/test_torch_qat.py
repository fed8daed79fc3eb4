"""PyTorch models: the user's code and weights, the export check, the QDQ graph QAT exports,
QAT against PTQ on a planted skewed channel, and cancel/resume of QAT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

try:
    import torch  # noqa: F401
except ImportError:  # the [torch] extra is optional: say so, except in CI, which installs it
    import os

    _why = 'torch is not installed: pip install -e ".[torch]" (see the README)'
    if os.environ.get("CI"):
        pytest.fail(f"{_why}; CI installs it, so these tests must run there", pytrace=False)
    pytest.skip(_why, allow_module_level=True)
from torch_models import digits, skew_channel, torch_job, train_tiny, write_code

from engine import load_config, run_job
from engine.cancel import CancelToken
from engine.errors import CancelledError, ConversionError, InputFileError, ModelError
from engine.events import EpochEnd, Progress


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(models.py, state_dict) of a tiny digits CNN trained for a few seconds."""
    folder = tmp_path_factory.mktemp("tiny_torch")
    code = write_code(folder)
    return code, train_tiny(code, folder / "tiny.pt")


# ------------------------------------------------------------------ the user's model


def test_user_code_errors_are_one_line_naming_the_file(tmp_path: Path, tiny) -> None:
    from engine.backends.torch.usercode import build_module

    code, weights = tiny
    bad = write_code(tmp_path / "bad", "import torch\nraise ValueError('no GPU here')\n")
    with pytest.raises(ModelError, match=r"models.py: importing it failed \(line 2\): ValueError"):
        build_module(f"{bad}:build", "")
    with pytest.raises(ModelError, match=r"has no callable 'make' \(callables there: Tiny, build\)"):
        build_module(f"{code}:make", "")
    other = write_code(tmp_path / "other", "def build():\n    return 3\n")
    with pytest.raises(ModelError, match=r"build\(\) returned a int, not an nn.Module"):
        build_module(f"{other}:build", "")
    # A pickled object (not a state_dict) is refused by weights_only=True: nothing is run.
    import torch

    pickled = tmp_path / "whole_model.pt"
    torch.save(build_module(f"{code}:build", str(weights)), pickled)
    with pytest.raises(InputFileError, match="weights_only=True"):
        build_module(f"{code}:build", str(pickled))
    # Weights of another architecture: the key at fault, not a traceback.
    sd = torch.load(weights, weights_only=True)
    sd["c2.weight"] = sd["c2.weight"][:8]
    torch.save(sd, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="size mismatch for c2.weight"):
        build_module(f"{code}:build", str(tmp_path / "other.pt"))


def test_an_export_that_changes_the_model_stops_the_run(tmp_path: Path) -> None:
    """A forward that depends on the batch: traced with batch 1, it is not the same model."""
    from engine.backends.torch.export import check_export, export_onnx
    from engine.backends.torch.usercode import build_module

    code = write_code(tmp_path, (
        "import torch\nfrom torch import nn\n\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.c = nn.Conv2d(1, 4, 3)\n"
        "    def forward(self, x):\n"
        "        y = self.c(x).mean(dim=(2, 3))\n"
        "        return y - y.mean(dim=0, keepdim=True)  # depends on the other items\n\n"
        "def build():\n    return M()\n"))
    m = build_module(f"{code}:build", "")
    export_onnx(m, (1, 8, 8), tmp_path / "m.onnx")
    x = np.random.default_rng(0).random((16, 1, 8, 8)).astype(np.float32)
    with pytest.raises(ConversionError, match="the export changed the model"):
        check_export(m, tmp_path / "m.onnx", x)


def test_ptq_job_on_a_pytorch_model(tmp_path: Path, tiny) -> None:
    code, weights = tiny
    rep = run_job(load_config(torch_job(tmp_path, code, weights))).report.to_dict()
    assert rep["status"] == "ok"
    assert rep["model"]["format"] == "torch"
    assert rep["model"]["export_check"]["max_rel_diff"] < 1e-4
    assert rep["model"]["export_check"]["items"] == 256
    assert {s: rep["stages"][s]["path"] for s in rep["stages"]} == {
        "fp32": "fp32.onnx", "fp16": "fp16.onnx", "int8": "int8.onnx"}
    # The exported FP32 model scores what the PyTorch module scores on the same items.
    from engine.backends.torch.export import torch_outputs
    from engine.backends.torch.usercode import build_module

    x, y = digits("test", 300, 0)
    acc = float(np.mean(torch_outputs(build_module(f"{code}:build", str(weights)), x)[0]
                        .argmax(1) == y))
    assert abs(rep["stages"]["fp32"]["metrics"]["top1"] - acc) <= 1 / 300


# ------------------------------------------------------------------ the QDQ graph


def _qdq_facts(path: Path) -> dict[str, object]:
    """What the ``onnx`` package reads from a QDQ graph: weights, activations, islands."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    weights, acts, islands = [], [], []
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        # The weight: an int8 initializer, dequantized per output channel, zero points 0.
        dq = producer[n.input[1]]
        assert dq.op_type == "DequantizeLinear", (n.name, dq.op_type)
        w, scale, zp = (init[i] for i in dq.input[:3])
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        dq_b = producer.get(n.input[2]) if len(n.input) > 2 else None
        bias = init[dq_b.input[0]].dtype if dq_b is not None else None
        weights.append({"dtype": w.dtype, "zp": zp, "scales": scale.size,
                        "channels": w.shape[0], "axis": axis, "bias": bias})
        # The activation: DequantizeLinear of a QuantizeLinear to int8.
        dq_a = producer.get(n.input[0])
        q_a = producer.get(dq_a.input[0]) if dq_a is not None and dq_a.input else None
        acts.append((dq_a.op_type if dq_a else None, q_a.op_type if q_a else None,
                     init[q_a.input[2]].dtype if q_a is not None and len(q_a.input) > 2
                     and q_a.input[2] in init else None))
        # Everything reached from this node before a QuantizeLinear runs in float: it must
        # not reach another convolution.
        stack, seen = list(n.output), set()
        while stack:
            t = stack.pop()
            for c in consumers.get(t, []):
                if c.op_type == "QuantizeLinear" or id(c) in seen:
                    continue
                seen.add(id(c))
                if c.op_type in ("Conv", "Gemm"):
                    islands.append((n.name, c.name))
                stack.extend(c.output)
    return {"weights": weights, "acts": acts, "islands": islands}


def test_exported_qdq_graph_is_what_the_n6_takes(tmp_path: Path, tiny) -> None:
    from engine.backends.torch import quant
    from engine.backends.torch.export import onnx_outputs, torch_outputs
    from engine.backends.torch.usercode import build_module

    code, weights = tiny
    m = build_module(f"{code}:build", str(weights))
    x, _ = digits("calibration", 64, 0)
    q = quant.prepare(m, (1, 32, 32))
    assert quant.init_ranges(q, x) >= 5
    quant.export_qdq(q, (1, 32, 32), str(tmp_path / "int8.onnx"))
    facts = _qdq_facts(tmp_path / "int8.onnx")
    assert len(facts["weights"]) == 4  # three convolutions and the linear layer
    for w in facts["weights"]:
        assert w["dtype"] == np.int8
        assert w["zp"].dtype == np.int8 and not np.any(w["zp"])  # symmetric: zero points 0
        assert w["scales"] == w["channels"] and w["axis"] == 0  # per output channel
        assert w["bias"] == np.int32  # int32 at input scale × weight scale, as ORT writes it
    assert all(a == ("DequantizeLinear", "QuantizeLinear", np.int8) for a in facts["acts"])
    assert facts["islands"] == []
    # The Neural-ART placement puts every convolution and the linear layer on the NPU.
    from engine.npu import analyze

    layers = analyze(tmp_path / "int8.onnx", "stm32n6570-dk").to_dict()["layers"]
    compute = [la for la in layers if la["source_op"] in ("Conv", "Gemm")]
    assert len(compute) == 4
    assert all(la["placement"] == "NPU" and "NPU" in la["reason"] for la in compute), compute
    assert not analyze(tmp_path / "int8.onnx").to_dict()["float_islands"]
    # The QDQ file computes what the fake-quant module computes (within a quantization step).
    ref, got = torch_outputs(q, x)[0], onnx_outputs(tmp_path / "int8.onnx", x)[0]
    assert np.mean(ref.argmax(1) == got.argmax(1)) >= 0.98


def test_the_graph_check_sees_a_float_island(tmp_path: Path, tiny) -> None:
    """The check above can fail: the same QDQ export with the activations' Q/DQ pairs
    between the first two convolutions bypassed (c1's output reaches c2 in float through
    ReLU and max pooling) is reported as an island."""
    import onnx

    from engine.backends.torch import quant
    from engine.backends.torch.usercode import build_module

    code, weights = tiny
    q = quant.prepare(build_module(f"{code}:build", str(weights)), (1, 32, 32))
    quant.init_ranges(q, digits("calibration", 32, 0)[0])
    quant.export_qdq(q, (1, 32, 32), str(tmp_path / "int8.onnx"))
    model = onnx.load(str(tmp_path / "int8.onnx"))
    nodes = model.graph.node
    producer = {o: n for n in nodes for o in n.output}
    convs = [n for n in nodes if n.op_type == "Conv"]
    start, end = list(nodes).index(convs[0]), list(nodes).index(convs[1])
    for n in list(nodes)[start + 1:end + 1]:  # every node from c1 up to c2's input
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        dq = producer.get(n.input[0])
        if dq is not None and dq.op_type == "DequantizeLinear":
            n.input[0] = producer[dq.input[0]].input[0]  # skip its Q/DQ pair
    onnx.save(model, str(tmp_path / "island.onnx"))
    facts = _qdq_facts(tmp_path / "island.onnx")
    assert facts["islands"] == [(convs[0].name, convs[1].name)]
    assert facts["acts"][1][0] != "DequantizeLinear"


# ------------------------------------------------------------------ QAT


def test_qat_recovers_most_of_what_ptq_loses_on_a_skewed_channel(tmp_path: Path, tiny) -> None:
    code, weights = tiny
    skewed = skew_channel(code, weights, tmp_path / "skewed.pt", factor=90.0)
    job = torch_job(tmp_path, code, skewed, test_count=500, qat_epochs=8, train=3000,
                    compare=True)
    # Weights from the skewed channel must grow ~90× back: a higher rate than the sample's.
    rep = run_job(load_config(job, ["quantization.qat.learning_rate=1e-3"])).report.to_dict()
    assert rep["status"] == "ok"
    assert rep["stages"]["int8"]["path"] == "int8.onnx"
    assert rep["stages"]["int8"]["quantization"]["weights"].startswith("int8 symmetric per-channel")
    # io_type applies to the exported QDQ model as to a PTQ one: int8 input and output.
    q = rep["stages"]["int8"]["quantization"]
    assert (q["io_type"], q["input_dtype"], set(q["output_dtypes"].values())) == (
        "int8", "int8", {"int8"})
    import onnx

    g = onnx.load(str(Path(rep["run_dir"]) / "int8.onnx")).graph
    assert {v.type.tensor_type.elem_type for v in (*g.input, *g.output)} == {
        onnx.TensorProto.INT8}
    ptq_drop = rep["comparison"]["ptq"]["drop"]
    qat_drop = rep["verdict"]["drop"]
    print(f"skewed PyTorch model: PTQ drop {ptq_drop:.2f}, QAT drop {qat_drop:.2f}")
    assert ptq_drop > 2.0, ptq_drop  # the skewed range really hurts PTQ
    assert (ptq_drop - qat_drop) / ptq_drop >= 0.5, (ptq_drop, qat_drop)
    h = rep["qat"]["history"]
    assert [e["epoch"] for e in h] == list(range(len(h)))
    assert all(e["loss"] is not None for e in h[1:])


def test_cancel_mid_epoch_and_resume_reach_the_uninterrupted_metric(tmp_path: Path, tiny) -> None:
    code, weights = tiny
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = run_job(load_config(torch_job(tmp_path / "a", code, weights, qat_epochs=3,
                                         train=640))).report.to_dict()
    assert full["status"] == "ok"

    cancel = CancelToken()
    epochs_seen: list[int] = []
    steps: list[Progress] = []

    def sink(ev: object) -> None:
        if isinstance(ev, EpochEnd):
            epochs_seen.append(ev.epoch)
        if isinstance(ev, Progress) and ev.stage == "qat_train":
            steps.append(ev)
        # Cancel inside the second epoch (20 steps of 32 items per epoch).
        if isinstance(ev, Progress) and ev.stage == "qat_train" and "epoch 2/" in ev.message:
            cancel.cancel()

    cfg = load_config(torch_job(tmp_path / "b", code, weights, qat_epochs=3, train=640))
    with pytest.raises(CancelledError) as e:
        run_job(cfg, sink, cancel)
    assert epochs_seen == [1]
    run_dir = Path(e.value.run_dir)  # type: ignore[attr-defined]
    from engine.report import read_report

    assert read_report(run_dir).status == "cancelled"
    from engine.job import resume_config
    from engine.job import run_job as run_job_resumable

    # The progress counts one epoch's batches per epoch (20 of 32 items), and the whole
    # stage's done never passes its total: a count like 344/250 read as a broken bar. (At
    # most 10 a second pass; an epoch's last batch always does.)
    assert {(p.epochs, p.batches, p.total) for p in steps} == {(3, 20, 60)}
    assert all(p.done == (p.epoch - 1) * 20 + p.batch and 1 <= p.batch <= 20 for p in steps)
    assert [p.done for p in steps] == sorted(p.done for p in steps)
    assert (1, 20) in [(p.epoch, p.batch) for p in steps] and steps[-1].epoch == 2
    resumed_steps: list[Progress] = []
    resumed = run_job_resumable(
        resume_config(run_dir), resume=run_dir,
        sink=lambda ev: resumed_steps.append(ev) if isinstance(ev, Progress)
        and ev.stage == "qat_train" else None).report.to_dict()
    assert resumed["status"] == "ok"
    # Resumed after epoch 1: epochs 2 and 3 are the stage's 40 batches, counted from 1.
    assert {p.total for p in resumed_steps} == {40}
    assert all(p.done == (p.epoch - 2) * 20 + p.batch for p in resumed_steps)
    assert [(p.epoch, p.batch, p.done) for p in resumed_steps if p.batch == 20] == [
        (2, 20, 20), (3, 20, 40)]
    assert resumed["qat"]["epochs_run"] == 3
    assert [e["val_metric"] for e in resumed["qat"]["history"]] == pytest.approx(
        [e["val_metric"] for e in full["qat"]["history"]], abs=1e-6)
    assert resumed["stages"]["int8"]["metrics"]["top1"] == pytest.approx(
        full["stages"]["int8"]["metrics"]["top1"], abs=1e-6)


def test_generic_task_qat_distils_the_float_model(tmp_path: Path, tiny) -> None:
    """Without a task metric, QAT learns to match the float model's outputs and is judged
    on agreement with them."""
    code, weights = tiny
    job = torch_job(tmp_path, code, weights, qat_epochs=1, train=320)
    rep = run_job(load_config(job, ['evaluation.task="generic"'])).report.to_dict()
    assert rep["status"] == "ok"
    # Logits are judged on fidelity, so QAT validates on the verdict's own figure: SQNR, dB.
    assert rep["qat"]["metric"] == "sqnr_db"
    assert rep["qat"]["history"][1]["loss"] > 0
    assert rep["qat"]["best_val"] == max(h["val_metric"] for h in rep["qat"]["history"]) > 10.0
    # Logits are not a class distribution: the output is judged on fidelity (cos, SQNR).
    assert rep["stages"]["int8"]["metrics"]["outputs"][0]["cos"] >= 0.99
