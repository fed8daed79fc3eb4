"""A judgement's uncertainty in words (engine.present re-exports these: one wording for
the CLI, report.md and the TUI)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .verdict import FAIL, PASS, UNRESOLVED, db_text

if TYPE_CHECKING:
    from .report import Report

#: The verdict's three states in words: the state decides, ``pass`` keeps the point estimate.
STATE_WORDS = {PASS: "PASS", FAIL: "FAIL", UNRESOLVED: "NOT RESOLVED"}
NOT_RESOLVED = "not resolved at this test-set size"


def count(n: int) -> str:
    """12000 → '12,000'."""
    return f"{n:,}"


def interval_text(j: Any) -> str:
    """A judgement's value with its 95 % interval: '0.52 ± 0.37 pt (95 %), 15 ↓ / 3 ↑'
    (points: the half-width, the items INT8 lost and gained) or '12.3 dB (95 %: 10.1–14.0)';
    the bare value where there is no interval (a report from before, an exact output)."""
    if j is None or j.value is None:
        return "—"
    iv = j.interval
    if j.unit == "dB":
        head = f"{db_text(j.value)} dB"
        return head if iv is None else f"{head} (95 %: {db_text(iv.low)}–{db_text(iv.high)})"
    if iv is None:
        return f"{j.value:.2f} pt"
    tail = f", {iv.lost} ↓ / {iv.gained} ↑" if iv.lost is not None else ""
    return f"{j.value:.2f} ± {(iv.high - iv.low) / 2:.2f} pt (95 %){tail}"


def measured_text(j: Any) -> str:
    """'drop 0.52 ± 0.37 pt (95 %), 15 ↓ / 3 ↑' or 'SQNR 12.3 dB (95 %: 10.1–14.0)'."""
    return f"{'SQNR' if j.unit == 'dB' else 'drop'} {interval_text(j)}"


def resolve_text(j: Any) -> str:
    """Why a judgement is not resolved and what would resolve it, in a clause."""
    iv = j.interval
    n = iv.items_to_resolve if iv is not None else None
    if n is None:
        return NOT_RESOLVED
    rate = "discordance" if iv.method == "paired" else "spread"
    return (f"{NOT_RESOLVED}: about {count(n)} test items (now {count(iv.n)}) would resolve "
            f"it at the observed {rate}")


def int8_judgement(rep: Report) -> Any:
    """The INT8 judgement behind the stages' drop: the judged output in points that uses
    most of its bar (engine.job.stages.stage_drops picks it the same way)."""
    v = rep.verdict
    js = [j for j in (v.judged if v else ()) if j.unit == "points" and j.value is not None]
    return max(js, key=lambda j: j.used) if js else None


def interval_cell(j: Any) -> str:
    """A table's interval cell: '± 0.37, 15 ↓ / 3 ↑' (points) or '10.1–14.0' (dB)."""
    iv = j.interval if j is not None else None
    if iv is None:
        return ""
    if j.unit == "dB":
        return f"{db_text(iv.low)}–{db_text(iv.high)}"
    tail = f", {iv.lost} ↓ / {iv.gained} ↑" if iv.lost is not None else ""
    return f"± {(iv.high - iv.low) / 2:.2f}{tail}"


# ------------------------------------------------------------------ variants of a sweep


def drop_cell(drop: Any, interval: Any, sign: str = "+") -> str:
    """A sweep's INT8 drop with its interval's half-width: '+0.20 ±0.39' ('+0.20' without;
    ``sign`` "" leaves a positive drop unsigned, as sweep.md had it)."""
    if not isinstance(drop, int | float) or isinstance(drop, bool):
        return "—"
    if not isinstance(interval, dict) or interval.get("lost") is None:
        return f"{drop:{sign}.2f}"
    return f"{drop:{sign}.2f} ±{(interval['high'] - interval['low']) / 2:.2f}"


def versus_cell(vs: Any) -> str:
    """A variant against the sweep's best: 'best', '≈ best' (within noise: the paired
    interval of the difference contains 0) or '+0.90' (points more it really loses; the
    interval is in :func:`noise_sentence`)."""
    if not isinstance(vs, dict):
        return "—"
    if vs.get("best"):
        return "best"
    if vs.get("within_noise"):
        return "≈ best"
    return f"{vs['diff']:+.2f}"


def difference_text(vs: dict[str, Any]) -> str:
    """'+0.90 ± 0.40 points, 12 ↓ / 3 ↑' (items only this variant / only the best got wrong)."""
    return (f"{vs['diff']:+.2f} ± {(vs['high'] - vs['low']) / 2:.2f} points, "
            f"{vs.get('lost', 0)} ↓ / {vs.get('gained', 0)} ↑")


VERSUS_NOTE = ("vs best: the INT8 drop against the variant that loses least, item by item "
               "on the same test set; ≈ best: within noise, the paired 95 % interval of the "
               "difference contains 0 (or McNemar's exact p ≥ 0.05)")


def noise_sentence(labels: list[str], versus: list[Any]) -> str | None:
    """Which differences between variants are the test set's noise, in words."""
    best = next((lab for lab, vs in zip(labels, versus, strict=True)
                 if isinstance(vs, dict) and vs.get("best")), None)
    if best is None:
        return None
    pairs = [(lab, vs) for lab, vs in zip(labels, versus, strict=True)
             if isinstance(vs, dict) and not vs.get("best")]
    same = [f"{lab} ({difference_text(vs)})" for lab, vs in pairs if vs.get("within_noise")]
    worse = [f"{lab} ({difference_text(vs)})" for lab, vs in pairs if not vs.get("within_noise")]
    if not pairs:
        return None
    why = ("this test set cannot tell them from the best, and any trend between them is "
           "its noise")
    if not worse:
        return f"Every difference from the best ({best}) is within noise ({', '.join(same)}): {why}."
    text = f"Really worse than the best ({best}): {', '.join(worse)}."
    if same:
        text += f" Within noise of it: {', '.join(same)} ({why})."
    return text


def paired_cell(vs: Any) -> str:
    """Run B against run A item by item: '+0.20 ±0.39, within noise' or '+3.70 ±1.17'."""
    if not isinstance(vs, dict):
        return "—"
    text = f"{vs['diff']:+.2f} ±{(vs['high'] - vs['low']) / 2:.2f}"
    return f"{text}, within noise" if vs.get("within_noise") else text


def int8_drop_cell(rep: Report) -> str:
    """A report's INT8 drop with its interval's half-width: '+0.20 ±0.39'."""
    j = int8_judgement(rep)
    iv = j.interval.to_dict() if j is not None and j.interval is not None else None
    return drop_cell(rep.drop("int8"), iv)


def interval_chart(labels: list[str], drops: list[Any], intervals: list[Any],
                   width: int = 40) -> list[str]:
    """The drops with their 95 % intervals on one axis, a line per variant: ● the drop,
    ├─┤ its interval, │ zero (┼ inside an interval; 'failed' for a variant without a drop)."""
    known = [(d, iv) for d, iv in zip(drops, intervals, strict=True)
             if isinstance(d, int | float) and isinstance(iv, dict)]
    lo = min([0.0, *(iv["low"] for _, iv in known), *(d for d, _ in known)])
    hi = max([0.0, *(iv["high"] for _, iv in known), *(d for d, _ in known)])
    span = (hi - lo) or 1.0

    def col(v: float) -> int:
        return min(width - 1, max(0, round((v - lo) / span * (width - 1))))

    pad = max((len(x) for x in labels), default=0)
    texts = [drop_cell(d, iv, sign="") for d, iv in zip(drops, intervals, strict=True)]
    text_w = max((len(t) for t in texts), default=0)
    lines = []
    for lab, d, iv, text in zip(labels, drops, intervals, texts, strict=True):
        if not isinstance(d, int | float):
            lines.append(f"{lab:<{pad}}  failed")
            continue
        row = [" "] * width
        if isinstance(iv, dict):
            a, b = col(iv["low"]), col(iv["high"])
            for c in range(a, b + 1):
                row[c] = "─"
            row[a], row[b] = "├", "┤"
        zero = col(0.0)
        row[zero] = "┼" if row[zero] == "─" else "│" if row[zero] == " " else row[zero]
        row[col(d)] = "●"
        lines.append(f"{lab:<{pad}}  {''.join(row)}  {text:>{text_w}} pts")
    return lines
