"""The TUI with an injected fake worker: pick, tune, launch, watch, cancel, read results."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeRunner
from textual.widgets import DataTable, Input, Label, OptionList, Static, TabbedContent

from tui.app import ArtqApp
from tui.runner import JobEvent


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


async def test_pick_tune_launch_and_read_the_verdict(runs: Path) -> None:
    runner = FakeRunner(runs)
    app = ArtqApp(runner=runner, runs_dir=runs)
    async with app.run_test(size=(100, 30)) as pilot:
        picker = app.query_one("#picker", OptionList)
        assert picker.option_count >= 1
        picker.highlighted = 0
        await pilot.press("enter")  # select the first sample config → Quantize tab
        assert app.query_one(TabbedContent).active == "quantize"
        assert app.config is not None
        samples = app.query_one("#samples", Input)
        samples.value = ""
        await pilot.click("#samples")
        await pilot.press("5", "0")
        assert samples.value == "50"
        await pilot.click("#launch-btn")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        config, overrides = runner.started[0]
        assert config.endswith(".toml")
        assert "calibration.samples=50" in overrides
        assert "running" not in str(app.query_one("#job-state", Label).render())
        assert "PASS" in str(app.query_one("#job-state", Label).render())
        await pilot.press("3")
        assert app.query_one(TabbedContent).active == "results"
        verdict = str(app.query_one("#verdict", Static).render())
        assert "Verdict: PASS" in verdict and "0.40 points" in verdict
        table = app.query_one("#stage-table", DataTable)
        assert table.row_count == 3
        assert [str(c) for c in table.get_row_at(2)][:3] == ["INT8", "82.0 KiB", "99.20 %"]


async def test_cancel_key_cancels_the_running_job(runs: Path) -> None:
    runner = FakeRunner(runs, hold=True)
    app = ArtqApp(runner=runner, runs_dir=runs)
    async with app.run_test(size=(100, 30)) as pilot:
        app.query_one("#picker", OptionList).highlighted = 0
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        assert runner.running
        await pilot.press("c")
        await pilot.pause()
        assert runner.cancelled
        assert "cancelled" in str(app.query_one("#job-state", Label).render())


async def test_failed_job_is_shown_with_its_hint(runs: Path) -> None:
    runner = FakeRunner(runs, fail=True)
    app = ArtqApp(runner=runner, runs_dir=runs)
    async with app.run_test(size=(100, 30)) as pilot:
        app.query_one("#picker", OptionList).highlighted = 0
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        await pilot.pause()
        log_text = "\n".join(str(line.text) for line in app.query_one("#log").lines)
        assert "FAILED: converter crashed" in log_text
        assert "what to do: see log.txt" in log_text


async def test_progress_messages_coalesce() -> None:
    from engine.events import Progress

    older = JobEvent(Progress("evaluate_int8", 10, 100))
    newer = JobEvent(Progress("evaluate_int8", 11, 100))
    other = JobEvent(Progress("evaluate_fp32", 11, 100))
    assert newer.can_replace(older)
    assert not other.can_replace(older)


def test_snapshot_models_screen(snap_compare, runs: Path) -> None:
    assert snap_compare(ArtqApp(runner=FakeRunner(runs), runs_dir=runs), terminal_size=(100, 30))


def test_snapshot_results_after_a_run_80x24(snap_compare, runs: Path) -> None:
    async def run_before(pilot) -> None:
        await pilot.press("l")
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()

    app = ArtqApp(runner=FakeRunner(runs), runs_dir=runs)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
