"""JSON lines between processes, on a private channel.

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
from typing import Any, TextIO

from .events import Event, _json_default


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
