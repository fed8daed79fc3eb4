"""1 Models: bundled samples, recent runs, and the chosen model's summary before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from engine import present as say

from .. import format as fmt
from ..guard import Guarded
from ..widgets import QuietFocus

if TYPE_CHECKING:
    from engine.report import Report


def rel(path: Any) -> str:
    """A path relative to the current folder when it is under it (narrow panes)."""
    import os  # noqa: PLC0415

    p = str(path)
    try:
        r = os.path.relpath(p)
    except ValueError:
        return p
    return p if r.startswith("..") else r


def model_text(m: dict[str, Any]) -> str:
    """The model summary, or a clear line saying what is wrong with the file."""
    if not m:
        return "model: (reading…)"
    lines = [f"model    {rel(m.get('path', ''))}"]
    if not m.get("exists"):
        lines.append("MISSING  the model file does not exist yet: train it")
        lines.append("         (artq samples train NAME) or open another model.")
        return "\n".join(lines)
    if m.get("error"):
        lines.append(f"PROBLEM  {m['error']}")
    lines.append(f"format   {m.get('format') or '?'}, {fmt.size(m.get('size_bytes'))}")
    for i in m.get("inputs") or []:
        lines.append(f"input    {fmt.shape(i.get('shape'))} {i.get('name')}"
                     f"{' ' + i['dtype'] if i.get('dtype') else ''}")
    for o in m.get("outputs") or []:
        lines.append(f"output   {fmt.shape(o.get('shape'))} {o.get('name')}")
    if m.get("params") is not None:
        lines.append(f"params   {m['params']:,}")
    counts = m.get("layer_counts") or {}
    if counts:
        top = sorted(((n, c) for c, n in counts.items() if c != "InputLayer"), reverse=True)[:4]
        lines.append(f"layers   {m.get('layers')}: " + ", ".join(f"{n} {c}" for n, c in top))
    return "\n".join(lines)


def config_text(cfg: dict[str, Any], source: str) -> str:
    q = cfg.get("quantization") or {}
    ev = cfg.get("evaluation") or {}
    cal = cfg.get("calibration") or {}
    data = cfg.get("data") or {}

    def src(d: dict[str, Any] | None) -> str:
        if not d:
            return "—"
        if d.get("kind") != "synthetic" and not d.get("path"):
            return "none yet: choose it in 2 Calibration"
        if d.get("kind") == "synthetic":
            return f"{d.get('generator')}/{d.get('split')} ×{d.get('count')}"
        return f"{d.get('kind')} {rel(d.get('path'))}"

    return "\n".join([
        f"config   {rel(source)}",
        f"task     {ev.get('task')}, profile {ev.get('profile')}",
        f"method   {str(q.get('method', '')).upper()} "
        f"{str(q.get('granularity', '')).replace('_', '-')}, I/O {q.get('io_type')}",
        f"stages   {' → '.join(s.upper() for s in q.get('stages') or [])}",
        f"calib    {cal.get('samples')} samples, seed {cal.get('seed')}",
        f"         of {src(data.get('calibration'))}",
        f"test     {src(data.get('test'))}",
    ])


class ModelsPane(Guarded, QuietFocus, Horizontal):
    """Left: what can be opened. Right: what it is."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        #: The highlighted option's id: "cfg:PATH", "run:PATH" or "open".
        self.picked = ""
        self._previews: dict[str, str] = {}

    @property
    def picked_run(self) -> str | None:
        """The highlighted run folder, if a run is highlighted."""
        kind, _, path = self.picked.partition(":")
        return path if kind == "run" else None

    def compose(self) -> ComposeResult:
        yield OptionList(id="picker")
        with VerticalScroll(id="summary-box"):
            yield Static("Pick a sample config, a past run, or open a file (Ctrl+O).",
                         id="summary", markup=False)

    def fill(self, samples: list[Path], runs: list[tuple[Path, dict[str, Any] | None]]) -> None:
        picker = self.query_one("#picker", OptionList)
        keep = picker.highlighted_option.id if picker.highlighted_option else None
        picker.clear_options()
        picker.add_option(Option("── Samples (Enter: tune) ──", disabled=True))
        for p in samples:
            picker.add_option(Option(f"  {p.stem}", id=f"cfg:{p}"))
        picker.add_option(Option("── Recent runs (Enter: results) ──", disabled=True))
        if not runs:
            picker.add_option(Option("  (none yet)", disabled=True))
        for (path, _rep), label in zip(runs, run_labels(runs), strict=True):
            picker.add_option(Option(f"  {label}", id=f"run:{path}"))
        picker.add_option(Option("── Ctrl+O: open a file… ──", id="open"))
        index = None
        if keep:
            try:
                index = picker.get_option_index(keep)
            except Exception:  # noqa: BLE001 - the kept option may be gone: fall back
                index = None
        picker.highlighted = index if index is not None else (1 if samples else None)

    def show(self, text: str) -> None:
        summary = self.query_one("#summary", Static)
        # Paths wrap after a separator, not at the edge mid-name (the padding takes 2).
        width = (summary.size.width or self.app.size.width - 40) - 2
        summary.update(fmt.wrap_at_separators(text, width) if width > 20 else text)

    def open_dialog(self, folder: Path) -> None:
        """A file picker: a job config, a model or a run folder (Ctrl+O)."""
        app: Any = self.app

        def opened(path: Path | None) -> None:
            if path is None:
                return
            try:
                path.stat()
            except OSError as exc:  # missing, or a name the system refuses (too long)
                why = "does not exist" if isinstance(exc, FileNotFoundError) else exc.strerror
                app.show_error("Nothing to open", f"{path}: {why}.", "Check the path.")
                return
            if path.suffix.lower() == ".toml":
                app.open_config(path.resolve(), go=True)
            elif path.suffix.lower() in (".keras", ".h5", ".hdf5", ".onnx") or (
                    path / "saved_model.pb").is_file():
                self.open_model(path.resolve())
            elif (path / "report.json").is_file() or (path / "sweep.json").is_file():
                app.open_run(path.resolve())
            else:
                app.show_error("Cannot open this", f"{path} is not a job config, a model or a run folder.",
                               "Pick a .toml, .keras, .h5, .onnx or a SavedModel folder.")

        from ..screens import OpenScreen  # noqa: PLC0415 - opened on demand

        app.push_screen(OpenScreen(folder), opened)

    def open_model(self, path: Path) -> None:
        """A bare model: a job of its own (tui.newjob), after asking when the current
        session has tuned values that would be dropped."""
        from ..newjob import ConfirmScreen  # noqa: PLC0415 - opened on demand
        from ..settings import SettingError, toml_value  # noqa: PLC0415

        app: Any = self.app
        if app.session is None:
            self._new_job(path)
            return
        try:
            tuned = {k: v for k, v in app.overrides().items() if k not in app.session.fixed}
            said = ", ".join(f"{k} = {toml_value(v)}" for k, v in tuned.items())
        except SettingError as exc:
            tuned, said = {"": None}, f"{exc} (and any other changes)"
        if not tuned:
            self._new_job(path)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._new_job(path)

        app.push_screen(ConfirmScreen(
            f"Open {path.name} as a new job?",
            f"The changes to {app.session.name} are not saved and would be dropped: {said}.\n"
            "Esc keeps them (Ctrl+S saves them first).", "Drop them and open"), answered)

    @work(thread=True, exclusive=True, group="session")
    def _new_job(self, path: Path) -> None:
        from engine.errors import EngineError  # noqa: PLC0415

        from ..newjob import PROMPT, new_session  # noqa: PLC0415

        app: Any = self.app
        try:
            session, why = new_session(path)
        except (EngineError, OSError) as exc:
            app.call_from_thread(app.show_error, "This model cannot be opened", str(exc),
                                 "Check the file, or open a job config (.toml) instead.")
            return
        task = session.config["evaluation"]["task"]
        app.call_from_thread(app._session_loaded, session, True)
        app.call_from_thread(
            app.notify, f"New job for {path.name}: task {task} ({why}), profile general.\n"
            f"Next: {PROMPT} in 2 Calibration.", title="New job", timeout=10)

    def tune_run(self) -> None:
        """Use the highlighted run's config (as it ran) as the session."""
        path = self.picked_run
        if path is None or not (Path(path) / "config.toml").is_file():
            self.app.notify("Highlight a run in 1 Models first.", severity="warning")
            return
        self.app.open_config(Path(path) / "config.toml", go=True)  # type: ignore[attr-defined]

    @on(OptionList.OptionHighlighted, "#picker")
    def _highlight(self, event: OptionList.OptionHighlighted) -> None:
        key = event.option.id or ""
        again = key == self.picked  # the list was refilled around the same item
        self.picked = key
        kind, _, path = key.partition(":")
        if kind == "run":
            self.show(self._run_preview(Path(path)))
        elif kind == "cfg":
            if again and path in self._previews:
                return
            self.show(self._previews.get(path, f"config   {path}\n\nreading…"))
            if self.app.painted:  # type: ignore[attr-defined]
                # Before the first screen is out, the app asks for it: reading a config
                # imports pydantic and h5py, in a thread but holding the GIL long enough to
                # delay the first screen by ~0.4 s (measured).
                self.preview_config(path)
        elif key == "open":
            self.show("Enter (or Ctrl+O) opens a file picker for a job config or a model file.")

    @on(OptionList.OptionSelected, "#picker")
    def _select(self, event: OptionList.OptionSelected) -> None:
        key = event.option.id or ""
        kind, _, path = key.partition(":")
        app: Any = self.app
        if kind == "cfg":
            app.open_config(Path(path), go=True)
        elif kind == "run":
            app.open_run(Path(path))
        elif key == "open":
            app.action_open()

    def _run_preview(self, path: Path) -> str:
        from .results import verdict_text  # noqa: PLC0415 - after the first paint

        rep = next((r for p, r in self.app.runs if p == path), None)  # type: ignore[attr-defined]
        if (path / "sweep.json").is_file():
            return f"{path.name}\n\nA sweep: Enter shows it in 6 Compare."
        if rep is None:
            return f"{path.name}\n\nThis run never finished: it has no report.json (see its log.txt)."
        return verdict_text(rep) + f"\n\nfolder: {path}\nEnter: results, layers and compare."

    def preview_highlighted(self) -> None:
        """The highlighted config's summary (the app calls it once the first screen is out)."""
        kind, _, path = self.picked.partition(":")
        if kind == "cfg":
            self.preview_config(path)

    @work(thread=True, exclusive=True, group="preview")
    def preview_config(self, path: str) -> None:
        from ..session import config_summary  # noqa: PLC0415

        text = config_summary(Path(path))
        self._previews[path] = text
        self.app.call_from_thread(self._show_preview, path, text)

    def _show_preview(self, path: str, text: str) -> None:
        if self.picked == f"cfg:{path}":
            self.show(text)


def job_name(run: str | Path) -> str:
    """'digits_ptq' from a run folder …/20261127-051023-digits_ptq."""
    parts = Path(run).name.split("-", 2)
    return parts[2] if len(parts) == 3 else Path(run).name


def run_label(path: Path, rep: Report | None) -> str:
    """'05:10 digits_ptq PTQ n200 PASS' from a run folder name 20261127-051023-digits_ptq."""
    parts = path.name.split("-", 2)
    when = f"{parts[1][:2]}:{parts[1][2:4]}" if len(parts) == 3 and len(parts[1]) >= 4 else ""
    name = job_name(path)
    if (path / "sweep.json").is_file():
        return f"{when} {name}  SWEEP"
    if rep is None:
        return f"{when} {name}  UNFINISHED"
    # A finished run shows its verdict; any other status (FAILED, CANCELLED) shows itself.
    # One word keeps the label inside the 80-column picker.
    v = say.verdict(rep)
    word = v[0] if rep.status == "ok" and v else rep.status.upper()
    method = rep.method.upper()
    n = rep.setting("calibration.samples")
    used = rep.data.calibration.used if rep.data.calibration else None
    # "n200→100": asked for 200, only 100 existed — two such runs must not look alike.
    count = f"n{n}→{used}" if used is not None and used != n else f"n{n}"
    return f"{when} {name} {method} {count} {word}"


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def run_labels(runs: list[tuple[Path, Report | None]]) -> list[str]:
    """Each run's label; runs whose labels would read alike get the config key that tells
    them apart ("epochs=2"), so QAT with 1 and with 2 epochs are not two identical lines."""
    labels = [run_label(p, r) for p, r in runs]
    # Without the time: two tries of one job at other minutes still look alike otherwise.
    bodies = [label.split(" ", 1)[-1] for label in labels]
    for i, (_, rep) in enumerate(runs):
        twins = [j for j, b in enumerate(bodies) if b == bodies[i] and j != i
                 and runs[j][1] is not None]
        if rep is None or not twins:
            continue
        mine = _flat(dict(rep.config or {}))
        for j in twins:
            other = _flat(dict(runs[j][1].config or {}))  # type: ignore[union-attr]
            keys = [k for k in mine if k != "name" and other.get(k) != mine[k]
                    and not k.endswith("path") and not k.endswith("runs_dir")]
            if keys:
                labels[i] += f" {keys[0].rsplit('.', 1)[-1]}={mine[keys[0]]}"
                break
    return labels
