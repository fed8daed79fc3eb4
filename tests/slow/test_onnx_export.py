"""`artq samples export-onnx`: the bundled ONNX sample is what the export makes today (the
same weights and operators; tf2onnx's generated constant names may differ), checked by the
export itself against the Keras model on the sample's test items."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from commands import artq_process as artq
from onnx import numpy_helper

WEIGHTS = Path(__file__).resolve().parents[2] / "engine" / "samples" / "weights"


def _same_model(a: Path, b: Path) -> None:
    """The same operators in the same order, and the same weights: each initializer of ``a``
    matched by one of ``b`` of its shape and type, equal to within a few float32 steps.

    Not bytes: TensorFlow folds the batch norms into the convolution weights with the CPU's
    own vector code, and an AVX-512 machine gave folded values up to 3.6e-7 apart (relative)
    from the bundled file's; the raw weights were identical."""
    ma, mb = onnx.load(str(a)), onnx.load(str(b))
    assert [n.op_type for n in ma.graph.node] == [n.op_type for n in mb.graph.node]
    left = [numpy_helper.to_array(i) for i in mb.graph.initializer]
    for init in ma.graph.initializer:
        x = numpy_helper.to_array(init)
        match = next((k for k, y in enumerate(left) if y.shape == x.shape
                      and y.dtype == x.dtype and np.allclose(x, y, rtol=1e-6, atol=1e-9)), None)
        assert match is not None, f"{init.name} {x.shape}: no weights like it in {b.name}"
        left.pop(match)
    assert not left


def test_export_onnx_reproduces_the_bundled_digits_model(tmp_path: Path) -> None:
    try:
        import tf2onnx  # noqa: F401
    except ImportError:  # the [samples] extra: say so, except in CI, which installs it
        why = 'tf2onnx is not installed: pip install -e ".[samples]"'
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI installs it, so this test must run there", pytrace=False)
        pytest.skip(why)
    r = artq("samples", "export-onnx", "digits", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "argmax agreement 1.0000" in r.stdout
    _same_model(tmp_path / "digits.onnx", WEIGHTS / "digits.onnx")
    m = onnx.load(str(tmp_path / "digits.onnx"))
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 32, 32]  # batch 1, channels first


def test_the_digits_onnx_sample_has_int8_io_and_scores_as_with_float_io(tmp_path: Path) -> None:
    """`artq run sample_configs/digits_onnx.toml`: int8.onnx has int8 input and output by
    default, its INT8 top-1 is the float-I/O variant's within one item, and the NPU view
    has no float conversion left at its edges (the float-I/O model's QUANTIZE, its Reshape
    before it and its DEQUANTIZE run on the CPU)."""
    from engine import load_config
    from engine.job import run_job
    from engine.npu import analyze

    config = WEIGHTS.parents[2] / "sample_configs" / "digits_onnx.toml"
    runs = {}
    for io_type in ("int8", "float32"):
        cfg = load_config(config, [f'output.runs_dir="{tmp_path}"', f'name="{io_type}"']
                          + ([] if io_type == "int8" else ['quantization.io_type="float32"']))
        res = run_job(cfg)
        rep = res.report.to_dict()
        g = onnx.load(str(res.run_dir / "int8.onnx")).graph
        types = {v.type.tensor_type.elem_type for v in (*g.input, *g.output)}
        assert types == ({onnx.TensorProto.INT8} if io_type == "int8" else {onnx.TensorProto.FLOAT})
        assert rep["stages"]["int8"]["quantization"]["io_type"] == io_type
        layers = analyze(res.run_dir / "int8.onnx").to_dict()["layers"]
        runs[io_type] = (rep, [(x["op"], x["placement"]) for x in layers])
    n = runs["int8"][0]["data"]["test"]["items"]
    top1 = {k: r["stages"]["int8"]["metrics"]["top1"] for k, (r, _) in runs.items()}
    assert abs(top1["int8"] - top1["float32"]) * n <= 1 + 1e-9
    assert not [x for x in runs["int8"][1] if x[0] in ("QUANTIZE", "DEQUANTIZE")]
    assert {x for x in runs["float32"][1] if x[0] in ("QUANTIZE", "DEQUANTIZE")} == {
        ("QUANTIZE", "CPU"), ("DEQUANTIZE", "CPU")}
    npu = {k: sum(p == "NPU" for _, p in placed) for k, (_, placed) in runs.items()}
    assert npu["int8"] == npu["float32"] + 1  # the input's Reshape: integer on the NPU
    assert "--input-data-type int8 --output-data-type int8" in runs["int8"][0]["stedgeai"][0]
