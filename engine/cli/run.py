"""``artq run``: one job with a live progress display and a final summary."""

from __future__ import annotations

import argparse
import json
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
from ..events import STAGE_LABELS, Event, Log, StageFinished, StageStarted
from ..events import Progress as ProgressEvent
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
        "4 verdict failed (--strict)",
    )
    p.add_argument("config", nargs="?", help="job config (.toml); see sample_configs/")
    p.add_argument("--runs-dir", metavar="DIR", help="write the run folder under DIR "
                   "(default: the config's output.runs_dir)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config key, e.g. --set calibration.samples=50 (repeatable)")
    p.add_argument("--json", action="store_true",
                   help="print the final report.json on stdout and nothing else (progress goes to stderr)")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 4 when the INT8 drop fails the profile's threshold")
    p.add_argument("--resume", metavar="RUN",
                   help="continue a cancelled or failed QAT run (a run folder) from its last "
                   "epoch checkpoint")
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


#: Short column heads so a table of every task metric fits 80 columns.
SHORT = {
    "top1": "top-1",
    "sequence_accuracy": "seq acc",
    "char_accuracy": "char acc",
    "box_f1": "box F1",
    "box_precision": "box P",
    "box_recall": "box R",
    "pixel_f1": "pix F1",
}


def summary_table(report: dict[str, Any]) -> Table:
    from ..report import task_metric_names

    names = task_metric_names(report)
    stages = report.get("stages") or {}
    show_acc = any(((st.get("metrics") or {}).get("agreement") or {}).get("acc") is not None
                   for st in stages.values())
    t = Table(title=f"{report.get('name', '')}: {report.get('status', '').upper()} "
                    "(metrics in %, drop in points)", title_justify="left")
    t.add_column("stage")
    t.add_column("KiB", justify="right")
    for n in names:
        t.add_column(SHORT.get(n, n), justify="right")
    t.add_column("drop", justify="right")
    if show_acc:
        t.add_column("agree", justify="right")
    t.add_column("cos", justify="right")
    primary = (report.get("verdict") or {}).get("metric")
    base = ((stages.get("fp32") or {}).get("metrics") or {}).get(primary)
    for name, st in stages.items():
        m = st.get("metrics") or {}
        agr = m.get("agreement") or {}
        size = st.get("size_bytes")
        drop = ""
        if st.get("drop") is not None:
            drop = f"{st['drop']:+.2f}"
        elif base is not None and m.get(primary) is not None:
            drop = f"{(base - m[primary]) * 100:+.2f}"
        row = [
            name.upper(),
            f"{size / 1024:.1f}" if size else "—",
            *[f"{100 * m[n]:.2f}" if m.get(n) is not None else "—" for n in names],
            drop,
        ]
        if show_acc:
            row.append(f"{100 * agr['acc']:.2f}" if agr.get("acc") is not None else "—")
        row.append(f"{agr['cos']:.4f}" if agr.get("cos") is not None else "—")
        t.add_row(*row)
    return t


def print_summary(console: Console, report: dict[str, Any]) -> None:
    from ..report import precision_story, qat_note, size_change

    console.print(summary_table(report))
    stages = report.get("stages") or {}
    fp32 = (stages.get("fp32") or {}).get("size_bytes")
    int8 = (stages.get("int8") or {}).get("size_bytes")
    if fp32 and int8:
        console.print(f"INT8 is {size_change(fp32, int8)}.")
    story = precision_story(report)
    if story:
        console.print(story, highlight=False)
    for f in report.get("findings") or []:
        word = {"error": "[bold red]DATA ERROR[/]", "warning": "[yellow]DATA WARNING[/]"}.get(
            f.get("severity", ""), "data note")
        console.print(f"{word}: {escape(f.get('message', ''))}", highlight=False)
    from ..layers import short_name

    order = (report.get("layer_analysis") or {}).get("ranking") or []
    suspects = [r for r in report.get("layers") or [] if (r.get("error") or {}).get("suspect")]
    suspects.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    if suspects:
        console.print(f"Suspect layers, worst first ({len(suspects)}; all layers in report.md "
                      "and layers.csv):")
        for r in suspects[:5]:
            console.print(f"  #{r['index']} {r['op']} {escape(short_name(r['name']))}: "
                          f"{escape(r['error']['why'])}", highlight=False)
    tried = [s for s in report.get("sensitivity") or [] if s.get("regained_points") is not None]
    for s in tried[:3]:
        console.print(f"  → {escape(s.get('suggestion', ''))}", highlight=False)
    if report.get("sensitivity") and not tried:
        first = report["sensitivity"][0]
        console.print(f"  → {escape(first.get('suggestion', ''))}", highlight=False)
    npu = (report.get("npu") or {}).get("summary")
    if npu:
        console.print(
            f"N6 estimate: {npu.get('ops_npu', '?')}/{npu.get('ops_total', '?')} ops on the NPU, "
            f"{npu.get('epochs_hw', '?')} HW / {npu.get('epochs_sw', '?')} SW epochs, "
            f"{npu.get('latency_ms', 0):.2f} ms"
        )
    if qat_note(report):
        console.print(qat_note(report), highlight=False)
    ptq = (report.get("comparison") or {}).get("ptq")
    v = report.get("verdict")
    if ptq and v and v.get("drop") is not None and ptq.get("drop") is not None:
        console.print(f"QAT against PTQ: drop {v['drop']:.2f} vs {ptq['drop']:.2f} points "
                      f"(PTQ run {ptq.get('run_dir')})", highlight=False)
    if v and v.get("drop") is not None:
        word = "[bold green]PASS[/]" if v["pass"] else "[bold red]FAIL[/]"
        console.print(f"Verdict: {word} — INT8 drop {v['drop']:.2f} points on {v['metric']} "
                      f"(profile {v['profile']}: ≤ {v['threshold']:g})")
        console.print(f"Advice: {v['advice']}")
    console.print(f"Run folder: {report.get('run_dir')}")


def run(args: argparse.Namespace) -> int:
    err_console = Console(stderr=True)
    out_console = Console()
    from .. import config as config_mod
    from ..job import run_job

    cancel = CancelToken()
    pressed = [0]

    def on_sigint(signum: int, frame: Any) -> None:
        pressed[0] += 1
        if pressed[0] == 1:
            cancel.cancel()
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
        else:
            overrides = list(args.overrides)
            if args.runs_dir:
                overrides.append(f"output.runs_dir={json.dumps(str(Path(args.runs_dir).resolve()))}")
            cfg = config_mod.load_config(args.config, overrides)
        if args.strict and "int8" not in cfg.quantization.stages:
            # The verdict judges INT8: without it --strict would pass anything.
            raise config_mod.ConfigError("--strict needs the int8 stage: the verdict judges INT8",
                                         "add \"int8\" to quantization.stages, or drop --strict",
                                         key="quantization.stages")
        old = signal.signal(signal.SIGINT, on_sigint)
        # kill, a job scheduler or a closed SSH session: cancel as Ctrl-C does, so the run
        # folder says "cancelled" and keeps its log instead of looking unfinished.
        old_term = signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
        try:
            with RichSink(err_console, quiet=args.quiet) as sink:
                result = run_job(cfg, sink, cancel, resume=args.resume)
        finally:
            signal.signal(signal.SIGINT, old)
            signal.signal(signal.SIGTERM, old_term)
    except EngineError as exc:
        run_dir = getattr(exc, "run_dir", None)
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
    report = result.report
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print_summary(out_console, report)
    v = report.get("verdict") or {}
    if args.strict and v and not v.get("pass"):
        err_console.print(f"[bold red]verdict failed[/] ({VerdictFailed.__name__}): "
                          f"drop {v.get('drop')} > {v.get('threshold')}")
        return VerdictFailed.exit_code
    return 0
