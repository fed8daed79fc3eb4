"""One job, start to finish: the orchestrator every front-end calls.

load data → load and export the model (TF child) → preprocess → calibrate and convert
FP32/FP16/INT8 (TF child) → evaluate each stage (LiteRT, every core) → place on the NPU →
verdict → report. Each step is a plain function; this module only runs them in order,
times them, and makes sure a failed or cancelled run says so and keeps its log.
"""

from __future__ import annotations

import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomlkit

from . import __version__
from .cancel import CancelToken
from .config import JobConfig, replace
from .data import Dataset, RawData, load_source, prepare, select_calibration
from .errors import CancelledError, ConversionError, EngineError
from .evaluate import run_model
from .events import (
    Log,
    ModelInfo,
    RunFailed,
    RunFinished,
    RunStarted,
    Sink,
    StageFinished,
    StageMetrics,
    StageStarted,
    ThrottledSink,
    null_sink,
)
from .metrics import agreement
from .modelfile import ModelFile, inspect_model_file
from .preprocess import PreprocessSpec
from .report import render_markdown
from .rundir import EventLog, RunDir
from .tasks import Task, get_task
from .verdict import Verdict, judge, primary_value

REPORT_SCHEMA = "artq.report/1"
RECURRENT_LAYERS = {"LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN", "ConvLSTM2D"}


@dataclass
class JobResult:
    run_dir: Path
    report: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.report.get("status"))

    @property
    def verdict(self) -> dict[str, Any]:
        return self.report.get("verdict") or {}


@dataclass
class _State:
    """What the job has produced so far; turned into report.json whatever happens."""

    cfg: JobConfig
    run: RunDir
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    verdict: Verdict | None = None
    resume: bool = False


def preflight(cfg: JobConfig) -> ModelFile:
    """Checks that need no work done yet, so a typo never leaves a run folder behind."""
    mf = inspect_model_file(cfg.model.path)
    for split in ("calibration", "test"):
        src = getattr(cfg.data, split)
        if src.kind == "synthetic":
            from .samples import generator  # noqa: PLC0415

            generator(src.generator)
        elif not Path(src.path).exists():
            from .errors import InputFileError  # noqa: PLC0415

            raise InputFileError(src.path, "not found", f"set data.{split}.path to existing data")
    return mf


def run_job(
    cfg: JobConfig,
    sink: Sink = null_sink,
    cancel: CancelToken | None = None,
    resume: str | Path | None = None,
) -> JobResult:
    """Run a job; returns its result, or raises the :class:`EngineError` that stopped it.

    Either way the run folder is complete and says what happened. Errors raised here carry
    ``run_dir`` when a folder was made. ``resume`` continues a QAT run in its own folder
    from its last epoch checkpoint.
    """
    cancel = cancel or CancelToken()
    mf = preflight(cfg)
    ptq_ref: dict[str, Any] | None = None
    if cfg.quantization.method == "qat":
        # The comparison run comes first, as a run of its own, so each run's events stay its own.
        ptq_ref = find_ptq_run(cfg)
        if ptq_ref is None and cfg.quantization.qat.compare_ptq and resume is None:
            ptq_cfg = replace(cfg, {"quantization.method": "ptq", "name": f"{cfg.name}-ptq"})
            ptq_ref = run_job(ptq_cfg, sink, cancel).report
    if resume is not None:
        run = RunDir(Path(resume))
    else:
        run = RunDir.create(cfg.output.runs_dir, cfg.name)
        run.write_text("config.toml", tomlkit.dumps(cfg.to_dict()))
    log = EventLog(run.events_path)
    emit: Sink = ThrottledSink(_tee(sink, log))
    st = _State(cfg, run, resume=resume is not None)
    if ptq_ref is not None:
        st.extra["ptq_ref"] = ptq_ref
    emit(RunStarted(str(run.path), cfg.name, list(cfg.quantization.stages)))
    try:
        _run(st, mf, emit, cancel)
        status = "ok"
        report = _report(st, status)
        run.write_text("report.md", render_markdown(report, st.extra.get("npu_markdown", "")))
        run.write_json("report.json", report)
        emit(RunFinished(str(run.path), status, str(run.report_path), report.get("verdict") or {}))
        return JobResult(run.path, report)
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, CancelledError | KeyboardInterrupt) else "failed"
        if isinstance(exc, KeyboardInterrupt):
            exc = CancelledError()
        err = exc if isinstance(exc, EngineError) else _internal(exc, run)
        report = _report(st, status, err)
        run.write_text("report.md", render_markdown(report, st.extra.get("npu_markdown", "")))
        run.write_json("report.json", report)
        emit(RunFailed(str(run.path), status, type(err).__name__, err.message, err.hint))
        err.run_dir = str(run.path)  # type: ignore[attr-defined]
        raise err from None
    finally:
        shutil.rmtree(run.path / ".work", ignore_errors=True)
        log.close()


def _internal(exc: BaseException, run: RunDir) -> EngineError:
    with open(run.log_path, "a", encoding="utf-8") as f:
        traceback.print_exception(exc, file=f)
    return EngineError(
        f"internal error: {type(exc).__name__}: {exc}",
        f"this is a bug in artq; the traceback is in {run.log_path}",
    )


def _tee(*sinks: Sink) -> Sink:
    def tee(event: Any) -> None:
        for s in sinks:
            s(event)

    return tee


class _Timer:
    def __init__(self, st: _State, emit: Sink, stage: str, label: str, total: int | None = None):
        self.st, self.emit, self.stage, self.label, self.total = st, emit, stage, label, total
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> _Timer:
        self.t0 = time.perf_counter()
        self.emit(StageStarted(self.stage, self.label, self.total))
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        secs = time.perf_counter() - self.t0
        self.st.timings[self.stage] = round(secs, 3)
        if exc_type is None:
            self.emit(StageFinished(self.stage, round(secs, 3), self.summary))


def _run(st: _State, mf: ModelFile, emit: Sink, cancel: CancelToken) -> None:
    cfg = st.cfg
    from .tfproc import TFProcess  # noqa: PLC0415 - a child process, TF stays out of here

    with _Timer(st, emit, "data", "Loading data"):
        cal_raw = load_source(cfg.data.calibration, "data.calibration", emit, cancel)
        test_raw = load_source(cfg.data.test, "data.test", emit, cancel)
        if cfg.evaluation.max_samples and len(test_raw) > cfg.evaluation.max_samples:
            test_raw = test_raw.subset(np.arange(cfg.evaluation.max_samples))
    cancel.check()
    task = get_task(cfg.evaluation.task)
    if task.needs_labels and test_raw.labels is None:
        from .errors import DataError  # noqa: PLC0415

        raise DataError(
            f"{test_raw.source}: the {task.name} task needs labels and the test data has none",
            "give labels (npz y array, class sub-folders), or set evaluation.task = \"generic\"",
        )

    qat = cfg.quantization.method == "qat"
    # tfmot needs Keras 2; the switch must be set before TF is imported, so only the QAT
    # job's own child gets it and the rest of the engine stays on Keras 3.
    env = {"TF_USE_LEGACY_KERAS": "1"} if qat else None
    tf = TFProcess(str(st.run.log_path), emit, cancel, env=env)
    try:
        with _Timer(st, emit, "load", "Loading and exporting the model (batch 1)") as t:
            info = tf.call(
                "load",
                "loading the model",
                path=mf.path,
                format=mf.format,
                input_shape=list(cfg.model.input_shape) if cfg.model.input_shape else None,
                export_dir=str(st.run.work / "saved_model"),
            )
            st.model = {"path": mf.path, "format": mf.format, **info}
            emit(ModelInfo(info["inputs"], info["outputs"], info["params"], mf.path))
            t.summary = {"params": info["params"]}
        input_shape = tuple(info["inputs"][0]["shape"][1:])
        cal, test = _prepare_data(st, cal_raw, test_raw, input_shape, emit)
        calib_path = st.run.work / "calibration.npy"
        np.save(calib_path, cal.x)

        for stage in cfg.quantization.stages:
            cancel.check()
            if qat and stage == "int8":
                _qat_stage(st, tf, mf, calib_path, input_shape, emit, cancel)
            else:
                _convert_stage(st, tf, stage, calib_path, emit, set(info.get("layers", [])))
    finally:
        tf.close()

    reference: list[np.ndarray] | None = None
    for stage in cfg.quantization.stages:
        cancel.check()
        outputs = _evaluate_stage(st, stage, test, task, reference, emit, cancel)
        if stage == "fp32":
            reference = outputs

    _analyze_npu(st, emit)
    if "int8" in st.stages and "metrics" in st.stages["int8"]:
        fp32 = primary_value(st.stages["fp32"]["metrics"], task.primary)
        int8 = primary_value(st.stages["int8"]["metrics"], task.primary)
        metric = task.primary if task.primary != "agreement" else "agreement"
        st.verdict = judge(metric, fp32 if fp32 is not None else 1.0, int8,
                           cfg.evaluation.profile, cfg.quantization.method)
    if "ptq_ref" in st.extra:
        st.extra["comparison"] = {"ptq": ptq_summary(st.extra["ptq_ref"])}


def _qat_stage(
    st: _State, tf: Any, mf: ModelFile, calib_path: Path, input_shape: tuple[int, ...],
    emit: Sink, cancel: CancelToken,
) -> None:
    """Fine-tune with fake quantization in the TF child, then convert to INT8 there."""
    cfg = st.cfg
    from .labels import save_labels  # noqa: PLC0415

    spec = PreprocessSpec.resolve(cfg.preprocessing, input_shape) if st.preprocessing else None
    splits: dict[str, dict[str, str] | None] = {}
    with _Timer(st, emit, "qat_data", "Loading training data"):
        for split in ("train", "validation"):
            src = getattr(cfg.data, split)
            if src is None:
                splits[split] = None
                continue
            raw = load_source(src, f"data.{split}", emit, cancel)
            if spec is None and raw.images is not None:
                spec = PreprocessSpec.resolve(cfg.preprocessing, input_shape)
            ds = prepare(raw, spec, input_shape, f"data.{split}")
            x_path, y_path = st.run.work / f"{split}_x.npy", st.run.work / f"{split}_labels.npz"
            np.save(x_path, ds.x)
            save_labels(y_path, ds.y)
            splits[split] = {"x": str(x_path), "labels": str(y_path)}
            st.data[split] = {"source": raw.source, "items": len(ds)}
    out = st.run.path / "int8.tflite"
    t0 = time.perf_counter()
    res = tf.call(
        "call",
        "fine-tuning with QAT",
        target="engine.qat:qat_train",
        kwargs={
            "model_path": mf.path,
            "fmt": mf.format,
            "task": cfg.evaluation.task,
            "evaluation": cfg.to_dict()["evaluation"],
            "qat": cfg.to_dict()["quantization"]["qat"],
            "train": splits["train"],
            "validation": splits["validation"],
            "calibration": str(calib_path),
            "ckpt_dir": str(st.run.path / "checkpoints"),
            "resume": st.resume,
            "export_dir": str(st.run.work / "qat_saved_model"),
            "out_path": str(out),
            "io_type": cfg.quantization.io_type,
        },
    )
    st.timings["qat"] = round(time.perf_counter() - t0, 3)
    st.stages["int8"] = {"path": out.name, "size_bytes": res.pop("size_bytes")}
    st.extra["qat"] = res


def _same_job(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("model", "data", "preprocessing", "calibration")
    if any(a.get(k) != b.get(k) for k in keys):
        return False
    qa, qb = a.get("quantization", {}), b.get("quantization", {})
    ea, eb = a.get("evaluation", {}), b.get("evaluation", {})
    return all(qa.get(k) == qb.get(k) for k in ("granularity", "io_type")) and all(
        ea.get(k) == eb.get(k) for k in ("task", "max_samples", "ctc", "east")
    )


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> JobConfig:
    """The config of a QAT run to resume, checked: it must have an epoch checkpoint."""
    from .config import load_config  # noqa: PLC0415
    from .errors import ConfigError  # noqa: PLC0415
    from .rundir import read_report  # noqa: PLC0415

    run = Path(run_dir)
    if not (run / "config.toml").is_file():
        raise ConfigError("is not a run folder (no config.toml)", "give a folder under runs/",
                          file=str(run))
    cfg = load_config(run / "config.toml", overrides)
    if cfg.quantization.method != "qat":
        raise ConfigError("only QAT runs can be resumed; this one is PTQ",
                          "run the config again instead", file=str(run))
    rep = read_report(run)
    if rep and rep.get("status") == "ok":
        raise ConfigError("finished already (status ok); there is nothing to resume",
                          file=str(run))
    if not (run / "checkpoints" / "state.json").is_file():
        raise ConfigError("has no QAT checkpoint yet (it stopped before its first epoch ended)",
                          "run the config again instead", file=str(run))
    return cfg


def find_ptq_run(cfg: JobConfig) -> dict[str, Any] | None:
    """The newest finished PTQ run of the same model, data and calibration, if any."""
    from .rundir import list_runs, read_report  # noqa: PLC0415

    want = cfg.to_dict()
    want_data = {k: v for k, v in want["data"].items() if k in ("calibration", "test")}
    for run in list_runs(cfg.output.runs_dir):
        rep = read_report(run)
        if not rep or rep.get("status") != "ok":
            continue
        have = rep.get("config") or {}
        if (have.get("quantization") or {}).get("method") != "ptq":
            continue
        have_data = {k: v for k, v in (have.get("data") or {}).items() if k in ("calibration", "test")}
        if have_data == want_data and _same_job({**have, "data": None}, {**want, "data": None}):
            return rep
    return None


def ptq_summary(rep: dict[str, Any]) -> dict[str, Any]:
    """What a QAT report keeps of its PTQ baseline (report.json ``comparison.ptq``)."""
    int8 = (rep.get("stages") or {}).get("int8") or {}
    npu = (rep.get("npu") or {}).get("summary") or {}
    return {
        "run_dir": rep.get("run_dir"),
        "drop": (rep.get("verdict") or {}).get("drop"),
        "metrics": int8.get("metrics"),
        "size_bytes": int8.get("size_bytes"),
        "latency_ms": npu.get("latency_ms"),
    }


def _prepare_data(
    st: _State, cal_raw: RawData, test_raw: RawData, input_shape: tuple[int, ...], emit: Sink
) -> tuple[Dataset, Dataset]:
    cfg = st.cfg
    spec = None
    if cal_raw.images is not None or test_raw.images is not None:
        spec = PreprocessSpec.resolve(cfg.preprocessing, input_shape)
        st.preprocessing = spec.to_dict()
    with _Timer(st, emit, "preprocess", "Preprocessing"):
        idx = select_calibration(len(cal_raw), cfg.calibration.samples, cfg.calibration.seed)
        cal = prepare(cal_raw.subset(idx), spec, input_shape, "data.calibration")
        test = prepare(test_raw, spec, input_shape, "data.test")
    if cfg.calibration.samples > len(cal_raw):
        emit(Log(f"calibration.samples = {cfg.calibration.samples} but only {len(cal_raw)} "
                 f"calibration items exist; using all {len(cal_raw)}", "warning"))
    st.data = {
        "calibration": {"source": cal_raw.source, "available": len(cal_raw), "used": len(cal),
                        "seed": cfg.calibration.seed},
        "test": {"source": test_raw.source, "items": len(test)},
    }
    if test_raw.class_names:
        st.data["test"]["classes"] = list(test_raw.class_names)
    return cal, test


def _convert_stage(
    st: _State, tf: Any, stage: str, calib_path: Path, emit: Sink, layers: set[str]
) -> None:
    q = st.cfg.quantization
    out = st.run.path / f"{stage}.tflite"
    total = st.data["calibration"]["used"] if stage == "int8" else None
    with _Timer(st, emit, f"convert_{stage}", f"Converting to {stage.upper()}", total) as t:
        try:
            res = tf.call(
                "convert",
                f"converting to {stage.upper()}",
                stage=stage,
                out_path=str(out),
                calibration=str(calib_path) if stage == "int8" else None,
                granularity=q.granularity,
                io_type=q.io_type,
                allow_float=q.allow_float,
            )
        except ConversionError as exc:
            recurrent = sorted(layers & RECURRENT_LAYERS)
            if stage == "int8" and recurrent and "crashed" in exc.message:
                raise ConversionError(
                    f"TensorFlow's converter crashed converting the model's {', '.join(recurrent)} "
                    "layer(s) to full INT8 (a known TF 2.21 crash with Keras 3 recurrent layers)",
                    "set quantization.allow_float = true to keep them in float on the CPU, or "
                    "replace the recurrent head with convolutions (see the crnn_conv sample)",
                ) from None
            raise
        st.stages[stage] = {"path": out.name, "size_bytes": res["size_bytes"]}
        t.summary = {"size_bytes": res["size_bytes"]}


def _evaluate_stage(
    st: _State,
    stage: str,
    test: Dataset,
    task: Task,
    reference: list[np.ndarray] | None,
    emit: Sink,
    cancel: CancelToken,
) -> list[np.ndarray]:
    path = st.run.path / f"{stage}.tflite"
    with _Timer(st, emit, f"evaluate_{stage}", f"Evaluating {stage.upper()}", len(test)) as t:
        res = run_model(str(path), test.x, workers=st.cfg.evaluation.workers,
                        stage=f"evaluate_{stage}", sink=emit, cancel=cancel,
                        log_path=str(st.run.log_path))
        metrics: dict[str, Any] = {}
        if task.score is not None:
            metrics.update(task.score(res.outputs, test.y, st.cfg.evaluation))
        ref = reference if reference is not None else res.outputs
        per_output = [agreement(o, r) for o, r in zip(res.outputs, ref, strict=True)]
        metrics["agreement"] = per_output[0]
        if len(per_output) > 1:
            metrics["agreement_outputs"] = per_output
        st.stages[stage]["metrics"] = metrics
        st.stages[stage]["items_per_s"] = round(res.items_per_s, 1)
        emit(StageMetrics(stage, metrics, st.stages[stage]["size_bytes"]))
        t.summary = {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}
    return res.outputs


def _analyze_npu(st: _State, emit: Sink) -> None:
    """Placement, memory and time on the target for the INT8 stage (and FP32 for contrast)."""
    if "int8" not in st.stages:
        return
    try:
        from .npu import analyze, headline, headline_markdown, stedgeai_commands  # noqa: PLC0415
    except ImportError:
        return
    with _Timer(st, emit, "analyze", "Placing layers on the Neural-ART NPU"):
        int8 = st.run.path / "int8.tflite"
        try:
            a = analyze(str(int8), target=st.cfg.analysis.target)
            st.extra["npu"] = a.to_dict()
            st.extra["stedgeai"] = stedgeai_commands(str(int8))
            md = ""
            if "fp32" in st.stages:
                st.extra["headline"] = headline(
                    str(st.run.path / "fp32.tflite"), str(int8), st.cfg.analysis.target
                )
                md = headline_markdown(st.extra["headline"]) + "\n\n"
            st.extra["npu_markdown"] = md + a.to_markdown(commands=st.extra["stedgeai"])
        except EngineError as exc:
            emit(Log(f"NPU analysis failed: {exc}", "warning"))
            st.extra["npu"] = {"error": exc.to_dict()}


def _report(st: _State, status: str, err: EngineError | None = None) -> dict[str, Any]:
    st.timings["total"] = round(time.perf_counter() - st.started, 3)
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "artq_version": __version__,
        "status": status,
        "name": st.cfg.name,
        "run_dir": str(st.run.path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": st.cfg.to_dict(),
        "config_source": st.cfg.source,
        "model": st.model,
        "data": st.data,
        "preprocessing": st.preprocessing,
        "stages": st.stages,
        "verdict": st.verdict.to_dict() if st.verdict else None,
        "findings": st.findings,
        "timings": {f"{k}_s": v for k, v in st.timings.items()},
    }
    for key in ("npu", "headline", "stedgeai", "layers", "sensitivity", "comparison", "qat"):
        if key in st.extra:
            report[key] = st.extra[key]
    if err is not None:
        report["error"] = err.to_dict()
    return report
