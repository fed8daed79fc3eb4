"""``python -m engine.worker serve``: job after job in one worker, TensorFlow kept warm.

The request format and the events are described in :mod:`engine.worker`. Each job runs
through :func:`engine.worker.run_one`, exactly as ``run`` runs it, with a
:class:`engine.backends.pool.BackendPool` as its backend factory: the TensorFlow children
a job closes wait, reset, for the next one.
"""

from __future__ import annotations

import json
import os
import signal
import site
import sys
import traceback
from pathlib import Path
from typing import Any

from .backends.pool import BackendPool
from .cancel import CancelToken
from .errors import EngineError
from .events import RunFailed
from .protocol import JobDone, JsonLineWriter
from .worker import point_fds_at, run_one

REQUEST_HINT = ('send one JSON object per line: {"cmd": "run", "config": PATH, '
                '"overrides": ["KEY=VALUE", ...]}, {"cmd": "warm", "format": "keras"} or '
                '{"cmd": "quit"}')


class _Ended(Exception):
    """SIGTERM while no job runs: nothing to cancel, the worker ends."""


def serve(out: JsonLineWriter, cancel: CancelToken) -> int:
    """Serve requests from stdin until its end, ``quit`` or SIGTERM; the exit code: 3 when a
    SIGTERM ended it (a job cancelled, or none running), else 0."""
    pool = BackendPool()
    busy = [False]

    def on_term(*_: object) -> None:
        cancel.cancel()
        if not busy[0]:
            raise _Ended()

    signal.signal(signal.SIGTERM, on_term)
    try:
        while True:
            line = sys.stdin.readline()
            if not line:
                return 0
            busy[0] = True
            if not line.strip():
                busy[0] = False
                continue
            req = parse_request(line)
            if req is not None and req.get("cmd") == "quit":
                return 0
            if req is not None and req.get("cmd") == "warm":
                # No job and no answer: a TensorFlow child starts importing for the next one.
                pool.prestart(str(req.get("format", "")))
                busy[0] = False
                continue
            serve_one(req, line, out, cancel, pool)
            if cancel.cancelled:
                return 3
            busy[0] = False
    except _Ended:
        return 3
    finally:
        busy[0] = True  # a late SIGTERM must not interrupt the children's ending
        pool.close()


def forget_user_modules(before: set[str]) -> None:
    """Drop the modules a job imported from outside Python's and artq's own folders: a
    PyTorch model's code and its siblings run in this process, and an edit to them must show
    in the next launch as it does in a one-shot worker."""
    own = tuple(str(Path(p).resolve()) + os.sep for p in {
        sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(),
        str(Path(__file__).resolve().parent)})
    for name in set(sys.modules) - before:
        where = getattr(sys.modules.get(name), "__file__", None)
        if where and not str(Path(where).resolve()).startswith(own):
            del sys.modules[name]


def parse_request(line: str) -> dict[str, Any] | None:
    try:
        req = json.loads(line)
    except json.JSONDecodeError:
        return None
    return req if isinstance(req, dict) else None


def _valid(req: dict[str, Any] | None) -> bool:
    if req is None or req.get("cmd") != "run" or not isinstance(req.get("config"), str):
        return False
    overrides = req.get("overrides", [])
    cache = req.get("cache")
    return (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)
            and (cache is None or cache is False or isinstance(cache, str)))


def serve_one(req: dict[str, Any] | None, line: str, out: JsonLineWriter, cancel: CancelToken,
              pool: BackendPool, idle_fds: str = os.devnull) -> int:
    """One run request as both warm workers serve it (``serve`` here, ``listen`` on a
    socket): the job; then the modules it imported forgotten, fds 1 and 2 back on
    ``idle_fds`` until the next run's folder exists, and its ``job_done``. Its exit code."""
    before = set(sys.modules)
    rc, run_dir = _run_request(req, line, out, cancel, pool)
    forget_user_modules(before)
    point_fds_at(idle_fds)
    out(JobDone(rc, run_dir, pool.stats()))
    return rc


def _run_request(req: dict[str, Any] | None, line: str, out: JsonLineWriter,
                 cancel: CancelToken, pool: BackendPool) -> tuple[int, str]:
    """The job; its exit code (as ``run``'s) and its run folder ("" if none)."""
    if req is None or not _valid(req):
        out(RunFailed("", "failed", "ConfigError",
                      f"serve: not a run request: {line.strip()[:200]}", REQUEST_HINT))
        return 2, ""
    started: list[str] = []
    try:
        rc = run_one(req["config"], list(req.get("overrides", [])), bool(req.get("resume")),
                     req.get("cache"), out, cancel, backend=pool, started=started)
    except EngineError as exc:
        if not getattr(exc, "run_dir", None):
            # Stopped before a run folder existed: say so on the channel, as ``run`` does.
            out(RunFailed("", "failed", type(exc).__name__, exc.message, exc.hint))
        rc = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - ``run`` would have died here: this job only
        traceback.print_exc(file=sys.stderr)
        out(RunFailed("", "failed", "EngineError", f"internal error: {type(exc).__name__}: "
                      f"{exc}", "this is a bug in artq; the traceback went to the worker's "
                      "stderr"))
        rc = 1
    return rc, started[-1] if started else ""
