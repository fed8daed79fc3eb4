"""The engine stays headless and free of frameworks until a job needs one; the TUI never
loads TensorFlow. Each import runs in a fresh interpreter, where nothing is loaded yet.

import-linter (``lint-imports``, contracts in pyproject.toml) checks the static import graph;
this checks what an import really loads, lazy imports and third-party chains included.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

FRAMEWORKS = frozenset({"tensorflow", "keras", "tf_keras", "tensorflow_model_optimization",
                        "torch"})
UI = frozenset({"textual", "rich"})

CASES: list[tuple[str, frozenset[str]]] = [
    # The library API and what a UI starts: no UI toolkit, and no framework until a job runs.
    ("engine", FRAMEWORKS | UI),
    ("engine.job", FRAMEWORKS | UI),
    ("engine.preflight", FRAMEWORKS | UI),
    # What artq run asks as it starts, before the config is validated: no pydantic yet.
    ("engine.backends.prewarm", FRAMEWORKS | UI | {"pydantic"}),
    ("engine.evaluate", FRAMEWORKS | UI),
    ("engine.worker", FRAMEWORKS | UI),
    # The warm worker and its pool of TensorFlow children: TensorFlow only in the children.
    ("engine.serve", FRAMEWORKS | UI | {"onnxruntime"}),
    ("engine.backends.pool", FRAMEWORKS | UI | {"onnxruntime"}),
    # The analyses the TUI and sweeps call in-process.
    ("engine.diagnostics", FRAMEWORKS | UI),
    ("engine.layers", FRAMEWORKS | UI),
    ("engine.sweep", FRAMEWORKS | UI),
    ("engine.cache", FRAMEWORKS | UI),
    ("engine.npu", FRAMEWORKS | UI),
    # What the TF-free preflight asks of the PyTorch backend: is torch there, how to get it.
    ("engine.backends.torch", FRAMEWORKS | UI),
    # The ONNX backend loads onnxruntime only when a stage runs; its reader needs onnx alone.
    ("engine.backends.onnx", FRAMEWORKS | UI | {"onnxruntime"}),
    ("engine.backends.onnx.graph", FRAMEWORKS | UI | {"onnxruntime"}),
    # The CLI may use rich, but its start (and the TUI behind it) loads no framework.
    ("engine.cli", FRAMEWORKS | {"textual"}),
    ("tui.app", FRAMEWORKS),
]


def modules_after(code: str) -> set[str]:
    """Top-level names in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, cwd=ROOT, check=True, timeout=120,
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.strip().splitlines()[-1])}


@pytest.mark.parametrize(("module", "forbidden"), CASES, ids=[m for m, _ in CASES])
def test_import_loads_nothing_forbidden(module: str, forbidden: frozenset[str]) -> None:
    loaded = modules_after(f"import {module}")
    assert module.split(".")[0] in loaded  # the import itself ran
    assert not loaded & forbidden, sorted(loaded & forbidden)


ONNX_JOB = """
[model]
path = "m.onnx"
[data.calibration]
kind = "npz"
path = "d.npz"
[data.test]
kind = "npz"
path = "d.npz"
[calibration]
samples = 8
[analysis]
debug_samples = 0
[output]
runs_dir = "runs"
"""


def test_an_onnx_job_loads_no_tensorflow(tmp_path) -> None:  # noqa: ANN001
    """A whole ONNX job (load, FP16, QDQ INT8 with calibration, evaluation, NPU stage) in a
    fresh interpreter: onnxruntime runs it, and no TensorFlow or Keras module is loaded."""
    (tmp_path / "job.toml").write_text(ONNX_JOB)
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
import numpy as np
from onnx_models import conv_classifier
from engine import load_config
from engine.job import run_job
tmp = Path({str(tmp_path)!r})
conv_classifier(tmp / "m.onnx", shape=("N", 1, 8, 8))
rng = np.random.default_rng(0)
np.savez(tmp / "d.npz", x=rng.uniform(0, 1, (24, 8, 8, 1)).astype(np.float32),
         y=rng.integers(0, 4, 24))
assert run_job(load_config(tmp / "job.toml")).status == "ok"
"""
    loaded = modules_after(code)
    assert "onnxruntime" in loaded  # the job really ran on the ONNX path
    assert not loaded & FRAMEWORKS, sorted(loaded & FRAMEWORKS)
    # onnxruntime's symbolic shape inference (onnxruntime.tools) brings sympy, and PyTorch
    # where it is installed (~4 s): skipped here, where ONNX's own inference knows every shape.
    assert "sympy" not in loaded
