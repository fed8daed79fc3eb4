"""The artq workbench: pick a job, tune it, launch it, watch it, read the verdict.

Engine work happens only in the worker process (:mod:`tui.runner`); this module never
imports TensorFlow. State is never shown by colour alone: rows say NPU/CPU, PASS/FAIL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    OptionList,
    ProgressBar,
    RichLog,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option

from engine.config import JobConfig, load_config
from engine.errors import EngineError
from engine.events import (
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
from engine.rundir import list_runs, read_report

from .runner import JobEvent, JobExited, Runner, WorkerRunner

ROOT = Path(__file__).resolve().parents[1]


def sample_configs() -> list[Path]:
    """Job configs in ./sample_configs (or the checkout's), sorted."""
    for d in (Path.cwd() / "sample_configs", ROOT / "sample_configs"):
        if d.is_dir():
            return sorted(d.glob("*.toml"))
    return []


def fmt_pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.2f} %"


def fmt_size(n: Any) -> str:
    if not n:
        return "—"
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


class StageRow(Horizontal):
    """One stage of the running job: name, bar, state in words."""

    DEFAULT_CSS = """
    StageRow { height: 1; }
    StageRow > Label.name { width: 24; }
    StageRow > ProgressBar { width: 1fr; }
    StageRow > Label.state { width: 14; content-align: right middle; }
    """

    def __init__(self, stage: str, label: str, total: int | None) -> None:
        super().__init__(id=f"stage-{stage}")
        # Children exist from the start: progress can arrive before the row is mounted.
        self.bar = ProgressBar(total=total, show_eta=True, show_percentage=True)
        self.state = Label("running", classes="state")
        self.name_label = Label(label[:23], classes="name")
        self.done = False

    def compose(self) -> ComposeResult:
        yield self.name_label
        yield self.bar
        yield self.state

    def advance(self, done: int, total: int | None) -> None:
        self.bar.update(total=total, progress=done)

    def finish(self, seconds: float) -> None:
        total = self.bar.total or 1
        self.bar.update(total=total, progress=total)
        self.state.update(f"done {seconds:.1f} s")
        self.done = True

    def fail(self, word: str) -> None:
        if not self.done:
            self.state.update(word)


class ArtqApp(App[int]):
    """Pick, tune, launch, browse."""

    CSS_PATH = "app.tcss"
    TITLE = "artq"
    SUB_TITLE = "INT8 for the STM32N6 Neural-ART NPU"

    BINDINGS = [
        Binding("1", "show_tab('models')", "Models", id="tab_models"),
        Binding("2", "show_tab('quantize')", "Quantize", id="tab_quantize"),
        Binding("3", "show_tab('results')", "Results", id="tab_results"),
        Binding("l", "launch", "Launch", id="launch"),
        Binding("c", "cancel", "Cancel", id="cancel"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, runner: Runner | None = None, runs_dir: str | Path | None = None) -> None:
        super().__init__()
        self.runner: Runner = runner or WorkerRunner()
        self.runs_dir = Path(runs_dir) if runs_dir else Path.cwd() / "runs"
        self.config_path: Path | None = None
        self.config: JobConfig | None = None
        self.run_dir: str | None = None
        self.report: dict[str, Any] | None = None

    # --- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="models"):
            with TabPane("1 Models", id="models"), Horizontal():
                yield OptionList(id="picker")
                yield Static("Pick a job config or a past run.", id="summary")
            with TabPane("2 Quantize", id="quantize"), VerticalScroll():
                with Horizontal(classes="knobs"):
                    yield Label("Calibration samples")
                    yield Input("200", id="samples", type="integer", max_length=6)
                    yield Label("guide: 100–500", classes="hint")
                with Horizontal(classes="knobs"):
                    yield Label("Weights")
                    yield Select(
                        [("per-channel", "per_channel"), ("per-tensor", "per_tensor")],
                        value="per_channel", allow_blank=False, id="granularity",
                    )
                    yield Label("I/O type")
                    yield Select(
                        [("int8", "int8"), ("uint8", "uint8"), ("float32", "float32")],
                        value="int8", allow_blank=False, id="io_type",
                    )
                with Horizontal(classes="knobs"):
                    yield Button("Launch (l)", id="launch-btn", variant="primary")
                    yield Button("Cancel (c)", id="cancel-btn", disabled=True)
                    yield Label("idle", id="job-state")
                yield Vertical(id="stages")
                yield RichLog(id="log", max_lines=500, wrap=True, markup=False)
            with TabPane("3 Results", id="results"), VerticalScroll():
                yield Static("No results yet: launch a job or pick a past run.", id="verdict")
                yield DataTable(id="stage-table", zebra_stripes=True, cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_picker()
        picker = self.query_one("#picker", OptionList)
        picker.focus()
        if picker.option_count:
            picker.highlighted = 0

    def refresh_picker(self) -> None:
        picker = self.query_one("#picker", OptionList)
        picker.clear_options()
        for p in sample_configs():
            picker.add_option(Option(f"config  {p.stem}", id=f"cfg:{p}"))
        for run in list_runs(self.runs_dir)[:20]:
            rep = read_report(run)
            status = (rep or {}).get("status", "incomplete")
            picker.add_option(Option(f"run     {run.name} [{status.upper()}]", id=f"run:{run}"))

    # --- picking --------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#picker")
    def _highlight(self, event: OptionList.OptionHighlighted) -> None:
        self._pick(event.option.id or "")

    @on(OptionList.OptionSelected, "#picker")
    def _select(self, event: OptionList.OptionSelected) -> None:
        self._pick(event.option.id or "")
        self.action_show_tab("quantize" if (event.option.id or "").startswith("cfg:") else "results")

    def _pick(self, key: str) -> None:
        kind, _, path = key.partition(":")
        summary = self.query_one("#summary", Static)
        if kind == "cfg":
            try:
                cfg = load_config(path)
            except EngineError as exc:
                summary.update(f"Cannot use this config:\n{exc}")
                return
            self.config_path, self.config = Path(path), cfg
            self.sub_title = f"{cfg.name} ({Path(path).name})"
            self.query_one("#samples", Input).value = str(cfg.calibration.samples)
            self.query_one("#granularity", Select).value = cfg.quantization.granularity
            self.query_one("#io_type", Select).value = cfg.quantization.io_type
            summary.update(config_summary(cfg))
        elif kind == "run":
            rep = read_report(path)
            if rep is None:
                summary.update(f"{Path(path).name}\n\nThis run never finished: it has no report.json.")
                return
            self.show_report(rep)
            summary.update(run_summary(rep))

    # --- actions --------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def overrides(self) -> list[str]:
        samples = self.query_one("#samples", Input).value.strip()
        out = [f"calibration.samples={samples}"] if samples else []
        out.append(f"quantization.granularity={self.query_one('#granularity', Select).value}")
        out.append(f"quantization.io_type={self.query_one('#io_type', Select).value}")
        out.append(f"output.runs_dir=\"{self.runs_dir}\"")
        return out

    async def action_launch(self) -> None:
        if self.runner.running:
            self.notify("A job is already running; cancel it first (c).", severity="warning")
            return
        if self.config_path is None:
            self.notify("Pick a job config first (1 Models).", severity="warning")
            return
        self.query_one("#stages", Vertical).remove_children()
        self.query_one("#log", RichLog).clear()
        self.report = None
        self._set_state("starting…", running=True)
        self.action_show_tab("quantize")
        try:
            await self.runner.start(str(self.config_path), self.overrides(), self.post_message)
        except (OSError, RuntimeError) as exc:
            self._set_state("idle", running=False)
            self.notify(f"Could not start the worker: {exc}", severity="error")

    async def action_cancel(self) -> None:
        if not self.runner.running:
            self.notify("No job is running.")
            return
        self._set_state("cancelling…", running=True)
        await self.runner.cancel()

    @on(Button.Pressed, "#launch-btn")
    async def _launch_pressed(self) -> None:
        await self.action_launch()

    @on(Button.Pressed, "#cancel-btn")
    async def _cancel_pressed(self) -> None:
        await self.action_cancel()

    def _set_state(self, text: str, running: bool) -> None:
        self.query_one("#job-state", Label).update(text)
        self.query_one("#launch-btn", Button).disabled = running
        self.query_one("#cancel-btn", Button).disabled = not running

    # --- job events -----------------------------------------------------------------

    @on(JobEvent)
    def _job_event(self, message: JobEvent) -> None:
        ev = message.event
        log = self.query_one("#log", RichLog)
        stages = self.query_one("#stages", Vertical)
        if isinstance(ev, RunStarted):
            self.run_dir = ev.run_dir
            self._set_state("running", running=True)
            log.write(f"run folder: {ev.run_dir}")
        elif isinstance(ev, StageStarted):
            stages.mount(StageRow(ev.stage, ev.label, ev.total))
            log.write(f"{ev.label}…")
        elif isinstance(ev, Progress):
            stage = "convert_int8" if ev.stage == "calibrate" else ev.stage
            for row in stages.query(f"#stage-{stage}"):
                if isinstance(row, StageRow):
                    row.advance(ev.done, ev.total)
        elif isinstance(ev, StageFinished):
            for row in stages.query(f"#stage-{ev.stage}"):
                if isinstance(row, StageRow):
                    row.finish(ev.seconds)
        elif isinstance(ev, ModelInfo):
            shape = "×".join(str(d) for d in ev.inputs[0]["shape"][1:]) if ev.inputs else "?"
            log.write(f"model: input {shape}, {len(ev.outputs)} output(s), {ev.params:,} parameters")
        elif isinstance(ev, StageMetrics):
            shown = {k: v for k, v in ev.metrics.items() if not isinstance(v, dict | list)}
            text = ", ".join(f"{k} {fmt_pct(v)}" for k, v in shown.items())
            log.write(f"{ev.stage.upper()}: {text}  size {fmt_size(ev.size_bytes)}")
        elif isinstance(ev, Log):
            log.write(f"{ev.level}: {ev.message}" if ev.level != "info" else ev.message)
        elif isinstance(ev, RunFinished):
            rep = read_report(ev.run_dir)
            if rep:
                self.show_report(rep)
            self._set_state("done: " + ("PASS" if ev.verdict.get("pass") else "FAIL"), running=True)
        elif isinstance(ev, RunFailed):
            for row in stages.query(StageRow):
                row.fail(ev.status.upper())
            log.write(f"{ev.status.upper()}: {ev.message}")
            if ev.hint:
                log.write(f"what to do: {ev.hint}")
            if ev.status == "failed":
                self.notify(f"{ev.message}\n{ev.hint}", title="Job failed", severity="error", timeout=10)
            rep = read_report(ev.run_dir) if ev.run_dir else None
            if rep:
                self.show_report(rep)

    @on(JobExited)
    def _job_exited(self, message: JobExited) -> None:
        words = {0: "done", 2: "failed: bad input", 3: "cancelled"}
        state = words.get(message.returncode, f"failed (exit {message.returncode})")
        if message.returncode == 0 and self.report and self.report.get("verdict"):
            state = "done: " + ("PASS" if self.report["verdict"].get("pass") else "FAIL")
        self._set_state(state, running=False)
        if message.returncode not in (0, 2, 3) and message.stderr.strip():
            self.query_one("#log", RichLog).write(message.stderr.strip().splitlines()[-1])
        self.refresh_picker()

    # --- results --------------------------------------------------------------------

    def show_report(self, rep: dict[str, Any]) -> None:
        self.report = rep
        self.query_one("#verdict", Static).update(verdict_text(rep))
        table = self.query_one("#stage-table", DataTable)
        table.clear(columns=True)
        from engine.report import task_metric_names

        names = task_metric_names(rep)
        table.add_columns("stage", "size", *names, "drop pts", "agree", "cos")
        v = rep.get("verdict") or {}
        primary = v.get("metric")
        stages = rep.get("stages") or {}
        base = ((stages.get("fp32") or {}).get("metrics") or {}).get(primary)
        for name, st in stages.items():
            m = st.get("metrics") or {}
            agr = m.get("agreement") or {}
            drop = ""
            if base is not None and m.get(primary) is not None:
                drop = f"{(base - m[primary]) * 100:+.2f}"
            table.add_row(
                name.upper(), fmt_size(st.get("size_bytes")),
                *[fmt_pct(m.get(n)) for n in names], drop,
                fmt_pct(agr.get("acc")),
                f"{agr['cos']:.4f}" if agr.get("cos") is not None else "—",
            )


def config_summary(cfg: JobConfig) -> str:
    d = cfg.data
    lines = [
        f"{cfg.name}",
        "",
        f"model        {Path(cfg.model.path).name}",
        f"task         {cfg.evaluation.task}  (profile {cfg.evaluation.profile}, "
        f"≤ {cfg.threshold:g} pts)",
        f"method       {cfg.quantization.method.upper()}  "
        f"{cfg.quantization.granularity.replace('_', '-')}  io {cfg.quantization.io_type}",
        f"stages       {' → '.join(s.upper() for s in cfg.quantization.stages)}",
        f"calibration  {cfg.calibration.samples} samples (seed {cfg.calibration.seed}) from "
        f"{_source(d.calibration)}",
        f"test         {_source(d.test)}",
    ]
    return "\n".join(lines)


def _source(src: Any) -> str:
    if src.kind == "synthetic":
        return f"synthetic {src.generator}/{src.split} ×{src.count}"
    return f"{src.kind} {Path(src.path).name}"


def verdict_text(rep: dict[str, Any]) -> str:
    status = str(rep.get("status", "?")).upper()
    lines = [f"{rep.get('name', '')}: {status}"]
    v = rep.get("verdict")
    if v and v.get("drop") is not None:
        word = "PASS" if v.get("pass") else "FAIL"
        lines.append(f"Verdict: {word} — INT8 drop {v['drop']:.2f} points on {v['metric']} "
                     f"(profile {v['profile']}: ≤ {v['threshold']:g})")
        lines.append(f"Advice: {v.get('advice', '')}")
    if rep.get("error"):
        e = rep["error"]
        lines.append(f"Error: {e.get('message', '')}")
        if e.get("hint"):
            lines.append(f"What to do: {e['hint']}")
    stages = rep.get("stages") or {}
    fp32 = (stages.get("fp32") or {}).get("size_bytes")
    int8 = (stages.get("int8") or {}).get("size_bytes")
    if fp32 and int8:
        lines.append(f"INT8 is {100 * (1 - int8 / fp32):.1f} % smaller than FP32 "
                     f"({fmt_size(fp32)} → {fmt_size(int8)}).")
    return "\n".join(lines)


def run_summary(rep: dict[str, Any]) -> str:
    return verdict_text(rep) + f"\n\nfolder: {rep.get('run_dir', '')}"


def main(runs_dir: str | None = None) -> int:
    app = ArtqApp(runs_dir=runs_dir)
    app.run()
    return 0
