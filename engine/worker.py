"""``python -m engine.worker CONFIG [--set KEY=VALUE]...``: a job for a UI, in a child process.

Streams versioned JSON-line events (:mod:`engine.events`) on a private channel: the pipe
that was stdout. File descriptors 1 and 2 are pointed at the run's ``log.txt`` as soon as
the run folder exists (at ``/dev/null`` before), so nothing TensorFlow or LiteRT prints can
corrupt the protocol or a screen. SIGTERM cancels gracefully: the run is marked cancelled
and keeps its log. Exit codes are the CLI's (0 done, 2 bad input, 3 cancelled, 1 other).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .cancel import CancelToken
from .errors import EngineError
from .events import Event, RunFailed, RunStarted
from .protocol import JsonLineWriter, open_private_channel


def _point_fds_at(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.worker")
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--resume", action="store_true",
                        help="CONFIG is a QAT run folder to continue from its last checkpoint")
    parser.add_argument("--cache", metavar="DIR", default=None,
                        help="share data, the exported model and FP32/FP16 with other runs "
                        "using DIR (artq sweep)")
    args = parser.parse_args(argv)

    out = JsonLineWriter(open_private_channel(None))
    cancel = CancelToken()
    signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def sink(ev: Event) -> None:
        if isinstance(ev, RunStarted):
            _point_fds_at(os.path.join(ev.run_dir, "log.txt"))
        out(ev)

    from .config import load_config
    from .job import run_job

    try:
        if args.resume:
            from .job import resume_config

            cfg = resume_config(args.config, args.overrides)
            run_job(cfg, sink, cancel, resume=args.config)
        else:
            run_job(load_config(args.config, args.overrides), sink, cancel, cache_dir=args.cache)
    except EngineError as exc:
        if not getattr(exc, "run_dir", None):
            # Stopped before a run folder existed: say so on the channel.
            out(RunFailed("", "failed", type(exc).__name__, exc.message, exc.hint))
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
