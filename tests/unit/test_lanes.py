"""The float lane: FP32/FP16 in a second backend beside INT8 (engine.job.lanes), with the
fake backend — the same report and models as a run in line, and a failure or a cancel on
either side stops both."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_backend import FakeBackend, FakeFactory
from test_orchestrator import JOB, _assert_marked, _run  # noqa: F401 - the shared job
from test_orchestrator import job as job  # noqa: F401 - the fixture, re-exported

from engine.cancel import CancelToken
from engine.errors import CancelledError, EngineError
from engine.events import Event, StageFinished, StageStarted
from engine.job import lanes

VOLATILE = {"created", "run_dir", "timings", "config_source"}


@pytest.fixture(autouse=True)
def no_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("tensorflow", "tf_keras", "keras"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "usable_cores", lambda: 2)
    monkeypatch.delenv("ARTQ_PARALLEL", raising=False)


class _Hooked(FakeFactory):
    """Opens fake backends in processes of their own whose every call first passes
    ``hook(stage)`` (to hold a stage back, or see when it starts)."""

    def __init__(self, hook: Any) -> None:
        super().__init__(own_process=True)
        self.hook = hook

    def __call__(self, fmt: str, options: Any) -> FakeBackend:
        hook = self.hook

        class Hooked(FakeBackend):
            def _enter(self, stage: str) -> None:
                hook(stage)
                super()._enter(stage)

        be = Hooked(options, own_process=True)
        self.opened.append(be)
        return be


def _stable(rep: dict[str, Any]) -> dict[str, Any]:
    """A report without what differs between two runs of the same job (times, paths)."""
    out = {k: v for k, v in rep.items() if k not in VOLATILE}
    for st in out["stages"].values():
        st.pop("items_per_s", None)
    out["config"] = {k: v for k, v in out["config"].items() if k != "output"}
    return json.loads(json.dumps(out).replace(rep["run_dir"], "<run>"))


def test_the_lane_gives_the_same_report_and_models_as_a_run_in_line(job, two_cores) -> None:
    inline, lane = FakeFactory(), FakeFactory(own_process=True)
    _, a = _run(job(), inline)
    events, b = _run(job(), lane)
    assert len(inline.opened) == 1 and len(lane.opened) == 2
    main, second = lane.opened
    # INT8 and the per-layer error in the first process, the float stages in the second.
    assert main.calls == ["load", "convert_int8", "layers"]
    assert second.calls == ["load", "convert_fp32", "convert_fp16"]
    assert main.closed and second.closed
    assert _stable(a.report.to_dict()) == _stable(b.report.to_dict())
    assert list(b.report.to_dict()["stages"]) == ["fp32", "fp16", "int8"]
    for name in ("fp32.tflite", "fp16.tflite", "int8.tflite"):
        assert (a.run_dir / name).read_bytes() == (b.run_dir / name).read_bytes()
    # Every stage started and finished once, whatever the interleaving.
    started = [e.stage for e in events if isinstance(e, StageStarted)]
    finished = [e.stage for e in events if isinstance(e, StageFinished)]
    assert sorted(started) == sorted(finished) and len(set(started)) == len(started)
    timings = list(b.report.to_dict()["timings"])
    assert timings.index("convert_fp16_s") < timings.index("convert_int8_s")  # stage order


@pytest.mark.parametrize("stage", ["convert_fp32", "convert_fp16", "convert_int8"])
def test_a_failure_on_either_side_fails_the_run_and_ends_both(job, two_cores,
                                                               stage: str) -> None:
    factory = FakeFactory(fail_in=stage, own_process=True)
    events: list[Event] = []
    with pytest.raises(EngineError) as info:
        _run(job(), factory, sink=events.append)
    rep = _assert_marked(Path(info.value.run_dir), "failed", events,  # type: ignore[attr-defined]
                         "ConversionError")
    assert rep["error"]["message"] == f"fake failure in {stage}"
    assert all(be.closed for be in factory.opened) and len(factory.opened) == 2


@pytest.mark.parametrize("stage", ["convert_fp32", "convert_fp16", "evaluate_fp32",
                                   "convert_int8", "layers"])
def test_a_cancel_during_either_lane_cancels_the_run(job, two_cores, stage: str) -> None:
    cancel = CancelToken()

    def cancel_at(ev: Event) -> None:
        if isinstance(ev, StageStarted) and ev.stage == stage:
            cancel.cancel()

    events: list[Event] = []
    factory = FakeFactory(own_process=True)
    with pytest.raises(CancelledError) as info:
        _run(job(), factory, sink=lambda ev: (events.append(ev), cancel_at(ev)), cancel=cancel)
    _assert_marked(Path(info.value.run_dir), "cancelled", events,  # type: ignore[attr-defined]
                   "CancelledError")
    assert all(be.closed for be in factory.opened)


@pytest.mark.parametrize("why", ["one core", "qat", "no int8", "ARTQ_PARALLEL=0",
                                 "in-process backend"])
def test_no_lane_where_it_cannot_help(job, monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    monkeypatch.setattr(lanes, "usable_cores", lambda: 1 if why == "one core" else 2)
    if why == "ARTQ_PARALLEL=0":
        monkeypatch.setenv("ARTQ_PARALLEL", "0")
    factory = FakeFactory(own_process=why != "in-process backend")
    cfg = job(qat=why == "qat",
              overrides=['quantization.stages=["fp32","fp16"]'] if why == "no int8" else None)
    _run(cfg, factory)
    assert len(factory.opened) == 1


def test_a_failed_int8_stops_a_float_lane_still_converting(job, two_cores) -> None:
    # The second process is busy with FP16 until told to stop: the run must end, failed,
    # with that process ended, not wait for it or leave it running.
    factory = FakeFactory(fail_in="convert_int8", own_process=True, block_in="convert_fp16")
    events: list[Event] = []
    with pytest.raises(EngineError) as info:
        _run(job(), factory, sink=events.append)
    _assert_marked(Path(info.value.run_dir), "failed", events,  # type: ignore[attr-defined]
                   "ConversionError")
    main, second = factory.opened
    assert second.calls[-1] == "convert_fp16" and second.closed and main.closed


def test_the_lane_measures_fp16_against_the_jobs_fp32(job, two_cores,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # FP16 made to differ from FP32 (the int8 model in its place): measured against FP32's
    # outputs, which the job evaluates and hands over, it is not exact; measured against
    # itself it would be.
    import fake_backend

    convert = fake_backend.FakeBackend.convert

    def fp16_differs(self, stage_name: str, out_path: str, *args: Any, **kw: Any) -> Any:
        res = convert(self, stage_name, out_path, *args, **kw)
        if stage_name == "fp16":
            Path(out_path).write_bytes(fake_backend.INT8_MODEL)
        return res

    monkeypatch.setattr(fake_backend.FakeBackend, "convert", fp16_differs)
    _, inline = _run(job(), FakeFactory())
    lane = FakeFactory(own_process=True)
    _, laned = _run(job(), lane)
    assert len(lane.opened) == 2
    fp16 = laned.report.to_dict()["stages"]["fp16"]["metrics"]["outputs"][0]
    assert not fp16["exact"] and fp16["sqnr_db"] is not None
    assert _stable(inline.report.to_dict()) == _stable(laned.report.to_dict())


@pytest.mark.parametrize("stage", ["evaluate_fp32", "evaluate_int8", "layers",
                                   "evaluate_fp16"])
def test_an_error_while_evaluating_beside_the_layers_fails_the_run(job, two_cores,
                                                                  stage: str) -> None:
    # The evaluations run in a thread while the framework's process measures the per-layer
    # error, and FP16's in the lane: an error on any of them fails the run with its log.
    def boom(ev: Event) -> None:
        if isinstance(ev, StageStarted) and ev.stage == stage:
            raise RuntimeError(f"boom in {stage}")

    events: list[Event] = []
    factory = FakeFactory(own_process=True)
    with pytest.raises(EngineError) as info:
        _run(job(), factory, sink=lambda ev: (events.append(ev), boom(ev)))
    rep = _assert_marked(Path(info.value.run_dir), "failed", events,  # type: ignore[attr-defined]
                         "EngineError")
    assert rep["error"]["message"] == f"internal error: RuntimeError: boom in {stage}"
    assert all(be.closed for be in factory.opened) and len(factory.opened) == 2


def test_the_per_layer_error_does_not_wait_for_the_lanes_fp32(job, two_cores) -> None:
    # Nothing before the evaluations needs FP32's file unless draws, equalization or bias
    # correction measure against it: the per-layer error starts once INT8 is written, and
    # FP32 is evaluated once the lane has written it.
    import threading

    layers_started = threading.Event()
    order: list[str] = []

    def hook(stage: str) -> None:
        if stage == "layers":
            layers_started.set()
        if stage == "convert_fp32":
            layers_started.wait(10)  # held until the main lane is past INT8
            order.append("fp32 converted")

    inline = FakeFactory()
    _, a = _run(job(), inline)
    events, b = _run(job(), _Hooked(hook))
    started = [e.stage for e in events if isinstance(e, StageStarted)]
    assert started.index("layers") < started.index("evaluate_fp32")
    assert layers_started.is_set() and order == ["fp32 converted"]
    assert _stable(a.report.to_dict()) == _stable(b.report.to_dict())


def test_the_diagnostics_run_while_the_framework_process_converts(job, two_cores,
                                                                  monkeypatch) -> None:
    """With the backend in a process of its own, the calibration diagnostics (numpy, in the
    job's process) do not wait for the conversions, nor they for them: the diagnostics
    below see INT8's conversion start while they are still running."""
    import threading

    import engine.diagnostics

    int8_started, seen = threading.Event(), []
    real = engine.diagnostics.diagnose

    def slow_diagnostics(*args: Any, **kwargs: Any) -> Any:
        seen.append(int8_started.wait(5))
        return real(*args, **kwargs)

    def hook(stage: str) -> None:
        if stage == "convert_int8":
            int8_started.set()

    monkeypatch.setattr(engine.diagnostics, "diagnose", slow_diagnostics)
    events, res = _run(job(), _Hooked(hook))
    assert seen == [True]
    assert res.report.to_dict()["status"] == "ok"
    finished = [e.stage for e in events if isinstance(e, StageFinished)]
    assert "diagnose" in finished and "convert_int8" in finished
