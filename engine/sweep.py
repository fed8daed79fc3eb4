"""``artq sweep``: the variants of one config side by side.

    run_sweep("sample_configs/ocr_crnn_conv.toml",
              [("calibration.samples", [25, 50, 100, 200, 400])])

The cartesian product of the ``--set`` values is run as child processes
(``python -m engine.worker run CONFIG --set ... --cache DIR``), as many at once as there are
cores. Each variant is a normal run folder; what the variants share (synthetic data, the
exported model, the FP32 and FP16 stages and their test outputs) is computed once, by the
first variant to need it, in a cache folder inside the sweep folder
(:mod:`engine.cache`). The sweep folder holds ``sweep.json`` and ``sweep.md``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cancel import CancelToken
from .config import JobConfig, load_config
from .errors import CancelledError, ConfigError
from .events import Event, RunFailed, RunFinished, RunStarted, event_from_dict
from .present_interval import (
    VERSUS_NOTE,
    drop_cell,
    interval_chart,
    noise_sentence,
    versus_cell,
)
from .protocol import worker_command, worker_env
from .rawconfig import parse_value
from .report import read_report
from .rundir import RunDir
from .uncertainty import comparison_key, headline_interval, versus_best

SCHEMA = "artq.sweep/1"

#: (variant index, event) for a front-end's progress display.
VariantSink = Callable[[int, Event], None]


@dataclass(frozen=True)
class Variant:
    index: int
    #: The swept keys and this variant's values, in --set order.
    values: dict[str, Any]

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={json.dumps(v) if isinstance(v, str) else _toml(v)}"
                for k, v in self.values.items()]


def varying_keys(values: Sequence[dict[str, Any]]) -> list[str]:
    """The keys whose value changes between variants (all keys when none does), in order.

    A key given one value (--set a=1 beside --set b=10,20) is the same everywhere; in every
    label it only pushed the figures off an 80-column table.
    """
    keys = list(dict.fromkeys(k for v in values for k in v))
    varying = [k for k in keys
               if len({json.dumps(v.get(k), sort_keys=True, default=str) for v in values}) > 1]
    return varying or keys


def variant_labels(values: Sequence[dict[str, Any]]) -> list[str]:
    """A short label per variant: its values of the :func:`varying_keys`."""
    keys = varying_keys(values)
    return [" ".join(f"{k.rsplit('.', 1)[-1]}={v.get(k)}" for k in keys) for v in values]


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(json.dumps(x) if isinstance(x, str) else _toml(x) for x in v) + "]"
    return str(v)


def split_values(text: str) -> list[str]:
    """``50,100`` → ["50", "100"]; commas inside [...] or quotes do not split."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def parse_sets(specs: Sequence[str]) -> list[tuple[str, list[Any]]]:
    """``["calibration.samples=25,50"]`` → ``[("calibration.samples", [25, 50])]``."""
    out: list[tuple[str, list[Any]]] = []
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"--set needs KEY=V1,V2,..., got {spec!r}",
                              "for example --set calibration.samples=25,50,100")
        k, v = (part.strip() for part in spec.split("=", 1))
        values = [parse_value(x) for x in split_values(v)]
        if not values:
            raise ConfigError("has no values to sweep", "give KEY=V1,V2,...", key=k)
        if any(k == prev for prev, _ in out):
            raise ConfigError("is swept twice; give all its values in one --set", key=k)
        out.append((k, values))
    return out


def plan(sets: Sequence[tuple[str, list[Any]]]) -> list[Variant]:
    """The cartesian product, first key varying slowest."""
    keys = [k for k, _ in sets]
    return [Variant(i, dict(zip(keys, combo, strict=True)))
            for i, combo in enumerate(itertools.product(*[v for _, v in sets]))]


@dataclass(frozen=True)
class VariantResult:
    values: dict[str, Any]
    status: str
    run_dir: str
    report: str
    metrics: dict[str, Any]
    drop: float | None
    #: the run's own total (report.json timings.total_s) and its process's wall time.
    total_s: float | None
    process_s: float
    sizes: dict[str, int] = field(default_factory=dict)
    npu_ms: float | None = None
    convert_s: float | None = None
    stage_drops: dict[str, float] = field(default_factory=dict)
    error: str = ""
    #: The verdict's state and its worst output's interval (engine.verdict.Uncertainty).
    state: str | None = None
    interval: dict[str, Any] | None = None
    #: The items.npz vector that output is judged by (engine.uncertainty.comparison_key).
    items_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self._dict(), "state": self.state, "interval": self.interval}

    def _dict(self) -> dict[str, Any]:
        return {
            "set": self.values, "status": self.status, "run_dir": self.run_dir,
            "report": self.report, "metrics": self.metrics, "drop": self.drop,
            "stage_drops": self.stage_drops, "total_s": self.total_s,
            "process_s": round(self.process_s, 3), "sizes": self.sizes,
            "npu_ms": self.npu_ms, "convert_s": self.convert_s, "error": self.error,
        }


@dataclass(frozen=True)
class SweepResult:
    path: Path
    data: dict[str, Any]


def _variant_name(base: str, v: Variant) -> str:
    tag = "-".join(f"{k.rsplit('.', 1)[-1]}{val}" for k, val in v.values.items())
    return re.sub(r"[^A-Za-z0-9_.-]+", "", f"{base}-{tag}")[:80]


def _summarize(v: Variant, run_dir: str, process_s: float, error: str) -> VariantResult:
    rep = read_report(run_dir) if run_dir else None
    if rep is None:
        return VariantResult(v.values, "failed", run_dir, "", {}, None, None, process_s,
                             error=error or "the run left no report")
    m = rep.stage("int8").metrics
    metrics: dict[str, Any] = {k: m.task[k] for k in m.names()} if m else {}
    # The output the verdict found worst: the one that decides (not output 0).
    a = m.output(rep.verdict.output if rep.verdict else None) if m else None
    if a is not None:
        metrics.update(agreement_acc=a.acc, agreement_cos=a.cos, output_sqnr_db=a.sqnr_db)
    return VariantResult(
        values=v.values,
        status=rep.status,
        run_dir=run_dir,
        report=str(Path(run_dir) / "report.json"),
        metrics=metrics,
        drop=rep.verdict.drop if rep.verdict else None,
        total_s=rep.timing("total"),
        process_s=process_s,
        sizes={k: s.size_bytes for k, s in rep.stages.items() if s.size_bytes},
        npu_ms=rep.npu.summary.latency_ms if rep.npu and rep.npu.summary else None,
        convert_s=rep.timing("convert_int8"),
        stage_drops={k: s.drop for k, s in rep.stages.items() if s.drop is not None},
        error=rep.error.message if rep.error else error,
        state=rep.verdict.state if rep.verdict else None,
        interval=headline_interval(rep.verdict),
        items_key=comparison_key(rep.verdict),
    )


def _run_variant(
    config: Path, v: Variant, extra: list[str], cache: Path, sink: VariantSink,
    cancel: CancelToken, procs: dict[int, subprocess.Popen[str]], lock: threading.Lock,
    parallel_runs: int = 1,
) -> VariantResult:
    args = [str(config)]
    for o in [*extra, *v.overrides]:
        args += ["--set", o]
    cmd = worker_command("run", [*args, "--cache", str(cache)])
    # Variants side by side already fill the cores: one TF process each.
    env = {**worker_env(), **({"ARTQ_PARALLEL": "0"} if parallel_runs > 1 else {})}
    t0 = time.perf_counter()
    run_dir, error = "", ""
    with lock:
        if cancel.cancelled:
            raise CancelledError()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, text=True, env=env)
        procs[v.index] = proc
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            ev = event_from_dict(json.loads(line))
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(ev, RunStarted):
            run_dir = ev.run_dir
        elif isinstance(ev, RunFailed):
            error = ev.message
            run_dir = run_dir or ev.run_dir
        elif isinstance(ev, RunFinished):
            run_dir = ev.run_dir
        sink(v.index, ev)
    proc.wait()
    with lock:
        procs.pop(v.index, None)
    return _summarize(v, run_dir, time.perf_counter() - t0, error)


def run_sweep(
    config: str | os.PathLike[str],
    sets: Sequence[tuple[str, list[Any]]],
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    jobs: int = 0,
    keep_cache: bool = False,
    sink: VariantSink = lambda i, ev: None,
    cancel: CancelToken | None = None,
    on_start: Callable[[Path, list[dict[str, Any]]], None] | None = None,
) -> SweepResult:
    """Run every variant (``jobs`` at once; 0: one per core) and write the sweep folder.

    ``on_start(folder, values)`` is called once the sweep folder exists, with each
    variant's swept values in order, before any variant runs (a UI lays out its rows).
    """
    cancel = cancel or CancelToken()
    config = Path(config).resolve()
    base_over = [f"output.runs_dir={json.dumps(str(Path(runs_dir).resolve()))}"] if runs_dir else []
    base = load_config(config, base_over)
    variants = plan(sets)
    # Every variant's config is checked before anything runs: a bad value fails here.
    cfgs: list[JobConfig] = [load_config(config, base_over + v.overrides) for v in variants]
    # And what each would find missing first (model, data, target): one exit 2, not N failures.
    from .preflight import preflight  # noqa: PLC0415

    for c in cfgs:
        preflight(c)
    jobs = jobs or os.cpu_count() or 1
    jobs = max(1, min(jobs, len(variants)))
    sweep = RunDir.create(base.output.runs_dir, f"sweep-{base.name}")
    if on_start is not None:
        on_start(sweep.path, [v.values for v in variants])
    cache = sweep.path / "cache"
    extra = list(base_over)
    # Cores are shared between the runs: give each run's evaluation its share.
    if base.evaluation.workers == 0:
        extra.append(f"evaluation.workers={max(1, (os.cpu_count() or 1) // jobs)}")
    procs: dict[int, subprocess.Popen[str]] = {}
    lock = threading.Lock()
    t0 = time.perf_counter()
    results: list[VariantResult | None] = [None] * len(variants)

    def one(v: Variant, cfg: JobConfig) -> None:
        results[v.index] = _run_variant(
            config, v, [*extra, f"name={json.dumps(_variant_name(cfg.name, v))}"], cache,
            sink, cancel, procs, lock, jobs)

    stop = threading.Event()

    def watch_cancel() -> None:
        while not stop.wait(0.1):
            if cancel.cancelled:
                with lock:
                    for p in procs.values():
                        if p.poll() is None:
                            p.terminate()  # the worker cancels gracefully on SIGTERM
                return

    watcher = threading.Thread(target=watch_cancel, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, v, c) for v, c in zip(variants, cfgs, strict=True)]
            for f in futures:
                with contextlib.suppress(CancelledError):
                    f.result()
    finally:
        stop.set()
        watcher.join()
        if not keep_cache:
            shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - t0
    done = [r for r in results if r is not None]
    data = _sweep_json(base, config, sets, done, wall, jobs, cancel.cancelled,
                       str(cache) if keep_cache else None)
    sweep.write_json("sweep.json", data)
    sweep.write_text("sweep.md", render_markdown(data))
    if cancel.cancelled:
        raise CancelledError("sweep cancelled; finished variants are in " + str(sweep.path))
    return SweepResult(sweep.path, data)


def _sweep_json(
    base: JobConfig, config: Path, sets: Sequence[tuple[str, list[Any]]],
    results: list[VariantResult], wall: float, jobs: int, cancelled: bool, cache: str | None,
) -> dict[str, Any]:
    procs = sum(r.process_s for r in results)
    totals = [r.total_s for r in results if r.total_s is not None]
    return {
        "schema": SCHEMA,
        "name": base.name,
        "config": str(config),
        "status": "cancelled" if cancelled else (
            "ok" if results and all(r.status == "ok" for r in results) else "failed"),
        "sets": {k: v for k, v in sets},
        "jobs": jobs,
        "wall_s": round(wall, 3),
        #: Sum of the variants' process times; wall_s / sum_s < 1 when runs overlapped.
        "sum_s": round(procs, 3),
        "sum_total_s": round(sum(totals), 3),
        "parallel_ratio": round(wall / procs, 3) if procs else None,
        "metric": _primary(results),
        "cache": cache,
        "variants": [{**r.to_dict(), "versus_best": vs}
                     for r, vs in zip(results, versus_best(results), strict=True)],
    }


def _primary(results: list[VariantResult]) -> str | None:
    for r in results:
        rep = read_report(r.run_dir) if r.run_dir else None
        if rep and rep.verdict:
            return rep.verdict.metric
    return None


# ------------------------------------------------------------------ renderings (no rich)


def drop_chart(data: dict[str, Any], width: int = 40) -> list[str]:
    """A text chart of the INT8 drop (points) per variant, in sweep order: bars, or with
    the variants' 95 % intervals (engine.present_interval.interval_chart) where every
    finished one has its interval."""
    vs = data.get("variants") or []
    labels = variant_labels([v["set"] for v in vs])
    drops = [v.get("drop") for v in vs]
    ivs = [v.get("interval") for v in vs]
    known = [d for d in drops if d is not None]
    if not known:
        return ["(no variant has a drop)"]
    if all(isinstance(iv, dict) for d, iv in zip(drops, ivs, strict=True) if d is not None):
        return interval_chart(labels, drops, ivs, width)
    top = max(max(known), 0.0) or 1.0
    pad = max(len(x) for x in labels)
    lines = []
    for lab, d in zip(labels, drops, strict=True):
        if d is None:
            lines.append(f"{lab:<{pad}}  failed")
            continue
        n = max(0.0, d) / top * width
        bar = "█" * int(n) + ("▌" if n - int(n) >= 0.5 else "")
        lines.append(f"{lab:<{pad}}  {bar} {d:.2f} pts")
    return lines


def _f(v: Any, fmt: str, unit: str = "") -> str:
    return "—" if v is None else format(v, fmt) + unit


def render_markdown(data: dict[str, Any]) -> str:
    out = [f"# artq sweep: {data.get('name', '')}", ""]
    out.append(f"- config: `{data.get('config')}`")
    out.append("- swept: " + "; ".join(f"`{k}` = {v}" for k, v in (data.get("sets") or {}).items()))
    out.append(f"- status: **{str(data.get('status', '')).upper()}**, {len(data.get('variants') or [])} "
               f"variant(s), {data.get('jobs')} at a time")
    ratio = data.get("parallel_ratio")
    out.append(f"- wall time {data.get('wall_s', 0):.1f} s against {data.get('sum_s', 0):.1f} s "
               f"for the runs one after another" + (f" (ratio {ratio:.2f})" if ratio else ""))
    out.append("")
    metric = data.get("metric") or "metric"
    out.append(f"| variant | status | INT8 {metric} | drop (pts, 95 %) | vs best | FP16 drop | "
               "agree acc | INT8 size | NPU ms | INT8 convert s | run s | run folder |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for v in data.get("variants") or []:
        m = v.get("metrics") or {}
        val = m.get(metric)
        lab = " ".join(f"{k.rsplit('.', 1)[-1]}={x}" for k, x in v["set"].items())
        size = (v.get("sizes") or {}).get("int8")
        cells = [
            lab,
            str(v.get("status")),
            _f(None if val is None else 100 * val, ".2f", " %"),
            drop_cell(v.get("drop"), v.get("interval"), sign=""),
            versus_cell(v.get("versus_best")),
            _f((v.get("stage_drops") or {}).get("fp16"), ".2f"),
            _f(None if m.get("agreement_acc") is None else 100 * m["agreement_acc"], ".2f", " %"),
            _f(size / 1024 if size else None, ".1f", " KiB"),
            _f(v.get("npu_ms"), ".3f"),
            _f(v.get("convert_s"), ".1f"),
            _f(v.get("total_s"), ".1f"),
            f"`{Path(v.get('run_dir') or '').name}`",
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    vs = data.get("variants") or []
    if said := noise_sentence(variant_labels([v["set"] for v in vs]),
                              [v.get("versus_best") for v in vs]):
        out += [f"{VERSUS_NOTE}. {said}", ""]
    out.append("## INT8 drop per variant")
    out.append("")
    if any(isinstance(v.get("interval"), dict) for v in vs):
        out += ["● the drop, ├─┤ its 95 % interval, │ zero.", ""]
    out.append("```")
    out.extend(drop_chart(data))
    out.append("```")
    out.append("")
    return "\n".join(out)
