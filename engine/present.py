"""A report in words: the one wording the CLI, report.md and the TUI all use.

Every function takes a typed :class:`~engine.report.Report` and returns plain strings or
rows of strings; the faces only style them (rich colours, markdown bold, Textual widgets),
so they cannot disagree about a number or a sentence. No rich or textual here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .present_bias import bias_lines, equalize_lines  # noqa: F401 - the bias correction's words, re-exported
from .present_draws import draws_detail, draws_headline, draws_lines, draws_table  # noqa: F401

# The uncertainty's words live in present_interval (for this module's size); the faces
# take them from here like every other wording: the marked names are re-exported.
from .present_interval import (
    NOT_RESOLVED,  # noqa: F401
    STATE_WORDS,
    VERSUS_NOTE,  # noqa: F401
    drop_cell,  # noqa: F401
    int8_drop_cell,  # noqa: F401
    int8_judgement,
    interval_cell,
    interval_chart,  # noqa: F401
    interval_text,
    measured_text,
    noise_sentence,  # noqa: F401
    paired_cell,  # noqa: F401
    resolve_text,
    versus_cell,  # noqa: F401
)
from .present_qat import qat_lines, qat_note  # noqa: F401 - QAT's words, re-exported
from .verdict import UNPLACED, UNPLACED_BEFORE, UNRESOLVED, db_text, placement_sentence

if TYPE_CHECKING:  # only types: tui.format imports the numbers below at start-up
    from .report import Finding, Report

#: One name per metric, short enough for a table head in 80 columns, used in sentences too.
METRIC_NAMES = {
    "top1": "top-1",
    "sequence_accuracy": "seq acc",
    "char_accuracy": "char acc",
    "box_f1": "box F1",
    "box_precision": "box P",
    "box_recall": "box R",
    "pixel_f1": "pix F1",
    "agreement": "agreement",
    "sqnr_db": "SQNR",
}

#: What the tables' columns without a unit mean (under the table in every face).
COLUMN_NOTES = {
    "drop": "drop: points lost against FP32 (negative: scored higher)",
    "agree": "agree: items whose top class matches FP32's (class outputs only)",
    "cos": "cos: cosine of the output against FP32's",
    "SQNR dB": "SQNR: the output's variation in FP32 (each channel about its mean) over "
               "the error the stage adds, in dB (exact: identical)",
    "nse": "nse: ST's, 1 − error power over the output's variation about its overall mean",
    "rule": "rule: what judges the output, and its bar for the profile",
    "95 %": "95 %: INT8's drop ± the half-width of its paired 95 % interval, items "
            "FP32 got right and INT8 wrong ↓ / the reverse ↑",
    "result": "result: PASS/FAIL on the measured value; INT8's by its 95 % interval, NOT "
              "RESOLVED when that straddles the bar",
}

def metric_name(name: str | None) -> str:
    return METRIC_NAMES.get(name or "", name or "?")


# ------------------------------------------------------------------ numbers


def pct(v: Any, digits: int = 2) -> str:
    """A fraction as a percentage: 0.996 → '99.60 %'; None → '—'."""
    return "—" if v is None else f"{100 * float(v):.{digits}f} %"


def points(v: Any) -> str:
    """A drop in percentage points, signed, always 2 decimals: "0" beside "-0.1" misleads."""
    return f"{v:+.2f}" if isinstance(v, int | float) and not isinstance(v, bool) else "—"


def drop_text(v: float | None) -> str:
    """A drop in a sentence: '0.40 points' (the tables sign it: '+0.40')."""
    return "— points" if v is None else f"{v:.2f} points"


def size(n: Any) -> str:
    if n is None or n == "":
        return "—"
    n = float(n)
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.2f} MiB"


def fixed(v: Any, digits: int) -> str:
    return "—" if v is None else f"{float(v):.{digits}f}"


def size_change(fp32: int, int8: int) -> str:
    """'71.3 % smaller than FP32', or larger: a model with little to quantize can grow."""
    change = 100 * (1 - int8 / fp32)
    if round(change, 1) == 0:
        return "the same size as FP32"
    return f"{abs(change):.1f} % {'smaller' if change > 0 else 'larger'} than FP32"


# ------------------------------------------------------------------ the stage table


@dataclass(frozen=True)
class StageTable:
    heads: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def note(self) -> str:
        """What the columns without a unit mean, for under the table."""
        return "; ".join(COLUMN_NOTES[h] for h in self.heads if h in COLUMN_NOTES)


def stage_table(rep: Report, *, rmse: bool = True) -> StageTable:
    """One row per stage: size, task metrics, drop in points (where some output is judged
    in points). Each output's agreement is in :func:`output_table`; ``rmse`` is kept for
    the faces' calls."""
    names = rep.metric_names()
    drops = {name: rep.drop(name) for name in rep.stages}
    show_drop = any(d is not None for d in drops.values())
    j8 = int8_judgement(rep)
    show_iv = show_drop and j8 is not None and j8.interval is not None
    heads = ["stage", "size", *(metric_name(n) for n in names)] + (["drop"] if show_drop else [])
    heads += ["95 %"] if show_iv else []
    rows = []
    for name, st in rep.stages.items():
        m = st.metrics
        row = [name.upper(), size(st.size_bytes)]
        row += [pct(m.task.get(n)) if m else "—" for n in names]
        if show_drop:
            row.append(points(drops[name]))
        if show_iv:
            row.append(interval_cell(j8) if name == "int8" else "")
        rows.append(tuple(row))
    return StageTable(tuple(heads), tuple(rows))


def sqnr(a: Any) -> str:
    """An output's SQNR cell: '23.4', 'exact' (identical to FP32), '—' (no signal)."""
    if a is None:
        return "—"
    if a.exact:
        return "exact"
    return "—" if a.sqnr_db is None else db_text(a.sqnr_db)


def rule_text(j: Any) -> str:
    """'SQNR ≥ 26 dB', 'top-1 drop ≤ 2', 'argmax drop ≤ 2', 'not judged'."""
    if j is None:
        return "—"
    if not j.judged:
        return "not judged"
    if j.unit == "dB":
        return f"SQNR ≥ {j.bar:g} dB"
    return f"{'argmax' if j.rule == 'argmax' else metric_name(j.metric)} drop ≤ {j.bar:g}"


def _result(rep: Report, stage: str, a: Any, j: Any) -> str:
    """PASS/FAIL of one output of one stage by its INT8 judgement's rule and bar; INT8's
    own with its interval's state (NOT RESOLVED) and interval."""
    if j is None or a is None:
        return "—"
    if stage == "int8" and j.judged and j.interval is not None:
        # The state only: the interval itself is beside the drop and in the verdict line.
        return STATE_WORDS[j.state] if j.unit == "dB" else \
            f"{STATE_WORDS[j.state]} ({points(j.value)})"
    if j.unit == "dB":
        ok = a.exact or (a.sqnr_db is not None and a.sqnr_db >= j.bar)
        return "PASS" if ok else "FAIL"
    if j.rule == "argmax":
        drop = None if a.acc is None else round((1 - a.acc) * 100, 4)
    else:
        base, this = rep.stage("fp32").metrics, rep.stage(stage).metrics
        b = base.value(j.metric) if base else None
        v = this.value(j.metric) if this else None
        drop = None if b is None or v is None else round((b - v) * 100, 4)
    if drop is None:
        return "—"
    return f"{'PASS' if drop <= j.bar else 'FAIL'} ({points(drop)})"


def output_table(rep: Report, *, wide: bool = True) -> StageTable:
    """One row per output and stage against FP32 (FP32 itself is the reference), by the
    output's name: agreement (class outputs), cos, SQNR, and the rule that judges it with
    the result. ``wide=False`` leaves out nse and rmse (80 columns: the CLI)."""
    judged = {j.name: j for j in (rep.verdict.outputs if rep.verdict else ())}
    stages = [(n, st) for n, st in rep.stages.items()
              if n != "fp32" and st.metrics is not None and st.metrics.outputs]
    if not stages:
        return StageTable((), ())
    names = [a.name for a in stages[0][1].metrics.outputs]  # type: ignore[union-attr]
    show_acc = any(a.acc is not None for _, st in stages for a in st.metrics.outputs)  # type: ignore[union-attr]
    heads = ["output", "stage"] + (["agree"] if show_acc else []) + ["cos", "SQNR dB"]
    heads += (["nse", "rmse"] if wide else []) + ["rule", "result"]
    rows = []
    for name in names:
        for k, (stage, st) in enumerate(stages):
            a = st.metrics.output(name)  # type: ignore[union-attr]
            j = judged.get(name)
            short = name if len(name) <= 24 else name[:23] + "…"
            row = [short if k == 0 else "", stage.upper()]
            row += [pct(a.acc if a else None)] if show_acc else []
            row += [fixed(a.cos if a else None, 5), sqnr(a)]
            if wide:
                row += [fixed(a.nse if a else None, 5),
                        "—" if a is None or a.rmse is None else f"{a.rmse:.4g}"]
            row += [rule_text(j) if k == 0 else "", _result(rep, stage, a, j)]
            rows.append(tuple(row))
    return StageTable(tuple(heads), tuple(rows))


# ------------------------------------------------------------------ sentences


def title(rep: Report) -> str:
    """'digits_ptq: OK — PTQ, 200 calibration samples'."""
    samples = rep.setting("calibration.samples", "?")
    method = rep.method.upper()
    tail = f" — {method}, {samples} calibration samples" if method else ""
    return f"{rep.name}: {rep.status.upper()}{tail}"


def verdict(rep: Report) -> tuple[str, str] | None:
    """('PASS', 'INT8 drop 0.40 points on top-1 (profile high: ≤ 1)'), or in dB for an
    output judged on fidelity: ('FAIL', "INT8 output 'grid': SQNR 12.3 dB against FP32
    (profile general: ≥ 26 dB)"), naming the worst output when several are judged."""
    v = rep.verdict
    if v is None:
        return None
    word = STATE_WORDS[v.confidence]
    judged = v.judged
    where = f" output '{v.output}'" if v.output and len(v.outputs) > 1 else ""
    tail = ""
    if len(judged) > 1:
        failing = sum(not j.passed for j in judged)
        tail = (f"; worst of {len(judged)} judged outputs"
                + (f", {failing} fail" if failing > 1 else ""))
    unjudged = len(v.outputs) - len(judged)
    if unjudged:
        tail += f"; {unjudged} output{'s' if unjudged != 1 else ''} not judged"
    w = next((j for j in judged if j.name == v.output), None)
    # The output that leaves the verdict open, named when it is not the headline's.
    if (open_ := next((j for j in judged if j.state == UNRESOLVED), None)) is not None \
            and v.confidence == UNRESOLVED:
        named = f" (output '{open_.name}')" if open_ is not w else ""
        after = f"; {resolve_text(open_)}{named}"
    else:
        after = ""
    if v.unit == "dB":
        got = ("identical to FP32" if w is not None and w.exact else
               "no signal to compare" if v.int8 is None else
               f"{measured_text(w) if w is not None else f'SQNR {db_text(v.int8)} dB'} "
               "against FP32")
        return word, f"INT8{where}: {got} (profile {v.profile}: ≥ {v.threshold:g} dB{tail}){after}"
    if v.drop is None:
        return word, "no INT8 metric to judge"
    drop = measured_text(w) if w is not None and w.interval is not None else \
        f"drop {drop_text(v.drop)}"
    return word, (f"INT8{where} {drop} on {metric_name(v.metric)} "
                  f"(profile {v.profile}: ≤ {v.threshold:g}{tail}){after}")


def advice(rep: Report) -> str:
    """The verdict's advice; where it was written before the placement was known (or by an
    older artq) and the report's N6 estimate says how many ops run on the CPU, that count."""
    text = rep.verdict.advice if rep.verdict else ""
    summary = rep.npu.summary if rep.npu is not None else None
    cpu_ops = summary.ops_cpu if summary is not None else None
    if cpu_ops is not None:
        for unknown in (UNPLACED, UNPLACED_BEFORE):
            text = text.replace(unknown, placement_sentence(cpu_ops))
    return text


def error_lines(rep: Report) -> list[str]:
    if rep.error is None:
        return []
    lines = [f"Error: {rep.error.message}"]
    return lines + ([f"What to do: {rep.error.hint}"] if rep.error.hint else [])


def size_line(rep: Report) -> str | None:
    """'INT8 is 71.3 % smaller than FP32 (287.9 KiB → 82.5 KiB).'"""
    fp32, int8 = rep.stage("fp32").size_bytes, rep.stage("int8").size_bytes
    if not fp32 or not int8:
        return None
    return f"INT8 is {size_change(fp32, int8)} ({size(fp32)} → {size(int8)})."


def precision_story(rep: Report) -> str | None:
    """Does the loss come from 16-bit or from 8-bit? One sentence from the stages' drops."""
    d16, d8 = rep.drop("fp16"), rep.drop("int8")
    if d8 is None:
        return _fidelity_story(rep)
    j8 = int8_judgement(rep)
    # INT8's figure with its interval where the verdict has one, as the verdict line has it.
    with_iv = j8 is not None and j8.interval is not None and j8.value == d8
    i8, s8 = ((interval_text(j8), interval_text(j8)) if with_iv
              else (f"{d8:.2f}", f"{d8:+.2f}"))
    if d16 is None:
        return f"INT8 loses {i8 if with_iv else f'{d8:.2f} points'} against FP32."
    if d8 <= 0 and d16 <= 0:
        return f"Neither FP16 ({d16:+.2f}) nor INT8 ({s8}) loses anything against FP32."
    if d8 <= 0:
        # Not "the loss comes from 16-bit": INT8, the model that ships, lost nothing.
        return (f"INT8 loses nothing against FP32 ({s8 if with_iv else f'{s8} points'}; "
                f"FP16 {d16:+.2f}).")
    where = "8-bit quantization" if d8 - d16 >= d16 else "16-bit already"
    return (f"FP16 loses {d16:.2f} points, INT8 {i8}: the loss comes from {where}"
            + (" (FP16 keeps FP32's accuracy)." if abs(d16) < 0.05 else "."))


def _fidelity_story(rep: Report) -> str | None:
    """The same story in dB, for a verdict on an output's fidelity."""
    v = rep.verdict
    if v is None or v.unit != "dB" or not v.output:
        return None
    m16, m8 = rep.stage("fp16").metrics, rep.stage("int8").metrics
    a16, a8 = (m16.output(v.output) if m16 else None), (m8.output(v.output) if m8 else None)
    if a8 is None:
        return None
    what = f"output '{v.output}'"
    j8 = next((j for j in v.outputs if j.name == v.output), None)
    iv8 = (f" (95 %: {db_text(j8.interval.low)}–{db_text(j8.interval.high)})"
           if j8 is not None and j8.interval is not None else "")
    if a16 is None:
        return f"INT8 keeps {what} at {sqnr(a8)} dB SQNR{iv8} against FP32."
    if a8.exact:
        return f"INT8 reproduces {what} exactly (FP16: {sqnr(a16)} dB)."
    if a16.exact:
        return (f"FP16 reproduces {what} exactly, INT8 keeps it at {sqnr(a8)} dB SQNR{iv8}: the "
                "loss comes from 8-bit quantization.")

    def db(a: Any) -> float:
        return float("inf") if a.exact else (a.sqnr_db if a.sqnr_db is not None else float("-inf"))

    where = "8-bit quantization" if db(a16) - db(a8) >= 3.0 else "16-bit already"
    return (f"FP16 keeps {what} at {sqnr(a16)} dB SQNR, INT8 at {sqnr(a8)} dB{iv8}: "
            f"the loss comes from {where}.")


def speed(x_faster: float, digits: int = 2) -> str:
    """'53.22× faster', or '1.52× slower' when INT8 takes longer (never '0.66× faster')."""
    x, word = (x_faster, "faster") if x_faster >= 1 else (1 / x_faster, "slower")
    return f"{x:.{digits}f}".rstrip("0").rstrip(".") + f"× {word}"


def headline(rep: Report) -> str | None:
    """'INT8 vs FP32 on the N6: 3.49× smaller, 53.22× faster, 4.0× less activation RAM'."""
    h = rep.headline
    if h is None or not h.x_faster:
        return None
    return (f"INT8 vs FP32 on the N6: {h.size_x_smaller}× smaller, {speed(h.x_faster)}, "
            f"{h.ram_x_smaller}× less activation RAM")


def npu_lines(rep: Report) -> list[str]:
    """The N6 estimate: latency, placement, memory (empty without an analysis)."""
    npu = rep.npu
    if npu is None:
        return []
    if npu.error is not None:
        return [f"N6 estimate failed: {npu.error.message}"]
    s = npu.summary
    if s is None:
        return []
    per_s = "—" if s.inferences_per_s is None else f"{s.inferences_per_s:.0f}"
    ms = "—" if s.latency_ms is None else f"{s.latency_ms:.3f}"
    return [
        f"Estimated N6 latency: {ms} ms per inference ({per_s}/s) on {npu.target or '?'}",
        f"Placement: {_n(s.ops_npu)} of {_n(s.ops_total)} ops on the NPU, {_n(s.ops_cpu)} on "
        f"the CPU; epochs {_n(s.epochs_hw)} HW / {_n(s.epochs_sw)} SW",
        f"Memory: weights in flash {size(s.weights_flash_bytes)}, activations "
        f"{size(s.activations_ram_bytes)} internal RAM, {size(s.external_ram_bytes)} external RAM",
    ]


def _n(v: Any) -> str:
    return "?" if v is None else str(v)


def finding_lines(f: Finding) -> list[str]:
    """['WARNING: message', 'evidence: …', 'fix: …']: the faces indent the details."""
    lines = [f"{(f.severity or 'info').upper()}: {f.message}"]
    if f.evidence:
        lines.append(f"evidence: {f.evidence}")
    if f.fix:
        lines.append(f"fix: {f.fix}")
    return lines


def suspect_lines(rep: Report, limit: int = 5) -> list[str]:
    """The suspect layers, worst first, under a line that says where the rest are."""
    from .layer_names import short_name  # noqa: PLC0415

    rows = rep.suspects()
    if not rows:
        return []
    head = f"Suspect layers, worst first ({len(rows)}; all layers in report.md and layers.csv):"
    return [head, *(f"#{r.index} {r.op} {r.layer or short_name(r.name, r.op)}: {r.error.why if r.error else ''}"
                    for r in rows[:limit])]


def sensitivity_advice(rep: Report, limit: int = 3) -> list[str]:
    """What keeping suspects in float would buy: the best tried ones, else the first note."""
    entries = rep.sensitivity or ()
    tried = [e for e in entries if e.tried]
    return [e.suggestion for e in (tried[:limit] if tried else entries[:1])]
