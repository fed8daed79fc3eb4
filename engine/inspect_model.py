"""Read-only facts for a front-end, without TensorFlow: what a model file holds, what a rule says.

The model summary lives with the one TF-free model reader (:mod:`engine.modelfile`); it is
re-exported here for the TUI.
"""

from __future__ import annotations

from .modelfile import model_summary

__all__ = ["model_summary", "rule_text"]


def rule_text(op: str, rule: str) -> str:
    """The human-readable rule behind a layer's placement (Vela-style docstrings), or ""."""
    from .npu import rules  # noqa: PLC0415 - TF-free, but only the Layers screen needs it

    table = getattr(rules, "TABLE", {})
    if rule in ("", "table"):
        r = table.get(op)
        if r is None:
            return "not in ST's operator table: it runs in software on the CPU"
        return " ".join(x for x in (r.comment, r.sw_reason) if x)
    candidates = list(getattr(rules, "GENERIC", ()))
    r = table.get(op)
    if r is not None:
        candidates += list(r.constraints)
    for c in candidates:
        if c.name == rule:
            return c.rule
    return rule
