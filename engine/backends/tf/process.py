"""TensorFlow in its own process: a small request/reply protocol over JSON lines.

The orchestrator never imports TensorFlow. It asks a child (``python -m engine.backends.tf.process``)
to load, export and convert; the child streams progress events and ends each request with
a reply. Why a process: a conversion holds the GIL (a UI thread froze for 3.7 s, measured),
a Keras 3 LSTM crashes the INT8 converter with SIGSEGV (measured), and TF's C++ logging
writes straight to fds 1 and 2. A crash here becomes a clear :class:`ConversionError`.

A child started with ``spare=True`` also forks a second one once its import is done, which
:meth:`TFProcess.take_spare` hands out (:mod:`.spare`).
"""

from __future__ import annotations

import gc
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ... import errors
from ...cancel import CancelToken
from ...events import Sink, event_from_dict
from .spare import SPARE_FD, Spare, SpareLink, fork_spare, spares_work

_GRACE_S = 3.0


class TFProcess:
    """Parent-side handle on the TensorFlow child.

    ``spare=True``: the child also forks a spare after its import, for :meth:`take_spare`
    (ignored where :func:`spares_work` is false).
    """

    def __init__(
        self,
        log_path: str,
        sink: Sink,
        cancel: CancelToken | None = None,
        env: dict[str, str] | None = None,
        *,
        spare: bool = False,
        _child: Spare | None = None,
    ) -> None:
        self._sink = sink
        self._cancel = cancel or CancelToken()
        self._log_path = log_path
        self._spare: SpareLink | None = None
        self._proc: subprocess.Popen[str] | Spare
        if _child is not None:
            self._proc = _child
        else:
            env = {**os.environ, **(env or {})}
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
            env.pop(SPARE_FD, None)
            theirs: socket.socket | None = None
            if spare and spares_work():
                ours, theirs = socket.socketpair()
                env[SPARE_FD] = str(theirs.fileno())
            try:
                with open(log_path, "ab") as log:
                    self._proc = subprocess.Popen(
                        [sys.executable, "-m", "engine.backends.tf.process", log_path],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        env=env,
                        text=True,
                        bufsize=1,
                        pass_fds=(theirs.fileno(),) if theirs is not None else (),
                    )
            except BaseException:
                if theirs is not None:
                    ours.close()
                raise
            finally:
                if theirs is not None:
                    theirs.close()
            if theirs is not None:
                self._spare = SpareLink(ours)
        self._lines: queue.Queue[str | None] = queue.Queue()
        #: Replies owed to requests sent without waiting (:meth:`rebind` with wait=False).
        self._owed = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def take_spare(self, log_path: str, sink: Sink,
                   cancel: CancelToken | None = None) -> TFProcess | None:
        """The spare this child forked (or will fork once imported), as a TFProcess of its
        own logging to ``log_path``; None when there is none: not asked for, already
        taken, or this child has ended."""
        link, self._spare = self._spare, None
        if link is None:
            return None
        if not self.alive():
            link.close()
            return None
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(link.sock, [json.dumps({"log_path": log_path}).encode()],
                            [theirs.fileno()])
        except OSError:
            ours.close()
            link.close()
            return None
        finally:
            theirs.close()
        return TFProcess(log_path, sink, cancel, _child=Spare(link, ours))

    def _read(self) -> None:
        assert self._proc.stdout is not None
        try:
            for line in self._proc.stdout:
                self._lines.put(line)
        except (OSError, ValueError):  # a spare's socket, closed as it was ended
            pass
        self._lines.put(None)

    def _send(self, cmd: str, what: str, args: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(what) from None

    def call(self, cmd: str, what: str, **args: Any) -> dict[str, Any]:
        """Send one request and relay its events until the reply; raise on error."""
        self._send(cmd, what, args)
        while True:
            # Checked on every line too: a busy child (a batch event per step) never lets
            # the queue run empty.
            if self._cancel.cancelled:
                self.terminate()
                raise errors.CancelledError()
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                raise self._died(what)
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if msg.get("kind") == "reply":
                if self._owed:  # the reply to a request sent earlier without waiting
                    self._owed -= 1
                    if not msg.get("ok"):
                        raise _rebuild_error(msg.get("error") or {})
                    continue
                if msg.get("ok"):
                    return msg.get("result") or {}
                raise _rebuild_error(msg.get("error") or {})
            self._sink(event_from_dict(msg))

    def _died(self, what: str) -> errors.EngineError:
        try:
            rc = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.terminate()
            rc = self._proc.returncode
        if self._cancel.cancelled:
            return errors.CancelledError()
        if isinstance(self._proc, Spare):
            rc = self._proc.exit_code(10.0)
        if rc is not None and rc < 0:
            try:
                sig = signal.Signals(-rc).name
            except ValueError:
                sig = f"signal {-rc}"
            return errors.ConversionError(
                f"TensorFlow crashed ({sig}) while {what}",
                f"this is a crash inside TensorFlow, not a Python error; see {self._log_path}",
            )
        return errors.ConversionError(
            f"the TensorFlow process exited (code {rc}) while {what}", f"see {self._log_path}"
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def rebind(self, log_path: str, sink: Sink, cancel: CancelToken | None = None,
               wait: bool = True) -> None:
        """Serve another job (a warm worker's next one): its sink and cancel token from now
        on, and the child's fds 1 and 2 on its log (TensorFlow's C++ writes there).

        ``wait=False`` only sends the request: a child still importing TensorFlow answers
        it after the import, and the next call reads that answer first."""
        self._sink, self._cancel, self._log_path = sink, cancel or CancelToken(), log_path
        if wait:
            self.call("rebind", "starting on a new run", log_path=log_path)
        else:
            self._send("rebind", "starting on a new run", {"log_path": log_path})
            self._owed += 1

    def reset(self) -> None:
        """Clear what the last job left in the child: its state and the Keras session."""
        self.call("reset", "clearing the last job's state")

    def _drop_spare(self) -> None:
        if self._spare is not None:
            self._spare.close()
            self._spare = None

    def close(self) -> None:
        self._drop_spare()
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self._proc.stdin.flush()
                self._proc.wait(timeout=_GRACE_S)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.terminate()

    def terminate(self) -> None:
        self._drop_spare()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=_GRACE_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> TFProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rebuild_error(err: dict[str, Any]) -> errors.EngineError:
    cls = getattr(errors, str(err.get("type", "")), None)
    message, hint = str(err.get("message", "")), str(err.get("hint", ""))
    if isinstance(cls, type) and issubclass(cls, errors.EngineError):
        exc = errors.EngineError.__new__(cls)
        errors.EngineError.__init__(exc, message, hint)
        return exc
    return errors.ConversionError(message, hint)


# --- child side --------------------------------------------------------------------------


def _point_fds_at(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _clear_session() -> None:
    """Keras's global state (layer name counters, graphs) and the memory it holds: a job
    served by a warm child starts as in a fresh one, and memory does not grow run by run."""
    import keras  # noqa: PLC0415 - in the child, after TensorFlow

    keras.backend.clear_session()
    legacy = sys.modules.get("tf_keras")  # a recurrent model rebuilt in tf-keras
    if legacy is not None:
        legacy.backend.clear_session()
    gc.unfreeze()  # the job's model was frozen with the rest: its cycles go now
    gc.collect()
    gc.freeze()


def _child_main(log_path: str) -> int:
    from ...protocol import JsonLineWriter, open_private_channel  # noqa: PLC0415

    # Ctrl-C in a terminal reaches the whole process group; the parent decides for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = open_private_channel(log_path)
    from . import convert  # noqa: F401 - imports TensorFlow, with fds 1 and 2 on the log

    # TensorFlow's import leaves ~290,000 objects that live as long as the process. The
    # converter runs a full gc.collect() in every conversion, and scanning them took ~0.25 s
    # of each (crnn_conv: a third of an FP16 conversion). Frozen, they are never scanned.
    gc.freeze()
    requests: Iterable[str] = sys.stdin
    out = JsonLineWriter(channel)
    spare_fd = os.environ.pop(SPARE_FD, "")
    if spare_fd:
        mine = fork_spare(int(spare_fd), channel)
        if mine is not None:  # this is the spare, handed its socket: it serves that
            requests, out, log_path = mine
    return _serve(requests, out, log_path)


def _serve(requests: Iterable[str], out: Any, log_path: str) -> int:
    """Answer requests (one JSON line each) until "quit" or their end."""
    from ...events import Log, Progress  # noqa: PLC0415
    from . import convert  # noqa: PLC0415 - imported already

    state: dict[str, Any] = {}
    where = {"log": log_path}  # the current run's log (a warm child serves run after run)

    def handle(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        # Progress goes out under the stage id the parent gave (args["stage"]).
        stage = str(args.pop("stage", ""))

        def on_sample(done: int, total: int) -> None:
            out(Progress(stage, done, total))

        if cmd == "load":
            info = convert.load_and_export(
                args["path"], args["format"], args.get("input_shape"), args["export_dir"],
                via_tf_keras=bool(args.get("via_tf_keras", False)),
                custom_objects=str(args.get("custom_objects") or ""),
            )
            state["saved_model"] = args["export_dir"]
            gc.freeze()  # Keras and the model, as long-lived as TF's: "reset" thaws them
            return info
        if cmd == "rebind":  # a warm worker's next run: its log from now on
            _point_fds_at(str(args["log_path"]))
            where["log"] = str(args["log_path"])
            return {"pid": os.getpid()}
        if cmd == "reset":  # the job is over: nothing of it may reach the next one
            state.clear()
            _clear_session()
            _point_fds_at(os.devnull)  # idle: nothing more lands in that run's log
            where["log"] = os.devnull
            return {}
        if cmd == "adopt":
            if not (Path(args["export_dir"]) / "saved_model.pb").is_file():
                raise errors.ConversionError(
                    f"{args['export_dir']}: the cached SavedModel is incomplete",
                    "delete the sweep's cache folder and run again")
            state["saved_model"] = args["export_dir"]
            return {}
        if cmd == "convert":
            # The float model INT8 starts from, kept for the next INT8 conversion with the
            # same settings (calibration draws): only the calibration changes between them.
            same = (state.get("saved_model"), args["granularity"], bool(args["allow_float"]))
            kept_float = state.get("float_for_int8")
            keep: dict[str, Any] = {}
            if args["to"] == "int8" and kept_float is not None and kept_float[0] == same:
                keep["float"] = kept_float[1]
            res = convert.convert(
                state["saved_model"], args["to"], args["out_path"],
                calibration=args.get("calibration"), granularity=args["granularity"],
                io_type=args["io_type"], allow_float=bool(args["allow_float"]),
                on_sample=on_sample, keep=keep, float_model=args.get("float_model"),
                float_out=args.get("float_out"),
            )
            if isinstance(keep.get("float"), bytes):
                state["float_for_int8"] = (same, keep["float"])
            if "calibrated" in keep:  # the per-layer analysis starts from it
                state["calibrated"] = ((state["saved_model"], args.get("calibration"),
                                        args["granularity"], bool(args["allow_float"])),
                                       keep["calibrated"], (args["io_type"], keep["int8"]))
            return res
        if cmd == "equalize":  # a second INT8 model, from the equalized weights
            from .equalize import equalize_and_convert  # noqa: PLC0415

            return equalize_and_convert(on_sample=on_sample, **args)
        if cmd == "analyze_layers":
            from .layer_error import analyze_layers  # noqa: PLC0415

            return analyze_layers(state=state, emit=out, stage=stage, **args)
        if cmd == "qat_train":
            from .qat import qat_train  # noqa: PLC0415

            return qat_train(emit=out, **args)
        raise errors.EngineError(f"unknown request {cmd!r}")

    for line in requests:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        cmd = msg.pop("cmd", "")
        if cmd == "quit":
            break
        try:
            result = handle(cmd, msg)
            out.write({"kind": "reply", "ok": True, "result": result})
        except errors.EngineError as exc:
            if exc.__cause__ is not None:
                traceback.print_exception(exc.__cause__, file=sys.stderr)
            out.write({"kind": "reply", "ok": False, "error": exc.to_dict()})
        except Exception as exc:  # noqa: BLE001 - reported, with the traceback in the log
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            out(Log(f"{cmd} failed: {type(exc).__name__}: {exc}", "error"))
            err = errors.ConversionError(
                f"{cmd} failed in TensorFlow: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                f"the full traceback is in {where['log']}",
            )
            out.write({"kind": "reply", "ok": False, "error": err.to_dict()})
    return 0


if __name__ == "__main__":
    rc = _child_main(sys.argv[1] if len(sys.argv) > 1 else os.devnull)
    # Every reply is written and every file the child made is closed: skip TensorFlow's
    # interpreter teardown, which takes 1.5 s and leaves nothing behind that matters.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
