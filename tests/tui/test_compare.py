"""6 Compare: runs of the same model paired by default, only the settings that differ and act
in both runs, and both A and B in view at 60 columns."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from fakes import FakeRunner, make_report, seed_runs, settle, small_digits, until, write_run
from textual.widgets import DataTable, Select, TabbedContent
from textual.worker import WorkerCancelled

from engine.report import ModelInfo
from tui.app import ArtqApp
from tui.jobs import ThreadChecker
from tui.panes.compare import compare_rows, fit_rows, model_of, pick_pair


def test_the_pair_is_two_runs_of_the_same_model_whatever_the_jobs_are_called() -> None:
    newest_first = ["r/20261127-130700-job", "r/20261127-120000-ocr_crnn_conv",
                    "r/20261127-110000-digits_ptq", "r/20261127-100000-job"]
    models = {newest_first[0]: "/m/sensor.h5", newest_first[1]: "/m/crnn.keras",
              newest_first[2]: "/m/digits.keras", newest_first[3]: "/m/sensor.h5"}
    # Not the newest other run (another model), not the same job name's guess alone.
    assert pick_pair(newest_first, None, models) == (newest_first[3], newest_first[0])
    # Same job name, other model: the model wins over the name.
    models[newest_first[3]] = "/m/other.h5"
    models[newest_first[2]] = "/m/sensor.h5"
    assert pick_pair(newest_first, None, models) == (newest_first[2], newest_first[0])
    # Without models known: the same job, then the newest other run.
    assert pick_pair(newest_first) == (newest_first[3], newest_first[0])
    rep = replace(make_report("r/x"), model=ModelInfo(path="/m/sensor.h5"))
    assert model_of(rep) == "/m/sensor.h5" and model_of(None) is None


def test_only_settings_that_differ_and_act_in_both_runs_are_rows(tmp_path: Path) -> None:
    ptq = make_report(tmp_path / "a", samples=200)
    qat = make_report(tmp_path / "b", samples=50, method="qat")
    qat = replace(qat, config={**qat.config, "quantization": {
        **qat.config["quantization"], "qat": {"epochs": 2, "learning_rate": 1e-5}},
        "data": {"train": {"kind": "npz", "path": "t.npz"}}})
    whats = [r[0] for r in compare_rows(ptq, qat)]
    assert "set quantization.method" in whats and "set calibration.samples" in whats
    # A QAT knob means nothing to the PTQ run; the name never differs meaningfully.
    assert not [w for w in whats if "qat." in w or "data.train" in w or w == "set name"]
    # Two QAT runs: their QAT settings compare.
    qat2 = replace(qat, config={**qat.config, "quantization": {
        **qat.config["quantization"], "qat": {"epochs": 3, "learning_rate": 1e-5}}})
    rows = {r[0]: r[1:] for r in compare_rows(qat, qat2)}
    assert rows["set quantization.qat.epochs"] == ("2", "3", "+1")
    assert "set quantization.qat.learning_rate" not in rows  # the same in both
    # Preprocessing acts on images only: not a row for two runs on model-ready arrays.
    arrays = {"calibration": {"kind": "npz", "raw": False}, "test": {"kind": "npz", "raw": False}}
    a = replace(ptq, config={**ptq.config, "data": arrays, "preprocessing": {"scale": 1.0}})
    b = replace(ptq, config={**ptq.config, "data": arrays, "preprocessing": {"scale": 0.5}})
    assert not [r for r in compare_rows(a, b) if "preprocessing" in r[0]]
    images = {"calibration": {"kind": "images", "path": "x"}, "test": {"kind": "images"}}
    a = replace(a, config={**a.config, "data": images})
    b = replace(b, config={**b.config, "data": images})
    assert [r[1:] for r in compare_rows(a, b) if r[0] == "set preprocessing.scale"] == [
        ("1", "0.5", "-0.5000")]
    # A figure only one run has (B ran no FP16 stage) compares nothing: not a row.
    no_fp16 = replace(ptq, stages={k: v for k, v in ptq.stages.items() if k != "fp16"})
    assert not [r for r in compare_rows(ptq, no_fp16) if r[0].startswith("FP16")]
    assert [r for r in compare_rows(ptq, ptq) if r[0].startswith("FP16")]


def test_fitted_rows_leave_room_for_a_and_b() -> None:
    rows = [("set quantization.qat.learning_rate", "/a/very/long/path/to/model_one.h5",
             "/a/very/long/path/to/model_two.h5", "≠"), ("verdict (high)", "PASS", "FAIL", "")]
    fitted = fit_rows(rows, 60)
    widths = [max(len(r[i]) for r in fitted) + 2 for i in range(4)]
    assert sum(widths) + 2 <= 60
    assert fitted[0][0].endswith("learning_rate") and fitted[0][1].endswith("one.h5")
    assert fitted[1] == ("verdict (high)", "PASS", "FAIL", "")


async def test_at_60_columns_both_runs_stay_in_view(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    seed_runs(runs)
    # A long model path in both: the cells are cut in the middle, not the B column.
    for folder, n, top1 in (("20260101-010000-digits_ptq", 200, 0.992),
                            ("20260101-020000-digits_ptq", 50, 0.981)):
        write_run(runs, folder, replace(make_report(runs / folder, samples=n, int8_top1=top1),
                                        model=ModelInfo(path="/home/user/models/sensor.h5")))
    app = ArtqApp(runner=FakeRunner(runs), runs_dir=runs, samples=[small_digits(tmp_path)],
                  clock=lambda: 0.0, checker=ThreadChecker(lambda c, s=None: ([], "")))
    async with app.run_test(size=(60, 24)) as pilot:
        for _ in range(3):
            await pilot.pause()
            with contextlib.suppress(WorkerCancelled):
                await app.workers.wait_for_complete()
        await pilot.press("6")
        await until(pilot, lambda: app.query("#cmp-table")
                    and app.query_one("#cmp-table", DataTable).row_count > 3, "the pair")
        await pilot.pause()
        assert not app.query_one("#cmp-a", Select).is_blank()
        screen = [s.text for s in app.screen._compositor.render_strips()]
        head = next(line for line in screen if " what " in line)
        assert head.index("B − A") + len("B − A") <= 60 and " A " in head and " B " in head
        drop = next(line for line in screen if "INT8 top-1" in line)
        assert "99.20 %" in drop and "98.10 %" in drop and "-1.10 pts" in drop
        samples = next(line for line in screen if "samples" in line and "200" in line)
        assert "50" in samples.split("200", 1)[1]


async def test_compare_latest_pairs_the_newest_finished_runs_or_says_why_not(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    app = ArtqApp(runner=FakeRunner(runs), runs_dir=runs, samples=[small_digits(tmp_path)],
                  clock=lambda: 0.0, checker=ThreadChecker(lambda c, s=None: ([], "")))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.action_compare_latest()
        await pilot.pause()
        assert [n.message for n in app._notifications] == ["Compare needs two finished runs."]
        assert app.query_one(TabbedContent).active == "models"
        seed_runs(runs)
        app.refresh_runs()
        await until(pilot, lambda: len(app.runs) == 4, "the seeded runs")
        app.action_compare_latest()
        assert app.query_one(TabbedContent).active == "compare"
        # The unfinished run (newest) is not one of the pair.
        assert (app.query_one("#cmp-a", Select).value, app.query_one("#cmp-b", Select).value) == (
            str(runs / "20260101-010000-digits_ptq"), str(runs / "20260101-020000-digits_ptq"))
        assert app.query_one("#cmp-table", DataTable).row_count > 3
