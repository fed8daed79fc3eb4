"""A Select that costs one widget until it is opened.

Textual's Select is five widgets: the current value (a row of three Statics) and a hidden
OptionList. The app has about twenty, so they were a third of its widgets, and every widget
adds to each restyle, layout and start (measured: a start with them stripped took 15–25 %
less). Here the current value is drawn by one widget, and the list is mounted the first
time it is opened. Values, options, keys, clicks and the Changed message are Select's.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.css.query import NoMatches
from textual.widgets import Select
from textual.widgets._select import NoSelection, SelectCurrent, SelectOverlay


class ChoiceCurrent(SelectCurrent):
    """The current value and the arrow, drawn as one line."""

    def compose(self):  # type: ignore[no-untyped-def]  # no child widgets
        yield from ()

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return 1  # a container with no children would be 0 lines high

    def update(self, label: Any) -> None:
        self.label = label
        self.has_value = label is not Select.NULL
        self.refresh()

    def render(self) -> Text:
        label = self.placeholder if isinstance(self.label, NoSelection) else self.label
        line = label.copy() if isinstance(label, Text) else Text(str(label))
        line.truncate(max(self.content_size.width - 2, 0), pad=True)  # the arrow keeps its place
        if not self.has_value:
            line.stylize("dim")  # Select draws the prompt at half strength, and the arrow
        expanded = self.parent is not None and self.parent.has_class("-expanded")
        return line + Text(" ▲" if expanded else " ▼", style="dim")

    async def _on_click(self, event: events.Click) -> None:
        event.stop()
        event.prevent_default()  # not SelectCurrent's Toggle: the list may not be there yet
        choice = self.parent
        if isinstance(choice, Choice):
            if choice.expanded:
                choice.expanded = False
            else:
                await choice.action_show_overlay()


class Choice(Select[Any]):
    """Select, with its option list mounted on first opening."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield ChoiceCurrent(self.prompt)

    def _overlay(self) -> SelectOverlay | None:
        try:
            return self.query_one(SelectOverlay)
        except NoMatches:
            return None

    def _setup_options_renderables(self) -> None:
        if self._overlay() is not None:
            super()._setup_options_renderables()

    def _watch_value(self, value: Any) -> None:
        # Select's, less the list's highlight: the list may not be there, and opening it
        # highlights the value anyway (_watch_expanded).
        self._value = value
        try:
            current = self.query_one(SelectCurrent)
        except NoMatches:
            return
        current.update(next((p for p, v in self._options if v == value), self.NULL)
                       if value != self.NULL else self.NULL)
        self.post_message(self.Changed(self, value))

    def _watch_expanded(self, expanded: bool) -> None:
        super()._watch_expanded(expanded)
        self.query_one(SelectCurrent).refresh()  # the arrow turns

    def _watch_prompt(self, prompt: str) -> None:
        if self._overlay() is not None:  # Select's would look for the list

            super()._watch_prompt(prompt)
        elif self.is_mounted:
            current = self.query_one(SelectCurrent)
            current.placeholder = prompt
            current.refresh()

    async def action_show_overlay(self) -> None:
        if self._overlay() is None:
            overlay = SelectOverlay(type_to_search=self._type_to_search)
            overlay.compact = self.compact  # Select binds it in compose; set once here
            await self.mount(overlay)
            self._setup_options_renderables()
        super().action_show_overlay()
