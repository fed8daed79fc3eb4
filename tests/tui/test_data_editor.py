"""The data-source editor of 2 Calibration: every kind, every refusal said beside its field,
the file's own arrays offered, preprocessing off for model-ready data, and a saved config
whose data tables are the ones edited.

The model is the digits sample (input ?×32×32×1); the data are written here with numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fakes import FakeRunner, picker_listing, small_digits, until
from fakes import settle as settle_app
from textual.widgets import Input, OptionList, Select, Static

from engine.config import load_config
from tui.app import ArtqApp
from tui.datapick import DataPickScreen
from tui.jobs import ThreadChecker
from tui.screens import ErrorDialog, SaveScreen
from tui.settings import SettingError


def no_diagnostics(cfg: Any, shape: Any = None) -> tuple[list[dict[str, str]], str]:
    return [], "diagnostics skipped in this test"


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """An .npz of the user's own arrays, a folder of .npy items, an image folder with class
    sub-folders, an empty folder and a text file."""
    rng = np.random.default_rng(0)
    d = tmp_path / "data"
    d.mkdir()
    np.savez(d / "own.npz",
             x_calib=rng.random((40, 32, 32, 1), dtype=np.float32),
             x_test=rng.random((30, 32, 32, 1), dtype=np.float32),
             y_test=rng.integers(0, 10, 30),
             raw_u8=rng.integers(0, 256, (40, 32, 32), dtype=np.uint8),
             y_short=np.arange(5),
             words=np.array(["a", "b"]))
    npy = d / "npy"
    npy.mkdir()
    for i in range(6):
        np.save(npy / f"calibration_data_{i}.npy", rng.random((1, 32, 32, 1), dtype=np.float32))
    np.save(npy / "labels.npy", np.arange(6) % 10)
    img = d / "images"
    for c in ("cat", "dog"):
        (img / c).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(img / c / f"{i}.png"), rng.integers(0, 256, (40, 40), dtype=np.uint8))
    (d / "empty").mkdir()
    (d / "notes.txt").write_text("not data")
    return {"dir": d, "npz": d / "own.npz", "npy": npy, "images": img,
            "empty": d / "empty", "text": d / "notes.txt"}


def make_app(tmp_path: Path, runner: FakeRunner | None = None) -> ArtqApp:
    runs = tmp_path / "runs"
    runs.mkdir(exist_ok=True)
    return ArtqApp(runner=runner or FakeRunner(runs), runs_dir=runs,
                   samples=[small_digits(tmp_path)], clock=lambda: 0.0,
                   checker=ThreadChecker(no_diagnostics), open_dir=tmp_path / "data")


async def settle(pilot) -> None:  # noqa: ANN001
    await settle_app(pilot)

async def open_sample(pilot: Any) -> None:
    await settle(pilot)
    picker = pilot.app.query_one("#picker", OptionList)
    picker.highlighted = picker.get_option_index(f"cfg:{pilot.app.samples[0]}")
    await pilot.press("enter")
    await settle(pilot)
    assert pilot.app.session is not None


def msg(app: ArtqApp, split: str, field: str) -> str:
    return str(app.query_one(f"#ds-{split}-{field}-msg", Static).render())


async def put(pilot: Any, split: str, field: str, value: Any) -> None:
    """Set a field as a choice or typing would (its Changed message is sent)."""
    w = pilot.app.query_one(f"#ds-{split}-{field}")
    w.value = value
    await pilot.pause()


def asks(app: ArtqApp) -> bool:
    """A question is up, its Yes button focused (Enter answers it): what a pause waited for."""
    from tui.newjob import ConfirmScreen  # noqa: PLC0415

    return isinstance(app.screen, ConfirmScreen) and getattr(app.focused, "id", None) == "confirm-yes"


def refused(app: ArtqApp) -> SettingError:
    with pytest.raises(SettingError) as info:
        app.overrides()
    return info.value


async def test_npz_by_keyboard_offers_the_files_arrays_and_checks_the_data(
        tmp_path: Path, data: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # The path is typed relative to the working folder, as a user in the data's folder
    # would: each key costs a pilot round (~0.1 s), and the absolute tmp path was 70 keys.
    monkeypatch.chdir(data["dir"])
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_sample(pilot)
        assert app.focused is app.query_one("#pane-calibration")
        # Samples → Seed → Draws → Keep → the calibration source's Kind: pick npz, then
        # type the path.
        await pilot.press("tab", "tab", "tab", "tab", "tab", "enter")
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.query_one("#ds-calibration-kind", Select).value == "npz"
        assert "PROBLEM: choose a file or folder" in msg(app, "calibration", "path")
        await pilot.press("tab", *"own.npz", "enter")
        await settle(pilot)
        xs = app.query_one("#ds-calibration-x", Select)
        offered = [str(p) for p, _ in xs._options]
        assert "x_calib  40×32×32×1 float32" in offered
        assert "y_test  30 int64" in offered and "words  2 <U1" in offered
        assert xs.value == "x_calib"  # the calibration array, by its name
        assert msg(app, "calibration", "path") == "6 arrays"
        assert msg(app, "calibration", "x") == "40 items"
        assert msg(app, "calibration", "y").startswith("no labels")
        # The data check ran on the file: 40 items, all drawn.
        await until(pilot, lambda: "own.npz: 40 items" in str(
            app.query_one("#calib-stats", Static).render()), "the check of the npz")
        assert app.overrides() == {  # the typed path, made absolute against the cwd
            "data.calibration.kind": "npz", "data.calibration.path": str(data["npz"]),
            "data.calibration.x": "x_calib", "data.calibration.y": ""}


async def test_npz_refusals_are_said_beside_their_fields(tmp_path: Path,
                                                         data: dict[str, Path]) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_sample(pilot)
        await put(pilot, "test", "kind", "npz")
        assert "PROBLEM: choose a file or folder" in msg(app, "test", "path")
        assert refused(app).key == "data.test.path"
        await put(pilot, "test", "path", str(data["dir"] / "gone.npz"))
        assert msg(app, "test", "path") == f"PROBLEM: not found: {data['dir'] / 'gone.npz'}"
        await put(pilot, "test", "path", str(data["npy"]))
        assert "PROBLEM: is a folder; an .npz is a file" in msg(app, "test", "path")
        await put(pilot, "test", "path", str(data["text"]))
        assert "PROBLEM: is not a readable .npz file" in msg(app, "test", "path")
        await put(pilot, "test", "path", str(data["npz"]))
        assert msg(app, "test", "path") == "6 arrays"
        assert app.query_one("#ds-test-x", Select).value == "x_test"
        assert app.query_one("#ds-test-y", Select).value == "y_test"
        assert msg(app, "test", "y") == ""
        # An array of text is no model input; arrays of another shape are not model-ready.
        await put(pilot, "test", "x", "words")
        assert msg(app, "test", "x") == "PROBLEM: 'words' holds <U1, which cannot be a model input"
        assert refused(app).key == "data.test.x"
        await put(pilot, "test", "x", "raw_u8")
        assert msg(app, "test", "x").startswith(
            "PROBLEM: items are 32×32 but the model takes 32×32×1: give model-ready arrays, "
            "or turn on Raw")
        await put(pilot, "test", "raw", True)  # raw images: preprocessing makes them 32×32×1
        assert msg(app, "test", "x") == "40 items"
        assert msg(app, "test", "y") == "PROBLEM: 30 labels for 40 inputs in 'raw_u8'"
        await put(pilot, "test", "y", "y_short")
        assert msg(app, "test", "y") == "PROBLEM: 5 labels for 40 inputs in 'raw_u8'"
        assert refused(app).key == "data.test.y"
        # A launch with a problem says which field, and starts nothing.
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert "data.test.y: 5 labels for 40 inputs" in str(
            app.screen.query_one("#error-message", Static).render())
        assert app.runner.started == []  # type: ignore[attr-defined]


async def test_folder_kinds_and_synthetic_refusals(tmp_path: Path, data: dict[str, Path]) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_sample(pilot)
        ed = "calibration"
        await put(pilot, ed, "kind", "npy_dir")
        await put(pilot, ed, "path", str(data["npz"]))
        assert "PROBLEM: is a file; npy-dir reads a folder of .npy files" in msg(app, ed, "path")
        await put(pilot, ed, "path", str(data["empty"]))
        assert "PROBLEM: holds no .npy files" in msg(app, ed, "path")
        await put(pilot, ed, "path", str(data["npy"]))
        assert msg(app, ed, "path") == "6 .npy items; labels: labels.npy"
        assert app.overrides()["data.calibration.path"] == str(data["npy"])
        await put(pilot, ed, "kind", "images")
        assert not app.query_one(f"#ds-{ed}-raw-row").display  # images are always raw
        assert "PROBLEM: holds no images" in msg(app, ed, "path")
        await put(pilot, ed, "path", str(data["empty"]))
        assert "PROBLEM: holds no images" in msg(app, ed, "path")
        await put(pilot, ed, "path", str(data["images"]))
        assert msg(app, ed, "path") == "labels: 2 class sub-folders (cat, dog)"
        ov = app.overrides()
        assert ov["data.calibration.kind"] == "images" and "data.calibration.x" not in ov
        # Back to the generator: its fields, each refusal in words, and the file dropped.
        await put(pilot, ed, "kind", "synthetic")
        assert app.query_one(f"#ds-{ed}-generator", Select).value == "digits"
        await put(pilot, ed, "count", "0")
        assert msg(app, ed, "count") == "PROBLEM: Items must be at least 1, got 0"
        await put(pilot, ed, "count", "")
        assert msg(app, ed, "count") == "PROBLEM: Items is empty: type a whole number"
        await put(pilot, ed, "count", "50")
        await put(pilot, ed, "seed", "-")
        assert msg(app, ed, "count") == "PROBLEM: Seed '-' is not a whole number"
        assert refused(app).key == "data.calibration.seed"
        await put(pilot, ed, "seed", "7")
        app.query_one(f"#ds-{ed}-generator", Select).clear()
        await pilot.pause()
        assert msg(app, ed, "generator") == "PROBLEM: choose a generator"
        await put(pilot, ed, "generator", "ocr_words")
        assert app.overrides() == {"data.calibration.generator": "ocr_words",
                                   "data.calibration.count": 50, "data.calibration.seed": 7}


async def test_model_ready_data_turns_preprocessing_off_and_says_why(
        tmp_path: Path, data: dict[str, Path]) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_sample(pilot)
        note = lambda: str(app.query_one("#pp-note", Static).render())  # noqa: E731
        assert note() == "Preprocessing: applies to every split (images)."
        for split, x in (("calibration", "x_calib"), ("test", "x_test")):
            await put(pilot, split, "kind", "npz")
            await put(pilot, split, "path", str(data["npz"]))
            assert app.query_one(f"#ds-{split}-x", Select).value == x
        assert note().startswith("Preprocessing: off. Every split is model-ready (raw = false)")
        assert app.query_one("#k-preprocessing--scale", Input).disabled
        assert msg(app, "test", "raw") == "off: model-ready, fed as stored"
        await put(pilot, "calibration", "raw", True)
        assert not app.query_one("#k-preprocessing--scale", Input).disabled
        assert note() == ("Preprocessing: applies to calibration; test model-ready "
                          "(raw = false), fed as stored.")


async def test_qat_shows_the_training_data(tmp_path: Path, data: dict[str, Path]) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_sample(pilot)
        assert not app.query("#ds-train")  # mounted when a QAT job needs it
        await pilot.press("f4")
        await settle(pilot)
        app.query_one("#k-quantization--method", Select).value = "qat"
        await pilot.press("f3")
        await settle(pilot)
        assert app.query_one("#ds-train").display and app.query_one("#ds-validation").display
        await put(pilot, "train", "kind", "npz")
        await put(pilot, "train", "path", str(data["npz"]))
        await put(pilot, "train", "x", "x_calib")
        await put(pilot, "train", "y", "y_short")
        assert msg(app, "train", "y") == "PROBLEM: 5 labels for 40 inputs in 'x_calib'"
        assert refused(app).key == "data.train.y"
        app.query_one("#k-quantization--method", Select).value = "ptq"
        await settle(pilot)
        assert "data.train.y" not in str(app.overrides())  # PTQ reads no training data


async def test_browse_picks_the_file_with_the_keyboard(tmp_path: Path,
                                                       data: dict[str, Path]) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_sample(pilot)
        await put(pilot, "calibration", "kind", "npz")
        app.query_one("#ds-calibration-browse").focus()
        await pilot.press("enter")
        # Not settle(): the tree's loader is a worker that waits for as long as it is open.
        await until(pilot, lambda: isinstance(app.screen, DataPickScreen), "the picker")
        # The tree of data/: the .npz and the folders, no text file.
        await until(pilot, lambda: picker_listing(app), "the folder listing")
        labels = [str(n.label) for n in picker_listing(app)]
        assert "own.npz" in labels and "notes.txt" not in labels
        for _ in range(labels.index("own.npz") + 1):
            await pilot.press("down")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, DataPickScreen), "the pick")
        assert app.query_one("#ds-calibration-path", Input).value == str(data["npz"])
        assert app.query_one("#ds-calibration-x", Select).value == "x_calib"


async def test_saved_config_has_the_edited_data_tables(tmp_path: Path,
                                                       data: dict[str, Path]) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_sample(pilot)
        for split in ("calibration", "test"):
            await put(pilot, split, "kind", "npz")
            await put(pilot, split, "path", str(data["npz"]))
        ov = app.overrides()
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, SaveScreen)
        dest = tmp_path / "mine.toml"
        field = app.screen.query_one("#save-path", Input)
        field.value = str(dest)
        await pilot.press("enter")
        await settle(pilot)
    saved = load_config(dest).to_dict()["data"]
    assert saved == load_config(app.samples[0], ov).to_dict()["data"]
    assert saved["calibration"] == {**saved["calibration"], "kind": "npz",
                                    "path": str(data["npz"]), "x": "x_calib", "y": ""}
    assert saved["test"] == {**saved["test"], "kind": "npz", "path": str(data["npz"]),
                             "x": "x_test", "y": "y_test", "raw": False}


DIGITS_MODEL = Path(__file__).resolve().parents[2] / "engine/samples/weights/digits.keras"


async def test_a_model_opened_alone_is_a_job_of_its_own(tmp_path: Path, data: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = FakeRunner(tmp_path / "runs")
    app = make_app(tmp_path, runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.pane("models").open_model(DIGITS_MODEL)
        await settle(pilot)
        s = app.session
        assert s is not None and s.template and s.name == "digits"
        # Its task from its outputs (?×10), not the highlighted sample's settings.
        assert s.config["evaluation"] == {**s.config["evaluation"], "task": "classification",
                                          "profile": "general"}
        assert s.config["model"]["path"] == str(DIGITS_MODEL)
        assert app.query_one("#tabs").active == "calibration"
        assert "choose calibration and test data" in str(app.query_one("#check-state").render())
        for split in ("calibration", "test"):
            assert app.query_one(f"#ds-{split}-kind", Select).value == "npz"
            assert "PROBLEM: choose a file or folder" in msg(app, split, "path")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog) and runner.started == []
        await pilot.press("escape")
        for split in ("calibration", "test"):
            await put(pilot, split, "path", str(data["npz"]))
            app.query_one(f"#ds-{split}-path").focus()
            await pilot.press("enter")  # Enter in a field checks the data again
        await settle(pilot)
        assert "own.npz: 40 items" in str(app.query_one("#calib-stats").render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, SaveScreen)
        # Proposed in the current folder, not the scratch folder of the new job.
        assert app.screen.query_one("#save-path", Input).value == str(tmp_path / "digits.toml")
        await pilot.press("enter")
        await settle(pilot)
    cfg = load_config(tmp_path / "digits.toml")
    assert cfg.evaluation.task == "classification" and cfg.model.path == str(DIGITS_MODEL)
    assert (cfg.data.calibration.x, cfg.data.test.x, cfg.data.test.y) == ("x_calib", "x_test", "y_test")


async def test_tuned_values_are_not_dropped_without_asking(tmp_path: Path) -> None:
    from tui.newjob import ConfirmScreen

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_sample(pilot)
        await pilot.press("tab", "5", "0", "enter")
        await settle(pilot)
        sample = app.session
        app.pane("models").open_model(DIGITS_MODEL)
        await until(pilot, lambda: asks(app), "the question")
        assert isinstance(app.screen, ConfirmScreen)
        assert "calibration.samples = 50" in str(app.screen.query_one("#confirm-message").render())
        await pilot.press("escape")
        await settle(pilot)
        assert app.session is sample
        assert app.query_one("#k-calibration--samples", Input).value == "50"
        app.pane("models").open_model(DIGITS_MODEL)
        await until(pilot, lambda: asks(app), "the question")
        await pilot.press("enter")
        await settle(pilot)
        assert app.session is not sample and app.session.name == "digits"


def test_the_task_is_guessed_from_the_outputs() -> None:
    from tui.newjob import guess_task

    def outs(*shapes: list[Any]) -> dict[str, Any]:
        return {"outputs": [{"shape": s} for s in shapes]}

    assert guess_task(outs([None, 10]))[0] == "classification"
    assert guess_task(outs([None, 1]))[0] == "generic"  # one score: no classes to count
    assert guess_task(outs([None, 32, 63]))[0] == "ctc"
    assert guess_task(outs([None, 64, 64, 1], [None, 64, 64, 5]))[0] == "east"
    assert guess_task(outs([None, 10], [None, 4]))[0] == "generic"


async def test_quit_while_a_job_runs_asks_first(tmp_path: Path) -> None:
    from tui.newjob import ConfirmScreen

    runner = FakeRunner(tmp_path / "runs", hold=True)
    app = make_app(tmp_path, runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_sample(pilot)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: runner.running, "the job to start")
        await pilot.press("escape", "q")  # out of the field, then q
        await until(pilot, lambda: asks(app), "q to ask")
        assert isinstance(app.screen, ConfirmScreen) and runner.running
        await pilot.press("escape")  # keep the job
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the question to close")
        assert not isinstance(app.screen, ConfirmScreen) and runner.running
        assert app.is_running
        await pilot.press("q")
        await until(pilot, lambda: asks(app), "q to ask")
        await pilot.press("enter")
        await until(pilot, lambda: not app.is_running, "the app to quit")
        assert not runner.running


async def test_the_scale_field_shows_its_whole_value(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_sample(pilot)
        field = app.query_one("#k-preprocessing--scale", Input)
        assert field.value == "0.00392156862745098"
        assert field.content_size.width >= len(field.value) + 1  # room for the cursor too


async def test_a_run_made_elsewhere_shows_up_without_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakes import make_report, write_run

    monkeypatch.setattr("tui.app.RUNS_POLL_S", 0.1)  # the poll is tested, not its 2 s
    app = make_app(tmp_path)
    runs = tmp_path / "runs"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        picker = app.query_one("#picker", OptionList)
        assert not any((picker.get_option_at_index(i).id or "").startswith("run:")
                       for i in range(picker.option_count))
        # As `artq run` in another terminal would leave it.
        run = write_run(runs, "20260101-050000-digits_ptq", make_report(runs / "x", samples=100))

        def listed() -> bool:
            try:
                picker.get_option_index(f"run:{run}")
            except Exception:  # noqa: BLE001 - not there yet
                return False
            return True

        await until(pilot, listed, "the new run in 1 Models")


def test_runs_that_differ_in_one_key_say_it_in_their_labels(tmp_path: Path) -> None:
    from dataclasses import replace

    from fakes import make_report

    from tui.panes.models import run_labels

    def qat(epochs: int, folder: str) -> tuple[Path, Any]:
        rep = make_report(tmp_path / folder, method="qat")
        q = {**rep.config["quantization"], "qat": {"epochs": epochs}}
        return tmp_path / f"20260101-0{epochs}0000-digits_qat", replace(
            rep, config={**rep.config, "quantization": q})

    runs = [qat(1, "a"), qat(2, "b"), (tmp_path / "20260101-030000-other", None)]
    labels = run_labels(runs)
    assert labels[0].endswith(" epochs=1") and labels[1].endswith(" epochs=2")
    assert labels[0].rsplit(" ", 1)[0].split(" ", 1)[1] == labels[1].rsplit(" ", 1)[0].split(" ", 1)[1]
    assert labels[2].endswith("UNFINISHED")  # no twin, no key


async def test_the_log_wraps_a_long_command_without_dropping_characters(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_sample(pilot)
        await pilot.press("f4")
        await settle(pilot)
        log = app.query_one("#log")
        line = ("artq run digits_ptq.toml --set data.calibration.path="
                "/home/someone/projects/sensor/data/calibration_set_2026.npz "
                "--set data.calibration.x=x_calib --set calibration.samples=300")
        log.write(line)
        await settle(pilot)
        shown = [strip.text.rstrip() for strip in log.lines]
        assert all(len(s) <= log.scrollable_content_region.width for s in shown)
        assert "".join(shown).replace(" ", "") == line.replace(" ", "")
        # The path breaks after a separator, not inside a name.
        at = next(i for i, s in enumerate(shown) if "/home/" in s)
        assert shown[at].endswith(("/", "=")) and not shown[at + 1].startswith(" ")
        assert "calibration_set_2026.npz" in "\n".join(shown)
