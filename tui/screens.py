"""The workbench's dialogs: the error dialog, help, open, save and sweep.

Imported when a dialog first opens, not at start-up: the file picker alone brings
Textual's tree widgets (the first screen needs none of this).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Static

from .guard import Guarded


class ErrorDialog(Guarded, ModalScreen[None]):
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


class HelpScreen(Guarded, ModalScreen[None]):
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
            "action by name. Keys with Ctrl or F work even while typing in a field.\n"
        )
        parts: list[Text | Table] = [text]
        for title, rows in self.sections:
            parts.append(Text(title, style="bold underline"))
            # A grid, so a long description wraps under itself, not under the keys.
            grid = Table.grid(padding=(0, 1), pad_edge=True)
            grid.add_column(width=16, style="bold", no_wrap=True)
            grid.add_column(ratio=1)
            for key, desc in rows:
                grid.add_row(key, desc)
            parts += [grid, Text()]
        with VerticalScroll(id="help-body"):
            yield Static(Group(*parts), id="help-text")

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(None)


class ModelTree(DirectoryTree):
    """Folders, job configs and model files only."""

    SUFFIXES = (".toml", ".keras", ".h5", ".hdf5", ".onnx")

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in self.SUFFIXES)]


class OpenScreen(Guarded, ModalScreen[Path | None]):
    """Pick a job config (.toml) or a model (.keras, .h5, .onnx, SavedModel folder) to open."""

    BINDINGS = [Binding("escape,q", "cancel", "Close", id="open_close")]  # q: not in the path field
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


class AskScreen(Guarded, ModalScreen[Any]):
    """One line to type under a title and a note: Enter answers, Esc closes.

    Subclasses say what the typed text means in :meth:`answer` (``None``: not an answer).
    """

    BINDINGS = [Binding("escape,q", "cancel", "Close", id="ask_close")]  # q: only off the field
    DEFAULT_CSS = """
    AskScreen { align: center middle; }
    AskScreen > Vertical {
        width: 76; max-width: 95%; height: auto; border: heavy $accent;
        background: $surface; padding: 0 1;
    }
    AskScreen Input { margin: 1 0 0 0; }
    """

    def __init__(self, title: str, note: str, default: str, input_id: str) -> None:
        super().__init__()
        self.title_text, self.note, self.default, self.input_id = title, note, default, input_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Static(self.note, markup=False)
            yield Input(self.default, id=self.input_id, compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def answer(self, text: str) -> Any:
        return text or None

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = self.answer(event.value.strip())
        if value is not None:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SaveScreen(AskScreen):
    """Where to write the tuned config; the note shows what will change."""

    def __init__(self, default: Path, summary: str) -> None:
        super().__init__("Save the tuned settings as a job config (Enter saves, Esc closes)",
                         summary, str(default), "save-path")

    def answer(self, text: str) -> Path | None:
        return Path(text).expanduser() if text else None


class SweepScreen(AskScreen):
    """Which keys and values to sweep: KEY=V1,V2 … (space-separated for several keys)."""

    def __init__(self, default: str, note: str) -> None:
        super().__init__("Sweep: run every combination (Enter starts, Esc closes)", note,
                         default, "sweep-sets")

    def answer(self, text: str) -> list[str] | None:
        return [s for s in text.split() if "=" in s] or None
