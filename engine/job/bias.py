"""Stage ``bias_correction``: correct the INT8 model's biases, keep it only if it is better.

The correction fits on the calibration items the converter saw, less a held-out slice
(every fifth item) that decides which model is kept: the corrected one only when no
output is further from FP32 there and one is closer. The test set is never used to fit or
to choose; it is measured after the choice, for the report. ``int8.tflite`` is the model
kept (every later stage sees it); the other is kept beside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..bias_correction import (
    better,
    budget_items,
    carry,
    correct,
    layer_sqnr,
    run,
    split,
    sqnr,
)
from ..cancel import CancelToken
from ..data import Dataset
from ..errors import CancelledError
from ..events import Log, Progress, Sink
from ..layer_names import layer_names
from ..layout import to_model
from ..tflite import read_model_bytes
from .context import JobContext, timed
from .stages import model_order, output_names

UNCORRECTED = "int8_uncorrected.tflite"
CORRECTED = "int8_corrected.tflite"
#: The figures after the choice are measured on at most this many test items (the first
#: ones): the evaluation scores the kept model on all of them anyway, and three models over
#: a large test set cost more than the correction (EAST's 1000 items: 90 s).
TEST_ITEMS = 200
#: Per-layer SQNR is measured on at most this many items of each split (fewer when the float
#: layer outputs would not fit in REF_BUDGET).
LAYER_ITEMS = 200


def bias_correction(ctx: JobContext, cal: Dataset, test: Dataset, emit: Sink,
                    cancel: CancelToken) -> None:
    """``quantization.bias_correction = "sequential"`` on a PTQ ``.tflite`` INT8 model."""
    q = ctx.cfg.quantization
    if q.bias_correction == "off" or "int8" not in ctx.stages or "fp32" not in ctx.stages:
        return
    int8 = ctx.stage_file("int8")
    if q.method == "qat" or int8.suffix != ".tflite":
        why = "QAT models" if q.method == "qat" else "ONNX models"
        emit(Log(f"bias correction covers PTQ .tflite models; skipped for {why}", "info"))
        return
    with timed(ctx, emit, "bias_correction") as t:
        try:
            _correct(ctx, cal, test, emit, cancel, t)
        except CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an optional improvement must not cost the run
            # int8.tflite is replaced only once everything is measured: the converter's stands.
            emit(Log(f"bias correction failed ({type(exc).__name__}: {exc}); the converter's "
                     "INT8 model is kept", "warning"))
            ctx.bias_correction = {"method": q.bias_correction, "kept": "uncorrected",
                                   "other_path": "", "error": f"{type(exc).__name__}: {exc}"}


def _correct(ctx: JobContext, cal: Dataset, test: Dataset, emit: Sink, cancel: CancelToken,
             t: timed) -> None:
    q = ctx.cfg.quantization
    int8, fp32 = ctx.stage_file("int8"), ctx.stage_file("fp32")
    original, reference = int8.read_bytes(), fp32.read_bytes()
    x_cal, x_test = to_model(cal.x, ctx.layout), to_model(test.x[:TEST_ITEMS], ctx.layout)
    fit, held = split(len(x_cal))

    def on_layer(done: int, total: int) -> None:
        emit(Progress("bias_correction", done, total + 2))

    fixed = correct(original, reference, x_cal[fit], on_layer=on_layer, cancel=cancel)
    layers = [f.layer for f in fixed.fixes]
    layer_items = min(LAYER_ITEMS, budget_items(read_model_bytes(original), layers))

    candidate = ctx.work / CORRECTED
    candidate.write_bytes(fixed.content)
    files = (fp32, int8, candidate)

    def measure(x: Any) -> tuple[dict[str, list[float]], list[list[float]]]:
        # The outputs through the evaluation's own runner, as the verdict will see them
        # (its kernels round a little differently from the reference kernels that the
        # layer tensors need, by up to ~1 dB of output SQNR on MobileNet v2).
        outs = [_outputs(ctx, str(f), x, cancel) for f in files]
        by_output = {name: [sqnr(o[i], outs[0][i]) for o in outs[1:]]
                     for i, name in enumerate(output_names(ctx, len(outs[0])))}
        # Layer tensors on the first LAYER_ITEMS items: each layer's figure is a mean over
        # many values per item, and keeping every tensor of every item costs time and memory.
        xl = x[:layer_items]
        ref = run(reference, xl, [fixed.twins[la.output] for la in layers], cancel=cancel)
        runs = [run(m, xl, [la.output for la in layers], cancel=cancel, outputs=False)
                for m in (original, fixed.content)]
        return by_output, layer_sqnr(runs, ref, layers, fixed.twins)

    out_cal, lay_cal = measure(x_cal[held])
    keep = bool(layers) and better([v[0] for v in out_cal.values()],
                                   [v[1] for v in out_cal.values()])
    emit(Progress("bias_correction", len(layers) + 1, len(layers) + 2))
    out_test, lay_test = measure(x_test)  # after the choice: reported, never chosen on
    emit(Progress("bias_correction", len(layers) + 2, len(layers) + 2))
    if keep:
        ctx.run.path.joinpath(UNCORRECTED).write_bytes(original)
        int8.write_bytes(fixed.content)
    else:
        ctx.run.path.joinpath(CORRECTED).write_bytes(fixed.content)
    short = layer_names([(la.name, la.opcode) for la in layers])
    ctx.bias_correction = {
        "method": q.bias_correction,
        "kept": "corrected" if keep else "uncorrected",
        "other_path": UNCORRECTED if keep else CORRECTED,
        "fit_items": fixed.items,
        # Under 10 items there is no slice to spare: fitted and judged on all of them.
        "heldout_items": len(held) if len(x_cal) >= 10 else 0,
        "test_items": len(x_test),
        "layer_items": layer_items,
        "outputs": [{"name": name, "calibration": _pair(out_cal[name]),
                     "test": _pair(out_test[name])} for name in out_cal],
        "layers": [{"name": f.layer.name, "layer": short.get(f.layer.name, f.layer.name),
                    "op": f.layer.opcode, "channels": f.layer.channels,
                    "changed": f.changed, "saturated": f.saturated, "left": f.left,
                    "shift_lsb": round(f.shift_lsb, 4),
                    "calibration": _pair(lay_cal[i]), "test": _pair(lay_test[i])}
                   for i, f in enumerate(fixed.fixes)],
        "skipped": [{"name": n, "why": why} for n, why in fixed.skipped],
    }
    t.summary = {"layers": len(layers), "kept": ctx.bias_correction["kept"]}


def correct_mixed(ctx: JobContext, emit: Sink) -> None:
    """The kept correction carried into the per-layer analysis's mixed models, so the
    sensitivity compares like with like: a layer kept in float against the corrected model,
    with every other layer corrected as in it."""
    bc, res = ctx.bias_correction, ctx.layer_errors
    if not bc or bc.get("kept") != "corrected" or not res or not res.candidates:
        return
    original = ctx.run.path.joinpath(UNCORRECTED).read_bytes()
    corrected = ctx.stage_file("int8").read_bytes()
    for c in res.candidates:
        path = c.get("path")
        if not path or not str(path).endswith(".tflite"):
            continue
        content, n = carry(original, corrected, Path(path).read_bytes())
        Path(path).write_bytes(content)
        emit(Log(f"bias correction carried into {Path(path).name}: {n} layers", "info"))


def _outputs(ctx: JobContext, path: str, x: Any, cancel: CancelToken) -> list[Any]:
    from ..evaluate import run_model  # noqa: PLC0415

    res = run_model(path, x, workers=ctx.cfg.evaluation.workers, stage="bias_correction",
                    cancel=cancel, log_path=str(ctx.run.log_path))
    return model_order(ctx, res, path)


def _db(v: float) -> float | None:
    """JSON has no infinity: an exact match (or no signal) is null, as sqnr_db elsewhere."""
    return round(v, 3) if math.isfinite(v) else None


def _pair(v: list[float]) -> dict[str, float | None]:
    return {"before_db": _db(v[0]), "after_db": _db(v[1])}
