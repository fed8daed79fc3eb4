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
from ..metrics import agreement
from ..tasks import Task
from ..verdict import primary_value
from .context import JobContext, timed

#: Sensitivity scores each mixed model on at most this many test items (the first ones),
#: against INT8 on the same items, so K layers cost K short evaluations.
SENSITIVITY_MAX_ITEMS = 1000


def sensitivity(
    ctx: JobContext, test: Dataset, task: Task, outputs: dict[str, list[np.ndarray]],
    int8_drop: float | None, emit: Sink, cancel: CancelToken,
) -> None:
    """Needs the per-layer candidates (stage ``layers``), the NPU latency (``analyze``) and
    INT8's drop (``stage_drops``): a lossless INT8 only costs the mixed models."""
    res = ctx.layer_errors
    if not res or not res.candidates or "int8" not in outputs or "fp32" not in outputs:
        return
    from ..layers import short_name  # noqa: PLC0415

    n = min(len(test), SENSITIVITY_MAX_ITEMS)
    idx = np.arange(n)
    y = None if test.y is None else (
        test.y[idx] if isinstance(test.y, np.ndarray) else [test.y[i] for i in idx])
    ref = [o[:n] for o in outputs["fp32"]]

    def score(outs: list[np.ndarray]) -> float | None:
        m: dict[str, Any] = {}
        if task.score is not None:
            m.update(task.score(outs, y, ctx.cfg.evaluation))
        m["agreement"] = agreement(outs[0], ref[0])
        return primary_value(m, task.primary)

    base = score([o[:n] for o in outputs["int8"]])
    base_ms = ((ctx.npu or {}).get("summary") or {}).get("latency_ms")
    # Nothing to regain when INT8 loses nothing: cost the mixed models, do not score them.
    lossless = int8_drop is not None and int8_drop <= 0
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
            layer = (f"all {len(group)} suspect layers" if group else short_name(c["tensor"]))
            entry: dict[str, Any] = {
                "tensor": c["tensor"], "layer": layer, "op": c.get("op"), "kind": c["kind"],
                "float_ops": [short_name(o) for o in c["float_ops"]], "metric": task.primary,
                "items": n,
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
                             suggestion=f"not tried: INT8 loses nothing against FP32 "
                             f"({int8_drop:+.2f} points); keeping {what} in float would cost "
                             + (f"{cost:+.2f} ms on the CPU" if cost is not None else "CPU time"))
                entries.append(entry)
                continue
            run = stage_files(ctx.model_file.format).run(
                c["path"], to_model(test.x[:n], ctx.layout), workers=ctx.cfg.evaluation.workers,
                stage="sensitivity", sink=progress, cancel=cancel, log_path=str(ctx.run.log_path))
            done[0] += 1
            value = score(run.outputs)
            regained = None if value is None else round((value - base) * 100.0, 4)
            cost = _mixed_cost(ctx, c["path"], base_ms, emit)
            entry.update(
                int8=base, value=value, regained_points=regained, cost_ms=cost,
                path=str(Path(c["path"]).relative_to(ctx.run.path)),
                suggestion=suggest(layer, entry["float_ops"], regained, cost, bool(group)),
            )
            entries.append(entry)
        # Single layers best first; the all-suspects check (a diagnosis, not a recipe) last.
        entries.sort(key=lambda e: (bool(e.get("group")),
                                    -(e["regained_points"] if e["regained_points"] is not None
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
            group: bool = False) -> str:
    """The advice for one mixed model, in the user's words."""
    others = [o for o in float_ops if o != layer]
    what = f"`{layer}`" + (f" and its reader(s) {', '.join(f'`{o}`' for o in others)}"
                           if others else "")
    if group:
        what = f"{layer} ({len(float_ops)} ops)"
    cost_txt = f"{cost:+.2f} ms on the CPU" if cost is not None else "CPU cost unknown"
    if regained is None:
        return f"keeping {what} in float could not be scored"
    if regained <= 0:
        return (f"keeping {what} in float regains nothing ({regained:+.2f} points, "
                f"{cost_txt}): leave it in INT8")
    return f"keep {what} in float: {regained:+.2f} points, {cost_txt}"
