"""3 Quantize: PTQ or QAT and their knobs, launch, live stages, the log, cancel; QAT's
loss and validation metric per epoch as a chart. The job monitor is :mod:`.monitor`."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, RichLog, Static

from .knobs import knob_label, knob_widget
from .monitor import JobMonitor


class QuantizePane(JobMonitor):
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
        # min_width: RichLog wraps at 78 columns at least, wider than the pane at 80, and
        # cut off the end of each long line (a command could not be copied whole).
        yield RichLog(id="log", max_lines=1000, wrap=True, markup=False, min_width=20)

    @on(Button.Pressed, "#launch-btn")
    def _launch_pressed(self) -> None:
        self.app.action_launch()  # type: ignore[attr-defined]

    @on(Button.Pressed, "#cancel-btn")
    async def _cancel_pressed(self) -> None:
        await self.app.action_cancel()  # type: ignore[attr-defined]
