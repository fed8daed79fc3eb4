"""Input quantization (round and clip, not the guide's truncate-and-wrap) and parallel runs."""

from __future__ import annotations

import numpy as np

from engine.evaluate import TensorIO, dequantize, quantize


def guide_quantize(img: np.ndarray, scale: float, zero_point: int, dtype: type) -> np.ndarray:
    """The guide's §6.1 loop, verbatim in effect: divide, add, cast."""
    return (img / scale + zero_point).astype(dtype)


def test_round_and_clip_against_the_guides_truncation() -> None:
    # An int8 input calibrated on [0, 1] images: scale 1/255, zero point −128.
    t = TensorIO(0, "input", (1, 4), np.dtype(np.int8), 1 / 255, -128)
    x = np.array([0.701, 0.299, 1.2, -0.05], np.float32)
    ours = quantize(x, t)
    theirs = guide_quantize(x, t.scale, t.zero_point, np.int8)
    # 0.701·255 − 128 = 50.755: rounding gives 51, the guide's cast truncates to 50
    # 0.299·255 − 128 = −51.755: rounding gives −52, truncation (toward zero) −51
    # 1.2 is above the calibrated range: artq clips to 127, the guide's cast wraps around
    # −0.05 is below it: artq clips to −128, the guide gives −140 wrapped to 116
    assert ours.tolist() == [51, -52, 127, -128]
    assert theirs.tolist()[:2] == [50, -51]
    assert theirs[2] < 0
    assert theirs[3] == 116


def test_uint8_negative_inputs_wrap_in_the_guide() -> None:
    t = TensorIO(0, "input", (1, 3), np.dtype(np.uint8), 0.02, 128)
    x = np.array([-3.0, -2.56, 0.011], np.float32)  # mean/std-normalised pixels go negative
    assert quantize(x, t).tolist() == [0, 0, 129]  # −150 clips to 0; 0.55 rounds to 1
    assert guide_quantize(x, t.scale, t.zero_point, np.uint8).tolist()[0] != 0


def test_halves_round_away_from_zero_like_tflite() -> None:
    t = TensorIO(0, "input", (1, 4), np.dtype(np.int8), 1.0, 0)
    assert quantize(np.array([0.5, 1.5, -0.5, -2.5]), t).tolist() == [1, 2, -1, -3]


def test_dequantize_inverts_on_grid_points() -> None:
    t = TensorIO(0, "out", (1, 3), np.dtype(np.int8), 0.1, 3)
    q = np.array([-128, 3, 127], np.int8)
    np.testing.assert_allclose(dequantize(q, t), [-13.1, 0.0, 12.4], rtol=1e-6)
    np.testing.assert_array_equal(quantize(dequantize(q, t), t), q)
