"""A TensorFlow child started as ``artq run`` begins, handed to the job when it opens one.

The child spends its first ~3.5 s importing TensorFlow. Started by the job, that import began
about a second into the command (the CLI's own imports, the config, preflight, the run
folder); started here, right after the arguments are parsed, it runs beside them. The job
gets it through a :data:`~engine.backends.BackendFactory` whose first Keras or SavedModel
backend is this one, rebound to the run's log without waiting for the import to end. The
second (the float lane's) is the child's spare, forked from it once TensorFlow is imported,
so a run imports TensorFlow once (:mod:`engine.backends.tf.spare`). Any other backend
(ONNX, PyTorch, QAT's Keras 2, a third) is opened as usual, and an unused child is ended.
What the child wrote before the run's log existed (its TensorFlow import) is added to that
log afterwards, so nothing of it is lost.

Importing this module imports no framework.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import EngineError
from ..rawconfig import apply_overrides, load_raw
from . import Backend, BackendFactory, BackendOptions, open_backend
from .pool import poolable

#: Model file suffixes TensorFlow's backend opens (a folder is a SavedModel).
TF_SUFFIXES = (".keras", ".h5", ".hdf5")


def worth_starting(config: str | os.PathLike[str], overrides: Sequence[str] = ()) -> bool:
    """Whether the job's model is TensorFlow's and there, and its job PTQ: the config as
    ``load_config`` reads it (its ``--set`` overrides applied, paths made absolute), before
    any validation.

    A config that does not load says so in the real load. A model file that is not there
    fails the preflight at once: a child then would import TensorFlow for nothing
    (measured: a missing model's ``artq run`` took 0.7 CPU-s, 0.45 without). A wrong guess
    costs a child that is ended unused."""
    try:
        raw = load_raw(config)
        apply_overrides(raw, list(overrides), Path.cwd())
        model = raw["model"]
        path = Path(str(model["path"]))
        method = str((raw.get("quantization") or {}).get("method", "ptq"))
    except (EngineError, KeyError, TypeError, ValueError):
        return False
    if method == "qat":
        return False  # QAT's child needs Keras 2, chosen before TensorFlow is imported
    if model.get("torch"):
        return False  # a PyTorch model
    return path.is_dir() or (path.suffix.lower() in TF_SUFFIXES and path.is_file())


class Prewarmed:
    """A BackendFactory (call it) whose first TensorFlow backend is one already started."""

    def __init__(self, start: Callable[[BackendOptions], Any] | None = None,
                 opener: BackendFactory = open_backend) -> None:
        self._opener = opener
        fd, log = tempfile.mkstemp(prefix="artq-tf-", suffix=".log")
        os.close(fd)
        self._early_log = Path(log)
        options = BackendOptions.ahead(self._early_log)
        if start is None:
            from .tf import TFBackend  # noqa: PLC0415 - the parent side only: no TensorFlow

            def start(options: BackendOptions) -> Any:
                return TFBackend(options, spare=True)
        try:
            self._be: Any | None = start(options)
        except BaseException:
            self._early_log.unlink(missing_ok=True)
            raise
        self.used = False
        #: The early child once the job took it: its spare is the next backend's.
        self._first: Any | None = None

    def __call__(self, fmt: str, options: BackendOptions) -> Backend:
        be, self._be = self._be, None
        if be is not None and poolable(fmt, options) and be.alive():
            try:
                be.rebind(options, wait=False)
            except Exception:  # noqa: BLE001 - it died since: open one as usual
                be.close()
            else:
                self.used = True
                self._first = be
                return be
        elif be is not None:
            _end(be)
        if self._first is not None and poolable(fmt, options):
            first, self._first = self._first, None
            sibling = getattr(first, "sibling", None)
            spare = sibling(options) if sibling is not None else None
            if spare is not None:
                return spare
        return self._opener(fmt, options)

    def close(self, run_dir: str | os.PathLike[str] | None = None) -> None:
        """End the child if no job took it; add what it wrote before the run's log existed
        to ``run_dir``'s log.txt (when the job took it)."""
        if self._be is not None:
            _end(self._be)
            self._be = None
        with contextlib.suppress(OSError):
            early = self._early_log.read_bytes()
            if self.used and early and run_dir is not None and Path(run_dir).is_dir():
                with open(Path(run_dir) / "log.txt", "ab") as log:
                    log.write(b"\n--- TensorFlow's start (before this run's log existed) ---\n")
                    log.write(early)
            self._early_log.unlink()


def _end(be: Any) -> None:
    # Unused: ended at once (a TF child in its import reads "quit" only after it, ~3 s on).
    getattr(be, "terminate", be.close)()
