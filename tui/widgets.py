"""Widgets shared by the panes: stage rows, toggles, the footer, late mounting, previews.

The dialogs are in tui/screens.py.

Self-contained widgets keep their layout in DEFAULT_CSS (the app's look is in app.tcss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Footer, Static

from . import format as fmt

Clock = Callable[[], float]


class StageRow(Static):
    """One stage of the running job on one line: mark and name, bar and counts, elapsed and
    time left. The mark is paired with words (✓ done, ▶ running, · queued (a sweep's variant
    not started yet), ✗ FAILED/CANCELLED), so nothing depends on colour.

    One widget, not a row of three: while a job runs every extra widget makes each screen
    layout slower, and the UI's budget is a few milliseconds per event (profiled).
    """

    DEFAULT_CSS = "StageRow { height: 1; width: 1fr; }"
    NAME_W = 32
    STATE_W = 24

    def __init__(self, stage: str, label: str, total: int | None, clock: Clock) -> None:
        super().__init__(id=f"stage-{stage}", markup=False)
        self.stage = stage
        self.label = label
        self.total = total
        self.done_n = 0
        self.clock = clock
        self.t0 = clock()
        self.seconds: float | None = None
        self.word = "running"
        #: (epoch, epochs, batch, batches) of a stage run in epochs (QAT fine-tuning).
        self.epoch: tuple[int, int, int, int] | None = None

    def on_mount(self) -> None:
        self.refresh_text()

    def on_resize(self) -> None:
        self.refresh_text()

    def advance(self, done: int, total: int | None,
                epoch: tuple[int, int, int, int] | None = None) -> None:
        self.done_n, self.total = done, total or self.total
        self.epoch = epoch
        self.refresh_text()

    @property
    def shown_done(self) -> int:
        """Done, never past the total: a count over it read as ``344/250``."""
        return min(self.done_n, self.total) if self.total else self.done_n

    def finish(self, seconds: float) -> None:
        self.seconds = seconds
        self.word = "done"
        if self.total:
            self.done_n = self.total
        self.refresh_text()

    def fail(self, word: str) -> None:
        if self.word in ("running", "queued"):
            self.word = word
            self.refresh_text()

    @property
    def name_text(self) -> str:
        mark = {"done": "✓", "running": "▶", "queued": "·"}.get(self.word, "✗")
        room = self.NAME_W - 3
        label = self.label if len(self.label) <= room else self.label[: room - 1] + "…"
        return f"{mark} {label}"

    @property
    def state_text(self) -> str:
        if self.word == "done":
            return f"done {fmt.seconds(self.seconds)}"
        if self.word != "running":
            return self.word
        elapsed = max(self.clock() - self.t0, 0.0)
        left = ""
        if self.total and self.done_n:
            # Never negative: past the total the stage is finishing, not early.
            rest = max(self.total - self.done_n, 0)
            left = f", {fmt.seconds(elapsed / self.done_n * rest)} left"
        return f"{fmt.seconds(elapsed)}{left}"

    @property
    def bar_text(self) -> str:
        counts = f" {self.shown_done}/{self.total}" if self.total else ""
        if self.epoch and self.word == "running":
            # One epoch's batches per epoch; the bar and the time left are the whole stage's.
            e, es, b, bs = self.epoch
            counts = f" epoch {e}/{es} {min(b, bs)}/{bs}"
        width = (self.size.width or 80) - self.NAME_W - self.STATE_W - 2
        frac = self.shown_done / self.total if self.total else (1.0 if self.word == "done" else 0.0)
        return fmt.bar(frac, max(width - len(counts), 4)) + counts

    def refresh_text(self) -> None:
        # layout=False: the row's size never changes, and a layout of the whole screen per
        # progress event cost ~40 ms of the UI's time (profiled during a real job).
        line = (f"{self.name_text:<{self.NAME_W}}{self.bar_text} "
                f"{self.state_text:>{self.STATE_W}}")
        self.update(line, layout=False)


class Toggle(Checkbox):
    """A checkbox whose state is a character, ``[x]`` on and ``[ ]`` off, not only a colour:
    Textual's own draws the same mark either way and tells on from off by colour, which
    NO_COLOR erases (an unchecked INT8 looked checked)."""

    BUTTON_LEFT, BUTTON_RIGHT = "[", "]"

    @property
    def _button(self) -> Any:
        self.BUTTON_INNER = "x" if self.value else " "
        return super()._button

    def render(self) -> Any:
        content = super().render()
        if not self.has_focus:
            return content
        # The focused label in reverse video, which a monochrome terminal keeps (the theme's
        # focus is a background colour; a reverse text-style in CSS does not reach it).
        from textual.style import Style  # noqa: PLC0415

        start = len(self._button.plain)
        return content.stylize(Style(reverse=True, bold=True), start, len(content.plain))


class QuietFocus:
    """Mixin for a pane: its focus changes its own style only.

    Textual restyles a widget and everything under it when the widget gains or loses focus;
    for 2 Calibration that is some 250 widgets on every tab switch (about 30 ms of a 2-core
    machine, measured in the pilot tests' profile), though no rule of the app styles a
    pane's children by the pane's focus."""

    def watch_has_focus(self, _has_focus: bool) -> None:
        self.app.stylesheet.update_nodes([self], animate=True)  # type: ignore[attr-defined]


class LateMount(Widget):
    """Stands in for a pane until the app needs it, then builds and mounts it.

    ``textual.lazy.Lazy`` mounts right after the first refresh, which held the footer's keys
    back by a second (the footer is drawn in a later refresh); and it needs the widget built
    at compose time, so its module imported before the first paint. This takes a factory;
    the app calls :meth:`reveal` when the tab is first shown, or a job needs the pane.
    """

    DEFAULT_CSS = "LateMount { display: none; }"

    def __init__(self, factory: Callable[[], Widget], id: str | None = None) -> None:
        self._factory = factory
        self._revealed = False
        super().__init__(id=id)

    async def reveal(self) -> bool:
        """Build the widget in this one's place: True from the one call that did (a second
        call while the first awaits the mount is False at once)."""
        parent = self.parent
        if parent is None or not self.is_attached or self._revealed:
            return False
        self._revealed = True
        await parent.mount(self._factory(), after=self)
        await self.remove()
        return True


class KeysFooter(Footer):
    """The footer, saying once when it first shows keys: the first screen is complete."""

    class Ready(Message):
        pass

    _announced = False
    _shown: tuple[Any, ...] | None = None

    def _keys(self) -> tuple[Any, ...]:
        """What the footer's content is made of: the screen's bindings and the footer's own
        switches."""
        return (self.compact, self.show_command_palette, *(
            (key, b.action, b.description, b.show, enabled, tip)
            for key, (_, b, enabled, tip) in self.screen.active_bindings.items()))

    async def recompose(self) -> None:
        # Textual's footer rebuilds all its keys whenever the bindings may have changed,
        # each time a mount, a restyle and a layout: up to eight times before the first
        # screen was out (measured); rebuilding only when they did makes that one.
        if self._bindings_ready and self.is_attached:
            keys = self._keys()
            if keys == self._shown and self.children:
                return
            self._shown = keys
        await super().recompose()
        if self.children and not self._announced:
            self._announced = True
            # Said once the keys are on screen: what follows it must not delay that frame.
            self.call_after_refresh(self.post_message, self.Ready())


class ImagePreview(Widget):
    """A few preprocessed samples drawn with text: half blocks in grey, or shade characters
    when colour is off (NO_COLOR), so the picture survives a monochrome terminal."""

    DEFAULT_CSS = "ImagePreview { height: auto; }"
    RAMP = " .:-=+*#%@"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.images: list[list[list[float]]] = []  # rows of pixels in [0, 1] (no numpy here)
        self.captions: list[str] = []
        self.note = "No preview yet."
        # The drawn lines by (width, monochrome). Each layout of the pane asks for the height
        # and each paint for the lines: drawing the tiles again every time was measured at 18
        # times per session opened, and again on every key typed in the pane.
        self._drawn: dict[tuple[int, bool], list[Text]] = {}

    def set_images(self, images: list[Any], captions: list[str], note: str = "") -> None:
        self.images, self.captions, self.note = images, captions, note
        self._drawn.clear()
        self.refresh(layout=True)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._lines(width or 80))

    def render(self) -> Text:
        text = Text()
        for i, line in enumerate(self._lines(self.size.width or 80)):
            if i:
                text.append("\n")
            text.append_text(line)
        return text

    def _lines(self, width: int) -> list[Text]:
        if not self.images:
            return [Text(self.note)]
        mono = bool(getattr(self.app, "no_color", False)) or self.app.theme.startswith("ansi")
        if (width, mono) not in self._drawn:
            self._drawn[(width, mono)] = self._draw(width, mono)
        return self._drawn[(width, mono)]

    def _draw(self, width: int, mono: bool) -> list[Text]:
        tiles = [self._tile(img, mono) for img in self.images]
        out: list[Text] = []
        row: list[tuple[list[Text], str]] = []
        used = 0
        for tile, cap in zip(tiles, self.captions, strict=False):
            w = len(tile[0].plain) if tile else 0
            if row and used + w + 2 > width:
                out += self._join(row)
                row, used = [], 0
            row.append((tile, cap))
            used += w + 2
        if row:
            out += self._join(row)
        if self.note:
            out.append(Text(self.note))
        return out

    @staticmethod
    def _join(row: list[tuple[list[Text], str]]) -> list[Text]:
        height = max(len(t) for t, _ in row)
        lines = []
        for r in range(height):
            line = Text()
            for tile, _ in row:
                w = len(tile[0].plain)
                line.append_text(tile[r] if r < len(tile) else Text(" " * w))
                line.append("  ")
            lines.append(line)
        caps = Text()
        for tile, cap in row:
            w = len(tile[0].plain)
            caps.append(cap[:w].ljust(w) + "  ")
        lines.append(caps)
        return lines

    def _tile(self, img: Any, mono: bool) -> list[Text]:
        """One image scaled to at most 8 rows × 64 columns (a cell is two pixels tall),
        keeping its aspect (a 32×128 text crop stays four times wider than tall)."""
        h, w = len(img), len(img[0]) if img else 0
        if not h or not w:
            return [Text("")]
        rows = min(8, max(1, h // 2))
        cols = max(1, int(round(w * rows * 2 / h)))
        if cols > 64:
            cols = 64
            rows = max(1, int(round(cols * h / (2 * w))))
        ys = [min(h - 1, int((r + 0.5) * h / (rows * 2))) for r in range(rows * 2)]
        xs = [min(w - 1, int((c + 0.5) * w / cols)) for c in range(cols)]
        lines = []
        for r in range(rows):
            line = Text()
            top, bot = img[ys[2 * r]], img[ys[2 * r + 1]]
            for x in xs:
                a, b = float(top[x]), float(bot[x])
                if mono:
                    line.append(self.RAMP[min(int((a + b) / 2 * len(self.RAMP)), len(self.RAMP) - 1)])
                else:
                    ga, gb = int(a * 255), int(b * 255)
                    line.append("▀", style=f"rgb({ga},{ga},{ga}) on rgb({gb},{gb},{gb})")
            lines.append(line)
        return lines
