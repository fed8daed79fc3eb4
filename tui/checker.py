"""The calibration data check, out of the UI's process (see :mod:`tui.calibcheck`).

Injected into the app like the runner, so tests can check in-process with fixed findings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

Deliver = Callable[[dict[str, Any]], object]


class Checker(Protocol):
    async def check(self, config: str, overrides: list[str], model: dict[str, Any],
                    on_preview: Deliver, on_diagnostics: Deliver) -> None:
        """Call ``on_preview`` with the preview and statistics, then ``on_diagnostics``."""


class SubprocessChecker:
    """Runs ``python -m tui.calibcheck``; a newer check cancels (and kills) an older one."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python

    async def check(self, config: str, overrides: list[str], model: dict[str, Any],
                    on_preview: Deliver, on_diagnostics: Deliver) -> None:
        args = [self.python, "-m", "tui.calibcheck", config, json.dumps(model)]
        for o in overrides:
            args += ["--set", o]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, limit=1 << 24)
        assert proc.stdout is not None and proc.stderr is not None
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, proc.pid, 10)  # the UI first, as for jobs
        try:
            got = 0
            while line := await proc.stdout.readline():
                msg = json.loads(line)
                (on_preview if got == 0 else on_diagnostics)(msg)
                got += 1
            err = (await proc.stderr.read()).decode(errors="replace").strip()
            await proc.wait()
            if got == 0:
                last = (err.splitlines() or [f"exit code {proc.returncode}"])[-1]
                on_preview({"error": [f"the data check failed: {last}", ""], "images": [],
                            "captions": [], "stats": [], "diagnostics": [], "diag_note": "",
                            "loaded": False})
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise


class ThreadChecker:
    """In-process (a thread), for tests: same results, no child start-up cost."""

    async def check(self, config: str, overrides: list[str], model: dict[str, Any],
                    on_preview: Deliver, on_diagnostics: Deliver) -> None:
        from . import calibcheck  # noqa: PLC0415

        res = await asyncio.to_thread(calibcheck.check, config, overrides, model, False)
        on_preview(json.loads(calibcheck.to_json(res)))
        if res.get("cfg") is not None:
            found, note = await asyncio.to_thread(
                calibcheck.diagnostics, res["cfg"], calibcheck.input_shape_of(model, res["cfg"]))
            on_diagnostics({"diagnostics": found, "diag_note": note})
