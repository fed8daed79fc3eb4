"""How exact a drop is: paired statistics over one test set, and bootstrap intervals.

A drop is the difference of two accuracies measured on the *same* items, so the items both
models get right (or both wrong) say nothing about it: only the discordant ones do. With
``lost`` items FP32 got right and INT8 wrong, ``gained`` the reverse, and ``n`` items:

    drop = (lost − gained) / n
    se   = √(lost + gained − (lost − gained)² / n) / n        (paired standard error)
    95 % interval = drop ± 1.96 · se
    McNemar's exact p = min(1, 2 · P[X ≤ min(lost, gained)]),  X ~ Binomial(lost + gained, ½)

Fidelity metrics (SQNR as the report defines it, NSE, cos of an output against FP32) have
no such closed form; their interval comes from a bootstrap over test items with a fixed
seed, computed from per-item sums so that a thousand resamples cost one matrix product.
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


def paired_from_shares(lost_share: np.ndarray) -> PairedDrop:
    """Paired statistics when only one side can lose: per item, the share of its positions
    where INT8 departs from a reference FP32 always meets (argmax agreement with FP32).
    The item is the unit, not the position: one odd input moves all its positions together,
    so counting positions as independent would make the interval too narrow. ``lost``
    counts the items with any departure, ``gained`` is 0 by construction; with one position
    per item this is :func:`paired_from_counts` exactly."""
    d = np.asarray(lost_share, np.float64).reshape(-1)
    if np.any(d < 0):
        raise ValueError("a share of positions lost cannot be negative")
    return paired_from_differences(d)


def paired_from_differences(diff: np.ndarray) -> PairedDrop:
    """Paired statistics from per-item differences in [−1, 1] (how much more the second
    model loses on each item): the mean, its standard error over items, ``lost``/``gained``
    the items where it is positive/negative and the sign test's exact p on them. With
    differences of −1, 0 and 1 only this is :func:`paired_from_counts` exactly."""
    d = np.asarray(diff, np.float64).reshape(-1)
    n = int(d.size)
    if n <= 0:
        raise ValueError("no items to compare")
    lost, gained = int(np.sum(d > 0)), int(np.sum(d < 0))
    mean = float(d.mean())
    se = float(np.sqrt(max(float(np.mean(d * d)) - mean * mean, 0.0) / n))
    half = Z95 * se
    return PairedDrop(n, lost, gained, 100.0 * mean, 100.0 * se, 100.0 * (mean - half),
                      100.0 * (mean + half), mcnemar_exact(lost, gained))


def items_to_resolve(p: PairedDrop, threshold: float) -> int | None:
    """Test items needed for the 95 % interval to clear ``threshold`` (points), at the
    observed drop and discordance rate; None when the drop sits on the bar itself."""
    gap = abs(threshold - p.drop) / 100.0
    if gap == 0.0:
        return None
    var1 = (p.se / 100.0) ** 2 * p.n  # variance of one item's difference (se = √(var1/n))
    if var1 == 0.0:
        return p.n
    return max(p.n, math.ceil(Z95 * Z95 * var1 / (gap * gap)))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def _item_sums(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, int]:
    """Per item, the sums every metric is made of (n_items × (7 + 2·channels)) and the
    channel count: Σe², Σpred·ref, Σpred², Σref², Σg, Σg² (g: ref about its overall mean,
    for nse), element count, then per channel (last axis) Σc and Σc² (c: ref about that
    channel's mean, for SQNR). Centring first keeps the sums of squares free of cancellation
    for outputs that sit far from zero; a variance about the resample's own mean does not
    change with a shift of the data."""
    p = np.asarray(pred, np.float64)
    r = np.asarray(ref, np.float64)
    n = len(r)
    # As engine.metrics.agreement: channels on the last axis, one channel for (n,) outputs.
    r3 = r.reshape(n, -1, r.shape[-1] if r.ndim > 1 else 1)
    p3 = p.reshape(r3.shape)
    e = p3 - r3
    g = r3 - r.mean() if r.size else r3
    c = r3 - r3.mean(axis=(0, 1), keepdims=True) if r.size else r3
    k = np.full(n, r3[0].size if n else 0, np.float64)
    cols = [(e * e).sum((1, 2)), (p3 * r3).sum((1, 2)), (p3 * p3).sum((1, 2)),
            (r3 * r3).sum((1, 2)), g.sum((1, 2)), (g * g).sum((1, 2)), k]
    return np.concatenate([np.stack(cols, axis=1), c.sum(1), (c * c).sum(1)], axis=1), r3.shape[2]


def _fidelity(s: np.ndarray, channels: int) -> dict[str, np.ndarray]:
    """SQNR (dB, as engine.metrics.sqnr_db: each channel about its mean, power for a constant
    reference, +inf when exact, NaN without signal), NSE and cos from summed statistics
    (last axis as in ``_item_sums``)."""
    s = np.asarray(s, np.float64)
    see, spr, spp, srr, sg, sgg, k = (s[..., i] for i in range(7))
    c1, c2 = s[..., 7:7 + channels], s[..., 7 + channels:]
    per_channel = k / channels  # elements per channel
    with np.errstate(divide="ignore", invalid="ignore"):
        sst_c = np.sum(c2 - c1 * c1 / per_channel[..., None], axis=-1)
        signal = np.where(sst_c > 0, sst_c, srr)
        sqnr = np.where(see == 0, np.inf,
                        np.where(signal > 0, 10.0 * np.log10(signal / see), np.nan))
        nse = 1.0 - see / (sgg - sg * sg / k)
        cos = spr / np.sqrt(spp * srr)
    return {"sqnr": sqnr, "nse": nse, "cos": cos}


def bootstrap_fidelity(pred: np.ndarray, ref: np.ndarray, *, seed: int = BOOTSTRAP_SEED,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Interval]:
    """95 % percentile intervals of SQNR (the report's ``sqnr_db``), NSE and cos over test
    items, resampled with a fixed seed so the same run gives the same interval."""
    sums, channels = _item_sums(pred, ref)
    n = len(sums)
    if n == 0:
        raise ValueError("no items to compare")
    rng = np.random.default_rng(seed)
    # counts[b, i]: how often item i is drawn in resample b; one product sums them all, in
    # blocks of 100 resamples so a large test set does not need resamples × n floats at once.
    p = np.full(n, 1.0 / n)
    blocks = [rng.multinomial(n, p, size=min(100, resamples - b)).astype(np.float64) @ sums
              for b in range(0, resamples, 100)]
    point = _fidelity(sums.sum(0), channels)
    boot = _fidelity(np.concatenate(blocks), channels)
    out = {}
    for name, values in boot.items():
        finite = values[np.isfinite(values)]
        lo, hi = ((float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))
                  if finite.size else (float(point[name]), float(point[name])))
        out[name] = Interval(float(point[name]), lo, hi)
    return out
