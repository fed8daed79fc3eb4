"""What the workbench works on: the job config (a :class:`~tui.settings.Session`), the
sample configs, and the runs' reports (read once per change of report.json)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .panes.models import config_text, model_text
from .settings import Session, base_values

if TYPE_CHECKING:
    from engine.report import Report


@dataclass
class RunsAsks:
    """What callers asked of the next read of the runs folder (a run just done, to compare; a
    sweep just done, to show), kept apart from the reads themselves: each read cancels the one
    before, and a read cancelled before its thread started never runs. Seen: the 2 s poll
    fired in the tick a sweep ended, and the sweep never showed in 6 Compare."""

    read: int = 0  # reads asked for; only the newest one's listing is shown
    pending: str | None = None
    new_sweep: bool = False

    def ask(self, pending: str | None, new_sweep: bool) -> int:
        self.pending = pending or self.pending
        self.new_sweep = self.new_sweep or new_sweep
        self.read += 1
        return self.read

    def take(self) -> tuple[str | None, bool]:
        asked = self.pending, self.new_sweep
        self.pending, self.new_sweep = None, False
        return asked


_REPORTS: dict[str, tuple[float, Report | None]] = {}


def read_report(run_dir: str | Path) -> Report | None:
    """engine.report.read_report, remembered until report.json changes: the runs list is
    read again after every job, and parsing thirty reports held the GIL for ~0.1 s."""
    p = Path(run_dir) / "report.json"
    try:
        mtime = p.stat().st_mtime
    except OSError:
        return None
    hit = _REPORTS.get(str(p))
    if hit is not None and hit[0] == mtime:
        return hit[1]
    # Not at start-up: the first screen needs no report.
    from engine.report import read_report as _read_report  # noqa: PLC0415

    rep = _read_report(run_dir)
    _REPORTS[str(p)] = (mtime, rep)
    return rep


def runs_signature(runs_dir: Path, n: int = 30) -> tuple[Any, ...]:
    """What changes when a run folder appears, goes or gets a file (report.json is renamed
    into its folder, which changes the folder's time): the folder's and its newest ``n``
    folders' modification times. A few dozen stat calls: cheap enough to poll."""
    import os  # noqa: PLC0415

    try:
        with os.scandir(runs_dir) as it:
            dirs = sorted((e for e in it if e.is_dir()), key=lambda e: e.name, reverse=True)[:n]
            return (Path(runs_dir).stat().st_mtime_ns,
                    tuple((e.name, e.stat().st_mtime_ns) for e in dirs))
    except OSError:
        return ()


def finished(runs: list[tuple[Path, Report | None]]) -> list[str]:
    """The folders of the runs that got as far as a stage, newest first."""
    return [str(p) for p, r in runs if r is not None and r.finished]


def sample_configs() -> list[Path]:
    """Job configs in ./sample_configs (or the checkout's), sorted."""
    root = Path(__file__).resolve().parents[1]
    for d in (Path.cwd() / "sample_configs", root / "sample_configs"):
        if d.is_dir():
            return sorted(d.glob("*.toml"))
    return []


def config_summary(path: Path, fixed: dict[str, Any] | None = None) -> str:
    """The model and the config in words, or why the config cannot be used (a thread: it
    imports pydantic and reads the model file)."""
    from engine.config import load_config  # noqa: PLC0415
    from engine.errors import EngineError  # noqa: PLC0415
    from engine.inspect_model import model_summary  # noqa: PLC0415

    try:
        cfg = load_config(path, fixed or None)
    except EngineError as exc:
        return f"config       {path}\n\nCannot use this config:\n{exc}"
    d = cfg.to_dict()
    return model_text(_summary(cfg, model_summary)) + "\n\n" + config_text(d, str(path))


def load_session(path: Path, fixed: dict[str, Any], template: bool) -> Session:
    """The session for a config file; raises EngineError when it does not load."""
    from engine.config import load_config  # noqa: PLC0415
    from engine.inspect_model import model_summary  # noqa: PLC0415

    cfg = load_config(path, fixed or None)
    d = cfg.to_dict()
    return Session(path, cfg.name, base_values(d), d, dict(fixed),
                   _summary(cfg, model_summary), template)


def _summary(cfg: Any, model_summary: Any) -> dict[str, Any]:
    """The model file's summary, or a PyTorch model's (its code and weights) — no torch."""
    if cfg.model.torch:
        from engine.torch_model import torch_model_summary  # noqa: PLC0415

        return torch_model_summary(cfg.model.torch, cfg.model.weights, cfg.model.input_shape)
    return model_summary(cfg.model.path)


def session_text(session: Session) -> str:
    return model_text(session.model) + "\n\n" + config_text(session.config, str(session.config_path))
