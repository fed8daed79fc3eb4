"""SVG snapshots of the data-source editor and its file picker at 80×24 and 100×30.

Deterministic: the data are written here under a fixed folder name and typed as a path
relative to it (the current folder), the data check shows nothing, no cursor blink.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import FakeRunner, picker_listing, small_digits, until
from test_tui_snapshots import NoChecker, settle
from textual.widgets import Button

from tui.app import ArtqApp
from tui.datapick import DataPickScreen

SIZES = {"100x30": (100, 30), "80x24": (80, 24)}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtqApp:
    monkeypatch.delenv("NO_COLOR", raising=False)
    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    np.savez(d / "sensor.npz", x_calib=rng.random((40, 32, 32, 1), dtype=np.float32),
             x_test=rng.random((30, 32, 32, 1), dtype=np.float32), y_test=rng.integers(0, 10, 30))
    (d / "images").mkdir()
    monkeypatch.chdir(d)
    sample = small_digits(tmp_path)
    return ArtqApp(runner=FakeRunner(tmp_path / "runs"), runs_dir=tmp_path / "runs",
                   samples=[sample], clock=lambda: 0.0, checker=NoChecker(),  # type: ignore[arg-type]
                   open_dir=d)


async def open_sample(pilot) -> None:  # noqa: ANN001
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_data_editor_npz(snap_compare, app: ArtqApp, size: str) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await open_sample(pilot)
        for split in ("calibration", "test"):
            pilot.app.query_one(f"#ds-{split}-kind").value = "npz"
            await pilot.pause()
            pilot.app.query_one(f"#ds-{split}-path").value = "sensor.npz"
            await pilot.pause()
        # One refusal in view: labels that do not match the inputs.
        pilot.app.query_one("#ds-calibration-y").value = "y_test"
        await settle(pilot)
        pilot.app.query_one("#ds-calibration-path").focus()
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_data_picker(snap_compare, app: ArtqApp, size: str) -> None:
    async def before(pilot) -> None:  # noqa: ANN001
        await open_sample(pilot)
        pilot.app.query_one("#ds-calibration-kind").value = "npz"
        await pilot.pause()
        browse = pilot.app.query_one("#ds-calibration-browse", Button)
        browse.press()
        await until(pilot, lambda: isinstance(pilot.app.screen, DataPickScreen)
                    and picker_listing(pilot.app), "the picker")
        # A pressed button shows as active for 0.2 s (Textual's press effect): a screenshot
        # taken within it has Browse… one shade darker beside the dialog (#151515, not
        # #161616; failed 2 of 29 serial runs). Taken once the effect is over.
        await until(pilot, lambda: not browse.has_class("-active"), "the press effect to end")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)
