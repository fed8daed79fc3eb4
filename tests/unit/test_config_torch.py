"""A PyTorch model in a job config: model.torch, model.weights and model.input_shape,
validated without torch, with one-line errors naming the key or the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.backends.torch import torch_available
from engine.config import load_config
from engine.errors import ConfigError, InputFileError
from engine.torch_model import inspect_torch_model

DATA = """
[data.calibration]
kind = "npy_dir"
path = "cal"
[data.test]
kind = "npz"
path = "test.npz"
"""


def test_torch_model_paths_are_taken_from_the_config_folder(write_config, tmp_path: Path) -> None:
    cfg = load_config(write_config('[model]\ntorch = "code/models.py:build"\n'
                                   'weights = "w/model.pt"\ninput_shape = [1, 32, 32]\n' + DATA))
    assert cfg.model.torch == f"{tmp_path / 'code' / 'models.py'}:build"
    assert cfg.model.weights == str(tmp_path / "w" / "model.pt")
    assert cfg.model.input_shape == (1, 32, 32)
    assert cfg.model.path == ""


@pytest.mark.parametrize(("model", "key", "words"), [
    ('torch = "models.py"\ninput_shape = [1, 8, 8]', "model.torch", "FILE.py:CALLABLE"),
    ('torch = "models.py:build-it"\ninput_shape = [1, 8, 8]', "model.torch", "FILE.py:CALLABLE"),
    ('torch = "models.py:build"', "model.input_shape", "[C, H, W]"),
    ('path = "m.keras"\ntorch = "models.py:build"\ninput_shape = [1, 8, 8]', "model", "both"),
    ('path = "m.keras"\nweights = "m.pt"', "model.weights", "PyTorch"),
    ('input_shape = [1, 8, 8]', "model.path", "model.torch"),
])
def test_torch_config_errors_name_the_key(write_config, model: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write_config("[model]\n" + model + "\n" + DATA))
    assert e.value.key == key
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_inspect_torch_model_checks_the_files_without_torch(tmp_path: Path) -> None:
    code = tmp_path / "models.py"
    with pytest.raises(InputFileError, match="models.py: not found"):
        inspect_torch_model(f"{code}:build", "")
    code.write_text("def build(): ...\n")
    with pytest.raises(InputFileError, match=r"model\.pt: not found"):
        inspect_torch_model(f"{code}:build", str(tmp_path / "model.pt"))
    other = tmp_path / "models.txt"
    other.write_text("")
    with pytest.raises(InputFileError, match="not a Python file"):
        inspect_torch_model(f"{other}:build", "")
    mf = inspect_torch_model(f"{code}:build", "")
    assert (mf.path, mf.format) == (f"{code}:build", "torch")


def test_the_workbench_summary_of_a_pytorch_model_needs_no_torch(tmp_path: Path) -> None:
    from engine.torch_model import torch_model_summary

    code = tmp_path / "models.py"
    code.write_text("def build(): ...\n")
    s = torch_model_summary(f"{code}:build", str(tmp_path / "w.pt"), (1, 32, 32))
    assert (s["format"], s["exists"], s["inputs"][0]["shape"]) == ("torch", False, [None, 1, 32, 32])
    (tmp_path / "w.pt").write_bytes(b"x" * 10)
    s = torch_model_summary(f"{code}:build", str(tmp_path / "w.pt"), (1, 32, 32))
    assert s["exists"] and s["size_bytes"] == code.stat().st_size + 10


@pytest.mark.parametrize(("setting", "key"), [
    ('[evaluation]\ntask = "ctc"', "evaluation.task"),
    ("[quantization.qat]\nfreeze_batch_norm = false", "quantization.qat.freeze_batch_norm"),
])
def test_what_pytorch_qat_cannot_do_is_refused_before_any_work(
        write_config, tmp_path: Path, setting: str, key: str) -> None:
    # Without torch, "torch is not installed" is the first thing to say (and is said). Asked
    # of the installation only: importorskip would import torch (~4 s) for a question.
    if not torch_available():
        pytest.skip("needs torch installed (the [torch] extra)")
    from engine.job import preflight

    (tmp_path / "models.py").write_text("def build(): ...\n")
    (tmp_path / "w.pt").write_bytes(b"")
    synthetic = ('kind = "synthetic"\ngenerator = "digits"\ncount = 10\n')
    job = ('[model]\ntorch = "models.py:build"\nweights = "w.pt"\ninput_shape = [1, 32, 32]\n'
           + "".join(f"[data.{s}]\n{synthetic}split = \"{s}\"\n"
                     for s in ("calibration", "test", "train"))
           + '[quantization]\nmethod = "qat"\n' + setting + "\n")
    cfg = load_config(write_config(job))
    with pytest.raises(ConfigError) as e:
        preflight(cfg)
    assert e.value.key == key and "\n" not in str(e.value)
