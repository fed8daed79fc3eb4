"""The ONNX stages: FP16 by onnxconverter-common, INT8 QDQ by onnxruntime's static quantizer.

INT8 follows what ST's compiler takes for ONNX ("8b/8b ss/sa"): signed int8 weights,
symmetric, per output channel by default; signed int8 activations, asymmetric, per tensor;
QDQ format, after onnxruntime's ``quant_pre_process`` (shape inference and graph
optimisation). Calibration reads artq's calibration array one item at a time through a
``CalibrationDataReader``, which reports progress and stops the quantizer on cancel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...cancel import CancelToken
from ...errors import ConversionError
from ...events import Progress, Sink

#: calibration.method → onnxruntime's CalibrationMethod name.
CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class Int8Options:
    granularity: str = "per_channel"
    method: str = "minmax"
    percentile: float = 99.999
    nodes_to_exclude: tuple[str, ...] = ()


def to_fp16(src: str, out: str) -> None:
    """FP16 weights and compute, float32 input and output (keep_io_types)."""
    import onnx  # noqa: PLC0415
    from onnxconverter_common import float16  # noqa: PLC0415

    try:
        model = float16.convert_float_to_float16(onnx.load(src), keep_io_types=True)
    except Exception as exc:  # noqa: BLE001 - the converter's own failures, as one line
        raise ConversionError(f"FP16 conversion failed: {type(exc).__name__}: {exc}",
                              "keep stages = [\"fp32\", \"int8\"] for this model") from None
    onnx.save(model, out)


class _Reader:
    """artq's calibration items as onnxruntime's CalibrationDataReader wants them."""

    def __init__(self, x: np.ndarray, input_name: str, stage: str, sink: Sink,
                 cancel: CancelToken) -> None:
        self.x, self.name, self.stage, self.sink, self.cancel = x, input_name, stage, sink, cancel
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        # Raising here unwinds the quantizer: the inference it runs between items releases
        # the GIL, so the job's cancel flag is seen within one item.
        self.cancel.check()
        if self.i >= len(self.x):
            return None
        item = np.ascontiguousarray(self.x[self.i : self.i + 1], np.float32)
        self.i += 1
        self.sink(Progress(self.stage, self.i, len(self.x)))
        return {self.name: item}

    def rewind(self) -> None:
        self.i = 0


def to_int8(src: str, out: str, calibration: np.ndarray, opts: Int8Options, work_dir: Path,
            *, stage: str, sink: Sink, cancel: CancelToken) -> None:
    """QDQ INT8 of ``src`` calibrated on ``calibration`` (the model's input layout)."""
    import onnx  # noqa: PLC0415
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    class Reader(_Reader, CalibrationDataReader):
        pass

    work_dir.mkdir(parents=True, exist_ok=True)
    pre = work_dir / "fp32_preprocessed.onnx"
    try:
        quant_pre_process(src, str(pre), skip_symbolic_shape=False)
    except Exception:  # noqa: BLE001 - symbolic inference fails on some graphs: retry without
        quant_pre_process(src, str(pre), skip_symbolic_shape=True)
    name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
    extra: dict[str, Any] = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if opts.method == "percentile":
        extra["CalibPercentile"] = float(opts.percentile)
    try:
        quantize_static(
            str(pre), out, Reader(calibration, name, stage, sink, cancel),
            quant_format=QuantFormat.QDQ, per_channel=opts.granularity == "per_channel",
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=list(opts.nodes_to_exclude) or None,
            calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[opts.method]),
            extra_options=extra,
        )
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ConversionError(f"onnxruntime's quantizer failed: {type(exc).__name__}: {exc}",
                              "check the model runs in onnxruntime in float; the log has "
                              "the details") from None
