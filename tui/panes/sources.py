"""The data-source editor of 2 Calibration: one block per split a job reads (calibration,
test; train and validation for QAT). Each field's problem is written beside it, and a split
with a problem makes no override (launch and save say which field; nothing is guessed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from .. import datasource as ds
from ..choice import Choice
from ..settings import SettingError
from ..widgets import Toggle

TITLES = {"calibration": "Calibration data", "test": "Test data", "train": "Training data",
          "validation": "Validation data"}
#: Array names tried first for a split's inputs and labels, when the config's are not there.
_GUESS = {"calibration": ("calib", "calibration", "cal"), "test": ("test",),
          "train": ("train",), "validation": ("val", "validation", "valid")}
NO_LABELS = "(none)"


def guess_array(names: list[str], split: str, stem: str) -> str | None:
    for tail in _GUESS[split]:
        for name in (f"{stem}_{tail}", f"{stem}{tail}"):
            if name in names:
                return name
    return stem if stem in names else None


class SourceEditor(Vertical):
    """One split's source: Kind, Path (Browse…), Inputs and Labels (an .npz's own arrays),
    Raw, or Generator, Items and Seed for a synthetic one."""

    DEFAULT_CSS = """
    SourceEditor { height: auto; padding: 0 0 0 1; }
    SourceEditor .ds-row { height: auto; }
    SourceEditor .ds-title { text-style: bold; width: 18; }
    SourceEditor .ds-label { width: 10; color: $text-muted; padding: 0 1 0 0; }
    SourceEditor .ds-seed { width: 6; padding: 0 1; }
    SourceEditor .ds-msg { width: 1fr; height: auto; padding: 0 1; }
    SourceEditor .ds-under { padding: 0 1 0 10; }
    SourceEditor Select { width: 30; }
    SourceEditor .ds-kind { width: 14; }
    SourceEditor .ds-path { width: 1fr; }
    SourceEditor .ds-num { width: 8; }
    SourceEditor .ds-gen { width: 16; }
    SourceEditor Button { margin: 0 0 0 1; }
    """

    class Edited(Message):
        """A field changed; ``final``: re-check the data now (a choice, Enter, a pick)."""

        def __init__(self, editor: SourceEditor, final: bool) -> None:
            super().__init__()
            self.editor, self.final = editor, final

    def __init__(self, split: str) -> None:
        super().__init__(id=f"ds-{split}")
        self.split = split
        #: The config's table for this split (None: the config has none).
        self.base: dict[str, Any] | None = None
        self.generators: tuple[str, ...] = ()
        self.model_shape: tuple[int, ...] | None = None
        self.arrays: list[ds.ArrayInfo] = []
        self._read: tuple[str, str] = ("", "")
        #: The arrays asked for (by the config or a choice): kept while a file lacks them.
        self.want: dict[str, str] = {"x": "x", "y": "y"}
        #: The checked values and the problems by field, as last refreshed.
        self.source: dict[str, Any] = {"kind": "synthetic"}
        self.bad: dict[str, str] = {}

    def fid(self, field: str) -> str:
        return f"ds-{self.split}-{field}"

    def compose(self) -> ComposeResult:
        s = self.split
        kinds = [(k.replace("_", "-"), k) for k in ds.KINDS]
        with Horizontal(classes="ds-row"):
            yield Label(TITLES[s], classes="ds-title")
            yield Label("Kind", classes="ds-label")
            yield Choice(kinds, allow_blank=False, value="synthetic", id=self.fid("kind"),
                         compact=True, classes="ds-kind")
            yield Static("", id=self.fid("kind-msg"), classes="ds-msg", markup=False)
        with Horizontal(classes="ds-row", id=self.fid("path-row")):
            yield Label("Path", classes="ds-label")
            yield Input(id=self.fid("path"), compact=True, classes="ds-path",
                        placeholder="a file or folder; Browse… picks one")
            yield Button("Browse…", id=self.fid("browse"), compact=True)
        yield Static("", id=self.fid("path-msg"), classes="ds-msg ds-under", markup=False)
        for field, label in (("x", "Inputs"), ("y", "Labels")):
            with Horizontal(classes="ds-row", id=self.fid(f"{field}-row")):
                yield Label(label, classes="ds-label")
                yield Choice([], prompt="(choose an array)", id=self.fid(field), compact=True)
                yield Static("", id=self.fid(f"{field}-msg"), classes="ds-msg", markup=False)
        with Horizontal(classes="ds-row", id=self.fid("raw-row")):
            yield Label("Raw", classes="ds-label")
            yield Toggle("raw images", id=self.fid("raw"), compact=True)
            yield Static("", id=self.fid("raw-msg"), classes="ds-msg", markup=False)
        with Horizontal(classes="ds-row", id=self.fid("generator-row")):
            yield Label("Generator", classes="ds-label")
            yield Choice([], prompt="(choose)", id=self.fid("generator"), compact=True,
                         classes="ds-gen")
            yield Static("", id=self.fid("generator-msg"), classes="ds-msg", markup=False)
        # Items and Seed share a row; a problem names its field.
        with Horizontal(classes="ds-row", id=self.fid("count-row")):
            yield Label("Items", classes="ds-label")
            yield Input(id=self.fid("count"), compact=True, classes="ds-num", type="integer")
            yield Label("Seed", classes="ds-label ds-seed")
            yield Input(id=self.fid("seed"), compact=True, classes="ds-num", type="integer")
            yield Static("", id=self.fid("count-msg"), classes="ds-msg", markup=False)

    # --- state ---------------------------------------------------------------------------

    def load(self, base: dict[str, Any] | None, generators: tuple[str, ...],
             model_shape: tuple[int, ...] | None) -> None:
        """Show the config's table for this split (without a Changed message per field)."""
        self.base, self.generators, self.model_shape = base, generators, model_shape
        have = {**ds.DEFAULTS, **(base or {})}
        gen = self.query_one(f"#{self.fid('generator')}", Select)
        # prevent() holds for every widget in this task: no Changed message per field.
        with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
            gen.set_options([(g, g) for g in generators])
            self._select("kind").value = have["kind"]
            self._input("path").value = have["path"]
            self.query_one(f"#{self.fid('raw')}", Toggle).value = bool(have["raw"])
            if have["generator"] in generators:
                gen.value = have["generator"]
            else:
                gen.clear()
            self._input("count").value = str(have["count"])
            self._input("seed").value = str(have["seed"])
            self._read = ("", "")
            self.want = {"x": have["x"], "y": have["y"]}
            self.refresh_state()

    def _select(self, field: str) -> Select[Any]:
        return self.query_one(f"#{self.fid(field)}", Select)

    def _input(self, field: str) -> Input:
        return self.query_one(f"#{self.fid(field)}", Input)

    def values(self) -> dict[str, Any]:
        def chosen(field: str) -> Any:
            v = self._select(field).value
            return None if v is Select.NULL else v

        y = chosen("y")
        return {
            "kind": self._select("kind").value,
            "path": self._input("path").value,
            "x": chosen("x"),
            "y": "" if y in (None, NO_LABELS) else y,
            "raw": self.query_one(f"#{self.fid('raw')}", Toggle).value,
            "generator": chosen("generator"),
            "count": self._input("count").value,
            "seed": self._input("seed").value,
        }

    def refresh_state(self) -> None:
        """Show the rows the kind uses, read the file if its path changed, and write every
        field's problem (or what it holds) beside it."""
        kind = self._select("kind").value
        uses = ds.USES[kind]
        for field in ("path", "x", "y", "raw", "generator", "count"):
            self.query_one(f"#{self.fid(field)}-row").display = field in uses
        self.query_one(f"#{self.fid('path-msg')}").display = "path" in uses
        path_msg = ""
        if "path" in uses:
            text = self._input("path").value
            problem, note, arrays = ds.check_path(kind, text)
            if (kind, text) != self._read:
                self._read = (kind, text)
                self._offer_arrays(arrays)
            path_msg = f"PROBLEM: {problem}" if problem else note
        source, bad = ds.check(self.split, self.values(), self.arrays, self.generators)
        if "path" in uses and path_msg.startswith("PROBLEM"):
            bad["path"] = path_msg.removeprefix("PROBLEM: ")
        self._shape_problem(source, bad)
        self.source, self.bad = source, bad
        self._msg("path", path_msg)
        for field in ("x", "y", "generator"):
            self._msg(field, f"PROBLEM: {bad[field]}" if field in bad else "")
        self._msg("count", "; ".join(f"PROBLEM: {name} {bad[f]}" for f, name in
                                     (("count", "Items"), ("seed", "Seed")) if f in bad))
        if "x" in uses and "x" not in bad and source.get("x"):
            a = next((a for a in self.arrays if a.name == source["x"]), None)
            if a is not None:
                self._msg("x", f"{a.shape[0] if a.shape else 0} items")
        if "y" in uses and "y" not in bad and not source.get("y"):
            self._msg("y", "no labels: " + ("metrics need them" if self.split == "test"
                                            else "fine for calibration"))
        self._msg("raw", "images: preprocessed below" if source.get("raw") else
                  "off: model-ready, fed as stored")

    def _shape_problem(self, source: dict[str, Any], bad: dict[str, str]) -> None:
        """Model-ready arrays must already have the model's input shape."""
        if source["kind"] != "npz" or source.get("raw") or "x" in bad or not self.model_shape:
            return
        a = next((a for a in self.arrays if a.name == source.get("x")), None)
        if a is not None and a.shape and tuple(a.shape[1:]) != tuple(self.model_shape):
            got = "×".join(map(str, a.shape[1:])) or "numbers"
            want = "×".join(map(str, self.model_shape))
            bad["x"] = (f"items are {got} but the model takes {want}: give model-ready "
                        "arrays, or turn on Raw to preprocess images")

    def _offer_arrays(self, arrays: list[ds.ArrayInfo]) -> None:
        """Offer the file's own arrays for Inputs and Labels: the ones asked for when the
        file has them, else the split's by name (x_test, y_test…)."""
        self.arrays = arrays
        names = [a.name for a in arrays]
        xs, ys = self._select("x"), self._select("y")
        with xs.prevent(Select.Changed), ys.prevent(Select.Changed):
            xs.set_options([(a.text, a.name) for a in arrays])
            ys.set_options([(NO_LABELS, NO_LABELS)] + [(a.text, a.name) for a in arrays])
            if not arrays:
                return
            want_x, want_y = self.want["x"], self.want["y"]
            pick_x = want_x if want_x in names else guess_array(names, self.split, "x")
            if pick_x is None and len(names) == 1:
                pick_x = names[0]
            if pick_x:
                xs.value = pick_x
            if want_y in names:
                ys.value = want_y
            elif not want_y:
                ys.value = NO_LABELS
            else:
                ys.value = guess_array(names, self.split, "y") or NO_LABELS

    def _msg(self, field: str, text: str) -> None:
        msg = self.query_one(f"#{self.fid(field)}-msg", Static)
        if msg.content != text:  # launch and save re-check every field: most stay as they were
            msg.update(text)

    def overrides(self) -> dict[str, Any]:
        """The overrides for this split; SettingError naming the first field with a problem."""
        self.refresh_state()
        for field in ("path", "x", "y", "generator", "count", "seed"):
            if field in self.bad:
                raise SettingError(f"data.{self.split}.{field}", self.bad[field])
        return ds.overrides(self.split, self.source, self.base)

    # --- events --------------------------------------------------------------------------

    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _chosen(self, event: Select.Changed | Checkbox.Changed) -> None:
        event.stop()
        for field in ("x", "y"):
            if event.control is self._select(field) and self.arrays:
                self.want[field] = self.values()[field]
        self.refresh_state()
        self.post_message(self.Edited(self, True))

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.refresh_state()
        self.post_message(self.Edited(self, False))

    @on(Button.Pressed)
    def _browse(self, event: Button.Pressed) -> None:
        event.stop()
        from ..datapick import DataPickScreen  # noqa: PLC0415 - opened on demand

        kind = self._select("kind").value
        if kind == "synthetic":
            return
        text = self._input("path").value.strip()
        start = Path(text).expanduser() if text else Path(self.app.open_dir)  # type: ignore[attr-defined]
        while not start.is_dir() and start != start.parent:
            start = start.parent

        def picked(path: Path | None) -> None:
            if path is not None:
                self._input("path").value = str(path)
                self.refresh_state()
                self.post_message(self.Edited(self, True))

        self.app.push_screen(DataPickScreen(start, kind, TITLES[self.split]), picked)
