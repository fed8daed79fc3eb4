"""Cross-layer equalization's numpy core: same float function, balanced ranges."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import load_config
from engine.equalize import channel_ranges, divide_out, equalize_pair, relative_diff, scales
from engine.errors import ConfigError


def _conv(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """'valid' 2-D convolution, NHWC input, Keras kernel (kh, kw, cin, cout)."""
    kh, kw = k.shape[:2]
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], h, w, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,cd->nhwd", x[:, i:i + h, j:j + w, :], k[i, j])
    return out + b


def _net(x, k1, b1, k2, b2, bn=None):
    y = _conv(x, k1, b1)
    if bn is not None:
        gamma, beta, mean, var = bn
        y = gamma * (y - mean) / np.sqrt(var + 1e-3) + beta
    return _conv(np.maximum(y, 0), k2, b2)


def _unbalanced(rng: np.random.Generator):
    k1 = rng.normal(size=(3, 3, 3, 6)) * np.array([0.01, 0.1, 1, 10, 0.5, 3])
    b1 = rng.normal(size=6) * 0.1
    k2 = rng.normal(size=(3, 3, 6, 4))
    return k1, b1, k2, rng.normal(size=4) * 0.1


def test_equalized_two_conv_relu_net_computes_the_same_and_balances_ranges() -> None:
    rng = np.random.default_rng(0)
    k1, b1, k2, b2 = _unbalanced(rng)
    x = rng.normal(size=(2, 8, 8, 3))
    k1e, k2e, s = equalize_pair(k1, 3, k2, 2)
    b1e = divide_out(b1, s, 0)
    before, after = _net(x, k1, b1, k2, b2), _net(x, k1e, b1e, k2e, b2)
    assert relative_diff(before, after) < 1e-12
    r1, r2 = channel_ranges(k1e, 3), channel_ranges(k2e, 2)
    np.testing.assert_allclose(r1, r2, rtol=1e-12)
    # The spread of the first layer's ranges (1000× before) is what per-tensor rounding pays.
    old = channel_ranges(k1, 3)
    assert old.max() / old.min() > 100 and r1.max() / r1.min() < old.max() / old.min() / 10


def test_a_batch_norm_between_is_rescaled_with_the_conv() -> None:
    rng = np.random.default_rng(1)
    k1, b1, k2, b2 = _unbalanced(rng)
    gamma, beta = rng.uniform(0.1, 5, 6), rng.normal(size=6)
    mean, var = rng.normal(size=6), rng.uniform(0.01, 4, 6)
    x = rng.normal(size=(2, 7, 7, 3))
    fold = gamma / np.sqrt(var + 1e-3)
    k1e, k2e, s = equalize_pair(k1, 3, k2, 2, fold=fold)
    bn = (gamma, divide_out(beta, s, 0), divide_out(mean, s, 0), var)
    after = _net(x, k1e, divide_out(b1, s, 0), k2e, b2, bn)
    assert relative_diff(_net(x, k1, b1, k2, b2, (gamma, beta, mean, var)), after) < 1e-12
    # The ranges balanced are those of the folded kernel the converter quantizes.
    np.testing.assert_allclose(channel_ranges(k1e, 3) * fold, channel_ranges(k2e, 2),
                               rtol=1e-12)


def test_dead_channels_keep_scale_one_and_scales_are_bounded() -> None:
    s = scales(np.array([0.0, 4.0, 1e12, 1.0]), np.array([1.0, 1.0, 1.0, 0.0]))
    assert s[0] == 1.0 and s[1] == pytest.approx(2.0) and s[3] == 1.0
    assert s[2] == pytest.approx(1e4)
    with pytest.raises(ValueError, match="channel counts differ"):
        scales(np.ones(3), np.ones(4))


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


def test_equalize_is_off_by_default_and_validated(write_config) -> None:
    assert load_config(write_config(BASE)).quantization.equalize is False
    assert load_config(write_config(BASE), ["quantization.equalize=true"]).quantization.equalize
    with pytest.raises(ConfigError, match="quantization.equalize: .*Keras models"):
        load_config(write_config(BASE.replace("model.keras", "m.onnx")),
                    ["quantization.equalize=true"])
    with pytest.raises(ConfigError, match="quantization.equalize: .*PTQ INT8"):
        load_config(write_config(BASE), ["quantization.equalize=true",
                                         'quantization.stages=["fp32"]'])
    with pytest.raises(ConfigError, match="quantization.equalize: .*draws"):
        load_config(write_config(BASE), ["quantization.equalize=true", "calibration.draws=3"])
    with pytest.raises(ConfigError, match="quantization.equalize"):
        load_config(write_config(BASE), ['quantization.equalize="yes"'])
