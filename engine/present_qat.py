"""QAT in words: what the fine-tuning did and what it regained over its PTQ baseline, for the
CLI, report.md and the TUI (re-exported by :mod:`engine.present`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import Report


def qat_note(rep: Report) -> str:
    """What QAT's fine-tuning did, in one line; says so when it kept the starting point."""
    qat = rep.qat
    if qat is None:
        return ""
    best = qat.best_val
    line = (f"QAT: {_q(qat.epochs_run)} epoch{'' if qat.epochs_run == 1 else 's'}, best validation {qat.metric or ''} "
            f"{f'{best:.4f}' if isinstance(best, int | float) else '—'} at epoch "
            f"{_q(qat.best_epoch)}{' (stopped early)' if qat.stopped_early else ''}")
    if qat.best_epoch == 0:
        line += (". No epoch beat the starting point on the validation data, so the INT8 model "
                 "has PTQ's ranges and the float weights (epoch 0): try another learning rate, "
                 "more epochs or more varied validation data")
    return line


def _q(v: Any) -> str:
    return "?" if v is None else str(v)


def qat_lines(rep: Report) -> list[str]:
    """QAT's note, then its PTQ baseline and what QAT regained over it."""
    from .present import drop_text, size  # noqa: PLC0415 - present imports this module

    lines = [qat_note(rep)] if rep.qat else []
    ptq = rep.comparison.ptq if rep.comparison else None
    if ptq is not None:
        lines.append(f"PTQ baseline: INT8 drop {drop_text(ptq.drop)}, {size(ptq.size_bytes)} "
                     f"(run {ptq.run_dir or '?'})")
        drop = rep.verdict.drop if rep.verdict else None
        if ptq.drop is not None and drop is not None:
            lines.append(f"QAT regained {ptq.drop - drop:+.2f} points over PTQ "
                         f"(INT8 drop {drop_text(drop)} against {drop_text(ptq.drop)})")
    return lines
