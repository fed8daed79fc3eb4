"""How exact a drop is: paired statistics over one test set, and bootstrap intervals.

A drop is the difference of two accuracies measured on the *same* items, so the items both
models get right (or both wrong) say nothing about it: only the discordant ones do. With
``lost`` items FP32 got right and INT8 wrong, ``gained`` the reverse, and ``n`` items:

    drop = (lost − gained) / n
    se   = √(lost + gained − (lost − gained)² / n) / n        (paired standard error)
    95 % interval = drop ± 1.96 · se
    McNemar's exact p = min(1, 2 · P[X ≤ min(lost, gained)]),  X ~ Binomial(lost + gained, ½)

Fidelity metrics (SQNR, NSE, cos of an output against FP32) have no such closed form; their
interval comes from a bootstrap over test items with a fixed seed, computed from per-item
sums so that a thousand resamples cost one matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal
BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class PairedDrop:
    """FP32 against INT8 on the same items; ``drop``, ``se``, ``low``, ``high`` in points."""

    n: int
    lost: int  # FP32 right, INT8 wrong
    gained: int  # INT8 right, FP32 wrong
    drop: float
    se: float
    low: float
    high: float
    p_value: float  # exact McNemar: how likely this imbalance is if INT8 changed nothing

    @property
    def discordant(self) -> int:
        return self.lost + self.gained


def mcnemar_exact(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test on the discordant pairs."""
    k, m = min(lost, gained), lost + gained
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2.0**m
    return min(1.0, 2.0 * tail)


def paired_drop(fp32_right: np.ndarray, int8_right: np.ndarray) -> PairedDrop:
    """Paired statistics of the drop from per-item correctness (two boolean vectors)."""
    a = np.asarray(fp32_right, bool).reshape(-1)
    b = np.asarray(int8_right, bool).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} FP32 items against {b.size} INT8 items")
    n = int(a.size)
    lost = int(np.sum(a & ~b))
    gained = int(np.sum(~a & b))
    return paired_from_counts(n, lost, gained)


def paired_from_counts(n: int, lost: int, gained: int) -> PairedDrop:
    if n <= 0:
        raise ValueError("no items to compare")
    d = (lost - gained) / n
    se = math.sqrt(max(lost + gained - (lost - gained) ** 2 / n, 0.0)) / n
    half = Z95 * se
    return PairedDrop(n, lost, gained, 100.0 * d, 100.0 * se, 100.0 * (d - half),
                      100.0 * (d + half), mcnemar_exact(lost, gained))


def items_to_resolve(p: PairedDrop, threshold: float) -> int | None:
    """Test items needed for the 95 % interval to clear ``threshold`` (points), at the
    observed drop and discordance rate; None when the drop sits on the bar itself."""
    gap = abs(threshold - p.drop) / 100.0
    if gap == 0.0:
        return None
    d = p.drop / 100.0
    var1 = max(p.discordant / p.n - d * d, 0.0)  # variance of one item's difference
    if var1 == 0.0:
        return p.n
    return max(p.n, math.ceil(Z95 * Z95 * var1 / (gap * gap)))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def _item_sums(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per item: Σref, Σref², Σe², Σpred·ref, Σpred², element count (n_items × 6)."""
    p = np.asarray(pred, np.float64).reshape(len(pred), -1)
    r = np.asarray(ref, np.float64).reshape(len(ref), -1)
    e = p - r
    k = np.full(len(p), p.shape[1], np.float64)
    return np.stack([r.sum(1), (r * r).sum(1), (e * e).sum(1), (p * r).sum(1),
                     (p * p).sum(1), k], axis=1)


def _fidelity(s: np.ndarray) -> dict[str, np.ndarray]:
    """SQNR (dB), NSE and cos from summed statistics (last axis as in ``_item_sums``)."""
    sr, srr, see, spr, spp, k = np.moveaxis(s, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sqnr = 10.0 * np.log10(srr / see)
        nse = 1.0 - see / (srr - sr * sr / k)
        cos = spr / np.sqrt(spp * srr)
    return {"sqnr": sqnr, "nse": nse, "cos": cos}


def bootstrap_fidelity(pred: np.ndarray, ref: np.ndarray, *, seed: int = BOOTSTRAP_SEED,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Interval]:
    """95 % percentile intervals of SQNR, NSE and cos over test items, resampled with a
    fixed seed so the same run gives the same interval."""
    sums = _item_sums(pred, ref)
    n = len(sums)
    if n == 0:
        raise ValueError("no items to compare")
    rng = np.random.default_rng(seed)
    # counts[b, i]: how often item i is drawn in resample b; one product sums them all.
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    point = _fidelity(sums.sum(0))
    boot = _fidelity(counts @ sums)
    out = {}
    for name, values in boot.items():
        finite = values[np.isfinite(values)]
        lo, hi = ((float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))
                  if finite.size else (float(point[name]), float(point[name])))
        out[name] = Interval(float(point[name]), lo, hi)
    return out
