"""Run folders: written atomically, never lost, never looking complete when they are not.

``runs/<time>-<name>/`` holds the config as run, ``events.jsonl``, ``log.txt``, the
``.tflite`` of each stage, ``report.json`` and ``report.md``. Every file is written to a
temporary name and renamed. ``report.json`` is written once, at the end, with ``status``
``ok``, ``failed`` or ``cancelled``; a folder without it is a run that never finished.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputFileError
from .events import Event, _json_default

REPORT = "report.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


_RUNS_DIR_HINT = "set --runs-dir or output.runs_dir to a folder you can write to"


def _runs_dir_error(root: Path, exc: OSError) -> InputFileError:
    """Say which part of the runs folder's path is wrong: a file in the way, or no access."""
    for part in (root, *root.parents):
        if part.exists() and not part.is_dir():
            what = "is a file" if part == root else f"lies under {part}, which is a file"
            return InputFileError(str(root), f"the runs folder {what}", _RUNS_DIR_HINT)
    return InputFileError(
        str(root), f"cannot create a run folder here ({exc.strerror or exc})", _RUNS_DIR_HINT
    )


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> RunDir:
        """A new, empty run folder under ``runs_dir`` (made if missing).

        Raises :class:`InputFileError` naming the runs folder when it is a file, lies under
        a file or cannot be written, so a bad ``--runs-dir`` is one line, not a traceback.
        """
        root = Path(runs_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _runs_dir_error(root, exc) from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(name)}"
        for i in range(1000):
            p = root / (base if i == 0 else f"{base}-{i}")
            try:
                p.mkdir()
                return cls(p)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _runs_dir_error(root, exc) from None
        raise InputFileError(str(root), "holds 1000 run folders with the same name and time",
                             _RUNS_DIR_HINT)

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    @property
    def work(self) -> Path:
        """Scratch space (exported SavedModel, calibration arrays); removed at the end."""
        p = self.path / ".work"
        p.mkdir(exist_ok=True)
        return p

    def write_text(self, name: str, text: str) -> Path:
        p = self.path / name
        atomic_write_text(p, text)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        p = self.path / name
        atomic_write_json(p, obj)
        return p


class EventLog:
    """Appends every event to ``events.jsonl`` (one line each, flushed)."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.write(event.to_json() + "\n")

    def close(self) -> None:
        with self._lock:
            self._f.close()


def list_runs(runs_dir: str | Path) -> list[Path]:
    """Run folders, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(runs, key=lambda p: p.name, reverse=True)
