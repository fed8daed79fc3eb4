"""The PyTorch backend the job opens (see :class:`TorchBackend`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ...errors import ModelError
from ...events import Log
from .lib import require_torch


class TorchBackend:
    """The :class:`engine.backends.Backend` for a PyTorch model (``model.torch``).

    ``load`` builds the user's module and exports it to FP32 ONNX with batch 1; the stages
    from there (FP16, PTQ INT8, per-layer error) are the ONNX backend's, run on that export.
    QAT is PyTorch's own (:mod:`.qat`), ending in a QDQ ``.onnx``.
    """

    def __init__(self, options: Any) -> None:
        self._opt = options
        self._module: Any = None
        self._spec = ""
        self._input_shape: tuple[int, ...] = ()
        self._onnx: Any = None
        self._export: Path | None = None

    def _build(self, spec: str) -> Any:
        from .usercode import build_module  # noqa: PLC0415

        require_torch()
        self._spec = spec
        self._module = build_module(spec, self._opt.weights)
        return self._module

    def load(self, path: str, fmt: str, input_shape: list[int] | None, export_dir: str,
             *, stage: str) -> Any:
        from .export import export_onnx  # noqa: PLC0415

        if not input_shape:
            raise ModelError(f"{path}: a PyTorch model needs model.input_shape",
                             "set model.input_shape = [C, H, W] (NCHW, without the batch)")
        module = self._build(path)
        self._input_shape = tuple(int(d) for d in input_shape)
        out_dir = Path(export_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self._opt.sink(Log(f"exporting {path} to ONNX (opset 13, batch 1, "
                           f"input {[1, *self._input_shape]})"))
        export_onnx(module, self._input_shape, out_dir / "model.onnx")
        self._export = out_dir / "model.onnx"
        info = self._inner().load(str(out_dir / "model.onnx"), "onnx", list(self._input_shape),
                                  str(out_dir / "onnx"), stage=stage)
        from .usercode import count_params  # noqa: PLC0415

        # The module's own layer classes (Conv2d, BatchNorm2d ...) and parameter count.
        layers = sorted({type(m).__name__ for m in module.modules()} - {type(module).__name__})
        return dataclasses.replace(info, params=count_params(module), layers=layers)

    def adopt_export(self, path: str, fmt: str, input_shape: list[int] | None,
                     export_dir: str, model: Any, *, stage: str) -> None:
        self._build(path)
        self._input_shape = tuple(int(d) for d in input_shape or ())
        self._export = Path(export_dir) / "model.onnx"
        self._inner().adopt_export(str(Path(export_dir) / "model.onnx"), "onnx", input_shape,
                                   str(Path(export_dir) / "onnx"), model, stage=stage)

    def check_export(self, x: Any) -> float:
        """The export against the module on ``x`` (see :func:`.export.check_export`)."""
        from .export import check_export  # noqa: PLC0415

        if self._export is None:
            raise ModelError("the PyTorch model was not loaded before checking its export")
        return check_export(self._module, self._export, x)

    def convert(self, stage_name: str, out_path: str, calibration: str | None,
                granularity: str, io_type: str, allow_float: bool, *, stage: str) -> Any:
        return self._inner().convert(stage_name, out_path, calibration, granularity, io_type,
                                     allow_float, stage=stage)

    def analyze_layers(self, calibration: str, int8_path: str, out_dir: str,
                       debug_samples: int, sensitivity_k: int, granularity: str,
                       io_type: str, allow_float: bool, *, stage: str) -> Any:
        return self._inner().analyze_layers(calibration, int8_path, out_dir, debug_samples,
                                            sensitivity_k, granularity, io_type, allow_float,
                                            stage=stage)

    def qat_train(self, req: Any, *, train_stage: str, convert_stage: str) -> Any:
        from .. import QatResult  # noqa: PLC0415
        from .qat import qat_train  # noqa: PLC0415

        if self._module is None:
            raise ModelError("the PyTorch model was not loaded before QAT")
        res = qat_train(
            float_model=self._module, input_shape=self._input_shape, emit=self._opt.sink,
            cancel=self._opt.cancel, train_stage=train_stage, convert_stage=convert_stage,
            task=req.task, evaluation=req.evaluation, qat=req.qat, train=req.train,
            validation=req.validation, calibration=req.calibration, ckpt_dir=req.ckpt_dir,
            resume=req.resume, out_path=req.out_path)
        from ..onnx import io_types  # noqa: PLC0415
        from .quant import QAT_RECORD  # noqa: PLC0415

        # quantization.io_type as for PTQ: the exported QDQ model's edges made integer.
        io = io_types.apply_to_file(req.out_path, req.io_type)
        res.pop("size_bytes")
        size = Path(req.out_path).stat().st_size
        return QatResult(size, res, quantization={**QAT_RECORD,
                                                  **io_types.record(req.io_type, io)})

    def close(self) -> None:
        if self._onnx is not None:
            self._onnx.close()

    def _inner(self) -> Any:
        """The ONNX backend that runs every stage after the export."""
        if self._onnx is None:
            from ..onnx import OnnxBackend  # noqa: PLC0415

            self._onnx = OnnxBackend(self._opt)
        return self._onnx
