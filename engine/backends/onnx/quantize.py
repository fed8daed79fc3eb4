"""The ONNX stages: FP16 by onnxconverter-common, INT8 QDQ by onnxruntime's static quantizer.

INT8 follows what ST's compiler takes for ONNX ("8b/8b ss/sa"): signed int8 weights,
symmetric, per output channel by default; signed int8 activations, asymmetric, per tensor;
QDQ format, after onnxruntime's ``quant_pre_process`` (shape inference and graph
optimisation). Calibration reads artq's calibration array one item at a time through a
``CalibrationDataReader``, which reports progress and stops the quantizer on cancel.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...cancel import CancelToken
from ...errors import ConversionError
from ...events import Progress, Sink
from . import io_types

#: calibration.method → onnxruntime's CalibrationMethod name ("mse": the percentile
#: calibrator's histograms, ranges chosen by :mod:`.ranges`).
CALIBRATION_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "mse": "Percentile"}


@dataclass(frozen=True)
class Int8Options:
    granularity: str = "per_channel"
    method: str = "minmax"
    percentile: float = 99.999
    nodes_to_exclude: tuple[str, ...] = ()
    #: quantization.io_type: the graph's input and outputs (engine.backends.onnx.io_types).
    io_type: str = "float32"


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


#: The calibrators' settings beside the method. Activations are asymmetric (ST's "sa"); the
#: histogram methods get 2048 bins (a signed histogram of each tensor's values).
def _calibrator_options(opts: Int8Options) -> dict[str, Any]:
    extra: dict[str, Any] = {"symmetric": False}
    if opts.method == "percentile":
        extra.update(num_bins=2048, percentile=float(opts.percentile))
    elif opts.method == "mse":
        extra.update(num_bins=2048)
    return extra


def to_int8(src: str, out: str, calibration: np.ndarray, opts: Int8Options, work_dir: Path,
            *, stage: str, sink: Sink, cancel: CancelToken,
            log_path: str | None = None) -> dict[str, Any]:
    """QDQ INT8 of ``src`` calibrated on ``calibration`` (the model's input layout); returns
    the I/O types it has (:func:`engine.backends.onnx.io_types.describe`)."""
    import onnx  # noqa: PLC0415
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        CalibrationMethod,
    )
    from onnxruntime.quantization.calibrate import (  # noqa: PLC0415
        create_calibrator,
        save_tensors_data,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    class Reader(_Reader, CalibrationDataReader):
        pass

    work_dir.mkdir(parents=True, exist_ok=True)
    pre, ranges = work_dir / "fp32_preprocessed.onnx", work_dir / "ranges.json"
    method = getattr(CalibrationMethod, CALIBRATION_METHODS[opts.method])
    # onnxruntime prints its calibration progress: to the run's log, not the user's terminal
    # (or the worker's event stream).
    with _stdout_to(log_path):
        try:
            quant_pre_process(src, str(pre), skip_symbolic_shape=shapes_all_known(src))
        except Exception:  # noqa: BLE001 - symbolic inference fails on some graphs: retry without
            quant_pre_process(src, str(pre), skip_symbolic_shape=True)
        name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
        try:
            # Calibrated here rather than inside quantize_static, which cannot be given the
            # histogram's size; the ranges reach it through its calibration cache.
            cal = create_calibrator(pre, None, str(work_dir / "augmented.onnx"), method,
                                    extra_options=_calibrator_options(opts))
            cal.collect_data(Reader(calibration, name, stage, sink, cancel))
            save_tensors_data(_mse_data(cal, method) if opts.method == "mse"
                              else cal.compute_data(), ranges)
            del cal
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ConversionError(f"onnxruntime's calibration failed: {type(exc).__name__}: "
                                  f"{exc}", "check the model runs in onnxruntime in float; the "
                                  "log has the details") from None
    return requantize(work_dir, out, opts, log_path=log_path)


def shapes_all_known(path: str) -> bool:
    """Whether ONNX's own shape inference gives every tensor of the graph a fixed shape.

    Then onnxruntime's symbolic shape inference has nothing to add, and it is skipped: it
    costs an import of sympy, and of PyTorch where that is installed (onnxruntime.tools
    imports it; about 4 s). A graph with an open dimension, an unknown tensor or a subgraph
    still gets it."""
    import onnx  # noqa: PLC0415

    try:
        graph = onnx.shape_inference.infer_shapes(onnx.load(path, load_external_data=False)).graph
    except Exception:  # noqa: BLE001 - whatever ONNX cannot infer, the symbolic pass may
        return False
    fixed = {v.name for v in (*graph.input, *graph.output, *graph.value_info)
             if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")
             and all(d.HasField("dim_value") and d.dim_value > 0
                     for d in v.type.tensor_type.shape.dim)}
    fixed |= {t.name for t in graph.initializer}
    subgraphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    return all(v.name in fixed for v in graph.input) and all(
        not any(a.type in subgraphs for a in node.attribute)
        and all(not out or out in fixed for out in node.output) for node in graph.node)


def _mse_data(cal: Any, method: Any) -> Any:
    """The calibrator's histograms turned into MSE-optimal ranges (:mod:`.ranges`), as the
    calibration cache quantize_static reads with ``method``."""
    from onnxruntime.quantization.calibrate import TensorData, TensorsData  # noqa: PLC0415

    from .ranges import mse_ranges  # noqa: PLC0415

    found = mse_ranges(cal.collector.histogram_dict)
    return TensorsData(method, {t: TensorData(lowest=lo, highest=hi)
                                for t, (lo, hi) in found.items()})


def requantize(work_dir: Path, out: str, opts: Int8Options, *,
               log_path: str | None = None) -> dict[str, Any]:
    """The QDQ model from the ranges :func:`to_int8` calibrated in ``work_dir`` (again, with
    ``opts.nodes_to_exclude`` left in float, for the mixed models): no calibration pass.
    Its input and outputs are then made ``opts.io_type``; returns the types they have."""
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    method = getattr(CalibrationMethod, CALIBRATION_METHODS[opts.method])
    with _stdout_to(log_path):
        try:
            quantize_static(
                str(work_dir / "fp32_preprocessed.onnx"), out, None, quant_format=QuantFormat.QDQ,
                per_channel=opts.granularity == "per_channel",
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=list(opts.nodes_to_exclude) or None,
                calibrate_method=method, calibration_cache_path=str(work_dir / "ranges.json"),
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ConversionError(f"onnxruntime's quantizer failed: {type(exc).__name__}: {exc}",
                                  "the log has the details") from None
    return io_types.apply_to_file(out, opts.io_type)


@contextlib.contextmanager
def _stdout_to(log_path: str | None) -> Iterator[None]:
    with open(log_path or os.devnull, "a", encoding="utf-8") as f, \
            contextlib.redirect_stdout(f):
        yield
