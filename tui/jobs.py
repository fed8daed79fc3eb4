"""Every child process of the TUI is ``python -m engine.worker``, started by :func:`spawn`.

Measured: a TFLite conversion in a thread froze a Textual UI for up to 3.7 s; as a child
process the UI never paused more than 60 ms and cancel took 0.05 s. Jobs, sweeps and data
checks all run there: :func:`spawn` starts one (``run``, ``serve``, ``check`` or ``sweep``), its JSON
lines come back as events (:func:`events`), and :func:`stop` cancels it (SIGTERM, then
SIGKILL to its process group after a grace). The runners are injected into the app, so
tests drive the UI with fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from textual.message import Message

from .messages import JobEvent, JobExited, SweepDone, SweepProgress

if TYPE_CHECKING:
    from engine.events import Event

# Longer than the worker's own grace for its TensorFlow child (3 s), so a cancelled run has
# time to write report.json (status "cancelled") before the group is killed.
GRACE_S = 8.0
NICE = 10

Post = Callable[[Message], object]
Deliver = Callable[[dict[str, Any]], object]
Process = asyncio.subprocess.Process


async def spawn(subcommand: str, args: list[str], python: str = sys.executable,
                stdin: int = asyncio.subprocess.DEVNULL) -> Process:
    """Start ``python -m engine.worker SUBCOMMAND ARGS`` with its protocol on stdout
    (``stdin``: a pipe for ``serve``, which reads its requests there)."""
    from engine.protocol import worker_command, worker_env  # noqa: PLC0415 - not at start-up

    # asyncio subprocesses, not multiprocessing: spawn inside a running Textual app fails
    # with "bad value(s) in fds_to_keep" (measured).
    proc = await asyncio.create_subprocess_exec(
        *worker_command(subcommand, args, python),
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=worker_env(),
        start_new_session=True,  # its own group: a kill reaches its children too
        limit=1 << 24,
    )
    # The work yields the CPU to the UI: on 2 cores a conversion and an evaluation on every
    # core otherwise starve the UI's process (heartbeat gaps of 0.6 s measured, 30 ms when
    # idle). Set on the whole group now, before the worker starts its own children.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PGRP, proc.pid, NICE)
    return proc


async def events(proc: Process) -> AsyncIterator[Event]:
    """The worker's events, as they come, until it closes its channel."""
    from engine.protocol import read_event  # noqa: PLC0415 - registers the check/sweep kinds

    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        ev = read_event(line)
        if ev is not None:
            yield ev


async def finish(proc: Process, err: asyncio.Task[bytes]) -> tuple[int, str]:
    """Its exit code and the end of its stderr."""
    rc = await proc.wait()
    return rc, (await err).decode(errors="replace")[-2000:]


def read_stderr(proc: Process) -> asyncio.Task[bytes]:
    assert proc.stderr is not None
    return asyncio.create_task(proc.stderr.read())


async def stop(proc: Process | None, grace: float = GRACE_S) -> None:
    """SIGTERM (the worker marks its work cancelled), then kill the group after ``grace``."""
    if proc is None or proc.returncode is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


class Runner(Protocol):
    running: bool

    async def start(
        self, config: str, overrides: list[str], post: Post, resume: bool = False
    ) -> None:
        """Start a job (``resume``: ``config`` is a QAT run folder to continue)."""

    async def cancel(self) -> None: ...


class WorkerRunner:
    """A job: each event becomes a :class:`JobEvent`, its end a :class:`JobExited`.

    Warm (the default): one ``engine.worker serve`` kept alive between jobs, so a relaunch
    finds TensorFlow imported (crnn_conv: see benchmarks/warm_relaunch.py); each launch is
    one request on its stdin, and its ``job_done`` event gives the exit code. A resume, or
    ``ARTQ_WARM=0`` in the environment, runs a one-shot ``engine.worker run`` as before.
    Cancel is :func:`stop` either way; the runner then forgets that worker, and the next
    launch starts a fresh one.
    """

    def __init__(self, python: str = sys.executable, warm: bool | None = None) -> None:
        self.python = python
        self.warm = os.environ.get("ARTQ_WARM", "1") != "0" if warm is None else warm
        #: The worker running the current (or last) job.
        self.proc: Process | None = None
        self.running = False
        self._serve: Process | None = None
        self._ending: Process | None = None
        self._post: Post | None = None
        # A warm-up and a launch may both ask for the worker while it is being spawned:
        # two would start, and the first job's worker would not be the one kept.
        self._spawning = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(
        self, config: str, overrides: list[str], post: Post, resume: bool = False
    ) -> None:
        if self.running:
            raise RuntimeError("a job is already running")
        if self.warm and not resume:
            request = {"cmd": "run", "config": config, "overrides": list(overrides)}
            for _ in range(2):  # a worker that died while idle: once more on a fresh one
                serve = await self._serve_worker()
                if await _send(serve, request):
                    # Set before the loop runs the pump again: no event of this job is missed.
                    self.proc, self.running, self._post = serve, True, post
                    return
                self._serve = None
        args = [config, *(["--resume"] if resume else [])]
        for o in overrides:
            args += ["--set", o]
        self.proc = await spawn("run", args, self.python)
        self.running = True
        asyncio.create_task(self._pump(self.proc, post))

    async def warm_up(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        """A session was opened: for a job that will want one, the warm worker starts a
        TensorFlow process now, while the user tunes, so the first launch skips its import."""
        fmt = warm_format(model, config)
        if self.warm and not self.running and fmt is not None:
            await _send(await self._serve_worker(), {"cmd": "warm", "format": fmt})

    async def _serve_worker(self) -> Process:
        async with self._spawning:
            if self._serve is None or self._serve.returncode is not None:
                self._serve = await spawn("serve", [], self.python,
                                          stdin=asyncio.subprocess.PIPE)
                asyncio.create_task(self._pump_serve(self._serve))
            return self._serve

    async def _pump(self, proc: Process, post: Post) -> None:
        err = read_stderr(proc)
        async for ev in events(proc):
            post(JobEvent(ev))
        rc, stderr = await finish(proc, err)
        self.running = False
        post(JobExited(rc, stderr))

    async def _pump_serve(self, proc: Process) -> None:
        from engine.protocol import JobDone  # noqa: PLC0415

        err = read_stderr(proc)
        code: int | None = None
        async for ev in events(proc):
            post = self._post
            if isinstance(ev, JobDone):
                if proc is self._ending:
                    code = ev.exit_code  # cancelled: said once the worker has ended
                    continue
                if self.proc is proc:
                    self.running = False
                if post is not None:
                    post(JobExited(ev.exit_code, ""))
                self._post = None
            elif post is not None:
                post(JobEvent(ev))
        rc, stderr = await finish(proc, err)
        if self._serve is proc:
            self._serve = None
        if self._post is not None and self.proc is proc:  # cancelled, or died mid-job
            self.running = False
            self._post(JobExited(rc if code is None else code, stderr))
            self._post = None

    async def cancel(self) -> None:
        proc = self.proc
        if proc is not None and proc is self._serve:
            # Cancel ends the warm worker too (the next job gets a new one); the job's end
            # is posted once it has exited, as a one-shot worker's is.
            self._serve, self._ending = None, proc
        await stop(proc)

    async def close(self) -> None:
        """End the warm worker (the app quits): its stdin closed, then :func:`stop`."""
        serve, self._serve = self._serve, None
        if serve is None or serve.returncode is not None:
            return
        if serve.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                serve.stdin.close()
        try:
            await asyncio.wait_for(serve.wait(), GRACE_S)
        except TimeoutError:
            await stop(serve)


def warm_format(model: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The model format to start a TensorFlow process for, for a session's job: a Keras or
    SavedModel PTQ job's; None for QAT's (Keras 2, chosen at the process's start) and for
    ONNX and PyTorch models (they run in the worker itself)."""
    from engine.modelfile import TF_FORMATS  # noqa: PLC0415 - framework-free, no backend

    fmt = (model or {}).get("format")
    method = (config.get("quantization") or {}).get("method", "ptq")
    return fmt if method == "ptq" and fmt in TF_FORMATS else None


async def _send(proc: Process, request: dict[str, Any]) -> bool:
    """One request line to a serve worker; False when it is gone."""
    if proc.returncode is not None or proc.stdin is None:
        return False
    try:
        proc.stdin.write((json.dumps(request) + "\n").encode())
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError, OSError, RuntimeError):
        return False
    return True


class SweepRunner:
    """A sweep: ``engine.worker sweep``; each variant's events come as :class:`SweepProgress`
    while it runs, and :class:`SweepDone` carries sweep.json's data at the end."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self.proc: Process | None = None
        self.running = False

    async def start(self, config: str, sets: list[str], runs_dir: str, post: Post) -> None:
        if self.running:
            raise RuntimeError("a sweep is already running")
        args = [config, "--runs-dir", runs_dir]
        for s in sets:
            args += ["--set", s]
        self.proc = await spawn("sweep", args, self.python)
        self.running = True
        asyncio.create_task(self._pump(self.proc, post))

    async def _pump(self, proc: Process, post: Post) -> None:
        from engine.events import RunFailed  # noqa: PLC0415
        from engine.protocol import SweepFinished  # noqa: PLC0415

        err = read_stderr(proc)
        data: dict[str, Any] | None = None
        failed = ""
        async for ev in events(proc):
            if isinstance(ev, SweepFinished):
                data = ev.data or None
            elif isinstance(ev, RunFailed):  # before any variant: a bad config or --set
                failed = ev.message
            else:
                post(SweepProgress(ev))
        rc, stderr = await finish(proc, err)
        self.running = False
        post(SweepDone(rc, data, failed or stderr))

    async def cancel(self) -> None:
        # Each variant gets the run's grace to mark itself cancelled.
        await stop(self.proc, GRACE_S * 2)


class Checker(Protocol):
    async def check(self, config: str, overrides: list[str], model: dict[str, Any],
                    on_preview: Deliver, on_diagnostics: Deliver) -> None:
        """Call ``on_preview`` with the preview and statistics, then ``on_diagnostics``."""


class SubprocessChecker:
    """The data check: ``engine.worker check``; a newer check cancels (and ends) an older one."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python

    async def check(self, config: str, overrides: list[str], model: dict[str, Any],
                    on_preview: Deliver, on_diagnostics: Deliver) -> None:
        from engine.protocol import DataDiagnostics, DataPreview  # noqa: PLC0415

        args = [config, "--model", json.dumps(model)]
        for o in overrides:
            args += ["--set", o]
        proc = await spawn("check", args, self.python)
        err = read_stderr(proc)
        try:
            previewed = False
            async for ev in events(proc):
                if isinstance(ev, DataPreview):
                    previewed = True
                    on_preview(_payload(ev))
                elif isinstance(ev, DataDiagnostics):
                    on_diagnostics(_payload(ev))
            rc, stderr = await finish(proc, err)
            if not previewed:
                last = (stderr.strip().splitlines() or [f"exit code {rc}"])[-1]
                on_preview({"error": [f"the data check failed: {last}", ""], "images": [],
                            "captions": [], "stats": [], "diagnostics": [], "diag_note": "",
                            "loaded": False})
        except asyncio.CancelledError:
            await stop(proc, grace=0.0)  # nothing to save: no need to wait
            raise


class ThreadChecker:
    """In-process (a thread), for tests: the same results without a child's start-up cost.
    ``diagnose`` replaces the engine's diagnostics (which load the test data: seconds)."""

    def __init__(self, diagnose: Callable[..., tuple[list[dict[str, Any]], str]] | None = None) -> None:
        self.diagnose = diagnose

    async def check(self, config: str, overrides: list[str], model: dict[str, Any],
                    on_preview: Deliver, on_diagnostics: Deliver) -> None:
        from engine import datacheck  # noqa: PLC0415

        res = await asyncio.to_thread(datacheck.check, config, overrides, model, False)
        on_preview(_payload(datacheck.preview_event(res)))
        if res.get("cfg") is not None:
            ev = await asyncio.to_thread(datacheck.diagnostics_event, res, model, self.diagnose)
            on_diagnostics(_payload(ev))


def _payload(ev: Event) -> dict[str, Any]:
    return {k: v for k, v in ev.to_dict().items() if k not in ("protocol", "kind")}
