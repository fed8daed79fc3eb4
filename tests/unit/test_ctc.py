"""CTC greedy decoding and the ctc task's metrics against hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import CtcConfig, EvaluationConfig
from engine.errors import DataError
from engine.tasks import get_task
from engine.tasks.ctc import edit_distance, greedy_decode, text_metrics

CHARSET = "ab"  # classes: a = 0, b = 1, blank = 2
A, B, BLANK = 0, 1, 2


def one_hot(path: list[int], classes: int = 3) -> np.ndarray:
    """Scores (T, C) whose argmax at each step is ``path``."""
    s = np.full((len(path), classes), -1.0, np.float32)
    s[np.arange(len(path)), path] = 1.0
    return s


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ([BLANK, BLANK, BLANK, BLANK], ""),  # all blank: the empty string
        ([A, A, A, A], "a"),  # repeats merge
        ([A, BLANK, A, BLANK], "aa"),  # a blank between repeats keeps both
        ([A, A, BLANK, A], "aa"),
        ([BLANK, A, B, B], "ab"),
        ([A, B, A, B], "abab"),  # a change of class needs no blank
        ([B, BLANK, BLANK, B], "bb"),
    ],
)
def test_greedy_decode_hand_worked(path: list[int], text: str) -> None:
    assert greedy_decode(one_hot(path), CHARSET) == [text]


def test_greedy_decode_batch_and_probabilities_match_logits() -> None:
    logits = np.stack([one_hot([A, BLANK, A, B]), one_hot([BLANK] * 4)])
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert greedy_decode(logits, CHARSET) == ["aab", ""]
    assert greedy_decode(probs, CHARSET) == ["aab", ""]


def test_greedy_decode_rejects_wrong_class_count() -> None:
    with pytest.raises(DataError, match="charset"):
        greedy_decode(np.zeros((1, 4, 5)), CHARSET)


@pytest.mark.parametrize(
    ("a", "b", "d"),
    [("", "", 0), ("", "abc", 3), ("abc", "", 3), ("kitten", "sitting", 3), ("aa", "a", 1),
     ("abc", "abc", 0), ("ab", "ba", 2)],
)
def test_edit_distance(a: str, b: str, d: int) -> None:
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


def test_text_metrics_hand_worked() -> None:
    # Exact matches: "ab" and "" → 2 of 4.
    truth = ["ab", "aa", "", "abababab"]
    pred = ["ab", "a", "", "abababbb"]
    m = text_metrics(pred, truth)
    assert m["sequence_accuracy"] == pytest.approx(2 / 4)
    # Edits: 0 + 1 (a deleted "a") + 0 + 1 (one substitution) = 2 over 2 + 2 + 0 + 8 = 12
    # characters.
    assert m["char_accuracy"] == pytest.approx(1 - 2 / 12)


def test_char_accuracy_clipped_at_zero_and_empty_truths() -> None:
    # Many insertions: CER > 1, so 1 − CER is clipped to 0.
    assert text_metrics(["abababab"], ["a"])["char_accuracy"] == 0.0
    # Only empty truths: perfect when the predictions are empty too, else 0.
    assert text_metrics(["", ""], ["", ""]) == {"sequence_accuracy": 1.0, "char_accuracy": 1.0}
    assert text_metrics(["a", ""], ["", ""]) == {"sequence_accuracy": 0.5, "char_accuracy": 0.0}


def test_task_scores_model_outputs() -> None:
    cfg = EvaluationConfig(task="ctc", ctc=CtcConfig(charset=CHARSET))
    task = get_task("ctc")
    assert task.primary == "sequence_accuracy"
    assert set(task.metrics) == {"sequence_accuracy", "char_accuracy"}
    out = np.stack([one_hot([A, BLANK, A, BLANK]), one_hot([B, B, BLANK, BLANK]),
                    one_hot([BLANK] * 4)])
    m = task.score([out], ["aa", "ab", ""], cfg)
    assert m["sequence_accuracy"] == pytest.approx(2 / 3)
    assert m["char_accuracy"] == pytest.approx(1 - 1 / 4)
    # (N, 1, T, C) outputs (a conv head before its reshape) are read the same way.
    assert task.score([out[:, None]], ["aa", "ab", ""], cfg) == m
    # Item by item, what sequence accuracy counts: the pairing the drop's interval needs.
    assert task.correct([out], ["aa", "ab", ""], cfg).tolist() == [True, False, True]


def test_task_names_bad_labels_and_outputs() -> None:
    cfg = EvaluationConfig(task="ctc", ctc=CtcConfig(charset=CHARSET))
    out = np.stack([one_hot([A, BLANK, A, BLANK])])
    with pytest.raises(DataError, match="not in evaluation.ctc.charset"):
        get_task("ctc").score([out], ["ac"], cfg)
    with pytest.raises(DataError, match="one string per test item"):
        get_task("ctc").score([out], [3], cfg)
    with pytest.raises(DataError, match=r"\(N, T, 3\)"):
        get_task("ctc").score([np.zeros((1, 4, 7))], ["a"], cfg)
    with pytest.raises(DataError, match="labels for"):
        get_task("ctc").score([out], ["a", "b"], cfg)
