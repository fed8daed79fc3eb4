"""INT8 over several calibration draws in words (engine.present re-exports them: one wording
for the CLI, report.md and the TUI)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import CalibrationDraws, DrawFigures, Report

#: Why the kept draw was kept, by calibration.keep.
KEEP_WORDS = {"median": "median on the held-out calibration slice",
              "best": "best on the held-out calibration slice"}


def figure_text(v: float | None, unit: str) -> str:
    """One draw's figure: '91.02 %' (a fraction) or '23.4 dB'."""
    if v is None:
        return "—"
    return f"{v:.1f} dB" if unit == "dB" else f"{100 * v:.2f} %"


def spread_text(f: DrawFigures) -> str:
    """'91.02 % mean, 90.60–91.40 % (std 0.30 pt)' or '23.4 dB mean, 23.1–23.9 dB (std 0.3 dB)'."""
    if f.mean is None:
        return "—"
    if f.unit == "dB":
        return (f"{f.mean:.1f} dB mean, {f.min:.1f}–{f.max:.1f} dB (std {f.std or 0:.1f} dB)")
    return (f"{100 * f.mean:.2f} % mean, {100 * (f.min or 0):.2f}–{100 * (f.max or 0):.2f} % "
            f"(std {100 * (f.std or 0):.2f} pt)")


def _what(f: DrawFigures) -> str:
    """'seq acc' or "SQNR of 'boxes'": the judged figure, by the present module's names."""
    from .present import metric_name  # noqa: PLC0415 - present imports this module

    name = metric_name(f.metric)
    return name if not f.output or f.metric not in ("agreement", "sqnr_db") else \
        f"{name} of '{f.output}'"


def draws_lines(rep: Report) -> list[str]:
    """INT8 over the calibration draws: the test set's mean and spread, the draw kept and
    why, the held-out slice's figures, then one line per draw."""
    d = rep.stage("int8").draws
    if d is None:
        return []
    return [draws_headline(d), *draws_detail(d)]


def draws_headline(d: CalibrationDraws) -> str:
    """'INT8 over 5 calibration draws: 91.02 % mean, 90.60–91.40 % (std 0.30 pt) seq acc
    on 1,000 test items; kept draw 3, seed 1234 (median on the held-out calibration
    slice)'."""
    kept = d.kept_draw
    seed = f", seed {kept.seed}" if kept is not None else ""
    why = KEEP_WORDS.get(d.keep, d.keep)
    if d.test is None or d.test.mean is None:
        where = "the test set not scored"
    else:
        where = f"{spread_text(d.test)} {_what(d.test)} on {d.test.items:,} test items"
    return f"INT8 over {d.count} calibration draws: {where}; kept draw {d.kept}{seed} ({why})"


def draws_detail(d: CalibrationDraws) -> list[str]:
    """The held-out slice's spread, and each draw's figures (the kept one marked)."""
    lines = []
    h = d.heldout
    if h is not None:
        lines.append(f"held-out calibration slice ({h.items:,} items no draw holds, which "
                     f"chose): {spread_text(h)} {_what(h)}")
    hu = h.unit if h is not None else "fraction"
    tu = d.test.unit if d.test is not None else "fraction"
    for r in d.per_draw:
        mark = " (kept)" if r.index == d.kept else ""
        lines.append(f"draw {r.index} (seed {r.seed}, {r.items} items): held-out "
                     f"{figure_text(r.heldout, hu)}, test {figure_text(r.test, tu)}{mark}")
    return lines


def draws_table(d: CalibrationDraws) -> tuple[list[str], list[list[Any]]]:
    """report.md's table: one row per draw."""
    hu = d.heldout.unit if d.heldout is not None else "fraction"
    tu = d.test.unit if d.test is not None else "fraction"
    heads = ["draw", "seed", "items", "held-out calibration", "test", "kept"]
    rows = [[str(r.index), str(r.seed), str(r.items), figure_text(r.heldout, hu),
             figure_text(r.test, tu), "kept" if r.index == d.kept else ""]
            for r in d.per_draw]
    return heads, rows
