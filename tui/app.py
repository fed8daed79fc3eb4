"""The artq workbench: pick a job, tune it, launch it, watch it, read it, compare it, save it.

This module is the shell: the tabs, keys, palette and dialogs, the session and the runs,
and routing between panes; each pane (:mod:`tui.panes`) owns its widgets and handlers, and
the job monitor lives with 3 Quantize. Engine work happens only in ``engine.worker``
processes (:mod:`tui.jobs`, injected so tests fake them); nothing heavier than Textual is
imported before the first paint. State is never shown by colour alone.

Keys: printable letters are swallowed by a focused Input, so everything that must work
anywhere has a Ctrl or F key with ``priority=True`` (launch Ctrl+R, cancel Ctrl+T, save
Ctrl+S, open Ctrl+O, help F1, tabs F2–F7, quit Ctrl+Q); digits, q and ? act when not typing.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widgets import Header, OptionList, Select, TabbedContent, TabPane

from . import keys
from .building import BuildingMixin
from .guard import GuardedApp
from .jobs import Checker, Runner, SubprocessChecker, SweepRunner, WorkerRunner
from .panes.models import ModelsPane
from .runs import RunsMixin
from .session import RunsAsks, finished, read_report, runs_signature, sample_configs, session_text
from .settings import Session, SettingError, changes
from .widgets import KeysFooter, LateMount

if TYPE_CHECKING:
    from engine.report import Report

# Not imported here: engine.events (~15 ms), engine.rundir, RichLog (rich.pretty, ~15 ms).
# The first screen needs none; imported where used, and warmed up after the first paint.

RUNS_POLL_S = 2.0

def _make_pane(tab: str) -> Any:
    """The pane of a later tab: ``tui.panes.calibration.CalibrationPane`` for "calibration"."""
    module = importlib.import_module(f"tui.panes.{tab}")
    return getattr(module, f"{tab.capitalize()}Pane")(id=f"pane-{tab}")


class ArtqApp(BuildingMixin, RunsMixin, GuardedApp, App[int]):
    """Pick, tune, launch, watch, read, compare, save."""

    # Absolute: Textual resolves a relative CSS_PATH against the module of the subclass.
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "artq"
    SUB_TITLE = "INT8 for the STM32N6 Neural-ART NPU"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = keys.BINDINGS

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
        error_log: str | Path | None = None,
    ) -> None:
        super().__init__()
        # Animations only if TEXTUAL_ANIMATIONS asks: a tab's sliding underline was 20 frames
        # sent over SSH (benchmarks/tui_responsiveness.py measures a tab change's bytes).
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            self.animation_level = "none"
        self.runner: Runner = runner or WorkerRunner()
        self.sweeper = sweeper or SweepRunner()
        self.checker: Checker = checker or SubprocessChecker()
        self.runs_dir = Path(runs_dir) if runs_dir else Path.cwd() / "runs"
        self.samples = samples if samples is not None else sample_configs()
        self.clock = clock
        self.open_dir = Path(open_dir) if open_dir else Path.cwd()
        self.session: Session | None = None
        self.runs: list[tuple[Path, Report | None]] = []
        self.report: Report | None = None
        #: The folder of the job launched last (set by the job monitor).
        self.run_dir: str | None = None
        self.painted = False
        #: 1 Models once the first paint's deferred work is done; what waits for that.
        self._first_pane: Any = None
        self._when_built: list[Callable[[], object]] = []
        self._told: dict[str, dict[object, Callable[[Any], object]]] = {}
        self._asked_tab = "models"  # the tab a key or the app asked for last
        #: Where internal errors' tracebacks are written (the dialog names it).
        self.error_log = Path(error_log) if error_log else self.runs_dir / "tui-errors.log"
        self._runs_seen: tuple[Any, ...] = ()
        self._asks = RunsAsks()
        #: Each knob's value as its widget holds it (tui.panes.knobs): panes not built yet.
        self.knobs: dict[str, Any] = {}
        #: The tabs whose pane is built and mounted.
        self.built: set[str] = {"models"}

    # --- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="models", id="tabs"):
            for i, tab in enumerate(keys.TABS):
                with TabPane(f"{i + 1} {keys.TAB_TITLES[i]}", id=tab):
                    # Hidden panes are imported and mounted on their first visit
                    # (tui/building.py): the first screen is out in a third of the time.
                    if i == 0:
                        yield ModelsPane(id="pane-models")
                    else:
                        yield LateMount(partial(_make_pane, tab), id=f"late-{tab}")
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
        self.query_one("#picker", OptionList).focus()
        # The runs (JSON reads) and the config validator (pydantic) wait for the first paint.
        self.set_timer(1.0, self._reveal_panes)  # in case the footer never says so

    @on(KeysFooter.Ready)
    def _reveal_panes(self) -> None:
        """The first screen is out: do the work deferred past it (the other tabs are built
        on their first visit)."""
        if self.painted:
            return
        self.painted = True
        # A thread, but parsing reports holds the GIL: started before, it delayed the
        # first screen by its length (thirty reports ~0.1 s).
        self.refresh_runs()
        # Runs made elsewhere (artq run in another terminal) show up without a restart.
        self._runs_seen = runs_signature(self.runs_dir)
        self.set_interval(RUNS_POLL_S, self._poll_runs)
        self._first_pane = self.pane("models")
        for callback in self._when_built:  # a session or the runs read meanwhile
            callback()
        self._when_built.clear()
        self._warm_imports()  # ends with gc.freeze() of all that is mounted by now
        self.pane("models").preview_highlighted()

    @work(thread=True, group="warm")
    def _warm_imports(self) -> None:
        # Pay these imports off the UI thread: pydantic for configs (~0.3 s), and the NPU
        # rule table behind the layer detail pane (~0.15 s, it brings the .tflite reader).
        # Also the typed report every pane reads, and the dialogs (with Textual's file tree).
        for name in ("engine.config", "engine.events", "engine.npu.rules", "engine.protocol",
                     "engine.report", "engine.rundir", "tui.screens"):
            importlib.import_module(name)

        # Measured: with the app's widgets, styles and these modules in the heap, a full
        # garbage collection took 100-135 ms, a visible stall while a job runs. What exists
        # now lives as long as the app: move it out of the collector's scans.
        self.call_from_thread(gc.freeze)

    def pane(self, tab: str) -> Any:
        return self.query_one(f"#pane-{tab}")  # typed loosely: imported after the first paint

    @on(TabbedContent.TabActivated)
    async def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id or ""
        if tab not in self.built:  # every pane but 1 Models is built on its first visit
            await self._build(tab)
            tabs = self.query_one(TabbedContent)
            # A focus moved by a key typed just before may have taken the old tab back.
            if self._asked_tab == tab:
                tabs.active = tab
            if tabs.active == tab:
                self._focus_tab(tab)

    # --- opening -------------------------------------------------------------------

    def open_config(self, path: Path, go: bool = False, fixed: dict[str, Any] | None = None,
                    template: bool = False) -> None:
        """Make ``path`` the session's job config (in a thread: validation imports pydantic)."""
        self.pane("models").show(f"config       {path}\n\nreading…")
        self._load_session(path, go, fixed or {}, template)

    @work(thread=True, exclusive=True, group="session")
    def _load_session(self, path: Path, go: bool, fixed: dict[str, Any], template: bool) -> None:
        from engine.errors import EngineError  # noqa: PLC0415

        from .session import load_session  # noqa: PLC0415

        try:
            session = load_session(path, fixed, template)
        except EngineError as exc:
            self.call_from_thread(self.show_error, "This config cannot be used", exc.message, exc.hint)
            self.call_from_thread(self.pane("models").show,
                                  f"config       {path}\n\nCannot use this config:\n{exc}")
            return
        self.call_from_thread(self.when_panes_ready, partial(self._session_loaded, session, go))

    def _session_loaded(self, session: Session, go: bool) -> None:
        self.session = session
        self.sub_title = f"{session.name} ({session.config_path.name})"
        from .panes.knobs import write_all  # noqa: PLC0415 - after the first paint

        write_all(self.screen_stack[0], self.knobs, session.base)  # the panes' screen
        self.pane("models").show(session_text(session))
        if session.model and not session.model.get("exists"):
            self.notify(f"The model file is missing: {session.model.get('path')}", title="Model missing",
                        severity="warning", timeout=8)

        def load(pane: Any) -> None:  # now, or on 2 Calibration's first visit
            pane.load_session(session)
            pane.check()

        self.with_pane("calibration", load, latest="session")
        if (warm_up := getattr(self.runner, "warm_up", None)) is not None:  # while one tunes
            self.run_worker(warm_up(session.model, session.config), group="warm-up")
        if go:
            self.action_show_tab("calibration")

    def open_run(self, path: Path) -> None:
        if (path / "sweep.json").is_file():
            self.with_pane("compare", lambda pane: pane.pick_sweep(path))
            self.action_show_tab("compare")
            return
        rep = read_report(path)
        if rep is None:
            self.show_error("This run never finished", f"{path} has no report.json.",
                            "Its log.txt says how far it got.")
            return
        self.show_report(rep)
        others = [p for p in finished(self.runs) if p != str(path)]
        if others:
            self.with_pane("compare", lambda pane: pane.compare(others[0], str(path)))
        self.action_show_tab("results")

    def action_open(self) -> None:
        self.pane("models").open_dialog(self.open_dir)

    def action_tune_run(self) -> None:
        """Use the highlighted run's config (as it ran) as the session."""
        self.pane("models").tune_run()

    # --- tabs, help, dialogs -----------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        self._asked_tab = tab
        self.query_one(TabbedContent).active = tab
        # Now, so keys typed right after the tab key reach the pane; again after the refresh
        # if the pane was not displayed yet, unless a key moved the focus since (a Tab typed
        # at once was undone, seen in a loaded CI run).
        self._focus_tab(tab)
        self.call_after_refresh(self._focus_tab, tab, self.focused)

    def _focus_tab(self, tab: str, unless_moved_from: Any = None) -> None:
        # set_focus, not w.focus(): that one is deferred, and keys typed right after the tab
        # key went to the old focus (seen in tmux with "1 ↓ Enter").
        if unless_moved_from is None or self.focused is unless_moved_from:
            # A pane not built yet has nothing to focus (it takes the focus once built), and
            # the focus must not stay on a hidden tab: Textual shows that tab again.
            self.set_focus(next((w for w in self.query(keys.TAB_FOCUS[tab]) if w.focusable), None))

    def action_focus_pane(self) -> None:
        self._focus_tab(self.query_one(TabbedContent).active or "models")

    def action_help(self) -> None:
        from .screens import HelpScreen  # noqa: PLC0415 - opened on demand

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(keys.HELP_SECTIONS))

    def show_error(self, title: str, message: str, hint: str = "") -> None:
        from .screens import ErrorDialog  # noqa: PLC0415 - opened on demand

        self.push_screen(ErrorDialog(title, message, hint))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action in the palette, by name (the footer has room for the main ones)."""
        yield from (c for c in super().get_system_commands(screen) if c.title not in keys.COVERED)
        for title, help_text, action in keys.commands():
            yield SystemCommand(title, help_text, partial(self.run_action, action))

    def action_layers(self, what: str) -> None:
        """Palette entry points into 5 Layers (sort KEY / reverse / cpu / suspect / search)."""
        self.with_pane("layers", lambda pane: pane.palette(what))
        self.action_show_tab("layers")

    # --- settings --------------------------------------------------------------------

    def overrides(self) -> dict[str, Any]:
        """The session's changes; raises SettingError naming a knob that does not parse."""
        from .panes.knobs import read_all  # noqa: PLC0415 - after the first paint

        assert self.session is not None
        # The panes' screen: Ctrl+R over the help or a dialog read the knobs off that one.
        tuned = changes(self.session.base, read_all(self.screen_stack[0], self.knobs))
        # Data sources not shown yet are the config's.
        data = self.pane("calibration").data_overrides() if "calibration" in self.built else {}
        return {**self.session.fixed, **tuned, **data}

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

    def tuned(self, verb: str) -> dict[str, Any] | None:
        """The session's overrides, or None after a dialog saying which does not parse."""
        try:
            return self.overrides()
        except SettingError as exc:
            self.show_error("A setting does not parse", str(exc), f"Correct the field and {verb}.")
            return None

    def action_check_data(self) -> None:
        if "calibration" in self.built:
            self.pane("calibration").check()
        else:
            self.action_show_tab("calibration")  # its first visit checks the data

    @on(Select.Changed, "#k-quantization--method")
    def _method_changed(self) -> None:
        if "calibration" in self.built:  # QAT reads training data: its editors show
            self.pane("calibration").show_splits()

    def action_save(self) -> None:
        self.after_typing(self._save)

    def _save(self) -> None:
        from .savejob import save_tuned  # noqa: PLC0415 - on demand

        save_tuned(self)

    # --- jobs: the Quantize pane starts and watches them -------------------------------

    def _job(self, tell: Callable[[Any], object]) -> None:
        """``tell(pane)`` of 3 Quantize, which runs every job: built now if it is not yet."""
        self.with_pane("quantize", tell, build=True)

    def action_launch(self) -> None:
        self.after_typing(lambda: self._job(
            lambda pane: self.run_worker(pane.launch_tuned(), group="launch")))

    def action_resume(self) -> None:
        """Resume the QAT run highlighted in 1 Models from its last epoch checkpoint."""
        picked = self.pane("models").picked_run
        self._job(lambda pane: pane.resume_picked(picked))

    async def action_cancel(self) -> None:
        if "quantize" in self.built:  # else no job was ever started here
            self.pane("quantize").cancel()
        else:
            self.notify("No job is running.")

    def action_sweep(self) -> None:
        """Run a sweep on the tuned settings; its table and chart land in 6 Compare."""
        self.after_typing(lambda: self._job(lambda pane: pane.sweep_dialog()))

    async def action_quit(self) -> None:
        if self.runner.running or self.sweeper.running:
            # A keypress must not end a job of many minutes: ask (tui.newjob.ConfirmScreen).
            from .newjob import ConfirmScreen  # noqa: PLC0415 - opened on demand

            if not isinstance(self.screen, ConfirmScreen):
                self.push_screen(ConfirmScreen(
                    "Quit while a job runs?", "Quitting cancels the running job (its run is "
                    "marked cancelled). Esc keeps it running.", "Cancel the job and quit"),
                    lambda yes: self.run_worker(self._quit()) if yes else None)
            return
        await self._quit()

    async def _quit(self) -> None:
        if self.runner.running:
            self.notify("Cancelling the running job before quitting…")
            await self.runner.cancel()
        if self.sweeper.running:
            await self.sweeper.cancel()
        await self._close_runner()
        self.exit(0)

    async def _close_runner(self) -> None:
        if (close := getattr(self.runner, "close", None)) is not None:  # a warm worker
            await close()

    async def on_unmount(self) -> None:
        await self._close_runner()  # however the app ends


def run(app: ArtqApp, **run_options: Any) -> int:
    """Run the workbench until it ends; its exit status: nonzero, and said, when it ended on
    an error (Textual has printed the traceback above)."""
    app.run(**run_options)
    code = app.return_code or 0
    if code:
        print(f"artq: the workbench stopped on an internal error (exit status {code}); "
              f"the traceback is above and in {app.error_log}", file=sys.stderr)
    return code


def main(runs_dir: str | None = None) -> int:
    return run(ArtqApp(runs_dir=runs_dir))
