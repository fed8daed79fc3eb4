"""Checks that need no work done yet, so a typo never leaves a run folder behind."""

from __future__ import annotations

from ..config import JobConfig
from ..data import check_source
from ..errors import TargetError
from ..modelfile import ModelFile, inspect_model_file


def preflight(cfg: JobConfig) -> ModelFile:
    """Check the model file, the data sources and the target before any work is done."""
    mf = inspect_model_file(cfg.model.path)
    # QAT's data too: its PTQ baseline runs first, and would run for nothing.
    splits = ("calibration", "test", "train", "validation") if cfg.quantization.method == "qat" else (
        "calibration", "test")
    for split in splits:
        src = getattr(cfg.data, split)
        if src is None:
            continue
        if src.kind == "synthetic":
            from ..samples import generator  # noqa: PLC0415

            generator(src.generator, f"data.{split}.generator")
        else:
            check_source(src, f"data.{split}")
    _check_target(cfg)
    return mf


def _check_target(cfg: JobConfig) -> None:
    """Load ``analysis.target`` now: a typo found only at the NPU stage left a run "ok"
    with its NPU results silently missing (the error buried in report.json)."""
    from ..npu.targets import load_target  # noqa: PLC0415

    try:
        load_target(cfg.analysis.target)
    except TargetError as exc:
        where = f"{cfg.source}: " if cfg.source else ""
        raise TargetError(f"{where}analysis.target: {exc.message}", exc.hint) from None
