"""INT8 from several calibration draws (``calibration.draws`` > 1): stages ``convert_int8``
(once per draw), ``draws_heldout`` (the keep rule, on calibration items no draw holds) and
``draws_test`` (every draw on the test set, after the choice: reported, never chosen on).

Each draw is converted through the backend's own ``convert``, as a run with that draw's
seed would convert it. The kept draw's model becomes the stage's file (``int8.tflite``,
``int8.onnx``): bias correction, the per-layer error, the evaluation, the verdict and the
sensitivity all see it and its calibration items (a backend whose per-layer analysis
starts from its last conversion's calibration calibrates again when given another draw's
items: TensorFlow's and ONNX's do).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Backend, stage_files
from ..cancel import CancelToken
from ..data import Dataset
from ..draws import keep_draw, spread
from ..events import Progress, Sink
from ..layout import to_model
from ..validation import figure, judgement
from .context import JobContext, timed
from .stages import model_order, output_names


def draw_file(ctx: JobContext, i: int) -> Path:
    """Draw i's INT8 model, in the job's scratch folder (the kept one is copied out)."""
    return ctx.work / f"int8_draw{i}{ctx.stage_file('int8').suffix}"


def convert_draws(ctx: JobContext, backend: Backend, calib_path: Path, emit: Sink,
                  cancel: CancelToken) -> tuple[Dataset, Path]:
    """Convert every draw, keep one by the rule on the held-out slice, and make it the
    stage's file; returns the kept draw's calibration items and their saved array (what
    bias correction and the per-layer analysis calibrate from)."""
    d = ctx.draws
    assert d is not None
    paths, converted, seconds = [], [], 0.0
    for i, (ds, seed) in enumerate(zip(d.sets, d.seeds, strict=True)):
        cancel.check()
        path = calib_path if i == 0 else ctx.work / f"calibration_draw{i}.npy"
        if i:
            np.save(path, to_model(ds.x, ctx.layout))
        paths.append(path)
        converted.append(_convert(ctx, backend, path, draw_file(ctx, i),
                                  f"Converting to INT8, calibration draw {i} (seed {seed})",
                                  len(ds), emit))
        seconds += ctx.timings["convert_int8"]
    ctx.timings["convert_int8"] = round(seconds, 3)
    cancel.check()

    with timed(ctx, emit, "draws_heldout", total=len(d.sets) + 1) as t:
        figs, fig_info = _figures(ctx, d.heldout, [draw_file(ctx, i) for i in range(len(d.sets))],
                                  None, "draws_heldout", emit, cancel)
        kept = keep_draw(figs, ctx.cfg.calibration.keep)
        t.summary = {"kept": kept}
    shutil.copyfile(draw_file(ctx, kept), ctx.stage_file("int8"))
    res = converted[kept]
    stage: dict[str, Any] = {"path": ctx.stage_file("int8").name, "size_bytes": res.size_bytes}
    # A converter that needed a rebuild (TF's LSTM) says so on the draw that hit it; the
    # draws after it converted the rebuilt model too.
    if (via := next((c.via for c in converted if c.via is not None), None)) is not None:
        stage["via"] = via
    if res.quantization is not None:
        stage["quantization"] = res.quantization
    per_draw = [{"index": i, "seed": seed, "items": len(ds),
                 "sha256": _sha256(draw_file(ctx, i)),
                 "size_bytes": draw_file(ctx, i).stat().st_size,
                 "heldout": round(figs[i], 6), "test": None}
                for i, (ds, seed) in enumerate(zip(d.sets, d.seeds, strict=True))]
    stage["draws"] = {"count": len(d.sets), "keep": ctx.cfg.calibration.keep, "kept": kept,
                      "heldout": {**fig_info, "items": len(d.heldout), **_rounded(figs)},
                      "test": None, "per_draw": per_draw}
    ctx.stages["int8"] = stage
    return d.sets[kept], paths[kept]


def score_draws_on_test(ctx: JobContext, test: Dataset, outputs: dict[str, list[np.ndarray]],
                        emit: Sink, cancel: CancelToken) -> None:
    """Every draw's figure on the test set, after the choice: for information only."""
    rec = (ctx.stages.get("int8") or {}).get("draws")
    if ctx.draws is None or not rec or "fp32" not in outputs:
        return
    n = rec["count"]
    kept = rec["kept"]
    # The evaluation ran the kept draw already, unless bias correction replaced its model.
    same = _sha256(ctx.stage_file("int8")) == rec["per_draw"][kept]["sha256"]
    known = {kept: outputs["int8"]} if same and "int8" in outputs else {}
    with timed(ctx, emit, "draws_test", total=n) as t:
        figs, info = _figures(ctx, test, [draw_file(ctx, i) for i in range(n)], outputs["fp32"],
                              "draws_test", emit, cancel, output=rec["heldout"]["output"],
                              known=known)
        t.summary = {"mean": round(float(np.mean(figs)), 6)}
    for i, f in enumerate(figs):
        rec["per_draw"][i]["test"] = round(f, 6)
    rec["test"] = {**info, "items": len(test), **_rounded(figs)}


def _convert(ctx: JobContext, backend: Backend, calib: Path, out: Path, label: str, n: int,
             emit: Sink) -> Any:
    q = ctx.cfg.quantization
    with timed(ctx, emit, "convert_int8", label, n) as t:
        res = backend.convert("int8", str(out), str(calib), q.granularity, q.io_type,
                              q.allow_float, stage="convert_int8")
        t.summary = {"size_bytes": res.size_bytes}
    return res


def _figures(ctx: JobContext, data: Dataset, files: list[Path],
             reference: list[np.ndarray] | None, stage: str, emit: Sink, cancel: CancelToken,
             output: str | None = None,
             known: dict[int, list[np.ndarray]] | None = None) -> tuple[list[float], dict[str, Any]]:
    """Each model's judged figure on ``data`` against FP32 (``reference``, else FP32 run
    here), on one output for all (``output``, else the one the first model judges worst)."""
    x = to_model(data.x, ctx.layout)
    total = len(files) + (reference is None)
    done = 0
    if reference is None:
        reference = _run(ctx, ctx.stage_file("fp32"), x, stage, cancel)
        done += 1
        emit(Progress(stage, done, total))
    ev = ctx.cfg.to_dict()["evaluation"]
    names = output_names(ctx, len(reference))
    figs: list[float] = []
    info: dict[str, Any] = {}
    for i, f in enumerate(files):
        cancel.check()
        outs = (known or {}).get(i) or _run(ctx, f, x, stage, cancel)
        j, _ = judgement(ctx.cfg.evaluation.task, outs, reference, data.y, ev, names,
                              output)
        if not info:
            output = j.name
            info = {"metric": j.metric, "output": j.name,
                    "unit": "dB" if j.unit == "dB" else "fraction"}
        figs.append(figure(j))
        done += 1
        emit(Progress(stage, done, total))
    return figs, info


def _run(ctx: JobContext, path: Path, x: np.ndarray, stage: str,
         cancel: CancelToken) -> list[np.ndarray]:
    run = stage_files(ctx.model_file.format).run
    res = run(str(path), x, workers=ctx.cfg.evaluation.workers, stage=stage, cancel=cancel,
              log_path=str(ctx.run.log_path))
    return model_order(ctx, res, str(path))


def _rounded(figs: list[float]) -> dict[str, float | None]:
    s = spread(figs)
    return {k: round(s[k], 6) if k in s else None for k in ("mean", "min", "max", "std")}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
