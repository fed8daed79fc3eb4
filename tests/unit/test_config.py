from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import unreadable_files

from engine.config import PROFILE_THRESHOLDS, load_config, replace
from engine.errors import ConfigError
from engine.rawconfig import parse_value

BASE = """
[model]
path = "model.keras"
[data.calibration]
kind = "npy_dir"
path = "cal"
[data.test]
kind = "npz"
path = "test.npz"
"""


def test_defaults_and_relative_paths(write_config, tmp_path: Path) -> None:
    cfg = load_config(write_config(BASE))
    assert cfg.calibration.samples == 200  # the default
    assert cfg.quantization.granularity == "per_channel"
    assert cfg.quantization.stages == ("fp32", "fp16", "int8")
    assert cfg.model.path == str(tmp_path / "model.keras")
    assert cfg.data.calibration.path == str(tmp_path / "cal")
    assert cfg.output.runs_dir == str(Path.cwd() / "runs")
    assert cfg.name == "job"
    assert cfg.threshold == PROFILE_THRESHOLDS["general"] == 2.0


def test_set_paths_are_relative_to_where_they_are_typed(write_config, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    job = write_config(BASE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(job, ['data.test.path="data/t.npz"', 'output.runs_dir="r"'])
    assert cfg.data.test.path == str(elsewhere / "data" / "t.npz")  # like --runs-dir, not the file's
    assert cfg.output.runs_dir == str(elsewhere / "r")
    assert cfg.data.calibration.path == str(tmp_path / "cal")  # the file's own: its folder


def test_config_is_frozen(write_config) -> None:
    cfg = load_config(write_config(BASE))
    with pytest.raises(Exception, match="frozen|cannot assign"):
        cfg.calibration.samples = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("[calibration]\nsamples = -3", "calibration.samples", "greater than or equal to 1"),
        ('[calibration]\nsamples = "many"', "calibration.samples", "valid integer"),
        ("[calibration]\nsmaples = 3", "calibration.smaples", "did you mean 'samples'"),
        ('[quantization]\nmethod = "int4"', "quantization.method", "'ptq' or 'qat'"),
        ('[quantization]\nstages = ["fp16", "int8"]', "quantization.stages", "must include fp32"),
        ("[preprocessing]\nresize = [32]", "preprocessing.resize", "wrong number of values"),
        ("[evaluation]\nworkers = 1.5", "evaluation.workers", "valid integer"),
        ("bogus = 1", "bogus", "unknown key"),
        ('[evaluation]\nprofile = "strict"', "evaluation.profile", "'prototype'"),
    ],
)
def test_bad_values_name_file_and_key(write_config, extra: str, key: str, words: str) -> None:
    path = write_config(BASE + "\n" + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text
    assert f"{key}:" in text
    assert words in text
    assert "\n" not in text  # one line


def test_missing_and_invalid_files(tmp_path: Path, write_config) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write_config("[model\npath="))
    with pytest.raises(ConfigError, match=r"model: is required but missing"):
        load_config(write_config('[data.test]\nkind = "npz"\npath = "x"'))


def test_unreadable_config_names_the_file(tmp_path: Path) -> None:
    for path, why in unreadable_files(tmp_path, "job.toml", BASE.encode()):
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value).startswith(f"{path}: cannot read ({why})")
        assert info.value.exit_code == 2


def test_synthetic_source_needs_generator_and_count(write_config) -> None:
    text = BASE.replace('kind = "npy_dir"\npath = "cal"', 'kind = "synthetic"')
    with pytest.raises(ConfigError, match=r"data.calibration.generator"):
        load_config(write_config(text))


def test_a_path_on_a_synthetic_source_is_refused_not_ignored(write_config) -> None:
    text = BASE.replace('kind = "npy_dir"\npath = "cal"',
                        'kind = "synthetic"\ngenerator = "digits"\ncount = 10\npath = "my_cal.npz"')
    with pytest.raises(ConfigError, match=r"data.calibration.path: a synthetic source ignores path "
                                          r"\(.*my_cal.npz\) \(set data.calibration.kind to \"npz\""):
        load_config(write_config(text))


def test_a_set_typo_is_blamed_on_the_command_line_not_the_file(write_config) -> None:
    job = write_config(BASE)
    with pytest.raises(ConfigError) as err:
        load_config(job, ["calibration.sampels=5"])
    assert str(err.value) == "--set calibration.sampels: unknown key (did you mean 'samples'?)"
    with pytest.raises(ConfigError, match=r"^--set preprocessing.mean: needs a list, got 0.5 "
                                          r"\(write it as a list: \[0.5\]\)"):
        load_config(job, ["preprocessing.mean=0.5"])
    with pytest.raises(ConfigError, match=r'write it as a list: \["int8"\]'):
        load_config(job, ["quantization.stages=int8"])
    # A problem in the file itself still names the file.
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(job))}: calibration.samples"):
        load_config(write_config(BASE + "\n[calibration]\nsamples = 0\n"), ["calibration.seed=1"])


def test_a_misspelt_section_is_reported_before_the_one_it_leaves_missing(write_config) -> None:
    text = BASE.replace("[data.test]", "[data.tset]")
    with pytest.raises(ConfigError, match=r"data.tset: unknown key .*did you mean 'test'"):
        load_config(write_config(text))


def test_qat_needs_training_data(write_config) -> None:
    with pytest.raises(ConfigError, match=r"data.train: QAT needs training data"):
        load_config(write_config(BASE + '\n[quantization]\nmethod = "qat"'))


def test_overrides_parse_like_toml(write_config) -> None:
    cfg = load_config(
        write_config(BASE),
        ["calibration.samples=50", "quantization.granularity=per_tensor", "evaluation.max_samples=10"],
    )
    assert cfg.calibration.samples == 50
    assert cfg.quantization.granularity == "per_tensor"
    assert cfg.evaluation.max_samples == 10
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("true") is True
    assert parse_value("qat") == "qat"
    with pytest.raises(ConfigError, match="calibration.samples: input should be greater"):
        load_config(write_config(BASE), ["calibration.samples=0"])
    with pytest.raises(ConfigError, match="--set needs KEY=VALUE"):
        load_config(write_config(BASE), ["calibration.samples"])
    with pytest.raises(ConfigError, match="calibration.sample: unknown key"):
        load_config(write_config(BASE), ["calibration.sample=5"])


def test_replace_validates_again(write_config) -> None:
    cfg = load_config(write_config(BASE))
    c2 = replace(cfg, {"calibration.samples": 7})
    assert c2.calibration.samples == 7 and cfg.calibration.samples == 200
    with pytest.raises(ConfigError):
        replace(cfg, {"calibration.samples": -1})


def test_every_sample_config_is_valid() -> None:
    from conftest import SAMPLE_CONFIGS

    configs = sorted(SAMPLE_CONFIGS.glob("*.toml"))
    assert configs, "sample_configs/ is empty"
    for p in configs:
        cfg = load_config(p)
        assert Path(cfg.model.path).exists(), f"{p.name}: model {cfg.model.path} missing"
