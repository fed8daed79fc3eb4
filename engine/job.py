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
from .data import (
    Dataset,
    RawData,
    check_class_labels,
    check_same_classes,
    check_source,
    load_source,
    prepare,
    select_calibration,
    unscaled_images,
)
from .errors import CancelledError, ConversionError, EngineError, TargetError
from .evaluate import run_model
from .events import (
    Finding,
    Log,
    ModelInfo,
    Progress,
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
    #: Results shared with other runs of a sweep (see engine.cache); None outside sweeps.
    cache: Any = None
    model_key: str = ""


def preflight(cfg: JobConfig) -> ModelFile:
    """Checks that need no work done yet, so a typo never leaves a run folder behind."""
    mf = inspect_model_file(cfg.model.path)
    # QAT's data too: its PTQ baseline runs first, and would run for nothing.
    splits = ("calibration", "test", "train", "validation") if cfg.quantization.method == "qat" else (
        "calibration", "test")
    for split in splits:
        src = getattr(cfg.data, split)
        if src is None:
            continue
        if src.kind == "synthetic":
            from .samples import generator  # noqa: PLC0415

            generator(src.generator, f"data.{split}.generator")
        else:
            check_source(src, f"data.{split}")
    _check_target(cfg)
    return mf


def _check_target(cfg: JobConfig) -> None:
    """Load ``analysis.target`` now: a typo found only at the NPU stage left a run "ok"
    with its NPU results silently missing (the error buried in report.json)."""
    try:
        from .npu.targets import load_target  # noqa: PLC0415
    except ImportError:
        return  # _analyze_npu skips the analysis the same way
    try:
        load_target(cfg.analysis.target)
    except TargetError as exc:
        where = f"{cfg.source}: " if cfg.source else ""
        raise TargetError(f"{where}analysis.target: {exc.message}", exc.hint) from None


def run_job(
    cfg: JobConfig,
    sink: Sink = null_sink,
    cancel: CancelToken | None = None,
    resume: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> JobResult:
    """Run a job; returns its result, or raises the :class:`EngineError` that stopped it.

    Either way the run folder is complete and says what happened. Errors raised here carry
    ``run_dir`` when a folder was made. ``resume`` continues a QAT run in its own folder
    from its last epoch checkpoint. ``cache_dir`` shares synthetic data, the exported model
    and the FP32/FP16 stages with other runs using the same folder (``artq sweep``).
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
    if cache_dir is not None:
        from .cache import StageCache, file_digest, key  # noqa: PLC0415

        st.cache = StageCache(cache_dir)
        st.model_key = key(file_digest(mf.path), cfg.model.input_shape)
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
        cal_raw = _load_split(st, "calibration", emit, cancel)
        test_raw = _load_split(st, "test", emit, cancel)
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

    if task.name == "classification":
        check_same_classes(cal_raw, "data.calibration", test_raw, "data.test")

    qat = cfg.quantization.method == "qat"
    # tfmot needs Keras 2; the switch must be set before TF is imported, so only the QAT
    # job's own child gets it and the rest of the engine stays on Keras 3.
    env = {"TF_USE_LEGACY_KERAS": "1"} if qat else None
    tf = TFProcess(str(st.run.log_path), emit, cancel, env=env)
    try:
        with _Timer(st, emit, "load", "Exporting the model (batch 1)") as t:
            info = _load_model(st, tf, mf)
            st.model = {"path": mf.path, "format": mf.format, **info}
            emit(ModelInfo(info["inputs"], info["outputs"], info["params"], mf.path))
            t.summary = {"params": info["params"]}
        input_shape = tuple(info["inputs"][0]["shape"][1:])
        cal, test = _prepare_data(st, cal_raw, test_raw, input_shape, emit)
        out_shape = info["outputs"][0]["shape"][1:]
        if task.name == "classification" and all(isinstance(d, int) for d in out_shape):
            check_class_labels(test, "data.test", int(np.prod(out_shape)))
        _diagnose(st, cal, test, emit)
        calib_path = st.run.work / "calibration.npy"
        np.save(calib_path, cal.x)

        for stage in cfg.quantization.stages:
            cancel.check()
            if qat and stage == "int8":
                _qat_stage(st, tf, mf, calib_path, input_shape, emit, cancel)
            elif st.cache is not None and stage in ("fp32", "fp16"):
                _shared_stage(st, stage, lambda s=stage, t=tf: _convert_stage(
                    st, t, s, calib_path, emit, set(info.get("layers", []))), emit)
            else:
                try:
                    _convert_stage(st, tf, stage, calib_path, emit, set(info.get("layers", [])))
                except ConversionError as exc:
                    tf = _recurrent_retry(st, tf, mf, exc, stage, set(info.get("layers", [])),
                                          calib_path, emit, cancel)
        cancel.check()
        _layer_stage(st, tf, calib_path, emit)
    finally:
        tf.close()

    outputs: dict[str, list[np.ndarray]] = {}
    for stage in cfg.quantization.stages:
        cancel.check()
        if st.cache is not None and stage in ("fp32", "fp16"):
            outputs[stage] = _shared_evaluation(
                st, stage, lambda s=stage: _evaluate_stage(
                    st, s, test, task, outputs.get("fp32"), emit, cancel), emit)
        else:
            outputs[stage] = _evaluate_stage(st, stage, test, task, outputs.get("fp32"), emit,
                                             cancel)

    _analyze_npu(st, emit)
    cancel.check()
    _stage_drops(st, task)
    _sensitivity_stage(st, test, task, outputs, emit, cancel)
    _layers_table(st)
    if "int8" in st.stages and "metrics" in st.stages["int8"]:
        fp32 = primary_value(st.stages["fp32"]["metrics"], task.primary)
        int8 = primary_value(st.stages["int8"]["metrics"], task.primary)
        metric = task.primary if task.primary != "agreement" else "agreement"
        st.verdict = judge(metric, fp32 if fp32 is not None else 1.0, int8,
                           cfg.evaluation.profile, cfg.quantization.method)
    if "ptq_ref" in st.extra:
        st.extra["comparison"] = {"ptq": ptq_summary(st.extra["ptq_ref"])}


def _load_split(st: _State, split: str, emit: Sink, cancel: CancelToken) -> RawData:
    """One data split; a sweep renders synthetic data once for all its variants."""
    src = getattr(st.cfg.data, split)
    if st.cache is None or src.kind != "synthetic":
        return load_source(src, f"data.{split}", emit, cancel)
    from .cache import key, load_raw, save_raw  # noqa: PLC0415

    entry = st.cache.entry("data", key(st.cfg.to_dict()["data"][split]))
    with st.cache.building(entry) as tmp:
        if tmp is None:
            return load_raw(entry)
        raw = load_source(src, f"data.{split}", emit, cancel)
        save_raw(tmp, raw)
        return raw


def _load_model(st: _State, tf: Any, mf: ModelFile) -> dict[str, Any]:
    """Load and export with batch 1 in the TF child, or adopt a sweep's shared export."""
    cfg = st.cfg

    def export() -> dict[str, Any]:
        return tf.call(
            "load",
            "loading the model",
            path=mf.path,
            format=mf.format,
            input_shape=list(cfg.model.input_shape) if cfg.model.input_shape else None,
            export_dir=str(st.run.work / "saved_model"),
        )

    if st.cache is None:
        return export()
    from .cache import finish  # noqa: PLC0415

    entry = st.cache.entry("export", st.model_key)
    with st.cache.building(entry) as tmp:
        if tmp is None:
            tf.call("call", "using the shared exported model",
                    target="engine.cache:adopt_saved_model",
                    kwargs={"export_dir": str(entry.path("saved_model"))})
            return dict(entry.meta["info"])
        info = export()
        shutil.copytree(st.run.work / "saved_model", tmp / "saved_model")
        finish(tmp, {"info": info})
        return info


def _shared_stage(st: _State, stage: str, convert: Any, emit: Sink) -> None:
    """An FP32/FP16 conversion done once per sweep: it does not depend on any variant key."""
    from .cache import finish  # noqa: PLC0415

    entry = st.cache.entry(f"convert-{stage}", st.model_key)
    with st.cache.building(entry) as tmp:
        if tmp is None:
            with _Timer(st, emit, f"convert_{stage}", f"Converting to {stage.upper()} (shared)"):
                shutil.copyfile(entry.path(f"{stage}.tflite"), st.run.path / f"{stage}.tflite")
                st.stages[stage] = {**entry.meta["stage"], "shared": True}
            return
        convert()
        shutil.copyfile(st.run.path / f"{stage}.tflite", tmp / f"{stage}.tflite")
        finish(tmp, {"stage": st.stages[stage]})


def _shared_evaluation(st: _State, stage: str, evaluate: Any, emit: Sink) -> list[np.ndarray]:
    """FP32/FP16 outputs and metrics on the test set, computed once per sweep."""
    from .cache import finish, key, load_outputs, save_outputs  # noqa: PLC0415

    d = st.cfg.to_dict()
    ev = {k: v for k, v in d["evaluation"].items() if k not in ("profile", "workers")}
    entry = st.cache.entry(f"evaluate-{stage}", key(st.model_key, stage, d["data"]["test"],
                                                    d["preprocessing"], ev))
    with st.cache.building(entry) as tmp:
        if tmp is None:
            with _Timer(st, emit, f"evaluate_{stage}", f"Evaluating {stage.upper()} (shared)"):
                meta = entry.meta
                st.stages[stage]["metrics"] = meta["metrics"]
                st.stages[stage]["items_per_s"] = meta["items_per_s"]
                emit(StageMetrics(stage, meta["metrics"], st.stages[stage]["size_bytes"]))
                return load_outputs(entry)
        outputs = evaluate()
        save_outputs(tmp, outputs)
        finish(tmp, {"metrics": st.stages[stage]["metrics"],
                     "items_per_s": st.stages[stage]["items_per_s"]})
        return outputs


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
    st.data = {
        "calibration": {"source": cal_raw.source, "available": len(cal_raw), "used": len(cal),
                        "seed": cfg.calibration.seed},
        "test": {"source": test_raw.source, "items": len(test)},
    }
    if test_raw.class_names:
        st.data["test"]["classes"] = list(test_raw.class_names)
    for raw, key in ((cal_raw, "data.calibration"), (test_raw, "data.test")):
        if msg := unscaled_images(raw, key):
            # A model with its own Rescaling layer wants 0…255: a warning, not an error.
            st.findings.append({"code": "unscaled_arrays", "severity": "warning", "message": msg,
                                "evidence": "", "fix": f"set {key}.raw = true"})
            emit(Finding("unscaled_arrays", "warning", msg, "", f"set {key}.raw = true"))
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
        except ConversionError:
            raise
        st.stages[stage] = {"path": out.name, "size_bytes": res["size_bytes"]}
        t.summary = {"size_bytes": res["size_bytes"]}


def _recurrent_retry(
    st: _State, tf: Any, mf: ModelFile, exc: ConversionError, stage: str, layers: set[str],
    calib_path: Path, emit: Sink, cancel: CancelToken,
) -> Any:
    """TF 2.21's converter segfaults on a Keras 3 LSTM going to INT8 (measured, with or
    without float fallback). The same weights rebuilt in tf-keras convert cleanly, to
    TFLite's fused int8 LSTM kernels — so rebuild there and convert again. Returns the TF
    child now in use."""
    from .tfproc import TFProcess  # noqa: PLC0415

    recurrent = sorted(layers & RECURRENT_LAYERS)
    if not (stage == "int8" and recurrent and "crashed" in exc.message
            and mf.format in ("keras", "h5")):
        raise exc
    emit(Log(f"TensorFlow's converter crashed on the Keras 3 {', '.join(recurrent)} layer(s) "
             "(a known TF 2.21 crash); converting the same weights rebuilt in tf-keras instead",
             "warning"))
    tf.close()
    tf = TFProcess(str(st.run.log_path), emit, cancel)
    try:
        tf.call("load", "rebuilding the model in tf-keras", path=mf.path, format=mf.format,
                input_shape=list(st.cfg.model.input_shape) if st.cfg.model.input_shape else None,
                export_dir=str(st.run.work / "saved_model_tf_keras"), via_tf_keras=True)
        _convert_stage(st, tf, stage, calib_path, emit, layers)
    except ConversionError as again:
        tf.close()
        raise ConversionError(
            f"TensorFlow's converter crashed converting the model's {', '.join(recurrent)} "
            f"layer(s) to full INT8, directly and through tf-keras ({again.message})",
            "replace the recurrent head with convolutions (see the crnn_conv sample), "
            "or quantize the model with QAT",
        ) from None
    st.stages[stage]["via"] = "tf-keras rebuild"
    return tf


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


def _diagnose(st: _State, cal: Dataset, test: Dataset, emit: Sink) -> None:
    """Calibration diagnostics on the data as the model will see it (numpy, no TF)."""
    from .diagnostics import diagnose  # noqa: PLC0415

    with _Timer(st, emit, "diagnose", "Checking the calibration data") as t:
        for d in diagnose(cal.x, test.x, requested=st.cfg.calibration.samples):
            st.findings.append(d.to_dict())
            emit(Finding(d.code, d.severity, d.message, d.evidence, d.fix))
        t.summary = {"findings": len(st.findings)}


#: Sensitivity scores each mixed model on at most this many test items (the first ones),
#: against INT8 on the same items, so K layers cost K short evaluations.
SENSITIVITY_MAX_ITEMS = 1000


def _layer_stage(st: _State, tf: Any, calib_path: Path, emit: Sink) -> None:
    """Per-layer error in both modes, and mixed models for the most suspect layers (TF child)."""
    a = st.cfg.analysis
    if a.debug_samples == 0 or "int8" not in st.stages:
        return
    if st.cfg.quantization.method == "qat":
        # QAT's ranges come from training, not from a calibration this analysis could redo.
        emit(Log("per-layer error analysis covers PTQ models; skipped for QAT", "info"))
        return
    n = min(a.debug_samples, st.data["calibration"]["used"])
    q = st.cfg.quantization
    total = st.data["calibration"]["used"] + 2 * n  # one calibration pass, two modes
    with _Timer(st, emit, "layers", f"Per-layer error, {n} items", total) as t:
        try:
            res = tf.call(
                "call",
                "measuring the per-layer error",
                target="engine.layer_error:analyze_layers",
                kwargs={
                    "calibration": str(calib_path),
                    "int8_path": str(st.run.path / "int8.tflite"),
                    "out_dir": str(st.run.path / "sensitivity"),
                    "debug_samples": n,
                    "sensitivity_k": a.sensitivity_k,
                    "granularity": q.granularity,
                    "io_type": q.io_type,
                    "allow_float": q.allow_float,
                },
            )
        except CancelledError:
            raise
        except EngineError as exc:
            # The analysis explains a result; it must not cost the user the result itself.
            emit(Log(f"per-layer error analysis failed: {exc}", "warning"))
            st.extra["layer_analysis"] = {"error": exc.to_dict()}
            return
        st.extra["_layer_error"] = res
        suspects = [name for name in res["ranking"] if res["errors"][name]["suspect"]]
        st.extra["layer_analysis"] = {
            "debug_samples": res["debug_samples"],
            "modes": {
                "layer": "each quantized op fed the same quantized input as a float copy "
                         "(TFLite QuantizationDebugger's NumericVerify): the error it adds",
                "model": "int8.tflite end to end against the float model, tensors matched "
                         "by name: the error accumulated up to each tensor",
            },
            "reproduced": res["reproduced"],
            "suspects": suspects,
            "ranking": res["ranking"],
        }
        t.summary = {"layers": len(res["errors"]), "suspects": len(suspects)}


def _sensitivity_stage(
    st: _State, test: Dataset, task: Task, outputs: dict[str, list[np.ndarray]],
    emit: Sink, cancel: CancelToken,
) -> None:
    """Score each mixed model (one suspect kept in float) and cost it on the NPU."""
    res = st.extra.get("_layer_error")
    if not res or not res["candidates"] or "int8" not in outputs or "fp32" not in outputs:
        return
    from .layers import short_name  # noqa: PLC0415

    n = min(len(test), SENSITIVITY_MAX_ITEMS)
    idx = np.arange(n)
    y = None if test.y is None else (
        test.y[idx] if isinstance(test.y, np.ndarray) else [test.y[i] for i in idx])
    ref = [o[:n] for o in outputs["fp32"]]

    def score(outs: list[np.ndarray]) -> float | None:
        m: dict[str, Any] = {}
        if task.score is not None:
            m.update(task.score(outs, y, st.cfg.evaluation))
        m["agreement"] = agreement(outs[0], ref[0])
        return primary_value(m, task.primary)

    base = score([o[:n] for o in outputs["int8"]])
    base_ms = ((st.extra.get("npu") or {}).get("summary") or {}).get("latency_ms")
    # Nothing to regain when INT8 loses nothing: cost the mixed models, do not score them.
    drop = (st.stages.get("int8") or {}).get("drop")
    lossless = drop is not None and drop <= 0
    entries: list[dict[str, Any]] = []
    todo = [] if lossless else [c for c in res["candidates"] if "path" in c]
    done = [0]

    def progress(ev: Any) -> None:
        # run_model counts items per model; the bar counts items over all the models.
        if isinstance(ev, Progress):
            emit(Progress("sensitivity", done[0] * n + ev.done, n * len(todo)))

    label = (f"Float cost of {len(res['candidates'])} suspects"  # INT8 loses nothing: cost only
             if lossless else f"Trying {len(todo)} suspects in float")
    with _Timer(st, emit, "sensitivity", label, n * len(todo) or None) as t:
        for c in res["candidates"]:
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
                cost = _mixed_cost(st, c["path"], base_ms, emit)
                what = layer if group else f"`{layer}`"
                entry.update(regained_points=None, cost_ms=cost,
                             path=str(Path(c["path"]).relative_to(st.run.path)),
                             suggestion=f"not tried: INT8 loses nothing against FP32 "
                             f"({drop:+.2f} points); keeping {what} in float would cost "
                             + (f"{cost:+.2f} ms on the CPU" if cost is not None else "CPU time"))
                entries.append(entry)
                continue
            run = run_model(c["path"], test.x[:n], workers=st.cfg.evaluation.workers,
                            stage="sensitivity", sink=progress, cancel=cancel,
                            log_path=str(st.run.log_path))
            done[0] += 1
            value = score(run.outputs)
            regained = None if value is None else round((value - base) * 100.0, 4)
            cost = _mixed_cost(st, c["path"], base_ms, emit)
            entry.update(
                int8=base, value=value, regained_points=regained, cost_ms=cost,
                path=str(Path(c["path"]).relative_to(st.run.path)),
                suggestion=_suggest(layer, entry["float_ops"], regained, cost, bool(group)),
            )
            entries.append(entry)
        # Single layers best first; the all-suspects check (a diagnosis, not a recipe) last.
        entries.sort(key=lambda e: (bool(e.get("group")),
                                    -(e["regained_points"] if e["regained_points"] is not None
                                      else -1e9)))
        t.summary = {"best": entries[0]["suggestion"]} if entries else {}
    st.extra["sensitivity"] = entries


def _mixed_cost(st: _State, path: str, base_ms: float | None, emit: Sink) -> float | None:
    """Extra N6 time of a mixed model over the INT8 one (CPU layers and conversions), ms."""
    from .npu import analyze  # noqa: PLC0415

    try:
        mixed_ms = analyze(path, target=st.cfg.analysis.target).latency_ms
    except EngineError as exc:
        emit(Log(f"NPU analysis of the mixed model failed: {exc}", "warning"))
        return None
    return round(mixed_ms - base_ms, 4) if base_ms is not None else None


def _suggest(layer: str, float_ops: list[str], regained: float | None, cost: float | None,
             group: bool = False) -> str:
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


def _layers_table(st: _State) -> None:
    """report.json["layers"] and layers.csv: placement, error and sensitivity per layer."""
    from .layers import layers_csv, merge_layers  # noqa: PLC0415

    npu = st.extra.get("npu") or {}
    res = st.extra.get("_layer_error") or {}
    errors = res.get("errors") or {}
    if npu.get("layers"):
        rows = merge_layers(npu["layers"], errors, st.extra.get("sensitivity") or ())
    elif errors:
        rows = merge_layers([{"name": k} for k in errors], errors,
                            st.extra.get("sensitivity") or ())
    else:
        return
    st.extra["layers"] = rows
    st.run.write_text("layers.csv", layers_csv(rows))


def _stage_drops(st: _State, task: Task) -> None:
    """Each stage's drop against FP32 in points, so FP16's loss shows beside INT8's."""
    base = primary_value((st.stages.get("fp32") or {}).get("metrics") or {}, task.primary)
    if base is None:
        return
    for stage in st.stages.values():
        v = primary_value(stage.get("metrics") or {}, task.primary)
        if v is not None:
            stage["drop"] = round((base - v) * 100.0, 4)


def _analyze_npu(st: _State, emit: Sink) -> None:
    """Placement, memory and time on the target for the INT8 stage (and FP32 for contrast)."""
    if "int8" not in st.stages:
        return
    try:
        from .npu import analyze, headline, headline_markdown, stedgeai_commands  # noqa: PLC0415
    except ImportError:
        return
    with _Timer(st, emit, "analyze", "Placing layers on the NPU"):
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
    for key in ("npu", "headline", "stedgeai", "layers", "sensitivity", "layer_analysis",
                "comparison", "qat"):
        if key in st.extra:
            report[key] = st.extra[key]
    if err is not None:
        report["error"] = err.to_dict()
    return report
