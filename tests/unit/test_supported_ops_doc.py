"""docs/SUPPORTED_OPS.md is generated from the rule table and must be current."""

from __future__ import annotations

from engine.npu.docs import DOC_PATH, main, render
from engine.npu.rules import GENERIC, TABLE, all_builtins


def test_doc_is_current() -> None:
    assert DOC_PATH.is_file(), "run: python -m engine.npu.docs"
    assert DOC_PATH.read_text(encoding="utf-8") == render(), (
        "docs/SUPPORTED_OPS.md is out of date: run python -m engine.npu.docs"
    )


def test_doc_names_every_builtin_and_rule() -> None:
    text = render()
    for name in all_builtins():
        if name != "CUSTOM":
            assert name in text, name
    for c in GENERIC:
        assert f"`{c.name}`" in text and c.rule in text
    for rule in TABLE.values():
        for c in rule.constraints:
            assert c.rule in text
    assert "float32 tensors: the NPU runs INT8 only" in text


def test_check_mode(tmp_path) -> None:  # noqa: ANN001
    stale = tmp_path / "ops.md"
    stale.write_text("old", encoding="utf-8")
    assert main(["--check", "--path", str(stale)]) == 1
    assert main(["--path", str(stale)]) == 0
    assert main(["--check", "--path", str(stale)]) == 0
