"""Widgets and dialogs shared by the panes: stage rows, the error dialog, help, open, save.

Self-contained widgets keep their layout in DEFAULT_CSS (the app's look is in app.tcss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, DirectoryTree, Footer, Input, Label, Static

from . import format as fmt

Clock = Callable[[], float]


class StageRow(Static):
    """One stage of the running job on one line: mark and name, bar and counts, elapsed and
    time left. The mark is paired with words (✓ done, ▶ running, ✗ FAILED/CANCELLED), so
    nothing depends on colour.

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

    def on_mount(self) -> None:
        self.refresh_text()

    def on_resize(self) -> None:
        self.refresh_text()

    def advance(self, done: int, total: int | None) -> None:
        self.done_n, self.total = done, total or self.total
        self.refresh_text()

    def finish(self, seconds: float) -> None:
        self.seconds = seconds
        self.word = "done"
        if self.total:
            self.done_n = self.total
        self.refresh_text()

    def fail(self, word: str) -> None:
        if self.word == "running":
            self.word = word
            self.refresh_text()

    @property
    def name_text(self) -> str:
        mark = {"done": "✓", "running": "▶"}.get(self.word, "✗")
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
            left = f", {fmt.seconds(elapsed / self.done_n * (self.total - self.done_n))} left"
        return f"{fmt.seconds(elapsed)}{left}"

    @property
    def bar_text(self) -> str:
        counts = f" {self.done_n}/{self.total}" if self.total else ""
        width = (self.size.width or 80) - self.NAME_W - self.STATE_W - 2
        frac = self.done_n / self.total if self.total else (1.0 if self.word == "done" else 0.0)
        return fmt.bar(frac, max(width - len(counts), 4)) + counts

    def refresh_text(self) -> None:
        # layout=False: the row's size never changes, and a layout of the whole screen per
        # progress event cost ~40 ms of the UI's time (profiled during a real job).
        line = (f"{self.name_text:<{self.NAME_W}}{self.bar_text} "
                f"{self.state_text:>{self.STATE_W}}")
        self.update(line, layout=False)


class Toggle(Checkbox):
    """A checkbox whose state is a character (X on, blank off), not only a colour: Textual's
    own draws X either way and tells on from off by colour, which NO_COLOR erases."""

    @property
    def _button(self) -> Any:
        self.BUTTON_INNER = "X" if self.value else " "
        return super()._button


class LateMount(Widget):
    """Stands in for a pane until the first screen is out, then builds and mounts it.

    ``textual.lazy.Lazy`` mounts right after the first refresh, which held the footer's keys
    back by a second (the footer is drawn in a later refresh); and it needs the widget built
    at compose time, so its module imported before the first paint. This takes a factory;
    the app calls :meth:`reveal` once the footer has its keys.
    """

    DEFAULT_CSS = "LateMount { display: none; }"

    def __init__(self, factory: Callable[[], Widget]) -> None:
        self._factory = factory
        super().__init__()

    async def reveal(self) -> None:
        parent = self.parent
        if parent is not None and self.is_attached:
            await parent.mount(self._factory(), after=self)
            await self.remove()


class KeysFooter(Footer):
    """The footer, saying once when it first shows keys: the first screen is complete."""

    class Ready(Message):
        pass

    _announced = False

    async def recompose(self) -> None:
        await super().recompose()
        if self.children and not self._announced:
            self._announced = True
            self.post_message(self.Ready())


class ErrorDialog(ModalScreen[None]):
    """An engine error in words, with its hint. Never a traceback."""

    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close", id="dialog_close")]
    DEFAULT_CSS = """
    ErrorDialog { align: center middle; }
    ErrorDialog > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 90%;
        border: heavy $error; padding: 0 1; background: $surface;
    }
    ErrorDialog .title { text-style: bold; width: 100%; }
    ErrorDialog .hint { margin-top: 1; }
    ErrorDialog Button { margin-top: 1; }
    """

    def __init__(self, title: str, message: str, hint: str = "") -> None:
        super().__init__()
        self.title_text, self.message, self.hint = title, message, hint

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Label(f"ERROR: {self.title_text}", classes="title")
            yield Static(self.message, id="error-message", markup=False)
            if self.hint:
                yield Static(f"What to do: {self.hint}", classes="hint", markup=False)
            yield Button("OK (Enter)", id="error-ok", compact=True)

    def on_mount(self) -> None:
        self.query_one("#error-ok", Button).focus()

    @on(Button.Pressed, "#error-ok")
    def _ok(self) -> None:
        self.dismiss(None)

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key, grouped by where it works, and how a what-if goes."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close help", id="help_close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 100%; height: 90%; border: heavy $accent;
        padding: 0 1; background: $surface;
    }
    """

    def __init__(self, sections: Iterable[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("artq workbench — keys (Esc closes)\n\n", style="bold")
        text.append(
            "Pick a config in 1 Models (Enter), tune it in 2 Calibration and 3 Quantize, launch "
            "with Ctrl+R, watch it, then read 4 Results and 5 Layers; 6 Compare puts two runs "
            "side by side. Ctrl+S saves the tuned settings as a job config. Ctrl+P finds any "
            "action by name. Keys with Ctrl or F work even while typing in a field.\n\n"
        )
        for title, rows in self.sections:
            text.append(f"{title}\n", style="bold underline")
            for key, desc in rows:
                text.append(f"  {key:<16}", style="bold")
                text.append(f"{desc}\n")
            text.append("\n")
        with VerticalScroll(id="help-body"):
            yield Static(text, id="help-text")

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(None)


class ModelTree(DirectoryTree):
    """Folders, job configs and model files only."""

    SUFFIXES = (".toml", ".keras", ".h5", ".hdf5")

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in self.SUFFIXES)]


class OpenScreen(ModalScreen[Path | None]):
    """Pick a job config (.toml) or a model (.keras, .h5, SavedModel folder) to open."""

    BINDINGS = [Binding("escape", "cancel", "Close", id="open_close")]
    DEFAULT_CSS = """
    OpenScreen { align: center middle; }
    OpenScreen > Vertical {
        width: 90%; height: 90%; border: heavy $accent; background: $surface; padding: 0 1;
    }
    OpenScreen ModelTree { height: 1fr; }
    OpenScreen Input { margin-top: 0; }
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Open a job config (.toml) or a model (.keras, .h5). "
                        "Enter opens; or type a path below.")
            yield ModelTree(self.root, id="open-tree")
            yield Input(placeholder="path to a .toml, .keras, .h5 or SavedModel folder",
                        id="open-path", compact=True)

    def on_mount(self) -> None:
        self.query_one("#open-tree", ModelTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(Path(event.path))

    @on(DirectoryTree.DirectorySelected)
    def _dir(self, event: DirectoryTree.DirectorySelected) -> None:
        if (Path(event.path) / "saved_model.pb").is_file():
            self.dismiss(Path(event.path))

    @on(Input.Submitted, "#open-path")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)


class SaveScreen(ModalScreen[Path | None]):
    """Where to write the tuned config; shows what will change."""

    BINDINGS = [Binding("escape", "cancel", "Close", id="save_close")]
    DEFAULT_CSS = """
    SaveScreen { align: center middle; }
    SaveScreen > Vertical {
        width: 76; max-width: 95%; height: auto; border: heavy $accent;
        background: $surface; padding: 0 1;
    }
    SaveScreen Input { margin: 1 0 0 0; }
    """

    def __init__(self, default: Path, summary: str) -> None:
        super().__init__()
        self.default = default
        self.summary = summary

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save the tuned settings as a job config (Enter saves, Esc closes)")
            yield Static(self.summary, id="save-summary", markup=False)
            yield Input(str(self.default), id="save-path", compact=True)

    def on_mount(self) -> None:
        self.query_one("#save-path", Input).focus()

    @on(Input.Submitted, "#save-path")
    def _save(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)


class SweepScreen(ModalScreen[list[str] | None]):
    """Which keys and values to sweep: KEY=V1,V2 … (space-separated for several keys)."""

    BINDINGS = [Binding("escape", "cancel", "Close", id="sweep_close")]
    DEFAULT_CSS = """
    SweepScreen { align: center middle; }
    SweepScreen > Vertical {
        width: 76; max-width: 95%; height: auto; border: heavy $accent;
        background: $surface; padding: 0 1;
    }
    SweepScreen Input { margin: 1 0 0 0; }
    """

    def __init__(self, default: str, note: str) -> None:
        super().__init__()
        self.default = default
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Sweep: run every combination (Enter starts, Esc closes)")
            yield Static(self.note, markup=False)
            yield Input(self.default, id="sweep-sets", compact=True)

    def on_mount(self) -> None:
        self.query_one("#sweep-sets", Input).focus()

    @on(Input.Submitted, "#sweep-sets")
    def _go(self, event: Input.Submitted) -> None:
        sets = [s for s in event.value.split() if "=" in s]
        self.dismiss(sets or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


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

    def set_images(self, images: list[Any], captions: list[str], note: str = "") -> None:
        self.images, self.captions, self.note = images, captions, note
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
