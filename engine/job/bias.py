"""Stage ``bias_correction``: correct the INT8 model's biases, keep it only if it is better.

The correction fits on the calibration items the converter saw, less a held-out slice
(every fifth item) that decides which model is kept: the corrected one only when no
output is further from FP32 there and one is closer. The test set is never used to fit or
to choose; it is measured after the choice, for the report. ``int8.tflite`` (or
``int8.onnx``) is the model kept (every later stage sees it); the other is kept beside it.
A ``.tflite`` is corrected with LiteRT (:mod:`engine.bias_correction`), a QDQ ``.onnx`` with
onnxruntime (:mod:`engine.backends.onnx.bias`): the same math, the same report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
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

UNCORRECTED = "int8_uncorrected"
CORRECTED = "int8_corrected"
#: The figures after the choice are measured on at most this many test items (the first
#: ones): the evaluation scores the kept model on all of them anyway, and three models over
#: a large test set cost more than the correction (EAST's 1000 items: 90 s).
TEST_ITEMS = 200
#: Per-layer SQNR is measured on at most this many items of each split (fewer when the float
#: layer outputs would not fit in REF_BUDGET).
LAYER_ITEMS = 200


@dataclass(frozen=True)
class _Kit:
    """One file format's correction: the same steps, LiteRT's or onnxruntime's."""

    #: (int8, fp32, x, on_layer, cancel) → Correction
    correct: Callable[..., Any]
    #: (model, x, tensors, cancel) → Run of those raw tensors, channels-last
    tensors: Callable[..., Any]
    #: (int8, fp32, layers, x) → how many items' float layer outputs fit the memory budget
    budget: Callable[..., int]
    #: (original, corrected, target) → (target corrected, biases carried)
    carry: Callable[..., tuple[bytes, int]]


def _kit(suffix: str) -> _Kit:
    if suffix == ".onnx":
        from ..backends.onnx import bias as qdq  # noqa: PLC0415 - onnxruntime, when it runs

        return _Kit(
            lambda a, b, x, on_layer, cancel: qdq.correct(a, b, x, on_layer=on_layer,
                                                          cancel=cancel),
            lambda m, x, names, cancel: qdq.run(m, x, names, cancel=cancel),
            lambda a, b, layers, x: qdq.budget_items(b, layers, x), qdq.carry)
    return _Kit(
        lambda a, b, x, on_layer, cancel: correct(a, b, x, on_layer=on_layer, cancel=cancel),
        lambda m, x, names, cancel: run(m, x, names, cancel=cancel, outputs=False),
        lambda a, b, layers, x: budget_items(read_model_bytes(a), layers), carry)


def bias_correction(ctx: JobContext, cal: Dataset, test: Dataset, emit: Sink,
                    cancel: CancelToken) -> None:
    """``quantization.bias_correction = "sequential"`` on a PTQ INT8 model (``.tflite`` or
    QDQ ``.onnx``)."""
    q = ctx.cfg.quantization
    if q.bias_correction == "off" or "int8" not in ctx.stages or "fp32" not in ctx.stages:
        return
    if q.method == "qat":
        emit(Log("bias correction covers PTQ models; skipped for QAT", "info"))
        return
    with timed(ctx, emit, "bias_correction") as t:
        try:
            _correct(ctx, cal, test, emit, cancel, t)
        except CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an optional improvement must not cost the run
            # The INT8 file is replaced only once everything is measured: the converter's stands.
            emit(Log(f"bias correction failed ({type(exc).__name__}: {exc}); the converter's "
                     "INT8 model is kept", "warning"))
            ctx.bias_correction = {"method": q.bias_correction, "kept": "uncorrected",
                                   "other_path": "", "error": f"{type(exc).__name__}: {exc}"}


def _reference(ctx: JobContext) -> Path:
    """The float model the INT8 one was made from, whose tensors carry its names."""
    fp32 = ctx.stage_file("fp32")
    if fp32.suffix == ".onnx":
        from ..backends.onnx.bias import reference  # noqa: PLC0415 - onnx only, no runtime

        return reference(ctx.work, fp32)
    return fp32


def _correct(ctx: JobContext, cal: Dataset, test: Dataset, emit: Sink, cancel: CancelToken,
             t: timed) -> None:
    q = ctx.cfg.quantization
    int8 = ctx.stage_file("int8")
    kit = _kit(int8.suffix)
    original, reference = int8.read_bytes(), _reference(ctx).read_bytes()
    x_cal, x_test = to_model(cal.x, ctx.layout), to_model(test.x[:TEST_ITEMS], ctx.layout)
    fit, held = split(len(x_cal))

    def on_layer(done: int, total: int) -> None:
        emit(Progress("bias_correction", done, total + 2))

    fixed = kit.correct(original, reference, x_cal[fit], on_layer, cancel)
    layers = [f.layer for f in fixed.fixes]
    layer_items = min(LAYER_ITEMS, kit.budget(original, reference, layers, x_cal))

    corrected, uncorrected = CORRECTED + int8.suffix, UNCORRECTED + int8.suffix
    candidate = ctx.work / corrected
    candidate.write_bytes(fixed.content)
    files = (ctx.stage_file("fp32"), int8, candidate)

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
        ref = kit.tensors(reference, xl, [fixed.twins[la.output] for la in layers], cancel)
        runs = [kit.tensors(m, xl, [la.output for la in layers], cancel)
                for m in (original, fixed.content)]
        return by_output, layer_sqnr(runs, ref, layers, fixed.twins)

    out_cal, lay_cal = measure(x_cal[held])
    keep = bool(layers) and better([v[0] for v in out_cal.values()],
                                   [v[1] for v in out_cal.values()])
    emit(Progress("bias_correction", len(layers) + 1, len(layers) + 2))
    out_test, lay_test = measure(x_test)  # after the choice: reported, never chosen on
    emit(Progress("bias_correction", len(layers) + 2, len(layers) + 2))
    if keep:
        ctx.run.path.joinpath(uncorrected).write_bytes(original)
        int8.write_bytes(fixed.content)
    else:
        ctx.run.path.joinpath(corrected).write_bytes(fixed.content)
    short = layer_names([(la.name, la.opcode) for la in layers])
    ctx.bias_correction = {
        "method": q.bias_correction,
        "kept": "corrected" if keep else "uncorrected",
        "other_path": uncorrected if keep else corrected,
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
    int8 = ctx.stage_file("int8")
    kit = _kit(int8.suffix)
    original = ctx.run.path.joinpath(UNCORRECTED + int8.suffix).read_bytes()
    corrected = int8.read_bytes()
    for c in res.candidates:
        path = c.get("path")
        if not path or Path(path).suffix != int8.suffix:
            continue
        content, n = kit.carry(original, corrected, Path(path).read_bytes())
        Path(path).write_bytes(content)
        emit(Log(f"bias correction carried into {Path(path).name}: {n} layers", "info"))


def _outputs(ctx: JobContext, path: str, x: Any, cancel: CancelToken) -> list[Any]:
    from ..backends import stage_files  # noqa: PLC0415

    res = stage_files(ctx.model_file.format).run(path, x, workers=ctx.cfg.evaluation.workers, stage="bias_correction",
                    cancel=cancel, log_path=str(ctx.run.log_path))
    return model_order(ctx, res, path)


def _db(v: float) -> float | None:
    """JSON has no infinity: an exact match (or no signal) is null, as sqnr_db elsewhere."""
    return round(v, 3) if math.isfinite(v) else None


def _pair(v: list[float]) -> dict[str, float | None]:
    return {"before_db": _db(v[0]), "after_db": _db(v[1])}
