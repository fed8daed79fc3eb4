"""The warm worker ``artq worker start`` leaves running (:mod:`engine.listen`), seen from its
clients: where its socket is, starting and stopping it, and one job sent to it.

``artq run`` sends its job there when one answers as this very artq (same version, same
engine folder, same Python); otherwise it runs the job itself, as it always has. The socket
lives in a folder only its owner may enter: ``$ARTQ_WORKER_SOCKET``, else
``$XDG_RUNTIME_DIR/artq/worker.sock``, else ``<tmp>/artq-<uid>/worker.sock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import EngineError, InputFileError
from .events import Event
from .protocol import JobDone, read_event, worker_command, worker_env

SOCKET_ENV = "ARTQ_WORKER_SOCKET"
#: How long a worker waits for a request before it ends and gives its memory back.
IDLE_MINUTES = 30.0


def identity() -> dict[str, str]:
    """This artq as a warm worker names itself: a job goes only to a worker running the
    same version from the same engine folder with the same Python."""
    return {"version": __version__, "engine": str(Path(__file__).resolve().parent),
            "python": sys.executable}


class WorkerLost(EngineError):
    """The warm worker ended in the middle of a job (killed, or out of memory)."""


def socket_path() -> Path:
    if env := os.environ.get(SOCKET_ENV):
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "artq" / "worker.sock"
    return Path(tempfile.gettempdir()) / f"artq-{os.getuid()}" / "worker.sock"


def _private_dir(sock: Path) -> Path:
    """The socket's folder, made if missing; refused when someone else could enter it."""
    d = sock.parent
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = d.stat()
    except OSError as exc:
        raise InputFileError(str(d), f"cannot make the warm worker's folder ({exc.strerror})",
                             f"set {SOCKET_ENV} to a socket path in a folder of your own") from None
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise InputFileError(str(d), "the warm worker's folder is open to other users",
                             f"chmod 700 {d}, or set {SOCKET_ENV} to a path in a folder of "
                             "your own") from None
    return d


@dataclass(frozen=True)
class Worker:
    """A warm worker that answered."""

    path: Path
    pid: int
    version: str


class Connection:
    """One job's connection to the warm worker (:func:`connect`)."""

    def __init__(self, sock: socket.socket, worker: Worker) -> None:
        self._sock = sock
        self.worker = worker
        self._rfile = sock.makefile("r", encoding="utf-8")

    def _send(self, payload: dict[str, Any]) -> None:
        self._sock.sendall((json.dumps(payload) + "\n").encode())

    def run(self, config: str, overrides: list[str], cache: str | bool | None,
            sink: Callable[[Event], None]) -> JobDone:
        """Run a job there: its events to ``sink``; its ``job_done`` (exit code, run folder)."""
        self._sock.settimeout(None)  # a job takes as long as it takes
        self._send({"cmd": "run", "config": str(Path(config).resolve()),
                    "overrides": overrides, "cache": cache, "cwd": os.getcwd()})
        for line in self._rfile:
            ev = read_event(line)
            if isinstance(ev, JobDone):
                return ev
            if ev is not None:
                sink(ev)
        raise WorkerLost(f"the warm worker (pid {self.worker.pid}) ended during the job",
                         "its run folder, if it has one, keeps the log; run again, or with "
                         "--no-worker to run the job here")

    def cancel(self) -> None:
        """Ask for the job's cancel: it is marked cancelled and keeps its log."""
        with contextlib.suppress(OSError):
            self._send({"cmd": "cancel"})

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._send({"cmd": "stop"})

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._rfile.close()
            self._sock.close()


def connect(path: Path | None = None, timeout: float = 2.0) -> tuple[Connection | None, str]:
    """The warm worker, if one listens and runs this artq; else None, and why when one does
    listen but cannot take the job ("" when none runs)."""
    sock_path = path or socket_path()
    if not sock_path.exists():
        return None, ""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
        s.sendall(b'{"cmd": "hello"}\n')
        conn = Connection(s, Worker(sock_path, 0, ""))
        line = conn._rfile.readline()
    except (ConnectionRefusedError, FileNotFoundError):
        s.close()
        return None, ""  # a socket its worker left behind
    except TimeoutError:
        s.close()
        return None, "the warm worker is busy with another job"
    except OSError as exc:
        s.close()
        return None, f"the warm worker at {sock_path} did not answer ({exc})"
    try:
        info = json.loads(line)
    except json.JSONDecodeError:
        info = {}
    me = identity()
    if not isinstance(info, dict) or any(info.get(k) != v for k, v in me.items()):
        conn.close()
        return None, (f"the warm worker runs another artq ({info.get('version', '?')} from "
                      f"{info.get('engine', '?')}); restart it: artq worker stop, then "
                      "artq worker start")
    conn.worker = Worker(sock_path, int(info.get("pid", 0)), str(info.get("version", "")))
    return conn, ""


def start(idle_minutes: float = IDLE_MINUTES, path: Path | None = None,
          wait_s: float = 30.0) -> Worker:
    """Start a warm worker in the background (or find the one running); its identity."""
    sock_path = path or socket_path()
    conn, why = connect(sock_path)
    if conn is not None:
        conn.close()
        return conn.worker
    if why:
        raise InputFileError(str(sock_path), why, "artq worker stop, then artq worker start")
    if len(os.fsencode(sock_path)) > 100:  # the kernel's limit for a socket's path: 107
        raise InputFileError(str(sock_path), "too long for a socket's path",
                             f"set {SOCKET_ENV} to a shorter one")
    folder = _private_dir(sock_path)
    log = folder / "worker.log"
    proc = subprocess.Popen(
        worker_command("listen", [str(sock_path), "--idle-s", str(idle_minutes * 60),
                                  "--log", str(log)]),
        env=worker_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)  # outlives this command
    (folder / "worker.pid").write_text(f"{proc.pid}\n", encoding="utf-8")
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise EngineError(f"the warm worker ended at its start (code {proc.returncode})",
                              f"its log: {log}")
        conn, _ = connect(sock_path)
        if conn is not None:
            conn.close()
            return conn.worker
        time.sleep(0.05)
    proc.terminate()
    raise EngineError(f"the warm worker did not answer within {wait_s:.0f} s",
                      f"its log: {log}")


def stop(path: Path | None = None, wait_s: float = 30.0) -> int | None:
    """End the warm worker (a job it runs is cancelled first); its pid, None if none ran."""
    sock_path = path or socket_path()
    conn, why = connect(sock_path)
    pid: int | None = None
    if conn is not None:
        pid = conn.worker.pid
        conn.stop()
        conn.close()
    elif why:  # busy, or another artq's: SIGTERM cancels its job and ends it
        with contextlib.suppress(OSError, ValueError):
            pid = int((sock_path.parent / "worker.pid").read_text(encoding="utf-8"))
            cmdline = Path(f"/proc/{pid}/cmdline")
            if cmdline.exists() and b"listen" not in cmdline.read_bytes():
                return None  # that pid is some other process now
            os.kill(pid, signal.SIGTERM)
    if pid is None:
        return None
    end = time.monotonic() + wait_s
    while (sock_path.exists() or _running(pid)) and time.monotonic() < end:
        time.sleep(0.05)
    return pid


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs: ended but not yet reaped (a zombie) counts as ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return True
