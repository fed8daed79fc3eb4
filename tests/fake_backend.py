"""A Backend without TensorFlow: hands back .tflite files crafted by tests/npu_models.py.

The models are real flatbuffers that LiteRT runs and the NPU analysis reads: an
8×8×1 → 8×8×4 convolution, in float32 for FP32/FP16 and in int8 for INT8. That is
enough for the orchestrator to evaluate, place, judge and report every stage.
"""

from __future__ import annotations

import json
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npu_models import conv_model

from engine.backends import (
    BackendOptions,
    Converted,
    LayerErrors,
    LoadedModel,
    QatRequest,
    QatResult,
)
from engine.errors import ConversionError
from engine.events import Progress, StageFinished, StageStarted
from engine.layers import Diagnosis, ErrorStats, error_entry

IN_SHAPE = (1, 8, 8, 1)
OUT_CH = 4
FLOAT_MODEL = conv_model(dtype="float32", in_shape=IN_SHAPE, out_ch=OUT_CH)
INT8_MODEL = conv_model(dtype="int8", in_shape=IN_SHAPE, out_ch=OUT_CH)


def write_keras_stub(path: Path) -> Path:
    """A .keras archive preflight accepts: a zip with the model config a Keras 3 functional
    model saves (input 8×8×1, a Dense of 4 units per pixel); no weights."""
    shape = [None, *IN_SHAPE[1:]]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(
            {"class_name": "Functional", "config": {
                "name": "fake", "input_layers": [["x", 0, 0]], "output_layers": [["y", 0, 0]],
                "layers": [
                    {"class_name": "InputLayer", "name": "x",
                     "config": {"name": "x", "batch_shape": shape}},
                    {"class_name": "Dense", "name": "y", "config": {"name": "y", "units": OUT_CH},
                     "inbound_nodes": [{"args": [{"config": {"shape": shape}}]}]}]}}))
    return path


@dataclass
class FakeBackend:
    """Records every call; ``fail_in`` names a stage id whose call raises a ConversionError."""

    options: BackendOptions
    fail_in: str | None = None
    calls: list[str] = field(default_factory=list)
    closed: bool = False
    #: As the TF backend: each instance its own process, so the job may open a float lane.
    own_process: bool = False
    #: A stage id whose call runs until the backend's cancel token is set (a long convert).
    block_in: str | None = None
    #: Shared by a factory's backends when both block_in and fail_in are set: set when one
    #: blocks; the failing call waits for it, so the failure meets a busy second backend.
    blocking: threading.Event | None = None

    def _enter(self, stage: str) -> None:
        self.calls.append(stage)
        if stage == self.block_in and self.blocking is not None:
            self.blocking.set()
        while stage == self.block_in and not self.options.cancel.wait(0.01):
            pass
        if stage == self.fail_in and self.blocking is not None:
            self.blocking.wait(10)  # fail only once the other backend is blocked
        self.options.cancel.check()  # as the TF child's handle does on every line
        if stage == self.fail_in:
            raise ConversionError(f"fake failure in {stage}", "a test asked for it")

    def load(self, path: str, fmt: str, input_shape: list[int] | None, export_dir: str,
             *, stage: str) -> LoadedModel:
        self._enter(stage)
        return LoadedModel([{"name": "input", "shape": list(IN_SHAPE), "dtype": "float32"}],
                           [{"name": "output_0", "shape": [1, 8, 8, OUT_CH]}], 40,
                           ["Conv2D", "InputLayer"])

    def adopt_export(self, path: str, fmt: str, input_shape: list[int] | None,
                     export_dir: str, model: LoadedModel, *, stage: str) -> None:
        self._enter(stage)

    def convert(self, stage_name: str, out_path: str, calibration: str | None,
                granularity: str, io_type: str, allow_float: bool, *, stage: str) -> Converted:
        self._enter(stage)
        blob = INT8_MODEL if stage_name == "int8" else FLOAT_MODEL
        if calibration is not None:
            self.options.sink(Progress(stage, 1, 1))
        Path(out_path).write_bytes(blob)
        return Converted(len(blob))

    def analyze_layers(self, calibration: str, int8_path: str, out_dir: str,
                       debug_samples: int, sensitivity_k: int, granularity: str,
                       io_type: str, allow_float: bool, *, stage: str) -> LayerErrors:
        self._enter(stage)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        mixed = Path(out_dir) / "keep_float_1.tflite"
        mixed.write_bytes(FLOAT_MODEL)
        stats = ErrorStats(sqnr_db=12.0, rmse_scale=0.9, cos=0.99, max_abs=0.5, mse=0.01,
                           mean_error=0.0, channel_sqnr_db=12.0, elements=256)
        diag = Diagnosis(True, "op", "the op loses precision", 12.0)
        errors = {"y": error_entry("y", 0.05, 0, stats, stats, None, diag)}
        candidates: list[dict[str, Any]] = [
            {"tensor": "y", "kind": "op", "float_ops": ["y"], "op": "CONV_2D",
             "path": str(mixed)}]
        return LayerErrors(errors, ["y"], candidates, True, debug_samples)

    def qat_train(self, req: QatRequest, *, train_stage: str, convert_stage: str) -> QatResult:
        sink = self.options.sink
        sink(StageStarted(train_stage, "QAT fine-tuning", 1))
        self._enter(train_stage)
        sink(StageFinished(train_stage, 0.0, {}))
        sink(StageStarted(convert_stage, "Converting QAT model to INT8", 1))
        self._enter(convert_stage)
        Path(req.out_path).write_bytes(INT8_MODEL)
        sink(StageFinished(convert_stage, 0.0, {"size_bytes": len(INT8_MODEL)}))
        return QatResult(len(INT8_MODEL), {"epochs_run": 1, "best_epoch": 1})

    def close(self) -> None:
        self.closed = True


class FakeFactory:
    """A BackendFactory that remembers the backends it opened."""

    def __init__(self, fail_in: str | None = None, own_process: bool = False,
                 block_in: str | None = None) -> None:
        self.fail_in, self.own_process, self.block_in = fail_in, own_process, block_in
        self.blocking = threading.Event() if block_in and fail_in else None
        self.opened: list[FakeBackend] = []

    def __call__(self, fmt: str, options: BackendOptions) -> FakeBackend:
        be = FakeBackend(options, self.fail_in, own_process=self.own_process,
                         block_in=self.block_in, blocking=self.blocking)
        self.opened.append(be)
        return be
