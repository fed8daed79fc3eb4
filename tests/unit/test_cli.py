"""`artq run` exit codes and messages for bad input: one line, code 2, nothing complete left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from commands import DIGITS, artq, job_file, no_complete_run, one_line
from conftest import ROOT, unreadable_files


def test_missing_model(tmp_path: Path) -> None:
    r = artq("run", str(job_file(tmp_path, model=tmp_path / "nope.keras")))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(tmp_path / "nope.keras") in line and "model not found" in line
    assert not (tmp_path / "runs").exists()


def test_text_file_named_keras(tmp_path: Path) -> None:
    fake = tmp_path / "model.keras"
    fake.write_text("this is not a model\n")
    r = artq("run", str(job_file(tmp_path, model=fake)))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(fake) in line and "not a Keras 3 model" in line
    assert not (tmp_path / "runs").exists()


def test_unreadable_config_and_model_are_one_line(tmp_path: Path) -> None:
    job = job_file(tmp_path)
    for path, why in unreadable_files(tmp_path, "job.toml", job.read_bytes()):
        r = artq("run", str(path))
        assert r.returncode == 2
        assert f"{path}: cannot read ({why})" in one_line(r.stderr)
    for path, why in unreadable_files(tmp_path / "m", "model.keras", DIGITS.read_bytes()):
        r = artq("run", str(job_file(tmp_path, model=path)))
        assert r.returncode == 2
        assert f"{path}: cannot read ({why})" in one_line(r.stderr)
        assert not (tmp_path / "runs").exists()
    fifo = tmp_path / "fifo.keras"
    os.mkfifo(fifo)
    r = artq("run", str(job_file(tmp_path, model=fifo)))  # would block reading a FIFO
    assert r.returncode == 2
    assert f"{fifo}: is not a regular file" in one_line(r.stderr)


def test_folder_with_one_corrupt_image(tmp_path: Path) -> None:
    job = job_file(tmp_path)
    bad = tmp_path / "cal" / "9.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    r = artq("run", str(job))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(bad) in line and "cannot be decoded" in line
    no_complete_run(tmp_path)


def test_empty_calibration_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = artq("run", str(job_file(tmp_path, cal=empty)))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(empty) in line and "holds no images" in line
    no_complete_run(tmp_path)


def test_unknown_key(tmp_path: Path) -> None:
    job = job_file(tmp_path, extra="\n[quantization]\ngranularty = 'per_tensor'\n")
    r = artq("run", str(job))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(job) in line and "quantization.granularty: unknown key" in line
    assert "did you mean 'granularity'" in line
    assert not (tmp_path / "runs").exists()


def test_negative_samples(tmp_path: Path) -> None:
    job = job_file(tmp_path, samples=-3)
    r = artq("run", str(job))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "calibration.samples" in line and "-3" in line
    assert not (tmp_path / "runs").exists()


def test_bad_set_override(tmp_path: Path) -> None:
    r = artq("run", str(job_file(tmp_path)), "--set", "calibration.samples=0")
    assert r.returncode == 2
    assert "calibration.samples" in one_line(r.stderr)


def test_runs_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    job = job_file(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    for cmd, named in (
        (["run", str(job), "--runs-dir", str(afile)], f"{afile}: the runs folder is a file"),
        (["run", str(job), "--runs-dir", str(afile / "sub")],
         f"{afile / 'sub'}: the runs folder lies under {afile}, which is a file"),
        (["run", str(job), "--set", f"output.runs_dir={json.dumps(str(afile))}"],
         f"{afile}: the runs folder is a file"),
        (["sweep", str(job), "--set", "calibration.samples=5,10", "--runs-dir", str(afile)],
         f"{afile}: the runs folder is a file"),
    ):
        r = artq(*cmd)
        assert r.returncode == 2, (cmd, r.stderr)
        line = one_line(r.stderr)
        assert named in line and "--runs-dir" in line, line
    assert afile.read_text() == "x\n"


def _unwritable_dir(tmp: Path) -> Path:
    """A folder this process cannot create folders in, even as root, or skip."""
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").mkdir()
    except PermissionError:
        return ro
    (ro / "probe").rmdir()
    # Root ignores mode bits, but sysfs refuses new folders even to root.
    sysfs = Path("/sys/kernel")
    if sysfs.is_dir():
        try:
            (sysfs / "artq-probe").mkdir()
        except OSError:
            return sysfs
        (sysfs / "artq-probe").rmdir()
    pytest.skip("no folder here refuses writes to this process")


def test_unwritable_runs_dir_is_one_line(tmp_path: Path) -> None:
    ro = _unwritable_dir(tmp_path)
    r = artq("run", str(job_file(tmp_path)), "--runs-dir", str(ro))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert f"{ro}: cannot create a run folder here" in line and "--runs-dir" in line


def test_samples_train_checks_out_before_training(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    for out, named in ((afile, f"{afile}: is a file, not a folder"),
                       (afile / "sub", f"{afile / 'sub'}: lies under {afile}, a file")):
        r = artq("samples", "train", "digits", "--epochs", "1", "--out", str(out))
        assert r.returncode == 2, r.stderr
        line = one_line(r.stderr)
        assert named in line and "--out" in line and "training" not in r.stdout
    # Where the weights would go is a folder: refused too, before any training.
    from engine.samples import SAMPLES  # noqa: PLC0415

    (tmp_path / "w" / SAMPLES["digits"].weights).mkdir(parents=True)
    r = artq("samples", "train", "digits", "--out", str(tmp_path / "w"))
    assert r.returncode == 2 and "is a folder, so the weights cannot be saved" in one_line(r.stderr)
    # A missing folder is made before training (checked without training: that takes minutes).
    from engine.backends.tf.samples.train import _check_out_dir  # noqa: PLC0415

    new = tmp_path / "new" / "weights"
    _check_out_dir(new, new / "digits.keras")
    assert new.is_dir() and not any(new.iterdir())
    ro = _unwritable_dir(tmp_path)
    r = artq("samples", "train", "digits", "--out", str(ro))
    assert r.returncode == 2 and f"{ro}: cannot write here" in one_line(r.stderr)


def test_bad_analysis_target_fails_before_any_work(tmp_path: Path) -> None:
    job = job_file(tmp_path)
    inf = tmp_path / "inf.toml"
    inf.write_text((ROOT / "engine" / "targets" / "stm32n6570-dk.toml").read_text()
                   .replace("size_kib = 448", "size_kib = 1e400", 1))
    for target, says in (
        ("stm32n6570dk", "unknown target 'stm32n6570dk'"),  # a typo of the bundled name
        ("my_board.toml", f"{tmp_path / 'my_board.toml'}: target file not found"),
        (str(inf), f"{inf}: memory.pools[0].size_kib: must be a finite number > 0"),
    ):
        # cwd: a --set path is relative to where it is typed.
        r = artq("run", str(job), "--set", f"analysis.target={json.dumps(target)}", cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        line = one_line(r.stderr)
        assert f"{job}: analysis.target: {says}" in line, line
        assert not (tmp_path / "runs").exists()  # no run folder: nothing was done


def test_help_explains_every_option() -> None:
    r = artq("--help")
    assert r.returncode == 0
    for word in ("run", "inspect", "exit codes"):
        assert word in r.stdout
    r = artq("run", "--help")
    assert r.returncode == 0
    for opt in ("--runs-dir", "--set", "--json", "--strict", "--strict-confident",
                "evaluation.strict_confident", "KEY=VALUE"):
        assert opt in r.stdout


def test_qat_training_data_is_checked_before_the_ptq_baseline_runs(tmp_path: Path) -> None:
    missing = tmp_path / "train.npz"
    extra = (f'\n[data.train]\nkind = "npz"\npath = "{missing}"\n'
             '[quantization]\nmethod = "qat"\n')
    r = artq("run", str(job_file(tmp_path, extra=extra)))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(missing) in line and "data.train.path" in line
    assert not (tmp_path / "runs").exists()  # no PTQ baseline run either
    extra = '\n[data.train]\nkind = "synthetic"\ngenerator = "digitz"\ncount = 5\n[quantization]\nmethod = "qat"\n'
    r = artq("run", str(job_file(tmp_path, extra=extra)))
    assert r.returncode == 2 and "data.train.generator: unknown generator 'digitz'" in one_line(r.stderr)
    assert not (tmp_path / "runs").exists()


def test_strict_without_an_int8_stage_is_refused(tmp_path: Path) -> None:
    r = artq("run", str(job_file(tmp_path)), "--strict", "--set", 'quantization.stages=["fp32"]')
    assert r.returncode == 2
    assert "--strict needs the int8 stage" in one_line(r.stderr)
    r = artq("run", str(job_file(tmp_path)), "--set", "evaluation.strict_confident=true",
             "--set", 'quantization.stages=["fp32"]')
    assert r.returncode == 2
    assert "--strict-confident needs the int8 stage" in one_line(r.stderr)
    assert not (tmp_path / "runs").exists()


def test_a_model_with_the_other_formats_suffix_is_told_to_rename(tmp_path: Path) -> None:
    import shutil

    import h5py

    from engine.errors import InputFileError
    from engine.modelfile import inspect_model_file

    zipped = tmp_path / "model.h5"
    shutil.copy(DIGITS, zipped)
    with pytest.raises(InputFileError, match=r"model.h5: is a zip archive.*rename it to .keras"):
        inspect_model_file(str(zipped))
    legacy = tmp_path / "model.keras"
    with h5py.File(legacy, "w") as f:
        f.attrs["model_config"] = "{}"
    with pytest.raises(InputFileError, match=r"model.keras: is a legacy Keras HDF5 model.*rename it to .h5"):
        inspect_model_file(str(legacy))


def test_resume_with_a_config_too_is_refused_not_half_ignored(tmp_path: Path) -> None:
    r = artq("run", str(job_file(tmp_path)), "--resume", str(tmp_path / "runs" / "x"))
    assert r.returncode == 2
    assert "give a job config or --resume RUN, not both" in one_line(r.stderr)


def test_data_mistakes_found_before_a_run_folder_is_made(tmp_path: Path) -> None:
    npz = tmp_path / "cal.npz"
    np.savez(npz, images=np.zeros((4, 32, 32, 1), np.float32))
    r = artq("run", str(job_file(tmp_path, cal=npz, cal_kind="npz")))
    assert r.returncode == 2
    assert "data.calibration.x: array 'x' is not in cal.npz (it holds: images)" in one_line(r.stderr)
    r = artq("run", str(job_file(tmp_path, cal=tmp_path, cal_kind="npz")))
    assert r.returncode == 2 and "is a folder, not an .npz file" in one_line(r.stderr)
    r = artq("run", str(job_file(tmp_path, cal=npz, cal_kind="images")))
    assert r.returncode == 2 and 'is a file, but kind = "images" reads a folder' in one_line(r.stderr)
    assert not (tmp_path / "runs").exists()


def _image_classes(root: Path, classes: list[str], per_class: int = 2) -> Path:
    import cv2  # noqa: PLC0415

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
    line = one_line(r.stderr)
    assert "data.calibration" in line and str(test) in line and "only in data.calibration: 1" in line
    assert not (tmp_path / "runs").exists()  # found in preflight, before any data is read
    # One folder per model class, an empty one included, is what the 10-class model needs.
    (test / "1").mkdir()
    r = artq("run", str(job))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert f"data.test ({test}): 3 class folders (0, 1, 2) but the model has 10 classes" in line
    assert not (tmp_path / "runs").exists()  # preflight: the model's metadata, no TensorFlow


def test_input_shape_that_contradicts_the_model(tmp_path: Path) -> None:
    r = artq("run", str(job_file(tmp_path)), "--set", "model.input_shape=[16,16,1]")
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(DIGITS) in line and "model.input_shape = [16, 16, 1] does not fit" in line
    assert "(None, 32, 32, 1)" in line
    assert not (tmp_path / "runs").exists()  # found in preflight, from the model's config


def test_an_array_without_its_batch_axis_is_told_so(tmp_path: Path) -> None:
    one = tmp_path / "one.npz"
    np.savez(one, x=np.zeros((32, 32, 1), np.float32))  # one digit, saved without x[None]
    r = artq("run", str(job_file(tmp_path, cal=one, cal_kind="npz")))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(one) in line and "has the model input's own shape (32, 32, 1)" in line
    assert "batch axis is missing" in line
    assert not (tmp_path / "runs").exists()  # preflight: the .npz header, nothing loaded


def test_onnx_samples_are_listed_exported_not_trained() -> None:
    r = artq("samples", "list")
    assert r.returncode == 0
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line[:1].strip()}
    for name, weights, config in (("digits_onnx", "digits.onnx", "digits_onnx.toml"),
                                  ("crnn_conv_onnx", "crnn_conv.onnx",
                                   "ocr_crnn_conv_onnx.toml")):
        assert weights in rows[name] and config in rows[name]
        assert rows[name].rstrip().endswith("exported")
    r = artq("samples", "train", "digits_onnx")
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "digits_onnx is exported from the digits sample, not trained" in line
    assert "artq samples export-onnx digits_onnx" in line
    r = artq("samples", "export-onnx", "east")
    assert r.returncode == 2 and "no ONNX sample for 'east'" in one_line(r.stderr)
