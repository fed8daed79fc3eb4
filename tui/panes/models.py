"""1 Models: bundled samples, recent runs, and the chosen model's summary before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from engine import present as say

from .. import format as fmt

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


class ModelsPane(Horizontal):
    """Left: what can be opened. Right: what it is."""

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
        for path, rep in runs:
            picker.add_option(Option(f"  {run_label(path, rep)}", id=f"run:{path}"))
        picker.add_option(Option("── Ctrl+O: open a file… ──", id="open"))
        index = None
        if keep:
            try:
                index = picker.get_option_index(keep)
            except Exception:  # noqa: BLE001 - the kept option may be gone: fall back
                index = None
        picker.highlighted = index if index is not None else (1 if samples else None)

    def show(self, text: str) -> None:
        self.query_one("#summary", Static).update(text)


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
