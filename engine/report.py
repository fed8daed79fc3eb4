"""report.md: the run told for a person, from the same dict as report.json."""

from __future__ import annotations

from typing import Any


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.2f} %"


def _size(n: Any) -> str:
    if not n:
        return "—"
    n = float(n)
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def task_metric_names(report: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for st in (report.get("stages") or {}).values():
        for k, v in (st.get("metrics") or {}).items():
            if not isinstance(v, dict | list) and k not in names:
                names.append(k)
    return names


def render_markdown(report: dict[str, Any], npu_markdown: str = "") -> str:
    out: list[str] = []
    status = report.get("status", "?")
    out.append(f"# artq run: {report.get('name', '')}")
    out.append("")
    out.append(f"- status: **{status.upper()}**")
    out.append(f"- model: `{(report.get('model') or {}).get('path', report.get('config', {}).get('model', {}).get('path', ''))}`")
    out.append(f"- run folder: `{report.get('run_dir', '')}`")
    if report.get("error"):
        e = report["error"]
        out.append(f"- error: {e.get('message', '')}")
        if e.get("hint"):
            out.append(f"- what to do: {e['hint']}")
    v = report.get("verdict")
    if v:
        word = "PASS" if v.get("pass") else "FAIL"
        drop = v.get("drop")
        out.append(
            f"- verdict: **{word}** — INT8 drop {drop:.2f} points on {v['metric']} "
            f"(profile {v['profile']}: ≤ {v['threshold']:g})" if drop is not None else f"- verdict: {word}"
        )
        out.append(f"- advice: {v.get('advice', '')}")
    out.append("")

    stages = report.get("stages") or {}
    if stages:
        names = task_metric_names(report)
        out.append("## Stages")
        out.append("")
        head = ["stage", "size", *names, "agreement acc", "cos", "rmse"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for name, st in stages.items():
            m = st.get("metrics") or {}
            agr = m.get("agreement") or {}
            row = [name.upper(), _size(st.get("size_bytes"))]
            row += [_pct(m.get(k)) for k in names]
            row += [_pct(agr.get("acc")), f"{agr['cos']:.5f}" if agr.get("cos") is not None else "—",
                    f"{agr['rmse']:.4g}" if agr.get("rmse") is not None else "—"]
            out.append("| " + " | ".join(row) + " |")
        fp32 = (stages.get("fp32") or {}).get("size_bytes")
        int8 = (stages.get("int8") or {}).get("size_bytes")
        if fp32 and int8:
            out.append("")
            out.append(f"INT8 is {100 * (1 - int8 / fp32):.1f} % smaller than FP32.")
        out.append("")

    findings = report.get("findings") or []
    if findings:
        out.append("## Calibration diagnostics")
        out.append("")
        for f in findings:
            out.append(f"- **{f.get('severity', '').upper()}** {f.get('message', '')}")
            if f.get("evidence"):
                out.append(f"  - evidence: {f['evidence']}")
            if f.get("fix"):
                out.append(f"  - fix: {f['fix']}")
        out.append("")

    if npu_markdown:
        out.append(npu_markdown.rstrip())
        out.append("")

    data = report.get("data") or {}
    if data:
        out.append("## Data")
        out.append("")
        cal = data.get("calibration") or {}
        test = data.get("test") or {}
        out.append(f"- calibration: {cal.get('used', '?')} of {cal.get('available', '?')} items from "
                   f"`{cal.get('source', '')}` (seed {cal.get('seed', '?')})")
        out.append(f"- test: {test.get('items', '?')} items from `{test.get('source', '')}`")
        pp = report.get("preprocessing")
        if pp:
            out.append(f"- preprocessing: {pp['height']}×{pp['width']} {pp['color']}, scale {pp['scale']:.6g}, "
                       f"mean {pp['mean']}, std {pp['std']}")
        out.append("")

    t = report.get("timings") or {}
    if t:
        out.append("## Timings")
        out.append("")
        out.append(", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in t.items()))
        out.append("")
    return "\n".join(out)
