"""2 Calibration: how many samples and which, where they come from, how they are
preprocessed — and a look at them, their statistics and the engine's diagnostics."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from .. import datasource as ds
from ..calibcheck import finding_text
from ..guard import Guarded
from ..settings import SettingError, set_args
from ..widgets import ImagePreview, QuietFocus
from .knobs import knob_label, knob_widget
from .sources import SourceEditor

#: The knobs that act only on images (raw sources): off when every split is model-ready.
PREPROCESSING = ("color", "scale", "interpolation", "mean", "std")

GUIDE = (100, 500)


def band_text(samples: int | None) -> str:
    """Where a sample count sits against the guide's 100–500 band, in words and a gauge."""
    lo, hi = GUIDE
    if samples is None:
        return f"guide {lo}–{hi}"
    # Gauge over 0…1000: [ marks the band, ● the value.
    width = 20
    pos = min(int(samples / 1000 * width), width - 1)
    cells = ["·"] * width
    for i in range(int(lo / 1000 * width), int(hi / 1000 * width) + 1):
        cells[i] = "═"
    cells[pos] = "●"
    gauge = "".join(cells)
    if samples < lo:
        word = f"BELOW the guide's {lo}–{hi}"
    elif samples > hi:
        word = f"ABOVE the guide's {lo}–{hi}"
    else:
        word = f"within the guide's {lo}–{hi}"
    return f"{gauge} {word}"


#: The gauge's width: its longest text and its padding. Fixed, so typing a count does not
#: move the fields after it (and a width that changes lays the pane out twice per key).
BAND_WIDTH = max(len(band_text(n)) for n in (None, 0, GUIDE[0], GUIDE[1] + 1)) + 2

#: The splits every job reads; QAT's train and validation editors come when needed.
ALWAYS = ("calibration", "test")


class CalibrationPane(Guarded, QuietFocus, VerticalScroll):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Each split's config table, generators and model shape, as last loaded: an editor
        #: mounted later starts from it.
        self._tables: dict[str, tuple[Any, tuple[str, ...], Any]] = {}
        self._ready: set[str] = set()

    def compose(self) -> ComposeResult:
        with Horizontal(classes="knobs"):
            yield knob_label("calibration.samples")
            yield knob_widget("calibration.samples")
            band = Label(band_text(None), id="band")
            band.styles.width = BAND_WIDTH
            yield band
            yield knob_label("calibration.seed")
            yield knob_widget("calibration.seed")
        with Horizontal(classes="knobs"):  # PTQ: several draws, their spread, the one kept
            yield knob_label("calibration.draws")
            yield knob_widget("calibration.draws")
            yield knob_label("calibration.keep")
            yield knob_widget("calibration.keep")
        for split in ALWAYS:
            yield SourceEditor(split)
        # QAT's train/validation editors are mounted when a QAT job first needs them: a
        # hundred widgets fewer in every PTQ session (each focus change and refresh walks
        # them, hidden or not).
        yield Static("", id="pp-note", markup=False)
        with Horizontal(classes="knobs"):
            yield knob_label("preprocessing.color")
            yield knob_widget("preprocessing.color")
            yield knob_label("preprocessing.scale")
            yield knob_widget("preprocessing.scale")
            yield knob_label("preprocessing.interpolation")
            yield knob_widget("preprocessing.interpolation")
        with Horizontal(classes="knobs"):
            yield knob_label("preprocessing.mean")
            yield knob_widget("preprocessing.mean")
            yield knob_label("preprocessing.std")
            yield knob_widget("preprocessing.std")
            yield Button("Check data", id="check-btn", compact=True)
            yield Label("", id="check-state")
        with Horizontal(id="calib-body"):
            # Statistics first: at 80 columns they stack above the (tall) preview.
            with Vertical(id="stats-box"):
                yield Label("Data statistics", classes="section")
                yield Static("—", id="calib-stats", markup=False)
            with Vertical(id="preview-box"):
                yield Label("Preprocessed samples (what calibration sees)", classes="section")
                yield ImagePreview(id="preview")
        yield Label("Calibration diagnostics", classes="section")
        yield Static("—", id="diagnostics", markup=False)

    # --- the data sources ---------------------------------------------------------------

    def load_session(self, session: Any) -> None:
        """Show a session's data tables in the editors (the app calls it on every load)."""
        from engine.samples import GENERATORS  # noqa: PLC0415 - after the first paint

        self.set_band(session.base.get("calibration.samples"))
        data = session.config.get("data") or {}
        inputs = (session.model or {}).get("inputs") or []
        shape = inputs[0].get("shape") if len(inputs) == 1 else None
        model_shape = tuple(shape[1:]) if shape and all(isinstance(d, int) for d in shape[1:]) \
            else None
        for split in ds.SPLITS:
            self._tables[split] = (data.get(split), tuple(sorted(GENERATORS)), model_shape)
            if self.has_editor(split):
                self.editor(split).load(*self._tables[split])
        self.show_splits()

    def editor(self, split: str) -> SourceEditor:
        return self.query_one(f"#ds-{split}", SourceEditor)

    def has_editor(self, split: str) -> bool:
        """Whether the split's editor is there, with its table loaded."""
        return split in ALWAYS or split in self._ready

    def used_splits(self) -> list[str]:
        """The splits the tuned job reads: train and validation only for QAT (validation
        only when the config has one)."""
        out = ["calibration", "test"]
        if self.app.knob("quantization.method") == "qat":  # type: ignore[attr-defined]
            out.append("train")
            if self._tables.get("validation", (None,))[0] is not None:
                out.append("validation")
        return out

    def show_splits(self) -> None:
        used = self.used_splits()
        missing = [s for s in used if not self.has_editor(s)]
        if missing:
            self.call_next(self._add_editors, missing)  # then shows the splits again
            return
        for split in ds.SPLITS:
            if self.has_editor(split):
                self.editor(split).display = split in used
        self.show_preprocessing()

    async def _add_editors(self, splits: list[str]) -> None:
        splits = [s for s in splits if not self.has_editor(s) and not self.query(f"#ds-{s}")]
        if splits:
            await self.mount(*(SourceEditor(s) for s in splits), before="#pp-note")
            for split in splits:
                if split in self._tables:
                    self.editor(split).load(*self._tables[split])
                self._ready.add(split)
        self.show_splits()

    def show_preprocessing(self) -> None:
        """Preprocessing acts on images only: when every split is model-ready (raw =
        false) its fields are disabled, and the note says why."""
        used = [s for s in self.used_splits() if self.has_editor(s)]
        ready = [s for s in used if ds.model_ready(self.editor(s).source)]
        images = [s for s in used if s not in ready]
        for name in PREPROCESSING:
            self.query_one(f"#k-preprocessing--{name}").disabled = not images
        note = self.query_one("#pp-note", Static)
        if not images:
            note.update("Preprocessing: off. Every split is model-ready (raw = false) and goes to "
                        "the model as stored; turn on Raw for a split of raw images.")
        elif ready:
            note.update(f"Preprocessing: applies to {', '.join(images)}; "
                        f"{', '.join(ready)} model-ready (raw = false), fed as stored.")
        else:
            note.update("Preprocessing: applies to every split (images).")

    def data_overrides(self) -> dict[str, Any]:
        """The data tables' overrides; SettingError naming the first field with a problem."""
        out: dict[str, Any] = {}
        for split in self.used_splits():
            if self.has_editor(split):  # one chosen a moment ago is the config's, untouched
                out.update(self.editor(split).overrides())
        return out

    @on(SourceEditor.Edited)
    def _source_edited(self, event: SourceEditor.Edited) -> None:
        if self.app.session is None:  # type: ignore[attr-defined]
            return
        self.show_preprocessing()
        if event.final:
            self.check()
        else:
            self.set_state("changed: Enter re-checks")

    # Both labels are one line of a fixed width: a new text is a repaint, not a layout of
    # the pane (a layout per key typed in the samples field).
    def set_band(self, samples: int | None) -> None:
        self.query_one("#band", Label).update(band_text(samples), layout=False)

    def set_state(self, text: str) -> None:
        self.query_one("#check-state", Label).update(text, layout=False)

    def show_check(self, res: dict[str, Any]) -> None:
        preview = self.query_one("#preview", ImagePreview)
        stats = self.query_one("#calib-stats", Static)
        if res.get("error"):
            msg, hint = res["error"][0], res["error"][1]
            self.set_state("PROBLEM")
            preview.set_images([], [], "No preview: the data could not be loaded.")
            stats.update(f"PROBLEM: {msg}" + (f"\nWhat to do: {hint}" if hint else ""))
        else:
            self.set_state("checked")
            preview.set_images(res["images"], res["captions"],
                               "(each image stretched to its own min…max for display)")
            stats.update("\n".join(res["stats"]))
        self.show_diagnostics(res.get("diagnostics") or [], res.get("diag_note", ""))

    def show_diagnostics(self, found: list[dict[str, Any]], note: str) -> None:
        diag = self.query_one("#diagnostics", Static)
        if found:
            diag.update("\n".join(finding_text(f) for f in found))
        else:
            diag.update(note or "OK: the engine found no calibration problem.")

    # --- the data check ----------------------------------------------------------------

    def check(self) -> None:
        """Check the data with the tuned settings (in ``engine.worker check``)."""
        app: Any = self.app
        if app.session is None:
            return
        try:
            ov = app.overrides()
        except SettingError as exc:
            missing = exc.key.startswith("data.") and str(exc).split(": ", 1)[1].startswith("choose")
            self.set_state("choose calibration and test data above" if missing else f"PROBLEM: {exc}")
            return
        self.set_state("checking…")
        self._check(str(app.session.config_path), set_args(ov), app.session.model)

    @work(exclusive=True, group="check")
    async def _check(self, config: str, args: list[str], model: dict[str, Any]) -> None:
        app: Any = self.app

        def preview(msg: dict[str, Any]) -> None:
            if app.ready_to_show():  # not a check that ends as the app closes
                self.show_check(msg)

        def diag(msg: dict[str, Any]) -> None:
            if app.ready_to_show():
                self.show_diagnostics(msg.get("diagnostics") or [], msg.get("diag_note", ""))

        try:
            # Preview and statistics first; the engine's diagnostics (which load the test
            # data too) follow when ready.
            await app.checker.check(config, args, model, preview, diag)
        except (OSError, ValueError) as exc:
            preview({"error": [f"the data check failed: {exc}", ""], "diagnostics": [],
                     "diag_note": "", "images": [], "captions": [], "stats": []})

    @on(Button.Pressed, "#check-btn")
    def _check_pressed(self) -> None:
        self.check()

    @on(Input.Changed, "#k-calibration--samples")
    def _samples_changed(self, event: Input.Changed) -> None:
        try:
            n = int(event.value)
        except ValueError:
            n = None
        self.set_band(n)
        # The statistics and preview below are of the last check: say they are stale.
        self.set_state("changed: Enter re-checks")

    @on(Input.Submitted)
    @on(Select.Changed)
    def _edited(self) -> None:
        # An editor's choices come as SourceEditor.Edited (it stops their Changed).
        self.check()
