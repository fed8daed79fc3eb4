"""``python -m engine.worker run|serve|check|sweep ...``: the one child process a UI starts.

    run CONFIG [--set KEY=VALUE]... [--resume] [--cache DIR]   a job (the old form without
                                                               ``run`` still works)
    check CONFIG --model JSON [--set KEY=VALUE]...             the calibration data check
    sweep CONFIG --set KEY=V1,V2... [--runs-dir DIR] [--jobs N] every variant, with each
                                                               variant's events as they come
    serve                                                      job after job, requested on
                                                               stdin (below)
    listen SOCKET [--idle-s S] [--log FILE]                    job after job, requested on
                                                               a Unix socket (engine.listen)

Streams versioned JSON-line events (:mod:`engine.events`, :mod:`engine.protocol`) on a
private channel: the pipe that was stdout. File descriptors 1 and 2 are pointed at the run's
``log.txt`` as soon as the run folder exists (at ``/dev/null`` before), so nothing TensorFlow
or LiteRT prints can corrupt the protocol or a screen. SIGTERM cancels gracefully: the run
(or every variant) is marked cancelled and keeps its log; a check just ends. Exit codes are the CLI's (0 done,
1 a variant failed, 2 bad input, 3 cancelled).

``serve`` is a warm worker: it runs job after job, each as ``run`` does (same events, fds on
each run's log, preflight errors as one ``run_failed`` without a folder), and keeps its idle
TensorFlow processes between them (:mod:`engine.backends.pool`), so a relaunch skips the
TensorFlow import. Requests come one JSON object per line on stdin::

    {"cmd": "run", "config": PATH, "overrides": ["KEY=VALUE", ...],
     "cache": DIR | null | false, "resume": false}
    {"cmd": "warm", "format": "keras"}
    {"cmd": "quit"}

``config`` and ``overrides`` as ``run CONFIG --set ...``; ``cache``: a folder, null or absent
for the user's cache folder, false for ``--no-cache``; ``resume`` as ``--resume``. After each
request the worker writes a ``job_done`` event (:class:`engine.protocol.JobDone`) carrying
the exit code ``run`` would have returned, the run folder and the pool's counters; a line
that is not a request gets a ``run_failed`` and a ``job_done`` with code 2. ``warm`` starts
idle TensorFlow processes for a job to come and its float lane (none when they wait
already) and is not answered. SIGTERM cancels the running job (marked cancelled, its log
kept) and then ends the worker (code 3); SIGTERM while idle, ``quit`` or the end of stdin
end it at once, its TensorFlow processes with it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from .backends import BackendFactory
from .cancel import CancelToken
from .errors import EngineError
from .events import Event, RunFailed, RunStarted
from .protocol import (
    JsonLineWriter,
    SweepFinished,
    SweepStarted,
    VariantEvent,
    open_private_channel,
)

SUBCOMMANDS = ("run", "check", "sweep", "serve", "listen")


def point_fds_at(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine.worker")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a job")
    run.add_argument("config")
    run.add_argument("--set", dest="overrides", action="append", default=[])
    run.add_argument("--resume", action="store_true",
                     help="CONFIG is a QAT run folder to continue from its last checkpoint")
    run.add_argument("--cache", metavar="DIR", default=None,
                     help="share data, the exported model and FP32/FP16 with other runs "
                     "using DIR (default: the user's cache folder, engine.cache.default_root)")
    run.add_argument("--no-cache", action="store_true", help="compute every stage afresh")
    check = sub.add_parser("check", help="preview, statistics and diagnostics of the data")
    check.add_argument("config")
    check.add_argument("--model", default="{}", help="the model summary as JSON "
                       "(engine.inspect_model.model_summary)")
    check.add_argument("--set", dest="overrides", action="append", default=[])
    sweep = sub.add_parser("sweep", help="run every combination of the --set values")
    sweep.add_argument("config")
    sweep.add_argument("--set", dest="sets", action="append", default=[], required=True)
    sweep.add_argument("--runs-dir", default=None)
    sweep.add_argument("--jobs", type=int, default=0)
    sub.add_parser("serve", help="run the jobs requested on stdin, one JSON line each, "
                   "keeping TensorFlow warm between them")
    listen = sub.add_parser("listen", help="run the jobs requested on a Unix socket, "
                            "keeping TensorFlow warm between them (artq worker start)")
    listen.add_argument("socket")
    listen.add_argument("--idle-s", type=float, default=1800.0)
    listen.add_argument("--log", default=os.devnull)
    listen.add_argument("--warm", default="keras",
                        help="the model format whose framework starts at once ('' for none)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "run")  # the form before subcommands: ``engine.worker CONFIG ...``
    args = _parser().parse_args(argv)
    if args.command == "listen":  # no private channel: its clients come on the socket
        from .listen import listen  # noqa: PLC0415

        return listen(args.socket, args.idle_s, args.log, args.warm)

    out = JsonLineWriter(open_private_channel(None))
    cancel = CancelToken()
    signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if args.command == "check":
            # Nothing to save: SIGTERM ends a check at once (a newer one replaces it).
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            return _check(args, out)
        if args.command == "sweep":
            return _sweep(args, out, cancel)
        if args.command == "serve":
            from .serve import serve  # noqa: PLC0415

            return serve(out, cancel)
        cache = None if args.no_cache else args.cache
        return run_one(args.config, args.overrides, args.resume, cache, out, cancel)
    except EngineError as exc:
        if not getattr(exc, "run_dir", None):
            # Stopped before a run folder existed: say so on the channel.
            out(RunFailed("", "failed", type(exc).__name__, exc.message, exc.hint))
        return exc.exit_code


def run_one(config: str, overrides: list[str], resume: bool, cache: str | bool | None,
            out: JsonLineWriter, cancel: CancelToken, backend: BackendFactory | None = None,
            started: list[str] | None = None) -> int:
    """One job as ``run`` does it; ``cache``: a folder, None for the user's, False for none.
    ``started`` gets the run folder(s) as they are made."""
    def sink(ev: Event) -> None:
        if isinstance(ev, RunStarted):
            point_fds_at(os.path.join(ev.run_dir, "log.txt"))
            if started is not None:
                started.append(ev.run_dir)
        out(ev)

    if resume:
        from .job import resume_config, run_job

        cfg = resume_config(config, overrides)
        run_job(cfg, sink, cancel, resume=config, backend=backend)
    else:
        from .config import load_config
        from .preflight import checked

        cfg = load_config(config, overrides)  # a config's mistake before the job's imports
        pre = checked(cfg)  # and the model's, the data's and the target's
        from .cache import default_root
        from .job import run_job

        cache_dir = None if cache is False else (cache or default_root())
        run_job(cfg, sink, cancel, cache_dir=cache_dir, backend=backend, preflighted=pre)
    return 0


def _check(args: argparse.Namespace, out: JsonLineWriter) -> int:
    from .datacheck import check, diagnostics_event, preview_event

    model = json.loads(args.model)
    # Preview and statistics first; the diagnostics load the test data too and follow.
    res = check(args.config, args.overrides, model, with_diagnostics=False)
    out(preview_event(res))
    if res.get("cfg") is not None:
        out(diagnostics_event(res, model))
    return 0


def _sweep(args: argparse.Namespace, out: JsonLineWriter, cancel: CancelToken) -> int:
    from .errors import CancelledError
    from .sweep import parse_sets, run_sweep, variant_labels

    sets = parse_sets(args.sets)
    started: list[str] = []

    def on_start(folder: Path, values: list[dict]) -> None:
        started.append(str(folder))
        out(SweepStarted(str(folder), variant_labels(values), values))

    try:
        res = run_sweep(args.config, sets, runs_dir=args.runs_dir, jobs=args.jobs,
                        sink=lambda i, ev: out(VariantEvent(i, ev.to_dict())),
                        cancel=cancel, on_start=on_start)
    except CancelledError:
        # The sweep folder holds the finished variants: hand its data over all the same.
        data = {}
        if started:
            try:
                data = json.loads((Path(started[0]) / "sweep.json").read_text())
            except (OSError, ValueError):
                data = {}
        out(SweepFinished(started[0] if started else "", data))
        return 3
    out(SweepFinished(str(res.path), res.data))
    return 0 if res.data.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
