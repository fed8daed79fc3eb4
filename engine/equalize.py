"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"), framework-free.

With per-tensor weights one scale serves every output channel of a layer, so a channel
whose weights span 0.01 is rounded on the grid of one spanning 10. For two layers joined
by a positive-homogeneous activation f (f(x/s) = f(x)/s for s > 0: ReLU, or none), output
channel i of the first can be divided by s_i and input channel i of the second multiplied
by s_i without changing the float function. With s_i = sqrt(r1_i / r2_i) (r: the channel's
largest absolute weight) both ranges become sqrt(r1_i · r2_i): equal per channel.

ReLU6 is not positive-homogeneous (it clips at 6, not at 6/s_i), so pairs joined by it are
not equalized here: doing so would change the float model.

The TensorFlow side (:mod:`engine.backends.tf.equalize`) finds the pairs in a Keras model
and applies these functions to its weights.
"""

from __future__ import annotations

import numpy as np

#: A scale is kept within [1/MAX_SCALE, MAX_SCALE]: a dead channel (range 0) on one side
#: must not send the other side's weights to 0 or to infinity.
MAX_SCALE = 1e4


def channel_ranges(w: np.ndarray, axis: int) -> np.ndarray:
    """The largest absolute weight of each channel along ``axis``."""
    a = np.abs(np.asarray(w, dtype=np.float64))
    return np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1).max(axis=1)


def scales(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """s_i = sqrt(r1_i / r2_i); 1 where either range is 0 (nothing to balance)."""
    r1, r2 = np.asarray(r1, np.float64), np.asarray(r2, np.float64)
    if r1.shape != r2.shape:
        raise ValueError(f"channel counts differ: {r1.shape} against {r2.shape}")
    ok = (r1 > 0) & (r2 > 0)
    s = np.ones_like(r1)
    s[ok] = np.sqrt(r1[ok] / r2[ok])
    return np.clip(s, 1.0 / MAX_SCALE, MAX_SCALE)


def _along(s: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = len(s)
    return s.reshape(shape)


def divide_out(w: np.ndarray, s: np.ndarray, axis: int) -> np.ndarray:
    """``w`` with channel i along ``axis`` divided by s_i (the first layer's kernel, its
    bias, and a BatchNorm's mean and offset between)."""
    w = np.asarray(w)
    return (w / _along(s, w.ndim, axis)).astype(w.dtype)


def multiply_in(w: np.ndarray, s: np.ndarray, axis: int) -> np.ndarray:
    """``w`` with input channel i along ``axis`` multiplied by s_i (the second layer)."""
    w = np.asarray(w)
    return (w * _along(s, w.ndim, axis)).astype(w.dtype)


def equalize_pair(w1: np.ndarray, out_axis: int, w2: np.ndarray, in_axis: int,
                  fold: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w1 / s, w2 · s, s) for one pair. ``fold``: the per-output-channel factor the
    converter will fold into ``w1`` (a BatchNorm's gamma / sqrt(var + eps)), so the ranges
    balanced are those of the weights that get quantized. Anything else along the path
    (bias, BatchNorm mean and offset) the caller divides by ``s`` with :func:`divide_out`."""
    r1 = channel_ranges(w1, out_axis)
    if fold is not None:
        r1 = r1 * np.abs(np.asarray(fold, np.float64))
    s = scales(r1, channel_ranges(w2, in_axis))
    return divide_out(w1, s, out_axis), multiply_in(w2, s, in_axis), s


def relative_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |a|: how far equalization moved the float outputs."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    top = float(np.max(np.abs(a))) if a.size else 0.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diff / top if top > 0 else diff
