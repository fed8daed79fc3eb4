"""A fake worker and fixed run folders for TUI tests: scripted jobs, no engine work.

Every number here is fixed, so snapshots of the screens are the same on every machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.events import (
    EpochEnd,
    Event,
    Finding,
    Log,
    ModelInfo,
    Progress,
    RunFailed,
    RunFinished,
    RunStarted,
    StageFinished,
    StageMetrics,
    StageStarted,
)
from engine.npu.rules import TABLE  # the placement reasons the engine writes
from engine.protocol import SweepStarted, VariantEvent
from engine.report import (
    Agreement,
    Comparison,
    ErrorFigures,
    Headline,
    LayerError,
    LayerRow,
    LayerSensitivity,
    Npu,
    NpuLayer,
    NpuSummary,
    Pool,
    PtqSummary,
    Qat,
    Report,
    Stage,
    Verdict,
)
from engine.report import Finding as ReportFinding
from engine.report import ModelInfo as ReportModel
from engine.report import StageMetrics as Metrics
from engine.stats import paired_from_counts
from engine.uncertainty import paired
from engine.verdict import Judgement, worst_state
from tui.messages import JobEvent, JobExited, SweepDone, SweepProgress


async def until(pilot: Any, cond: Callable[[], object], what: str = "the condition",
                timeout: float = 30.0) -> None:
    """Let the app run until ``cond()`` holds: a bounded wait on a condition, not a sleep.

    The app runs on this event loop, so yielding to it is enough; a pilot pause between
    checks would also wait on every widget with work queued and lay the screen out. The
    bound is wall time, and generous: a CI machine running TensorFlow tests beside took
    over 5 s for a sweep's table to land, and a test that passes never waits for it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def picker_listing(app: Any) -> list[Any]:
    """The data picker's top entries once its tree is mounted and has read its folder; []
    before. The picker is the app's screen before its tree is composed: so a query, not
    query_one (which raised inside the app's pilot when the machine was loaded)."""
    trees = app.screen.query("#data-tree")
    return list(trees.first().root.children) if trees else []


def layers_shown(app: Any) -> bool:
    """The layers table shows the report the results show (it follows them by a turn), or
    5 Layers is not built yet (its first visit shows that report)."""
    built = "layers" in app.built
    return app.report is not None and (not built or app.pane("layers").report is app.report)


ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "sample_configs" / "digits_ptq.toml"


def small_digits(folder: Path, name: str = "digits_ptq.toml") -> Path:
    """The digits sample with small data counts (a data check in ~0.1 s), model path absolute."""
    text = DIGITS.read_text(encoding="utf-8")
    text = text.replace("../engine/samples/weights/digits.keras",
                        str(ROOT / "engine/samples/weights/digits.keras"))
    text = text.replace("count = 1000 ", "count = 120  ").replace("count = 2000", "count = 200")
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


def _layer(i: int, op: str, shape: list[int], placement: str, macs: int, est_us: float,
           pct: float, sqnr: float | None, rmse_scale: float | None, suspect: bool = False,
           sens: LayerSensitivity | None = None, reason: str = "") -> tuple[NpuLayer, LayerRow]:
    """One layer as the NPU analysis places it and as report.json's layers table has it."""
    error = None
    if sqnr is not None:
        stats = ErrorFigures(sqnr_db=sqnr, rmse_scale=rmse_scale, cos=0.9991, max_abs=0.05)
        error = LayerError(
            tensor=f"t{i}", scale=0.0123, zero_point=-128, range=(-1.5, 1.6), layer=stats,
            model=replace(stats, sqnr_db=sqnr - 3), suspect=suspect,
            why="rmse/scale 0.91 is 3× the 0.289 of pure rounding: an outlier stretches the range"
            if suspect else "")
    reason = reason or ("runs on the NPU (the convolution accelerators)" if placement == "NPU"
                        else f"{op} runs in software on the CPU")
    npu = NpuLayer(index=i, op=op, name=f"model/{op.lower()}_{i}", output_shape=(1, *shape),
                   placement=placement, tier="HW" if placement == "NPU" else "SW_INT",
                   reason=reason, rule="table", macs=macs, est_us=est_us, pct=pct, epoch=i,
                   bound="compute")
    row = LayerRow(index=i, op=op, name=npu.name, output_shape=npu.output_shape,
                   placement=placement, reason=reason, macs=macs, est_us=est_us, pct=pct,
                   error=error, sensitivity=sens)
    return npu, row


LAYERS = [
    _layer(0, "CONV_2D", [32, 32, 16], "NPU", 147_456, 19.8, 4.4, 41.2, 0.30),
    _layer(1, "CONV_2D", [32, 32, 16], "NPU", 2_359_296, 70.0, 15.4, 22.5, 0.91, suspect=True,
           sens=LayerSensitivity(
               metric="top1", regained_points=0.35, cost_ms=0.07,
               suggestion="keep this layer in INT8: the 0.35 points are not worth 0.07 ms")),
    _layer(2, "MAX_POOL_2D", [16, 16, 16], "NPU", 16_384, 20.2, 4.4, 44.0, 0.29),
    _layer(3, "CONV_2D", [8, 8, 64], "NPU", 2_359_296, 109.3, 24.0, 38.7, 0.33),
    _layer(4, "MEAN", [64], "NPU", 4_096, 17.4, 3.8, 47.1, 0.28),
    _layer(5, "FULLY_CONNECTED", [10], "NPU", 640, 16.9, 3.7, 35.0, 0.31),
    _layer(6, "SOFTMAX", [10], "CPU", 10, 5.5, 1.2, None, None, reason=TABLE["SOFTMAX"].sw_reason),
]


def _stage(name: str, size: int, top1: float, acc: float, cos: float, rmse: float,
           sqnr_db: float | None = None) -> Stage:
    # As the job writes it: items/s measured, the drop against FP32 (0.996) in points, the
    # one output by its name (FP32 against itself: exact).
    return Stage(path=f"{name}.tflite", size_bytes=size, metrics=Metrics(
        task={"top1": top1}, outputs=(Agreement(name="probs", kind="classes", acc=acc, cos=cos,
                                                rmse=rmse, sqnr_db=sqnr_db, exact=rmse == 0),)),
        items_per_s=5000.0, drop=round((0.996 - top1) * 100, 4))


def make_report(run_dir: Path | str, name: str = "digits_ptq", samples: int = 200,
                int8_top1: float = 0.992, status: str = "ok", method: str = "ptq") -> Report:
    """A complete artq.report/1 with fixed numbers, built from the engine's report types."""
    drop = round((0.996 - int8_top1) * 100, 4)
    # As if on 5,000 test items: INT8 got 2 right that FP32 got wrong, and the drop's worth
    # more the other way (0.4 points: a confident PASS at the high bar; 1.5: a FAIL).
    net = round(drop * 50)
    judgement = Judgement(name="probs", rule="task", metric="top1", unit="points", value=drop,
                          bar=1.0, passed=drop <= 1.0,
                          interval=paired(paired_from_counts(5000, net + 2, 2), 1.0))
    cfg = {
        "model": {"path": str(ROOT / "engine/samples/weights/digits.keras")},
        "name": name,
        "calibration": {"samples": samples, "seed": 0},
        "quantization": {"method": method, "granularity": "per_channel", "io_type": "int8",
                         "stages": ["fp32", "fp16", "int8"]},
        "evaluation": {"task": "classification", "profile": "high"},
        "output": {"runs_dir": str(Path(run_dir).parent)},
    }
    stages = {
        "fp32": _stage("fp32", 294_000, 0.996, 1.0, 1.0, 0.0),
        "fp16": _stage("fp16", 152_000, 0.996, 1.0, 1.0, 1e-6, 66.2),
        "int8": _stage("int8", 84_000, int8_top1, 0.995, 0.9999, 1e-3, 37.9),
    }
    rep = Report(
        status=status, name=name, run_dir=str(run_dir), config=cfg,
        model=ReportModel(inputs=({"name": "input", "shape": [1, 32, 32, 1]},),
                        outputs=({"name": "probs", "signature": "output_0", "shape": [1, 10]},),
                        params=73114),
        stages=stages,
        verdict=Verdict(profile="high", threshold=1.0, metric="top1", fp32=0.996,
                        int8=int8_top1, drop=drop, passed=drop <= 1.0, output="probs",
                        unit="points", outputs=(judgement,),
                        state=worst_state([judgement]),
                        advice=f"INT8 loses {drop:.2f} points, "
                        + ("within the high bar (1)." if drop <= 1.0 else
                           "over the high bar (1): try more calibration samples or QAT.")),
        findings=(ReportFinding(code="calib-few-samples", severity="warning",
                          message=f"{samples} calibration samples", evidence="guide: 100–500",
                          fix="set calibration.samples = 200"),) if samples < 100 else (),
        npu=Npu(
            schema="artq.npu/1", target="stm32n6570-dk",
            summary=NpuSummary(ops_total=7, ops_npu=6, ops_cpu=1, epochs_hw=6, epochs_sw=1,
                               weights_flash_bytes=73_152, activations_ram_bytes=32_768,
                               external_ram_bytes=0, latency_ms=0.4553, inferences_per_s=2196.3),
            pools=(Pool(name="npuRAM3", internal=True, size_bytes=458_752, used_bytes=32_768),
                   Pool(name="npuRAM4", internal=True, size_bytes=458_752, used_bytes=0),
                   Pool(name="cpuRAM2", internal=True, size_bytes=1_048_576, used_bytes=0),
                   Pool(name="hyperRAM", internal=False, size_bytes=33_554_432, used_bytes=0)),
            layers=tuple(npu for npu, _ in LAYERS),
            advice=("SOFTMAX runs on the CPU: 1.2 % of the time; apply it on the host",),
        ),
        headline=Headline(size_x_smaller=3.5, x_faster=53.2, ram_x_smaller=4.0),
        layers=tuple(row for _, row in LAYERS),
        timings={"total_s": 13.8 if samples >= 200 else 11.2},
    )
    if method == "qat":
        rep = replace(rep, qat=Qat(
            history=({"epoch": 1, "loss": 0.31, "val_metric": 0.990},
                     {"epoch": 2, "loss": 0.22, "val_metric": 0.994}),
            best_epoch=2, best_val=0.994, metric="top1", epochs_run=2, stopped_early=False),
            comparison=Comparison(ptq=PtqSummary(run_dir="runs/x-ptq", drop=1.4,
                                                 size_bytes=84_000)))
    return rep


def write_run(runs_dir: Path, folder: str, report: Report | None,
              config_text: str | None = None) -> Path:
    d = runs_dir / folder
    d.mkdir(parents=True, exist_ok=True)
    if report is not None:
        (d / "report.json").write_text(json.dumps(replace(report, run_dir=str(d)).to_dict()),
                                       encoding="utf-8")
    (d / "config.toml").write_text(config_text or DIGITS.read_text(encoding="utf-8"), encoding="utf-8")
    return d


def seed_runs(runs_dir: Path) -> dict[str, Path]:
    """Two finished tries (200 then 50 samples), an unfinished one and a sweep."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    a = write_run(runs_dir, "20260101-010000-digits_ptq", make_report(runs_dir / "a", samples=200))
    b = write_run(runs_dir, "20260101-020000-digits_ptq",
                  make_report(runs_dir / "b", samples=50, int8_top1=0.981))
    c = write_run(runs_dir, "20260101-030000-digits_ptq", None)
    sweep = runs_dir / "20260101-040000-sweep-digits_ptq"
    sweep.mkdir()
    variants = []
    for n, top1, t, more in ((50, 0.981, 11.2, 60), (100, 0.990, 12.0, 15),
                             (200, 0.992, 13.8, 5), (500, 0.993, 17.5, 0)):
        drop = round((0.996 - top1) * 100, 2)
        # As on 5,000 test items, against the best variant (500) item by item: ``more``
        # items only this one gets wrong beyond 4 each way.
        p = paired_from_counts(5000, 4 + more, 4)
        variants.append({"set": {"calibration.samples": n}, "run_dir": str(sweep / f"v{n}"),
                         "status": "ok", "metrics": {"int8": {"top1": top1}},
                         "drop": drop, "total_s": t,
                         "interval": paired(paired_from_counts(
                             5000, round(drop * 50) + 2, 2), 1.0).to_dict(),
                         "versus_best": {"best": True} if not more else {
                             "diff": round(p.drop, 4), "low": round(p.low, 4),
                             "high": round(p.high, 4), "n": p.n, "lost": p.lost,
                             "gained": p.gained, "within_noise": p.low <= 0 <= p.high}})
    (sweep / "sweep.json").write_text(json.dumps({"wall_s": 54.5, "variants": variants}))
    return {"a": a, "b": b, "unfinished": c, "sweep": sweep}


def script(run_dir: Path, fail: bool = False, qat: bool = False) -> list[Event]:
    evs: list[Event] = [
        RunStarted(str(run_dir), "fake", ["fp32", "fp16", "int8"]),
        StageStarted("data", "Loading data", 10),
        Progress("data", 10, 10),
        StageFinished("data", 0.2),
        StageStarted("load", "Exporting the model (batch 1)"),
        ModelInfo([{"name": "input", "shape": [1, 32, 32, 1]}], [{"name": "output_0", "shape": [1, 10]}],
                  73114, "digits.keras"),
        StageFinished("load", 1.5),
        StageStarted("convert_int8", "Converting to INT8", 50),
        Progress("convert_int8", 25, 50),
    ]
    if fail:
        return [*evs, RunFailed(str(run_dir), "failed", "ConversionError", "converter crashed",
                                "see log.txt")]
    if qat:
        evs += [EpochEnd(1, 3, 0.31, 0.990, "top1", 1e-5, 20.0),
                EpochEnd(2, 3, 0.22, 0.994, "top1", 1e-5, 10.0),
                EpochEnd(3, 3, 0.18, 0.993, "top1", 1e-5, 0.0)]
    return [
        *evs,
        Progress("convert_int8", 50, 50),
        StageFinished("convert_int8", 2.0),
        StageMetrics("int8", {"top1": 0.992, "outputs": [{"name": "probs", "acc": 0.995}]}, 84_000),
        Finding("calib-range", "info", "activation ranges look healthy", "max/p99.9 = 1.2", ""),
        Log("calibration.samples = 200 but only 100 items exist", "warning"),
        RunFinished(str(run_dir), "ok", str(run_dir / "report.json"),
                    {"profile": "high", "metric": "top1", "drop": 0.4, "pass": True}),
    ]


class FakeRunner:
    """Implements tui.jobs.Runner; records what it was asked to run."""

    def __init__(self, runs_dir: Path, fail: bool = False, hold: bool = False) -> None:
        self.runs_dir = runs_dir
        self.fail = fail
        self.hold = hold  # stop mid-job until cancelled
        self.running = False
        self.started: list[tuple[str, list[str]]] = []
        self.resumed: list[str] = []
        self.cancelled = False
        self._post: Any = None
        #: The sessions it was asked to warm up for (model summary, config).
        self.warmed: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def warm_up(self, model: dict[str, Any], config: dict[str, Any]) -> None:
        self.warmed.append((model, config))

    async def start(self, config: str, overrides: list[str], post: Any, resume: bool = False) -> None:
        self.started.append((config, list(overrides)))
        if resume:
            self.resumed.append(config)
        self.running = True
        self._post = post
        run_dir = self.runs_dir / f"20260102-00000{len(self.started)}-fake"
        run_dir.mkdir(parents=True, exist_ok=True)
        qat = any(o == 'quantization.method="qat"' for o in overrides)
        samples = next((int(o.split("=")[1]) for o in overrides if o.startswith("calibration.samples=")), 200)
        evs = script(run_dir, self.fail, qat)
        if self.hold:
            evs = evs[:9]
        for ev in evs:
            if isinstance(ev, RunFinished):
                # As the engine does: report.json exists before run_finished is sent.
                report = make_report(run_dir, name="fake", samples=samples,
                                     method="qat" if qat else "ptq")
                (run_dir / "report.json").write_text(json.dumps(report.to_dict()))
            post(JobEvent(ev))
            await asyncio.sleep(0)
        if self.hold:
            return
        self.running = False
        post(JobExited(1 if self.fail else 0))

    async def cancel(self) -> None:
        self.cancelled = True
        self.running = False
        self._post(JobExited(3))


class FakeSweeper:
    """Implements tui.jobs.SweepRunner's surface: each variant's events as the worker sends
    them, then a sweep folder and SweepDone. ``hold``: stop with variant 0 half-way through
    its INT8 conversion and variant 1 loading, until :meth:`finish`."""

    LABELS = ["samples=50", "samples=200"]

    def __init__(self, runs_dir: Path, hold: bool = False) -> None:
        self.runs_dir = runs_dir
        self.hold = hold
        self.running = False
        self.started: list[tuple[str, list[str]]] = []
        self._post: Any = None
        self._folder = runs_dir

    def _variant(self, i: int, ev: Event) -> None:
        self._post(SweepProgress(VariantEvent(i, ev.to_dict())))

    async def start(self, config: str, sets: list[str], runs_dir: str, post: Any) -> None:
        self.started.append((config, list(sets)))
        self.running, self._post = True, post
        self._folder = Path(runs_dir) / "20260103-000000-sweep-fake"
        self._folder.mkdir(parents=True, exist_ok=True)
        post(SweepProgress(SweepStarted(str(self._folder), self.LABELS,
                                        [{"calibration.samples": n} for n in (50, 200)])))
        for i in range(2):
            self._variant(i, RunStarted(str(self.runs_dir / f"20260103-00000{i}-v{i}"), "fake",
                                        ["fp32", "int8"]))
        self._variant(0, StageStarted("load", "Loading the model"))
        self._variant(0, StageFinished("load", 1.0))
        self._variant(0, StageStarted("convert_int8", "Converting to INT8", total=50))
        self._variant(0, Progress("convert_int8", 25, 50))
        self._variant(1, StageStarted("load", "Loading the model"))
        await asyncio.sleep(0)
        if not self.hold:
            await self.finish()

    async def finish(self) -> None:
        data = {"status": "ok", "metric": "top1", "wall_s": 20.0, "variants": [
            {"set": {"calibration.samples": n}, "status": "ok", "metrics": {"top1": t},
             "drop": d, "total_s": 10.0} for n, t, d in ((50, 0.981, 1.5), (200, 0.992, 0.4))]}
        for i, v in enumerate(data["variants"]):
            run_dir = str(self.runs_dir / f"20260103-00000{i}-v{i}")
            self._variant(i, RunFinished(run_dir, "ok", run_dir + "/report.json",
                                         {"metric": "top1", "drop": v["drop"], "pass": True}))
        (self._folder / "sweep.json").write_text(json.dumps(data))
        self.running = False
        self._post(SweepDone(0, data))

    async def cancel(self) -> None:
        self.running = False


async def settle(pilot: Any) -> None:
    """Let the app's work land: pause (every queued message handled, which may start a
    worker), and while a worker runs, wait for it and pause again; done at the first pause
    that finds the panes mounted, no worker running, and the app quiet (every widget
    waiting on an empty queue, no layout pending): what the last message started has
    landed too, however short the pilot's idle checks. Not the file picker's directory
    loader: it waits for requests as long as its dialog is open."""
    from textual.worker import WorkerCancelled, WorkerState  # noqa: PLC0415
    from textual_harness import quiet  # noqa: PLC0415 - tests/ is on the path

    app = pilot.app
    for _ in range(100):
        await pilot.pause()
        busy = [w for w in app.workers if w.group != "_loader"
                and w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        ready = getattr(app, "panes_ready", lambda: True)()
        if not busy and ready and quiet(app):
            return
        with contextlib.suppress(WorkerCancelled):
            if busy:
                await app.workers.wait_for_complete(busy)
            else:
                await pilot.pause(0.02)  # the panes mount after the first paint
    raise AssertionError("the app kept starting work: it never settled")
