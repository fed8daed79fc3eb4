"""report.md: the run told for a person, in engine.present's words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import present as say
from .document import Report


def _num(v: Any, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _layers_markdown(rep: Report, limit: int = 12) -> list[str]:
    rows = [r for r in rep.layers or () if r.error is not None]
    info = rep.layer_analysis
    if not rows:
        if info is not None and info.error is not None:
            return ["## Per-layer quantization error", "",
                    f"The analysis failed: {info.error.message}", ""]
        return []
    out = ["## Per-layer quantization error", ""]
    debug = info.debug_samples if info and info.debug_samples is not None else "?"
    modes = dict(info.modes or {}) if info else {}
    layer_mode = ("the error each op adds, fed the same quantized input as a float copy "
                  "(TFLite's QuantizationDebugger)") if "QuantizationDebugger" in modes.get(
        "layer", "QuantizationDebugger") else modes["layer"]
    out.append(
        f"On {debug} calibration items. *layer*: {layer_mode}; "
        "*model*: the error accumulated end to end against FP32. rmse/scale is the rms error "
        "in quantization steps (rounding alone: 0.29). Full table: `layers.csv`."
    )
    out.append("")
    suspects = [r for r in rows if r.suspect]

    def worst(r: Any) -> tuple[bool, float]:
        lay = r.error.layer
        return (not r.suspect, lay.sqnr_db if lay and lay.sqnr_db is not None else 1e9)

    shown = sorted(rows, key=worst)[: max(limit, len(suspects))]
    out.append("| # | op | layer | on | layer SQNR dB | layer rmse/scale | model SQNR dB | "
               "model rmse/scale | suspect |")
    out.append("|---:|---|---|---|---:|---:|---:|---:|---|")
    for r in sorted(shown, key=lambda r: r.index or 0):
        e = r.error
        lay, mod = e.layer, e.model
        # The op's unique name (as sensitivity says it); the tensor when the run has none.
        name = r.layer or r.name
        name = name if len(name) <= 40 else name[:39] + "…"
        out.append(
            f"| {_num(r.index, '')} | {r.op or ''} | {name} | {r.placement or '—'} | "
            f"{_num(lay and lay.sqnr_db, '.1f')} | {_num(lay and lay.rmse_scale, '.3f')} | "
            f"{_num(mod and mod.sqnr_db, '.1f')} | {_num(mod and mod.rmse_scale, '.3f')} | "
            f"{'YES: ' + e.why if e.suspect else 'no'} |"
        )
    if len(rows) > len(shown):
        out.append("")
        out.append(f"{len(rows) - len(shown)} healthier layer(s) not shown.")
    out.append("")
    sens = rep.sensitivity or ()
    if sens:
        out.append("### Sensitivity: one suspect at a time kept in float")
        out.append("")
        if any(e.tried for e in sens):
            out.append(f"Scored on the first {sens[0].items} test items, against INT8 on the "
                       "same items; cost from the NPU estimate of the mixed model.")
        else:
            out.append("Not scored: INT8 loses nothing against FP32. Cost from the NPU "
                       "estimate of each mixed model.")
        out.append("")
        out.extend(f"- {e.suggestion}" for e in sens)
        out.append("")
    return out


def render_markdown(report: Report | Mapping[str, Any], npu_markdown: str = "") -> str:
    """report.md; ``npu_markdown``: the NPU section (engine.npu renders it from its Analysis)."""
    rep = report if isinstance(report, Report) else Report.from_dict(report)
    out: list[str] = [f"# artq run: {rep.name}", ""]
    out.append(f"- status: **{rep.status.upper()}**")
    out.append(f"- model: `{rep.model.path or rep.setting('model.path', '')}`")
    out.append(f"- run folder: `{rep.run_dir or ''}`")
    out.extend(f"- {line[0].lower()}{line[1:]}" for line in say.error_lines(rep))
    if v := say.verdict(rep):
        out.append(f"- verdict: **{v[0]}** — {v[1]}")
        out.append(f"- advice: {say.advice(rep)}")
    out.extend(f"- {line}" for line in say.qat_lines(rep))
    out.append("")

    if rep.stages:
        table = say.stage_table(rep)
        out.append("## Stages")
        out.append("")
        out.append("| " + " | ".join(table.heads) + " |")
        out.append("|" + "---|" * len(table.heads))
        out.extend("| " + " | ".join(row) + " |" for row in table.rows)
        if table.note:
            out.append("")
            out.append(table.note + ".")
        outputs = say.output_table(rep)
        if outputs.rows:
            out.append("")
            out.append("### Outputs against FP32")
            out.append("")
            out.append("| " + " | ".join(outputs.heads) + " |")
            out.append("|" + "---|" * len(outputs.heads))
            out.extend("| " + " | ".join(row) + " |" for row in outputs.rows)
            out.append("")
            out.append(outputs.note + ".")
        for line in (say.size_line(rep), say.precision_story(rep)):
            if line:
                out.append("")
                out.append(line)
        out.append("")

    if rep.findings:
        out.append("## Calibration diagnostics")
        out.append("")
        for f in rep.findings:
            first, *rest = say.finding_lines(f)
            out.append(f"- {first}")
            out.extend(f"  - {line}" for line in rest)
        out.append("")

    out.extend(_draws_markdown(rep))
    if eq_lines := say.equalize_lines(rep):
        out += ["## Cross-layer equalization", "", *(f"- {line}" for line in eq_lines), ""]
    out.extend(_bias_markdown(rep))
    out.extend(_layers_markdown(rep))

    if npu_markdown:
        out.append(npu_markdown.rstrip())
        out.append("")

    cal, test = rep.data.calibration, rep.data.test
    if cal is not None or test is not None:
        out.append("## Data")
        out.append("")
        if cal is not None:
            out.append(f"- calibration: {_q(cal.used)} of {_q(cal.available)} items from "
                       f"`{cal.source or ''}` (seed {_q(cal.seed)})")
        if test is not None:
            out.append(f"- test: {_q(test.items)} items from `{test.source or ''}`")
        pp = rep.preprocessing
        if pp is not None and pp.height is not None:
            out.append(f"- preprocessing: {pp.height}×{pp.width} {pp.color}, scale "
                       f"{pp.scale:.6g}, mean {list(pp.mean or ())}, std {list(pp.std or ())}")
        out.append("")

    if rep.timings:
        out.append("## Timings")
        out.append("")
        out.append(", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in rep.timings.items()))
        out.append("")
    return "\n".join(out)


def _q(v: Any) -> str:
    return "?" if v is None else str(v)


def _draws_markdown(rep: Report) -> list[str]:
    """INT8 over several calibration draws: the spread and the draw kept, then each draw."""
    d = rep.stage("int8").draws
    if d is None:
        return []
    out = ["## Calibration draws", "", f"- {say.draws_headline(d)}"]
    if d.heldout is not None:
        out.append(f"- {say.draws_detail(d)[0]}")
    heads, rows = say.draws_table(d)
    out += ["", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    out.extend("| " + " | ".join(row) + " |" for row in rows)
    out += ["", "The draw kept is chosen on the held-out calibration items; the test "
            "figures are measured after the choice, for information.", ""]
    return out


def _bias_markdown(rep: Report) -> list[str]:
    """The bias correction's summary, then each corrected layer's output SQNR."""
    lines = say.bias_lines(rep)  # with the correction off: a suggestion, when one fits
    if not lines:
        return []
    out = ["## Bias correction", ""]
    out.extend(f"- {line}" for line in lines)
    bc = rep.bias_correction
    if bc is None or bc.error:
        return [*out, ""]
    out += ["", "| # | layer | op | channels changed | shift (LSB) | SQNR before → after, "
            "held-out calibration | test |", "|---|---|---|---|---|---|---|"]
    for i, la in enumerate(bc.layers):
        cal, test = la.calibration, la.test
        out.append(f"| {i} | {la.layer} | {la.op} | {la.changed}/{la.channels} | "
                   f"{la.shift_lsb:.2f} | {_pair(cal)} | {_pair(test)} |")
    out.append("")
    return out


def _pair(p: Any) -> str:
    if p is None:
        return "—"
    return " → ".join("exact" if v is None else f"{v:.1f}" for v in (p.before_db, p.after_db))
