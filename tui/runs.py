"""The runs folder in the workbench: read in a thread, polled for runs made elsewhere, and
shown in 1 Models, 6 Compare, and (a run's report) 4 Results and 5 Layers."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work

from .session import RunsAsks, read_report, runs_signature

if TYPE_CHECKING:
    from engine.report import Report

RECENT_RUNS = 30


class RunsMixin:
    """The app's runs: ``runs`` (folder, report), newest first, and the report shown."""

    runs_dir: Path
    samples: list[Path]
    runs: list[tuple[Path, Report | None]]
    report: Report | None
    _asks: RunsAsks
    _runs_seen: tuple[Any, ...]
    # The app's own (ArtqApp, textual.App).
    pane: Any
    when_panes_ready: Any
    with_pane: Any
    ready_to_show: Any
    action_show_tab: Any
    call_from_thread: Any
    set_timer: Any

    def refresh_runs(self, pending: str | None = None, new_sweep: bool = False) -> None:
        """Read the runs folder again (``pending``: a run just done, to compare; ``new_sweep``:
        a sweep just done, to show)."""
        self._read_runs(self._asks.ask(pending, new_sweep))

    @work(thread=True, exclusive=True, group="runs")
    def _read_runs(self, read: int) -> None:
        from engine.rundir import list_runs  # noqa: PLC0415 - not before the first paint

        runs = [(p, read_report(p)) for p in list_runs(self.runs_dir)[:RECENT_RUNS]]
        sweeps = [p for p, _ in runs if (p / "sweep.json").is_file()]
        self.call_from_thread(self.when_panes_ready, partial(self._runs_loaded, read, runs, sweeps))

    def _poll_runs(self) -> None:
        seen = runs_signature(self.runs_dir)
        if seen != self._runs_seen:
            self._runs_seen = seen
            self.refresh_runs()

    def _runs_loaded(self, read: int, runs: list[tuple[Path, Report | None]], sweeps: list[Path]) -> None:
        if read != self._asks.read:
            return  # a newer read is on its way (a cancelled thread still ends)
        pending, new_sweep = self._asks.take()
        self.runs = runs
        self.pane("models").fill(self.samples, runs)

        def tell(pane: Any) -> None:
            if pane.runs_loaded(runs, sweeps, pending, new_sweep):
                self.action_show_tab("compare")

        # A sweep just done is shown (built now).
        self.with_pane("compare", tell, build=new_sweep, latest="runs")

    def action_refresh(self) -> None:
        self.refresh_runs()

    def action_compare_swap(self) -> None:
        self.with_pane("compare", lambda pane: pane.swap())

    def action_compare_latest(self) -> None:
        self.with_pane("compare", lambda pane: pane.compare_latest(self.runs)
                       and self.action_show_tab("compare"), build=True)

    def show_report(self, rep: Report) -> None:
        """A run's report in 4 Results, then 5 Layers."""
        self.report = rep
        self.with_pane("results", lambda pane: pane.show(rep), latest="report")
        # The layers table in a later turn: two shorter pauses of the UI instead of one.
        self.set_timer(0.05, partial(self._show_layers, rep))

    def _show_layers(self, rep: Report) -> None:
        if self.report is rep and self.ready_to_show():
            self.with_pane("layers", lambda pane: pane.show(rep), latest="report")
