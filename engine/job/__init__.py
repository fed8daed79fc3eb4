"""One job, start to finish: the orchestrator every front-end calls.

:func:`run_job` opens the run folder; :func:`_pipeline` is the whole stage list, in the
order it runs (ids from :data:`engine.events.STAGES`). The model's framework is reached
only through a :class:`engine.backends.Backend` (TensorFlow's runs in a child process,
ONNX's in-process) and its stage files' runner (LiteRT for ``.tflite``, onnxruntime for
``.onnx``); everything else (data, metrics, NPU analysis) is numpy. A failed or cancelled run
says so in its report.json and keeps its log.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tomlkit

from ..backends import BackendFactory, BackendOptions, open_backend
from ..cancel import CancelToken
from ..config import JobConfig, replace
from ..data import Dataset
from ..errors import CancelledError, EngineError
from ..events import RunFailed, RunFinished, RunStarted, Sink, ThrottledSink, null_sink
from ..modelfile import ModelFile
from ..preflight import checked, preflight
from ..report import Report, render_markdown
from ..rundir import EventLog, RunDir
from ..tasks import Task
from . import lanes, stages
from .bias import bias_correction, correct_mixed
from .context import REPORT_SCHEMA, JobContext, build_report
from .draws import convert_draws, score_draws_on_test
from .equalize import equalize
from .qat import find_ptq_run, qat_stage, resume_config
from .sensitivity import SENSITIVITY_MAX_ITEMS, sensitivity
from .shared import shared_convert, shared_evaluation

if TYPE_CHECKING:
    from ..npu.targets import Target

__all__ = ["REPORT_SCHEMA", "SENSITIVITY_MAX_ITEMS", "JobResult", "find_ptq_run", "preflight",
           "resume_config", "run_job"]


@dataclass
class JobResult:
    run_dir: Path
    report: Report

    @property
    def status(self) -> str:
        return self.report.status


def _pipeline(ctx: JobContext, emit: Sink, cancel: CancelToken, backend: BackendFactory) -> None:
    """Every stage of a job, in the order it runs (FP32/FP16 in a lane of their own beside
    INT8 when the backend allows: see :mod:`.lanes`)."""
    cfg = ctx.cfg
    # A framework process imports its framework first (TensorFlow: ~3.5 s). Generated data
    # cannot fail on a user's file, so it is rendered while that import runs; files are
    # read first, so a bad one is said before any framework starts.
    generated = all(getattr(cfg.data, s).kind == "synthetic" for s in ("calibration", "test"))
    if not generated:
        cal_raw, test_raw, task = stages.load_data(ctx, emit, cancel)            # data
    options = BackendOptions(
        ctx.run.log_path, ctx.work, emit, cancel,
        legacy_keras=cfg.quantization.method == "qat",
        custom_objects=cfg.model.custom_objects,
        calibration_method=cfg.calibration.method, percentile=float(cfg.calibration.percentile),
        weights=cfg.model.weights, cache=ctx.cache, model_key=ctx.model_key)
    be = backend(ctx.model_file.format, options)
    floats = lanes.wanted(ctx, be)
    lane: lanes.FloatLane | None = None
    outputs: dict[str, list[np.ndarray]] = {}
    try:
        if generated:
            cal_raw, test_raw, task = stages.load_data(ctx, emit, cancel)        # data
        if floats:  # after the data: a lane with a TensorFlow import of its own (no
            # spare, see engine.backends.prewarm) would take a core from the first one's
            lane = lanes.FloatLane(ctx, backend, options, floats, emit, cancel)
        model = stages.export_model(ctx, be, emit)                               # load
        if lane is not None:
            lane.start(model)                              # convert_fp32/fp16, evaluate_fp16
        cal, test = stages.prepare_data(ctx, cal_raw, test_raw, model, task, emit)  # preprocess
        stages.check_export(ctx, be, test, emit)                                 # check_export
        calib_path = stages.save_calibration(ctx, cal)
        if lane is not None:
            lane.evaluate_on(test, task)
        # With the framework in a process of its own, the diagnostics (numpy, here) run in a
        # thread while it converts: the conversions do not read them (MobileNet v2: 0.5 s).
        beside = getattr(be, "own_process", False)
        with ThreadPoolExecutor(1, thread_name_prefix="diagnose") as side:
            diagnosed = side.submit(stages.diagnose, ctx, cal, test, emit) if beside else None
            if diagnosed is None:
                stages.diagnose(ctx, cal, test, emit)                            # diagnose
            for stage in cfg.quantization.stages:
                cancel.check()
                if stage in floats:
                    continue
                if stage == "int8" and cfg.quantization.method == "qat":
                    qat_stage(ctx, be, model, calib_path, emit, cancel)  # qat_data, qat_train, convert_int8
                elif stage in ("fp32", "fp16"):
                    shared_convert(ctx, stage, lambda s=stage: stages.convert(     # convert_*
                        ctx, be, s, calib_path, emit), emit)
                elif ctx.draws is None:
                    stages.convert(ctx, be, stage, calib_path, emit)             # convert_int8
            if diagnosed is not None:
                diagnosed.result()
        cancel.check()
        q = cfg.quantization
        if lane is not None and "fp32" in floats and (
                ctx.draws is not None or q.equalize or q.bias_correction != "off"):
            # These measure INT8 against FP32's file. Without them nothing waits for it
            # before the evaluations: the per-layer error starts as soon as INT8 is
            # written (crnn_conv: 0.8 s sooner).
            lane.converted("fp32")
        if ctx.draws is not None:  # calibration.draws > 1: after FP32, the reference
            cal, calib_path = convert_draws(ctx, be, calib_path, emit, cancel)  # convert_int8, draws_heldout
        cancel.check()
        equalize(ctx, be, calib_path, cal, test, emit, cancel)                   # equalize
        bias_correction(ctx, cal, test, emit, cancel)                            # bias_correction
        # INT8 is final from here. With the framework in a process of its own, the stages are
        # evaluated in a thread of this one while it measures the per-layer error
        # (crnn_conv: 0.5 s each); in one process they would only take turns.
        with ThreadPoolExecutor(1, thread_name_prefix="evaluate") as pool:
            evaluated = pool.submit(_evaluate_stages, ctx, lane, test, task, outputs, emit,
                                    cancel) if beside else None
            stages.layer_errors(ctx, be, calib_path, emit)                       # layers
            correct_mixed(ctx, emit)  # the kept bias correction, into the mixed models too
            be.close()
            if evaluated is not None:
                evaluated.result()
            else:
                _evaluate_stages(ctx, lane, test, task, outputs, emit, cancel)   # evaluate_*
        score_draws_on_test(ctx, test, outputs, emit, cancel)                    # draws_test
        stages.analyze_npu(ctx, emit)                                            # analyze
        cancel.check()
        # Judged first: sensitivity scores mixed models on the output the verdict found worst.
        verdict = stages.judge_int8(ctx, task, outputs, test)
        sensitivity(ctx, test, task, outputs, verdict, emit, cancel)             # sensitivity
        if lane is not None:
            outputs.update(lane.join())
            lane = None
    finally:
        be.close()
        if lane is not None:  # stopped early: the second process must not go on converting
            lane.abort()
    # Stages in the configured order, however the lanes finished.
    ctx.stages = {s: ctx.stages[s] for s in cfg.quantization.stages if s in ctx.stages}
    stages.stage_drops(ctx, task)
    stages.layers_table(ctx)
    ctx.verdict = verdict
    if ctx.ptq_ref is not None:
        ctx.comparison = {"ptq": ctx.ptq_ref.ptq_summary().to_dict()}


def _evaluate_stages(ctx: JobContext, lane: lanes.FloatLane | None, test: Dataset, task: Task,
                     outputs: dict[str, list[np.ndarray]], emit: Sink,
                     cancel: CancelToken) -> None:
    """Each stage on the test set, in the configured order, into ``outputs``; FP16 is left
    to the float lane when it has one, and gets FP32's outputs as its reference."""
    for stage in ctx.cfg.quantization.stages:
        cancel.check()
        if lane is not None and stage in lane.evaluates:
            continue
        if lane is not None and stage in lane.floats:
            lane.converted(stage)  # its file, written by the lane

        def evaluate(s: str = stage) -> list[np.ndarray]:
            return stages.evaluate(ctx, s, test, task, outputs.get("fp32"), emit, cancel)

        outputs[stage] = shared_evaluation(ctx, stage, evaluate, emit) if stage in (
            "fp32", "fp16") else evaluate()
        if stage == "fp32" and lane is not None:
            lane.reference(outputs["fp32"])


def run_job(
    cfg: JobConfig,
    sink: Sink = null_sink,
    cancel: CancelToken | None = None,
    resume: str | Path | None = None,
    cache_dir: str | Path | None = None,
    backend: BackendFactory | None = None,
    preflighted: tuple[ModelFile, Target] | None = None,
) -> JobResult:
    """Run a job; returns its result, or raises the :class:`EngineError` that stopped it.

    Either way the run folder is complete and says what happened. Errors raised here carry
    ``run_dir`` when a folder was made. ``resume`` continues a QAT run in its own folder
    from its last epoch checkpoint. ``cache_dir`` shares synthetic data, the exported model
    and the FP32/FP16 stages with other runs using the same folder (``artq run`` and the
    TUI: the user's cache folder; ``artq sweep``: one of its own).
    ``backend`` opens the model's framework (default: :func:`engine.backends.open_backend`).
    ``preflighted``: what :func:`engine.preflight.checked` returned for ``cfg``, when the
    caller checked it before importing this package (a mistake answered sooner).
    """
    cancel = cancel or CancelToken()
    backend = backend or open_backend
    mf, target = preflighted or checked(cfg)
    ptq_ref: Report | None = None
    if cfg.quantization.method == "qat":
        # The comparison run comes first, as a run of its own, so each run's events stay its own.
        ptq_ref = find_ptq_run(cfg)
        if ptq_ref is None and cfg.quantization.qat.compare_ptq and resume is None:
            ptq_cfg = replace(cfg, {"quantization.method": "ptq", "name": f"{cfg.name}-ptq"})
            ptq_ref = run_job(ptq_cfg, sink, cancel, backend=backend).report
    if resume is not None:
        run = RunDir(Path(resume))
    else:
        run = RunDir.create(cfg.output.runs_dir, cfg.name)
        run.write_text("config.toml", tomlkit.dumps(cfg.to_dict()))
    log = EventLog(run.events_path)
    emit: Sink = ThrottledSink(_tee(sink, log))
    ctx = JobContext(cfg, run, mf, target, resume=resume is not None, ptq_ref=ptq_ref)
    if cache_dir is not None:
        from ..cache import StageCache, file_digest, key  # noqa: PLC0415

        ctx.cache = StageCache(cache_dir)
        if mf.format == "torch":  # a PyTorch model is its code, its callable and its weights
            code_file, _, fn = mf.path.rpartition(":")
            digests = [file_digest(code_file), fn] + ([file_digest(cfg.model.weights)]
                                                      if cfg.model.weights else [])
        else:
            digests = [file_digest(mf.path)]
        # The user's layer code shapes the export too: its file is part of the key.
        from ..custom_objects import is_code_path, split  # noqa: PLC0415

        co = cfg.model.custom_objects
        where = split(co)[0]
        code = [co, file_digest(where) if is_code_path(where) else ""] if co else []
        ctx.model_key = key(*digests, cfg.model.input_shape, *code)
    emit(RunStarted(str(run.path), cfg.name, list(cfg.quantization.stages)))
    try:
        _pipeline(ctx, emit, cancel, backend)
        report = _write_report(ctx, "ok")
        verdict = report.verdict.to_dict() if report.verdict else {}
        emit(RunFinished(str(run.path), "ok", str(run.report_path), verdict))
        return JobResult(run.path, report)
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, CancelledError | KeyboardInterrupt) else "failed"
        if isinstance(exc, KeyboardInterrupt):
            exc = CancelledError()
        err = exc if isinstance(exc, EngineError) else _internal(exc, run)
        _write_report(ctx, status, err)
        emit(RunFailed(str(run.path), status, type(err).__name__, err.message, err.hint))
        err.run_dir = str(run.path)  # type: ignore[attr-defined]
        raise err from None
    finally:
        shutil.rmtree(run.work, ignore_errors=True)
        log.close()
        if ctx.cache is not None:
            with contextlib.suppress(OSError):
                ctx.cache.trim()  # the bound holds after every run, least recently used first


def _write_report(ctx: JobContext, status: str, err: EngineError | None = None) -> Report:
    # Through the types, so what is written is what every reader reads back.
    report = Report.from_dict(build_report(ctx, status, err))
    ctx.run.write_text("report.md", render_markdown(report, ctx.npu_markdown))
    ctx.run.write_json("report.json", report.to_dict())
    return report


def _internal(exc: BaseException, run: RunDir) -> EngineError:
    with open(run.log_path, "a", encoding="utf-8") as f:
        traceback.print_exception(exc, file=f)
    return EngineError(
        f"internal error: {type(exc).__name__}: {exc}",
        f"this is a bug in artq; the traceback is in {run.log_path}",
    )


def _tee(*sinks: Sink) -> Sink:
    # One event at a time: the float lane emits from its own thread, and a UI's sink and
    # the event log must not interleave two events' lines.
    lock = threading.Lock()

    def tee(event: Any) -> None:
        with lock:
            for s in sinks:
                s(event)

    return tee
