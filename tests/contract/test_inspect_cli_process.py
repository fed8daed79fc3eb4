"""``artq inspect`` as a real process: a closed stdout, and what the command loads in a
fresh interpreter. (Its outputs and errors, in-process: tests/unit/test_inspect_cli.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from npu_models import conv_model, write
from onnx_models import ONNX_TESTS


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("cli"), "conv", conv_model())


@pytest.mark.parametrize("args", [["inspect", "{model}", "--json"], ["inspect", "{model}"],
                                  ["samples", "list"]])
def test_closed_stdout_ends_quietly(model: Path, args: list[str]) -> None:
    """``artq inspect --json | head -c 1``: no traceback, the shell's 141 for a closed pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before artq writes a byte: every write fails
    try:
        r = subprocess.run(
            [sys.executable, "-m", "engine.cli", *(a.format(model=model) for a in args)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
        )
    finally:
        os.close(write_end)
    assert r.returncode == 141, r.stderr
    assert r.stderr == ""  # neither a traceback nor Python's "Exception ignored" at exit


HYGIENE = """
import json, sys
{body}
bad = sorted({{m.split('.')[0] for m in sys.modules}} & {{'tensorflow', 'keras', 'tf_keras',
                                                       'textual'{extra}}})
print(json.dumps(bad))
"""


def _fresh(body: str, extra: str = "") -> list[str]:
    code = HYGIENE.format(body=body, extra=extra)
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_engine_npu_imports_no_tensorflow_nor_rich(model: Path) -> None:
    body = f"from engine.npu import analyze\nanalyze({str(model)!r})"
    assert _fresh(body, extra=", 'rich'") == []


def test_inspect_command_imports_no_tensorflow_nor_numpy(model: Path) -> None:
    """numpy alone is a quarter of inspect's half-second budget; flatbuffers can do without."""
    body = (
        "import argparse\nfrom engine.cli import inspect as i\n"
        "p = argparse.ArgumentParser(); s = p.add_subparsers(dest='c'); i.add_parser(s)\n"
        f"i.run(p.parse_args(['inspect', {str(model)!r}, '--json']))"
    )
    assert _fresh(body, extra=", 'numpy'") == []


def test_inspect_without_numpy_reads_the_same_model(model: Path) -> None:
    """The numpy-less flatbuffers import of ``artq inspect`` reads exactly what the library
    reads with numpy loaded."""
    lean = subprocess.run(
        [sys.executable, "-m", "engine.cli", "inspect", str(model), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    import numpy  # noqa: F401 - the library path, numpy already loaded

    from engine.npu import analyze

    assert json.loads(lean) == json.loads(json.dumps(analyze(str(model)).to_dict()))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from onnx_models import conv_qdq  # onnxruntime's quantizer, in this fixture only

    return conv_qdq(tmp_path_factory.mktemp("onnx"))


@ONNX_TESTS
def test_inspect_onnx_imports_neither_onnxruntime_nor_tensorflow(onnx_model: Path) -> None:
    """The ONNX reader needs the onnx package's protobuf schema only: no onnxruntime, no
    TensorFlow, and not the rest of onnx (its helpers pull numpy and ml_dtypes, a second)."""
    body = (
        "import argparse\nfrom engine.cli import inspect as i\n"
        "p = argparse.ArgumentParser(); s = p.add_subparsers(dest='c'); i.add_parser(s)\n"
        f"assert i.run(p.parse_args(['inspect', {str(onnx_model)!r}, '--json'])) == 0\n"
        "assert 'onnx.onnx_ml_pb2' in sys.modules and 'onnx.helper' not in sys.modules"
    )
    assert _fresh(body, extra=", 'onnxruntime', 'numpy', 'ml_dtypes', 'torch'") == []


@ONNX_TESTS
def test_inspect_onnx_process_reads_the_same_model(onnx_model: Path) -> None:
    """``artq inspect model.onnx --json`` as a process answers what the library answers with
    the whole onnx package loaded (the standalone schema is the same protobuf)."""
    lean = subprocess.run(
        [sys.executable, "-m", "engine.cli", "inspect", str(onnx_model), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    import onnx  # noqa: F401 - the full package already loaded, as in a job

    from engine.npu import analyze

    assert json.loads(lean) == json.loads(json.dumps(analyze(str(onnx_model)).to_dict()))
    assert json.loads(lean)["summary"]["ops_npu"] >= 4
