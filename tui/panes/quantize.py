"""3 Quantize: PTQ or QAT and their knobs, launch, live stages, the log, cancel; QAT's
loss and validation metric per epoch as a chart."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, RichLog, Static

from .. import format as fmt
from .knobs import knob_label, knob_widget


def epoch_chart(history: list[dict[str, Any]], metric: str, width: int) -> str:
    """Loss (●) and validation metric (×) per epoch, one small chart each, values in words."""
    if not history:
        return ""
    half = max((width - 3) // 2, 24)
    loss = fmt.line_chart([h.get("loss") for h in history], half, 5, "●")
    val = fmt.line_chart([h.get("val_metric") for h in history], half, 5, "×")
    last = history[-1]
    head_l = f"● loss  (epoch {last.get('epoch')}: {fmt.num(last.get('loss'), 4)})"
    head_v = f"× val {metric}  ({fmt.num(last.get('val_metric'), 4)})"
    rows = [f"{head_l:<{half}}   {head_v}"]
    for a, b in zip(loss, val, strict=False):
        rows.append(f"{a:<{half}}   {b}")
    return "\n".join(rows)


class QuantizePane(Vertical):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="knobs"):
            for key in ("quantization.method", "quantization.granularity", "quantization.io_type",
                        "evaluation.profile"):
                yield knob_label(key)
                yield knob_widget(key)
        with Horizontal(classes="knobs"):
            yield Label("Stages FP32", classes="knob-label")
            yield knob_widget("quantization.stages.fp16")
            yield knob_widget("quantization.stages.int8")
            yield knob_widget("quantization.allow_float")
            yield knob_label("quantization.qat.epochs")
            yield knob_widget("quantization.qat.epochs")
            yield knob_label("quantization.qat.learning_rate")
            yield knob_widget("quantization.qat.learning_rate")
        with Horizontal(classes="knobs", id="job-bar"):
            yield Button("Launch ^R", id="launch-btn", variant="primary", compact=True)
            yield Button("Cancel ^T", id="cancel-btn", disabled=True, compact=True)
            yield Label("idle", id="job-state")
        yield Vertical(id="stages")
        yield Static("", id="qat-chart", markup=False)
        yield RichLog(id="log", max_lines=1000, wrap=True, markup=False)

    def set_state(self, text: str, running: bool) -> None:
        self.query_one("#job-state", Label).update(text)
        self.query_one("#launch-btn", Button).disabled = running
        self.query_one("#cancel-btn", Button).disabled = not running

    def show_epochs(self, history: list[dict[str, Any]], metric: str) -> None:
        chart = self.query_one("#qat-chart", Static)
        chart.display = bool(history)
        chart.update(epoch_chart(history, metric, self.size.width or 80))
