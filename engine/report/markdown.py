"""report.md: the run told for a person, from the same dict as report.json."""

from __future__ import annotations

from typing import Any


def size_change(fp32: int, int8: int) -> str:
    """'71.3 % smaller than FP32', or larger: a model with little to quantize can grow."""
    pct = 100 * (1 - int8 / fp32)
    if round(pct, 1) == 0:
        return "the same size as FP32"
    return f"{abs(pct):.1f} % {'smaller' if pct > 0 else 'larger'} than FP32"


def qat_note(report: dict[str, Any]) -> str:
    """What QAT's fine-tuning did, in one line; says so when it kept the starting point."""
    qat = report.get("qat") or {}
    if not qat:
        return ""
    best = qat.get("best_val")
    line = (f"QAT: {qat.get('epochs_run', '?')} epochs, best validation {qat.get('metric', '')} "
            f"{f'{best:.4f}' if isinstance(best, int | float) else '—'} at epoch "
            f"{qat.get('best_epoch', '?')}"
            f"{' (stopped early)' if qat.get('stopped_early') else ''}")
    if qat.get("best_epoch") == 0:
        line += (". No epoch beat the starting point on the validation data, so the INT8 model "
                 "has PTQ's ranges and the float weights (epoch 0): try another learning rate, "
                 "more epochs or more varied validation data")
    return line

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


def precision_story(report: dict[str, Any]) -> str | None:
    """One sentence: does the loss come from 16-bit or from 8-bit? (stages' ``drop``)."""
    stages = report.get("stages") or {}
    d16 = (stages.get("fp16") or {}).get("drop")
    d8 = (stages.get("int8") or {}).get("drop")
    if d8 is None:
        return None
    if d16 is None:
        return f"INT8 loses {d8:.2f} points against FP32."
    if d8 <= 0 and d16 <= 0:
        return f"Neither FP16 ({d16:+.2f}) nor INT8 ({d8:+.2f}) loses anything against FP32."
    if d8 <= 0:
        # Not "the loss comes from 16-bit": INT8, the model that ships, lost nothing.
        return f"INT8 loses nothing against FP32 ({d8:+.2f} points; FP16 {d16:+.2f})."
    where = "8-bit quantization" if d8 - d16 >= d16 else "16-bit already"
    return (f"FP16 loses {d16:.2f} points, INT8 {d8:.2f}: the loss comes from {where}"
            + (" (FP16 keeps FP32's accuracy)." if abs(d16) < 0.05 else "."))


def _num(v: Any, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _layers_markdown(report: dict[str, Any], limit: int = 12) -> list[str]:
    rows = [r for r in report.get("layers") or [] if r.get("error")]
    info = report.get("layer_analysis") or {}
    if not rows:
        if info.get("error"):
            return ["## Per-layer quantization error", "",
                    f"The analysis failed: {info['error'].get('message', '')}", ""]
        return []
    out = ["## Per-layer quantization error", ""]
    out.append(
        f"On {info.get('debug_samples', '?')} calibration items. *layer*: the error each op "
        "adds, fed the same quantized input as a float copy (TFLite's QuantizationDebugger); "
        "*model*: the error accumulated end to end against FP32. rmse/scale is the rms error "
        "in quantization steps (rounding alone: 0.29). Full table: `layers.csv`."
    )
    out.append("")
    suspects = [r for r in rows if r["error"].get("suspect")]
    worst = sorted(rows, key=lambda r: (not r["error"].get("suspect"),
                                        (r["error"].get("layer") or {}).get("sqnr_db", 1e9)))
    shown = worst[: max(limit, len(suspects))]
    out.append("| # | op | tensor | on | layer SQNR dB | layer rmse/scale | model SQNR dB | "
               "model rmse/scale | suspect |")
    out.append("|---:|---|---|---|---:|---:|---:|---:|---|")
    for r in sorted(shown, key=lambda r: r.get("index") or 0):
        e = r["error"]
        lay, mod = e.get("layer") or {}, e.get("model") or {}
        name = str(r.get("name", ""))
        name = name if len(name) <= 40 else name[:39] + "…"
        out.append(
            f"| {r.get('index', '')} | {r.get('op', '')} | {name} | {r.get('placement') or '—'} | "
            f"{_num(lay.get('sqnr_db'), '.1f')} | {_num(lay.get('rmse_scale'), '.3f')} | "
            f"{_num(mod.get('sqnr_db'), '.1f')} | {_num(mod.get('rmse_scale'), '.3f')} | "
            f"{'YES: ' + e.get('why', '') if e.get('suspect') else 'no'} |"
        )
    if len(rows) > len(shown):
        out.append("")
        out.append(f"{len(rows) - len(shown)} healthier layer(s) not shown.")
    out.append("")
    sens = report.get("sensitivity") or []
    if sens:
        out.append("### Sensitivity: one suspect at a time kept in float")
        out.append("")
        items = sens[0].get("items")
        if any(e.get("regained_points") is not None for e in sens):
            out.append(f"Scored on the first {items} test items, against INT8 on the same "
                       "items; cost from the NPU estimate of the mixed model.")
        else:
            out.append("Not scored: INT8 loses nothing against FP32. Cost from the NPU "
                       "estimate of each mixed model.")
        out.append("")
        for e in sens:
            out.append(f"- {e.get('suggestion', '')}")
        out.append("")
    return out


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
        head = ["stage", "size", *names, "drop (pts)", "agreement acc", "cos", "rmse"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for name, st in stages.items():
            m = st.get("metrics") or {}
            agr = m.get("agreement") or {}
            row = [name.upper(), _size(st.get("size_bytes"))]
            row += [_pct(m.get(k)) for k in names]
            row += [f"{st['drop']:+.2f}" if st.get("drop") is not None else "—"]
            row += [_pct(agr.get("acc")), f"{agr['cos']:.5f}" if agr.get("cos") is not None else "—",
                    f"{agr['rmse']:.4g}" if agr.get("rmse") is not None else "—"]
            out.append("| " + " | ".join(row) + " |")
        fp32 = (stages.get("fp32") or {}).get("size_bytes")
        int8 = (stages.get("int8") or {}).get("size_bytes")
        if fp32 and int8:
            out.append("")
            out.append(f"INT8 is {size_change(fp32, int8)}.")
        story = precision_story(report)
        if story:
            out.append("")
            out.append(story)
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

    out.extend(_layers_markdown(report))

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
