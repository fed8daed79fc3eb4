"""CTC text recognition metrics: greedy decoding, sequence accuracy and character accuracy.

The recognizer outputs per-time-step class scores (N, T, C) with C = len(charset) + 1, the
CTC blank being the last class. The bundled CRNNs output logits; softmax is monotonic, so
greedy decoding (argmax per step, merge repeats, drop blanks) gives the same string from
logits or probabilities, and a host that wants probabilities applies softmax itself.
NumPy only: the evaluator runs without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import EvaluationConfig
from ..errors import DataError
from . import Task


def _as_ntc(outputs: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """The output holding (N, T, C) class scores, squeezing size-1 middle axes (N, 1, T, C)."""
    found = []
    for out in outputs:
        a = np.asarray(out)
        if a.ndim >= 3:
            keep = [a.shape[0], *(d for d in a.shape[1:-1] if d != 1), a.shape[-1]]
            a = a.reshape(keep if len(keep) == 3 else a.shape)
        if a.ndim == 3 and a.shape[-1] == num_classes:
            found.append(a)
    if len(found) != 1:
        shapes = ", ".join(str(tuple(np.shape(o))) for o in outputs)
        raise DataError(
            f"the ctc task needs one output of shape (N, T, {num_classes}) "
            f"(len(charset) + 1 with the blank last); the model gives {shapes}",
            "set evaluation.ctc.charset to the characters the model was trained on, in class order",
        )
    return found[0]


def greedy_decode(scores: np.ndarray, charset: str) -> list[str]:
    """Best-path CTC decoding of (N, T, C) or (T, C) scores; blank = class C − 1.

    Repeated classes merge unless a blank separates them, so "aa" needs "a, blank, a".
    """
    s = np.asarray(scores)
    single = s.ndim == 2
    if single:
        s = s[None]
    if s.ndim != 3 or s.shape[-1] != len(charset) + 1:
        raise DataError(
            f"CTC scores of shape {s.shape} do not fit a charset of {len(charset)} characters "
            f"(+1 blank = {len(charset) + 1} classes)",
            "set evaluation.ctc.charset to the characters the model was trained on",
        )
    blank = s.shape[-1] - 1
    best = np.argmax(s, axis=-1)
    # Keep a step when it is not blank and differs from the step before it.
    prev = np.concatenate([np.full((best.shape[0], 1), -1), best[:, :-1]], axis=1)
    keep = (best != blank) & (best != prev)
    texts = ["".join(charset[c] for c in row[k]) for row, k in zip(best, keep, strict=True)]
    return texts[:1] if single else texts


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions and substitutions all cost 1)."""
    if a == b:  # most items of a usable model: no table to fill
        return 0
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev_diag, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            cur = min(row[j] + 1, row[j - 1] + 1, prev_diag + (ca != cb))
            prev_diag, row[j] = row[j], cur
    return row[-1]


def text_metrics(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, float]:
    """``sequence_accuracy`` (exact matches) and ``char_accuracy`` = 1 − CER, clipped to [0, 1].

    CER = total edit distance / total characters of the truth strings, over the whole set
    (so long words weigh more than short ones, as characters do).
    """
    if len(predicted) != len(truth):
        raise DataError(f"{len(truth)} labels for {len(predicted)} test items")
    if not truth:
        raise DataError("no test items to score")
    exact = sum(p == t for p, t in zip(predicted, truth, strict=True))
    edits = sum(edit_distance(p, t) for p, t in zip(predicted, truth, strict=True))
    chars = sum(len(t) for t in truth)
    cer = edits / chars if chars else (0.0 if edits == 0 else 1.0)
    return {
        "sequence_accuracy": exact / len(truth),
        "char_accuracy": float(min(1.0, max(0.0, 1.0 - cer))),
    }


def _decode_checked(outputs: Sequence[np.ndarray], labels: Any,
                    cfg: EvaluationConfig) -> tuple[list[str], list[str]]:
    """(predicted, truth) strings, after checking the labels fit the charset."""
    charset = cfg.ctc.charset
    if isinstance(labels, str | bytes) or not all(isinstance(t, str) for t in labels):
        raise DataError(
            "ctc labels must be one string per test item",
            "use the ocr_words generator or an npz whose label array holds strings",
        )
    truth = [str(t) for t in labels]
    stray = sorted({c for t in truth for c in t} - set(charset))
    if stray:
        raise DataError(
            f"labels use characters not in evaluation.ctc.charset: {''.join(stray)!r}",
            "add them to evaluation.ctc.charset in the model's class order",
        )
    return greedy_decode(_as_ntc(outputs, len(charset) + 1), charset), truth


def score(outputs: Sequence[np.ndarray], labels: Any, cfg: EvaluationConfig) -> dict[str, float]:
    return text_metrics(*_decode_checked(outputs, labels, cfg))


def correct(outputs: Sequence[np.ndarray], labels: Any, cfg: EvaluationConfig) -> np.ndarray:
    """Per item: the decoded string equals the label (what sequence accuracy counts)."""
    predicted, truth = _decode_checked(outputs, labels, cfg)
    return np.array([p == t for p, t in zip(predicted, truth, strict=True)], bool)


TASK = Task(
    name="ctc",
    primary="sequence_accuracy",
    metrics=("sequence_accuracy", "char_accuracy"),
    needs_labels=True,
    score=score,
    correct=correct,
    description=(
        "text recognition: greedy CTC decoding (blank = last class); exact-string accuracy "
        "and character accuracy (1 − CER)"
    ),
)
