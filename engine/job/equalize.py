"""Stage ``equalize``: a second INT8 model from cross-layer-equalized weights, kept only if
it is better (``quantization.equalize``).

The TensorFlow child reloads the Keras model, balances the per-channel weight ranges of
each pair of layers it can (:mod:`engine.backends.tf.equalize`), checks that the float
outputs on the calibration items did not move, exports and converts it with the same
calibration. Both INT8 models are then measured against FP32 on the held-out calibration
slice the bias correction uses (every fifth item): the equalized one is kept only when no
output is further from FP32 there and one is closer. The test set is measured after the
choice, for the report. ``int8.tflite`` is the model kept (the bias correction and every
later stage see it); the other is kept beside it.
"""

from __future__ import annotations

from typing import Any

from ..backends import Backend
from ..bias_correction import better, split, sqnr
from ..cancel import CancelToken
from ..data import Dataset
from ..errors import CancelledError
from ..events import Log, Progress, Sink
from ..layout import to_model
from .bias import TEST_ITEMS, _outputs, _pair
from .context import JobContext, timed
from .stages import output_names

EQUALIZED = "int8_equalized.tflite"
PLAIN = "int8_plain.tflite"
#: The equalized float model may differ from the original by float rounding only: the
#: largest change of any output, relative to that output's largest magnitude.
FLOAT_TOLERANCE = 1e-4


def equalize(ctx: JobContext, be: Backend, calib_path: str, cal: Dataset, test: Dataset,
             emit: Sink, cancel: CancelToken) -> None:
    """``quantization.equalize = true`` on a PTQ INT8 ``.tflite`` from a Keras model."""
    q = ctx.cfg.quantization
    if not q.equalize or "int8" not in ctx.stages or "fp32" not in ctx.stages:
        return
    if not hasattr(be, "equalize"):
        emit(Log("equalization covers Keras models; skipped", "info"))
        return
    with timed(ctx, emit, "equalize") as t:
        try:
            _equalize(ctx, be, calib_path, cal, test, emit, cancel, t)
        except CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an optional improvement must not cost the run
            emit(Log(f"equalization failed ({type(exc).__name__}: {exc}); the plain INT8 "
                     "model is kept", "warning"))
            ctx.equalization = {"kept": "plain", "other_path": "",
                                "error": f"{type(exc).__name__}: {exc}"}


def _equalize(ctx: JobContext, be: Any, calib_path: str, cal: Dataset, test: Dataset,
              emit: Sink, cancel: CancelToken, t: timed) -> None:
    q = ctx.cfg.quantization
    int8 = ctx.stage_file("int8")
    candidate = ctx.work / EQUALIZED
    export_dir = ctx.work / "saved_model_equalized"
    done = be.equalize(str(calib_path), str(export_dir), str(candidate), q.granularity,
                       q.io_type, q.allow_float, stage="equalize")
    diff = [float(d) for d in done["float_diff"]]
    record: dict[str, Any] = {
        "kept": "plain", "other_path": "", "heldout_items": 0, "test_items": 0,
        "sweeps": int(done["sweeps"]), "float_diff": diff, "float_tolerance": FLOAT_TOLERANCE,
        "pairs": list(done["pairs"]), "skipped": list(done["skipped"]), "outputs": []}
    ctx.equalization = record
    t.summary = {"pairs": len(done["pairs"]), "kept": "plain"}
    if not done["pairs"]:
        emit(Log("equalization found no pair of layers to balance; the plain INT8 model "
                 "is kept", "info"))
        return
    if max(diff, default=0.0) >= FLOAT_TOLERANCE:
        # Then it is not the same model any more: never keep it, say why.
        record["error"] = (f"the equalized float model moved by {max(diff):.2e} of its "
                           f"output range (limit {FLOAT_TOLERANCE:g}); not used")
        emit(Log(f"equalization {record['error']}", "warning"))
        return
    x_cal, x_test = to_model(cal.x, ctx.layout), to_model(test.x[:TEST_ITEMS], ctx.layout)
    _, held = split(len(x_cal))
    files = (ctx.stage_file("fp32"), int8, candidate)

    def measure(x: Any) -> dict[str, list[float]]:
        outs = [_outputs(ctx, str(f), x, cancel) for f in files]
        return {name: [sqnr(o[i], outs[0][i]) for o in outs[1:]]
                for i, name in enumerate(output_names(ctx, len(outs[0])))}

    out_cal = measure(x_cal[held])
    emit(Progress("equalize", 1, 2))
    keep = better([v[0] for v in out_cal.values()], [v[1] for v in out_cal.values()])
    out_test = measure(x_test)  # after the choice: reported, never chosen on
    emit(Progress("equalize", 2, 2))
    if keep:
        ctx.run.path.joinpath(PLAIN).write_bytes(int8.read_bytes())
        int8.write_bytes(candidate.read_bytes())
        ctx.stages["int8"]["size_bytes"] = int(done["size_bytes"])
        be.adopt(str(export_dir), stage="equalize")  # the per-layer analysis sees it
    else:
        ctx.run.path.joinpath(EQUALIZED).write_bytes(candidate.read_bytes())
    record.update({
        "kept": "equalized" if keep else "plain",
        "other_path": PLAIN if keep else EQUALIZED,
        "heldout_items": len(held) if len(x_cal) >= 10 else 0,
        "test_items": len(x_test),
        "outputs": [{"name": n, "calibration": _pair(out_cal[n]), "test": _pair(out_test[n])}
                    for n in out_cal],
    })
    t.summary["kept"] = record["kept"]
