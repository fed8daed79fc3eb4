"""What QAT validates on, for every framework: the held-out tenth of the training data, and
the figure the verdict would judge on it (no framework here: the backends pass outputs)."""

from __future__ import annotations

from typing import Any

import numpy as np


def hold_out(x: np.ndarray, y: Any, seed: int = 0) -> tuple[np.ndarray, Any, np.ndarray, Any]:
    """(x_train, y_train, x_val, y_val): a seeded random tenth held out for validation.

    Random, not the last tenth: files are often in class order (an image folder is read
    class by class), and the last tenth would hold one class only.
    """
    cut = max(1, len(x) // 10)
    order = np.random.default_rng(seed).permutation(len(x))
    va, tr = np.sort(order[:cut]), np.sort(order[cut:])
    return x[tr], _take(y, tr), x[va], _take(y, va)


def _take(labels: Any, idx: np.ndarray) -> Any:
    """Labels of the items ``idx``: an array, a list (strings, sequences) or None."""
    if labels is None:
        return None
    if isinstance(labels, np.ndarray):
        return labels[idx]
    return [labels[i] for i in idx]


def judged_figure(task_name: str, outs: list[np.ndarray], reference: list[np.ndarray],
                  labels: Any, evaluation: dict[str, Any], names: list[str],
                  output: str | None = None) -> tuple[str, float, str]:
    """(metric, value, output): the figure the verdict would judge, for the worst judged
    output (``output``: that output, chosen at epoch 0 and kept so every epoch is compared
    in one unit). A fraction for the task metric or argmax agreement, SQNR in dB for an
    output judged on fidelity; higher is better."""
    j, n_judged = judgement(task_name, outs, reference, labels, evaluation, names, output)
    label = j.metric if n_judged == 1 else f"{j.metric} of {j.name}"
    return label, figure(j), j.name


def figure(j: Any) -> float:
    """A judgement's figure (higher is better), finite: JSON has no infinity."""
    return float(min(max(j.figure, -999.0), 999.0))


def judgement(task_name: str, outs: list[np.ndarray], reference: list[np.ndarray],
              labels: Any, evaluation: dict[str, Any], names: list[str],
              output: str | None = None) -> tuple[Any, int]:
    """The judgement behind :func:`judged_figure` (an :class:`engine.verdict.Judgement`:
    its ``unit`` says fraction or dB), and how many outputs were judged."""
    from .config import PROFILE_THRESHOLDS, EvaluationConfig  # noqa: PLC0415
    from .outputs import judge_output, output_specs, score_outputs, worst  # noqa: PLC0415
    from .tasks import get_task  # noqa: PLC0415

    task = get_task(task_name)
    ev = EvaluationConfig(**evaluation)
    profile = ev.profile if ev.profile in PROFILE_THRESHOLDS else "general"
    labelled = task.score is not None and labels is not None
    task_m = task.score(outs, labels, ev) if labelled else {}
    task_ref = task.score(reference, labels, ev) if labelled else {}
    specs = output_specs(names, reference, task_outputs=task.outputs if labelled else (),
                         task_classes=task.class_scores, class_outputs=ev.class_outputs,
                         judged=ev.outputs)
    js = [judge_output(sp, o, profile, task_metric=task.primary,
                       task_fp32=task_ref.get(task.primary), task_stage=task_m.get(task.primary))
          for sp, o in zip(specs, score_outputs(outs, reference, specs), strict=True)]
    j = next((j for j in js if j.name == output), None) or worst(js) or js[0]
    return j, len(js)
