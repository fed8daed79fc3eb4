"""`artq run` on input that only a real TensorFlow export can judge: the report on stdout,
--strict's exit code, and mistakes found once the model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from commands import DIGITS, error_line, job_file, no_complete_run
from commands import artq_process as artq


def test_json_prints_the_report_only_and_strict_sets_code_4(tmp_path: Path) -> None:
    cal = tmp_path / "cal"
    cal.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(str(cal / f"{i}.png"), rng.integers(0, 255, (32, 32), dtype=np.uint8))
    job = job_file(tmp_path, cal=cal, extra="\n[evaluation]\nprofile = 'production'\n")
    r = artq("run", str(job), "--json", "--set", "quantization.stages=['fp32','int8']")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)  # stdout is exactly one JSON document
    assert rep["status"] == "ok" and set(rep["stages"]) == {"fp32", "int8"}
    # Calibrated on noise: INT8 should drop far more than the 0.5-point production bar.
    if not rep["verdict"]["pass"]:
        r2 = artq("run", str(job), "--strict", "--set", "quantization.stages=['fp32','int8']")
        assert r2.returncode == 4


def _image_classes(root: Path, classes: list[str], per_class: int = 2) -> Path:
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / c / f"{i}.png"), np.full((32, 32), 30 * i, np.uint8))
    return root


def test_test_folder_missing_a_class_would_shift_labels(tmp_path: Path) -> None:
    # Labels are indices into sorted folder names: without "1", "2" would read as class 1.
    cal = _image_classes(tmp_path / "cal", ["0", "1", "2"])
    test = _image_classes(tmp_path / "test", ["0", "2"])
    extra = f'\n[data.test]\nkind = "images"\npath = "{test}"\n'
    job = job_file(tmp_path, cal=cal)
    job.write_text(job.read_text().replace(
        '[data.test]\nkind = "synthetic"\ngenerator = "digits"\nsplit = "test"\ncount = 10\n', "") + extra)
    r = artq("run", str(job))
    assert r.returncode == 2
    line = error_line(r.stderr)
    assert "data.calibration" in line and str(test) in line and "only in data.calibration: 1" in line
    no_complete_run(tmp_path)
    # One folder per model class, an empty one included, is what the 10-class model needs.
    (test / "1").mkdir()
    r = artq("run", str(job))
    assert r.returncode == 2
    line = error_line(r.stderr)
    assert f"data.test ({test}): 3 class folders (0, 1, 2) but the model has 10 classes" in line


def test_input_shape_that_contradicts_the_model(tmp_path: Path) -> None:
    r = artq("run", str(job_file(tmp_path)), "--set", "model.input_shape=[16,16,1]")
    assert r.returncode == 2
    line = error_line(r.stderr)
    assert str(DIGITS) in line and "model.input_shape = [16, 16, 1] does not fit" in line
    assert "(None, 32, 32, 1)" in line
    no_complete_run(tmp_path)
