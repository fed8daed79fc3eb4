"""Run a ``.tflite`` over a test set: LiteRT's interpreter, no TensorFlow, every core.

Inputs are quantized with the model's own scale and zero point — rounded and clipped, where
the guide's loop truncates and wraps around (see :func:`quantize`) — and outputs are
dequantized the same way, so every stage is compared in float. The interpreter releases
the GIL while it runs, so one interpreter per thread uses every core without processes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from .cancel import CancelToken
from .errors import EvaluationError, TFLiteReadError
from .events import Progress, Sink, null_sink

CHUNK = 16  # items a worker takes at a time: small, so the last chunks end together


@dataclass(frozen=True)
class TensorIO:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype.kind in "iu" and self.scale != 0.0


@contextlib.contextmanager
def quiet_stderr(log_path: str | None = None) -> Iterator[None]:
    """Point fd 2 at the log (or nowhere) while LiteRT prints its C++ banner."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    target = os.open(log_path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


def make_interpreter(path: str, log_path: str | None = None, threads: int = 1):  # noqa: ANN201
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - 0.2 s import

    try:
        with quiet_stderr(log_path):
            it = Interpreter(model_path=str(path), num_threads=threads)
            it.allocate_tensors()
    except ValueError as exc:
        raise TFLiteReadError(str(path), f"LiteRT cannot load it ({exc})") from None
    return it


def _io(details: list[dict]) -> list[TensorIO]:
    out = []
    for d in details:
        scale, zp = d.get("quantization", (0.0, 0))
        out.append(
            TensorIO(int(d["index"]), d["name"], tuple(int(v) for v in d["shape"]),
                     np.dtype(d["dtype"]), float(scale), int(zp))
        )
    return out


def signature_io(it) -> tuple[list[TensorIO], list[TensorIO]]:  # noqa: ANN001
    """Inputs and outputs in signature order (output_0, output_1, ..., output_10), stable
    across stages; an output's ``name`` is its signature key when there is a signature
    (the converter's own order and tensor names are not the model's)."""
    from .outputs import signature_order  # noqa: PLC0415

    inputs = _io(it.get_input_details())
    outputs = _io(it.get_output_details())
    sigs = it._get_full_signature_list()  # noqa: SLF001 - the only way to the name map
    if sigs:
        sig = next(iter(sigs.values()))
        keys = signature_order(list(sig["outputs"]))
        by_index = {t.index: t for t in outputs}
        if {sig["outputs"][k] for k in keys} == set(by_index):
            outputs = [replace(by_index[sig["outputs"][k]], name=k) for k in keys]
    return inputs, outputs


def quantize(x: np.ndarray, t: TensorIO) -> np.ndarray:
    """Float → the input tensor's integer type: round to nearest, clip to the type's range.

    Halves round away from zero, as TFLite's own kernels do (std::round). The guide's loop
    instead truncates (``astype``) and never clips, so an out-of-range value wraps around:
    1.2 with scale 1/255 and zero point −128 becomes −77 instead of 127.
    """
    if not t.quantized:
        return np.ascontiguousarray(x, dtype=t.dtype)
    info = np.iinfo(t.dtype)
    # In place on one float32 buffer: a test set is millions of values and each pass costs.
    v = np.divide(np.asarray(x, np.float32), np.float32(t.scale), dtype=np.float32)
    # rint rounds halves to even; move exact halves away from zero (floor(v + 0.5) would
    # also turn 0.49999997 into 1).
    r = np.rint(v)
    ties = np.abs(v - r) == 0.5
    if ties.any():
        r[ties] = v[ties] + np.copysign(np.float32(0.5), v[ties])
    v = r
    v += np.float32(t.zero_point)
    np.clip(v, info.min, info.max, out=v)
    return v.astype(t.dtype)


def dequantize(q: np.ndarray, t: TensorIO) -> np.ndarray:
    if not t.quantized:
        return q.astype(np.float32, copy=False)
    return (q.astype(np.float32) - np.float32(t.zero_point)) * np.float32(t.scale)


@dataclass(frozen=True)
class RunResult:
    outputs: list[np.ndarray]  # dequantized float32, one (N, ...) array per output
    seconds: float
    workers: int
    #: Each output's signature key (tensor name without a signature) and shape, batch first.
    names: tuple[str, ...] = ()
    shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def items_per_s(self) -> float:
        n = len(self.outputs[0]) if self.outputs else 0
        return n / self.seconds if self.seconds > 0 else 0.0


def run_in_chunks(n: int, workers: int, items: Callable[[int, int, int], bool], *,
                  stage: str, sink: Sink, cancel: CancelToken | None) -> float:
    """Items ``0..n-1`` through ``workers`` threads, each taking chunks from a shared
    counter (small chunks, so the last ones end together and a slow core takes fewer);
    the calling thread is worker 0. ``items(w, a, b)`` runs items ``a..b-1`` on worker
    ``w``'s own runtime and returns False when it stopped on ``cancel``. Progress goes to
    ``sink`` per chunk, not per item (less lock traffic). Returns the seconds taken."""
    chunk = max(1, min(CHUNK, -(-n // workers)))
    next_start, done = [0], [0]
    lock = threading.Lock()
    t0 = time.perf_counter()

    def work(w: int) -> None:
        while True:
            with lock:
                a = next_start[0]
                next_start[0] = a + chunk
            b = min(a + chunk, n)
            if a >= n or not items(w, a, b):
                return
            with lock:
                done[0] += b - a
                d = done[0]
            sink(Progress(stage, d, n))

    with ThreadPoolExecutor(max_workers=max(workers - 1, 1)) as pool:
        futures = [pool.submit(work, w) for w in range(1, workers)]
        work(0)
        for f in futures:
            f.result()
    if cancel is not None:
        cancel.check()
    return time.perf_counter() - t0


def run_model(
    path: str,
    x: np.ndarray,
    *,
    workers: int = 0,
    stage: str = "evaluate",
    sink: Sink = null_sink,
    cancel: CancelToken | None = None,
    log_path: str | None = None,
) -> RunResult:
    """All items of ``x`` (float32, (N, ...)) through the model; dequantized outputs."""
    n = len(x)
    workers = min(workers or os.cpu_count() or 1, max(n, 1))
    interpreters = [make_interpreter(path, log_path) for _ in range(workers)]
    inputs, outputs = signature_io(interpreters[0])
    if len(inputs) != 1:
        raise EvaluationError(f"{path}: {len(inputs)} inputs; artq evaluates single-input models")
    tin = inputs[0]
    if tuple(x.shape[1:]) != tin.shape[1:]:
        raise EvaluationError(
            f"{path}: the data has items of shape {x.shape[1:]} but the model input is {tin.shape[1:]}",
            "check preprocessing.resize and the data",
        )
    raw = [np.empty((n, *t.shape[1:]), dtype=t.dtype) for t in outputs]
    # Views of the output buffers (valid until the next invoke): copied once, into ``raw``,
    # where get_tensor would allocate a copy first.
    views = [[it.tensor(t.index) for t in outputs] for it in interpreters]

    def items(w: int, a: int, b: int) -> bool:
        it, out = interpreters[w], views[w]
        # Each worker quantizes its own chunk: in parallel too, on data still in cache.
        xq = quantize(x[a:b], tin)
        for i in range(a, b):
            if cancel is not None and cancel.cancelled:
                return False
            it.set_tensor(tin.index, xq[i - a : i - a + 1])
            # Each item is an input of its own. An INT8 LSTM keeps its state in variable
            # tensors that invoke() leaves as the last item ended (0.4 µs to reset).
            it.reset_all_variables()
            it.invoke()
            for k, view in enumerate(out):
                raw[k][i] = view()[0]
        return True

    seconds = run_in_chunks(n, workers, items, stage=stage, sink=sink, cancel=cancel)
    return RunResult([dequantize(r, t) for r, t in zip(raw, outputs, strict=True)], seconds,
                     workers, tuple(t.name for t in outputs), tuple(t.shape for t in outputs))
