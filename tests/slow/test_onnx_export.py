"""`artq samples export-onnx`: the bundled ONNX sample is what the export makes today (the
same weights and operators; tf2onnx's generated constant names may differ), checked by the
export itself against the Keras model on the sample's test items."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
from commands import artq_process as artq
from onnx import numpy_helper

WEIGHTS = Path(__file__).resolve().parents[2] / "engine" / "samples" / "weights"


def _fingerprint(path: Path) -> tuple[list[str], list[bytes]]:
    m = onnx.load(str(path))
    return ([n.op_type for n in m.graph.node],
            sorted(numpy_helper.to_array(i).tobytes() for i in m.graph.initializer))


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
    assert _fingerprint(tmp_path / "digits.onnx") == _fingerprint(WEIGHTS / "digits.onnx")
    m = onnx.load(str(tmp_path / "digits.onnx"))
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 32, 32]  # batch 1, channels first
