"""Task metrics, chosen by the config's ``evaluation.task``.

A task turns a stage's dequantized outputs (one float array per model output, stacked over
the test items) and the labels into named metrics, all fractions in [0, 1]. ``primary`` is
the metric whose drop (FP32 − stage, in points) the verdict judges on the outputs the task
reads (``outputs``); every other output is judged as engine.outputs says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import EvaluationConfig
from ..errors import DataError

Scorer = Callable[[Sequence[np.ndarray], Any, EvaluationConfig], dict[str, float]]
#: Per test item, whether the primary metric counts it right: FP32 and INT8 pair up item by
#: item, which is what makes a drop's uncertainty small (engine.stats.paired_drop).
Correct = Callable[[Sequence[np.ndarray], Any, EvaluationConfig], np.ndarray]


@dataclass(frozen=True)
class Task:
    name: str
    #: Metric the verdict judges; for ``generic`` it is agreement with FP32.
    primary: str
    metrics: tuple[str, ...]
    needs_labels: bool
    score: Scorer | None
    description: str
    #: The outputs (by position) the task's metric reads; None: all of them.
    outputs: tuple[int, ...] | None = (0,)
    #: Whether those outputs are class scores (argmax agreement means something).
    class_scores: bool = True
    #: None where items do not pair up as right/wrong (box F1 over a set, label-free tasks).
    correct: Correct | None = None


def _top1_correct(outputs: Sequence[np.ndarray], labels: Any,
                  cfg: EvaluationConfig) -> np.ndarray:
    logits = outputs[0].reshape(len(outputs[0]), -1)
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(logits):
        raise DataError(f"{len(y)} labels for {len(logits)} test items")
    if y.dtype.kind not in "iu":
        raise DataError(f"classification labels must be integers, got {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise DataError(
            f"labels run {y.min()}..{y.max()} but the model has {logits.shape[1]} classes",
            "check the label array or the class folders",
        )
    return np.argmax(logits, axis=1) == y


def _top1(outputs: Sequence[np.ndarray], labels: Any, cfg: EvaluationConfig) -> dict[str, float]:
    return {"top1": float(np.mean(_top1_correct(outputs, labels, cfg)))}


def _registry() -> dict[str, Task]:
    from . import ctc, east  # noqa: PLC0415 - tasks register lazily to keep import light

    return {
        "classification": Task(
            "classification", "top1", ("top1",), True, _top1, "top-1 accuracy from output 0",
            correct=_top1_correct,
        ),
        "generic": Task(
            "generic",
            "agreement",
            (),
            False,
            None,
            "no labels: each output judged against FP32, class distributions on argmax "
            "agreement, other outputs on fidelity (SQNR in dB)",
            outputs=(),
            class_scores=False,
        ),
        "ctc": ctc.TASK,
        "east": east.TASK,
    }


def get_task(name: str) -> Task:
    return _registry()[name]
