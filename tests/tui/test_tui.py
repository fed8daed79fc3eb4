"""The TUI with an injected fake worker: every screen driven by keys, as a person would.

Real engine work is in tests/slow/test_tui_worker.py; snapshots in tests/tui/test_tui_snapshots.py.
"""

from __future__ import annotations

import asyncio
import io
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fakes import DIGITS, FakeRunner, FakeSweeper, layers_shown, seed_runs, small_digits, until
from fakes import settle as settle_app
from textual.widgets import DataTable, Input, OptionList, Select, Static, TabbedContent
from textual.widgets._footer import FooterKey

from tui.app import ArtqApp
from tui.jobs import SubprocessChecker, ThreadChecker
from tui.messages import JobEvent
from tui.panes.layers import LayersPane
from tui.screens import ErrorDialog, HelpScreen, OpenScreen, SaveScreen
from tui.widgets import ImagePreview, StageRow, Toggle

FIXED_FINDINGS = [{"code": "calib-few-samples", "severity": "warning", "message": "50 samples",
                   "evidence": "guide: 100–500", "fix": "set calibration.samples = 200"}]


def fixed_diagnostics(cfg: Any, shape: Any = None) -> tuple[list[dict[str, str]], str]:
    """The engine's diagnostics load the test data (seconds): the in-process checker of the
    tests is given these fixed findings instead (the real ones: the calibration test)."""
    return FIXED_FINDINGS, ""


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


def text_of(app: ArtqApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def cell(table: DataTable, row: int, column: str) -> str:
    """A cell by its column's key: which columns show depends on the width."""
    return str(table.get_row_at(row)[[str(c.value) for c in table.columns].index(column)])


def footer_keys(app: ArtqApp) -> set[str]:
    return {k.description for k in app.screen.query(FooterKey)}


def make_app(runs: Path, runner: FakeRunner | None = None, samples: list[Path] | None = None,
             checker: Any = None) -> ArtqApp:
    # The digits sample with fewer data items: the same screens, a faster data check, done
    # in-process (the real one is a child process: see the calibration test).
    small = small_digits(runs.parent)
    return ArtqApp(runner=runner or FakeRunner(runs), runs_dir=runs,
                   samples=samples if samples is not None else [small], clock=lambda: 0.0,
                   checker=checker or ThreadChecker(fixed_diagnostics))


async def settle(pilot, app: ArtqApp) -> None:  # noqa: ANN001
    """Let thread workers (config load, data check, run list) finish and their results land."""
    await settle_app(pilot)


def count_layouts(app: ArtqApp) -> list[object]:
    """One entry per layout of the app's screen from now on."""
    screen, seen = app.screen, []
    real = screen._refresh_layout

    def counted(*args: Any, **kwargs: Any) -> None:
        seen.append(args or kwargs)
        real(*args, **kwargs)

    screen._refresh_layout = counted  # type: ignore[method-assign]
    return seen


async def open_digits(pilot, app: ArtqApp) -> None:  # noqa: ANN001
    await settle(pilot, app)
    picker = app.query_one("#picker", OptionList)
    picker.highlighted = picker.get_option_index(f"cfg:{app.samples[0]}")
    await pilot.press("enter")
    await settle(pilot, app)
    assert app.session is not None


async def test_models_summary_before_anything_runs(runs: Path) -> None:
    seed_runs(runs)
    app = make_app(runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        picker = app.query_one("#picker", OptionList)
        picker.highlighted = picker.get_option_index(f"cfg:{app.samples[0]}")
        await settle(pilot, app)
        summary = text_of(app, "#summary")
        assert "params   73,114" in summary
        assert "input    ?×32×32×1" in summary and "output   ?×10" in summary
        assert "digits_ptq.toml" in summary
        prompts = [str(picker.get_option_at_index(i).prompt) for i in range(picker.option_count)]
        assert any("n50 FAIL" in p for p in prompts)  # words, not colours
        assert any("UNFINISHED" in p for p in prompts)
        assert any("SWEEP" in p for p in prompts)
        # Enter on a run: its results, at once.
        picker.highlighted = next(i for i, p in enumerate(prompts) if "n200" in p)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.query_one(TabbedContent).active == "results"
        assert "Verdict: PASS" in text_of(app, "#verdict")


async def test_a_run_opened_just_before_the_app_closes_is_not_an_error(runs: Path) -> None:
    """The layers table follows a run's results by a timer: panes removed first (as when
    the app closes) leave it nothing to do, not an internal error."""
    seed_runs(runs)
    app = make_app(runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        for tab in "451":  # both built (on their first visit), then back to 1 Models
            await pilot.press(tab)
            await settle(pilot, app)
        app.show_report(next(rep for _, rep in app.runs if rep is not None))
        await app.pane("layers").remove()
        await asyncio.sleep(0.1)  # past the timer: a wall-clock wait is what is tested
        assert app.query("#pane-results") and not app.query("#layer-table")


class CheckEndingAsTheAppCloses:
    """A data check whose result lands only as the app closes (its worker cancelled), as a
    child's answer can when the user quits during a check."""

    started = False

    async def check(self, config: str, overrides: list[str], model: dict[str, Any],
                    on_preview: Any, on_diagnostics: Any) -> None:
        self.started = True
        try:
            await asyncio.sleep(3600)
        finally:
            on_preview({"error": ["late", ""], "images": [], "captions": [], "stats": []})
            on_diagnostics({"diagnostics": [], "diag_note": "late"})


async def test_a_data_check_that_ends_as_the_app_closes_is_not_an_error(runs: Path) -> None:
    checker = CheckEndingAsTheAppCloses()
    app = make_app(runs, checker=checker)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, app.panes_ready, "the panes")
        picker = app.query_one("#picker", OptionList)
        picker.highlighted = picker.get_option_index(f"cfg:{app.samples[0]}")
        await pilot.press("enter")
        await until(pilot, lambda: checker.started, "the data check")
    # Closing cancelled the check; what it delivered then was dropped, not an error.


async def test_missing_model_is_said_and_not_launched(runs: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ocr.toml"
    cfg.write_text(DIGITS.read_text().replace("../engine/samples/weights/digits.keras",
                                              str(tmp_path / "crnn_conv.keras")))
    runner = FakeRunner(runs)
    app = make_app(runs, runner, samples=[cfg])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        await settle(pilot, app)
        assert "MISSING" in text_of(app, "#summary")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, ErrorDialog), "the error dialog")
        assert isinstance(app.screen, ErrorDialog)
        assert runner.started == []
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorDialog)


class CountingChecker(ThreadChecker):
    """The in-process data check, counting the checks asked for."""

    def __init__(self) -> None:
        super().__init__(fixed_diagnostics)
        self.asked = 0

    async def check(self, *args: Any) -> None:
        self.asked += 1
        await super().check(*args)


async def test_2_calibration_is_built_and_checks_the_data_on_its_first_visit(runs: Path) -> None:
    checker = CountingChecker()
    app = make_app(runs, checker=checker)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        app.open_config(app.samples[0])  # a session, not shown in 2 Calibration
        await settle(pilot, app)
        assert app.session is not None and "calibration" not in app.built
        assert not app.query("#pane-calibration") and checker.asked == 0
        # Knobs with no widget yet read back as the config gave them: no change to send.
        assert app.overrides() == {}
        samples = app.session.base["calibration.samples"]
        await pilot.press("3")
        app.query_one("#k-quantization--method", Select).value = "qat"
        await pilot.press("2")
        await settle(pilot, app)
        assert app.query_one(TabbedContent).active == "calibration"
        assert app.focused is app.query_one("#pane-calibration")
        assert app.query_one("#k-calibration--samples", Input).value == str(samples)
        assert app.query_one("#ds-train").display  # QAT, chosen before: its training data
        assert checker.asked == 1
        assert text_of(app, "#diagnostics").startswith("[WARNING] calib-few-samples")
        assert app.overrides() == {"quantization.method": "qat"}


async def test_a_pane_first_shown_late_is_told_only_the_latest_report_and_runs(
        runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports shown and runs read while 4 Results, 5 Layers and 6 Compare are not built yet
    are not replayed one by one on their first visit: each is told the latest once."""
    from tui.panes.compare import ComparePane
    from tui.panes.layers import LayersPane
    from tui.panes.results import ResultsPane

    told: list[tuple[str, object]] = []
    for cls, method in ((ResultsPane, "show"), (LayersPane, "show"),
                        (ComparePane, "runs_loaded")):
        real = getattr(cls, method)

        def spy(self: Any, first: Any, *rest: Any, _real: Any = real,
                _name: str = cls.__name__) -> Any:
            told.append((_name, first))
            return _real(self, first, *rest)

        monkeypatch.setattr(cls, method, spy)
    seed_runs(runs)
    app = make_app(runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        reports = [r for _, r in app.runs if r is not None]
        assert len(reports) >= 2
        for rep in reports:
            app.show_report(rep)
            await settle(pilot, app)
        app.refresh_runs()
        await settle(pilot, app)
        assert told == [] and not {"results", "layers", "compare"} & app.built
        for key in ("4", "5", "6"):
            await pilot.press(key)
            await settle(pilot, app)
        assert told == [("ResultsPane", reports[-1]), ("LayersPane", reports[-1]),
                        ("ComparePane", app.runs)]


async def test_the_memory_bars_fit_the_results_pane_however_wide(runs: Path) -> None:
    """A report shown while 4 Results is hidden, as when a job ends: its memory bars are
    drawn for the pane's width once it shows, and again when the terminal is resized."""
    seed_runs(runs)
    app = make_app(runs)
    async with app.run_test(size=(60, 24)) as pilot:
        await settle(pilot, app)
        app.show_report(next(r for _, r in app.runs if r is not None and r.npu and r.npu.pools))

        def pools() -> list[str]:
            return [line for line in text_of(app, "#npu").splitlines() if "B of " in line]

        await pilot.press("4")
        await settle(pilot, app)
        narrow = pools()
        assert narrow and max(map(len, narrow)) <= app.query_one("#npu").content_size.width
        await pilot.resize_terminal(120, 30)
        await settle(pilot, app)
        assert len(pools()[0]) > len(narrow[0])  # the bars grow with the pane


async def test_calibration_band_preview_stats_and_diagnostics(runs: Path) -> None:
    app = make_app(runs, checker=SubprocessChecker())  # the real check, in its child process
    async with app.run_test(size=(100, 30)) as pilot:
        await open_digits(pilot, app)
        assert app.query_one(TabbedContent).active == "calibration"
        assert app.focused is app.query_one("#pane-calibration")  # not a field: q still quits
        seed_x = app.query_one("#k-calibration--seed").region.x
        await pilot.press("tab")  # Tab selects the field's text: typing replaces it
        await settle(pilot, app)  # what Tab moved lands first: the keys' layouts are counted
        layouts = count_layouts(app)
        await pilot.press("5", "0")
        assert app.query_one("#k-calibration--samples", Input).value == "50"
        # A key re-lays the pane out once (the field's own text), not again for the gauge
        # and the "changed" note beside it: each layout redraws the pane over SSH.
        assert len(layouts) <= 2, layouts
        assert "BELOW the guide's 100–500" in str(app.query_one("#band").render())
        # The gauge's words changed (within → BELOW): the fields after it stay in place.
        assert app.query_one("#k-calibration--seed").region.x == seed_x
        await pilot.press("enter")  # submit → the data is checked again with 50 samples
        await settle(pilot, app)
        # The diagnostics come second, from the child process.
        await until(pilot, lambda: "too_few_samples" in text_of(app, "#diagnostics"),
                    "the diagnostics")
        stats = text_of(app, "#calib-stats")
        assert "120 items, 50 drawn" in stats and "range" in stats and "classes" in stats
        preview = app.query_one("#preview", ImagePreview)
        assert len(preview.images) == 4 and len(preview.images[0]) == 32 == len(preview.images[0][0])
        diag = text_of(app, "#diagnostics")
        assert diag.startswith("[WARNING] too_few_samples: only 50 calibration samples"), diag


async def test_launch_sends_only_what_changed_and_shows_the_verdict(runs: Path) -> None:
    runner = FakeRunner(runs)
    app = make_app(runs, runner)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_digits(pilot, app)
        # The session's model was offered for a warm-up as it opened, before any launch.
        ((model, config),) = runner.warmed
        assert model["format"] == "keras" and config["quantization"]["method"] == "ptq"
        # Reading the tuned settings (launch, save) re-checks every data field; with none
        # changed, nothing on screen changes either: no layout of the pane.
        layouts = count_layouts(app)
        app.overrides()
        await pilot.pause()
        assert layouts == [], layouts
        await pilot.press("tab", "5", "0", "ctrl+r")  # Ctrl+R works while typing in the field
        await settle(pilot, app)
        config, overrides = runner.started[0]
        assert config == str(app.samples[0])
        assert overrides[0] == "calibration.samples=50"
        assert overrides[1].startswith("output.runs_dir=") and len(overrides) == 2
        assert str(app.query_one("#job-state").render()) == "done PASS"
        log = "\n".join(str(line.text) for line in app.query_one("#log").lines)
        assert "[INFO] calib-range" in log and "warning: calibration.samples" in log
        assert "✓ Converting to INT8" in app.query_one("#stage-convert_int8", StageRow).name_text
        await pilot.press("f5")
        assert app.query_one(TabbedContent).active == "results"
        assert "Verdict: PASS" in text_of(app, "#verdict")
        table = app.query_one("#stage-table", DataTable)
        assert table.row_count == 3
        assert [str(c) for c in table.get_row_at(2)][:3] == ["INT8", "82.0 KiB", "99.20 %"]
        npu = text_of(app, "#npu")
        assert "Estimated N6 latency: 0.455 ms" in npu
        assert "npuRAM3" in npu and "32.0 KiB of 448.0 KiB" in npu  # used of size, in words


async def test_cancel_from_anywhere(runs: Path) -> None:
    runner = FakeRunner(runs, hold=True)
    app = make_app(runs, runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_digits(pilot, app)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert runner.running
        row = app.query_one("#stage-convert_int8", StageRow)
        assert row.name_text == "▶ Converting to INT8" and row.bar_text.endswith(" 25/50")
        assert row.state_text == "0.0 s, 0.0 s left"  # elapsed, and left at this pace
        await pilot.press("f3")  # focus in the samples Input; Ctrl+T still cancels
        await pilot.press("ctrl+t")
        await settle(pilot, app)
        assert runner.cancelled
        assert str(app.query_one("#job-state").render()) == "CANCELLED"


async def test_failed_job_is_a_dialog_with_its_hint(runs: Path) -> None:
    app = make_app(runs, FakeRunner(runs, fail=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_digits(pilot, app)
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        assert isinstance(app.screen, ErrorDialog)
        assert "converter crashed" in str(app.screen.query_one("#error-message").render())
        assert "What to do: see log.txt" in str(app.screen.query_one(".hint").render())
        await pilot.press("enter")
        assert "FAILED" in str(app.query_one("#job-state").render())


async def test_qat_shows_loss_and_metric_per_epoch(runs: Path) -> None:
    runner = FakeRunner(runs)
    app = make_app(runs, runner)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_digits(pilot, app)
        await pilot.press("f4")
        app.query_one("#k-quantization--method", Select).value = "qat"
        app.query_one("#k-quantization--qat--epochs", Input).value = "3"
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        assert 'quantization.method="qat"' in runner.started[0][1]
        chart = text_of(app, "#qat-chart")
        assert "● loss  (epoch 3: 0.18)" in chart and "× val top1" in chart
        assert app.query_one("#qat-chart").display
        await pilot.press("f5")
        assert "QAT regained +1.00 points over PTQ" in text_of(app, "#qat-summary")


async def test_layers_sort_filter_search_and_detail(runs: Path) -> None:
    seeded = seed_runs(runs)
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        app.open_run(seeded["a"])
        await until(pilot, lambda: layers_shown(app), "the layers table")
        assert "By time" not in footer_keys(app)
        await pilot.press("5")
        table = app.query_one("#layer-table", DataTable)
        assert table.row_count == 7
        await pilot.pause()
        # The footer follows the focused pane (it is rebuilt only when its keys change).
        assert {"By time", "CPU only", "Launch"} <= footer_keys(app)
        await pilot.press("t")  # by estimated time, largest first
        assert [cell(table, i, "op") for i in range(2)] == ["CONV_2D", "CONV_2D"]
        assert cell(table, 0, "pct") == "24.0"  # est µs is in the detail at 80 columns
        assert "2.36 M MACs, 109 µs" in text_of(app, "#layer-detail")
        detail = text_of(app, "#layer-detail")
        assert detail.startswith("#3 CONV_2D") and "rule       table:" in detail
        await pilot.press("u")  # CPU only
        assert table.row_count == 1 and cell(table, 0, "placement") == "CPU"
        detail = text_of(app, "#layer-detail")
        # The reason once, on its own line; the rule line adds only what the table knows more.
        assert detail.count("runs in software on the CPU") == 1
        assert "placement  CPU (SW_INT, epoch 6): SOFTMAX runs in software" in detail
        assert "rule       table: SW_INT by default" in detail
        await pilot.press("u", "x")  # suspects only
        assert table.row_count == 1
        detail = text_of(app, "#layer-detail")
        assert "SUSPECT    rmse/scale 0.91" in detail
        assert "regains 0.35 points of top1" in detail and "advice     keep this layer" in detail
        await pilot.press("x", "slash", "p", "o", "o", "l", "enter")
        assert table.row_count == 1 and cell(table, 0, "op") == "MAX_POOL_2D"
        assert app.focused is table
        pane = app.query_one(LayersPane)
        pane.query_one("#layer-search", Input).value = ""
        await pilot.press("s")  # next column after est µs: % time
        assert pane.sort_key == "pct" and pane.desc
        await pilot.press("r")
        assert not pane.desc and cell(table, 0, "op") == "SOFTMAX"
        await pilot.press("1")
        await pilot.pause()
        assert "By time" not in footer_keys(app) and "Launch" in footer_keys(app)


async def test_compare_runs_and_sweep(runs: Path) -> None:
    seeded = seed_runs(runs)
    app = make_app(runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("6")
        # The two latest finished runs, the older as A.
        assert app.query_one("#cmp-a", Select).value == str(seeded["a"])
        assert app.query_one("#cmp-b", Select).value == str(seeded["b"])
        table = app.query_one("#cmp-table", DataTable)
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)]
                for i in range(table.row_count)}
        assert rows["set calibration.samples"][1:] == ["200", "50", "-150"]
        assert rows["INT8 top-1"][1:] == ["99.20 %", "98.10 %", "-1.10 pts"]
        assert rows["verdict (high)"][1:3] == ["PASS", "FAIL"]
        assert rows["FP32 top-1"][3] == "="
        await app.run_action("compare_swap")
        assert app.query_one("#cmp-a", Select).value == str(seeded["b"])
        sweep = app.query_one("#sweep-table", DataTable)
        assert sweep.row_count == 4
        # The drop with its 95 % half-width, and against the best variant item by item.
        assert [str(c) for c in sweep.get_row_at(0)][:6] == [
            "calibration.samples=50", "OK", "top1", "98.10 %", "+1.50 ±0.35", "+1.20"]
        assert [str(c) for c in sweep.get_row_at(2)][4:6] == ["+0.40 ±0.19", "≈ best"]
        chart = text_of(app, "#sweep-chart")
        assert "INT8 drop per variant" in chart and "calibration.samples=500" in chart
        assert "Within noise of it: calibration.samples=200 (+0.10 ± 0.14 points" in chart
        assert "wall time 54.5 s" in chart


def test_compare_pairs_a_run_with_the_last_try_of_the_same_job() -> None:
    from tui.panes.compare import pick_pair

    newest_first = ["r/20261127-130700-digits_ptq", "r/20261127-072000-ocr_crnn_conv",
                    "r/20261127-043900-digits_ptq", "r/20261127-043500-digits_ptq"]
    assert pick_pair(newest_first) == (newest_first[2], newest_first[0])
    # A run of a job tried once: the newest other run.
    assert pick_pair(newest_first, newest_first[1]) == (newest_first[0], newest_first[1])
    assert pick_pair(newest_first[:1]) is None and pick_pair([]) is None


def test_compare_rows_keep_both_runs_in_view_and_name_each_bar() -> None:
    from tui.panes.compare import CELL, clip, compare_rows

    path = "/work/main/engine/samples/weights/crnn_conv.keras"
    assert len(clip(path)) == CELL and clip(path).endswith("crnn_conv.keras")
    assert clip(path).startswith("/work") and clip("short") == "short"
    from dataclasses import replace

    from engine.report import Report, Verdict

    def run(profile: str, passed: bool, drop: float) -> Report:
        return Report(verdict=Verdict(profile=profile, threshold=0.5, metric="top1", fp32=0.99,
                                      int8=0.99 - drop / 100, drop=drop, passed=passed,
                                      advice=""))

    a, b = run("production", True, 0.3), run("high", False, 1.4)
    rows = {r[0]: r[1:] for r in compare_rows(a, b)}
    assert rows["verdict"] == ("PASS (production)", "FAIL (high)", "≠")
    b = replace(b, verdict=replace(b.verdict, profile="production"))
    rows = {r[0]: r[1:] for r in compare_rows(a, b)}
    assert rows["verdict (production)"][:2] == ("PASS", "FAIL")
    assert rows["INT8 drop (points)"] == ("+0.30", "+1.40", "+1.10")


def test_sweep_rows_leave_out_the_keys_every_variant_shares() -> None:
    from tui.panes.compare import constant_keys, sweep_chart, variant_label

    vs = [{"set": {"calibration.seed": 3, "calibration.samples": n}, "drop": d}
          for n, d in ((50, 1.2), (100, 0.4))]
    same = constant_keys(vs)
    assert same == {"calibration.seed"}
    assert [variant_label(v, same) for v in vs] == ["calibration.samples=50", "calibration.samples=100"]
    assert "seed" not in sweep_chart({"variants": vs}, 60)
    assert constant_keys(vs[:1]) == frozenset()  # one variant: its label keeps every key


async def test_save_writes_a_commented_config_that_runs(runs: Path, tmp_path: Path) -> None:
    from engine.config import load_config

    app = make_app(runs, samples=[DIGITS])  # the real sample: relative paths, its comments
    async with app.run_test(size=(80, 24)) as pilot:
        await open_digits(pilot, app)
        await pilot.press("tab", "5", "0", "ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveScreen)
        dest = tmp_path / "elsewhere" / "digits_50.toml"
        app.screen.query_one("#save-path", Input).value = str(dest)
        await pilot.press("enter")
        await pilot.pause()
    text = dest.read_text()
    assert "samples = 50  # representative samples for PTQ; the guide recommends 100–500" in text
    assert "#   calibration.samples: 200 → 50" in text
    assert "# The ONE preprocessing" in text  # the sample's comments survive
    assert "scale = 0.00392156862745098" in text  # untouched values stay exactly as written
    raw = tomllib.loads(text)
    written = Path(raw["model"]["path"])  # re-pointed: the file moved away from the sample's folder
    assert (dest.parent / written).resolve() == (DIGITS.parent / "../engine/samples/weights/digits.keras").resolve()
    cfg = load_config(dest)
    assert cfg.calibration.samples == 50
    assert Path(cfg.model.path) == (DIGITS.parent / "../engine/samples/weights/digits.keras").resolve()


async def test_help_palette_and_keys(runs: Path) -> None:
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        from rich.console import Console

        console = Console(width=60, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#help-text", Static).content)
        help_text = console.export_text()
        assert "Ctrl+R" in help_text and "CPU layers only" in help_text
        # A description too long for the width wraps under itself, clear of the keys.
        lines = help_text.splitlines()
        at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("Ctrl+T"))
        desc_col = lines[at].index("cancel")
        assert lines[at + 1][:desc_col].strip() == "" and lines[at + 1][desc_col:].strip()
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        # Every binding with a description has a palette command running the same action.
        actions = {c.callback.args[0] for c in app.get_system_commands(app.screen)
                   if hasattr(c.callback, "args")}
        for binding in [*ArtqApp.BINDINGS, *LayersPane.BINDINGS]:
            action = binding.action
            if binding.description and action not in actions:
                layer_actions = {"sort_time": "layers('sort:est_us')", "toggle('cpu')": "layers('cpu')",
                                 "toggle('suspect')": "layers('suspect')", "reverse": "layers('reverse')",
                                 "search": "layers('search')", "sort_next": "layers('sort:index')",
                                 "quit": "quit", "focus_pane": "focus_pane"}
                assert layer_actions.get(action) in actions | {"quit", "focus_pane"}, action
        for i, tab in enumerate(("models", "calibration", "quantize", "results", "layers", "compare")):
            await pilot.press(f"f{i + 2}")
            assert app.query_one(TabbedContent).active == tab


async def test_limited_colour_and_no_color(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert app.theme == "ansi-dark"  # 16 colours: the terminal's own palette
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        # Monochrome: Textual turns the theme's colours into greys; states are words.
        assert app.no_color and app.theme != "ansi-dark"
        await pilot.press("5")
        await settle(pilot, app)
        box = app.query_one("#layer-cpu", Toggle)
        assert str(box._button) == "[ ]"  # off is a blank, on an x: not a colour
        box.value = True
        assert str(box._button) == "[x]"


async def test_no_animations_unless_asked_for(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over SSH every frame is sent: a tab change moves its underline at once, not over
    twenty frames. TEXTUAL_ANIMATIONS, when set, is the user's choice and kept."""
    import textual.constants
    from textual.widgets._tabs import Underline

    # What Textual reads when the variable is unset (tests set "none": tests/conftest.py).
    monkeypatch.setattr(textual.constants, "TEXTUAL_ANIMATIONS", "full")
    monkeypatch.delenv("TEXTUAL_ANIMATIONS", raising=False)
    app = make_app(runs)
    assert app.animation_level == "none"
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f5")
        await pilot.pause()
        underline = app.query_one("#tabs Underline", Underline)
        active = app.query_one("#tabs ContentTab.-active")
        assert str(active.label).endswith("Results")
        assert not app.animator.is_being_animated(underline, "highlight_start")
        start, end = active.virtual_region.shrink(active.styles.gutter).column_span
        assert (underline.highlight_start, underline.highlight_end) == (start, end)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "full")
    assert make_app(runs).animation_level == "full"


async def test_progress_messages_coalesce() -> None:
    from engine.events import Progress

    older = JobEvent(Progress("evaluate_int8", 10, 100))
    newer = JobEvent(Progress("evaluate_int8", 11, 100))
    other = JobEvent(Progress("evaluate_fp32", 11, 100))
    assert newer.can_replace(older)
    assert not other.can_replace(older)


def test_settings_round_trip_exactly() -> None:
    from tui.settings import KNOB, changes, parse, show

    k = KNOB["preprocessing.scale"]
    assert parse(k, show(k, 1 / 255)) == 1 / 255
    m = KNOB["preprocessing.mean"]
    assert parse(m, show(m, [0.485, 0.456, 0.406])) == [0.485, 0.456, 0.406]
    base = {"calibration.samples": 200, "quantization.stages.fp16": True,
            "quantization.stages.int8": True}
    cur = dict(base, **{"calibration.samples": 50, "quantization.stages.fp16": False})
    assert changes(base, cur) == {"calibration.samples": 50, "quantization.stages": ["fp32", "int8"]}
    # The data sources' overrides: tests/unit/test_tui_datasource.py.


async def test_sweep_from_the_palette_lands_in_compare(runs: Path) -> None:
    sweeper = FakeSweeper(runs)
    app = ArtqApp(runner=FakeRunner(runs), runs_dir=runs, samples=[small_digits(runs.parent)],
                  clock=lambda: 0.0, checker=ThreadChecker(fixed_diagnostics), sweeper=sweeper)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await open_digits(pilot, app)
        await pilot.press("tab", "5", "0")  # a tuned setting holds for every variant...
        await app.run_action("sweep")
        await pilot.pause()
        app.screen.query_one("#sweep-sets", Input).value = "calibration.samples=50,200 calibration.seed=0,1"
        await pilot.press("enter")
        await settle(pilot, app)
        config, sets = sweeper.started[0]
        # ...except the one being swept.
        assert sets == ["calibration.samples=50,200", "calibration.seed=0,1"]
        # The sweep ends in a worker: wait for its table, not a number of pauses (flaky
        # when the machine is busy).
        await until(pilot, lambda: app.query_one(TabbedContent).active == "compare"
                    and app.query_one("#sweep-table", DataTable).row_count == 2,
                    "the sweep's table in 6 Compare")
        assert "calibration.samples=200" in text_of(app, "#sweep-chart")
        assert "sweep OK" in str(app.query_one("#job-state").render())


async def test_a_sweep_ending_in_the_tick_the_runs_poll_fires_still_lands_in_compare(
        runs: Path) -> None:
    """Each read of the runs folder cancels the one before; one cancelled before it started
    never runs, and the sweep's ask to be shown went with it."""
    sweeper = FakeSweeper(runs, hold=True)
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle_app(pilot)
        await sweeper.start("cfg.toml", [], str(runs), lambda message: None)
        await sweeper.finish()
        app.refresh_runs(new_sweep=True)  # the sweep's end...
        app.refresh_runs()  # ...and the poll, before the first read's thread has started
        await until(pilot, lambda: app.query_one(TabbedContent).active == "compare"
                    and app.query_one("#sweep-table", DataTable).row_count == 2,
                    "the sweep's table in 6 Compare")


async def test_a_sweep_shows_each_variant_as_it_runs(runs: Path) -> None:
    sweeper = FakeSweeper(runs, hold=True)
    app = ArtqApp(runner=FakeRunner(runs), runs_dir=runs, samples=[small_digits(runs.parent)],
                  clock=lambda: 0.0, checker=ThreadChecker(fixed_diagnostics), sweeper=sweeper)  # type: ignore[arg-type]
    async with app.run_test(size=(100, 30)) as pilot:
        await open_digits(pilot, app)
        await app.run_action("sweep")
        await pilot.pause()
        app.screen.query_one("#sweep-sets", Input).value = "calibration.samples=50,200"
        await pilot.press("enter")
        await settle(pilot, app)
        assert sweeper.running and app.query_one(TabbedContent).active == "quantize"
        first = app.query_one("#stage-variant-0", StageRow)
        second = app.query_one("#stage-variant-1", StageRow)
        # Variant 0 is half-way through calibrating its INT8 conversion; variant 1 is loading.
        assert first.name_text == "▶ samples=50: Converting to IN…"
        assert first.bar_text.endswith(" 25/50") and first.state_text == "0.0 s, 0.0 s left"
        assert second.name_text == "▶ samples=200: Loading the mod…"
        assert not second.bar_text.endswith("/50")  # no count for a stage without a total
        assert str(app.query_one("#cancel-btn").disabled) == "False"
        await sweeper.finish()
        await settle(pilot, app)
        assert first.name_text == "✓ samples=50" and first.state_text == "done 0.0 s"
        assert second.name_text == "✓ samples=200" and second.word == "done"
        log = "\n".join(str(line.text) for line in app.query_one("#log").lines)
        assert log.endswith("calibration.samples=50: OK, drop 1.5 pts\n"
                            "calibration.samples=200: OK, drop 0.4 pts")
        assert "sweep OK" in str(app.query_one("#job-state").render())


async def test_sweep_progress_messages_coalesce_per_variant_and_stage() -> None:
    from engine.events import Progress
    from engine.protocol import VariantEvent
    from tui.messages import SweepProgress

    def msg(i: int, stage: str, done: int) -> SweepProgress:
        return SweepProgress(VariantEvent(i, Progress(stage, done, 100).to_dict()))

    assert msg(0, "evaluate_int8", 11).can_replace(msg(0, "evaluate_int8", 10))
    assert not msg(1, "evaluate_int8", 11).can_replace(msg(0, "evaluate_int8", 10))
    assert not msg(0, "evaluate_fp32", 11).can_replace(msg(0, "evaluate_int8", 10))


async def test_open_a_config_or_a_model_with_the_file_picker(runs: Path, tmp_path: Path) -> None:
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, OpenScreen)
        app.screen.query_one("#open-path", Input).value = str(DIGITS)
        app.screen.query_one("#open-path", Input).focus()
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.session is not None and app.session.config_path == DIGITS.resolve()
        model = DIGITS.parent.parent / "engine/samples/weights/digits.keras"
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#open-path", Input).value = str(model)
        app.screen.query_one("#open-path", Input).focus()
        await pilot.press("enter")
        await settle(pilot, app)
        # A bare model: a job of its own, no data yet (tests/tui/test_data_editor.py).
        assert app.session.config["model"]["path"] == str(model.resolve())
        assert app.session.name == "digits" and app.session.config["data"]["test"]["path"] == ""
        assert app.session.template and "params   73,114" in text_of(app, "#summary")


async def test_resume_a_qat_run_from_the_palette(runs: Path) -> None:
    seeded = seed_runs(runs)
    runner = FakeRunner(runs, hold=True)
    app = make_app(runs, runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        picker = app.query_one("#picker", OptionList)
        picker.highlighted = picker.get_option_index(f"run:{seeded['unfinished']}")
        await pilot.pause()
        await app.run_action("resume")
        await settle(pilot, app)
        assert runner.resumed == [str(seeded["unfinished"])]


def test_run_labels_tell_apart_a_run_that_had_fewer_samples_than_asked(tmp_path: Path) -> None:
    from tui.panes.models import run_label

    folder = tmp_path / "20261127-090630-ocr_crnn_conv"
    folder.mkdir()

    from engine.report import Report

    def rep(used: int) -> dict:
        return {"schema": "artq.report/1", "status": "ok", "verdict": {"pass": True},
                "config": {"quantization": {"method": "ptq"}, "calibration": {"samples": 200}},
                "data": {"calibration": {"used": used}}}

    assert run_label(folder, Report.from_dict(rep(200))) == "09:06 ocr_crnn_conv PTQ n200 PASS"
    assert run_label(folder, Report.from_dict(rep(100))) == "09:06 ocr_crnn_conv PTQ n200→100 PASS"
    # A run that did not finish says how it ended, never a verdict it did not reach.
    cancelled = {**rep(200), "status": "cancelled", "verdict": {}}
    assert run_label(folder, Report.from_dict(cancelled)) == "09:06 ocr_crnn_conv PTQ n200 CANCELLED"
    failed = Report.from_dict({**rep(200), "status": "failed"})
    assert run_label(folder, failed) == "09:06 ocr_crnn_conv PTQ n200 FAILED"


async def test_a_cleared_samples_field_and_enter_is_said_not_a_crash(runs: Path) -> None:
    # Clearing the field then Enter ended the app with a TOML traceback (and exit status 0).
    from textual.widgets import Label

    app = make_app(runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_digits(pilot, app)
        field = app.query_one("#k-calibration--samples", Input)
        field.value = ""
        field.focus()
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.is_running
        state = str(app.query_one("#check-state", Label).render())
        assert state == "PROBLEM: calibration.samples: is empty: type a value (the config has 200)"
        await pilot.press("ctrl+r")  # launching says the same in a dialog
        await settle(pilot, app)
        assert isinstance(app.screen, ErrorDialog) and app.is_running


def test_compare_rows_say_whether_two_runs_differ_beyond_noise(tmp_path: Path) -> None:
    import numpy as np

    from engine.report import Report
    from engine.stats import paired_from_counts
    from engine.uncertainty import ITEMS, inputs_digest, paired, save_items
    from engine.verdict import Judgement, judge_outputs
    from tui.panes.compare import compare_rows

    x = np.zeros((1000, 2), np.float32)

    def run(name: str, wrong: int) -> Report:
        d = tmp_path / name
        d.mkdir()
        right = np.arange(1000) >= wrong
        save_items(d / ITEMS, {"task_fp32": np.ones(1000, bool), "task_int8": right,
                               "test_digest": inputs_digest(x)})
        j = Judgement("probs", "task", "top1", "points", wrong / 10, 0.5, wrong <= 5,
                      interval=paired(paired_from_counts(1000, wrong, 0), 0.5))
        return Report(run_dir=str(d), verdict=judge_outputs([j], "production"))

    a, b = run("a", 3), run("b", 5)
    rows = {r[0]: r[1:] for r in compare_rows(a, b)}
    assert rows["INT8 drop (points)"] == ("+0.30 ±0.34", "+0.50 ±0.44", "+0.20")
    # 2 more items wrong, none fewer: McNemar's p = 0.5, within noise.
    assert rows["INT8 drop B − A, paired"][2] == "+0.20 ±0.28, within noise"
    rows = {r[0]: r[1:] for r in compare_rows(a, run("c", 40))}
    assert rows["INT8 drop B − A, paired"][2] == "+3.70 ±1.17"


async def test_a_key_typed_right_after_a_tab_switch_keeps_the_focus_it_moved(runs: Path) -> None:
    """The tab's focus is set again after the refresh (the pane may not have been displayed);
    a Tab typed before that refresh moved the focus on, and the second setting undid it."""
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_digits(pilot, app)
        app.action_show_tab("calibration")
        pane = app.query_one("#pane-calibration")
        assert app.focused is pane
        moved = next(w for w in pane.query("Input") if w.focusable)
        app.set_focus(moved)  # what the Tab key does, before the refresh
        await pilot.pause()
        assert app.focused is moved
        app.action_show_tab("models")  # the refresh still focuses a pane shown late
        await pilot.pause()
        assert app.focused is not moved and app.query_one(TabbedContent).active == "models"
