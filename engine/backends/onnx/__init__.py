"""ONNX's backend: an FP32 ``.onnx`` to ``fp32.onnx``, ``fp16.onnx`` and QDQ ``int8.onnx``.

Runs in the job's process: onnxruntime's calibration and inference release the GIL, and
cancel reaches the quantizer through its data reader. Only this package imports
onnxruntime (and only when a stage runs); ``graph`` needs the ``onnx`` package alone.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConversionError, ModelError
from .. import BackendOptions, Converted, LayerErrors, LoadedModel, QatRequest, QatResult
from . import graph, io_types


class OnnxBackend:
    """The :class:`engine.backends.Backend` for FP32 ``.onnx`` files."""

    def __init__(self, options: BackendOptions) -> None:
        self._opt = options
        self._export: Path | None = None
        #: The calibration array the ranges in the work folder come from (the last INT8
        #: conversion's: with calibration.draws > 1 not always the model kept).
        self._calibrated: str | None = None

    def load(self, path: str, fmt: str, input_shape: list[int] | None, export_dir: str,
             *, stage: str) -> LoadedModel:
        proto = graph.load_proto(path)
        info = graph.describe(proto, path)
        graph.check(info)
        shape = graph.static_shape(info, input_shape)
        out_dir = Path(export_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        fixed = graph.with_static_input(proto, shape)
        import onnx  # noqa: PLC0415

        onnx.save(fixed, str(out_dir / "model.onnx"))
        self._export = out_dir / "model.onnx"
        return _loaded(graph.describe(fixed, path), shape)

    def adopt_export(self, path: str, fmt: str, input_shape: list[int] | None,
                     export_dir: str, model: LoadedModel, *, stage: str) -> None:
        self._export = Path(export_dir) / "model.onnx"

    def convert(self, stage_name: str, out_path: str, calibration: str | None,
                granularity: str, io_type: str, allow_float: bool, *, stage: str) -> Converted:
        from . import quantize  # noqa: PLC0415 - onnxruntime, only when a stage runs

        src = self._source()
        if stage_name == "fp32":
            shutil.copyfile(src, out_path)
        elif stage_name == "fp16":
            quantize.to_fp16(str(src), out_path)
        else:
            if calibration is None:
                raise ConversionError("INT8 needs calibration data")
            opts = quantize.Int8Options(granularity, self._opt.calibration_method,
                                        self._opt.percentile, io_type=io_type)
            io = quantize.to_int8(str(src), out_path, np.load(calibration), opts,
                                  self._opt.work_dir / "onnx_int8", stage=stage,
                                  sink=self._opt.sink, cancel=self._opt.cancel,
                                  log_path=str(self._opt.log_path))
            self._calibrated = calibration
            return Converted(Path(out_path).stat().st_size,
                             quantization=_int8_record(opts, io))
        return Converted(Path(out_path).stat().st_size)

    def analyze_layers(self, calibration: str, int8_path: str, out_dir: str,
                       debug_samples: int, sensitivity_k: int, granularity: str,
                       io_type: str, allow_float: bool, *, stage: str) -> LayerErrors:
        from . import layer_error, quantize  # noqa: PLC0415

        work = self._opt.work_dir / "onnx_int8"
        if not (work / "ranges.json").is_file():
            raise ConversionError("the per-layer error needs the INT8 stage's calibration",
                                  "keep int8 in quantization.stages")
        # The mixed models get the INT8 model's I/O types: the evaluation compares like with like.
        opts = quantize.Int8Options(granularity, self._opt.calibration_method,
                                    self._opt.percentile, io_type=io_type)
        x = np.load(calibration)
        if calibration != self._calibrated:
            # The ranges are another draw's (calibration.draws): calibrate again on the
            # kept model's items, as its conversion did, so the analysis explains it.
            quantize.to_int8(str(self._source()), str(work / "int8_again.onnx"), x, opts, work,
                             stage=stage, sink=self._opt.sink, cancel=self._opt.cancel,
                             log_path=str(self._opt.log_path))
            self._calibrated = calibration

        def requantize(path: str, exclude: tuple[str, ...]) -> None:
            quantize.requantize(work, path, replace(opts, nodes_to_exclude=exclude),
                                log_path=str(self._opt.log_path))

        # The ranges are reused, not calibrated again: the bar starts past that pass.
        return layer_error.analyze(work / "fp32_preprocessed.onnx", int8_path, x[:debug_samples],
                                   out_dir, sensitivity_k, requantize, stage=stage,
                                   sink=self._opt.sink, cancel=self._opt.cancel, done=len(x),
                                   total=len(x) + 2 * min(debug_samples, len(x)))

    def qat_train(self, req: QatRequest, *, train_stage: str, convert_stage: str) -> QatResult:
        raise ModelError(f"{req.model_path}: QAT fine-tunes Keras models; an ONNX model is "
                         "quantized with PTQ", "set quantization.method = \"ptq\"")

    def close(self) -> None:
        pass

    def _source(self) -> Path:
        if self._export is None:
            raise ConversionError("the model was not loaded before converting")
        return self._export


def _loaded(info: graph.OnnxInfo, shape: tuple[int, ...]) -> LoadedModel:
    inp = info.inputs[0]
    outputs = [{"name": o.name, "shape": [1, *[d for d in o.shape[1:] if d is not None]]}
               for o in info.outputs]
    return LoadedModel([{"name": inp.name, "shape": [1, *shape], "dtype": inp.dtype}], outputs,
                       info.params, sorted(set(info.ops)))


def _int8_record(opts: Any, io: dict[str, Any]) -> dict[str, Any]:
    """report.json ``stages.int8.quantization``: how the QDQ model was made."""
    rec: dict[str, Any] = {
        "tool": "onnxruntime quantize_static", "format": "QDQ", "calibration": opts.method,
        "weights": f"int8 symmetric {opts.granularity.replace('_', '-')}",
        "activations": "int8 asymmetric per-tensor",
        **io_types.record(opts.io_type, io),
    }
    if opts.method == "percentile":
        rec["percentile"] = opts.percentile
    return rec

