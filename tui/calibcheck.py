"""A data-check finding in words (the check itself runs in ``engine.worker check``:
:mod:`engine.datacheck`)."""

from __future__ import annotations

from typing import Any


def as_finding(f: Any) -> dict[str, Any]:
    """A Finding event, a dataclass or a dict → {code, severity, message, evidence, fix}."""
    from engine.datacheck import as_finding as _as_finding  # noqa: PLC0415 - after first paint

    return _as_finding(f)


def finding_text(f: dict[str, Any]) -> str:
    sev = str(f.get("severity") or "info").upper()
    lines = [f"[{sev}] {f.get('code', '')}: {f.get('message', '')}"]
    if f.get("evidence"):
        lines.append(f"    evidence: {f['evidence']}")
    if f.get("fix"):
        lines.append(f"    fix: {f['fix']}")
    return "\n".join(lines)
