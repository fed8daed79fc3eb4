"""MSE-optimal activation ranges (calibration.method = "mse") from value histograms."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backends.onnx.ranges import mse_range, mse_ranges


def _hist(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The histogram onnxruntime's calibrator keeps: 2048 bins over ±max|v|."""
    thr = float(np.abs(v).max())
    return np.histogram(v, 2048, range=(-thr, thr))


def _fake_quant_mse(v: np.ndarray, a: float, b: float) -> float:
    """The real squared error of int8 asymmetric quantization over [a, b]."""
    s = (b - a) / 255
    zp = np.round(-128 - a / s)
    q = np.clip(np.round(v / s) + zp, -128, 127)
    return float(np.mean(((q - zp) * s - v) ** 2))


@pytest.mark.parametrize("kind", ["laplace", "relu_laplace", "student"])
def test_the_range_is_the_least_error_one_on_heavy_tails(kind: str) -> None:
    rng = np.random.default_rng(0)
    v = {"laplace": rng.laplace(size=100_000),
         "relu_laplace": np.maximum(rng.laplace(size=100_000), 0),
         "student": rng.standard_t(3, size=100_000)}[kind].astype(np.float32)
    hist, edges = _hist(v)
    a, b = mse_range(hist, edges, float(v.min()), float(v.max()))
    assert v.min() <= a <= 0 <= b <= v.max()
    full = _fake_quant_mse(v, float(min(v.min(), 0)), float(v.max()))
    best = _fake_quant_mse(v, a, b)
    assert best < full  # clipping the rare tail pays for a finer grid
    # and no nearby range does clearly better: it is the minimum, not just an improvement
    for fa, fb in ((0.8, 0.8), (1.25, 1.25), (1.0, 0.8), (1.0, 1.25)):
        other = _fake_quant_mse(v, max(a * fa, float(v.min())), min(b * fb, float(v.max())))
        assert best <= other * 1.05
    if kind == "relu_laplace":
        assert a == 0.0


def test_a_lone_outlier_that_costs_more_clipped_keeps_the_full_range() -> None:
    """One 50 among values in [0, 1): clipping it costs ~49² while the wide grid costs
    every value (50/255)²/12 — under 49² in total, so MSE keeps (nearly) all of it, where
    a 99.9 percentile would clip it to about 1."""
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.uniform(0, 1, 2559), [50.0]]).astype(np.float32)
    hist, edges = _hist(v)
    a, b = mse_range(hist, edges, float(v.min()), float(v.max()))
    assert a == 0.0 and 49.5 < b <= 50.0


def test_uniform_values_keep_their_range_and_empty_ones_are_left() -> None:
    v = np.random.default_rng(1).uniform(-1, 1, 50_000).astype(np.float32)
    hist, edges = _hist(v)
    a, b = mse_range(hist, edges, float(v.min()), float(v.max()))
    assert a == pytest.approx(-1, abs=0.01) and b == pytest.approx(1, abs=0.01)
    assert mse_range(np.zeros(4), np.linspace(-1, 1, 5), 0.0, 0.0) == (0.0, 0.0)
    # onnxruntime's histogram_dict items: (hist, edges, min, max, threshold)
    out = mse_ranges({"t": (hist, edges, v.min(), v.max(), np.abs(v).max())})
    assert set(out) == {"t"} and all(isinstance(x, np.float32) for x in out["t"])
