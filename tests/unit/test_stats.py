"""Paired drop statistics against their closed forms, and the bootstrap's coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.metrics import agreement
from engine.stats import (
    bootstrap_fidelity,
    items_to_resolve,
    mcnemar_exact,
    paired_drop,
    paired_from_counts,
    paired_from_shares,
)


def _vectors(n: int, both: int, lost: int, gained: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness vectors with exactly these counts (the rest both wrong), shuffled."""
    a = np.zeros(n, bool)
    b = np.zeros(n, bool)
    a[:both] = b[:both] = True
    a[both:both + lost] = True
    b[both + lost:both + lost + gained] = True
    order = np.random.default_rng(3).permutation(n)
    return a[order], b[order]


def test_paired_drop_matches_the_closed_form() -> None:
    # The sensor model of the issue: 2,289 items, 15 lost, 3 gained.
    a, b = _vectors(2289, 2000, 15, 3)
    p = paired_drop(a, b)
    assert (p.n, p.lost, p.gained) == (2289, 15, 3)
    assert p.drop == pytest.approx(100 * 12 / 2289)  # 0.524 points
    se = math.sqrt(18 - 12**2 / 2289) / 2289
    assert p.se == pytest.approx(100 * se)  # 0.185 points
    assert p.se == pytest.approx(0.185, abs=5e-4)
    assert p.low == pytest.approx(p.drop - 1.959964 * p.se, rel=1e-6)
    assert p.high == pytest.approx(p.drop + 1.959964 * p.se, rel=1e-6)
    # Items both got right or both wrong change nothing.
    a2, b2 = _vectors(2289, 100, 15, 3)
    assert paired_drop(a2, b2) == p


def test_mcnemar_exact_against_binomial_sums() -> None:
    # 15 vs 3: 2 · P[X ≤ 3], X ~ B(18, ½) = 2 · (1 + 18 + 153 + 816) / 2¹⁸.
    assert mcnemar_exact(15, 3) == pytest.approx(2 * 988 / 2**18)
    assert mcnemar_exact(3, 15) == mcnemar_exact(15, 3)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0  # capped: a balanced split is no evidence
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)


def test_no_discordance_means_an_exact_zero_interval() -> None:
    p = paired_from_counts(500, 0, 0)
    assert (p.drop, p.se, p.low, p.high, p.p_value) == (0.0, 0.0, 0.0, 0.0, 1.0)


def test_items_to_resolve_scales_with_the_gap() -> None:
    # Just under a 0.5-point bar on 1,000 items: 4 lost, 0 gained → 0.4 ± 0.39 points.
    p = paired_from_counts(1000, 4, 0)
    assert p.low < 0.5 < p.high
    need = items_to_resolve(p, 0.5)
    var1 = 4 / 1000 - 0.004**2
    assert need == math.ceil(1.959963984540054**2 * var1 / 0.001**2)
    # With that many items at the same rates the interval clears the bar.
    q = paired_from_counts(need, round(4 * need / 1000), 0)
    assert q.high <= 0.5 + 1e-3
    assert items_to_resolve(paired_from_counts(1000, 5, 0), 0.5) is None


def test_bootstrap_point_values_equal_the_direct_metrics() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 4, 3))
    pred = ref + rng.normal(scale=0.1, size=ref.shape)
    iv = bootstrap_fidelity(pred, ref)
    e = pred - ref
    # SQNR as the report has it: each channel (last axis) about its own mean.
    assert iv["sqnr"].value == pytest.approx(agreement(pred, ref)["sqnr_db"], rel=1e-12)
    sst_c = np.sum((ref - ref.mean(axis=(0, 1), keepdims=True)) ** 2)
    assert iv["sqnr"].value == pytest.approx(10 * np.log10(sst_c / np.sum(e**2)))
    assert iv["nse"].value == pytest.approx(1 - np.sum(e**2) / np.sum((ref - ref.mean())**2))
    cos = np.sum(pred * ref) / np.sqrt(np.sum(pred**2) * np.sum(ref**2))
    assert iv["cos"].value == pytest.approx(cos)
    for v in iv.values():
        assert v.low <= v.value <= v.high
    assert bootstrap_fidelity(pred, ref) == iv  # fixed seed: the same run, the same interval


def test_bootstrap_interval_covers_the_true_sqnr_about_95_percent_of_the_time() -> None:
    # Noise with σ = 0.1 on unit-variance values: the population SQNR is 20 dB exactly.
    rng = np.random.default_rng(1)
    trials, hits = 200, 0
    for t in range(trials):
        ref = rng.normal(size=(80, 8))
        pred = ref + rng.normal(scale=0.1, size=ref.shape)
        iv = bootstrap_fidelity(pred, ref, seed=t, resamples=400)["sqnr"]
        hits += iv.low <= 20.0 <= iv.high
    # Percentile intervals run slightly narrow at 80 items (0.905 here): the band allows it.
    assert 0.87 <= hits / trials <= 0.99


def test_classification_items_pair_up_with_top1() -> None:
    from engine.config import EvaluationConfig
    from engine.tasks import get_task

    task = get_task("classification")
    logits = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    y = np.array([0, 0, 0, 1])
    cfg = EvaluationConfig(task="classification")
    right = task.correct([logits], y, cfg)
    assert right.tolist() == [True, False, True, True]
    assert task.score([logits], y, cfg)["top1"] == right.mean()
    assert get_task("generic").correct is None


@pytest.mark.parametrize("shape", [(40,), (40, 5), (40, 6, 3)])
def test_bootstrap_sqnr_is_the_reports_for_offset_channels(shape: tuple[int, ...]) -> None:
    # Channels far from zero and at different levels (a grid of boxes beside logits of −50):
    # the report centres each channel on its mean; so must the interval's point value.
    rng = np.random.default_rng(2)
    levels = np.linspace(-50.0, 7.0, shape[-1]) if len(shape) > 1 else 1000.0
    ref = rng.normal(size=shape) + levels
    pred = ref + rng.normal(scale=0.05, size=shape)
    iv = bootstrap_fidelity(pred, ref)["sqnr"]
    assert iv.value == pytest.approx(agreement(pred, ref)["sqnr_db"], rel=1e-9)
    assert iv.low < iv.value < iv.high


def test_bootstrap_sqnr_of_a_constant_reference_falls_back_to_power() -> None:
    ref = np.full((30, 4), 0.25)
    pred = ref + np.random.default_rng(0).normal(scale=0.01, size=ref.shape)
    iv = bootstrap_fidelity(pred, ref)["sqnr"]
    assert iv.value == pytest.approx(agreement(pred, ref)["sqnr_db"], rel=1e-9)
    assert iv.value == pytest.approx(10 * np.log10(np.sum(ref**2) / np.sum((pred - ref) ** 2)))


def test_argmax_shares_reduce_to_the_counts_with_one_position_per_item() -> None:
    shares = np.zeros(1000)
    shares[:4] = 1.0
    got, want = paired_from_shares(shares), paired_from_counts(1000, 4, 0)
    assert (got.lost, got.gained) == (4, 0)
    assert (got.drop, got.se) == (pytest.approx(want.drop), pytest.approx(want.se))
    # Several positions per item: the item is the unit, its share the paired difference.
    d = np.array([0.0] * 96 + [0.5, 0.25, 1.0, 0.25])
    p = paired_from_shares(d)
    assert (p.n, p.lost, p.gained) == (100, 4, 0)
    assert p.drop == pytest.approx(100 * d.mean())
    assert p.se == pytest.approx(100 * d.std() / math.sqrt(100))


def test_differences_of_whole_items_are_the_counts() -> None:
    from engine.stats import paired_from_differences

    d = np.array([1.0] * 15 + [-1.0] * 3 + [0.0] * 2271)
    got, want = paired_from_differences(d), paired_from_counts(2289, 15, 3)
    assert (got.n, got.lost, got.gained, got.p_value) == (want.n, want.lost, want.gained,
                                                          want.p_value)
    for k in ("drop", "se", "low", "high"):
        assert getattr(got, k) == pytest.approx(getattr(want, k), rel=1e-9)
