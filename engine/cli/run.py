"""``artq run``: one job with a live progress display and a final summary."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..cancel import CancelToken
from ..errors import EngineError, VerdictFailed
from ..events import STAGE_LABELS, Event, Log, RunFailed, StageFinished, StageStarted
from ..events import Progress as ProgressEvent
from ..report import Report, read_report
from ..verdict import FAIL, UNRESOLVED, Verdict
from .console import Console

HELP = "run a quantization job (PTQ or QAT) from a TOML config"
DESCRIPTION = """\
Run a job: load the model and data, calibrate, convert FP32 → FP16 → INT8, evaluate every
stage on the test set, place the INT8 model on the Neural-ART NPU, and judge the INT8 drop
against the config's use-case profile. Writes a run folder (runs/<time>-<name>/) with the
.tflite of each stage, report.json, report.md and the log.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 done, 1 internal error, 2 bad config or input, 3 cancelled, "
        "4 verdict failed: FAIL with --strict, FAIL or not resolved at this test-set size "
        "with --strict-confident (or evaluation.strict_confident = true)",
    )
    p.add_argument("config", nargs="?", help="job config (.toml); see sample_configs/")
    p.add_argument("--runs-dir", metavar="DIR", help="write the run folder under DIR "
                   "(default: the config's output.runs_dir)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config key, e.g. --set calibration.samples=50 (repeatable)")
    p.add_argument("--json", action="store_true",
                   help="print the final report.json on stdout and nothing else (progress goes to stderr)")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 4 when the verdict is FAIL: INT8's whole 95 %% "
                   "interval is outside the profile's bar")
    p.add_argument("--strict-confident", action="store_true",
                   help="exit with code 4 unless the verdict is a confident PASS: also when "
                   "it is not resolved at this test-set size (the interval straddles the "
                   "bar); the config key evaluation.strict_confident = true does the same")
    p.add_argument("--no-cache", action="store_true",
                   help="compute every stage afresh: do not read or fill the cache runs share "
                   "(exported model, FP32/FP16 conversions and evaluations; see `artq cache`)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue a cancelled or failed QAT run (a run folder) from its last "
                   "epoch checkpoint")
    p.add_argument("--no-worker", action="store_true",
                   help="run the job in this process even when a warm worker runs "
                   "(`artq worker start`)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")


class RichSink:
    """Events → a rich progress display on stderr."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        # Live bars only on a terminal; in a pipe or CI log, one line per finished stage.
        self.live = console.is_terminal and not quiet
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<40}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not self.live,
        )
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> RichSink:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, ev: Event) -> None:
        with self.lock:
            self._handle(ev)

    def _handle(self, ev: Event) -> None:
        if isinstance(ev, StageStarted):
            self.tasks[ev.stage] = self.progress.add_task(ev.label, total=ev.total)
        elif isinstance(ev, ProgressEvent):
            tid = self.tasks.get(ev.stage)
            if tid is not None:
                self.progress.update(tid, completed=ev.done, total=ev.total)
        elif isinstance(ev, StageFinished):
            if not self.live and not self.quiet:
                label = (self.progress.tasks[self.tasks[ev.stage]].description
                         if ev.stage in self.tasks else STAGE_LABELS.get(ev.stage, ev.stage))
                self.console.print(f"done  {escape(label)} ({ev.seconds:.1f} s)", highlight=False)
            tid = self.tasks.get(ev.stage)
            if tid is not None:
                task = self.progress.tasks[tid]
                total = task.total if task.total is not None else 1
                self.progress.update(tid, completed=total, total=total)
        elif isinstance(ev, Log) and ev.level in ("warning", "error") and not self.quiet:
            self.console.print(f"[yellow]{ev.level}:[/] {escape(ev.message)}")


def summary_table(rep: Report) -> Table:
    from .. import present as say

    table = say.stage_table(rep, rmse=False)  # 80 columns: rmse is in report.md
    # The title on its own line (print_summary): a narrow table would wrap it.
    t = Table(caption=table.note or None, caption_justify="left")
    for i, head in enumerate(table.heads):
        t.add_column(head, justify="left" if i == 0 else "right")
    for row in table.rows:
        t.add_row(*row)
    return t


def output_table(rep: Report) -> Table | None:
    """Every output against FP32, by name, with the rule that judges it."""
    from .. import present as say

    table = say.output_table(rep, wide=False)  # 80 columns: nse and rmse are in report.md
    if not table.rows:
        return None
    # The note goes under the table as text (print_summary): a caption wraps to its width.
    t = Table(title="Outputs against FP32", title_justify="left")
    for i, head in enumerate(table.heads):
        t.add_column(head, justify="left" if i in (0, 1) or head == "rule" else "right")
    for row in table.rows:
        t.add_row(*row)
    return t


def print_summary(console: Console, rep: Report) -> None:
    """The run in engine.present's words, styled for a terminal."""
    from .. import present as say

    def say_plain(line: str | None) -> None:
        if line:
            console.print(escape(line), highlight=False)

    console.print(escape(say.title(rep)), highlight=False)
    console.print(summary_table(rep))
    if outputs := output_table(rep):
        console.print(outputs)
        say_plain(say.output_table(rep, wide=False).note)
    say_plain(say.size_line(rep))
    say_plain(say.precision_story(rep))
    for f in rep.findings:
        first, *rest = say.finding_lines(f)
        style = {"error": "bold red", "warning": "yellow"}.get(f.severity, "")
        word, _, text = first.partition(": ")
        console.print(f"[{style}]{word}[/]: {escape(text)}" if style else escape(first),
                      highlight=False)
        for line in rest:
            say_plain(f"  {line}")
    suspects = say.suspect_lines(rep)
    say_plain(suspects[0] if suspects else None)
    for line in suspects[1:]:
        say_plain(f"  {line}")
    for line in say.sensitivity_advice(rep):
        say_plain(f"  → {line}")
    say_plain(say.headline(rep))
    for line in say.npu_lines(rep):
        say_plain(line)
    for line in (say.draws_lines(rep) + say.qat_lines(rep) + say.equalize_lines(rep)
                 + say.bias_lines(rep)):
        say_plain(line)
    if v := say.verdict(rep):
        style = {"PASS": "bold green", "FAIL": "bold red"}.get(v[0], "bold yellow")
        console.print(f"Verdict: [{style}]{v[0]}[/] — {escape(v[1])}", highlight=False)
        say_plain(f"Advice: {say.advice(rep)}")
    say_plain(f"Run folder: {rep.run_dir}")


def run(args: argparse.Namespace) -> int:
    conn = _warm_worker(args)
    if conn is not None:  # TensorFlow is warm there: no import here
        try:
            return _run(args, None, [None], conn)
        finally:
            conn.close()
    # First: TensorFlow's ~3.5 s import then runs beside this command's own start.
    prewarmed = _prewarm(args)
    ran: list[str | None] = [None]  # the run folder, which gets the early child's log
    try:
        return _run(args, prewarmed, ran)
    finally:
        if prewarmed is not None:
            prewarmed.close(ran[0])


def _warm_worker(args: argparse.Namespace) -> Any:
    """The warm worker's connection when one runs this artq and may take the job, else None
    (said when one runs but cannot: busy, or another artq)."""
    if args.resume or not args.config or getattr(args, "no_worker", False):
        return None
    from ..warm import connect

    conn, why = connect()
    if why and not args.quiet:
        Console(stderr=True).print(f"note: {escape(why)}; running the job here", highlight=False)
    return conn


class _FailedThere(EngineError):
    """A job the warm worker ran ended failed or cancelled: what it said, with its code."""

    def __init__(self, message: str, hint: str, code: int, run_dir: str) -> None:
        super().__init__(message, hint)
        self.exit_code = code
        self.run_dir = run_dir or None


def _run_there(conn: Any, config: str, overrides: list[str], cache: Any,
               sink: Any) -> Report:
    """The job on the warm worker: its events to ``sink``; its report, or its failure."""
    failed: list[RunFailed] = []

    def relay(ev: Event) -> None:
        if isinstance(ev, RunFailed):
            failed.append(ev)
        sink(ev)

    done = conn.run(config, overrides, cache, relay)
    lost = "see the worker's log in the run folder, or run again with --no-worker"
    if done.exit_code != 0:
        said = failed[-1] if failed else None
        raise _FailedThere(said.message if said else f"the job ended with code {done.exit_code}",
                           said.hint if said else lost, done.exit_code,
                           done.run_dir or (said.run_dir if said else ""))
    rep = read_report(done.run_dir)
    if rep is None:
        raise _FailedThere(f"{done.run_dir}: the run ended without a readable report.json",
                           lost, 1, done.run_dir)
    return rep


def _prewarm(args: argparse.Namespace) -> Any:
    """A TensorFlow child for the job, started now (``artq`` as a command only: see
    :mod:`engine.backends.prewarm`); None when the job will not want one."""
    if (not getattr(args, "prewarm", False) or args.resume or not args.config
            or os.environ.get("ARTQ_PREWARM") == "0"):
        return None
    from ..backends.prewarm import Prewarmed, worth_starting

    if not worth_starting(args.config, args.overrides):
        return None
    try:
        return Prewarmed()
    except OSError:  # no child, no harm: the job starts its own
        return None


def _run(args: argparse.Namespace, backend: Any, ran: list[str | None],
         conn: Any = None) -> int:
    err_console = Console(stderr=True)
    out_console = Console()
    from .. import config as config_mod
    from ..cache import default_root

    cancel = CancelToken()
    pressed = [0]

    def on_sigint(signum: int, frame: Any) -> None:
        pressed[0] += 1
        if pressed[0] == 1:
            cancel.cancel()
            if conn is not None:
                conn.cancel()
            err_console.print("[yellow]cancelling… (Ctrl-C again to force)[/]")
        else:
            raise KeyboardInterrupt

    try:
        if args.resume and args.config:
            # The run's own config.toml is what resumes; a second config would be ignored.
            raise config_mod.ConfigError(
                f"give a job config or --resume RUN, not both (got {args.config} and {args.resume})",
                "a resumed run continues with its own config.toml; change it with --set")
        if args.resume:
            from ..job import resume_config

            cfg = resume_config(args.resume, args.overrides)
        elif not args.config:
            raise config_mod.ConfigError("give a job config (or --resume RUN)",
                                         "for example: artq run sample_configs/digits_ptq.toml")
        overrides = list(args.overrides)
        if not args.resume:
            if args.runs_dir:
                overrides.append(f"output.runs_dir={json.dumps(str(Path(args.runs_dir).resolve()))}")
            cfg = config_mod.load_config(args.config, overrides)
        confident = args.strict_confident or cfg.evaluation.strict_confident
        if (args.strict or confident) and "int8" not in cfg.quantization.stages:
            # The verdict judges INT8: without it --strict would pass anything.
            flag = "--strict" if args.strict else "--strict-confident"
            raise config_mod.ConfigError(f"{flag} needs the int8 stage: the verdict judges INT8",
                                         f"add \"int8\" to quantization.stages, or drop {flag}",
                                         key="quantization.stages")
        old = signal.signal(signal.SIGINT, on_sigint)
        # kill, a job scheduler or a closed SSH session: cancel as Ctrl-C does, so the run
        # folder says "cancelled" and keeps its log instead of looking unfinished.
        old_term = signal.signal(signal.SIGTERM, lambda *_: (
            cancel.cancel(), conn.cancel() if conn is not None else None))
        try:
            with RichSink(err_console, quiet=args.quiet) as sink:
                if conn is not None:
                    if not args.quiet:
                        err_console.print(f"on the warm worker (pid {conn.worker.pid})",
                                          highlight=False)
                    rep = _run_there(conn, args.config, overrides,
                                     False if args.no_cache else str(default_root()), sink)
                else:
                    from ..preflight import checked

                    pre = checked(cfg)  # a mistake said before the job's imports
                    from ..job import run_job

                    rep = run_job(cfg, sink, cancel, resume=args.resume,
                                  cache_dir=None if args.no_cache else default_root(),
                                  backend=backend, preflighted=pre).report
                ran[0] = rep.run_dir
        finally:
            signal.signal(signal.SIGINT, old)
            signal.signal(signal.SIGTERM, old_term)
    except EngineError as exc:
        run_dir = ran[0] = getattr(exc, "run_dir", None)
        where = ""
        if run_dir:
            where = f" [run folder marked {'cancelled' if exc.exit_code == 3 else 'failed'}: {run_dir}]"
        # One line: what went wrong, what to do, where the log is.
        err_console.print(f"[bold red]error:[/] {escape(str(exc) + where)}", highlight=False,
                          soft_wrap=True)
        if run_dir and args.json:
            report = Path(run_dir) / "report.json"
            if report.is_file():
                sys.stdout.write(report.read_text(encoding="utf-8"))
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[yellow]cancelled[/]")
        return 3
    if args.json:
        sys.stdout.write(json.dumps(rep.to_dict(), indent=2) + "\n")
    if not args.json:
        print_summary(out_console, rep)
    v = rep.verdict
    if v is not None and strict_failure(v, strict=args.strict, confident=confident):
        from ..present import verdict as verdict_words

        word, line = verdict_words(rep) or ("FAIL", "")
        err_console.print(f"[bold red]verdict failed[/] ({VerdictFailed.__name__}): "
                          f"{escape(word)} — {escape(line)}", highlight=False, soft_wrap=True)
        return VerdictFailed.exit_code
    return 0


def strict_failure(v: Verdict, *, strict: bool, confident: bool) -> bool:
    """Exit 4? ``strict``: on FAIL only (the whole interval outside the bar, or a verdict
    without intervals that fails on its value); ``confident``: also when not resolved."""
    state = v.confidence
    return (state == FAIL and (strict or confident)) or (state == UNRESOLVED and confident)
