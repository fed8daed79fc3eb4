"""``python -m engine.worker listen SOCKET``: the warm worker ``artq worker start`` leaves
running, which ``artq run`` reaches over a Unix socket instead of importing TensorFlow again.

It runs one job at a time, each as ``serve`` runs it (:func:`engine.serve.serve_one`: the
same events, the run's log on fds 1 and 2, preflight errors as one ``run_failed``), and keeps
its :class:`engine.backends.pool.BackendPool` between jobs, so a relaunch skips the
TensorFlow import and the model's load. One request per connection, one JSON line each::

    {"cmd": "hello"}    answered with {"kind": "hello", "version", "engine", "python", "pid"}
    {"cmd": "run", "config": PATH, "overrides": [...], "cache": DIR | null | false,
     "cwd": DIR}        the job's events, then its ``job_done``
    {"cmd": "cancel"}   (during a run, on the same connection) cancels it, as does the
                        connection's end: the run is marked cancelled and keeps its log
    {"cmd": "stop"}     the worker ends

``cwd`` is the client's: overrides and the default runs folder are read against it. The
worker keeps the environment it was started in. It ends after ``idle_s`` without a request,
on ``stop`` or on SIGTERM (a running job is cancelled first), and removes its socket.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from typing import Any

from .backends.pool import BackendPool
from .cancel import CancelToken
from .events import RunFailed
from .protocol import JobDone, JsonLineWriter
from .serve import parse_request, serve_one
from .warm import identity
from .worker import point_fds_at


def hello() -> dict[str, Any]:
    """Who this worker is: a client runs its job here only if all but the pid are its own
    (:func:`engine.warm.identity`)."""
    return {"kind": "hello", **identity(), "pid": os.getpid()}


class _Stop(Exception):
    pass


def listen(path: str, idle_s: float, log_path: str, warm: str = "keras") -> int:
    """Serve connections on the Unix socket ``path`` until ``stop``, SIGTERM or ``idle_s``
    seconds without one. fds 1 and 2 go to ``log_path`` between jobs."""
    point_fds_at(log_path)
    pool = BackendPool()
    current = [CancelToken()]
    busy = [False]
    ending = [False]

    def on_term(*_: object) -> None:
        ending[0] = True
        current[0].cancel()
        if not busy[0]:
            raise _Stop()

    def prestart() -> None:
        # Not interrupted halfway (a child started but not yet pooled would outlive us).
        busy[0] = True
        if warm:
            pool.prestart(warm)
        busy[0] = False
        if ending[0]:
            raise _Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = -1
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket: the caller checked that nothing answers on it
        old_mask = os.umask(0o177)  # the socket is its owner's only
        # Bound under another name and renamed once listening: a client that sees the
        # path never meets a socket that refuses it (seen on a loaded machine).
        pending = f"{path}~"  # one byte: the path's limit is checked with 7 to spare
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pending)  # left by a worker killed between the two
        try:
            srv.bind(pending)
        finally:
            os.umask(old_mask)
        try:
            srv.listen(8)
            os.rename(pending, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(pending)
            raise
        srv.settimeout(idle_s)
        bound = os.stat(path).st_ino
        prestart()  # the first job's TensorFlow processes start importing now
        while True:
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                return 0  # idle long enough: give the memory back
            busy[0] = True
            try:
                with conn:
                    conn.settimeout(None)
                    if _session(conn, pool, current, log_path):
                        return 0
            finally:
                busy[0] = False
            if ending[0]:
                return 3  # SIGTERM during a job: it was cancelled, now the worker ends
            prestart()  # after a cancel, which ended its processes: warm again
    except _Stop:
        return 3
    finally:
        busy[0] = True  # a late SIGTERM must not interrupt the children's ending
        srv.close()
        pool.close()
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == bound:  # not a newer worker's socket
                os.unlink(path)


class _ToClient:
    """The connection's writing end: a client gone (reset, closed) costs its events only."""

    def __init__(self, conn: socket.socket) -> None:
        self._f = conn.makefile("w", encoding="utf-8", buffering=1)

    def write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._f.write(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._f.flush()


def _session(conn: socket.socket, pool: BackendPool, current: list[CancelToken],
             log_path: str) -> bool:
    """One connection: its requests until it ends; True when it asked the worker to stop."""
    rfile = conn.makefile("r", encoding="utf-8")
    out = JsonLineWriter(_ToClient(conn))  # type: ignore[arg-type]
    while True:
        try:
            line = rfile.readline()
        except (OSError, UnicodeDecodeError):
            return False
        if not line:
            return False
        req = parse_request(line)
        cmd = req.get("cmd") if req is not None else None
        if cmd == "hello":
            out.write(hello())
        elif cmd == "stop":
            return True
        elif cmd == "cancel":
            continue  # no job runs: nothing to cancel
        else:
            _run(req, line, rfile, out, pool, current, log_path)
            return False


def _run(req: dict[str, Any] | None, line: str, rfile: Any, out: JsonLineWriter,
         pool: BackendPool, current: list[CancelToken], log_path: str) -> None:
    cancel = current[0] = CancelToken()

    def watch() -> None:
        # The client's "cancel", or its end (Ctrl-C twice, a closed terminal): cancel.
        with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
            while True:
                got = rfile.readline()
                if not got or (parse_request(got) or {}).get("cmd") == "cancel":
                    break
        cancel.cancel()

    cwd = (req or {}).get("cwd")
    here = os.getcwd()
    try:
        os.chdir(cwd if isinstance(cwd, str) else here)
    except OSError as exc:
        out(RunFailed("", "failed", "InputFileError", f"{cwd}: the warm worker cannot work in "
                      f"this folder ({exc.strerror})", "run with --no-worker"))
        out(JobDone(2, "", pool.stats()))
        return
    threading.Thread(target=watch, name="artq-client-watch", daemon=True).start()
    try:
        serve_one(req, line, out, cancel, pool, log_path)
    finally:
        os.chdir(here)
