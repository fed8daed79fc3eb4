"""Results runs share (see :mod:`engine.cache`): synthetic data, the exported model, and the
FP32/FP16 conversions and evaluations, none of which depend on the calibration or the
quantization keys a what-if run changes. Each entry read is named in ``ctx.cached``. With no
cache (``ctx.cache is None``: ``--no-cache``) each wrapper just does the work.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import numpy as np

from ..backends import Backend, LoadedModel
from ..cancel import CancelToken
from ..data import RawData, load_source
from ..events import Sink, StageMetrics
from .context import JobContext, timed


def load_split(ctx: JobContext, split: str, emit: Sink, cancel: CancelToken) -> RawData:
    """One data split; synthetic data is rendered once for every run that draws it."""
    src = getattr(ctx.cfg.data, split)
    if ctx.cache is None or src.kind != "synthetic":
        return load_source(src, f"data.{split}", emit, cancel)
    from ..cache import key, load_raw, save_raw  # noqa: PLC0415

    entry = ctx.cache.entry("data", key(ctx.cfg.to_dict()["data"][split]))
    with ctx.cache.building(entry) as tmp:
        if tmp is None:
            ctx.cached.append(f"data.{split}")
            return load_raw(entry)
        raw = load_source(src, f"data.{split}", emit, cancel)
        save_raw(tmp, raw)
        return raw


def load_model(ctx: JobContext, backend: Backend) -> LoadedModel:
    """Load and export with batch 1, or adopt an earlier run's export."""
    mf, shape = ctx.model_file, ctx.cfg.model.input_shape
    input_shape = list(shape) if shape else None
    export_dir = ctx.work / "saved_model"
    ctx.export_dir = export_dir
    if ctx.cache is None:
        return backend.load(mf.path, mf.format, input_shape, str(export_dir), stage="load")
    from ..cache import finish  # noqa: PLC0415

    entry = ctx.cache.entry("export", ctx.model_key)
    with ctx.cache.building(entry) as tmp:
        if tmp is None:
            ctx.cached.append("load")
            model = LoadedModel.from_dict(entry.meta["info"])
            ctx.export_dir = entry.path("saved_model")
            backend.adopt_export(mf.path, mf.format, input_shape,
                                 str(entry.path("saved_model")), model, stage="load")
            return model
        model = backend.load(mf.path, mf.format, input_shape, str(export_dir), stage="load")
        shutil.copytree(export_dir, tmp / "saved_model")
        finish(tmp, {"info": model.to_dict()})
        return model


def shared_convert(ctx: JobContext, stage: str, convert: Callable[[], None], emit: Sink) -> None:
    """An FP32/FP16 conversion done once for every run of the same model."""
    if ctx.cache is None:
        return convert()
    from ..cache import finish  # noqa: PLC0415

    entry = ctx.cache.entry(f"convert-{stage}", ctx.model_key)
    with ctx.cache.building(entry) as tmp:
        if tmp is None:
            ctx.cached.append(f"convert_{stage}")
            with timed(ctx, emit, f"convert_{stage}", f"Converting to {stage.upper()} (cached)"):
                shutil.copyfile(entry.path(ctx.stage_file(stage).name), ctx.stage_file(stage))
                ctx.stages[stage] = dict(entry.meta["stage"])
            return None
        convert()
        shutil.copyfile(ctx.stage_file(stage), tmp / ctx.stage_file(stage).name)
        finish(tmp, {"stage": ctx.stages[stage]})
        return None


def shared_evaluation(ctx: JobContext, stage: str, evaluate: Callable[[], list[np.ndarray]],
                      emit: Sink) -> list[np.ndarray]:
    """FP32/FP16 outputs and metrics on the test set, computed once per model and test set."""
    if ctx.cache is None:
        return evaluate()
    from ..cache import finish, key, load_outputs, save_outputs  # noqa: PLC0415

    d = ctx.cfg.to_dict()
    ev = {k: v for k, v in d["evaluation"].items() if k not in ("profile", "workers",
                                                                     "strict_confident")}
    entry = ctx.cache.entry(f"evaluate-{stage}", key(ctx.model_key, stage, d["data"]["test"],
                                                     d["preprocessing"], ev))
    with ctx.cache.building(entry) as tmp:
        if tmp is None:
            ctx.cached.append(f"evaluate_{stage}")
            with timed(ctx, emit, f"evaluate_{stage}", f"Evaluating {stage.upper()} (cached)"):
                meta = entry.meta
                ctx.stages[stage]["metrics"] = meta["metrics"]
                ctx.stages[stage]["items_per_s"] = meta["items_per_s"]
                emit(StageMetrics(stage, meta["metrics"], ctx.stages[stage]["size_bytes"]))
                return load_outputs(entry)
        outputs = evaluate()
        save_outputs(tmp, outputs)
        finish(tmp, {"metrics": ctx.stages[stage]["metrics"],
                     "items_per_s": ctx.stages[stage]["items_per_s"]})
        return outputs
