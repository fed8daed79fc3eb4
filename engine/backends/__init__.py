"""The seam between the job and a model framework.

The job never imports a framework. It opens a :class:`Backend` for the model's format and
calls typed methods on it: load (and export with batch 1), convert one stage to its file
(``.tflite``, ``.onnx``: :func:`stage_files`), measure the per-layer error, fine-tune with
QAT. A backend reports progress under the stage id the job gives it (see :data:`engine.events.STAGES`), and raises
:class:`engine.errors.EngineError` subclasses. TensorFlow's backend lives in ``tf/`` and
runs TensorFlow in a child process; ONNX's in ``onnx/`` runs onnxruntime in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..cancel import CancelToken
from ..events import Sink


@dataclass(frozen=True)
class LoadedModel:
    """What loading and exporting the model found out (report.json ``model``, beside path)."""

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    params: int
    #: Class names of every layer (nested ones too): the job looks for recurrent ones.
    layers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "outputs": self.outputs, "params": self.params,
                "layers": self.layers}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoadedModel:
        return cls(list(d["inputs"]), list(d["outputs"]), int(d["params"]),
                   list(d.get("layers") or []))


@dataclass(frozen=True)
class Converted:
    size_bytes: int
    #: How the backend got there when it was not the direct way ("tf-keras rebuild").
    via: str | None = None
    #: How the INT8 model was quantized, when the backend says (report ``quantization``).
    quantization: dict[str, Any] | None = None
    #: Parts of the conversion read from the cache (report ``cache.reused``, after the stage).
    reused: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayerErrors:
    """Per-layer error of int8.tflite and the mixed models written for the worst layers."""

    errors: dict[str, dict[str, Any]]
    ranking: list[str]
    #: ``{"tensor", "kind", "float_ops", "op", "path"?, "group"?, "error"?}`` per mixed model.
    candidates: list[dict[str, Any]]
    reproduced: bool
    debug_samples: int
    raw: dict[str, Any] = field(default_factory=dict)
    #: What the "layer" and "model" modes measure, when the backend measures them its way.
    modes: dict[str, str] | None = None


@dataclass(frozen=True)
class QatResult:
    size_bytes: int
    #: report.json ``qat``: history, best epoch and value, metric, items.
    summary: dict[str, Any]
    #: How the INT8 model was quantized, when the backend says (``stages.int8.quantization``).
    quantization: dict[str, Any] | None = None


@dataclass(frozen=True)
class QatRequest:
    """Everything QAT training needs; paths point at arrays the job saved."""

    model_path: str
    fmt: str
    task: str
    evaluation: dict[str, Any]
    qat: dict[str, Any]
    train: dict[str, str]
    validation: dict[str, str] | None
    calibration: str
    ckpt_dir: str
    resume: bool
    export_dir: str
    out_path: str
    io_type: str


class Backend(Protocol):
    """One framework, driven by the job. ``stage`` arguments are ids from ``STAGES``.

    A backend whose instances each run in a process of their own says so with a true
    ``own_process`` attribute: the job then converts FP32/FP16 in a second instance beside
    INT8 (engine.job.lanes).
    """

    def load(self, path: str, fmt: str, input_shape: list[int] | None, export_dir: str,
             *, stage: str) -> LoadedModel: ...

    def adopt_export(self, path: str, fmt: str, input_shape: list[int] | None,
                     export_dir: str, model: LoadedModel, *, stage: str) -> None:
        """Use ``model``, exported to ``export_dir`` by an earlier :meth:`load` (a sweep's
        shared export), as if loaded here."""

    def convert(self, stage_name: str, out_path: str, calibration: str | None,
                granularity: str, io_type: str, allow_float: bool,
                *, stage: str) -> Converted: ...

    def analyze_layers(self, calibration: str, int8_path: str, out_dir: str,
                       debug_samples: int, sensitivity_k: int, granularity: str,
                       io_type: str, allow_float: bool, *, stage: str) -> LayerErrors: ...

    def qat_train(self, req: QatRequest, *, train_stage: str,
                  convert_stage: str) -> QatResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BackendOptions:
    """Where a backend logs and reports, and how the job wants it set up."""

    log_path: Path
    #: Scratch space, deleted when the job ends.
    work_dir: Path
    sink: Sink
    cancel: CancelToken
    #: QAT's tooling (tfmot) needs Keras 2: set before the framework is imported.
    legacy_keras: bool = False
    #: ``model.custom_objects``: where the user's custom layer classes are (Keras files).
    custom_objects: str = ""
    #: A PyTorch model's state_dict (model.weights); the model path is its code.
    weights: str = ""
    #: calibration.method and calibration.percentile (ONNX; TensorFlow's converter is min/max).
    calibration_method: str = "minmax"
    percentile: float = 99.999
    #: The runs' shared cache (engine.cache.StageCache; None: --no-cache) and the model's key
    #: in it, for what a backend can reuse inside a stage.
    cache: Any = None
    model_key: str = ""

    @classmethod
    def ahead(cls, log_path: Path) -> BackendOptions:
        """For a backend started before its job exists (rebound when a job takes it): no
        sink, no cancel of its own, scratch in the system's temporary folder."""
        import tempfile  # noqa: PLC0415 - only where backends are started ahead

        from ..events import null_sink  # noqa: PLC0415

        return cls(log_path, Path(tempfile.gettempdir()), null_sink, CancelToken())


BackendFactory = Callable[[str, BackendOptions], Backend]
"""``factory(model_format, options)``: opens the backend for a model of that format."""


def open_backend(fmt: str, options: BackendOptions) -> Backend:
    """The backend for a model format (keras, h5 and saved_model are TensorFlow's)."""
    if fmt == "onnx":
        from .onnx import OnnxBackend  # noqa: PLC0415 - onnxruntime only when a stage runs

        return OnnxBackend(options)
    if fmt == "torch":
        from .torch.backend import TorchBackend  # noqa: PLC0415 - torch, in-process

        return TorchBackend(options)
    from .tf import TFBackend  # noqa: PLC0415 - only the parent side; TF runs in its child

    return TFBackend(options)


#: ``run(path, x, *, workers, stage, sink, cancel, log_path) -> engine.evaluate.RunResult``.
Runner = Callable[..., Any]


@dataclass(frozen=True)
class StageFiles:
    """What a backend's stage files are: their suffix, and what runs them on a test set."""

    suffix: str
    run: Runner


def stage_files(fmt: str) -> StageFiles:
    """Stage files of a model format: ``.onnx`` run by onnxruntime for ONNX models (and
    PyTorch's, exported to ONNX), ``.tflite`` run by LiteRT for TensorFlow's. Neither import
    loads a framework."""
    if fmt in ("onnx", "torch"):
        from .onnx.run import run_onnx  # noqa: PLC0415

        return StageFiles(".onnx", run_onnx)
    from ..evaluate import run_model  # noqa: PLC0415

    return StageFiles(".tflite", run_model)
