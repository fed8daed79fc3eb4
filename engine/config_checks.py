"""Checks of a validated job config that span keys (engine.config validates each key).

Each raises :class:`ConfigError` naming the file and the key, with what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import custom_objects
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import JobConfig

_DATA_SPLITS = ("calibration", "test", "train", "validation")


def check_semantics(cfg: JobConfig) -> None:
    """What one key cannot say alone: keys that must agree, sources that need a path."""
    src = cfg.source
    custom_objects.check(cfg.model.custom_objects, src)
    from .torch_model import check_model_keys  # noqa: PLC0415 - model.path or model.torch

    check_model_keys(cfg)
    if "fp32" not in cfg.quantization.stages:
        raise ConfigError("must include fp32: it is the reference every stage is compared with",
                          file=src, key="quantization.stages")
    if len(set(cfg.quantization.stages)) != len(cfg.quantization.stages):
        raise ConfigError("lists a stage twice", file=src, key="quantization.stages")
    for key in ("outputs", "class_outputs"):
        names = getattr(cfg.evaluation, key)
        if len(set(names)) != len(names) or "" in names:
            raise ConfigError("lists an output twice or an empty name",
                              "name each output once, as the model names it",
                              file=src, key=f"evaluation.{key}")
    pp = cfg.preprocessing
    if len(pp.mean) != len(pp.std) and 1 not in (len(pp.mean), len(pp.std)):
        raise ConfigError(
            f"mean has {len(pp.mean)} values and std {len(pp.std)}; give one value or one per channel",
            file=src,
            key="preprocessing.std",
        )
    for split in _DATA_SPLITS:
        ds = getattr(cfg.data, split)
        if ds is None:
            continue
        key = f"data.{split}"
        if ds.kind == "synthetic":
            if ds.path:
                # The generator would be scored and the user's file silently never read.
                raise ConfigError(
                    f"a synthetic source ignores path ({ds.path})",
                    f"set {key}.kind to \"npz\", \"npy_dir\" or \"images\" to read it, or remove path",
                    file=src,
                    key=f"{key}.path",
                )
            if not ds.generator:
                raise ConfigError("a synthetic source needs a generator",
                                  "set generator to one of: digits, ocr_words, ocr_scenes",
                                  file=src, key=f"{key}.generator")
            if ds.count < 1:
                raise ConfigError(f"must be ≥ 1 for a synthetic source, got {ds.count}",
                                  file=src, key=f"{key}.count")
        elif not ds.path:
            raise ConfigError(f"a {ds.kind} source needs a path", file=src, key=f"{key}.path")
    _check_draws(cfg)
    _check_equalize(cfg)
    if cfg.quantization.method == "qat" and cfg.data.train is None:
        raise ConfigError("QAT needs training data",
                          "add a [data.train] table (and optionally [data.validation])",
                          file=src, key="data.train")


def _check_draws(cfg: JobConfig) -> None:
    """calibration.draws > 1 converts several PTQ INT8 models: it needs an INT8 stage, and
    QAT (Keras or PyTorch) takes its ranges from training, not from one calibration draw."""
    if cfg.calibration.draws == 1:
        return
    if "int8" not in cfg.quantization.stages:
        raise ConfigError(f"is {cfg.calibration.draws}: each draw converts an INT8 model, "
                          "but quantization.stages has no int8",
                          "add int8 to quantization.stages, or set calibration.draws = 1",
                          file=cfg.source, key="calibration.draws")
    if cfg.quantization.method == "qat":
        raise ConfigError(f"is {cfg.calibration.draws}, but draws apply to PTQ: a QAT model's "
                          "INT8 ranges come from its training, not from one calibration draw",
                          "set calibration.draws = 1 for QAT, or quantization.method = \"ptq\"",
                          file=cfg.source, key="calibration.draws")


def _check_equalize(cfg: JobConfig) -> None:
    """Equalization rescales a Keras model's weights before its PTQ conversion."""
    q, key = cfg.quantization, "quantization.equalize"
    if not q.equalize:
        return
    if cfg.model.torch or not cfg.model.path.lower().endswith((".keras", ".h5", ".hdf5")):
        raise ConfigError("applies to Keras models (.keras, .h5): it rescales their weights "
                          "before the conversion", "set quantization.equalize = false",
                          file=cfg.source, key=key)
    if q.method == "qat" or "int8" not in q.stages:
        raise ConfigError("applies to a PTQ INT8 conversion",
                          'use quantization.method = "ptq" with int8 in quantization.stages, '
                          "or set quantization.equalize = false", file=cfg.source, key=key)
    if cfg.calibration.draws != 1:
        raise ConfigError(f"cannot be combined with calibration.draws = {cfg.calibration.draws}",
                          "set calibration.draws = 1, or quantization.equalize = false",
                          file=cfg.source, key=key)
