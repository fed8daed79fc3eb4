"""QAT in a job: the training data (stage ``qat_data``), fine-tuning and its INT8
conversion in the backend (``qat_train``, ``convert_int8``), the PTQ run it is compared
with, and resuming a stopped run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Backend, LoadedModel, QatRequest
from ..cancel import CancelToken
from ..config import JobConfig
from ..data import load_source, prepare
from ..errors import ConfigError
from ..events import Sink
from ..layout import data_view, to_model
from ..preprocess import PreprocessSpec
from ..report import Report
from .context import JobContext, timed


def qat_stage(ctx: JobContext, backend: Backend, model: LoadedModel, calib_path: Path,
              emit: Sink, cancel: CancelToken) -> None:
    """Fine-tune with fake quantization in the backend, then convert to INT8 there."""
    cfg = ctx.cfg
    from ..labels import save_labels  # noqa: PLC0415

    input_shape = data_view(tuple(model.inputs[0]["shape"][1:]), ctx.layout)
    spec = PreprocessSpec.resolve(cfg.preprocessing, input_shape) if ctx.preprocessing else None
    splits: dict[str, dict[str, str] | None] = {}
    with timed(ctx, emit, "qat_data"):
        for split in ("train", "validation"):
            src = getattr(cfg.data, split)
            if src is None:
                splits[split] = None
                continue
            raw = load_source(src, f"data.{split}", emit, cancel, stage="qat_data")
            if spec is None and raw.images is not None:
                spec = PreprocessSpec.resolve(cfg.preprocessing, input_shape)
            ds = prepare(raw, spec, input_shape, f"data.{split}")
            x_path, y_path = ctx.work / f"{split}_x.npy", ctx.work / f"{split}_labels.npz"
            np.save(x_path, to_model(ds.x, ctx.layout))  # as the model takes it (NCHW too)
            save_labels(y_path, ds.y)
            splits[split] = {"x": str(x_path), "labels": str(y_path)}
            ctx.data[split] = {"source": raw.source, "items": len(ds)}
    out = ctx.stage_file("int8")
    d = cfg.to_dict()
    train = splits["train"]
    assert train is not None  # config validation requires data.train for QAT
    req = QatRequest(
        model_path=ctx.model_file.path, fmt=ctx.model_file.format, task=cfg.evaluation.task,
        evaluation=d["evaluation"], qat=d["quantization"]["qat"], train=train,
        validation=splits["validation"], calibration=str(calib_path),
        ckpt_dir=str(ctx.run.path / "checkpoints"), resume=ctx.resume,
        export_dir=str(ctx.work / "qat_saved_model"), out_path=str(out),
        io_type=cfg.quantization.io_type,
    )
    t0 = time.perf_counter()
    # The backend announces its two stages itself: training runs epochs it alone counts.
    res = backend.qat_train(req, train_stage="qat_train", convert_stage="convert_int8")
    ctx.timings["qat"] = round(time.perf_counter() - t0, 3)
    ctx.stages["int8"] = {"path": out.name, "size_bytes": res.size_bytes}
    if res.quantization is not None:
        ctx.stages["int8"]["quantization"] = res.quantization
    ctx.qat = res.summary


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
    from ..config import load_config  # noqa: PLC0415
    from ..report import read_report  # noqa: PLC0415

    run = Path(run_dir)
    if not (run / "config.toml").is_file():
        raise ConfigError("is not a run folder (no config.toml)", "give a folder under runs/",
                          file=str(run))
    cfg = load_config(run / "config.toml", overrides)
    if cfg.quantization.method != "qat":
        raise ConfigError("only QAT runs can be resumed; this one is PTQ",
                          "run the config again instead", file=str(run))
    rep = read_report(run)
    if rep and rep.status == "ok":
        raise ConfigError("finished already (status ok); there is nothing to resume",
                          file=str(run))
    if not (run / "checkpoints" / "state.json").is_file():
        raise ConfigError("has no QAT checkpoint yet (it stopped before its first epoch ended)",
                          "run the config again instead", file=str(run))
    return cfg


def find_ptq_run(cfg: JobConfig) -> Report | None:
    """The newest finished PTQ run of the same model, data and calibration, if any."""
    from ..report import read_report  # noqa: PLC0415
    from ..rundir import list_runs  # noqa: PLC0415

    want = cfg.to_dict()
    want_data = {k: v for k, v in want["data"].items() if k in ("calibration", "test")}
    for run in list_runs(cfg.output.runs_dir):
        rep = read_report(run)
        if not rep or rep.status != "ok":
            continue
        have = dict(rep.config or {})
        if (have.get("quantization") or {}).get("method") != "ptq":
            continue
        have_data = {k: v for k, v in (have.get("data") or {}).items()
                     if k in ("calibration", "test")}
        if have_data == want_data and _same_job({**have, "data": None}, {**want, "data": None}):
            return rep
    return None
