"""The float lane: FP32 and FP16 converted beside INT8, and FP16 evaluated there too.

The FP32/FP16 conversions do not depend on the calibration, and a converter holds its
process's interpreter lock, so with a second core they go to a second framework process
while the first calibrates, converts to INT8 and measures the per-layer error (ST's
MobileNet v2: 2 × 10 s of conversion off the critical path). The models are the same bytes
either way: each conversion is the same call on the same export.

Only a backend that runs in a process of its own (``own_process``) gets a lane; a run on one
core, a QAT run, one whose float stages all come from the cache, or one with
``ARTQ_PARALLEL=0`` in its environment (a machine short of memory) stays sequential.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends import Backend, BackendFactory, BackendOptions, LoadedModel
from ..cancel import CancelToken
from ..data import Dataset
from ..errors import CancelledError
from ..events import Sink
from ..tasks import Task
from . import stages
from .context import JobContext
from .shared import shared_convert, shared_evaluation

FLOAT_STAGES = ("fp32", "fp16")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def wanted(ctx: JobContext, backend: Backend) -> list[str]:
    """The float stages a lane should take for this job (none: run them in line)."""
    q = ctx.cfg.quantization
    floats = [s for s in q.stages if s in FLOAT_STAGES]
    if (not floats or "int8" not in q.stages or q.method != "ptq"
            or not getattr(backend, "own_process", False) or usable_cores() < 2
            or os.environ.get("ARTQ_PARALLEL", "1") == "0"):  # one framework process at most
        return []
    if ctx.cache is not None and all(
            ctx.cache.entry(f"convert-{s}", ctx.model_key).complete for s in floats):
        return []  # nothing to convert: a relaunch copies them in a moment
    return floats


class FloatLane:
    """A thread driving a second backend through the float stages.

    Opened before the model loads, so the second process imports its framework while the
    first exports; :meth:`start` gives it the export, :meth:`evaluate_on` the test data and
    :meth:`reference` FP32's outputs, against which it evaluates FP16.
    """

    def __init__(self, ctx: JobContext, factory: BackendFactory, options: BackendOptions,
                 floats: list[str], emit: Sink, cancel: CancelToken) -> None:
        self.ctx, self.floats, self.emit, self.cancel = ctx, floats, emit, cancel
        # Its own token: the job's cancel reaches it through abort(), and so does a failure
        # of the main lane, which must not leave a second process converting.
        self._stop = CancelToken()
        self._be = factory(ctx.model_file.format, dataclasses.replace(options, cancel=self._stop))
        self._converted = {s: threading.Event() for s in floats}
        #: The float stages this lane evaluates: FP16. FP32 is evaluated by the job once
        #: INT8 is done, and handed here (:meth:`reference`) as FP16's reference.
        self.evaluates = [s for s in floats if s != "fp32"]
        self._data = threading.Event()
        self._ref = threading.Event()
        self._fp32: list[np.ndarray] | None = None
        if "fp32" not in ctx.cfg.quantization.stages:
            self._ref.set()  # no FP32 stage: FP16 is its own reference
        self._test: Dataset | None = None
        self._task: Task | None = None
        self._error: BaseException | None = None
        self._aborted = False
        self.outputs: dict[str, list[np.ndarray]] = {}
        self._thread: threading.Thread | None = None

    def start(self, model: LoadedModel) -> None:
        self._thread = threading.Thread(target=self._run, args=(model,), name="float-lane",
                                        daemon=True)
        self._thread.start()

    def evaluate_on(self, test: Dataset, task: Task) -> None:
        self._test, self._task = test, task
        self._data.set()

    def reference(self, fp32: list[np.ndarray]) -> None:
        """FP32's test outputs, which FP16's evaluation measures against."""
        self._fp32 = fp32
        self._ref.set()

    def converted(self, stage: str) -> None:
        """Wait until ``stage``'s model file is written (raises what stopped the lane)."""
        while not self._converted[stage].wait(0.1):
            self._raise_if_failed()
            self.cancel.check()
        self._raise_if_failed()

    def join(self) -> dict[str, list[np.ndarray]]:
        """Wait for the lane; its test outputs by stage, or what stopped it, raised here."""
        # A lane never given data or FP32's outputs (an earlier stop) must not wait for them.
        self._data.set()
        self._ref.set()
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(0.1)
                self.cancel.check()
        self._raise_if_failed()
        return self.outputs

    def abort(self) -> None:
        """The job stopped elsewhere: end the second process, and the thread with it."""
        self._aborted = True
        self._stop.cancel()
        self._data.set()
        self._ref.set()
        if self._thread is not None:
            self._thread.join(10)
        self._be.close()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self, model: LoadedModel) -> None:
        ctx, be = self.ctx, self._be
        try:
            mf, shape = ctx.model_file, ctx.cfg.model.input_shape
            be.adopt_export(mf.path, mf.format, list(shape) if shape else None,
                            str(ctx.export_dir), model, stage="load")
            for s in self.floats:
                shared_convert(ctx, s, _convert(ctx, be, s, self.emit), self.emit)
                self._converted[s].set()
            be.close()  # its work is done: free the memory before the evaluations
            if not self.evaluates:
                return
            self._data.wait()
            self._ref.wait()
            if self._aborted or self._test is None or self._task is None:
                return
            test, task = self._test, self._task
            for s in self.evaluates:
                self._stop.check()
                self.outputs[s] = shared_evaluation(ctx, s, _evaluate(
                    ctx, s, test, task, self._fp32, self.emit, self._stop), self.emit)
        except BaseException as exc:  # noqa: BLE001 - handed to the job's thread by join()
            if not self._aborted:
                self._error = exc if not isinstance(exc, KeyboardInterrupt) else CancelledError()
        finally:
            for ev in self._converted.values():
                ev.set()
            be.close()


def _convert(ctx: JobContext, be: Backend, stage: str, emit: Sink) -> Callable[[], None]:
    # No calibration for a float stage: the path is not read.
    return lambda: stages.convert(ctx, be, stage, ctx.work / "calibration.npy", emit)


def _evaluate(ctx: JobContext, stage: str, test: Dataset, task: Task,
              reference: list[np.ndarray] | None, emit: Sink,
              cancel: CancelToken) -> Callable[[], list[Any]]:
    return lambda: stages.evaluate(ctx, stage, test, task, reference, emit, cancel)
