"""The stage bodies: plain functions over the job context, in the order they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Backend, LoadedModel, stage_files
from ..cancel import CancelToken
from ..config import JobConfig, PreprocessConfig
from ..data import (
    Dataset,
    RawData,
    check_class_labels,
    check_same_classes,
    grey_images,
    prepare,
    select_calibration,
    unscaled_images,
)
from ..errors import CancelledError, DataError, EngineError
from ..events import Finding, Log, ModelInfo, Sink, StageMetrics
from ..layout import data_view, from_model, resolve, to_model
from ..outputs import (
    check_output_names,
    judge_output,
    match_outputs,
    output_specs,
    score_outputs,
    spec,
)
from ..preprocess import PreprocessSpec
from ..tasks import Task, get_task
from ..verdict import Judgement, Verdict, judge_outputs
from .context import JobContext, timed
from .shared import load_model, load_split


def load_data(ctx: JobContext, emit: Sink, cancel: CancelToken) -> tuple[RawData, RawData, Task]:
    """Calibration and test data as read (stage ``data``), and the task that scores them."""
    cfg = ctx.cfg
    with timed(ctx, emit, "data"):
        cal_raw = load_split(ctx, "calibration", emit, cancel)
        test_raw = load_split(ctx, "test", emit, cancel)
        if cfg.evaluation.max_samples and len(test_raw) > cfg.evaluation.max_samples:
            test_raw = test_raw.subset(np.arange(cfg.evaluation.max_samples))
    cancel.check()
    task = get_task(cfg.evaluation.task)
    if task.needs_labels and test_raw.labels is None:
        raise DataError(
            f"{test_raw.source}: the {task.name} task needs labels and the test data has none",
            "give labels (npz y array, class sub-folders), or set evaluation.task = \"generic\"",
        )
    if task.name == "classification":
        check_same_classes(cal_raw, "data.calibration", test_raw, "data.test")
    return cal_raw, test_raw, task


def export_model(ctx: JobContext, backend: Backend, emit: Sink) -> LoadedModel:
    """Load the model and export it with batch 1 (stage ``load``)."""
    mf = ctx.model_file
    with timed(ctx, emit, "load") as t:
        model = load_model(ctx, backend)
        ctx.model = {"path": mf.path, "format": mf.format, **model.to_dict()}
        emit(ModelInfo(model.inputs, model.outputs, model.params, mf.path))
        t.summary = {"params": model.params}
    names = [str(o.get("name")) for o in model.outputs]
    for key in ("outputs", "class_outputs"):
        check_output_names(getattr(ctx.cfg.evaluation, key), names, f"evaluation.{key}",
                           ctx.cfg.source)
    return model


def prepare_data(ctx: JobContext, cal_raw: RawData, test_raw: RawData, model: LoadedModel,
                 task: Task, emit: Sink) -> tuple[Dataset, Dataset]:
    """Preprocess both splits as the model wants them (stage ``preprocess``)."""
    cfg = ctx.cfg
    model_shape = tuple(model.inputs[0]["shape"][1:])
    # Data is read and checked as H×W×C; a channels-first model gets it reordered at its edge.
    ctx.layout = resolve(cfg.preprocessing.layout, model_shape)
    if ctx.layout == "nchw":
        ctx.model["layout"] = "nchw"
        cal_raw, test_raw = (_as_data_view(r, model_shape) for r in (cal_raw, test_raw))
    input_shape = data_view(model_shape, ctx.layout)
    spec = None
    if cal_raw.images is not None or test_raw.images is not None:
        spec = PreprocessSpec.resolve(cfg.preprocessing, input_shape)
        ctx.preprocessing = spec.to_dict()
    elif given := _preprocessing_given(cfg):
        # Model-ready arrays go to the model as they are: say so, rather than ignore silently.
        msg = (f"preprocessing.{', preprocessing.'.join(given)} set, but the calibration and "
               "test data are model-ready arrays: the [preprocessing] values are not applied")
        fix = ("remove them, or set data.calibration.raw = true and data.test.raw = true to "
               "have artq preprocess the arrays as images")
        ctx.findings.append({"code": "preprocessing_ignored", "severity": "warning",
                             "message": msg, "evidence": "", "fix": fix})
        emit(Finding("preprocessing_ignored", "warning", msg, "", fix))
    with timed(ctx, emit, "preprocess"):
        idx = select_calibration(len(cal_raw), cfg.calibration.samples, cfg.calibration.seed)
        cal = prepare(cal_raw.subset(idx), spec, input_shape, "data.calibration")
        c = cfg.calibration
        if c.draws > 1:  # draw 0 is ``cal``: the draw calibration.seed always drew
            from ..draws import prepare_draws  # noqa: PLC0415

            ctx.draws = prepare_draws(cal_raw, spec, input_shape, c.samples, c.seed, c.draws,
                                      cal)
        test = prepare(test_raw, spec, input_shape, "data.test")
    ctx.data = {
        "calibration": {"source": cal_raw.source, "available": len(cal_raw), "used": len(cal),
                        "seed": cfg.calibration.seed},
        "test": {"source": test_raw.source, "items": len(test)},
    }
    if test_raw.class_names:
        ctx.data["test"]["classes"] = list(test_raw.class_names)
    for raw, key in ((cal_raw, "data.calibration"), (test_raw, "data.test")):
        if spec is not None and (msg := grey_images(raw, key, spec.channels)):
            fix = (f"give {key} the colour images the model was trained on, or a model "
                   "trained on grey input")
            ctx.findings.append({"code": "grey_images_for_colour_model", "severity": "warning",
                                 "message": msg, "evidence": "", "fix": fix})
            emit(Finding("grey_images_for_colour_model", "warning", msg, "", fix))
        if msg := unscaled_images(raw, key):
            # A model with its own Rescaling layer wants 0…255: a warning, not an error.
            ctx.findings.append({"code": "unscaled_arrays", "severity": "warning",
                                 "message": msg, "evidence": "", "fix": f"set {key}.raw = true"})
            emit(Finding("unscaled_arrays", "warning", msg, "", f"set {key}.raw = true"))
    out_shape = model.outputs[0]["shape"][1:]
    if task.name == "classification" and all(isinstance(d, int) for d in out_shape):
        check_class_labels(test, "data.test", int(np.prod(out_shape)))
    return cal, test


def _as_data_view(raw: RawData, model_shape: tuple[int, ...]) -> RawData:
    """Model-ready arrays given in the model's C×H×W order, read as H×W×C like the rest."""
    if raw.arrays is None or tuple(raw.arrays.shape[1:]) != model_shape:
        return raw
    from dataclasses import replace  # noqa: PLC0415

    return replace(raw, arrays=from_model(raw.arrays, "nchw"))


def _preprocessing_given(cfg: JobConfig) -> list[str]:
    """The [preprocessing] keys whose values differ from the defaults."""
    from dataclasses import fields  # noqa: PLC0415

    return [f.name for f in fields(PreprocessConfig)
            if getattr(cfg.preprocessing, f.name) != getattr(PreprocessConfig(), f.name)]


#: Test items the ONNX export is checked on against the framework's own outputs.
EXPORT_CHECK_ITEMS = 256


def check_export(ctx: JobContext, backend: Backend, test: Dataset, emit: Sink) -> None:
    """A backend that exports from a framework (PyTorch → ONNX) checks the export on test
    items: its outputs must match the framework's within float tolerance, or the run stops
    (stage ``check_export``). Other backends convert from the file itself: nothing to do."""
    check = getattr(backend, "check_export", None)
    if check is None:
        return
    n = min(len(test), EXPORT_CHECK_ITEMS)
    with timed(ctx, emit, "check_export", total=n) as t:
        diff = check(to_model(test.x[:n], ctx.layout))
        ctx.model["export_check"] = {"items": n, "max_rel_diff": float(f"{diff:.3g}")}
        t.summary = dict(ctx.model["export_check"])


def save_calibration(ctx: JobContext, cal: Dataset) -> Path:
    """The calibration array as the backend reads it; returns its path."""
    calib_path = ctx.work / "calibration.npy"
    np.save(calib_path, to_model(cal.x, ctx.layout))
    return calib_path


def diagnose(ctx: JobContext, cal: Dataset, test: Dataset, emit: Sink) -> None:
    """Calibration diagnostics on the data as the model will see it (numpy, no TF)."""
    from ..diagnostics import diagnose as run_diagnostics  # noqa: PLC0415

    with timed(ctx, emit, "diagnose") as t:
        for d in run_diagnostics(cal.x, test.x, requested=ctx.cfg.calibration.samples):
            ctx.findings.append(d.to_dict())
            emit(Finding(d.code, d.severity, d.message, d.evidence, d.fix))
        t.summary = {"findings": len(ctx.findings)}


def convert(ctx: JobContext, backend: Backend, stage: str, calib_path: Path, emit: Sink) -> None:
    """One stage's model file (stage ``convert_<stage>``)."""
    q = ctx.cfg.quantization
    out = ctx.stage_file(stage)
    total = ctx.data["calibration"]["used"] if stage == "int8" else None
    with timed(ctx, emit, f"convert_{stage}", f"Converting to {stage.upper()}", total) as t:
        res = backend.convert(stage, str(out), str(calib_path) if stage == "int8" else None,
                              q.granularity, q.io_type, q.allow_float, stage=f"convert_{stage}")
        ctx.stages[stage] = {"path": out.name, "size_bytes": res.size_bytes}
        if res.via is not None:
            ctx.stages[stage]["via"] = res.via
        if res.quantization is not None:
            ctx.stages[stage]["quantization"] = res.quantization
        ctx.cached.extend(f"convert_{stage}.{part}" for part in res.reused)
        t.summary = {"size_bytes": res.size_bytes}


def layer_errors(ctx: JobContext, backend: Backend, calib_path: Path, emit: Sink) -> None:
    """Per-layer error in both modes, and mixed models for the most suspect layers
    (stage ``layers``)."""
    a = ctx.cfg.analysis
    if a.debug_samples == 0 or "int8" not in ctx.stages:
        return
    if ctx.cfg.quantization.method == "qat":
        # QAT's ranges come from training, not from a calibration this analysis could redo.
        emit(Log("per-layer error analysis covers PTQ models; skipped for QAT", "info"))
        return
    n = min(a.debug_samples, ctx.data["calibration"]["used"])
    q = ctx.cfg.quantization
    total = ctx.data["calibration"]["used"] + 2 * n  # one calibration pass, two modes
    with timed(ctx, emit, "layers", f"Per-layer error, {n} items", total) as t:
        try:
            res = backend.analyze_layers(
                str(calib_path), str(ctx.stage_file("int8")),
                str(ctx.run.path / "sensitivity"), n, a.sensitivity_k, q.granularity,
                q.io_type, q.allow_float, stage="layers")
        except CancelledError:
            raise
        except EngineError as exc:
            # The analysis explains a result; it must not cost the user the result itself.
            emit(Log(f"per-layer error analysis failed: {exc}", "warning"))
            ctx.layer_analysis = {"error": exc.to_dict()}
            return
        ctx.layer_errors = res
        suspects = [name for name in res.ranking if res.errors[name]["suspect"]]
        ctx.layer_analysis = {
            "debug_samples": res.debug_samples,
            "modes": res.modes or {
                "layer": "each quantized op fed the same quantized input as a float copy "
                         "(TFLite QuantizationDebugger's NumericVerify): the error it adds",
                "model": "int8.tflite end to end against the float model, tensors matched "
                         "by name: the error accumulated up to each tensor",
            },
            "reproduced": res.reproduced,
            "suspects": suspects,
            "ranking": res.ranking,
        }
        t.summary = {"layers": len(res.errors), "suspects": len(suspects)}


def evaluate(ctx: JobContext, stage: str, test: Dataset, task: Task,
             reference: list[np.ndarray] | None, emit: Sink,
             cancel: CancelToken) -> list[np.ndarray]:
    """Run one stage's model on the test set with its backend's runner (LiteRT for .tflite,
    onnxruntime for .onnx) (stage ``evaluate_<stage>``)."""
    path = ctx.stage_file(stage)
    run = stage_files(ctx.model_file.format).run
    with timed(ctx, emit, f"evaluate_{stage}", f"Evaluating {stage.upper()}", len(test)) as t:
        res = run(str(path), to_model(test.x, ctx.layout), workers=ctx.cfg.evaluation.workers,
                        stage=f"evaluate_{stage}", sink=emit, cancel=cancel,
                        log_path=str(ctx.run.log_path))
        outs = model_order(ctx, res, str(path))
        metrics: dict[str, Any] = {}
        if task.score is not None:
            metrics.update(task.score(outs, test.y, ctx.cfg.evaluation))
        ref = reference if reference is not None else outs
        ev = ctx.cfg.evaluation
        specs = output_specs(output_names(ctx, len(outs)), ref, task_outputs=task.outputs,
                             task_classes=task.class_scores, class_outputs=ev.class_outputs,
                             judged=ev.outputs)
        metrics["outputs"] = score_outputs(outs, ref, specs)
        ctx.stages[stage]["metrics"] = metrics
        ctx.stages[stage]["items_per_s"] = round(res.items_per_s, 1)
        emit(StageMetrics(stage, metrics, ctx.stages[stage]["size_bytes"]))
        t.summary = {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}
    return outs


def output_names(ctx: JobContext, n: int) -> list[str]:
    """The model's output names, in its own order (output_i when the load did not say)."""
    outs = ctx.model.get("outputs") or []
    if len(outs) == n:
        return [str(o.get("name") or f"output_{i}") for i, o in enumerate(outs)]
    return [f"output_{i}" for i in range(n)]


def model_order(ctx: JobContext, res: Any, path: str) -> list[np.ndarray]:
    """A .tflite's outputs in the model's order, matched by name and shape."""
    expected = ctx.model.get("outputs") or []
    if not expected or not res.names:
        return list(res.outputs)
    order = match_outputs(expected, list(res.names), list(res.shapes), path)
    return [res.outputs[i] for i in order]


def analyze_npu(ctx: JobContext, emit: Sink) -> None:
    """Placement, memory and time on the target for the INT8 stage (and FP32 for contrast)
    (stage ``analyze``)."""
    if "int8" not in ctx.stages:
        return
    from ..npu import analyze, headline, headline_markdown, stedgeai_commands  # noqa: PLC0415
    from ..npu.driver import read_any  # noqa: PLC0415

    with timed(ctx, emit, "analyze"):
        int8 = ctx.stage_file("int8")
        try:
            model = read_any(int8)  # the INT8 model parsed once, for all that follows
            a = analyze(model, ctx.target)
            ctx.npu = a.to_dict()
            ctx.stedgeai = stedgeai_commands(str(int8), model)
            md = ""
            if "fp32" in ctx.stages:
                ctx.headline = headline(ctx.stage_file("fp32"), a, ctx.target)
                md = headline_markdown(ctx.headline) + "\n\n"
            ctx.npu_markdown = md + a.to_markdown(commands=ctx.stedgeai)
        except EngineError as exc:
            emit(Log(f"NPU analysis failed: {exc}", "warning"))
            ctx.npu = {"error": exc.to_dict()}


def judgements(ctx: JobContext, task: Task, stage: str) -> list[Judgement]:
    """Each output of a stage against FP32, by the rule its kind and the task give it."""
    m = (ctx.stages.get(stage) or {}).get("metrics") or {}
    base = (ctx.stages.get("fp32") or {}).get("metrics") or {}
    ev = ctx.cfg.evaluation
    tf, ts = base.get(task.primary), m.get(task.primary)
    return [judge_output(spec(i, o["name"], o["kind"], task.outputs, ev.outputs), o, ev.profile,
                         task_metric=task.primary,
                         task_fp32=float(tf) if isinstance(tf, int | float) else None,
                         task_stage=float(ts) if isinstance(ts, int | float) else None)
            for i, o in enumerate(m.get("outputs") or [])]


def stage_drops(ctx: JobContext, task: Task) -> dict[str, float]:
    """Each stage's drop against FP32 in points on the worst judged output that is judged
    in points (the task metric, argmax agreement), so FP16's loss shows beside INT8's;
    written into ``ctx.stages`` and returned. Outputs judged in dB have no drop."""
    drops: dict[str, float] = {}
    for name, stage in ctx.stages.items():
        js = [j for j in judgements(ctx, task, name)
              if j.judged and j.unit == "points" and j.value is not None]
        if js:
            stage["drop"] = drops[name] = max(js, key=lambda j: j.used).value  # type: ignore[assignment]
    return drops


def layers_table(ctx: JobContext) -> None:
    """report.json["layers"] and layers.csv: placement, error and sensitivity per layer."""
    from ..layer_names import model_layer_names  # noqa: PLC0415
    from ..layers import layers_csv, merge_layers  # noqa: PLC0415

    npu = ctx.npu or {}
    errors = ctx.layer_errors.errors if ctx.layer_errors else {}
    # The names the sensitivity entries got (same inputs), so one op reads alike everywhere.
    names = model_layer_names(npu.get("layers") or (), errors,
                              ctx.layer_errors.candidates if ctx.layer_errors else ())
    if npu.get("layers"):
        rows = merge_layers(npu["layers"], errors, ctx.sensitivity or (), names)
    elif errors:
        rows = merge_layers([{"name": k} for k in errors], errors, ctx.sensitivity or (), names)
    else:
        return
    ctx.layers = rows
    ctx.run.write_text("layers.csv", layers_csv(rows))


def judge_int8(ctx: JobContext, task: Task,
               outputs: dict[str, list[np.ndarray]] | None = None,
               test: Dataset | None = None) -> Verdict | None:
    """The verdict on INT8 against FP32, on every judged output, when INT8 was evaluated;
    with the stages' ``outputs`` each judgement gets its interval (engine.uncertainty) and
    the per-item vectors go to ``items.npz``."""
    if "int8" not in ctx.stages or "metrics" not in ctx.stages["int8"]:
        return None
    from ..diagnostics import image_shaped  # noqa: PLC0415
    from ..uncertainty import (  # noqa: PLC0415
        ITEMS,
        inputs_digest,
        item_vectors,
        save_items,
        with_intervals,
    )

    js = judgements(ctx, task, "int8")
    fp32, int8 = (outputs or {}).get("fp32"), (outputs or {}).get("int8")
    if fp32 is not None and int8 is not None and len(fp32) == len(int8) == len(js):
        vec = item_vectors(js, fp32, int8, task, test.y if test is not None else None,
                           ctx.cfg.evaluation)
        js = with_intervals(js, fp32, int8, vec)
        if test is not None:
            vec["test_digest"] = inputs_digest(test.x)  # pairs runs only on the same items
        save_items(ctx.run.path / ITEMS, vec)

    cpu_ops = ((ctx.npu or {}).get("summary") or {}).get("ops_cpu")
    shape = (1, *data_view(tuple(ctx.model["inputs"][0]["shape"][1:]), ctx.layout)) \
        if ctx.model.get("inputs") else ()
    packed = [str(o.get("name")) for o in ctx.model.get("outputs") or []
              if (o.get("shape") or [1])[-1] != 1 and len(o.get("shape") or []) > 1]
    return judge_outputs(js, ctx.cfg.evaluation.profile,
                         ctx.cfg.quantization.method, cpu_ops,
                         granularity=ctx.cfg.quantization.granularity,
                         images=image_shaped(shape), packed=packed)
