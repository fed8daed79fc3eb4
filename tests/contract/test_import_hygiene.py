"""The engine stays headless and the TUI stays free of TensorFlow (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def test_engine_loads_no_ui_and_no_tensorflow() -> None:
    top = _top(modules_after("import engine, engine.job, engine.evaluate, engine.worker"))
    assert not top & {"textual", "rich"}, top & {"textual", "rich"}
    assert "tensorflow" not in top and "keras" not in top


def test_tui_loads_no_tensorflow() -> None:
    top = _top(modules_after("import tui.app"))
    assert "textual" in top
    assert not top & {"tensorflow", "keras", "tf_keras"}
