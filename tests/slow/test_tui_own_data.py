"""A new user's own model and data, keyboard only at 80×24 (issue 17's done-when): a Keras
.h5 sensor model (8×8×2 in, 3 classes) and an .npz with x_calib, x_test and y_test, both
built here. Open the model, choose the data in 2 Calibration, run PTQ with the real worker,
read the results, save the config, and ``artq run`` of the saved file makes the same metrics
and a byte-identical int8.tflite.

Keys: Ctrl+O, Tab (to the path field), the .h5's path, Enter · (2 Calibration opens on the
pane) Tab ×4 (Samples, Seed, Kind, Path), the .npz's path, Enter · Tab ×6 (Browse, Inputs,
Labels, Raw, test Kind, test Path), the .npz's path, Enter · Ctrl+R · (when done) F5 (4
Results), PgDn, F6 (5 Layers) · Ctrl+S, Enter · q.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_tui_worker import wait_for
from textual.widgets import Input, Select

from tui.app import ArtqApp
from tui.jobs import WorkerRunner


def sensor_model(folder: Path) -> tuple[Path, Path]:
    """An 8×8×2 → 3-class model fitted a little on separable data, and its arrays."""
    import keras

    rng = np.random.default_rng(0)

    def items(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        x = rng.normal(0, 0.3, (n, 8, 8, 2)).astype(np.float32)
        x[np.arange(n), y * 2, :, y % 2] += 1.5  # the class is a bright row in one channel
        return x, y

    x_train, y_train = items(600)
    x_calib, _ = items(120)
    x_test, y_test = items(90)
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(8, 3, padding="same"),
                          keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(),
                          keras.layers.Dense(3), keras.layers.Softmax()])
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x_train, y_train, epochs=8, verbose=0)
    model = folder / "sensor.h5"
    m.save(model)
    data = folder / "sensor.npz"
    np.savez(data, x_calib=x_calib, x_test=x_test, y_test=y_test)
    return model, data


async def test_own_model_and_npz_by_keyboard_then_artq_run_reproduces(
        tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    model, data = sensor_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    runner = WorkerRunner()
    app = ArtqApp(runner=runner, runs_dir=runs, samples=[], open_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.painted and app.panes_ready(), 60)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.query("#open-path"), 10)
        await pilot.press("tab")  # from the file tree to the path field
        assert app.focused is app.screen.query_one("#open-path", Input)
        await pilot.press(*str(model), "enter")
        await wait_for(pilot, lambda: app.session is not None
                       and app.focused is app.query_one("#pane-calibration"), 60)
        assert app.session.config["evaluation"]["task"] == "classification"
        await pilot.press(*["tab"] * 6)  # Samples, Seed, Draws, Keep, Kind, Path
        assert app.focused is app.query_one("#ds-calibration-path")
        await pilot.press(*str(data), "enter")
        await pilot.press(*["tab"] * 6)
        assert app.focused is app.query_one("#ds-test-path")
        await pilot.press(*str(data), "enter")
        await pilot.pause()
        assert app.query_one("#ds-calibration-x", Select).value == "x_calib"
        assert (app.query_one("#ds-test-x", Select).value,
                app.query_one("#ds-test-y", Select).value) == ("x_test", "y_test")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: runner.proc is not None and not runner.running
                       and "done" in str(app.query_one("#job-state").render()), 600)
        # Read the results: the verdict and the stage table in 4 Results, the layers in 5.
        await wait_for(pilot, lambda: app.report is not None, 30)
        await pilot.press("f5")
        await pilot.pause()
        screen = "\n".join(s.text for s in app.screen._compositor.render_strips())
        assert "Verdict: " in screen and "sensor" in screen, screen
        await pilot.press("pagedown", "f6")
        await wait_for(pilot, lambda: app.pane("layers").report is app.report, 30)
        screen = "\n".join(s.text for s in app.screen._compositor.render_strips())
        assert "CONV_2D" in screen and "reason" in screen, screen
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.query("#save-path"), 10)
        assert app.screen.query_one("#save-path", Input).value == str(tmp_path / "sensor.toml")
        await pilot.press("enter")
        await wait_for(pilot, lambda: (tmp_path / "sensor.toml").is_file(), 10)
        await pilot.press("q")  # no job runs: quits at once
        await wait_for(pilot, lambda: not app.is_running, 10)
    (tui_run,) = [p for p in runs.iterdir() if (p / "report.json").is_file()]
    again = tmp_path / "again"
    r = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(tmp_path / "sensor.toml"),
                        "--runs-dir", str(again), "--quiet"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    (cli_run,) = list(again.iterdir())
    a = json.loads((tui_run / "report.json").read_text())
    b = json.loads((cli_run / "report.json").read_text())
    def figures(rep: dict) -> dict:  # not items_per_s: a timing of this machine's moment
        return {k: (v["metrics"], v["drop"], v["size_bytes"]) for k, v in rep["stages"].items()}

    assert set(a["stages"]) == {"fp32", "fp16", "int8"} and figures(a) == figures(b)
    assert a["stages"]["fp32"]["metrics"]["top1"] > 0.5  # 3 classes: it learnt something
    assert a["verdict"] == b["verdict"]
    assert (tui_run / "int8.tflite").read_bytes() == (cli_run / "int8.tflite").read_bytes()
