"""Every output of a model, by name: matched across stages, scored, and judged by a rule
that means something for it.

Rules (the report names the one that judged each output):

- ``task``: a labelled task's metric (top-1, sequence accuracy, box F1) for the outputs the
  task reads; the drop against FP32 in points, against the profile's bar in points.
- ``argmax``: argmax agreement with FP32, for an output that is a class distribution
  (softmax-like in FP32, or named in ``evaluation.class_outputs``); the share of items
  whose top class changed, in points, against the profile's bar in points.
- ``sqnr``: fidelity, for every other output (a regression value, a detection grid, a
  single sigmoid): SQNR against FP32 in dB (see engine.metrics) against
  :data:`FIDELITY_BARS_DB`. Never "points": such an output has no percentage to lose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, OutputMatchError
from .metrics import agreement
from .verdict import Judgement

#: The lowest SQNR (dB, against FP32) an output judged on fidelity may have, per profile:
#: an rms error of 10^(−dB/20) of the output's own spread (each channel about its mean),
#: 20 dB → 10 %, 26 dB → 5 %, 30 dB → 3.2 %, 34 dB → 2 %; for a one-channel output
#: nse = 1 − 10^(−dB/10): 0.99, 0.9975, 0.999, 0.9996. INT8 rounding alone of an output
#: spread evenly over its range is ≈ 48 dB.
FIDELITY_BARS_DB: dict[str, float] = {
    "prototype": 20.0,
    "general": 26.0,
    "high": 30.0,
    "production": 34.0,
}

#: How far the rows of a softmax output may sum from 1 (FP32 sums within ~1e-6).
SOFTMAX_TOLERANCE = 1e-3


def is_class_distribution(ref: np.ndarray) -> bool:
    """Softmax-like: more than one value on the last axis, non-negative, rows summing to 1,
    and not the same for every item (a constant output, such as anchors of 0.25, makes no
    class decision for argmax to agree on)."""
    a = np.asarray(ref, np.float64)
    if a.ndim < 2 or a.shape[-1] < 2 or a.size == 0:
        return False
    if float(a.min()) < -SOFTMAX_TOLERANCE:
        return False
    if len(a) > 1 and np.all(a == a[:1]):
        return False
    return bool(np.all(np.abs(a.sum(axis=-1) - 1.0) <= SOFTMAX_TOLERANCE))


# ------------------------------------------------------------------ matching


def _natural(name: str) -> list[Any]:
    """output_2 before output_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def signature_order(names: Sequence[str]) -> list[str]:
    return sorted(names, key=_natural)


def _fits(expected: Sequence[Any], got: Sequence[int]) -> bool:
    """The model's output shape (batch first) against the .tflite's, ignoring the batch
    and any dimension the model leaves open."""
    exp = list(expected)[1:]
    if any(not isinstance(d, int) for d in exp):
        return True
    return exp == list(got)[1:]


def match_outputs(expected: Sequence[Mapping[str, Any]], names: Sequence[str],
                  shapes: Sequence[Sequence[int]], path: str) -> list[int]:
    """For each model output (``LoadedModel.outputs``, in the model's order: ``name``,
    ``shape``, and ``signature``, the key the exported signature gives it), the index of
    the .tflite output (``names``, ``shapes``) that holds it. By name first; only outputs
    no name matches fall back to a shape that is theirs alone. Raises
    :class:`OutputMatchError` when that leaves any output unmatched or the shapes disagree."""
    if len(expected) != len(names):
        raise OutputMatchError(
            f"{path}: the model has {len(expected)} outputs but the converted model has "
            f"{len(names)}", "convert the model again; it may have been edited in between")
    keys = [str(e.get("signature") or e.get("name")) for e in expected]
    order: list[int | None] = [names.index(k) if k in names else None for k in keys]
    free = [i for i in range(len(names)) if i not in order]
    for j, idx in enumerate(order):
        if idx is not None:
            continue
        fits = [i for i in free if _fits(expected[j].get("shape") or [], shapes[i])]
        if len(fits) != 1:
            raise OutputMatchError(
                f"{path}: output '{expected[j].get('name')}' (shape {list(expected[j].get('shape') or [])}) "
                f"matches no output of the converted model by name, and "
                f"{'none' if not fits else len(fits)} by shape (it has {', '.join(names)})",
                "give the model's outputs distinct names (or shapes), and export it again")
        order[j] = fits[0]
        free.remove(fits[0])
    for j, idx in enumerate(order):
        assert idx is not None
        if not _fits(expected[j].get("shape") or [], shapes[idx]):
            raise OutputMatchError(
                f"{path}: output '{expected[j].get('name')}' has shape "
                f"{list(expected[j].get('shape') or [])} in the model but "
                f"{[int(d) for d in shapes[idx]]} in the converted model",
                "convert the model again; an output changed shape in the conversion")
    return [int(i) for i in order]  # type: ignore[arg-type]


def check_output_names(given: Sequence[str], names: Sequence[str], key: str, source: str) -> None:
    """A config list of output names (``evaluation.outputs``/``class_outputs``) against the
    model's; names the unknown ones."""
    unknown = [g for g in given if g not in names]
    if unknown:
        raise ConfigError(
            f"names no output of this model: {', '.join(repr(u) for u in unknown)}",
            f"the model's outputs are {', '.join(repr(n) for n in names)}",
            file=source, key=key)


# ------------------------------------------------------------------ scoring and judging


@dataclass(frozen=True)
class OutputSpec:
    """What the job decided about one output, from FP32's outputs and the config."""

    name: str
    kind: str  # "classes" | "values"
    rule: str  # "task" | "argmax" | "sqnr"
    judged: bool


def output_specs(names: Sequence[str], fp32: Sequence[np.ndarray], *,
                 task_outputs: Sequence[int] | None, task_classes: bool,
                 class_outputs: Sequence[str] = (), judged: Sequence[str] = ()) -> list[OutputSpec]:
    """One spec per output, from FP32's outputs. ``task_outputs``: the outputs a labelled
    task scores (None: all); ``task_classes``: whether those are class scores;
    ``class_outputs``: the config's declared class outputs; ``judged``: the config's
    ``evaluation.outputs`` (empty: all)."""
    specs = []
    for i, (name, ref) in enumerate(zip(names, fp32, strict=True)):
        by_task = task_outputs is None or i in task_outputs
        many = ref.ndim >= 2 and ref.shape[-1] > 1  # argmax over one value means nothing
        classes = many and (name in class_outputs or is_class_distribution(ref)
                            or (by_task and task_classes))
        specs.append(spec(i, name, "classes" if classes else "values", task_outputs, judged))
    return specs


def spec(index: int, name: str, kind: str, task_outputs: Sequence[int] | None,
         judged: Sequence[str] = ()) -> OutputSpec:
    """An output's rule from its kind (as a report's ``metrics.outputs`` keeps it)."""
    by_task = task_outputs is None or index in task_outputs
    rule = "task" if by_task else ("argmax" if kind == "classes" else "sqnr")
    return OutputSpec(name, kind, rule, not judged or name in judged)


def score_outputs(outs: Sequence[np.ndarray], ref: Sequence[np.ndarray],
                  specs: Sequence[OutputSpec]) -> list[dict[str, Any]]:
    """report.json ``metrics.outputs``: name, kind, then the agreement metrics."""
    return [{"name": s.name, "kind": s.kind, **agreement(o, r, classes=s.kind == "classes")}
            for s, o, r in zip(specs, outs, ref, strict=True)]


def judge_output(spec: OutputSpec, out: Mapping[str, Any], profile: str, *,
                 task_metric: str = "", task_fp32: float | None = None,
                 task_stage: float | None = None) -> Judgement:
    """One output of one stage by its spec's rule; ``out`` is its entry of
    :func:`score_outputs`."""
    from .config import PROFILE_THRESHOLDS  # noqa: PLC0415 - readers of a report need no config

    points_bar = PROFILE_THRESHOLDS[profile]
    if spec.rule == "task":
        drop = (None if task_fp32 is None or task_stage is None
                else round((task_fp32 - task_stage) * 100.0, 4))
        return Judgement(spec.name, "task", task_metric, "points", drop, points_bar,
                         drop is not None and drop <= points_bar, fp32=task_fp32, stage=task_stage,
                         judged=spec.judged)
    if spec.rule == "argmax":
        acc = out.get("acc")
        drop = None if acc is None else round((1.0 - acc) * 100.0, 4)
        return Judgement(spec.name, "argmax", "agreement", "points", drop, points_bar,
                         drop is not None and drop <= points_bar, fp32=1.0, stage=acc,
                         judged=spec.judged)
    bar = FIDELITY_BARS_DB[profile]
    db, exact = out.get("sqnr_db"), bool(out.get("exact"))
    return Judgement(spec.name, "sqnr", "sqnr_db", "dB", None if exact else db, bar,
                     exact or (db is not None and db >= bar), exact=exact,
                     stage=None if exact else db, judged=spec.judged)


def worst(judgements: Sequence[Judgement]) -> Judgement | None:
    """The judged output that uses the most of its bar (a failing one first)."""
    judged = [j for j in judgements if j.judged]
    if not judged:
        return None
    return max(judged, key=lambda j: (not j.passed, j.used))
