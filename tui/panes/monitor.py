"""The job monitor of 3 Quantize: launches a job, a resume or a sweep, and turns the
worker's events into stage rows (one per variant in a sweep), log lines and the QAT chart.

The runners post their messages to this pane (:mod:`tui.jobs`); they bubble on to the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.containers import Vertical
from textual.widgets import Button, Label, Static

from engine.present import STATE_WORDS

from .. import format as fmt
from ..calibcheck import as_finding, finding_text
from ..guard import Guarded
from ..messages import JobEvent, JobExited, SweepDone, SweepProgress
from ..session import read_report
from ..settings import set_args, toml_value
from ..widgets import QuietFocus, StageRow

if TYPE_CHECKING:
    from textual.widgets import RichLog

EXIT_WORDS = {0: "done", 2: "FAILED: bad input", 3: "CANCELLED"}


def epoch_of(ev: Any) -> tuple[int, int, int, int] | None:
    """Where a stage run in epochs is (epoch, epochs, batch, batches), from its progress."""
    parts = (ev.epoch, ev.epochs, ev.batch, ev.batches)
    return parts if all(isinstance(p, int) and p > 0 for p in parts) else None  # type: ignore[return-value]


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


class JobMonitor(Guarded, QuietFocus, Vertical):
    """The Quantize pane's job side; the pane composes ``#stages``, ``#log``, ``#qat-chart``,
    ``#job-state`` and the launch and cancel buttons."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows: dict[str, StageRow] = {}
        self.qat_history: list[dict[str, Any]] = []
        self.failed_seen = False
        self.sweep_t0: float | None = None
        self._variant_labels: list[str] = []

    def set_state(self, text: str, running: bool) -> None:
        self.query_one("#job-state", Label).update(text)
        self.query_one("#launch-btn", Button).disabled = running
        self.query_one("#cancel-btn", Button).disabled = not running

    def show_epochs(self, history: list[dict[str, Any]], metric: str) -> None:
        chart = self.query_one("#qat-chart", Static)
        chart.display = bool(history)
        chart.update(epoch_chart(history, metric, self.size.width or 80))

    @property
    def joblog(self) -> RichLog:
        return self.query_one("#log")  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.set_interval(0.5, self._tick)

    def _tick(self) -> None:
        app: Any = self.app
        if app.sweeper.running and self.sweep_t0 is not None:
            self.set_state(f"sweeping… {fmt.seconds(app.clock() - self.sweep_t0)}", running=True)
        if app.runner.running or app.sweeper.running:
            # The rows are kept, not queried: a DOM query every tick cost more than the update.
            for row in self.rows.values():
                if row.word == "running" and row.is_attached:
                    row.refresh_text()

    def _reset(self, state: str) -> None:
        self.query_one("#stages", Vertical).remove_children()
        self.rows.clear()
        self.joblog.clear()
        self.qat_history, self.failed_seen, self.sweep_t0 = [], False, None
        self.set_state(state, running=True)

    def _add_row(self, key: str, label: str, total: int | None) -> StageRow:
        old = self.rows.pop(key, None)
        if old is not None:
            old.remove()
        row = StageRow(key, label, total, self.app.clock)  # type: ignore[attr-defined]
        self.rows[key] = row
        stages = self.query_one("#stages", Vertical)
        stages.mount(row)
        stages.call_after_refresh(stages.scroll_end, animate=False)
        return row

    # --- starting ----------------------------------------------------------------------

    async def launch_tuned(self) -> None:
        """Launch the session's config with the tuned settings (Ctrl+R)."""
        app: Any = self.app
        if app.runner.running:
            app.notify("A job is already running; cancel it first (Ctrl+T).", severity="warning")
            return
        if app.session is None:
            app.notify("Pick a job config first: 1 Models, Enter on a sample.", severity="warning")
            return
        model = app.session.model
        if model and not model.get("exists"):
            app.show_error("The model file is missing", str(model.get("path")),
                           "Train the sample first (artq samples train NAME), or open another model.")
            return
        ov = app.tuned("launch again")
        if ov is None:
            return
        args = [*set_args(ov), f"output.runs_dir={toml_value(str(app.runs_dir))}"]
        app.action_show_tab("quantize")
        await self.launch(str(app.session.config_path), args)

    def resume_picked(self, path: str | None) -> None:
        app: Any = self.app
        if path is None:
            app.notify("Highlight a cancelled or failed QAT run in 1 Models first.", severity="warning")
        elif app.runner.running:
            app.notify("A job is already running.", severity="warning")
        else:
            app.action_show_tab("quantize")
            app.run_worker(self.resume(path), group="launch")

    def cancel(self) -> None:
        """Cancel the sweep or the job (Ctrl+T), in a worker: the runner waits up to its
        grace period, and the UI must not."""
        app: Any = self.app
        if app.sweeper.running:
            self.set_state("cancelling the sweep…", running=True)
            app.run_worker(app.sweeper.cancel(), group="cancel")
        elif app.runner.running:
            self.set_state("cancelling…", running=True)
            app.run_worker(app.runner.cancel(), group="cancel")
        else:
            app.notify("No job is running.")

    def sweep_dialog(self) -> None:
        """Ask for the KEY=V1,V2 values and run the sweep on the tuned settings."""
        app: Any = self.app
        if app.session is None:
            app.notify("Pick a job config first: 1 Models, Enter on a sample.", severity="warning")
            return
        if app.runner.running or app.sweeper.running:
            app.notify("A job is running; cancel it first (Ctrl+T).", severity="warning")
            return
        ov = app.tuned("sweep again")
        if ov is None:
            return
        config = str(app.session.config_path)

        def chosen(sets: list[str] | None) -> None:
            if not sets:
                return
            swept = {s.split("=", 1)[0] for s in sets}
            # The tuned settings hold for every variant, except the keys being swept.
            fixed = [a for a in set_args(ov) if a.split("=", 1)[0] not in swept]
            app.action_show_tab("quantize")
            app.run_worker(self.sweep(config, sets + fixed, str(app.runs_dir)), group="launch")

        note = ("Each variant is a full run (the tuned settings plus the swept values), as many "
                "at once as there are cores. Example: calibration.samples=50,100,200,400 "
                "quantization.granularity=per_channel,per_tensor")
        from ..screens import SweepScreen  # noqa: PLC0415 - opened on demand

        app.push_screen(SweepScreen("calibration.samples=50,100,200,400", note), chosen)

    async def launch(self, config: str, args: list[str]) -> None:
        self._reset("starting…")
        self.show_epochs([], "")
        self.joblog.write(f"artq run {Path(config).name} " + " ".join(f"--set {a}" for a in args[:-1]))
        try:
            await self.app.runner.start(config, args, self.post_message)  # type: ignore[attr-defined]
        except (OSError, RuntimeError) as exc:
            self.set_state("idle", running=False)
            self.app.show_error("The worker did not start", str(exc),  # type: ignore[attr-defined]
                                "Check the Python environment.")

    async def resume(self, path: str) -> None:
        self._reset("resuming…")
        await self.app.runner.start(path, [], self.post_message, resume=True)  # type: ignore[attr-defined]

    async def sweep(self, config: str, sets: list[str], runs_dir: str) -> None:
        self._reset("sweeping…")
        self.joblog.write("artq sweep " + Path(config).name + " " + " ".join(f"--set {s}" for s in sets))
        self.sweep_t0 = self.app.clock()  # type: ignore[attr-defined]
        try:
            await self.app.sweeper.start(config, sets, runs_dir, self.post_message)  # type: ignore[attr-defined]
        except (OSError, RuntimeError) as exc:
            self.set_state("idle", running=False)
            self.app.show_error("The sweep did not start", str(exc),  # type: ignore[attr-defined]
                                "Check the Python environment.")

    # --- a job's events ----------------------------------------------------------------

    @on(JobEvent)
    def _job_event(self, message: JobEvent) -> None:
        from engine.events import (  # noqa: PLC0415 - after the first paint
            EpochEnd,
            Finding,
            Log,
            ModelInfo,
            Progress,
            RunFailed,
            RunFinished,
            RunStarted,
            StageFinished,
            StageMetrics,
            StageStarted,
        )

        ev, log, app = message.event, self.joblog, self.app
        if isinstance(ev, RunStarted):
            app.run_dir = ev.run_dir  # type: ignore[attr-defined]
            # QAT runs its PTQ baseline first: a new run, new rows.
            self.query_one("#stages", Vertical).remove_children()
            self.rows.clear()
            self.set_state("running", running=True)
            folder = Path(ev.run_dir)
            log.write(f"run folder: {folder.parent.name}/{folder.name}")
        elif isinstance(ev, StageStarted):
            self._add_row(ev.stage, ev.label, ev.total)
            log.write(f"{ev.label}…")
        elif isinstance(ev, Progress):
            row = self.rows.get(ev.stage)  # ids from engine.events.STAGES, as the engine sends them
            if row is not None:
                row.advance(ev.done, ev.total, epoch_of(ev))
        elif isinstance(ev, StageFinished):
            row = self.rows.get(ev.stage)
            if row is not None:
                row.finish(ev.seconds)
        elif isinstance(ev, ModelInfo):
            shape = fmt.shape(ev.inputs[0]["shape"][1:]) if ev.inputs else "?"
            log.write(f"model: input {shape}, {len(ev.outputs)} output(s), {ev.params:,} parameters")
        elif isinstance(ev, StageMetrics):
            shown = {k: v for k, v in ev.metrics.items() if not isinstance(v, dict | list)}
            text = ", ".join(f"{k} {fmt.pct(v)}" for k, v in shown.items())
            log.write(f"{ev.stage.upper()}: {text}  size {fmt.size(ev.size_bytes)}")
        elif isinstance(ev, Finding):
            log.write(finding_text(as_finding(ev)))
        elif isinstance(ev, EpochEnd):
            self.qat_history.append({"epoch": ev.epoch, "loss": ev.loss, "val_metric": ev.val_metric})
            self.show_epochs(self.qat_history, ev.metric_name)
            eta = f", ~{fmt.seconds(ev.eta_s)} left" if ev.eta_s is not None else ""
            log.write(f"epoch {ev.epoch}/{ev.epochs}: loss {ev.loss:.4f}, val {ev.metric_name} "
                      f"{fmt.num(ev.val_metric, 4)}, lr {ev.lr:g}{eta}")
        elif isinstance(ev, Log):
            log.write(f"{ev.level}: {ev.message}" if ev.level != "info" else ev.message)
        elif isinstance(ev, RunFinished):
            self._show(ev.run_dir)
            word = "PASS" if ev.verdict.get("pass") else ("FAIL" if ev.verdict else "")
            self.set_state(f"done {word}".strip(), running=True)
        elif isinstance(ev, RunFailed):
            self._failed(ev)

    def _show(self, run_dir: str) -> None:
        rep = read_report(run_dir) if run_dir else None
        if rep:
            self.app.show_report(rep)  # type: ignore[attr-defined]

    def _failed(self, ev: Any) -> None:
        self.failed_seen = True
        for row in self.rows.values():
            row.fail(ev.status.upper())
        self.joblog.write(f"{ev.status.upper()}: {ev.message}")
        if ev.hint:
            self.joblog.write(f"what to do: {ev.hint}")
        if ev.status == "failed":
            self.app.show_error(f"The job failed ({ev.error_type})", ev.message, ev.hint)  # type: ignore[attr-defined]
        self._show(ev.run_dir)

    @on(JobExited)
    def _job_exited(self, message: JobExited) -> None:
        app: Any = self.app
        if app.run_dir and (app.report.run_dir if app.report else None) != app.run_dir:
            self._show(app.run_dir)
        state = EXIT_WORDS.get(message.returncode, f"FAILED (exit {message.returncode})")
        mine = app.report is not None and app.report.run_dir == app.run_dir
        if message.returncode == 0 and mine and app.report.verdict:
            state = "done " + STATE_WORDS[app.report.verdict.confidence]
        self.set_state(state, running=False)
        for row in self.rows.values():
            row.fail("CANCELLED" if message.returncode == 3 else "FAILED")
        if message.returncode not in (0, 2, 3) and not self.failed_seen:
            last = (message.stderr.strip().splitlines() or ["(no message)"])[-1]
            app.show_error(f"The worker stopped unexpectedly (exit {message.returncode})", last,
                           "The run folder's log.txt has the details.")
        # Once the runs are read again: 6 Compare shows this run (B) against the last try (A).
        app.refresh_runs(pending=app.run_dir if message.returncode == 0 and app.run_dir else None)

    # --- a sweep's events ----------------------------------------------------------------

    @on(SweepProgress)
    def _sweep_progress(self, message: SweepProgress) -> None:
        from engine.events import (  # noqa: PLC0415
            Progress,
            RunFailed,
            RunFinished,
            RunStarted,
            StageFinished,
            StageStarted,
        )
        from engine.protocol import SweepStarted, VariantEvent  # noqa: PLC0415

        ev = message.event
        if isinstance(ev, SweepStarted):
            # One row per variant: its current stage and that stage's progress, then its outcome.
            self._variant_labels = list(ev.labels)
            for i, label in enumerate(ev.labels):
                self._add_row(f"variant-{i}", label, None).word = "queued"
            self.joblog.write(f"sweep folder: {Path(ev.sweep_dir).name}, {len(ev.labels)} variant(s)")
            return
        if not isinstance(ev, VariantEvent) or f"variant-{ev.index}" not in self.rows:
            return
        row, inner, base = self.rows[f"variant-{ev.index}"], ev.inner, self._variant_labels[ev.index]
        if isinstance(inner, RunStarted):
            row.word, row.t0 = "running", self.app.clock()  # type: ignore[attr-defined]
        elif isinstance(inner, StageStarted):
            row.label, row.total, row.done_n = f"{base}: {inner.label}", inner.total, 0
        elif isinstance(inner, Progress):
            row.advance(inner.done, inner.total, epoch_of(inner))
        elif isinstance(inner, StageFinished) and row.total:
            row.done_n = row.total
        elif isinstance(inner, RunFinished):
            # The row says done (the sweep's summary lines follow at its end).
            row.label, row.total = base, None
            row.finish(max(self.app.clock() - row.t0, 0.0))  # type: ignore[attr-defined]
        elif isinstance(inner, RunFailed):
            row.fail(inner.status.upper())
            self.joblog.write(f"{base}: {inner.status.upper()}: {inner.message}")
        row.refresh_text()

    @on(SweepDone)
    def _sweep_done(self, message: SweepDone) -> None:
        app: Any = self.app
        data = message.data or {}
        status = str(data.get("status") or ("cancelled" if message.returncode == 3 else "failed"))
        self.set_state(f"sweep {status.upper()}", running=False)
        self.sweep_t0 = None
        for row in self.rows.values():
            row.fail(status.upper())
        for v in data.get("variants") or []:
            self.joblog.write(f"{' '.join(f'{k}={x}' for k, x in (v.get('set') or {}).items())}: "
                              f"{str(v.get('status', '')).upper()}, drop {fmt.num(v.get('drop'), 3)} pts")
        if message.returncode not in (0, 3) and not data:
            last = (message.stderr.strip().splitlines() or ["(no message)"])[-1]
            app.show_error("The sweep failed", last, "Run the same artq sweep in a terminal to see more.")
            return
        app.refresh_runs(new_sweep=True)
