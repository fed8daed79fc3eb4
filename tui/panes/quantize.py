"""3 Quantize: PTQ or QAT and their knobs, launch, live stages, the log, cancel; QAT's
loss and validation metric per epoch as a chart. The job monitor is :mod:`.monitor`."""

from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.widgets import Button, Label, RichLog, Static

from .. import format as fmt
from .knobs import knob_label, knob_widget
from .monitor import JobMonitor


class JobLog(RichLog):
    """The job's log: a long line wraps at spaces and, inside a path, after a separator, so
    a command or a path shown here reads whole and pastes back together."""

    def write(self, content: object, *args: object, **kwargs: object) -> RichLog:  # type: ignore[override]
        # Before its first layout (a hidden tab) the log has no width: the screen's, less
        # its border and scroll bar.
        width = self.scrollable_content_region.width or self.app.size.width - 4
        if isinstance(content, str) and width > 1:
            content = fmt.wrap_at_separators(content, width)
        return super().write(content, *args, **kwargs)  # type: ignore[arg-type]

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size,
                      layout: bool = True) -> bool:
        changed = super()._size_updated(size, virtual_size, container_size, layout)
        if size.width and not self._size_known:
            # RichLog holds every write until its first Resize, and Textual skips the Resize
            # of a widget that its lazily rebuilt map took in between two layouts (as 3
            # Quantize built on a key): the log stayed empty. A size is a size: say so.
            self.post_message(events.Resize(size, virtual_size, container_size))
        return changed


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
        yield JobLog(id="log", max_lines=1000, wrap=True, markup=False, min_width=20)

    @on(Button.Pressed, "#launch-btn")
    def _launch_pressed(self) -> None:
        self.app.action_launch()  # type: ignore[attr-defined]

    @on(Button.Pressed, "#cancel-btn")
    async def _cancel_pressed(self) -> None:
        await self.app.action_cancel()  # type: ignore[attr-defined]
