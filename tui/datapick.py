"""The data file picker of 2 Calibration: an .npz file, or a folder of .npy files or images.

Enter on a file takes it; Enter on a folder opens it, or takes it when it is what the kind
reads (a folder holding .npy files, images, or class sub-folders of images). A path can be
typed below the tree as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label

from . import datasource as ds


def folder_fits(path: Path, kind: str) -> bool:
    """Whether Enter on this folder should take it as the kind's data folder."""
    try:
        if kind == "npy_dir":
            return any(path.glob("*.npy"))
        if kind == "images":
            problem, _, _ = ds.check_path("images", str(path))
            return not problem
    except OSError:
        return False
    return False


class DataTree(DirectoryTree):
    """Folders and the files a kind reads (hidden files left out)."""

    def __init__(self, root: Path, kind: str, **kwargs: object) -> None:
        super().__init__(root, **kwargs)  # type: ignore[arg-type]
        self.kind = kind

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        want = {"npz": (".npz",), "npy_dir": (".npy",)}.get(self.kind, ds.IMAGE_SUFFIXES)
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in want)]


class DataPickScreen(ModalScreen[Path | None]):
    """Pick the data file or folder for a split."""

    BINDINGS = [Binding("escape,q", "cancel", "Close", id="datapick_close")]  # q: not in the path field
    DEFAULT_CSS = """
    DataPickScreen { align: center middle; }
    DataPickScreen > Vertical {
        width: 90%; height: 90%; border: heavy $accent; background: $surface; padding: 0 1;
    }
    DataPickScreen DataTree { height: 1fr; }
    """

    def __init__(self, root: Path, kind: str, title: str) -> None:
        super().__init__()
        self.root, self.kind, self.title_text = root, kind, title

    def compose(self) -> ComposeResult:
        what = {"npz": "an .npz file (Enter takes it)",
                "npy_dir": "a folder of .npy files (Enter on it takes it)",
                "images": "a folder of images or of class sub-folders (Enter on it takes it)"}
        with Vertical():
            yield Label(f"{self.title_text}: choose {what[self.kind]}. Esc closes.")
            yield DataTree(self.root, self.kind, id="data-tree")
            yield Input(placeholder="or type a path and press Enter", id="data-path", compact=True)

    def on_mount(self) -> None:
        self.query_one(DataTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        if self.kind == "npz":
            self.dismiss(Path(event.path))
        else:  # a file of a folder kind: its folder is the data
            self.dismiss(Path(event.path).parent)

    @on(DirectoryTree.DirectorySelected)
    def _dir(self, event: DirectoryTree.DirectorySelected) -> None:
        if self.kind != "npz" and folder_fits(Path(event.path), self.kind):
            self.dismiss(Path(event.path))

    @on(Input.Submitted, "#data-path")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)
