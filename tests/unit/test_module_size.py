"""Modules stay small enough to read in one sitting: none in engine/ or tui/ over 450 lines,
except the NPU rule table (one small function per rule, and the table that lists them)."""

from __future__ import annotations

from conftest import ROOT

LIMIT = 450
EXEMPT = {"engine/npu/rules.py"}


def test_no_module_in_engine_or_tui_is_over_450_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for folder in ("engine", "tui") for p in (ROOT / folder).rglob("*.py")}
    assert len(sizes) > 100  # the walk found the packages
    over = {path: n for path, n in sizes.items() if n > LIMIT and path not in EXEMPT}
    assert not over, f"over {LIMIT} lines (split by what they hold): {over}"
