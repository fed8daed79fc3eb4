"""The TUI driving the real engine worker on a tiny model: a whole PTQ job, and a cancel
that kills the child process and leaves the run marked cancelled, a sweep whose variants
show their progress as they run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from commands import proc_state
from models import tiny_job
from textual.widgets import DataTable, OptionList, Static
from textual.worker import WorkerCancelled

from tui.app import ArtqApp
from tui.jobs import SweepRunner, WorkerRunner
from tui.widgets import StageRow


async def wait_for(pilot, cond, timeout: float = 180.0) -> None:  # noqa: ANN001
    """Poll ``cond`` while the app runs; the worker's events arrive as messages meanwhile."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("timed out waiting for the job")
        await pilot.pause(0.2)


async def open_first(pilot, app: ArtqApp) -> None:  # noqa: ANN001
    await pilot.pause()
    app.query_one("#picker", OptionList).highlighted = 1
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.session is not None, 60)
    with contextlib.suppress(WorkerCancelled):
        await app.workers.wait_for_complete()


def gone(pid: int) -> bool:
    # A zombie still answers kill(0); it is dead all the same.
    return proc_state(pid) in (None, "Z")


def sigterm_pending(pid: int) -> bool:
    """A SIGTERM sent to ``pid`` waits to be delivered (the process is stopped)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("ShdPnd:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def group_stopped(pgid: int) -> bool:
    """Every process of the group is stopped. SIGSTOP takes effect only once a process is
    next scheduled: a signal sent before that is handled first (measured: a SIGTERM sent
    right after the SIGSTOP to a busy process at nice 10 on a loaded machine was handled,
    never pending, 26 times in 30), and the job could go on before the freeze."""
    states = [s for pid in _members(pgid) if (s := proc_state(pid)) is not None]
    return bool(states) and all(s in "Tt" for s in states)


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return all(gone(pid) for pid in _members(pgid))


def _members(pgid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and _pgid(int(p.name)) == pgid]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


async def test_real_worker_runs_a_tiny_ptq_job(tiny_model: Path, tmp_path: Path) -> None:
    cfg = tiny_job(tmp_path, tiny_model)
    runs = tmp_path / "runs"
    runner = WorkerRunner()
    app = ArtqApp(runner=runner, runs_dir=runs, samples=[cfg])
    async with app.run_test(size=(100, 30)) as pilot:
        await open_first(pilot, app)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: runner.proc is not None and not runner.running
                       and "done" in str(app.query_one("#job-state").render()))
        assert str(app.query_one("#job-state").render()).startswith("done")
        rows = {r.stage: r.word for r in app.query(StageRow)}
        assert rows.get("convert_int8") == "done" and rows.get("evaluate_int8") == "done"
        report = json.loads((Path(app.run_dir) / "report.json").read_text())  # type: ignore[arg-type]
        assert report["status"] == "ok"
        assert report["config"]["calibration"]["samples"] == 32
        await pilot.press("f5")
        assert "Verdict:" in str(app.query_one("#verdict", Static).render())
        assert app.query_one("#stage-table", DataTable).row_count == 3
        await pilot.press("f6")
        assert app.query_one("#layer-table", DataTable).row_count > 3


async def test_cancel_kills_the_worker_and_marks_the_run(tiny_model: Path, tmp_path: Path) -> None:
    cfg = tiny_job(tmp_path, tiny_model)
    runner = WorkerRunner()
    app = ArtqApp(runner=runner, runs_dir=tmp_path / "runs", samples=[cfg])
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first(pilot, app)
        await pilot.press("ctrl+r")
        # The tiny job can end within one pilot pause on a loaded machine (a pause took
        # seconds in CI), and a cancel after the end has nothing to cancel. So: freeze the
        # worker and its child as soon as the run's folder is announced (checked every
        # 10 ms), with every stage still ahead, until the cancel's SIGTERM is pending.
        loop = asyncio.get_running_loop()
        end = loop.time() + 60
        while app.run_dir is None:
            assert loop.time() < end, "the job never started"
            await asyncio.sleep(0.01)
        pid = runner.pid
        assert pid is not None and not gone(pid)
        os.killpg(pid, signal.SIGSTOP)
        try:
            end = loop.time() + 30
            while not group_stopped(pid):
                assert loop.time() < end, "the worker's group never stopped"
                await asyncio.sleep(0.01)
            await pilot.press("ctrl+t")
            # The cancel's SIGTERM waits for the frozen worker: within 6 s, as the runner
            # kills the group 8 s after sending it (GRACE_S), which is not a cancel.
            end = loop.time() + 6
            while not sigterm_pending(pid):
                assert loop.time() < end, "the cancel sent the worker no SIGTERM"
                await asyncio.sleep(0.01)
        finally:
            with contextlib.suppress(ProcessLookupError):  # a failure above: say that one
                os.killpg(pid, signal.SIGCONT)
        await wait_for(pilot, lambda: not runner.running, 60)
        await pilot.pause()
        assert gone(pid)
        # Its process group too: the TensorFlow child the worker started is gone as well.
        await wait_for(pilot, lambda: group_gone(pid), 15)
        assert str(app.query_one("#job-state").render()) == "CANCELLED"
        report = json.loads((Path(app.run_dir) / "report.json").read_text())  # type: ignore[arg-type]
        assert report["status"] == "cancelled"


async def test_real_sweep_shows_each_variant_live(tiny_model: Path, tmp_path: Path) -> None:
    from textual.widgets import Input

    cfg = tiny_job(tmp_path, tiny_model, test_count=40)
    sweeper = SweepRunner()
    app = ArtqApp(runs_dir=tmp_path / "runs", samples=[cfg], sweeper=sweeper)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_first(pilot, app)
        await app.run_action("sweep")
        await pilot.pause()
        app.screen.query_one("#sweep-sets", Input).value = "calibration.samples=16,32"
        await pilot.press("enter")
        await wait_for(pilot, lambda: sweeper.running, 30)
        seen: set[str] = set()

        def done() -> bool:
            seen.update(r.name_text for r in app.query(StageRow) if r.word == "running")
            return not sweeper.running and "sweep" in str(app.query_one("#job-state").render())

        await wait_for(pilot, done)
        # While the variants ran, their rows named the stage each was in.
        assert any(t.startswith("▶ samples=16: ") for t in seen), seen
        assert any(t.startswith("▶ samples=32: ") for t in seen), seen
        assert str(app.query_one("#job-state").render()) == "sweep OK"
        rows = {r.stage: (r.word, r.name_text) for r in app.query(StageRow)}
        assert rows == {"variant-0": ("done", "✓ samples=16"), "variant-1": ("done", "✓ samples=32")}
        # 6 Compare is built as the sweep ends (its first visit), then shows the sweep.
        await wait_for(pilot, lambda: app.query("#sweep-table")
                       and app.query_one("#sweep-table", DataTable).row_count == 2, 30)
