"""Stage ``sensitivity``: score each mixed model (one suspect kept in float), cost it on the
NPU, and say in the user's words whether keeping that layer in float is worth it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backends import stage_files
from ..cancel import CancelToken
from ..data import Dataset
from ..errors import EngineError
from ..events import Log, Progress, Sink
from ..layout import to_model
from ..outputs import judge_output, score_outputs, spec
from ..tasks import Task
from ..verdict import Verdict
from .context import JobContext, timed
from .stages import model_order

#: Sensitivity scores each mixed model on at most this many test items (the first ones),
#: against INT8 on the same items, so K layers cost K short evaluations.
SENSITIVITY_MAX_ITEMS = 1000


def sensitivity(
    ctx: JobContext, test: Dataset, task: Task, outputs: dict[str, list[np.ndarray]],
    verdict: Verdict | None, emit: Sink, cancel: CancelToken,
) -> None:
    """Needs the per-layer candidates (stage ``layers``), the NPU latency (``analyze``) and
    INT8's verdict: a lossless INT8 only costs the mixed models, the others are scored on
    the output the verdict found worst, in its unit (points or dB)."""
    res = ctx.layer_errors
    if (not res or not res.candidates or "int8" not in outputs or "fp32" not in outputs
            or verdict is None):
        return
    from ..layer_names import model_layer_names, short_name  # noqa: PLC0415

    # Named after each op's own output tensor, unique in the model, as in the Layers table.
    names = model_layer_names((ctx.npu or {}).get("layers") or (), res.errors, res.candidates)
    n = min(len(test), SENSITIVITY_MAX_ITEMS)
    idx = np.arange(n)
    y = None if test.y is None else (
        test.y[idx] if isinstance(test.y, np.ndarray) else [test.y[i] for i in idx])
    ref = [o[:n] for o in outputs["fp32"]]

    ev = ctx.cfg.evaluation
    # The worst judged output, with the kind the evaluation gave it on the whole test set.
    kinds = [(o["name"], o["kind"]) for o in ctx.stages["int8"]["metrics"]["outputs"]]
    at = next((i for i, (name, _) in enumerate(kinds) if name == verdict.output), 0)
    sp = spec(at, kinds[at][0], kinds[at][1], task.outputs)
    task_fp32 = (task.score(ref, y, ev) if task.score is not None else {}).get(task.primary)
    unit = verdict.unit or "points"

    def score(outs: list[np.ndarray]) -> float:
        """The worst output's figure (a fraction, or SQNR in dB): higher is better."""
        task_m = task.score(outs, y, ev) if task.score is not None else {}
        out = score_outputs([outs[at]], [ref[at]], [sp])[0]
        j = judge_output(sp, out, ev.profile, task_metric=task.primary, task_fp32=task_fp32,
                         task_stage=task_m.get(task.primary))
        return j.figure  # +inf: identical to FP32; −inf: nothing left to compare

    base: float | None = score([o[:n] for o in outputs["int8"]])
    base = base if base is not None and np.isfinite(base) else None
    base_ms = ((ctx.npu or {}).get("summary") or {}).get("latency_ms")
    # Nothing to regain when INT8 loses nothing: cost the mixed models, do not score them.
    lossless = bool(verdict.judged) and all(j.used <= 0 for j in verdict.judged)
    entries: list[dict[str, Any]] = []
    todo = [] if lossless else [c for c in res.candidates if "path" in c]
    done = [0]

    def progress(ev: Any) -> None:
        # run_model counts items per model; the bar counts items over all the models.
        if isinstance(ev, Progress):
            emit(Progress("sensitivity", done[0] * n + ev.done, n * len(todo)))

    label = (f"Float cost of {len(res.candidates)} suspects"  # INT8 loses nothing: cost only
             if lossless else f"Trying {len(todo)} suspects in float")
    with timed(ctx, emit, "sensitivity", label, n * len(todo) or None) as t:
        for c in res.candidates:
            cancel.check()
            group = c.get("group")
            layer = (f"all {len(group)} suspect layers" if group
                     else names.get(c["tensor"]) or short_name(c["tensor"], c.get("op")))
            entry: dict[str, Any] = {
                "tensor": c["tensor"], "layer": layer, "op": c.get("op"), "kind": c["kind"],
                "float_ops": [names.get(o) or short_name(o) for o in c["float_ops"]],
                "metric": verdict.metric, "unit": unit, "output": verdict.output, "items": n,
            }
            if group:
                entry["group"] = group
            if "path" not in c or base is None:
                entry.update(regained_points=None, cost_ms=None,
                             suggestion=c.get("error", "no metric to compare"))
                entries.append(entry)
                continue
            if lossless:
                cost = _mixed_cost(ctx, c["path"], base_ms, emit)
                what = layer if group else f"`{layer}`"
                entry.update(regained_points=None, cost_ms=cost,
                             path=str(Path(c["path"]).relative_to(ctx.run.path)),
                             suggestion=f"not tried: INT8 loses nothing against FP32; keeping "
                             f"{what} in float would cost "
                             + (f"{cost:+.2f} ms on the CPU" if cost is not None else "CPU time"))
                entries.append(entry)
                continue
            run = stage_files(ctx.model_file.format).run(
                c["path"], to_model(test.x[:n], ctx.layout), workers=ctx.cfg.evaluation.workers,
                stage="sensitivity", sink=progress, cancel=cancel, log_path=str(ctx.run.log_path))
            done[0] += 1
            value = score(model_order(ctx, run, c["path"]))
            exact = value == np.inf  # the output becomes identical to FP32: no finite gain
            # Points for fractions (the task metric, agreement), dB for SQNR.
            regained = None if base is None or not np.isfinite(value) else round(
                (value - base) * (100.0 if unit == "points" else 1.0), 4)
            cost = _mixed_cost(ctx, c["path"], base_ms, emit)
            entry.update(
                int8=base, value=value if np.isfinite(value) else None, regained=regained,
                regained_points=regained if unit == "points" else None, cost_ms=cost,
                path=str(Path(c["path"]).relative_to(ctx.run.path)),
                suggestion=suggest(layer, entry["float_ops"], regained, cost, bool(group), unit,
                                   exact=exact),
            )
            if exact:
                entry["exact"] = True
            entries.append(entry)
        # Single layers best first; the all-suspects check (a diagnosis, not a recipe) last.
        entries.sort(key=lambda e: (bool(e.get("group")), -np.inf if e.get("exact") else
                                    -(e["regained"] if e.get("regained") is not None
                                      else -1e9)))
        t.summary = {"best": entries[0]["suggestion"]} if entries else {}
    ctx.sensitivity = entries


def _mixed_cost(ctx: JobContext, path: str, base_ms: float | None, emit: Sink) -> float | None:
    """Extra N6 time of a mixed model over the INT8 one (CPU layers and conversions), ms."""
    from ..npu import analyze  # noqa: PLC0415

    try:
        mixed_ms = analyze(path, ctx.target).latency_ms
    except EngineError as exc:
        emit(Log(f"NPU analysis of the mixed model failed: {exc}", "warning"))
        return None
    return round(mixed_ms - base_ms, 4) if base_ms is not None else None


def suggest(layer: str, float_ops: list[str], regained: float | None, cost: float | None,
            group: bool = False, unit: str = "points", *, exact: bool = False) -> str:
    """The advice for one mixed model, in the user's words."""
    others = [o for o in float_ops if o != layer]
    what = f"`{layer}`" + (f" and its reader(s) {', '.join(f'`{o}`' for o in others)}"
                           if others else "")
    if group:
        what = f"{layer} ({len(float_ops)} ops)"
    cost_txt = f"{cost:+.2f} ms on the CPU" if cost is not None else "CPU cost unknown"
    if exact:
        return f"keep {what} in float: the output then matches FP32 exactly, {cost_txt}"
    if regained is None:
        return f"keeping {what} in float could not be scored"
    if regained <= 0:
        return (f"keeping {what} in float regains nothing ({regained:+.2f} {unit}, "
                f"{cost_txt}): leave it in INT8")
    return f"keep {what} in float: {regained:+.2f} {unit}, {cost_txt}"
