"""``artq worker start|stop|status``: a warm worker for `artq run` (:mod:`engine.warm`).

A new `artq run` imports TensorFlow and loads the model again (3-4 s before any work). With
a warm worker started, `artq run` sends its job there instead: TensorFlow already imported,
its process reused from the last job. The worker ends after a while without jobs.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import EngineError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "worker",
        help="keep TensorFlow warm between `artq run`s",
        description=__doc__.split("\n\n", 1)[1].strip() + " The socket: $ARTQ_WORKER_SOCKET, "
        "else $XDG_RUNTIME_DIR/artq/worker.sock, else <tmp>/artq-<uid>/worker.sock. The "
        "worker keeps the environment it was started in; `artq run --no-worker` runs a job "
        "without it.",
    )
    p.add_argument("action", choices=("start", "stop", "status"),
                   help="start: in the background (or say the one running); stop: end it, "
                   "cancelling a job it runs; status: whether one runs (exit code 1 when "
                   "none does)")
    p.add_argument("--idle-minutes", type=float, default=None, metavar="M",
                   help="start: end after M minutes without a job (default 30)")
    return p


def run(args: argparse.Namespace) -> int:
    from .. import warm  # noqa: PLC0415

    path = warm.socket_path()
    try:
        if args.action == "start":
            w = warm.start(args.idle_minutes or warm.IDLE_MINUTES)
            print(f"warm worker: pid {w.pid}, socket {w.path}; `artq run` now runs its jobs "
                  "there (`artq worker stop` ends it)")
            return 0
        if args.action == "stop":
            pid = warm.stop()
            print(f"warm worker (pid {pid}) stopped" if pid else f"{path}: no warm worker runs")
            return 0
        conn, why = warm.connect()
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if conn is not None:
        conn.close()
        print(f"warm worker: pid {conn.worker.pid}, artq {conn.worker.version}, socket {path}")
        return 0
    print(f"{path}: {why}" if why else f"{path}: no warm worker runs (artq worker start)")
    return 0 if why else 1
