"""Jobs for the TUI run in ``python -m engine.worker``, never in the UI's process.

Measured: a TFLite conversion in a thread froze a Textual UI for up to 3.7 s; as a child
process the UI never paused more than 60 ms and cancel took 0.05 s. The runner turns each
JSON line into a :class:`JobEvent` message; progress messages replace each other when they
pile up. It is injected into the app, so tests drive the UI with a fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from textual.message import Message

if TYPE_CHECKING:
    from engine.events import Event


# Longer than the worker's own grace for its TensorFlow child (3 s), so a cancelled run has
# time to write report.json (status "cancelled") before the group is killed.
GRACE_S = 8.0
NICE = 10


class JobEvent(Message):
    """One engine event from the running job."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # A newer progress of the same stage makes an unprocessed older one pointless.
        from engine.events import Progress  # noqa: PLC0415 - imported after the first paint

        return (
            isinstance(message, JobEvent)
            and isinstance(self.event, Progress)
            and isinstance(message.event, Progress)
            and message.event.stage == self.event.stage
        )


class JobExited(Message):
    """The worker process ended (``returncode`` as the CLI's exit codes; <0 by signal)."""

    def __init__(self, returncode: int, stderr: str = "") -> None:
        super().__init__()
        self.returncode = returncode
        self.stderr = stderr


Post = Callable[[Message], object]


class Runner(Protocol):
    running: bool

    async def start(
        self, config: str, overrides: list[str], post: Post, resume: bool = False
    ) -> None:
        """Start a job (``resume``: ``config`` is a QAT run folder to continue)."""

    async def cancel(self) -> None: ...


class WorkerRunner:
    """Spawns the engine worker and relays its events."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self.proc: asyncio.subprocess.Process | None = None
        self.running = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(
        self, config: str, overrides: list[str], post: Post, resume: bool = False
    ) -> None:
        if self.running:
            raise RuntimeError("a job is already running")
        args = [self.python, "-m", "engine.worker", config]
        if resume:
            args.append("--resume")
        for o in overrides:
            args += ["--set", o]
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        # asyncio subprocesses, not multiprocessing: spawn inside a running Textual app
        # fails with "bad value(s) in fds_to_keep" (measured).
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own group: a kill reaches the TF grandchild too
            limit=1 << 22,
        )
        # The job yields the CPU to the UI: on 2 cores a conversion and an evaluation on every
        # core otherwise starve the UI's process (heartbeat gaps of 0.6 s measured, 30 ms
        # when idle). Set on the whole group now, before the worker starts its TF child,
        # which inherits it.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PGRP, self.proc.pid, NICE)
        self.running = True
        self._task = asyncio.create_task(self._pump(post))

    async def _pump(self, post: Post) -> None:
        from engine.events import event_from_dict  # noqa: PLC0415 - not at start-up

        proc = self.proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        err_task = asyncio.create_task(proc.stderr.read())
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            try:
                post(JobEvent(event_from_dict(json.loads(line))))
            except (json.JSONDecodeError, TypeError):
                continue
        rc = await proc.wait()
        stderr = (await err_task).decode(errors="replace")[-2000:]
        self.running = False
        post(JobExited(rc, stderr))

    async def cancel(self) -> None:
        """SIGTERM (the worker marks the run cancelled), then kill the group after a grace."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(proc.wait(), GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


class SweepDone(Message):
    """``artq sweep`` ended: its sweep.json data (None when it failed) and its exit code."""

    def __init__(self, returncode: int, data: dict | None, stderr: str = "") -> None:
        super().__init__()
        self.returncode = returncode
        self.data = data
        self.stderr = stderr


class SweepRunner:
    """Runs ``artq sweep`` (its own child processes, its own cache) and says when it is done.

    A sweep reports per-variant progress only to its rich display, so the workbench shows
    the elapsed time and reads sweep.json at the end. Cancel is SIGINT, as at a terminal
    (the sweep marks itself cancelled and keeps the finished variants).
    """

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self.proc: asyncio.subprocess.Process | None = None
        self.running = False

    async def start(self, config: str, sets: list[str], runs_dir: str, post: Post) -> None:
        if self.running:
            raise RuntimeError("a sweep is already running")
        args = [self.python, "-m", "engine.cli", "sweep", config, "--runs-dir", runs_dir, "-q", "--json"]
        for s in sets:
            args += ["--set", s]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True, limit=1 << 24)
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PGRP, self.proc.pid, NICE)
        self.running = True
        asyncio.create_task(self._wait(post))

    async def _wait(self, post: Post) -> None:
        proc = self.proc
        assert proc is not None
        out, err = await proc.communicate()
        data = None
        with contextlib.suppress(json.JSONDecodeError, ValueError):
            data = json.loads(out) if out.strip() else None
        self.running = False
        post(SweepDone(proc.returncode if proc.returncode is not None else 1, data,
                       err.decode(errors="replace")[-2000:]))

    async def cancel(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), GRACE_S * 2)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
