"""The artq workbench: pick a job, tune it, launch it, watch it, read it, compare it, save it.

Engine work happens only in the worker process (:mod:`tui.runner`, injected so tests fake
it); this module never imports TensorFlow, and nothing heavier than the standard library and
Textual before the first paint (configs are validated in a thread: pydantic costs ~0.15 s).
State is never shown by colour alone: rows say NPU/CPU, PASS/FAIL, done/running.

Keys: printable letters are swallowed by a focused Input, so everything that must work
anywhere has a Ctrl or F key with ``priority=True`` (launch Ctrl+R, cancel Ctrl+T, save
Ctrl+S, open Ctrl+O, help F1, tabs F2–F7); digits 1–6 and ``?`` work when not typing.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import (
    Button,
    Checkbox,
    Header,
    Input,
    OptionList,
    Select,
    TabbedContent,
    TabPane,
)

from . import format as fmt
from .calibcheck import as_finding, finding_text, sample_configs
from .checker import Checker, SubprocessChecker
from .panes.models import ModelsPane, config_text, model_text
from .runner import JobEvent, JobExited, Runner, SweepDone, SweepRunner, WorkerRunner
from .settings import KNOBS, Session, SettingError, changes, default_save_path, set_args, toml_value
from .widgets import KeysFooter, LateMount, StageRow

if TYPE_CHECKING:
    from textual.widgets import RichLog

    from engine.report import Report

# Not imported here: engine.events (a dozen dataclasses, ~15 ms), engine.rundir and
# RichLog (rich.pretty, ~15 ms). The first screen needs none of them; they are imported
# where used, and the warm-up thread imports them after the first paint.

TABS = ("models", "calibration", "quantize", "results", "layers", "compare")
TAB_TITLES = ("Models", "Calibration", "Quantize", "Results", "Layers", "Compare")
# Where focus goes when a tab is shown, so the tab's own keys work at once.
TAB_FOCUS = {
    "models": "#picker",
    "calibration": "#k-calibration--samples",
    "quantize": "#k-quantization--method",
    "results": "#pane-results",
    "layers": "#layer-table",
    "compare": "#cmp-table",
}
RECENT_RUNS = 30
_REPORTS: dict[str, tuple[float, Report | None]] = {}


def read_report(run_dir: str | Path) -> Report | None:
    """engine.report.read_report, remembered until report.json changes: the runs list is
    read again after every job, and parsing thirty reports held the GIL for ~0.1 s."""
    p = Path(run_dir) / "report.json"
    try:
        mtime = p.stat().st_mtime
    except OSError:
        return None
    hit = _REPORTS.get(str(p))
    if hit is not None and hit[0] == mtime:
        return hit[1]
    from engine.report import read_report as _read_report  # noqa: PLC0415 - see above

    rep = _read_report(run_dir)
    _REPORTS[str(p)] = (mtime, rep)
    return rep


_PANE_CLASSES = {
    "calibration": ("calibration", "CalibrationPane"),
    "quantize": ("quantize", "QuantizePane"),
    "results": ("results", "ResultsPane"),
    "layers": ("layers", "LayersPane"),
    "compare": ("compare", "ComparePane"),
}


def _make_pane(tab: str) -> Any:
    import importlib  # noqa: PLC0415

    module, name = _PANE_CLASSES[tab]
    return getattr(importlib.import_module(f"tui.panes.{module}"), name)(id=f"pane-{tab}")


def _tab_bindings() -> list[Binding]:
    out = []
    for i, tab in enumerate(TABS):
        out.append(Binding(f"f{i + 2}", f"show_tab('{tab}')", TAB_TITLES[i], id=f"tab_{tab}",
                           show=False, priority=True))
        out.append(Binding(str(i + 1), f"show_tab('{tab}')", TAB_TITLES[i], id=f"tab_{tab}_digit",
                           show=False))
    return out


class ArtqApp(App[int]):
    """Pick, tune, launch, watch, read, compare, save."""

    # Absolute: Textual resolves a relative CSS_PATH against the module of the subclass.
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "artq"
    SUB_TITLE = "INT8 for the STM32N6 Neural-ART NPU"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    BINDINGS = [
        Binding("ctrl+r", "launch", "Launch", id="launch", priority=True),
        Binding("ctrl+t", "cancel", "Cancel", id="cancel", priority=True),
        Binding("ctrl+s", "save", "Save", id="save", priority=True),
        Binding("ctrl+o", "open", "Open", id="open", priority=True, show=False),
        Binding("f1", "help", "Help", id="help", priority=True),
        Binding("question_mark", "help", "Help", id="help_key", show=False),
        Binding("q", "quit", "Quit", id="quit_key", show=False),
        Binding("escape", "focus_pane", "Leave field", id="leave_field", show=False),
        *_tab_bindings(),
    ]

    def __init__(
        self,
        runner: Runner | None = None,
        runs_dir: str | Path | None = None,
        *,
        samples: list[Path] | None = None,
        clock: Callable[[], float] = time.monotonic,
        open_dir: str | Path | None = None,
        checker: Checker | None = None,
        sweeper: SweepRunner | None = None,
    ) -> None:
        super().__init__()
        self.runner: Runner = runner or WorkerRunner()
        self.sweeper = sweeper or SweepRunner()
        self._sweep_t0 = 0.0
        self._pending_sweep = False
        self.checker: Checker = checker or SubprocessChecker()
        self.runs_dir = Path(runs_dir) if runs_dir else Path.cwd() / "runs"
        self.samples = samples if samples is not None else sample_configs()
        self.clock = clock
        self.open_dir = Path(open_dir) if open_dir else Path.cwd()
        self.session: Session | None = None
        self.runs: list[tuple[Path, Report | None]] = []
        self.sweeps: list[Path] = []
        self.report: Report | None = None
        self.run_dir: str | None = None
        self.qat_history: list[dict[str, Any]] = []
        self.failed_seen = False
        self._picked: str = ""
        self._previews: dict[str, str] = {}
        self._pending_compare: str | None = None
        self._rows: dict[str, StageRow] = {}
        self._painted = False

    # --- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="models", id="tabs"):
            for i, tab in enumerate(TABS):
                with TabPane(f"{i + 1} {TAB_TITLES[i]}", id=tab):
                    # Hidden panes are imported and mounted after the first paint: a fifth
                    # of the widgets before it, so the first screen is out in a third of
                    # the time.
                    if i == 0:
                        yield ModelsPane(id="pane-models")
                    else:
                        yield LateMount(partial(_make_pane, tab))
        yield KeysFooter(compact=True)

    def on_mount(self) -> None:
        theme = os.environ.get("ARTQ_THEME")
        limited = os.environ.get("TEXTUAL_COLOR_SYSTEM", "") in ("standard", "windows")
        if theme in self.available_themes:
            self.theme = theme
        elif limited and not self.no_color:
            # A 16-colour terminal: its own palette reads best. Not with NO_COLOR: there
            # Textual's monochrome filter needs a theme of real colours to turn into greys
            # (ansi-dark under NO_COLOR came out black on black, seen in tmux).
            self.theme = "ansi-dark"
        self.pane("models").fill(self.samples, [])
        picker = self.query_one("#picker", OptionList)
        picker.focus()
        self.set_interval(0.5, self._tick)
        # The runs (JSON reads) and the config validator (pydantic) wait for the first paint.
        self.set_timer(1.0, self._reveal_panes)  # in case the footer never says so

    @on(KeysFooter.Ready)
    async def _reveal_panes(self) -> None:
        """The first screen is out: mount the other tabs, one per refresh so keys are
        answered in between, then do the deferred work."""
        if self._painted:
            return
        self._painted = True
        # A thread, but parsing reports holds the GIL: started before, it delayed the
        # first screen by its length (thirty reports ~0.1 s).
        self.refresh_runs()
        for late in list(self.query(LateMount)):
            await late.reveal()
            await asyncio.sleep(0)
        self._warm_imports()  # ends with gc.freeze() of all that is mounted by now
        kind, _, path = self._picked.partition(":")
        if kind == "cfg":
            self._preview_config(path)

    @work(thread=True, group="warm")
    def _warm_imports(self) -> None:
        # Pay these imports off the UI thread: pydantic for configs (~0.3 s), and the NPU
        # rule table behind the layer detail pane (~0.15 s, it brings the .tflite reader).
        import engine.config  # noqa: F401, PLC0415
        import engine.events  # noqa: F401, PLC0415
        import engine.npu.rules  # noqa: F401, PLC0415
        import engine.report  # noqa: F401, PLC0415 - the typed report every pane reads
        import engine.rundir  # noqa: F401, PLC0415
        import tui.screens  # noqa: F401, PLC0415 - the dialogs, with Textual's file tree

        # Measured: with the app's widgets, styles and these modules in the heap, a full
        # garbage collection took 100-135 ms, a visible stall while a job runs. What exists
        # now lives as long as the app: move it out of the collector's scans.
        self.call_from_thread(gc.freeze)

    # --- runs ----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="runs")
    def refresh_runs(self) -> None:
        from engine.rundir import list_runs  # noqa: PLC0415 - see the note above TABS

        runs = [(p, read_report(p)) for p in list_runs(self.runs_dir)[:RECENT_RUNS]]
        sweeps = [p for p, _ in runs if (p / "sweep.json").is_file()]
        self.call_from_thread(self._runs_loaded, runs, sweeps)

    def panes_ready(self) -> bool:
        """Whether the lazily mounted panes are there yet (they follow the first paint)."""
        # A pane is in the DOM before its children, and a Select before its own parts.
        last = ("#sweep-chart", "#log", "#diagnostics", "#layer-detail", "#findings")
        if not all(self.query(sel) for sel in last):
            return False
        return all(w.is_mounted for w in self.query("Select, SelectOverlay, DataTable, Input"))

    def _runs_loaded(self, runs: list[tuple[Path, Report | None]], sweeps: list[Path]) -> None:
        if not self.panes_ready():
            self.set_timer(0.05, partial(self._runs_loaded, runs, sweeps))
            return
        self.runs, self.sweeps = runs, sweeps
        self.pane("models").fill(self.samples, runs)
        compare = self.pane("compare")
        compare.set_runs(runs, sweeps)
        a, b = self.query_one("#cmp-a", Select), self.query_one("#cmp-b", Select)
        from .panes.compare import pick_pair  # noqa: PLC0415 - the pane is there by now

        finished = [str(p) for p, r in runs if r is not None and r.finished]
        if a.is_blank() and b.is_blank():
            pair = pick_pair(finished)
            if pair:
                self.compare(*pair)
            else:
                compare.show_pair(None, None)
        pending, self._pending_compare = self._pending_compare, None
        if pending and pending in finished:
            pair = pick_pair(finished, pending)
            if pair:
                self.compare(*pair)
        sweep = self.query_one("#sweep-pick", Select)
        if sweeps and (sweep.is_blank() or self._pending_sweep):
            sweep.value = str(sweeps[0])
            if self._pending_sweep:
                self.action_show_tab("compare")
        elif not sweeps:
            compare.show_sweep(None)
        self._pending_sweep = False

    def compare(self, a: str, b: str) -> None:
        """Show runs ``a`` and ``b`` (folders) side by side in 6 Compare."""
        sa, sb = self.query_one("#cmp-a", Select), self.query_one("#cmp-b", Select)
        with sa.prevent(Select.Changed), sb.prevent(Select.Changed):
            sa.value, sb.value = a, b
        self.pane("compare").show_pair(read_report(a), read_report(b))

    @on(Select.Changed, "#cmp-a, #cmp-b")
    def _compare_changed(self) -> None:
        a, b = self.query_one("#cmp-a", Select), self.query_one("#cmp-b", Select)
        if not a.is_blank() and not b.is_blank():
            self.pane("compare").show_pair(read_report(str(a.value)), read_report(str(b.value)))

    @on(Select.Changed, "#sweep-pick")
    def _sweep_changed(self, event: Select.Changed) -> None:
        if not event.select.is_blank():
            from .panes.compare import read_sweep  # noqa: PLC0415 - after the first paint

            self.pane("compare").show_sweep(read_sweep(Path(str(event.value))))

    def action_compare_swap(self) -> None:
        a, b = self.query_one("#cmp-a", Select), self.query_one("#cmp-b", Select)
        if not a.is_blank() and not b.is_blank():
            self.compare(str(b.value), str(a.value))

    def action_compare_latest(self) -> None:
        from .panes.compare import pick_pair  # noqa: PLC0415 - after the first paint

        pair = pick_pair([str(p) for p, r in self.runs if r is not None and r.finished])
        if not pair:
            self.notify("Compare needs two finished runs.", severity="warning")
            return
        self.compare(*pair)
        self.action_show_tab("compare")

    # --- picking -------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#picker")
    def _highlight(self, event: OptionList.OptionHighlighted) -> None:
        key = event.option.id or ""
        again = key == self._picked  # the list was refilled around the same item
        self._picked = key
        kind, _, path = key.partition(":")
        pane = self.pane("models")
        if kind == "run":
            pane.show(self._run_preview(Path(path)))
        elif kind == "cfg":
            if again and path in self._previews:
                return
            pane.show(self._previews.get(path, f"config   {path}\n\nreading…"))
            if self._painted:
                # Before the first screen is out, _reveal_panes does it: reading a config
                # imports pydantic and h5py, in a thread but holding the GIL long enough to
                # delay the first screen by ~0.4 s (measured).
                self._preview_config(path)
        elif key == "open":
            pane.show("Enter (or Ctrl+O) opens a file picker for a job config or a model file.")

    @on(OptionList.OptionSelected, "#picker")
    def _select(self, event: OptionList.OptionSelected) -> None:
        key = event.option.id or ""
        kind, _, path = key.partition(":")
        if kind == "cfg":
            self.open_config(Path(path), go=True)
        elif kind == "run":
            self.open_run(Path(path))
        elif key == "open":
            self.action_open()

    def _run_preview(self, path: Path) -> str:
        from .panes.results import verdict_text  # noqa: PLC0415 - after the first paint

        rep = next((r for p, r in self.runs if p == path), None)
        if (path / "sweep.json").is_file():
            return f"{path.name}\n\nA sweep: Enter shows it in 6 Compare."
        if rep is None:
            return f"{path.name}\n\nThis run never finished: it has no report.json (see its log.txt)."
        return verdict_text(rep) + f"\n\nfolder: {path}\nEnter: results, layers and compare."

    @work(thread=True, exclusive=True, group="preview")
    def _preview_config(self, path: str) -> None:
        text = self._config_summary(Path(path))
        self._previews[path] = text
        self.call_from_thread(self._show_preview, path, text)

    def _show_preview(self, path: str, text: str) -> None:
        if self._picked == f"cfg:{path}":
            self.pane("models").show(text)

    @staticmethod
    def _config_summary(path: Path, fixed: dict[str, Any] | None = None) -> str:
        from engine.config import load_config  # noqa: PLC0415
        from engine.errors import EngineError  # noqa: PLC0415
        from engine.inspect_model import model_summary  # noqa: PLC0415

        try:
            cfg = load_config(path, fixed or None)
        except EngineError as exc:
            return f"config       {path}\n\nCannot use this config:\n{exc}"
        d = cfg.to_dict()
        return model_text(model_summary(cfg.model.path)) + "\n\n" + config_text(d, str(path))

    def open_config(self, path: Path, go: bool = False, fixed: dict[str, Any] | None = None,
                    template: bool = False) -> None:
        """Make ``path`` the session's job config (in a thread: validation imports pydantic)."""
        self.pane("models").show(f"config       {path}\n\nreading…")
        self._load_session(path, go, fixed or {}, template)

    @work(thread=True, exclusive=True, group="session")
    def _load_session(self, path: Path, go: bool, fixed: dict[str, Any], template: bool) -> None:
        from engine.config import load_config  # noqa: PLC0415
        from engine.errors import EngineError  # noqa: PLC0415
        from engine.inspect_model import model_summary  # noqa: PLC0415

        from .settings import base_values  # noqa: PLC0415

        try:
            cfg = load_config(path, fixed or None)
        except EngineError as exc:
            self.call_from_thread(self._error, "This config cannot be used", exc.message, exc.hint)
            self.call_from_thread(self.pane("models").show,
                                  f"config       {path}\n\nCannot use this config:\n{exc}")
            return
        d = cfg.to_dict()
        session = Session(path, cfg.name, base_values(d), d, dict(fixed),
                          model_summary(cfg.model.path), template)
        self.call_from_thread(self._session_loaded, session, go)

    def _session_loaded(self, session: Session, go: bool) -> None:
        if not self.panes_ready():
            self.set_timer(0.05, partial(self._session_loaded, session, go))
            return
        self.session = session
        self.sub_title = f"{session.name} ({session.config_path.name})"
        from .panes.knobs import write  # noqa: PLC0415 - after the first paint

        for k in KNOBS:
            widget = self.query_one(f"#{k.wid}")
            with widget.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
                write(widget, k, session.base.get(k.key))
        self.pane("calibration").set_band(session.base.get("calibration.samples"))
        text = model_text(session.model) + "\n\n" + config_text(session.config, str(session.config_path))
        self.pane("models").show(text)
        if session.model and not session.model.get("exists"):
            self.notify(f"The model file is missing: {session.model.get('path')}", title="Model missing",
                        severity="warning", timeout=8)
        self.action_check_data()
        if go:
            self.action_show_tab("calibration")

    def open_run(self, path: Path) -> None:
        if (path / "sweep.json").is_file():
            sel = self.query_one("#sweep-pick", Select)
            sel.value = str(path)
            self.action_show_tab("compare")
            return
        rep = read_report(path)
        if rep is None:
            self._error("This run never finished", f"{path} has no report.json.",
                        "Its log.txt says how far it got.")
            return
        self.show_report(rep)
        others = [str(p) for p, r in self.runs if r is not None and r.finished and p != path]
        if others:
            self.compare(others[0], str(path))
        self.action_show_tab("results")

    def action_open(self) -> None:
        def opened(path: Path | None) -> None:
            if path is None:
                return
            if not path.exists():
                self._error("Nothing to open", f"{path} does not exist.", "Check the path.")
            elif path.suffix.lower() == ".toml":
                self.open_config(path.resolve(), go=True)
            elif path.suffix.lower() in (".keras", ".h5", ".hdf5") or (path / "saved_model.pb").is_file():
                self.open_model(path.resolve())
            elif (path / "report.json").is_file() or (path / "sweep.json").is_file():
                self.open_run(path.resolve())
            else:
                self._error("Cannot open this", f"{path} is not a job config, a model or a run folder.",
                            "Pick a .toml, .keras, .h5 or a SavedModel folder.")

        from .screens import OpenScreen  # noqa: PLC0415 - opened on demand

        self.push_screen(OpenScreen(self.open_dir), opened)

    def open_model(self, path: Path) -> None:
        """A bare model: a new job on the current config (or the first sample) as template."""
        base = self.session.config_path if self.session else (self.samples[0] if self.samples else None)
        if base is None:
            self._error("No template config", "A model needs a job config for its data.",
                        "Open a .toml job config instead.")
            return
        fixed = {"model.path": str(path), "name": path.stem}
        self.notify(f"New job for {path.name} on {base.name}'s data and settings; set the data "
                    "in 2 Calibration, then Ctrl+S to save it.", timeout=8)
        self.open_config(base, go=False, fixed=fixed, template=True)
        self.action_show_tab("models")

    # --- actions -------------------------------------------------------------------

    def pane(self, tab: str) -> Any:
        """A tab's pane (typed loosely: the classes are imported after the first paint)."""
        return self.query_one(f"#pane-{tab}")

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        # Now, so keys typed right after the tab key reach the pane; and again after the
        # refresh, in case the pane was not displayed yet.
        self._focus_tab(tab)
        self.call_after_refresh(self._focus_tab, tab)

    def _focus_tab(self, tab: str) -> None:
        for w in self.query(TAB_FOCUS[tab]):
            if w.focusable:
                # set_focus, not w.focus(): that one is deferred, and keys typed right after
                # the tab key went to the old focus (seen in tmux with "1 ↓ Enter").
                self.set_focus(w)
                return

    def action_focus_pane(self) -> None:
        self._focus_tab(self.query_one(TabbedContent).active or "models")

    def action_help(self) -> None:
        from .screens import HelpScreen  # noqa: PLC0415 - opened on demand

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_sections()))

    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        return [
            ("Anywhere", [
                ("Ctrl+R", "launch the job with the tuned settings"),
                ("Ctrl+T", "cancel the running job (the run is kept, marked cancelled)"),
                ("Ctrl+S", "save the tuned settings as a commented job config"),
                ("Ctrl+O", "open a job config or a model file"),
                ("Ctrl+P", "command palette: every action by name"),
                ("F1  ?", "this help"),
                ("F2…F7  1…6", "tabs: Models, Calibration, Quantize, Results, Layers, Compare"),
                ("Tab  Shift+Tab", "next / previous field"),
                ("Esc", "leave a field (then letters and digits act as keys)"),
                ("Ctrl+Q  q", "quit (a running job is cancelled first)"),
            ]),
            ("1 Models", [("↑ ↓  Enter", "a sample config: tune it; a run: read its results")]),
            ("2 Calibration", [("type, Tab", "sample count (guide 100–500), seed, data, preprocessing"),
                               ("Check data", "preview, statistics and diagnostics (automatic on open)")]),
            ("3 Quantize", [("Method", "PTQ or QAT; QAT uses epochs and learning rate"),
                            ("", "stages show elapsed and time left; QAT charts loss and metric")]),
            ("5 Layers", [("s / t", "sort by the next column / by estimated time"),
                          ("r", "reverse the sort"), ("u", "CPU layers only"),
                          ("x", "suspect layers only"), ("/", "search op, name or reason"),
                          ("↑ ↓", "the detail pane follows the cursor")]),
            ("Sweeps", [("Ctrl+P sweep", "artq sweep on the tuned settings: KEY=V1,V2 …; the "
                                          "table and chart land in 6 Compare")]),
            ("6 Compare", [("A / B", "pick two runs; B − A for every metric and setting"),
                           ("palette", "'Compare: swap A and B', 'Compare: the two latest runs'")]),
        ]

    def _error(self, title: str, message: str, hint: str = "") -> None:
        from .screens import ErrorDialog  # noqa: PLC0415 - opened on demand

        self.push_screen(ErrorDialog(title, message, hint))

    def knob_values(self) -> dict[str, Any]:
        """Every knob's current value; raises SettingError naming a knob that does not parse."""
        from .panes.knobs import read  # noqa: PLC0415 - after the first paint

        out: dict[str, Any] = {}
        for k in KNOBS:
            out[k.key] = read(self.query_one(f"#{k.wid}"), k)
        return out

    def overrides(self) -> dict[str, Any]:
        assert self.session is not None
        return {**self.session.fixed, **changes(self.session.base, self.knob_values())}

    def after_typing(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once the focused widget has handled the keys typed before.

        Ctrl+R/Ctrl+S are app bindings, handled as they arrive, while the digits typed just
        before still wait in the Input's queue: "5", "0", Ctrl+S in one burst saved 200
        (seen in tmux). A callback queued on the focused widget runs after those keys.
        """
        widget = self.focused
        if widget is None:
            callback()
        else:
            widget.call_later(callback)

    def action_launch(self) -> None:
        self.after_typing(lambda: self.run_worker(self._launch(), group="launch"))

    async def _launch(self) -> None:
        if self.runner.running:
            self.notify("A job is already running; cancel it first (Ctrl+T).", severity="warning")
            return
        if self.session is None:
            self.notify("Pick a job config first: 1 Models, Enter on a sample.", severity="warning")
            return
        model = self.session.model
        if model and not model.get("exists"):
            self._error("The model file is missing", str(model.get("path")),
                        "Train the sample first (artq samples train NAME), or open another model.")
            return
        try:
            ov = self.overrides()
        except SettingError as exc:
            self._error("A setting does not parse", str(exc), "Correct the field and launch again.")
            return
        args = [*set_args(ov), f"output.runs_dir={toml_value(str(self.runs_dir))}"]
        self.query_one("#stages", Vertical).remove_children()
        self._rows.clear()
        self._log().clear()
        self.qat_history = []
        self.pane("quantize").show_epochs([], "")
        self.failed_seen = False
        self._set_state("starting…", running=True)
        self.action_show_tab("quantize")
        self._log().write(
            f"artq run {self.session.config_path.name} " + " ".join(f"--set {a}" for a in args[:-1]))
        try:
            await self.runner.start(str(self.session.config_path), args, self.post_message)
        except (OSError, RuntimeError) as exc:
            self._set_state("idle", running=False)
            self._error("The worker did not start", str(exc), "Check the Python environment.")

    async def action_cancel(self) -> None:
        if self.sweeper.running:
            self._set_state("cancelling the sweep…", running=True)
            self.run_worker(self.sweeper.cancel(), group="cancel")
            return
        if not self.runner.running:
            self.notify("No job is running.")
            return
        self._set_state("cancelling…", running=True)
        # In a worker: the runner waits up to its grace period, and the UI must not.
        self.run_worker(self.runner.cancel(), group="cancel")

    def action_sweep(self) -> None:
        """Run ``artq sweep`` on the tuned settings; its table and chart land in 6 Compare."""
        self.after_typing(self._sweep_dialog)

    def _sweep_dialog(self) -> None:
        if self.session is None:
            self.notify("Pick a job config first: 1 Models, Enter on a sample.", severity="warning")
            return
        if self.runner.running or self.sweeper.running:
            self.notify("A job is running; cancel it first (Ctrl+T).", severity="warning")
            return
        try:
            ov = self.overrides()
        except SettingError as exc:
            self._error("A setting does not parse", str(exc), "Correct the field first.")
            return
        session = self.session

        def chosen(sets: list[str] | None) -> None:
            if not sets:
                return
            swept = {s.split("=", 1)[0] for s in sets}
            # The tuned settings hold for every variant, except the keys being swept.
            fixed = [a for a in set_args(ov) if a.split("=", 1)[0] not in swept]
            self.run_worker(self._sweep(str(session.config_path), sets + fixed), group="launch")

        note = ("Each variant is a full run (the tuned settings plus the swept values), as many "
                "at once as there are cores. Example: calibration.samples=50,100,200,400 "
                "quantization.granularity=per_channel,per_tensor")
        from .screens import SweepScreen  # noqa: PLC0415 - opened on demand

        self.push_screen(SweepScreen("calibration.samples=50,100,200,400", note), chosen)

    async def _sweep(self, config: str, sets: list[str]) -> None:
        self.query_one("#stages", Vertical).remove_children()
        self._rows.clear()
        self._log().clear()
        self._log().write(
            "artq sweep " + Path(config).name + " " + " ".join(f"--set {s}" for s in sets))
        self._sweep_t0 = self.clock()
        self._set_state("sweeping…", running=True)
        self.action_show_tab("quantize")
        try:
            await self.sweeper.start(config, sets, str(self.runs_dir), self.post_message)
        except (OSError, RuntimeError) as exc:
            self._set_state("idle", running=False)
            self._error("The sweep did not start", str(exc), "Check the Python environment.")

    @on(SweepDone)
    def _sweep_done(self, message: SweepDone) -> None:
        log = self._log()
        data = message.data or {}
        status = str(data.get("status") or ("cancelled" if message.returncode == 3 else "failed"))
        self._set_state(f"sweep {status.upper()}", running=False)
        for v in data.get("variants") or []:
            log.write(f"{' '.join(f'{k}={x}' for k, x in (v.get('set') or {}).items())}: "
                      f"{str(v.get('status', '')).upper()}, drop {fmt.num(v.get('drop'), 3)} pts")
        if message.returncode not in (0, 3) and not data:
            last = (message.stderr.strip().splitlines() or ["(no message)"])[-1]
            self._error("The sweep failed", last, "Run the same artq sweep in a terminal to see more.")
            return
        self._pending_sweep = True
        self.refresh_runs()

    def action_resume(self) -> None:
        """Resume the QAT run highlighted in 1 Models from its last epoch checkpoint."""
        kind, _, path = self._picked.partition(":")
        if kind != "run":
            self.notify("Highlight a cancelled or failed QAT run in 1 Models first.", severity="warning")
            return
        self.run_worker(self._resume(path), group="launch")

    async def _resume(self, path: str) -> None:
        if self.runner.running:
            self.notify("A job is already running.", severity="warning")
            return
        self.query_one("#stages", Vertical).remove_children()
        self._rows.clear()
        self._log().clear()
        self.qat_history, self.failed_seen = [], False
        self._set_state("resuming…", running=True)
        self.action_show_tab("quantize")
        await self.runner.start(path, [], self.post_message, resume=True)

    def action_tune_run(self) -> None:
        """Use the highlighted run's config (as it ran) as the session."""
        kind, _, path = self._picked.partition(":")
        if kind != "run" or not (Path(path) / "config.toml").is_file():
            self.notify("Highlight a run in 1 Models first.", severity="warning")
            return
        self.open_config(Path(path) / "config.toml", go=True)

    def action_check_data(self) -> None:
        if self.session is None:
            return
        try:
            ov = self.overrides()
        except SettingError as exc:
            self.pane("calibration").set_state(f"PROBLEM: {exc}")
            return
        self.pane("calibration").set_state("checking…")
        self._check(str(self.session.config_path), set_args(ov), self.session.model)

    @work(exclusive=True, group="check")
    async def _check(self, config: str, args: list[str], model: dict[str, Any]) -> None:
        pane = self.pane("calibration")

        def diag(msg: dict[str, Any]) -> None:
            pane.show_diagnostics(msg.get("diagnostics") or [], msg.get("diag_note", ""))

        try:
            # Preview and statistics first; the engine's diagnostics (which load the test
            # data too) follow when ready.
            await self.checker.check(config, args, model, pane.show_check, diag)
        except (OSError, ValueError) as exc:
            pane.show_check({"error": [f"the data check failed: {exc}", ""], "diagnostics": [],
                             "diag_note": "", "images": [], "captions": [], "stats": []})

    @on(Button.Pressed, "#check-btn")
    def _check_pressed(self) -> None:
        self.action_check_data()

    @on(Input.Changed, "#k-calibration--samples")
    def _samples_changed(self, event: Input.Changed) -> None:
        try:
            n = int(event.value)
        except ValueError:
            n = None
        pane = self.pane("calibration")
        pane.set_band(n)
        # The statistics and preview below are of the last check: say they are stale.
        pane.set_state("changed: Enter re-checks")

    @on(Input.Submitted, "#pane-calibration Input")
    @on(Select.Changed, "#pane-calibration Select")
    def _calibration_edited(self) -> None:
        self.action_check_data()

    @on(Button.Pressed, "#launch-btn")
    def _launch_pressed(self) -> None:
        self.action_launch()

    @on(Button.Pressed, "#cancel-btn")
    async def _cancel_pressed(self) -> None:
        await self.action_cancel()

    def action_save(self) -> None:
        self.after_typing(self._save)

    def _save(self) -> None:
        if self.session is None:
            self.notify("Nothing to save: pick a job config first.", severity="warning")
            return
        try:
            ov = self.overrides()
        except SettingError as exc:
            self._error("A setting does not parse", str(exc), "Correct the field and save again.")
            return
        session = self.session
        summary = ("Changes: " + ", ".join(f"{k} = {toml_value(v)}" for k, v in ov.items())
                   if ov else f"No changes from {session.config_path.name}: it will be copied.")

        def chosen(dest: Path | None) -> None:
            if dest is None:
                return
            from .settings import save_config  # noqa: PLC0415

            try:
                out = save_config(session.config_path, dest, ov)
            except (OSError, SettingError) as exc:
                self._error("The config was not saved", str(exc), "Choose another path.")
                return
            self.notify(f"Saved {out}\nRun it: artq run {out}", title="Saved", timeout=8)

        from .screens import SaveScreen  # noqa: PLC0415 - opened on demand

        self.push_screen(SaveScreen(default_save_path(session), summary), chosen)

    async def action_quit(self) -> None:
        if self.runner.running:
            self.notify("Cancelling the running job before quitting…")
            await self.runner.cancel()
        if self.sweeper.running:
            await self.sweeper.cancel()
        self.exit(0)

    def action_layers(self, what: str) -> None:
        """Palette entry points into 5 Layers (sort KEY / reverse / cpu / suspect / search)."""
        from .panes.layers import COLUMNS  # noqa: PLC0415

        pane = self.pane("layers")
        self.action_show_tab("layers")
        verb, _, arg = what.partition(":")
        if verb == "sort":
            pane.set_sort(arg, next(d for k, _, d in COLUMNS if k == arg))
        elif verb == "reverse":
            pane.action_reverse()
        elif verb in ("cpu", "suspect"):
            pane.action_toggle(verb)
        elif verb == "search":
            self.call_after_refresh(pane.action_search)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action in the palette, by name (the footer has room for the main ones)."""
        from .panes.layers import COLUMNS  # noqa: PLC0415

        yield from super().get_system_commands(screen)
        cmds: list[tuple[str, str, str]] = [
            ("Launch the job", "run the tuned settings in the worker (Ctrl+R)", "launch"),
            ("Cancel the job", "stop the running job; the run is marked cancelled (Ctrl+T)", "cancel"),
            ("Save settings as a job config", "a commented TOML you can run with artq run (Ctrl+S)", "save"),
            ("Open a config or model", "file picker (Ctrl+O)", "open"),
            ("Help", "every key (F1)", "help"),
            ("Check the calibration data", "preview, statistics and diagnostics", "check_data"),
            ("Refresh runs", "read the runs folder again", "refresh"),
            ("Sweep settings (artq sweep)", "every combination of KEY=V1,V2 values, side by side",
             "sweep"),
            ("Resume the highlighted QAT run", "continue from its last epoch checkpoint", "resume"),
            ("Tune from the highlighted run", "use the config that run ran with", "tune_run"),
            ("Compare: swap A and B", "", "compare_swap"),
            ("Compare: the two latest runs", "", "compare_latest"),
            ("Layers: reverse the sort", "(r)", "layers('reverse')"),
            ("Layers: CPU layers only", "toggle (u)", "layers('cpu')"),
            ("Layers: suspect layers only", "toggle (x)", "layers('suspect')"),
            ("Layers: search", "(/)", "layers('search')"),
        ]
        for i, tab in enumerate(TABS):
            cmds.append((f"Show {TAB_TITLES[i]}", f"tab {i + 1} (F{i + 2})", f"show_tab('{tab}')"))
        for key, header, desc in COLUMNS:
            cmds.append((f"Layers: sort by {header}", "largest first" if desc else "smallest first",
                         f"layers('sort:{key}')"))
        for title, help_text, action in cmds:
            yield SystemCommand(title, help_text, partial(self.run_action, action))

    def action_refresh(self) -> None:
        self.refresh_runs()

    def _set_state(self, text: str, running: bool) -> None:
        self.pane("quantize").set_state(text, running)

    def _tick(self) -> None:
        if self.sweeper.running:
            self._set_state(f"sweeping… {fmt.seconds(self.clock() - self._sweep_t0)}", running=True)
        if self.runner.running:
            # The rows are kept, not queried: a DOM query every tick cost more than the update.
            for row in self._rows.values():
                if row.word == "running" and row.is_attached:
                    row.refresh_text()

    # --- job events ------------------------------------------------------------------

    def _log(self) -> RichLog:
        return self.query_one("#log")  # type: ignore[return-value]

    @on(JobEvent)
    def _job_event(self, message: JobEvent) -> None:
        from engine.events import (  # noqa: PLC0415 - see the note above TABS
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

        ev = message.event
        log = self._log()
        stages = self.query_one("#stages", Vertical)
        if isinstance(ev, RunStarted):
            self.run_dir = ev.run_dir
            stages.remove_children()  # QAT runs its PTQ baseline first: a new run, new rows
            self._rows.clear()
            self._set_state("running", running=True)
            folder = Path(ev.run_dir)
            log.write(f"run folder: {folder.parent.name}/{folder.name}")
        elif isinstance(ev, StageStarted):
            old = self._rows.pop(ev.stage, None)
            if old is not None:
                old.remove()
            row = StageRow(ev.stage, ev.label, ev.total, self.clock)
            self._rows[ev.stage] = row
            stages.mount(row)
            stages.call_after_refresh(stages.scroll_end, animate=False)
            log.write(f"{ev.label}…")
        elif isinstance(ev, Progress):
            row = self._rows.get("convert_int8" if ev.stage == "calibrate" else ev.stage)
            if row is not None:
                row.advance(ev.done, ev.total)
        elif isinstance(ev, StageFinished):
            row = self._rows.get(ev.stage)
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
            self.pane("quantize").show_epochs(self.qat_history, ev.metric_name)
            eta = f", ~{fmt.seconds(ev.eta_s)} left" if ev.eta_s is not None else ""
            log.write(f"epoch {ev.epoch}/{ev.epochs}: loss {ev.loss:.4f}, val {ev.metric_name} "
                      f"{fmt.num(ev.val_metric, 4)}, lr {ev.lr:g}{eta}")
        elif isinstance(ev, Log):
            log.write(f"{ev.level}: {ev.message}" if ev.level != "info" else ev.message)
        elif isinstance(ev, RunFinished):
            rep = read_report(ev.run_dir)
            if rep:
                self.show_report(rep)
            word = "PASS" if ev.verdict.get("pass") else ("FAIL" if ev.verdict else "")
            self._set_state(f"done {word}".strip(), running=True)
        elif isinstance(ev, RunFailed):
            self.failed_seen = True
            for row in self._rows.values():
                row.fail(ev.status.upper())
            log.write(f"{ev.status.upper()}: {ev.message}")
            if ev.hint:
                log.write(f"what to do: {ev.hint}")
            if ev.status == "failed":
                self._error(f"The job failed ({ev.error_type})", ev.message, ev.hint)
            rep = read_report(ev.run_dir) if ev.run_dir else None
            if rep:
                self.show_report(rep)

    @on(JobExited)
    def _job_exited(self, message: JobExited) -> None:
        if self.run_dir and (self.report.run_dir if self.report else None) != self.run_dir:
            rep = read_report(self.run_dir)
            if rep:
                self.show_report(rep)
        words = {0: "done", 2: "FAILED: bad input", 3: "CANCELLED"}
        state = words.get(message.returncode, f"FAILED (exit {message.returncode})")
        mine = self.report is not None and self.report.run_dir == self.run_dir
        if message.returncode == 0 and mine and self.report and self.report.verdict:
            state = "done " + ("PASS" if self.report.verdict.passed else "FAIL")
        self._set_state(state, running=False)
        for row in self._rows.values():
            row.fail("CANCELLED" if message.returncode == 3 else "FAILED")
        if message.returncode not in (0, 2, 3) and not self.failed_seen:
            last = (message.stderr.strip().splitlines() or ["(no message)"])[-1]
            self._error(f"The worker stopped unexpectedly (exit {message.returncode})", last,
                        "The run folder's log.txt has the details.")
        if message.returncode == 0 and self.run_dir:
            # Once the runs are read again: 6 Compare shows this run (B) against the last try (A).
            self._pending_compare = self.run_dir
        self.refresh_runs()

    # --- results ---------------------------------------------------------------------

    def show_report(self, rep: Report) -> None:
        self.report = rep
        self.pane("results").show(rep)
        # The layers table in a later turn: two shorter pauses of the UI instead of one.
        self.set_timer(0.05, partial(self._show_layers, rep))

    def _show_layers(self, rep: Report) -> None:
        if self.report is rep:
            self.pane("layers").show(rep)


def main(runs_dir: str | None = None) -> int:
    app = ArtqApp(runs_dir=runs_dir)
    app.run()
    return 0
