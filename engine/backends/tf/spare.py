"""The spare: a TensorFlow child forked by another once its import is done.

A job's float lane needs a second TensorFlow process beside the first. Started as a process
of its own, it imports TensorFlow again (~3.5 s of CPU, which on two cores is time taken
from the first). A child started with ``spare=True`` (:class:`~.process.TFProcess`) forks
it instead, right after its own import: the fork comes before any TensorFlow op has run, so
the only other threads are OpenBLAS's idle pools, which are fork-safe. The spare waits on a
socket until the parent hands it one of its own (its requests and replies), or exits when
the parent shuts that socket. It is the first child's child: the parent watches it through
a pidfd, and learns how it ended from the first child, which reaps it.

Importing this module imports no framework.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import IO, Any

#: The environment variable naming the socket a child forks its spare on.
SPARE_FD = "ARTQ_TF_SPARE_FD"


def spares_work() -> bool:
    """This system can hand a socket to another process and watch a grandchild (Linux),
    and ``ARTQ_SPARE=0`` is not set."""
    if not (hasattr(socket, "send_fds") and hasattr(os, "pidfd_open")):
        return False
    if os.environ.get("ARTQ_SPARE") == "0":  # the user's word: every child imports its own
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel older than 5.3
        return False
    return True


class SpareLink:
    """The parent's end of the socket a child forks its spare on, and what the child says
    there: the spare's pid once forked, then how it ended."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid: int | None = None
        self.pidfd: int | None = None
        self.code: int | None = None
        #: Set when the pid is known, or when the child can no longer fork (it ended).
        self.forked = threading.Event()
        #: Set when the child said how the spare ended, or can no longer say.
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True, name="tf-spare").start()

    def _read(self) -> None:
        try:
            with self.sock.makefile("r", encoding="utf-8") as lines:
                for line in lines:
                    msg = json.loads(line)
                    if "forked" in msg:
                        self.pid = int(msg["forked"])
                        # Opened at once, while the spare waits for its socket: the pid
                        # cannot have been reused yet.
                        with contextlib.suppress(OSError):
                            self.pidfd = os.pidfd_open(self.pid)
                        self.forked.set()
                    elif "ended" in msg:
                        self.code = int(msg["code"])
                        self.ended.set()
        except (OSError, ValueError):
            pass
        finally:
            self.forked.set()
            self.ended.set()
            self.sock.close()

    def close(self) -> None:
        """No spare wanted: it reads the end of its socket and exits."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Spare:
    """The calls :class:`TFProcess` makes on its ``Popen``, answered for a spare: a
    grandchild, signalled and watched through its pidfd, talking over a socket."""

    def __init__(self, link: SpareLink, channel: socket.socket) -> None:
        self._link = link
        self._channel = channel
        self.stdin: IO[str] | None = channel.makefile("w", encoding="utf-8")
        self.stdout: IO[str] | None = channel.makefile("r", encoding="utf-8")
        self._gone = False

    @property
    def pid(self) -> int:
        """Known once its parent has forked it (after its import): 0 until then."""
        self._link.forked.wait(5.0)
        return self._link.pid or 0

    @property
    def returncode(self) -> int | None:
        """None while it runs; then its code as its parent told it (1 until told)."""
        if not self._gone:
            return None
        return self._link.code if self._link.code is not None else 1

    def exit_code(self, timeout: float) -> int | None:
        """Its code, once its parent has told it. That parent reaps it, and first finishes
        a conversion of its own if it is in one (a conversion holds its interpreter lock):
        only a crash's message waits for this, not a close."""
        self._link.ended.wait(timeout)
        return self.returncode

    def _exited(self, timeout: float | None) -> bool:
        if not self._link.forked.wait(timeout):
            return False  # its parent is still importing TensorFlow
        fd = self._link.pidfd
        if fd is None:
            return True  # never forked (its parent ended first), or already gone
        watch = select.poll()  # a pidfd is readable once the process has ended
        watch.register(fd, select.POLLIN)
        return bool(watch.poll(None if timeout is None else int(timeout * 1000)))

    def poll(self) -> int | None:
        if not self._gone and self._exited(0):
            self._finish()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._gone:
            if not self._exited(timeout):
                raise subprocess.TimeoutExpired("the spare TensorFlow process", timeout or 0)
            self._finish()
        code = self.returncode
        assert code is not None
        return code

    def _finish(self) -> None:
        self._gone = True
        self._channel.close()
        if self._link.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._link.pidfd)
            self._link.pidfd = None

    def _signal(self, sig: signal.Signals) -> None:
        if self._link.pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._link.pidfd, sig)
        else:  # not forked yet: it finds its socket shut and exits
            with contextlib.suppress(OSError):
                self._channel.shutdown(socket.SHUT_RDWR)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


# --- child side ------------------------------------------------------------------------


def fork_spare(fd: int, channel: IO[str]) -> tuple[Iterable[str], Any, str] | None:
    """Fork the spare. In this child: None, once a thread watches the spare. In the spare:
    when the parent hands it a socket, its requests, its writer and its log; when the
    parent shuts the link instead (no second child wanted), it exits."""
    from ...protocol import JsonLineWriter  # noqa: PLC0415

    link = socket.socket(fileno=fd)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        def watch() -> None:
            _, status = os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                link.sendall(json.dumps({"ended": pid,
                                         "code": os.waitstatus_to_exitcode(status)}).encode()
                             + b"\n")

        with contextlib.suppress(OSError):  # the parent shut it already: the spare exits
            link.sendall(json.dumps({"forked": pid}).encode() + b"\n")
        threading.Thread(target=watch, daemon=True, name="spare-watch").start()
        return None
    # The spare: the first child's pipes are not its own.
    channel.close()
    sys.stdin.close()
    try:
        msg, fds, _, _ = socket.recv_fds(link, 65536, 1)
    except OSError:
        os._exit(0)
    link.close()
    if not fds:
        os._exit(0)
    log_path = str(json.loads(msg)["log_path"])
    from .process import _point_fds_at  # noqa: PLC0415 - the child's, already imported

    _point_fds_at(log_path)
    sock = socket.socket(fileno=fds[0])
    return (sock.makefile("r", encoding="utf-8"),
            JsonLineWriter(sock.makefile("w", encoding="utf-8")), log_path)
