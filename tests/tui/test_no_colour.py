"""Focus, cursors and checkboxes read without colour, and the Layers table at 80 columns:
the screen is rendered under NO_COLOR and read back as text and text attributes (reverse,
bold, underline survive a monochrome terminal; a shade of background does not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeRunner, layers_shown, seed_runs, small_digits, until
from fakes import settle as settle_app
from textual.strip import Strip

from tui.app import ArtqApp
from tui.jobs import ThreadChecker
from tui.panes.layers import fit_words, short_reason


def no_diagnostics(cfg: object, shape: object = None) -> tuple[list[dict[str, str]], str]:
    return [], "diagnostics skipped in this test"


def lines(app: ArtqApp) -> list[Strip]:
    return list(app.screen._compositor.render_strips())


def line_with(app: ArtqApp, text: str) -> Strip:
    found = [s for s in lines(app) if text in s.text]
    assert found, f"{text!r} not on screen:\n" + "\n".join(s.text for s in lines(app))
    return found[0]


def styled(strip: Strip, text: str, attr: str) -> bool:
    """Whether the characters of ``text`` on this line carry the attribute ``attr``."""
    return any(text.strip() in seg.text and getattr(seg.style, attr, False)
               for seg in strip if seg.style is not None and seg.text.strip())


async def settle(pilot) -> None:  # noqa: ANN001
    await settle_app(pilot)

@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtqApp:
    monkeypatch.setenv("NO_COLOR", "1")
    runs = tmp_path / "runs"
    runs.mkdir()
    seed_runs(runs)
    return ArtqApp(runner=FakeRunner(runs), runs_dir=runs, samples=[small_digits(tmp_path)],
                   clock=lambda: 0.0, checker=ThreadChecker(no_diagnostics))


async def test_layers_cursor_checkboxes_and_columns_at_80_columns_without_colour(app: ArtqApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.no_color
        app.open_run(sorted(app.runs_dir.iterdir())[0])
        await until(pilot, lambda: layers_shown(app), "the layers table")
        await pilot.press("5")
        await settle(pilot)
        text = "\n".join(s.text for s in lines(app))
        # The flag and the reason in full words at 80 columns; what is left out is named.
        head = line_with(app, " op ").text
        assert "flag" in head and "reason" in head
        assert "SUSPECT SENS  conv accelerators" in line_with(app, " 1  CONV_2D").text
        assert line_with(app, " 6  SOFTMAX").text.rstrip().endswith("in software")
        assert "shape, MACs, est µs, rmse/s below" in text
        # The status line counts the suspects the flag column shows.
        shown = sum("SUSPECT" in s.text for s in lines(app) if s.text[:4].strip().isdigit())
        assert shown == 1 and "7/7 layers: 1 CPU, 1 SUSPECT " in text
        await pilot.press("u")
        await pilot.pause()
        text = "\n".join(s.text for s in lines(app))
        assert "1/7 layers: 1 CPU, 0 SUSPECTs (all: 1 CPU, 1 SUSPECT)" in text
        # The checkbox says its state in a character.
        assert "[x] CPU only" in text and "[ ] suspects" in text
        await pilot.press("u")
        await pilot.pause()
        assert "[ ] CPU only" in "\n".join(s.text for s in lines(app))
        # The cursor row (the filter kept it on SOFTMAX) is reversed and bold, no other is.
        cursor = line_with(app, " 6  SOFTMAX")
        assert styled(cursor, "SOFTMAX", "reverse") and styled(cursor, "SOFTMAX", "bold")
        assert not styled(line_with(app, " 5  FULLY"), "FULLY_CONNECTED", "reverse")
        await pilot.press("up")
        await pilot.pause()
        assert styled(line_with(app, " 5  FULLY"), "FULLY_CONNECTED", "reverse")
        assert not styled(line_with(app, " 6  SOFTMAX"), "SOFTMAX", "reverse")
        # The focused Select and checkbox: reversed too.
        app.set_focus(app.query_one("#layer-sort"))
        await pilot.pause()
        assert styled(line_with(app, "Sort"), "#", "reverse")
        app.set_focus(app.query_one("#layer-cpu"))
        await pilot.pause()
        assert styled(line_with(app, "CPU only"), "CPU only", "reverse")
        assert not styled(line_with(app, "suspects"), "suspects", "reverse")


async def test_the_focused_field_is_underlined_without_colour(app: ArtqApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.open_config(app.samples[0], go=True)
        await until(pilot, lambda: app.session is not None, "the sample to open")
        await settle(pilot)
        samples = app.query_one("#k-calibration--samples")
        app.set_focus(samples)
        await pilot.pause()
        assert styled(line_with(app, "Samples"), "200", "underline")
        app.set_focus(app.query_one("#k-calibration--seed"))
        await pilot.pause()
        assert not styled(line_with(app, "Samples"), "200", "underline")


def test_reasons_are_shortened_in_words() -> None:
    npu = "runs on the NPU (the convolution accelerators)"
    assert short_reason(npu, "CONV_2D", 30) == "convolution accelerators"
    assert short_reason(npu, "CONV_2D", 20) == "conv accelerators"
    assert short_reason("runs on the NPU as a view (no data movement)", "RESHAPE") == \
        "view, no data moved"
    assert short_reason("SOFTMAX runs in software on the CPU: ST maps it to a software epoch",
                        "SOFTMAX") == "in software"
    assert short_reason("GELU is not accelerated by the NPU: it runs in software on the CPU",
                        "GELU") == "not accelerated"
    assert short_reason("FOO is not in ST's Neural-ART operator table: it runs in software "
                        "on the CPU", "FOO") == "not in ST's op table"
    assert short_reason("int8→float conversion runs on the CPU (cheap at the output)",
                        "DEQUANTIZE") == "int8→float on the CPU"
    # Never a word cut in two: whole words, an ellipsis for the rest.
    assert fit_words("bilinear resize in software", 20) == "bilinear resize in…"
    assert fit_words("short", 20) == "short"
