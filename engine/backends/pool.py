"""Backends kept between jobs: a warm worker's TensorFlow processes (``engine.worker serve``).

A TF backend's child spends most of a relaunch importing TensorFlow (crnn_conv: ~3.5 s of
5.9 s, measured), so a worker that runs job after job keeps its idle children here and
hands one to the next job of a TF model instead of starting another. A pooled backend is
rebound to the new job (its log, sink, cancel token, work folder) when handed out, and
reset (its state and Keras session cleared) when the job closes it. Never pooled: other
formats (ONNX and PyTorch run in-process), QAT's (Keras 2, set before TF is imported), and
a backend whose process died (a crash, or a cancel, which ends the child): crash and
cancel isolation stay those of a fresh process. Importing this module imports no framework.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..modelfile import TF_FORMATS
from . import Backend, BackendFactory, BackendOptions

#: The main backend and the float lane's: what a PTQ job opens at most.
MAX_IDLE = 2


@runtime_checkable
class Reusable(Protocol):
    """What a backend offers to be pooled."""

    def alive(self) -> bool:
        """Its process still runs (False after a crash, a cancel or a close)."""

    def rebind(self, options: BackendOptions) -> None:
        """Serve a new job: its log, sink, cancel token and work folder from now on."""

    def reset(self) -> None:
        """Forget the last job (state, sessions); raise an EngineError if it cannot."""

    def close(self) -> None: ...


def poolable(fmt: str, options: BackendOptions) -> bool:
    """A backend for this job may come from (and go back to) the pool."""
    return fmt in TF_FORMATS and not options.legacy_keras


class BackendPool:
    """A :data:`~engine.backends.BackendFactory` (call it) that reuses idle backends.

    ``opener`` opens a fresh backend (default :func:`engine.backends.open_backend`). The
    backends it hands out for poolable jobs are wrapped: their ``close()`` gives them back
    (at most :data:`MAX_IDLE` are kept; more are closed). :meth:`close` ends the idle ones.
    """

    def __init__(self, opener: BackendFactory | None = None, max_idle: int = MAX_IDLE) -> None:
        if opener is None:
            from . import open_backend  # noqa: PLC0415 - the parent side only, no framework

            opener = open_backend
        self._opener = opener
        self.max_idle = max_idle
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        #: Fresh backends opened for poolable jobs, and idle ones handed out again.
        self.opened = 0
        self.reused = 0

    def __call__(self, fmt: str, options: BackendOptions) -> Backend:
        if not poolable(fmt, options):
            return self._opener(fmt, options)
        while (idle := self._take()) is not None:
            try:
                idle.rebind(options)
            except Exception:  # noqa: BLE001 - died since (a crash): never used, try the next
                idle.close()
                continue
            self.reused += 1
            return _Lent(self, idle)
        be = self._opener(fmt, options)
        self.opened += 1
        return _Lent(self, be) if isinstance(be, Reusable) else be

    def prestart(self, fmt: str) -> bool:
        """Fill the idle backends (:data:`MAX_IDLE`: the job's and its float lane's) for a
        job of this format to come (the TUI asks when a session opens a Keras model: the
        first launch then skips TensorFlow's import in both). Nothing when they are idle
        already, or the format's backends are not pooled."""
        options = BackendOptions.ahead(Path(os.devnull))  # its import's chatter: nowhere
        started = False
        while poolable(fmt, options) and self.idle < self.max_idle:
            be = self._opener(fmt, options)
            self.opened += 1
            if not isinstance(be, Reusable):
                be.close()
                break
            with self._lock:
                self._idle.append(be)
            started = True
        return started

    def _take(self) -> Any | None:
        with self._lock:
            while self._idle:
                be = self._idle.pop()
                if be.alive():
                    return be
                be.close()  # died while idle: never handed out
        return None

    def _give_back(self, be: Any) -> None:
        if be.alive():
            try:
                be.reset()
            except Exception:  # noqa: BLE001 - a cancel or a crash during the reset
                be.close()
                return
            with self._lock:
                if be.alive() and len(self._idle) < self.max_idle:
                    self._idle.append(be)
                    return
        be.close()

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def idle_pids(self) -> list[int]:
        """Process ids of the idle backends (those that say theirs)."""
        with self._lock:
            return [p for be in self._idle if (p := getattr(be, "pid", None)) is not None]

    def stats(self) -> dict[str, Any]:
        return {"opened": self.opened, "reused": self.reused, "idle_pids": self.idle_pids()}

    def close(self) -> None:
        """End every idle backend (the worker is ending)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for be in idle:
            be.close()


class _Lent:
    """A pooled backend as a job sees it: every call goes through; the first ``close()``
    gives it back to the pool, later ones do nothing (a job closes its backends twice)."""

    def __init__(self, pool: BackendPool, be: Any) -> None:
        self._pool: BackendPool | None = pool
        self._be = be

    def __getattr__(self, name: str) -> Any:
        return getattr(self._be, name)

    @property
    def inner(self) -> Any:
        return self._be

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._give_back(self._be)
