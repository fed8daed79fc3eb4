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
    ("engine.evaluate", FRAMEWORKS | UI),
    ("engine.worker", FRAMEWORKS | UI),
    # The analyses the TUI and sweeps call in-process.
    ("engine.diagnostics", FRAMEWORKS | UI),
    ("engine.layers", FRAMEWORKS | UI),
    ("engine.sweep", FRAMEWORKS | UI),
    ("engine.cache", FRAMEWORKS | UI),
    ("engine.npu", FRAMEWORKS | UI),
    # What the TF-free preflight asks of the PyTorch backend: is torch there, how to get it.
    ("engine.backends.torch", FRAMEWORKS | UI),
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
