"""The typed artq.report/1: exact round trips, tolerance of short runs, strict schema; and
one wording of a report in the CLI, report.md and the TUI."""

from __future__ import annotations

import copy
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from engine import present as say
from engine.report import (
    Agreement,
    Record,
    Report,
    ReportError,
    SensitivityEntry,
    Stage,
    StageMetrics,
    read_report,
    render_markdown,
)

HERE = Path(__file__).resolve().parents[1]
DIGITS = HERE / "data" / "digits_report.json"  # written by the engine: artq run digits_ptq


def load(path: Path | str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def unmodelled(obj: Any, where: str = "report") -> list[str]:
    """Paths of keys a typed part keeps only in ``extra`` (the types should model them)."""
    out: list[str] = []
    if isinstance(obj, Record):
        out += [f"{where}.{k}" for k in obj.extra]
        for f in fields(obj):
            out += unmodelled(getattr(obj, f.name), f"{where}.{f.name}")
    elif isinstance(obj, tuple | list):
        for i, v in enumerate(obj):
            out += unmodelled(v, f"{where}[{i}]")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += unmodelled(v, f"{where}.{k}")
    return out


@pytest.mark.parametrize("path", [DIGITS], ids=lambda p: Path(p).parent.name)
def test_real_reports_round_trip_exactly_and_are_fully_typed(path: Path) -> None:
    d = load(path)
    rep = Report.from_dict(d)
    assert rep.to_dict() == d
    assert json.loads(json.dumps(rep.to_dict())) == d
    assert unmodelled(rep) == []


def test_the_digits_report_reads_as_types() -> None:
    rep = Report.from_dict(load(DIGITS))
    assert rep.status == "ok" and rep.method == "ptq"
    assert rep.stage("int8").metrics.task == {"top1": 0.9965}
    probs = rep.stage("int8").metrics.output("probs")
    assert probs.acc == 0.999 and probs.kind == "classes" and not probs.exact
    assert rep.stage("fp32").metrics.output("probs").exact
    assert rep.verdict.metric == "top1" and rep.verdict.passed is True
    assert rep.verdict.output == "probs" and rep.verdict.outputs[0].rule == "task"
    assert rep.npu.summary.ops_npu == 10 and rep.npu.layers[0].tier == "HW"
    assert rep.headline.x_faster == 53.22
    assert rep.layers[0].error.layer.sqnr_db == 35.29
    assert rep.sensitivity[0].layer == "relu2b_1" and not rep.sensitivity[0].tried
    assert rep.timing("total") == 10.655
    assert rep.metric_names() == ["top1"]
    assert rep.stage("fp99") == Stage()


def _failed(status: str) -> dict[str, Any]:
    """What the job writes when it stops before converting (see engine.job._report)."""
    return {
        "schema": "artq.report/1", "artq_version": "0.1.0", "status": status, "name": "x",
        "run_dir": "/runs/x", "created": "2026-01-01T00:00:00+0000",
        "config": {"name": "x"}, "config_source": None, "model": {}, "data": {},
        "preprocessing": {}, "stages": {"fp32": {"path": "fp32.tflite", "size_bytes": 10}},
        "verdict": None, "findings": [], "timings": {"data_s": 0.1, "total_s": 0.5},
        "error": {"type": "CancelledError" if status == "cancelled" else "ConversionError",
                  "message": "stopped", "hint": ""},
    }


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_failed_and_cancelled_reports_round_trip(status: str) -> None:
    d = _failed(status)
    rep = Report.from_dict(d)
    assert rep.to_dict() == d
    assert rep.verdict is None and rep.npu is None and rep.error.message == "stopped"
    assert rep.stage("int8").metrics is None and rep.drop("int8") is None
    assert say.verdict(rep) is None
    assert "- error: stopped" in render_markdown(rep)


def test_qat_multi_output_and_odd_parts_round_trip() -> None:
    d = load(DIGITS)
    agr = d["stages"]["int8"]["metrics"]["outputs"][0]
    d["stages"]["int8"]["metrics"]["outputs"] = [agr, dict(agr, name="grid", kind="values",
                                                           acc=None, sqnr_db=None, exact=True)]
    d["stages"]["int8"]["via"] = "tf-keras rebuild"
    d["stages"]["fp32"]["shared"] = True
    d["qat"] = {"history": [{"epoch": 0, "loss": None, "val_metric": 0.99, "seconds": 0.0}],
                "best_epoch": 0, "best_val": 0.99, "metric": "top1", "epochs_run": 3,
                "stopped_early": True, "train_items": 100, "validation_items": 20}
    d["comparison"] = {"ptq": {"run_dir": "/runs/p", "drop": 1.4, "metrics": {"top1": 0.98},
                               "size_bytes": 84_000, "latency_ms": None}}
    # A mixed model scored to None keeps its "value": null; a group keeps its tensors.
    d["sensitivity"].append({**d["sensitivity"][0], "group": ["a", "b"], "int8": 0.99,
                             "value": None, "op": None})
    d["data"]["train"] = {"source": "train.npz", "items": 100}
    d["data"]["test"]["classes"] = ["0", "1"]
    d["npu"] = {"error": {"type": "TargetError", "message": "no such target", "hint": "x"}}
    d["layer_analysis"] = {"error": {"type": "EngineError", "message": "boom", "hint": ""}}
    d["layers"] = [dict(row, error=None) for row in d["layers"]]  # nothing measured
    rep = Report.from_dict(copy.deepcopy(d))
    assert rep.to_dict() == d
    assert len(rep.stage("int8").metrics.outputs) == 2
    assert rep.stage("int8").metrics.output("grid").exact
    assert rep.sensitivity[-1].value is None and rep.sensitivity[-1].group == ("a", "b")
    assert rep.comparison.ptq.metrics.task == {"top1": 0.98}
    assert say.npu_lines(rep) == ["N6 estimate failed: no such target"]
    assert "The analysis failed: boom" in render_markdown(rep)


def test_constructed_parts_write_what_the_engine_writes() -> None:
    m = StageMetrics(task={"top1": 0.5}, outputs=(Agreement(name="p", acc=0.9, cos=0.99),))
    assert m.to_dict() == {"top1": 0.5, "outputs": [{
        "name": "p", "kind": "values", "acc": 0.9, "rmse": None, "mae": None, "l2r": None,
        "mean": None, "std": None, "nse": None, "cos": 0.99, "sqnr_db": None, "exact": False}]}
    e = SensitivityEntry(tensor="t", layer="l", float_ops=("l",), metric="top1", items=10)
    assert "value" not in e.to_dict() and e.to_dict()["regained_points"] is None
    rep = Report(name="n", stages={"int8": Stage(size_bytes=5)})
    again = Report.from_dict(rep.to_dict())
    assert again == rep and again.to_dict() == rep.to_dict()
    assert rep.to_dict()["stages"] == {"int8": {"size_bytes": 5}}


def test_schema_is_strict_and_reading_a_bad_file_gives_none(tmp_path: Path) -> None:
    d = load(DIGITS)
    with pytest.raises(ReportError, match="artq.report/1"):
        Report.from_dict({**d, "schema": "artq.report/2"})
    with pytest.raises(ReportError):
        Report.from_dict({k: v for k, v in d.items() if k != "schema"})
    assert read_report(tmp_path) is None  # never finished
    (tmp_path / "report.json").write_text("{not json")
    assert read_report(tmp_path) is None
    (tmp_path / "report.json").write_text(json.dumps({**d, "schema": "other/1"}))
    assert read_report(tmp_path) is None
    (tmp_path / "report.json").write_text(json.dumps(d))
    assert read_report(tmp_path) == Report.from_dict(d)


def test_ptq_summary_is_what_a_qat_report_keeps() -> None:
    rep = Report.from_dict(load(DIGITS))
    assert rep.ptq_summary().to_dict() == {
        "run_dir": rep.run_dir, "drop": 0.0,
        "metrics": load(DIGITS)["stages"]["int8"]["metrics"], "size_bytes": 84480,
        "latency_ms": 0.4553}


def test_the_fake_tui_report_is_a_report_the_types_accept() -> None:
    from fakes import make_report

    d = make_report("/runs/a", samples=50, int8_top1=0.981, method="qat").to_dict()
    rep = Report.from_dict(d)
    assert rep.to_dict() == d and unmodelled(rep) == []
    assert set(d) >= {"schema", "artq_version", "status", "config", "model", "data",
                      "preprocessing", "stages", "verdict", "findings", "timings"}


# ------------------------------------------------------------------ one wording, three faces


def _cli_text(rep: Report, capsys: pytest.CaptureFixture[str]) -> str:
    from engine.cli.console import Console
    from engine.cli.run import print_summary

    print_summary(Console(width=200), rep)  # no wrapping: compare whole sentences
    return capsys.readouterr().out


async def _tui_text(rep: Report) -> tuple[str, list[list[str]]]:
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable, Static

    from tui.panes.results import ResultsPane

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield ResultsPane(id="results")

    app = One()
    async with app.run_test(size=(100, 40)) as pilot:
        app.query_one(ResultsPane).show(rep)
        await pilot.pause()
        text = "\n".join(str(w.render()) for w in app.query(Static))
        table = app.query_one(DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
    return text, rows


@pytest.mark.parametrize("which", ["digits", "fake_fail"])
async def test_cli_report_md_and_tui_say_the_same(which: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from fakes import make_report

    rep = (Report.from_dict(load(DIGITS)) if which == "digits"
           else make_report("/runs/b", samples=50, int8_top1=0.981))
    word, sentence = say.verdict(rep)
    drop = say.points(rep.drop("int8"))
    cli = _cli_text(rep, capsys)
    md = render_markdown(rep)
    tui, rows = await _tui_text(rep)
    assert f"Verdict: {word} — {sentence}" in cli
    assert f"- verdict: **{word}** — {sentence}" in md
    assert f"Verdict: {word} — {sentence}" in tui
    j8 = say.int8_judgement(rep)
    # With its interval where the verdict has one (the fake), as before without (digits).
    measured = say.measured_text(j8) if j8.interval else f"drop {say.drop_text(rep.drop('int8'))}"
    assert sentence.startswith(f"INT8 {measured} on top-1 ")
    # The INT8 row's drop cell, in each face's table.
    cli_row = next(line for line in cli.splitlines() if "INT8" in line and "│" in line)
    md_row = next(line for line in md.splitlines() if line.startswith("| INT8 |"))
    tui_row = next(r for r in rows if r[0] == "INT8")
    assert f" {drop} " in cli_row and f" {drop} |" in md_row and drop in tui_row
    if j8.interval:  # the interval beside the drop, alike in every face
        cell = say.interval_cell(j8)
        assert f" {cell} " in cli_row and f" {cell} |" in md_row and cell in tui_row
    found = say.finding_lines(rep.findings[0]) if rep.findings else []
    assert (which == "fake_fail") == bool(found)  # 50 samples: the fake's finding
    for line in (say.size_line(rep), say.precision_story(rep), *found):
        if line:
            assert line in cli and line in md and line in tui
    if which == "fake_fail":
        assert sentence == "INT8 drop 1.50 ± 0.35 pt (95 %), 77 ↓ / 2 ↑ on top-1 (profile high: ≤ 1)"
        assert word == "FAIL"  # the whole interval, 1.15–1.85, is over the bar
        assert drop == "+1.50"


def test_compare_drop_follows_the_stage_then_the_verdict() -> None:
    rep = Report.from_dict(load(DIGITS))
    int8 = replace(rep.stage("int8"), drop=None)
    old = replace(rep, stages={**rep.stages, "int8": int8})
    assert old.drop("int8") == rep.verdict.drop == 0.0
