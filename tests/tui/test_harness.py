"""What the TUI tests' harness (tests/conftest.py) promises though it skips drawing frames."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static


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
