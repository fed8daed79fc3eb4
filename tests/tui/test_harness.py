"""What the TUI tests' harness (tests/textual_harness.py) keeps of Textual's behaviour though it
skips drawing frames, asks only busy widgets to answer the pilot's waits and checks for idle
in short steps."""

from __future__ import annotations

import asyncio

import pytest
from fakes import settle
from textual.app import App, ComposeResult
from textual.css.stylesheet import StylesheetParseError
from textual.css.tokenizer import TokenError
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Static
from textual_harness import quiet


class Fragile(Static):
    """Sized by its CSS, so only a frame renders it (a layout asks auto sizes of render)."""

    DEFAULT_CSS = "Fragile { width: 10; height: 1; }"
    broken = False

    def render(self) -> str:
        if self.broken:
            raise RuntimeError("this render broke")
        return "fine"


class OneWidget(App[None]):
    def compose(self) -> ComposeResult:
        yield Fragile()


async def test_a_render_that_raises_still_fails_the_test() -> None:
    with pytest.raises(RuntimeError, match="this render broke"):
        async with OneWidget().run_test(size=(20, 3)) as pilot:
            widget = pilot.app.query_one(Fragile)
            widget.broken = True
            widget.refresh()
            await pilot.pause()


async def test_a_snapshot_still_draws_the_whole_screen() -> None:
    async with OneWidget().run_test(size=(20, 3)) as pilot:
        await pilot.pause()
        assert "fine" in pilot.app.export_screenshot()


class Slow(Static):
    """Handles a message in two turns of the loop, as a handler that awaits does."""

    DEFAULT_CSS = "Slow { width: 10; height: 1; }"

    class Poke(Message):
        pass

    handled = 0

    async def on_slow_poke(self) -> None:
        await asyncio.sleep(0.05)
        self.handled += 1


class TwoWidgets(App[None]):
    def compose(self) -> ComposeResult:
        yield Fragile()
        yield Slow()


async def test_a_pause_waits_for_every_message_queued_before_it() -> None:
    async with TwoWidgets().run_test(size=(20, 3)) as pilot:
        await pilot.pause()
        slow = pilot.app.query_one(Slow)
        for _ in range(3):
            slow.post_message(Slow.Poke())
        await pilot.pause()  # the other widget has nothing queued; this one three messages
        assert slow.handled == 3
        slow.post_message(Slow.Poke())
        await asyncio.sleep(0.01)  # it is in its handler now, with nothing queued
        await pilot.pause()
        assert slow.handled == 4


async def test_settle_ends_only_when_the_app_is_quiet() -> None:
    async with TwoWidgets().run_test(size=(20, 3)) as pilot:
        await settle(pilot)
        assert quiet(pilot.app)
        slow = pilot.app.query_one(Slow)
        slow.post_message(Slow.Poke())
        assert not quiet(pilot.app)  # a message queued
        await settle(pilot)
        assert slow.handled == 1 and quiet(pilot.app)
        slow.styles.height = 2
        assert not quiet(pilot.app)  # a layout to come
        await settle(pilot)
        assert quiet(pilot.app) and slow.region.height == 2
        # A resize: handled at once, laid out by a timer 1/120 s later.
        app, size = pilot.app, Size(30, 4)
        app._driver._size = size  # type: ignore[union-attr]  # the headless driver's
        app.post_message(Resize(size, size))
        while app._resize_timer is None:
            await asyncio.sleep(0)
        assert not quiet(app)
        await settle(pilot)
        assert quiet(app) and app.screen.size == size


class Themed(App[None]):
    CSS = "Fragile { background: $primary; }"

    def __init__(self, theme: str) -> None:
        super().__init__()
        self.theme = theme

    def compose(self) -> ComposeResult:
        yield Fragile()


async def test_css_parsed_once_still_follows_the_theme_and_fails_when_wrong() -> None:
    seen = {}
    for theme in ("textual-dark", "textual-light", "textual-dark"):
        async with Themed(theme).run_test(size=(20, 3)) as pilot:
            await pilot.pause()
            background = pilot.app.query_one(Fragile).styles.background
            assert seen.setdefault(theme, background) == background
    assert seen["textual-dark"] != seen["textual-light"]
    async with Themed("textual-dark").run_test(size=(20, 3)) as pilot:
        pilot.app.theme = "textual-light"  # the same app: its variables change
        await pilot.pause()
        assert pilot.app.query_one(Fragile).styles.background == seen["textual-light"]

    class Misspelt(Themed):
        CSS = "Fragile { backgrund: red; }"

    class Unfinished(Themed):
        CSS = "Fragile { background: red;"

    # A rule in error is kept with its error, a parse that raised is not: each app fails.
    for wrong in (Misspelt, Misspelt, Unfinished, Unfinished):
        with pytest.raises((StylesheetParseError, TokenError)):
            async with wrong("textual-dark").run_test(size=(20, 3)):
                pass
