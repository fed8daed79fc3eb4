"""4 Results: FP32/FP16/INT8 metrics, each output's agreement and rule, the verdict and its advice in words,
sizes, memory per pool as bars against the pool sizes, the estimated N6 latency.

The words are engine.present's, as the CLI and report.md have them."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from engine import present as say
from engine.report import Report

from .. import format as fmt
from ..guard import Guarded
from ..widgets import QuietFocus


def verdict_text(rep: Report) -> str:
    lines = [say.title(rep)]
    if v := say.verdict(rep):
        lines.append(f"Verdict: {v[0]} — {v[1]}")
        if say.advice(rep):
            lines.append(f"Advice: {say.advice(rep)}")
    lines += say.error_lines(rep)
    lines += [line for line in (say.size_line(rep), say.precision_story(rep)) if line]
    return "\n".join(lines)


def npu_text(rep: Report, width: int = 80) -> str:
    lines = say.npu_lines(rep)
    if not lines:
        return "No N6 estimate in this run."
    npu = rep.npu
    if npu is None or npu.error is not None:
        return "\n".join(lines)
    if h := say.headline(rep):
        lines.append(h)
    if npu.pools:
        lines.append("")
        lines.append("Memory pools (used of size):")
        bar_w = max(min(width - 52, 30), 8)
        for p in npu.pools:
            kind = "" if p.internal is not False else " (ext)"
            lines.append(fmt.pool_line((p.name or "?") + kind, int(p.used_bytes or 0),
                                       int(p.size_bytes or 0), bar_w))
    lines += [f"• {a}" for a in npu.advice or ()]
    return "\n".join(lines)


def qat_text(rep: Report) -> str:
    """QAT's summary, and INT8 over several calibration draws (either, both or neither)."""
    return "\n".join(say.draws_lines(rep) + say.qat_lines(rep))


def findings_text(rep: Report) -> str:
    lines: list[str] = []
    for f in rep.findings:
        first, *rest = say.finding_lines(f)
        lines += [first, *(f"    {line}" for line in rest)]
    return "\n".join(lines) or "None."


class ResultsPane(Guarded, QuietFocus, VerticalScroll):
    _shown: Report | None = None

    def compose(self) -> ComposeResult:
        yield Static("No results yet: launch a job or pick a past run.", id="verdict", markup=False)
        yield DataTable(id="stage-table", zebra_stripes=True, cursor_type="row")
        yield DataTable(id="output-table", zebra_stripes=True, cursor_type="row")
        yield Static("", id="qat-summary", markup=False)
        yield Label("Neural-ART N6 estimate", classes="section")
        yield Static("", id="npu", markup=False)
        yield Label("Findings", classes="section")
        yield Static("", id="findings", markup=False)

    def show(self, rep: Report) -> None:
        self._shown = rep
        self.query_one("#verdict", Static).update(verdict_text(rep))
        table = self.query_one("#stage-table", DataTable)
        table.clear(columns=True)
        stages = say.stage_table(rep)
        table.add_columns(*stages.heads)
        for row in stages.rows:
            table.add_row(*row)
        # Every output against FP32 by name, with the rule that judges it.
        outs = self.query_one("#output-table", DataTable)
        outs.clear(columns=True)
        per_output = say.output_table(rep, wide=False)
        outs.add_columns(*per_output.heads)
        for row in per_output.rows:
            outs.add_row(*row)
        outs.display = bool(per_output.rows)
        qat = self.query_one("#qat-summary", Static)
        qat.update(qat_text(rep))
        qat.display = bool(qat_text(rep))
        self.query_one("#npu", Static).update(npu_text(rep, self.size.width or 80))
        self.query_one("#findings", Static).update(findings_text(rep))

    def on_resize(self, event: events.Resize) -> None:
        # The memory bars fit the pane's width, known once it is laid out: a report shown
        # while the tab was hidden was drawn for 80 columns (wrapped at 60, short at 120).
        if self._shown is not None:
            self.query_one("#npu", Static).update(npu_text(self._shown, event.size.width))
