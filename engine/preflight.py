"""Checks that need no work done yet, so a typo never leaves a run folder behind.

Everything here reads files and metadata only (no TensorFlow): the model file and what its
config says of the input and output shapes, the data sources' names, shapes and class
folders, the target. The messages are the ones the later stages would give.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import DataSource, JobConfig
from .custom_objects import check_file
from .data import (
    IMAGE_SUFFIXES,
    Dataset,
    RawData,
    check_class_labels,
    check_same_classes,
    check_source,
    class_folders,
    is_junk,
)
from .errors import ConfigError, DataError, ModelError, TargetError
from .layout import data_view, resolve
from .modelfile import ModelFile, inspect_model_file, static_input_shape
from .torch_model import inspect_torch_model

if TYPE_CHECKING:
    from .npu.targets import Target


def preflight(cfg: JobConfig) -> ModelFile:
    """Check the model file, the data sources and the target before any work is done."""
    return checked(cfg)[0]


def checked(cfg: JobConfig) -> tuple[ModelFile, Target]:
    """:func:`preflight`, keeping what it read for the job: the model file's metadata and the
    loaded target (loaded once per job: the NPU analyses reuse it)."""
    if cfg.model.torch:
        from .backends.torch import missing_torch, torch_available  # noqa: PLC0415 - no torch

        mf = inspect_torch_model(cfg.model.torch, cfg.model.weights)
        if not torch_available():
            raise missing_torch()
    else:
        mf = inspect_model_file(cfg.model.path)
    if cfg.model.custom_objects:
        check_file(cfg.model.custom_objects)
    _check_framework_keys(cfg, mf)
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
    _check_metadata(cfg, mf, splits)
    return mf, _check_target(cfg)


def _check_metadata(cfg: JobConfig, mf: ModelFile, splits: tuple[str, ...]) -> None:
    """Input shape, data item shape and class count against the model's stored config."""
    cal, test = _folder_classes(cfg.data.calibration), _folder_classes(cfg.data.test)
    if cal is not None and test is not None:
        check_same_classes(cal, "data.calibration", test, "data.test")
    if mf.input_shapes is None:
        return  # the file does not say: the export checks it
    if len(mf.input_shapes) != 1:
        raise ModelError(
            f"{mf.path}: the model has {len(mf.input_shapes)} inputs; artq handles single-input "
            "models", "export a single-input model")
    input_shape = static_input_shape(mf.input_shapes[0], cfg.model.input_shape, "Keras input",
                                     mf.path) if mf.format != "onnx" else _onnx_shape(cfg, mf)
    # Items are read as H×W×C; a channels-first model takes them reordered (or as C×H×W).
    accepted = {tuple(input_shape), data_view(tuple(input_shape), _layout(cfg, input_shape))}
    for split in splits:
        src = getattr(cfg.data, split)
        shape = _npz_items_shape(src.path, src.x) if src is not None and src.kind == "npz" \
            and not src.raw else None
        key = f"data.{split}"
        if shape is not None and tuple(shape) in accepted:
            # One item saved without its batch axis reads as 32 "items" of the wrong shape.
            raise DataError(
                f"{Path(src.path)}: array {src.x!r} has the model input's own shape {shape}: "
                "its batch axis is missing",
                f"save the items stacked on a first axis, e.g. numpy.savez(..., {src.x}=x[None]) "
                f"for one item (shape (1, {', '.join(map(str, shape))}))",
            )
        if shape is not None and tuple(shape[1:]) not in accepted:
            raise DataError(
                f"{Path(src.path)}: items have shape {shape[1:]} but the model input is {input_shape}",
                f"give {key} arrays shaped like the model input, or set raw = true to preprocess images",
            )
    out = (mf.output_shapes or (None,))[0]
    if cfg.evaluation.task != "classification" or out is None or not all(
            isinstance(d, int) for d in out[1:]):
        return
    n_classes = int(np.prod(out[1:]))
    if test is not None and len(test.class_names) != n_classes:
        check_class_labels(Dataset(np.empty((0,)), None, test.source, test.class_names),
                           "data.test", n_classes)
    labels = _npz_labels(cfg.data.test, cfg.evaluation.max_samples)
    if labels is not None:
        check_class_labels(labels, "data.test", n_classes)


def _check_framework_keys(cfg: JobConfig, mf: ModelFile) -> None:
    """Keys one framework's backend takes and the other's does not."""
    if mf.format == "onnx" and cfg.quantization.method == "qat":
        raise ConfigError(f"{mf.path}: QAT fine-tunes Keras models; an ONNX model is quantized "
                          "with PTQ", "set quantization.method = \"ptq\"", file=cfg.source,
                          key="quantization.method")
    if mf.format not in ("onnx", "torch") and cfg.calibration.method != "minmax":
        raise ConfigError(
            f"{cfg.calibration.method!r} calibration is for ONNX models; TensorFlow's "
            "converter takes min/max ranges", "remove calibration.method (or set \"minmax\")",
            file=cfg.source, key="calibration.method")
    if mf.format == "torch" and cfg.quantization.method == "qat":
        from .torch_model import check_torch_qat  # noqa: PLC0415

        check_torch_qat(cfg)


def _onnx_shape(cfg: JobConfig, mf: ModelFile) -> tuple[int, ...]:
    from .backends.onnx.graph import OnnxInfo, OnnxIO, static_shape  # noqa: PLC0415

    info = OnnxInfo(mf.path, 0, (OnnxIO("", mf.input_shapes[0], "float32"),), (), (), 0)
    return static_shape(info, cfg.model.input_shape)


def _layout(cfg: JobConfig, input_shape: tuple[int, ...]) -> str:
    return resolve(cfg.preprocessing.layout, input_shape)


def _npz_items_shape(path: str, name: str) -> tuple[int, ...] | None:
    """The shape of an array in an .npz, from its header (nothing loaded)."""
    try:
        with zipfile.ZipFile(path) as z, z.open(f"{name}.npy") as f:
            version = np.lib.format.read_magic(f)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape = tuple(int(d) for d in reader(f)[0])
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None  # loading the data says what is wrong
    return shape if len(shape) > 1 else None


def _npz_labels(src: DataSource, max_samples: int | None) -> Dataset | None:
    """The test labels of an .npz as the job will check them (items' values not loaded)."""
    if src.kind != "npz" or not src.y:
        return None
    try:
        with np.load(src.path, allow_pickle=False) as npz:
            if src.y not in npz.files:
                return None
            y = npz[src.y]
        n = _npz_items_shape(src.path, src.x)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if n is None or y.ndim == 0 or len(y) != n[0]:
        return None  # loading the data says what is wrong
    items = n[0] if not max_samples else min(n[0], max_samples)
    return Dataset(np.empty((items, 0)), y[:items], str(Path(src.path)))


def _folder_classes(src: DataSource) -> RawData | None:
    """An image folder's class names as the loader will read them (images not read)."""
    if src.kind != "images" or not Path(src.path).is_dir():
        return None
    root = Path(src.path)
    subdirs = class_folders(root)
    loose = any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_junk(p.name)
                for p in root.iterdir())
    labelled = bool(subdirs) and not loose
    return RawData(str(root), class_names=tuple(subdirs) if labelled else ())


def _check_target(cfg: JobConfig) -> Target:
    """Load ``analysis.target`` now: a typo found only at the NPU stage left a run "ok"
    with its NPU results silently missing (the error buried in report.json)."""
    from .npu.targets import load_target  # noqa: PLC0415

    try:
        return load_target(cfg.analysis.target)
    except TargetError as exc:
        where = f"{cfg.source}: " if cfg.source else ""
        raise TargetError(f"{where}analysis.target: {exc.message}", exc.hint) from None
