"""SVG snapshots of every screen at 100×30 and 80×24 (`pytest -n 0 --snapshot-update` to accept).

Deterministic: fixed run folders and reports (tests/fakes.py), a frozen clock (no elapsed
times), fixed diagnostics, no cursor blink, paths shown relative to the checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import DIGITS, ROOT, FakeRunner, layers_shown, seed_runs, small_digits, until
from fakes import settle as settle_app
from textual.widgets import Input, OptionList

from tui.app import ArtqApp
from tui.jobs import ThreadChecker

SIZES = {"100x30": (100, 30), "80x24": (80, 24)}
FINDINGS = [{"code": "calib-few-samples", "severity": "warning",
             "message": "50 calibration samples: fewer than the guide's 100",
             "evidence": "requested 50", "fix": "set calibration.samples between 100 and 500"}]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(ROOT)  # paths on screen are relative to the checkout, wherever it is
    monkeypatch.delenv("NO_COLOR", raising=False)
    runs = tmp_path / "runs"
    return {"runs": runs, **seed_runs(runs)}


def fixed_findings(cfg, shape=None) -> tuple[list[dict[str, str]], str]:  # noqa: ANN001
    return FINDINGS, ""


class NoChecker:
    """The data check shows only on the Calibration screen: elsewhere skip its work."""

    async def check(self, config, overrides, model, on_preview, on_diagnostics) -> None:  # noqa: ANN001
        on_preview({"images": [], "captions": [], "stats": [], "error": None})
        on_diagnostics({"diagnostics": [], "diag_note": ""})


def make(env: dict[str, Path], runner: FakeRunner | None = None, check: bool = False) -> ArtqApp:
    # A data check draws the config's data: the sample's, made smaller (the same screen, a
    # tenth of the check's work).
    sample = small_digits(env["runs"].parent) if check else DIGITS
    return ArtqApp(runner=runner or FakeRunner(env["runs"]), runs_dir=env["runs"],
                   samples=[sample], clock=lambda: 0.0,
                   checker=ThreadChecker(fixed_findings) if check else NoChecker())  # type: ignore[arg-type]


async def settle(pilot) -> None:  # noqa: ANN001
    await settle_app(pilot)
    for widget in pilot.app.query(Input):
        widget.cursor_blink = False
    await pilot.pause()

async def open_digits(pilot) -> None:  # noqa: ANN001
    await settle(pilot)
    picker = pilot.app.query_one("#picker", OptionList)
    picker.highlighted = picker.get_option_index(f"cfg:{pilot.app.samples[0]}")
    await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_models(snap_compare, env: dict[str, Path], size: str) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await settle(pilot)
        picker = pilot.app.query_one("#picker", OptionList)
        picker.highlighted = picker.get_option_index(f"cfg:{DIGITS}")
        await settle(pilot)

    assert snap_compare(make(env), terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_calibration(snap_compare, env: dict[str, Path], size: str) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await open_digits(pilot)
        await pilot.press("tab", "5", "0", "enter")
        await settle(pilot)

    assert snap_compare(make(env, check=True), terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_quantize_after_a_run(snap_compare, env: dict[str, Path], size: str) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await open_digits(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)

    assert snap_compare(make(env), terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_results(snap_compare, env: dict[str, Path], size: str) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await settle(pilot)
        pilot.app.open_run(env["b"])  # the 50-sample try: FAIL, with a finding
        await until(pilot, lambda: layers_shown(pilot.app), "the layers table")
        await settle(pilot)

    assert snap_compare(make(env), terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_layers_by_time(snap_compare, env: dict[str, Path], size: str) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await settle(pilot)
        pilot.app.open_run(env["a"])
        await until(pilot, lambda: layers_shown(pilot.app), "the layers table")
        await pilot.press("5", "t", "down")
        await settle(pilot)

    assert snap_compare(make(env), terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_compare(snap_compare, env: dict[str, Path], size: str) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)

    assert snap_compare(make(env), terminal_size=SIZES[size], run_before=before)


def test_help_80x24(snap_compare, env: dict[str, Path]) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(make(env), terminal_size=(80, 24), run_before=before)


def test_error_dialog_80x24(snap_compare, env: dict[str, Path]) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await open_digits(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)

    app = make(env, FakeRunner(env["runs"], fail=True))
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_qat_mid_epoch(snap_compare, env: dict[str, Path], size: str) -> None:
    """QAT fine-tuning in its second epoch: epoch and batch of the epoch, the stage's bar."""
    from engine.events import EpochEnd, Progress, RunStarted, StageFinished, StageStarted
    from tui.messages import JobEvent

    async def before(pilot) -> None:  # noqa: ANN001
        await open_digits(pilot)
        await pilot.press("f4")
        await settle(pilot)
        pane = pilot.app.pane("quantize")
        for ev in (RunStarted(str(env["runs"] / "q"), "qat", ["fp32", "int8"]),
                   StageStarted("qat_data", "Loading QAT data"), StageFinished("qat_data", 0.4),
                   StageStarted("qat_train", "QAT fine-tuning", 250),
                   EpochEnd(1, 2, 0.31, 0.990, "top1", 1e-5, 0.0),
                   Progress("qat_train", 219, 250, "epoch 2/2", 2, 2, 94, 125)):
            pane.post_message(JobEvent(ev))
        await settle(pilot)

    assert snap_compare(make(env), terminal_size=SIZES[size], run_before=before)
