"""Building the workbench's panes: 1 Models at once, every other on its tab's first visit
(or, for 3 Quantize, a job's start), with the session's knob values; and what waits for
them meanwhile. 2 Calibration is half the app's widgets, and its data check a process: a
session that never shows a pane pays for none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.widgets import Checkbox, Input, Select

from .widgets import LateMount


class BuildingMixin:
    """The app's panes: ``built`` (tabs), what a pane not built yet was told (``_told``),
    and what waits for the first paint's deferred work (``_when_built``)."""

    knobs: dict[str, Any]
    built: set[str]
    _told: dict[str, dict[object, Callable[[Any], object]]]
    _first_pane: Any
    _when_built: list[Callable[[], object]]
    # The app's own (ArtqApp, textual.App).
    pane: Any
    query: Any
    query_one_optional: Any
    prevent: Any
    run_worker: Any
    screen_stack: Any
    is_running: bool

    async def _build(self, tab: str) -> None:
        """Build and mount the pane of ``tab`` if it is not yet, with the knobs' values, then
        tell it what it was told meanwhile."""
        # Built with a session: its fields' first values are not edits (a Changed message
        # each re-checked the data).
        quiet = (Select.Changed, Input.Changed, Checkbox.Changed) if tab == "calibration" else ()
        with self.prevent(*quiet):
            late = self.query(f"#late-{tab}")
            if not late or not await late.first(LateMount).reveal():
                return
        if not self.is_running:  # the app closed while the pane was built: nothing to tell
            return
        self.built.add(tab)
        from .panes.knobs import show_all  # noqa: PLC0415 - after the first paint

        show_all(self.pane(tab), self.knobs)
        for tell in self._told.pop(tab, {}).values():
            tell(self.pane(tab))

    def with_pane(self, tab: str, tell: Callable[[Any], object], build: bool = False,
                  latest: str | None = None) -> None:
        """``tell(pane)`` now if the pane of ``tab`` is built, else once it is (``build``:
        build it now); never if the app closes first. ``latest`` names what only the last
        telling matters for (the report shown, the runs read): an earlier one waiting is
        dropped, so a pane first shown after many runs is told once."""
        if tab not in self.built:
            told = self._told.setdefault(tab, {})
            key: object = latest if latest is not None else object()
            told.pop(key, None)  # told again: in its new place in the order
            told[key] = tell
            if build:
                self.run_worker(self._build(tab), group="build")
        elif (pane := self.query_one_optional(f"#pane-{tab}")) is not None:
            tell(pane)

    def knob(self, key: str) -> Any:
        """A knob's value, whether or not its pane is built."""
        from .panes.knobs import read_one  # noqa: PLC0415 - after the first paint

        return read_one(self.screen_stack[0], self.knobs, key)

    def panes_ready(self) -> bool:
        """Whether the first paint's deferred work is done, and the app not closing (its
        panes removed)."""
        return self._first_pane is not None and self._first_pane.is_attached

    def when_panes_ready(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` now if the panes are ready, else once they are (never if the
        app closes first)."""
        if self.panes_ready():
            callback()
        elif self._first_pane is None:
            self._when_built.append(callback)

    def ready_to_show(self) -> bool:
        """Whether what a timer or worker brings late can be shown: panes mounted, app not
        closing (late news met removed panes as one quit: an internal-error dialog)."""
        return self.is_running and self.panes_ready()
