"""Calibration draws (``calibration.draws = K``): which items each draw holds, the held-out
slice that chooses the draw kept, the keep rule and the spread. numpy only.

A calibration set is one random draw: a second seed moves INT8's accuracy by as much as a
change of calibration method. K draws are converted and scored; draw 0 is the one
``calibration.seed`` draws (so K = 1 is the run as it always was), draw i the one its own
seed draws, exactly as a K = 1 run with that seed would. The draw kept is chosen on
calibration items no draw holds, never on the test set (the test figures are reported for
information after the choice).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .data import Dataset, RawData, prepare, select_calibration
from .errors import DataError

if TYPE_CHECKING:
    from .preprocess import PreprocessSpec

#: The held-out slice holds at most this many items (the first of a seeded order).
HELDOUT_MAX = 500
#: Fewer unused calibration items than this and no draw can be told from another on them.
HELDOUT_MIN = 10


def draw_seed(seed: int, i: int) -> int:
    """Draw i's seed: ``seed`` itself for draw 0, else one derived from (seed, i), so the
    draws of seed 0 and seed 1 do not share draws (seed + i would)."""
    if i == 0:
        return seed
    state = np.random.SeedSequence([abs(seed), int(seed < 0), i]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def draw_indices(n_available: int, samples: int, seed: int, draws: int) -> list[np.ndarray]:
    """Each draw's item indices, as :func:`engine.data.select_calibration` draws them."""
    return [select_calibration(n_available, samples, draw_seed(seed, i)) for i in range(draws)]


def heldout_indices(n_available: int, draws: Sequence[np.ndarray], seed: int) -> np.ndarray:
    """The calibration items no draw holds, at most :data:`HELDOUT_MAX` of them (a seeded
    choice, sorted)."""
    used = np.zeros(n_available, bool)
    for idx in draws:
        used[idx] = True
    free = np.flatnonzero(~used)
    order = np.random.default_rng(draw_seed(seed, len(draws))).permutation(len(free))
    return np.sort(free[order[:HELDOUT_MAX]])


def keep_draw(heldout: Sequence[float], rule: str) -> int:
    """The draw kept, from each draw's figure on the held-out slice (higher is better):
    "median" — the draw at the middle of their order (the lower of the two middle ones for
    an even count), "best" — the highest. Ties go to the lower draw number."""
    if not heldout:
        raise ValueError("no draws to keep one of")
    order = sorted(range(len(heldout)), key=lambda i: (heldout[i], i))
    if rule == "median":
        return order[(len(order) - 1) // 2]
    if rule == "best":
        return min(order, key=lambda i: (-heldout[i], i))
    raise ValueError(f"unknown keep rule {rule!r}")


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, min, max and standard deviation of finite values; the deviation is the sample
    one (n − 1): the draws made stand for every draw the seed could have made."""
    v = [float(x) for x in values if math.isfinite(x)]
    if not v:
        return {}
    a = np.asarray(v)
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


@dataclass(frozen=True)
class Draws:
    """Every draw's calibration items, model-ready (draw 0 first), and the held-out slice."""

    seeds: tuple[int, ...]
    sets: tuple[Dataset, ...]
    heldout: Dataset


def prepare_draws(raw: RawData, spec: PreprocessSpec | None, input_shape: tuple[int, ...],
                  samples: int, seed: int, count: int, first: Dataset) -> Draws:
    """The ``count`` draws of ``raw`` and the held-out slice, preprocessed as ``first``
    (draw 0, already prepared) was; a :class:`DataError` when too few calibration items are
    left over to choose on."""
    idx = draw_indices(len(raw), samples, seed, count)
    held = heldout_indices(len(raw), idx, seed)
    if len(held) < HELDOUT_MIN:
        raise DataError(
            f"{raw.source}: calibration.draws = {count} keeps the draw chosen on calibration "
            f"items no draw holds, but the {count} draws of {min(samples, len(raw))} items "
            f"leave {len(held)} of the {len(raw)} available (at least {HELDOUT_MIN} needed)",
            "give more calibration data, lower calibration.samples, or set "
            "calibration.draws = 1")
    sets = [first] + [prepare(raw.subset(i), spec, input_shape, "data.calibration")
                      for i in idx[1:]]
    return Draws(tuple(draw_seed(seed, i) for i in range(count)), tuple(sets),
                 prepare(raw.subset(held), spec, input_shape, "data.calibration"))
