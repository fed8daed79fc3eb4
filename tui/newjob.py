"""A model file opened on its own becomes a job of its own: its task guessed from its outputs,
the general profile, and no data yet (2 Calibration asks for the calibration and test data).

Not a sample's settings: opening a sensor model on the digits sample's config once ran it on
rendered digits without a word. The job's TOML is written to a scratch folder (a worker runs
a config file); Ctrl+S saves it, with the data chosen, where the user says.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from .settings import Session, base_values

PROMPT = "choose calibration and test data"


def guess_task(model: dict[str, Any]) -> tuple[str, str]:
    """(task, why) from the model's outputs, as model_summary gives them."""
    outs = [list(o.get("shape") or []) for o in model.get("outputs") or []]
    if len(outs) == 1 and len(outs[0]) == 2 and (outs[0][1] or 0) >= 2:
        return "classification", f"one output of {outs[0][1]} scores, one per class"
    if len(outs) == 1 and len(outs[0]) == 3:
        return "ctc", "one output of a sequence of class scores (text recognition)"
    if len(outs) == 2 and all(len(s) == 4 for s in outs) and \
            sorted(s[-1] or 0 for s in outs) == [1, 5]:
        return "east", "a score map and a geometry map (text detection)"
    return "generic", "outputs compared with FP32 as they are (no task-specific metric)"


def write_job(model_path: Path, task: str, folder: Path | None = None) -> Path:
    """The new job's TOML: the model, its task, and data tables that still need a path."""
    import tomlkit  # noqa: PLC0415

    folder = folder or Path(tempfile.mkdtemp(prefix="artq-new-"))
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"A new job for {model_path.name}, made in the artq workbench:"))
    doc.add(tomlkit.comment(f"{PROMPT} in 2 Calibration, then Ctrl+S saves it."))
    doc.add("name", model_path.stem)
    doc.add("model", {"path": str(model_path)})
    doc.add("data", {"calibration": {"kind": "npz", "path": "", "x": "x", "y": ""},
                     "test": {"kind": "npz", "path": "", "x": "x", "y": "y"}})
    doc.add("evaluation", {"task": task, "profile": "general"})
    p = folder / f"{model_path.stem}.toml"
    p.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return p


def new_session(model_path: Path, folder: Path | None = None) -> tuple[Session, str]:
    """(session, why the task) for a bare model (a thread: it reads the model file)."""
    from engine.config import validate  # noqa: PLC0415
    from engine.inspect_model import model_summary  # noqa: PLC0415

    model = model_summary(str(model_path))
    task, why = guess_task(model)
    path = write_job(model_path, task, folder)
    # The defaults of every other key, as a loaded config has them; the data have no path
    # yet, so they are checked by the editor, not by the config.
    stub = {"kind": "synthetic", "generator": "digits", "count": 1}
    d = validate({"model": {"path": str(model_path)}, "name": model_path.stem,
                  "data": {"calibration": stub, "test": stub},
                  "evaluation": {"task": task, "profile": "general"}}, str(path)).to_dict()
    d["data"] = {"calibration": {"kind": "npz", "path": "", "x": "x", "y": ""},
                 "test": {"kind": "npz", "path": "", "x": "x", "y": "y"}}
    return Session(path, model_path.stem, base_values(d), d, {}, model, template=True), why


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: Enter (or y) answers yes, Esc (or n, or q as in every dialog) no."""

    BINDINGS = [Binding("escape,n,q", "answer(False)", "No", id="confirm_no"),
                Binding("y", "answer(True)", "Yes", id="confirm_yes")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 72; max-width: 95%; height: auto; border: heavy $warning;
        background: $surface; padding: 0 1;
    }
    ConfirmScreen Button { margin-top: 1; }
    """

    def __init__(self, title: str, message: str, yes: str) -> None:
        super().__init__()
        self.title_text, self.message, self.yes = title, message, yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Static(self.message, id="confirm-message", markup=False)
            yield Button(f"{self.yes} (Enter)", id="confirm-yes", compact=True)

    def on_mount(self) -> None:
        self.query_one("#confirm-yes", Button).focus()

    @on(Button.Pressed, "#confirm-yes")
    def _yes(self) -> None:
        self.dismiss(True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
