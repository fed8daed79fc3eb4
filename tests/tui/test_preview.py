"""ImagePreview: the tiles are drawn once per picture and width, and drawn again when the
pictures or the width change (a stale drawing would show the last check's data)."""

from __future__ import annotations

from fakes import settle
from textual.app import App, ComposeResult

from tui.widgets import ImagePreview


class One(App[None]):
    def compose(self) -> ComposeResult:
        yield ImagePreview(id="preview")


def flat(level: float, h: int = 16, w: int = 16) -> list[list[float]]:
    return [[level] * w for _ in range(h)]


async def test_drawn_once_per_width_and_again_for_new_pictures() -> None:
    app = One()
    async with app.run_test(size=(40, 20)) as pilot:
        preview = app.query_one(ImagePreview)
        tiles = [0]
        tile = preview._tile

        def counting(img: list[list[float]], mono: bool) -> list:  # type: ignore[type-arg]
            tiles[0] += 1
            return tile(img, mono)

        preview._tile = counting  # type: ignore[method-assign]
        preview.set_images([flat(0.0), flat(1.0)], ["dark", "light"], "note")
        await pilot.pause()
        first = preview.render().plain
        # Two 16×16 pictures are tiles of 8 lines × 16 columns: side by side in 40 columns,
        # with their captions and the note below.
        assert first.splitlines()[8].split() == ["dark", "light"] and first.endswith("note")
        assert len(first.splitlines()) == 10
        # Laid out and painted (each asks for the lines): each tile drawn once.
        assert tiles[0] == 2
        assert preview.render().plain == first and tiles[0] == 2

        # New pictures: the old drawing is not shown.
        preview.set_images([flat(1.0)], ["other"], "")
        await pilot.pause()
        again = preview.render().plain
        assert "other" in again and "dark" not in again and tiles[0] == 3

        # 20 columns hold one tile a row: drawn again for that width, one under the other.
        preview.set_images([flat(0.0), flat(1.0)], ["a", "b"], "")
        await pilot.resize_terminal(20, 20)
        await settle(pilot)  # the resize lands a tick later than the pause
        lines = preview.render().plain.splitlines()
        assert len(lines) == 18 and lines[8].strip() == "a" and lines[17].strip() == "b"
