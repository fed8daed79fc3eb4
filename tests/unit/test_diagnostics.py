"""Calibration diagnostics on real images: each planted problem gives its own finding,
clean data gives none, and the module stays free of TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from engine.config import PreprocessConfig, load_config
from engine.diagnostics import diagnose, diagnose_config, model_input_shape
from engine.preprocess import PreprocessSpec, preprocess
from engine.samples import generate

DIGITS = ROOT / "engine" / "samples" / "weights" / "digits.keras"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    spec = PreprocessSpec.resolve(PreprocessConfig(), (32, 32, 1))
    cal = preprocess(generate("digits", "calibration", 200, 0).images, spec)
    test = preprocess(generate("digits", "test", 400, 0).images, spec)
    return cal, test


def codes(found: list) -> set[str]:
    return {d.code for d in found}


def test_clean_data_gives_no_finding(digits) -> None:
    cal, test = digits
    assert diagnose(cal, test, requested=200) == []


def test_uniform_random_calibration_is_called_noise(digits) -> None:
    cal, test = digits
    noise = np.random.default_rng(0).random(cal.shape, dtype=np.float32)
    found = diagnose(noise, test)
    assert "random_calibration_data" in codes(found)
    d = next(f for f in found if f.code == "random_calibration_data")
    assert d.severity == "error" and "correlate" in d.evidence and d.fix
    # The same images are fine: the check looks at structure, not at the value range.
    assert "random_calibration_data" not in codes(diagnose(cal, test))


def test_0_255_calibration_against_0_1_test_is_a_range_mismatch(digits) -> None:
    cal, test = digits
    found = diagnose(cal * 255.0, test)
    assert "range_mismatch" in codes(found)
    d = next(f for f in found if f.code == "range_mismatch")
    assert "×255" in d.message and "0–255" in d.message
    assert "1 of 256 levels" in d.evidence  # the test data collapses onto one input level


def test_0_1_calibration_against_0_255_test_also_saturates(digits) -> None:
    cal, test = digits
    found = codes(diagnose(cal, test * 255.0))
    assert {"range_mismatch", "input_saturation"} <= found


def test_ten_near_identical_images_lack_diversity(digits) -> None:
    cal, test = digits
    rng = np.random.default_rng(1)
    near = np.stack([np.clip(cal[3] + rng.normal(0, 0.01, cal[3].shape), 0, 1)
                     for _ in range(10)]).astype(np.float32)
    found = diagnose(near, test, requested=10)
    assert {"low_diversity", "too_few_samples"} <= codes(found)
    d = next(f for f in found if f.code == "low_diversity")
    assert "nearly alike" in d.message and "brightness" in d.evidence
    assert "random_calibration_data" not in codes(found)


def test_shifted_mean_is_a_normalization_mismatch(digits) -> None:
    cal, test = digits
    assert "normalization_mismatch" in codes(diagnose(cal - 0.5, test))


def test_many_samples_is_only_a_note(digits) -> None:
    cal, test = digits
    many = np.concatenate([cal, cal, cal])
    found = diagnose(many, test)
    assert codes(found) == {"many_samples"}
    assert found[0].severity == "info"


def test_asking_more_samples_than_exist_is_said(digits) -> None:
    """A what-if at 500 samples on a set of 200 must not read as a 500-sample run."""
    cal, test = digits
    found = diagnose(cal, test, requested=500)
    assert codes(found) == {"fewer_samples_than_asked"}
    assert "500" in found[0].message and "only 200" in found[0].message


JOB = """
[model]
path = "{model}"
[data.calibration]
kind = "synthetic"
generator = "digits"
split = "calibration"
count = {count}
[data.test]
kind = "synthetic"
generator = "digits"
split = "test"
count = 300
[calibration]
samples = {count}
"""


def test_diagnose_config_loads_data_like_the_job(tmp_path: Path) -> None:
    assert model_input_shape(DIGITS) == (32, 32, 1)
    job = tmp_path / "job.toml"
    job.write_text(JOB.format(model=DIGITS, count=150))
    assert diagnose_config(load_config(job)) == []
    job.write_text(JOB.format(model=DIGITS, count=20))
    found = diagnose_config(load_config(job))
    assert [f["code"] for f in found] == ["too_few_samples"]
    assert set(found[0]) == {"code", "severity", "message", "evidence", "fix"}


def test_few_samples_of_sensor_data_are_told_in_data_words_not_light() -> None:
    # 8×8×2 sensor frames: "brighter or darker" and "brightness, contrast" mean nothing there.
    rng = np.random.default_rng(3)
    level = rng.normal(0, 1, (420, 1, 1, 1)).astype(np.float32)
    frames = (level + 0.3 * rng.normal(0, 1, (420, 8, 8, 2))).astype(np.float32)
    (few,) = [f for f in diagnose(frames[:20], frames[20:], requested=20)
              if f.code == "too_few_samples"]
    text = f"{few.evidence} {few.fix}"
    assert "brighter" not in text and "brightness" not in text and "image" not in text
    assert "of test items have a mean level outside every calibration item's" in few.evidence
    assert "covering the range and variety of the test data" in few.fix


def test_few_samples_of_images_still_speak_of_brightness(digits) -> None:
    cal, test = digits
    (few,) = [f for f in diagnose(cal[:20], test, requested=20) if f.code == "too_few_samples"]
    assert "brighter or darker than every calibration image" in few.evidence
    assert "brightness, contrast and content" in few.fix


def test_extreme_values_are_counted_and_no_numpy_warning_escapes() -> None:
    import warnings

    rng = np.random.default_rng(0)
    cal = rng.normal(0, 1, (100, 8, 8, 2)).astype(np.float32)
    test = rng.normal(0, 1, (200, 8, 8, 2)).astype(np.float32)
    cal[3, 0, 0, 0], cal[7, 1, 1, 1] = 3e38, -2e38  # near float32's limit: squares overflow
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow) would fail the test
        found = diagnose(cal, test, requested=100)
    (far,) = [f for f in found if f.code == "extreme_values"]
    assert far.message == "2 of 12,800 sampled calibration values lie far outside the rest"
    assert "values span [-2e+38, 3e+38] while 99.8 % lie in [-3." in far.evidence
    assert "min/max calibration" in far.fix
    assert "extreme_values" not in codes(diagnose(test[:100], test[100:], requested=100))
