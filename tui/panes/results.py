"""4 Results: FP32/FP16/INT8 metrics and agreement, the verdict and its advice in words,
sizes, memory per pool as bars against the pool sizes, the estimated N6 latency."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from engine.report import qat_note, size_change

from .. import format as fmt
from ..calibcheck import as_finding, finding_text


def task_metric_names(rep: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for st in (rep.get("stages") or {}).values():
        for k, v in ((st or {}).get("metrics") or {}).items():
            if not isinstance(v, dict | list) and k not in names:
                names.append(k)
    return names


def verdict_text(rep: dict[str, Any]) -> str:
    status = str(rep.get("status", "?")).upper()
    q = ((rep.get("config") or {}).get("quantization") or {})
    cal = ((rep.get("config") or {}).get("calibration") or {})
    lines = [f"{rep.get('name', '')}: {status}   {str(q.get('method', '')).upper()}, "
             f"{cal.get('samples', '?')} calibration samples"]
    v = rep.get("verdict")
    if v and v.get("drop") is not None:
        word = "PASS" if v.get("pass") else "FAIL"
        lines.append(f"Verdict: {word} — INT8 drop {v['drop']:.2f} points on {v['metric']} "
                     f"(profile {v['profile']}: ≤ {v['threshold']:g})")
        if v.get("advice"):
            lines.append(f"Advice: {v['advice']}")
    if rep.get("error"):
        e = rep["error"]
        lines.append(f"Error: {e.get('message', '')}")
        if e.get("hint"):
            lines.append(f"What to do: {e['hint']}")
    stages = rep.get("stages") or {}
    fp32 = (stages.get("fp32") or {}).get("size_bytes")
    int8 = (stages.get("int8") or {}).get("size_bytes")
    if fp32 and int8:
        lines.append(f"Size: INT8 is {size_change(fp32, int8)} "
                     f"({fmt.size(fp32)} → {fmt.size(int8)}).")
    return "\n".join(lines)


def npu_text(rep: dict[str, Any], width: int = 80) -> str:
    npu = rep.get("npu") or {}
    if not npu:
        return "No N6 estimate in this run."
    if npu.get("error"):
        return f"N6 estimate failed: {npu['error'].get('message', '')}"
    s = npu.get("summary") or {}
    lines = [
        f"Estimated N6 latency: {fmt.num(s.get('latency_ms'), 3)} ms per inference "
        f"({fmt.fixed(s.get('inferences_per_s'), 0)}/s) on {npu.get('target', '?')}",
        f"Placement: {s.get('ops_npu', '?')} of {s.get('ops_total', '?')} ops on the NPU, "
        f"{s.get('ops_cpu', '?')} on the CPU; epochs {s.get('epochs_hw', '?')} HW / "
        f"{s.get('epochs_sw', '?')} SW",
        f"Memory: weights in flash {fmt.size(s.get('weights_flash_bytes'))}, activations "
        f"{fmt.size(s.get('activations_ram_bytes'))} internal RAM, "
        f"{fmt.size(s.get('external_ram_bytes'))} external RAM",
    ]
    h = rep.get("headline") or {}
    if h.get("x_faster"):
        lines.append(f"INT8 vs FP32 on the N6: {h.get('size_x_smaller')}× smaller, "
                     f"{h.get('x_faster')}× faster, {h.get('ram_x_smaller')}× less activation RAM")
    pools = npu.get("pools") or []
    if pools:
        lines.append("")
        lines.append("Memory pools (used of size):")
        bar_w = max(min(width - 52, 30), 8)
        for p in pools:
            kind = "" if p.get("internal", True) else " (ext)"
            lines.append(fmt.pool_line(p.get("name", "?") + kind, int(p.get("used_bytes") or 0),
                                       int(p.get("size_bytes") or 0), bar_w))
    for a in npu.get("advice") or []:
        lines.append(f"• {a}")
    return "\n".join(lines)


def qat_text(rep: dict[str, Any]) -> str:
    lines = [qat_note(rep)] if rep.get("qat") else []
    ptq = ((rep.get("comparison") or {}).get("ptq")) or {}
    v = rep.get("verdict") or {}
    if ptq:
        lines.append(f"PTQ baseline: drop {fmt.points(ptq.get('drop'))} points, "
                     f"size {fmt.size(ptq.get('size_bytes'))} ({ptq.get('run_dir', '')})")
        if ptq.get("drop") is not None and v.get("drop") is not None:
            gained = ptq["drop"] - v["drop"]
            lines.append(f"QAT regained {gained:+.2f} points over PTQ")
    return "\n".join(lines)


class ResultsPane(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static("No results yet: launch a job or pick a past run.", id="verdict", markup=False)
        yield DataTable(id="stage-table", zebra_stripes=True, cursor_type="row")
        yield Static("", id="qat-summary", markup=False)
        yield Label("Neural-ART N6 estimate", classes="section")
        yield Static("", id="npu", markup=False)
        yield Label("Findings", classes="section")
        yield Static("", id="findings", markup=False)

    def show(self, rep: dict[str, Any]) -> None:
        self.query_one("#verdict", Static).update(verdict_text(rep))
        table = self.query_one("#stage-table", DataTable)
        table.clear(columns=True)
        names = task_metric_names(rep)
        table.add_columns("stage", "size", *names, "drop pts", "agree", "cos", "rmse")
        v = rep.get("verdict") or {}
        primary = v.get("metric")
        stages = rep.get("stages") or {}
        base = ((stages.get("fp32") or {}).get("metrics") or {}).get(primary)
        for name, st in stages.items():
            m = (st or {}).get("metrics") or {}
            agr = m.get("agreement") or {}
            drop = ""
            if base is not None and m.get(primary) is not None:
                drop = f"{(base - m[primary]) * 100:+.2f}"
            table.add_row(
                name.upper(), fmt.size((st or {}).get("size_bytes")),
                *[fmt.pct(m.get(n)) for n in names], drop,
                fmt.pct(agr.get("acc")),
                f"{agr['cos']:.5f}" if agr.get("cos") is not None else "—",
                fmt.num(agr.get("rmse"), 3),
            )
        qat = self.query_one("#qat-summary", Static)
        qat.update(qat_text(rep))
        qat.display = bool(qat_text(rep))
        self.query_one("#npu", Static).update(npu_text(rep, self.size.width or 80))
        found = [as_finding(f) for f in rep.get("findings") or []]
        self.query_one("#findings", Static).update(
            "\n".join(finding_text(f) for f in found) if found else "None.")
