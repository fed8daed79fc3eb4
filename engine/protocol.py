"""JSON lines between processes, on a private channel; the one way to start a worker.

TensorFlow writes to file descriptors 1 and 2 from C++ (115 foreign lines over a Textual
screen, measured), so a child process first moves its stdout pipe to a new descriptor for
the protocol, then points fds 1 and 2 at the run's log. Nothing TF prints can reach the
protocol or a user's screen.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

from .events import Event, _json_default, _register, event_from_dict


def open_private_channel(log_path: str | None) -> TextIO:
    """Return a text stream on the original stdout; fds 1 and 2 then go to ``log_path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    proto_fd = os.dup(1)
    target = log_path or os.devnull
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return os.fdopen(proto_fd, "w", buffering=1, encoding="utf-8")


class JsonLineWriter:
    """A sink writing each event (or plain dict) as one JSON line; safe across threads."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        self.write(event.to_dict())

    def write(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, separators=(",", ":"), default=_json_default)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                # The reader went away (UI closed); the run's own files still record it.
                pass


# --------------------------------------------------------- the one way to start a worker


def worker_command(subcommand: str, args: list[str], python: str = sys.executable) -> list[str]:
    """``python -m engine.worker SUBCOMMAND ARGS...``: every child a UI or a sweep starts."""
    return [python, "-m", "engine.worker", subcommand, *args]


def worker_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a worker: this checkout first on PYTHONPATH, so the child runs the
    same engine as its parent (an editable install may point at another checkout)."""
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ------------------------------------------------- events of the check and sweep commands
# Registered with the run's events, so event_from_dict rebuilds them; an older UI turns
# them into Log lines (unknown kinds), so adding them keeps PROTOCOL at 1.


@_register
@dataclass(frozen=True)
class DataPreview(Event):
    """``check``: preprocessed samples (downsampled, 0…1), their captions and statistics."""

    kind: ClassVar[str] = "data_preview"
    images: list[Any] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    stats: list[str] = field(default_factory=list)
    #: (message, hint) when the data could not be loaded or preprocessed.
    error: list[str] | None = None
    diag_note: str = ""
    #: Whether the config loaded (diagnostics follow only then).
    loaded: bool = False


@_register
@dataclass(frozen=True)
class DataDiagnostics(Event):
    """``check``: the engine's calibration diagnostics (findings as dicts), or why none."""

    kind: ClassVar[str] = "data_diagnostics"
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    diag_note: str = ""


@_register
@dataclass(frozen=True)
class SweepStarted(Event):
    """``sweep``: the sweep folder exists; one label and value set per variant, in order."""

    kind: ClassVar[str] = "sweep_started"
    sweep_dir: str
    labels: list[str] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)


@_register
@dataclass(frozen=True)
class VariantEvent(Event):
    """``sweep``: one event of variant ``index``'s run, as its own dict."""

    kind: ClassVar[str] = "variant"
    index: int
    event: dict[str, Any] = field(default_factory=dict)

    @property
    def inner(self) -> Event:
        return event_from_dict(self.event)


@_register
@dataclass(frozen=True)
class SweepFinished(Event):
    """``sweep``: sweep.json's data (status ok, failed or cancelled) and its folder."""

    kind: ClassVar[str] = "sweep_finished"
    sweep_dir: str
    data: dict[str, Any] = field(default_factory=dict)


@_register
@dataclass(frozen=True)
class JobDone(Event):
    """``serve``: one request is over; ``exit_code`` is what ``run`` would have returned for
    it (0 done, 2 bad input, 3 cancelled, ...). ``pool``: the warm worker's backends so far
    (``opened``, ``reused``: counts; ``idle_pids``: the idle TensorFlow children)."""

    kind: ClassVar[str] = "job_done"
    exit_code: int
    run_dir: str = ""
    pool: dict[str, Any] = field(default_factory=dict)


def read_event(line: str | bytes) -> Event | None:
    """One protocol line → its event; None for a line that is not one (never raises)."""
    try:
        d = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(d, dict):
        return None
    try:
        return event_from_dict(d)
    except TypeError:
        return None
