"""``artq sweep``: what-if variants of one config, run side by side on every core."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from rich import box
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..cancel import CancelToken
from ..errors import EngineError
from ..events import Event, RunFailed, RunFinished, StageStarted
from ..verdict import Verdict
from .console import Console

HELP = "run variants of a config (e.g. calibration sample counts) and compare them"
DESCRIPTION = """\
Run the cartesian product of the --set values as separate runs, several at once (one per
core by default). What the variants share — synthetic data, the exported model, the FP32
and FP16 stages and the FP32 reference outputs — is computed once. Writes a sweep folder
(runs/<time>-sweep-<name>/) with sweep.json and sweep.md; each variant is a normal run
folder beside it.
"""



def _jobs(text: str) -> int:
    """-j N: 0 means one per core; a negative count is a mistake, not 'one at a time'."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"needs 0 (one per core) or more, got {n}")
    return n

def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", help=HELP, description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: artq sweep sample_configs/ocr_crnn_conv.toml "
        "--set calibration.samples=25,50,100,200,400\n"
        "exit codes: 0 all variants done, 1 a variant failed, 2 bad config, 3 cancelled",
    )
    p.add_argument("config", help="job config (.toml)")
    p.add_argument("--set", dest="sets", metavar="KEY=V1,V2,...", action="append", default=[],
                   required=True, help="a key and its values to sweep (repeatable: the "
                   "variants are every combination)")
    p.add_argument("--runs-dir", metavar="DIR",
                   help="where the sweep and run folders go (default: the config's output.runs_dir)")
    p.add_argument("--jobs", "-j", type=_jobs, default=0, metavar="N",
                   help="variants at once (default 0: one per core)")
    p.add_argument("--keep-cache", action="store_true",
                   help="keep the shared cache folder inside the sweep folder")
    p.add_argument("--json", action="store_true",
                   help="print the sweep's JSON on stdout and nothing else")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")


class _Display:
    """One line per variant: its current stage, then its outcome."""

    def __init__(self, console: Console, labels: list[str], quiet: bool) -> None:
        self.labels = labels
        self.console = console
        self.live = console.is_terminal and not quiet
        self.quiet = quiet
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=console, disable=not self.live)
        self.tasks: dict[int, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> _Display:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, i: int, ev: Event) -> None:
        with self.lock:
            if i not in self.tasks:
                self.tasks[i] = self.progress.add_task(f"{self.labels[i]}: starting", total=None)
            tid = self.tasks[i]
            if isinstance(ev, StageStarted):
                self.progress.update(tid, description=f"{self.labels[i]}: {ev.label}")
            elif isinstance(ev, RunFinished):
                drop = Verdict.from_dict(ev.verdict or {}).drop
                text = f"done, drop {drop:.2f} pts" if drop is not None else "done"
                self.progress.update(tid, description=f"{self.labels[i]}: {text}", total=1,
                                     completed=1)
                if not self.live and not self.quiet:
                    self.console.print(f"{escape(self.labels[i])}: {text}", highlight=False)
            elif isinstance(ev, RunFailed):
                self.progress.update(tid, description=f"{self.labels[i]}: {ev.status.upper()} "
                                     f"{escape(ev.message)}", total=1, completed=1)
                if not self.live and not self.quiet:
                    self.console.print(f"{escape(self.labels[i])}: {ev.status} — "
                                       f"{escape(ev.message)}", highlight=False)


def print_table(console: Console, table: Table) -> None:
    """The table on a terminal as it fits; into a pipe or a file as wide as its columns need
    (rich would squeeze it to 80 columns there and cut the figures: '9…')."""
    if console.is_terminal:
        console.print(table)
        return
    from rich.measure import Measurement  # noqa: PLC0415

    need = Measurement.get(console, console.options.update_width(10_000), table).maximum
    width = console.width
    console.width = max(width, need)  # print(width=) is capped at the console's own width
    try:
        console.print(table)
    finally:
        console.width = width


def summary_table(data: dict[str, Any]) -> Table:
    """One row per variant, 80 columns wide: units in the title, not in every cell; a
    variant that did not finish shows its status where its metric would be."""
    metric = data.get("metric") or "metric"
    variants = data.get("variants") or []
    from ..present_interval import drop_cell, versus_cell  # noqa: PLC0415
    from ..sweep import variant_labels  # noqa: PLC0415 - light, but only for this table

    labels = variant_labels([v.get("set") or {} for v in variants])

    def f(v: Any, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    def fp16(v: dict[str, Any]) -> str:
        return f((v.get("stage_drops") or {}).get("fp16"), "+.2f")

    # "vs best" only where a variant was compared item by item with the best (not in sweeps
    # from before); then, for 80 columns, the INT8 conversion time gives way (sweep.md keeps
    # it) and so does FP16's drop when it is the same in every variant (said in the title).
    vs_col = any(isinstance(v.get("versus_best"), dict) for v in variants)
    fp16s = {fp16(v) for v in variants}
    same16 = vs_col and len(fp16s) == 1 and variants
    cols: list[tuple[str, Any]] = [
        ("INT8", lambda v, m: f(None if m.get(metric) is None else 100 * m[metric], ".2f")
         if v.get("status", "ok") == "ok" else str(v.get("status"))),
        ("drop", lambda v, m: drop_cell(v.get("drop"), v.get("interval"))),
        *([("vs best", lambda v, m: versus_cell(v.get("versus_best")))] if vs_col else []),
        *([] if same16 else [("FP16", lambda v, m: fp16(v))]),
        ("agree", lambda v, m: f(None if m.get("agreement_acc") is None
                                 else 100 * m["agreement_acc"], ".2f")),
        ("KiB", lambda v, m: f((v.get("sizes") or {}).get("int8", 0) / 1024
                               if (v.get("sizes") or {}).get("int8") else None, ".1f")),
        ("NPU ms", lambda v, m: f(v.get("npu_ms"), ".3f")),
        *([] if vs_col else [("conv", lambda v, m: f(v.get("convert_s"), ".1f"))]),
        ("run", lambda v, m: f(v.get("total_s"), ".1f")),
    ]
    t = Table(title=f"sweep {data.get('name', '')}: {str(data.get('status', '')).upper()} — "
              f"INT8 {metric} and agreement in %, INT8 and FP16 drops in points"
              + (" (INT8's ± its 95 % half-width)" if vs_col else "")
              + (f", FP16 {next(iter(fp16s))} in every variant" if same16 else "")
              + ", INT8 size in KiB, times in s",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("variant", justify="left", no_wrap=True,
                 min_width=max(map(len, labels), default=7))
    for head, _ in cols:
        t.add_column(head, justify="right", no_wrap=True)
    for label, v in zip(labels, variants, strict=True):
        m = v.get("metrics") or {}
        t.add_row(label, *(cell(v, m) for _, cell in cols))
    return t


def run(args: argparse.Namespace) -> int:
    from ..sweep import drop_chart, parse_sets, plan, run_sweep, variant_labels

    err = Console(stderr=True)
    out = Console()
    cancel = CancelToken()
    pressed = [0]

    def on_sigint(signum: int, frame: Any) -> None:
        pressed[0] += 1
        cancel.cancel()
        err.print("[yellow]cancelling the sweep…[/]")
        if pressed[0] > 1:
            raise KeyboardInterrupt

    try:
        sets = parse_sets(args.sets)
        labels = variant_labels([v.values for v in plan(sets)])
        old = signal.signal(signal.SIGINT, on_sigint)
        try:
            with _Display(err, labels, args.quiet) as display:
                res = run_sweep(args.config, sets, runs_dir=args.runs_dir, jobs=args.jobs,
                                keep_cache=args.keep_cache, sink=display, cancel=cancel)
        finally:
            signal.signal(signal.SIGINT, old)
    except EngineError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]cancelled[/]")
        return 3
    data = res.data
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        print_table(out, summary_table(data))
        from ..present_interval import VERSUS_NOTE, noise_sentence  # noqa: PLC0415

        variants = data.get("variants") or []
        said = noise_sentence(variant_labels([v.get("set") or {} for v in variants]),
                              [v.get("versus_best") for v in variants])
        if said:
            out.print(escape(f"{VERSUS_NOTE}. {said}"), highlight=False)
        out.print("INT8 drop per variant (points"
                  + ("; ● the drop, ├─┤ its 95 % interval, │ zero" if any(
                      isinstance(v.get("interval"), dict) for v in variants) else "") + "):")
        for line in drop_chart(data):
            out.print("  " + escape(line), highlight=False)
        if data.get("parallel_ratio"):
            out.print(f"Wall time {data['wall_s']:.1f} s for {data['sum_s']:.1f} s of runs "
                      f"({data['jobs']} at a time): ratio {data['parallel_ratio']:.2f}.",
                      highlight=False)
        out.print(f"Sweep folder: {res.path}")
    return 0 if data.get("status") == "ok" else 1
