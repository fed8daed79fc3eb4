"""Each judgement's uncertainty, from the per-item outputs of FP32 and INT8 on one test set.

- rule ``task``: the task's per-item correctness (``Task.correct``) in FP32 and in INT8,
  paired item by item (engine.stats.paired_drop).
- rule ``argmax``: per item, the share of positions where INT8's top class departs from
  FP32's (engine.stats.paired_from_shares): FP32 agrees with itself on every item, so
  only INT8 can lose and ``gained`` is 0 by construction, not by observation.
- rule ``sqnr``: a bootstrap interval of the report's SQNR over test items (fixed seed).

The per-item vectors are kept in the run folder (``items.npz``) so that two runs on the
same test set (two variants of a sweep) can be compared item by item too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .stats import (
    PairedDrop,
    bootstrap_fidelity,
    items_to_resolve,
    paired_drop,
    paired_from_differences,
    paired_from_shares,
)
from .verdict import Judgement, Uncertainty

ITEMS = "items.npz"


def argmax_off(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per item, the share of its positions whose top class differs from FP32's."""
    a = np.asarray(out).reshape(len(out), -1, out.shape[-1])
    r = np.asarray(ref).reshape(a.shape)
    return np.mean(np.argmax(a, -1) != np.argmax(r, -1), axis=1)


def paired(p: PairedDrop, bar: float) -> Uncertainty:
    """A paired interval in points, with the items that would resolve it when it straddles
    the bar."""
    straddles = p.low <= bar < p.high
    return Uncertainty(round(p.low, 4), round(p.high, 4), "paired", p.n, lost=p.lost,
                       gained=p.gained, se=round(p.se, 4), p_value=float(f"{p.p_value:.4g}"),
                       items_to_resolve=items_to_resolve(p, bar) if straddles else None)


def bootstrapped(out: np.ndarray, ref: np.ndarray, bar: float) -> Uncertainty | None:
    """The bootstrap interval of SQNR (dB). The items that would resolve a straddling one
    assume, as the paired count does, that the value stays and the interval's half on the
    bar's side narrows as 1/√n; None where that half is empty."""
    iv = bootstrap_fidelity(out, ref)["sqnr"]
    if not (math.isfinite(iv.value) and math.isfinite(iv.low) and math.isfinite(iv.high)):
        return None
    n = len(ref)
    need = None
    if iv.low < bar <= iv.high:
        half = iv.value - iv.low if iv.value >= bar else iv.high - iv.value
        gap = abs(iv.value - bar)
        need = max(n, math.ceil(n * (half / gap) ** 2)) if gap > 0 and half > 0 else None
    return Uncertainty(round(iv.low, 4), round(iv.high, 4), "bootstrap", n,
                       items_to_resolve=need)


def item_vectors(judgements: Sequence[Judgement], fp32: Sequence[np.ndarray],
                 int8: Sequence[np.ndarray], task: Any, labels: Any,
                 cfg: Any) -> dict[str, np.ndarray]:
    """What ``items.npz`` holds: ``task_fp32``/``task_int8`` (per-item correctness, when
    the task has it and some output is judged by it) and ``argmax_<i>`` (per-item share of
    positions off FP32's top class, for output i judged on argmax)."""
    vec: dict[str, np.ndarray] = {}
    if any(j.rule == "task" for j in judgements) and task.correct is not None \
            and labels is not None:
        vec["task_fp32"] = np.asarray(task.correct(fp32, labels, cfg), bool)
        vec["task_int8"] = np.asarray(task.correct(int8, labels, cfg), bool)
    for i, j in enumerate(judgements):
        if j.rule == "argmax":
            vec[f"argmax_{i}"] = argmax_off(int8[i], fp32[i]).astype(np.float32)
    return vec


def with_intervals(judgements: Sequence[Judgement], fp32: Sequence[np.ndarray],
                   int8: Sequence[np.ndarray], vec: Mapping[str, np.ndarray]) -> list[Judgement]:
    """The judgements, each with its interval where one can be computed honestly."""
    out = []
    for i, j in enumerate(judgements):
        iv: Uncertainty | None = None
        if j.value is None or j.exact:
            pass  # nothing to bound: no metric, or identical to FP32
        elif j.rule == "task" and "task_fp32" in vec:
            iv = paired(paired_drop(vec["task_fp32"], vec["task_int8"]), j.bar)
        elif j.rule == "argmax" and f"argmax_{i}" in vec:
            iv = paired(paired_from_shares(vec[f"argmax_{i}"].astype(np.float64)), j.bar)
        elif j.rule == "sqnr":
            iv = bootstrapped(int8[i], fp32[i], j.bar)
        out.append(replace(j, interval=iv) if iv is not None else j)
    return out


def inputs_digest(x: np.ndarray) -> np.ndarray:
    """SHA-256 of the test inputs as the model saw them: two runs pair item by item only
    when theirs are equal."""
    import hashlib  # noqa: PLC0415

    return np.frombuffer(hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest(), np.uint8)


def save_items(path: Path, vec: Mapping[str, np.ndarray]) -> None:
    if any(k != "test_digest" for k in vec):
        np.savez_compressed(path, **{k: np.asarray(v) for k, v in vec.items()})


def load_items(run_dir: str | Path) -> dict[str, np.ndarray]:
    """A run's per-item vectors (empty for a run from before, or one without them)."""
    try:
        with np.load(Path(run_dir) / ITEMS) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        return {}


def between(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
            key: str) -> PairedDrop | None:
    """Two runs on the same test set, item by item: ``drop`` is how many more points ``b``
    loses than ``a`` (positive: ``b`` is worse). ``key``: "task" or "argmax_<i>". None when
    either run lacks the vector or the runs saw different test items."""
    da, db = a.get("test_digest"), b.get("test_digest")
    if da is None or db is None or not np.array_equal(da, db):
        return None
    if key == "task":
        ra, rb = a.get("task_int8"), b.get("task_int8")
        if ra is None or rb is None or ra.shape != rb.shape:
            return None
        return paired_drop(ra, rb)
    da, db = a.get(key), b.get(key)
    if da is None or db is None or da.shape != db.shape:
        return None
    return paired_from_differences(db.astype(np.float64) - da.astype(np.float64))


# ------------------------------------------------------------------ between two runs


def comparison_key(verdict: Any) -> str | None:
    """The ``items.npz`` vector of the output a verdict names: "task", "argmax_<i>", or
    None for one judged on fidelity (no per-item right or wrong to pair)."""
    if verdict is None:
        return None
    for i, j in enumerate(verdict.outputs):
        if j.name == verdict.output:
            return "task" if j.rule == "task" else f"argmax_{i}" if j.rule == "argmax" else None
    return None


def versus(a_dir: str | Path, b_dir: str | Path, key: str | None) -> dict[str, Any] | None:
    """Run ``b`` against run ``a`` on the same test items: ``diff``, how many more points
    ``b`` loses (its paired 95 % interval ``low``–``high``), the items only ``b`` gets wrong
    (``lost``) and only ``a`` (``gained``), and ``within_noise`` when the interval contains
    0 — or when McNemar's exact test does not reject "no difference" at 5 %: with a handful
    of discordant items the normal interval runs narrow (4 items one way, none the other,
    clears 0, yet p = 0.125). None without both runs' per-item vectors."""
    if key is None:
        return None
    p = between(load_items(a_dir), load_items(b_dir), key)
    if p is None:
        return None
    return {"diff": round(p.drop, 4), "low": round(p.low, 4), "high": round(p.high, 4),
            "n": p.n, "lost": p.lost, "gained": p.gained,
            "p_value": float(f"{p.p_value:.4g}"),
            "within_noise": p.low <= 0.0 <= p.high or p.p_value >= 0.05}


def headline_interval(v: Any) -> dict[str, Any] | None:
    """The interval of the output a verdict names, as report.json has it."""
    j = next((j for j in v.outputs if j.name == v.output), None) if v else None
    return j.interval.to_dict() if j is not None and j.interval is not None else None


def versus_best(results: Sequence[Any]) -> list[dict[str, Any] | None]:
    """Each variant of a sweep (engine.sweep.VariantResult) against the one with the
    smallest INT8 drop, item by item on the same
    test set (engine.uncertainty.versus): ``best`` true for that one; None where a run has
    no per-item vectors or judges another output."""
    ok = [r for r in results if r.status == "ok" and r.drop is not None and r.items_key
          and (Path(r.run_dir) / ITEMS).is_file()]
    if len(ok) < 2:
        return [None] * len(results)
    best = min(ok, key=lambda r: r.drop)  # type: ignore[arg-type, return-value]
    out: list[dict[str, Any] | None] = []
    for r in results:
        if r is best:
            out.append({"best": True})
        elif r in ok and r.items_key == best.items_key:
            out.append(versus(best.run_dir, r.run_dir, r.items_key))
        else:
            out.append(None)
    return out
