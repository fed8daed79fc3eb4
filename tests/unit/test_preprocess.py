"""The one preprocessing function: what it computes, and that every split gets the same."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import PreprocessConfig
from engine.errors import DataError
from engine.preprocess import PreprocessSpec, preprocess, preprocess_one


def test_scale_mean_std_and_colour_order() -> None:
    cfg = PreprocessConfig(color="rgb", scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    spec = PreprocessSpec.resolve(cfg, (2, 2, 3))
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV order
    out = preprocess_one(bgr, spec)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    # blue lands in channel 2 for RGB; (1 - 0.5) / 0.25 = 2, (0 - 0.5) / 0.25 = -2
    np.testing.assert_allclose(out[0, 0], [-2.0, -2.0, 2.0])


def test_gray_resize_and_defaults_from_model_shape() -> None:
    spec = PreprocessSpec.resolve(PreprocessConfig(), (4, 8, 1))
    assert (spec.height, spec.width, spec.color) == (4, 8, "gray")
    img = np.full((16, 32, 3), 255, np.uint8)
    out = preprocess_one(img, spec)
    assert out.shape == (4, 8, 1)
    np.testing.assert_allclose(out, 1.0)


def test_same_function_for_calibration_and_evaluation() -> None:
    """Calibration and evaluation data prepared from the same raw images are bit-identical."""
    from engine.data import RawData, prepare, select_calibration

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(12)]
    spec = PreprocessSpec.resolve(PreprocessConfig(mean=(0.1,), std=(0.3,)), (20, 25, 3))
    raw = RawData("mem", images=images, labels=np.arange(12))
    idx = select_calibration(len(raw), 5, seed=3)
    cal = prepare(raw.subset(idx), spec, (20, 25, 3), "data.calibration")
    test = prepare(raw, spec, (20, 25, 3), "data.test")
    np.testing.assert_array_equal(cal.x, test.x[idx])
    np.testing.assert_array_equal(test.x, preprocess(images, spec))


def test_mismatches_are_clear_errors() -> None:
    with pytest.raises(DataError, match="3 channel"):
        PreprocessSpec.resolve(PreprocessConfig(color="rgb"), (8, 8, 1))
    with pytest.raises(DataError, match=r"resize = \[10, 10\] but the model input is 8×8"):
        PreprocessSpec.resolve(PreprocessConfig(resize=(10, 10)), (8, 8, 1))
    with pytest.raises(DataError, match="mean has 2 values"):
        PreprocessSpec.resolve(PreprocessConfig(mean=(0.1, 0.2), std=(1.0,)), (8, 8, 3))


def test_calibration_selection_is_reproducible() -> None:
    from engine.data import select_calibration

    a = select_calibration(1000, 100, seed=0)
    assert len(a) == 100 and len(set(a.tolist())) == 100
    np.testing.assert_array_equal(a, select_calibration(1000, 100, seed=0))
    assert not np.array_equal(a, select_calibration(1000, 100, seed=1))
    assert len(select_calibration(10, 100, seed=0)) == 10
