"""The ``artq`` command. The only part of the engine that may use rich.

    artq                      open the TUI workbench
    artq run CONFIG           run a job (PTQ or QAT) with live progress
    artq inspect MODEL        NPU placement, memory and time of a .tflite
    artq sweep CONFIG --set   what-if variants side by side
    artq samples ...          list or retrain the bundled samples
    artq cache info|clear     the cache runs share
    artq worker start|stop    keep TensorFlow warm between runs
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__

DESCRIPTION = """\
artq turns FP32 neural networks into INT8 models for the STM32N6 Neural-ART NPU and shows
what that costs in accuracy, memory and time before anyone flashes a board.

With no command, artq opens the TUI workbench.
"""

EPILOG = """\
exit codes: 0 done, 1 internal error, 2 bad config or input, 3 cancelled,
            4 verdict failed (FAIL with --strict; also not resolved with --strict-confident), 141 stdout closed early (| head)
examples:
  artq run sample_configs/ocr_crnn_conv.toml
  artq run sample_configs/digits_ptq.toml --set calibration.samples=50 --json
  artq inspect runs/<run>/int8.tflite --target stm32n6570-dk
  artq sweep sample_configs/ocr_crnn_conv.toml --set calibration.samples=10,50,100,200,500
  artq run --resume runs/<cancelled QAT run>
  artq worker start    # then every `artq run` skips TensorFlow's import
"""


COMMANDS = ("run", "inspect", "sweep", "samples", "cache", "worker")
#: Exit code when stdout's reader closed the pipe early (see _stdout_closed).
STDOUT_CLOSED = 141


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command's module is imported (fast `inspect`)."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="artq",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"artq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)  # listed in usage; its module stays unloaded
            continue
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue  # a front-end not built yet
        module.add_parser(sub)
        sub.choices[name].set_defaults(func=module.run)
    tui = sub.add_parser("tui", help="open the TUI workbench (the default with no command)")
    tui.add_argument("--runs-dir", default=None, help="run folders to browse (default: ./runs)")
    return parser


def entry() -> int:
    """``artq`` as a command: :func:`main`, allowed to start a TensorFlow child for ``run``
    before it reads the job (engine/backends/prewarm.py)."""
    return main(prewarm=True)


def main(argv: list[str] | None = None, *, prewarm: bool = False) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        # The workbench is the common case; skip building every command's parser for it.
        from tui.app import main as tui_main

        return tui_main()
    first = next((a for a in argv if not a.startswith("-")), None)
    # Import only the named command's module (``tui`` needs none of them: 0.3 s saved).
    parser = build_parser(first if first in (*COMMANDS, "tui") and "-h" not in argv
                          and "--help" not in argv else None)
    args = parser.parse_args(argv)
    if args.command in (None, "tui"):
        from tui.app import main as tui_main

        return tui_main(runs_dir=getattr(args, "runs_dir", None))
    args.prewarm = prewarm
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows up here, not in Python's flush at exit
    except BrokenPipeError:
        return _stdout_closed()
    return code


def _stdout_closed() -> int:
    """The reader of stdout went away (``artq inspect --json | head -c 1``): stop quietly.

    As Python's docs advise (signal, "Note on SIGPIPE"), stdout is pointed at devnull so the
    flush at exit cannot fail again. The code is 141 (128 + SIGPIPE), what the shell reports
    for cat, grep or any tool a closed pipe stops, so ``set -o pipefail`` scripts see the
    usual value; 1 would read as artq's "internal error".
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (replaced in-process)
        pass
    return STDOUT_CLOSED


if __name__ == "__main__":
    sys.exit(main())
