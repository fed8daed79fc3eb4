"""The warm worker forgets the user code a job imported (a PyTorch model's file and its
siblings run in the worker): an edit shows in the next launch, as in a one-shot worker."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from engine.serve import forget_user_modules


def test_user_modules_a_job_imported_are_forgotten_and_the_rest_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "artq_test_sibling.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("artq_test_sibling", "wave"):
        sys.modules.pop(name, None)
    before = set(sys.modules)
    assert importlib.import_module("artq_test_sibling").VALUE == 1
    importlib.import_module("wave")  # the standard library: Python's own, kept
    forget_user_modules(before)
    assert "artq_test_sibling" not in sys.modules and "wave" in sys.modules
    # Another size too: in the same second, an unchanged size lets Python reuse the .pyc.
    (tmp_path / "artq_test_sibling.py").write_text("VALUE = 2  # edited\n")
    importlib.invalidate_caches()
    assert importlib.import_module("artq_test_sibling").VALUE == 2  # the edit shows
    sys.modules.pop("artq_test_sibling", None)
