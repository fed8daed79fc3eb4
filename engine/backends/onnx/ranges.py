"""MSE-optimal activation ranges (``calibration.method = "mse"``) from the histograms
onnxruntime's calibrator collects; numpy only.

For an int8 grid of 256 levels over [a, b] (a ≤ 0 ≤ b, as the quantizer makes every range
hold zero), a value v costs its rounding error, about step²/12 with step = (b − a)/255,
when it is inside, and its clipping error (v − clamp(v))² when it is outside. The range
kept is the one that minimises the sum over the calibration values' histogram: wider than
the data's bulk when rare large values carry the signal, narrower when they are outliers
whose clipping costs less than the coarser grid would cost every other value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LEVELS = 255  # steps of an 8-bit grid
#: Candidate bounds per side (bin edges, thinned evenly): the error varies slowly with them.
CANDIDATES = 256


def mse_range(hist: np.ndarray, edges: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The (a, b) of least expected squared error for values with histogram ``hist`` over
    ``edges``, the values' own minimum ``lo`` and maximum ``hi``."""
    h = np.asarray(hist, np.float64)
    e = np.asarray(edges, np.float64)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if h.sum() <= 0 or hi - lo <= 0:
        return lo, hi
    c = (e[:-1] + e[1:]) / 2
    # Prefix sums of count, Σc, Σc² over the bins below each edge.
    n = np.concatenate([[0.0], np.cumsum(h)])
    s1 = np.concatenate([[0.0], np.cumsum(h * c)])
    s2 = np.concatenate([[0.0], np.cumsum(h * c * c)])

    def thin(a: np.ndarray) -> np.ndarray:
        return a[np.unique(np.linspace(0, len(a) - 1, min(len(a), CANDIDATES)).astype(int))]

    # Left bounds from the edge at or below the data's minimum up to the edge nearest zero,
    # right bounds from there up to the edge at or above its maximum.
    zero = int(np.argmin(np.abs(e)))
    first = min(max(int(np.searchsorted(e, lo, "right")) - 1, 0), zero)
    last = max(min(int(np.searchsorted(e, hi, "left")), len(e) - 1), zero)
    left = thin(np.arange(first, zero + 1))
    right = thin(np.arange(zero, last + 1))
    ia, ib = left[:, None], right[None, :]  # edge index: bins below it are [0, i)
    a, b = e[ia], e[ib]
    # Clipped below a: bins [0, ia); above b: bins [ib, end); inside: the rest.
    below = a * a * n[ia] - 2 * a * s1[ia] + s2[ia]
    nr, s1r, s2r = n[-1] - n[ib], s1[-1] - s1[ib], s2[-1] - s2[ib]
    above = s2r - 2 * b * s1r + b * b * nr
    inside = (n[ib] - n[ia]) * ((b - a) / LEVELS) ** 2 / 12
    cost = below + above + inside
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    # The outermost candidates hold all the data: there the data's own bounds; the range
    # always holds zero.
    a_best = lo if i == 0 else min(float(e[left[i]]), 0.0)
    b_best = hi if j == len(right) - 1 else max(float(e[right[j]]), 0.0)
    return a_best, b_best


def mse_ranges(histograms: dict[str, Any]) -> dict[str, tuple[np.float32, np.float32]]:
    """``{tensor: (lowest, highest)}`` from onnxruntime's ``HistogramCollector``
    (``histogram_dict``: tensor → (hist, edges, min, max, ...))."""
    out: dict[str, tuple[np.float32, np.float32]] = {}
    for name, item in histograms.items():
        hist, edges, lo, hi = item[:4]
        a, b = mse_range(hist, edges, float(lo), float(hi))
        out[name] = (np.float32(a), np.float32(b))
    return out
