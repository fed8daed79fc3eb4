"""Progress as events: the engine emits them to a sink the caller passes in.

The engine never prints. A sink is any callable taking an :class:`Event`; the CLI renders
them with rich, the worker writes them as JSON lines for the TUI, tests collect them in a
list. Every event serialises to a flat dict with ``kind`` and the protocol version, so the
same objects cross the process boundary unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

PROTOCOL = 1

Sink = Callable[["Event"], None]


@dataclass(frozen=True)
class StageDef:
    id: str
    label: str


#: Every stage a run can go through, in the order they run: the ids in StageStarted,
#: Progress and StageFinished events (and report.json's timings), with default labels.
#: Engine, CLI and TUI share this list; a run skips the stages its config does not need.
STAGES: tuple[StageDef, ...] = (
    StageDef("data", "Loading data"),
    StageDef("load", "Exporting the model (batch 1)"),
    StageDef("preprocess", "Preprocessing"),
    StageDef("check_export", "Checking the ONNX export against PyTorch"),
    StageDef("diagnose", "Checking the calibration data"),
    StageDef("convert_fp32", "Converting to FP32"),
    StageDef("convert_fp16", "Converting to FP16"),
    StageDef("qat_data", "Loading training data"),
    StageDef("qat_train", "QAT fine-tuning"),
    StageDef("convert_int8", "Converting to INT8"),
    StageDef("draws_heldout", "Choosing among calibration draws (held-out slice)"),
    StageDef("equalize", "Equalizing weights across layers"),
    StageDef("bias_correction", "Correcting INT8 biases"),
    StageDef("layers", "Per-layer error"),
    StageDef("evaluate_fp32", "Evaluating FP32"),
    StageDef("evaluate_fp16", "Evaluating FP16"),
    StageDef("evaluate_int8", "Evaluating INT8"),
    StageDef("draws_test", "Scoring calibration draws on the test set"),
    StageDef("analyze", "Placing layers on the NPU"),
    StageDef("sensitivity", "Trying suspects in float"),
)
STAGE_IDS: tuple[str, ...] = tuple(s.id for s in STAGES)
STAGE_LABELS: dict[str, str] = {s.id: s.label for s in STAGES}


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        d = {"protocol": PROTOCOL, "kind": self.kind}
        d.update(dataclasses.asdict(self))
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths leak into event payloads; make them plain JSON.
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


_REGISTRY: dict[str, type[Event]] = {}
E = TypeVar("E", bound=type[Event])


def _register(cls: E) -> E:
    _REGISTRY[cls.kind] = cls
    return cls


@_register
@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_dir: str
    name: str
    stages: list[str] = field(default_factory=list)


@_register
@dataclass(frozen=True)
class StageStarted(Event):
    kind: ClassVar[str] = "stage_started"
    stage: str
    label: str
    total: int | None = None


@_register
@dataclass(frozen=True)
class Progress(Event):
    """``done`` of ``total`` for the whole stage (so a time left from them holds); a stage run
    in epochs (QAT fine-tuning) also says where it is: ``batch`` of ``batches`` in ``epoch``
    of ``epochs``."""

    kind: ClassVar[str] = "progress"
    stage: str
    done: int
    total: int | None = None
    message: str = ""
    epoch: int | None = None
    epochs: int | None = None
    batch: int | None = None
    batches: int | None = None


@_register
@dataclass(frozen=True)
class StageFinished(Event):
    kind: ClassVar[str] = "stage_finished"
    stage: str
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


@_register
@dataclass(frozen=True)
class Log(Event):
    kind: ClassVar[str] = "log"
    message: str
    level: str = "info"


@_register
@dataclass(frozen=True)
class ModelInfo(Event):
    kind: ClassVar[str] = "model_info"
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    params: int
    path: str


@_register
@dataclass(frozen=True)
class StageMetrics(Event):
    kind: ClassVar[str] = "stage_metrics"
    stage: str
    metrics: dict[str, Any]
    size_bytes: int = 0


@_register
@dataclass(frozen=True)
class Finding(Event):
    kind: ClassVar[str] = "finding"
    code: str
    severity: str
    message: str
    evidence: str = ""
    fix: str = ""


@_register
@dataclass(frozen=True)
class EpochEnd(Event):
    """One QAT epoch: training loss, validation metric, learning rate, time left."""

    kind: ClassVar[str] = "epoch_end"
    epoch: int
    epochs: int
    loss: float
    val_metric: float | None
    metric_name: str
    lr: float
    eta_s: float | None = None


@_register
@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    run_dir: str
    status: str
    report: str
    verdict: dict[str, Any] = field(default_factory=dict)


@_register
@dataclass(frozen=True)
class RunFailed(Event):
    kind: ClassVar[str] = "run_failed"
    run_dir: str
    status: str
    error_type: str
    message: str
    hint: str = ""


def event_from_dict(d: dict[str, Any]) -> Event:
    """Rebuild an event from its dict; unknown kinds become a Log so old UIs survive."""
    kind = d.get("kind", "")
    cls = _REGISTRY.get(kind)
    if cls is None:
        return Log(message=f"unknown event {kind!r}", level="debug")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def null_sink(event: Event) -> None:
    """A sink that drops everything."""


class ThrottledSink:
    """Pass at most ``rate`` progress events a second per stage; everything else passes.

    The last progress of a stage (done == total) always passes, so a UI ends at 100 %; so
    does the last batch of each epoch, so an epoch's count ends full.
    """

    def __init__(self, sink: Sink, rate: float = 10.0) -> None:
        self._sink = sink
        self._interval = 1.0 / rate
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if (isinstance(event, Progress) and event.done != event.total
                and (event.batch is None or event.batch != event.batches)):
            now = time.monotonic()
            with self._lock:
                if now - self._last.get(event.stage, -1e9) < self._interval:
                    return
                self._last[event.stage] = now
        self._sink(event)
