"""6 Compare: two runs side by side, every metric with its difference; a sweep as a table
and a chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Label, Select, Static

from engine import present as say
from engine.report import Agreement, NpuSummary, Report, StageMetrics

from .. import format as fmt
from ..choice import Choice
from ..guard import Guarded
from ..widgets import QuietFocus

# Config keys that differ between any two runs and say nothing about the try.
_NOISE = {"output.runs_dir", "name"}


def _delta(a: Any, b: Any, scale: float = 1.0, unit: str = "", digits: int = 2) -> str:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return "" if a == b else "≠"
    try:
        d = (float(b) - float(a)) * scale
    except (TypeError, ValueError):
        return "" if a == b else "≠"
    if d == 0:
        return "="
    if isinstance(a, int) and isinstance(b, int) and scale == 1.0:
        return f"{d:+.0f}{unit}"
    if abs(d) < 0.5 * 10 ** -digits:  # not "-0.00000": say how small
        return f"{d:+.1e}{unit}"
    return f"{d:+.{digits}f}{unit}"


def _images(c: dict[str, Any]) -> bool:
    """Whether a run's data went through preprocessing (images, not model-ready arrays)."""
    return any(c.get(f"data.{s}.kind") in ("synthetic", "images") or c.get(f"data.{s}.raw")
               for s in ("calibration", "test", "train", "validation"))


def means_something(key: str, ca: dict[str, Any], cb: dict[str, Any]) -> bool:
    """Whether setting ``key`` acts in both runs: a QAT knob means nothing to a PTQ run, a
    preprocessing knob nothing to model-ready arrays, a key one config lacks nothing to it."""
    if ca.get(key) is None or cb.get(key) is None:
        return False
    qat = ca.get("quantization.method") == cb.get("quantization.method") == "qat"
    if key.startswith(("quantization.qat.", "data.train.", "data.validation.")) and not qat:
        return False
    return not (key.startswith("preprocessing.") and not (_images(ca) and _images(cb)))


def compare_rows(a: Report, b: Report) -> list[tuple[str, str, str, str]]:
    """(what, A, B, B − A) for what two reports both have: the settings that differ and act
    in both, then metrics, sizes, N6 (a figure only one run has compares nothing)."""
    rows: list[tuple[str, str, str, str]] = []
    ca, cb = fmt.flatten(dict(a.config)), fmt.flatten(dict(b.config))
    for key in sorted(set(ca) | set(cb)):
        if key in _NOISE or ca.get(key) == cb.get(key) or not means_something(key, ca, cb):
            continue
        rows.append((f"set {key}", fmt.num(ca.get(key)), fmt.num(cb.get(key)),
                     _delta(ca.get(key), cb.get(key), digits=4)))
    ua = a.data.calibration.used if a.data.calibration else None
    ub = b.data.calibration.used if b.data.calibration else None
    if ua is not None or ub is not None:
        # What calibration really used: samples > the items available means all of them.
        rows.append(("calibration samples used", fmt.num(ua), fmt.num(ub), _delta(ua, ub)))
    rows.append(("status", a.status.upper(), b.status.upper(), ""))
    va, vb = say.verdict(a), say.verdict(b)
    wa, wb = va[0] if va else "—", vb[0] if vb else "—"
    pa = a.verdict.profile if a.verdict else None
    pb = b.verdict.profile if b.verdict else None
    if pa == pb:
        rows.append((f"verdict ({pa or '?'})", wa, wb, ""))
    else:  # each judged by its own bar: say which
        rows.append(("verdict", f"{wa} ({pa or '?'})", f"{wb} ({pb or '?'})", "≠"))
    da, db = a.drop("int8"), b.drop("int8")
    rows.append(("INT8 drop (points)", say.int8_drop_cell(a), say.int8_drop_cell(b),
                 _delta(da, db)))
    # The difference item by item on the same test items: is it more than noise?
    from engine.uncertainty import comparison_key, versus  # noqa: PLC0415 - numpy, when shown

    key = comparison_key(a.verdict)
    if a.run_dir and b.run_dir and key == comparison_key(b.verdict) \
            and (vs := versus(a.run_dir, b.run_dir, key)) is not None:
        rows.append(("INT8 drop B − A, paired", "", "", say.paired_cell(vs)))
    names = a.metric_names() + [n for n in b.metric_names() if n not in a.metric_names()]
    for stage in ("fp32", "fp16", "int8"):
        sa, sb = a.stage(stage), b.stage(stage)
        ma, mb = sa.metrics or StageMetrics(), sb.metrics or StageMetrics()
        if sa.metrics is None and sb.metrics is None:
            continue
        for n in names:
            x, y = ma.task.get(n), mb.task.get(n)
            rows.append((f"{stage.upper()} {say.metric_name(n)}", say.pct(x), say.pct(y),
                         _delta(x, y, 100, " pts")))
        outs = [o.name for o in ma.outputs or ()]
        outs += [o.name for o in mb.outputs or () if o.name not in outs]
        for out in outs if stage != "fp32" else ():
            # Every output by its name: one output's figures never stand for the model's.
            ga, gb = ma.output(out) or Agreement(), mb.output(out) or Agreement()
            tag = f"{stage.upper()} {out}" if len(outs) > 1 else stage.upper()
            if ga.acc is not None or gb.acc is not None:
                rows.append((f"{tag} agree", say.pct(ga.acc), say.pct(gb.acc),
                             _delta(ga.acc, gb.acc, 100, " pts")))
            rows.append((f"{tag} cos", say.fixed(ga.cos, 5), say.fixed(gb.cos, 5),
                         _delta(ga.cos, gb.cos, digits=5)))
            rows.append((f"{tag} SQNR dB", say.sqnr(ga if ga.name else None),
                         say.sqnr(gb if gb.name else None), _delta(ga.sqnr_db, gb.sqnr_db, digits=1)))
        rows.append((f"{stage.upper()} size", say.size(sa.size_bytes), say.size(sb.size_bytes),
                     _delta(sa.size_bytes, sb.size_bytes, 1 / 1024, " KiB", 1)))
    na = (a.npu.summary if a.npu else None) or NpuSummary()
    nb = (b.npu.summary if b.npu else None) or NpuSummary()
    for key, label, scale, unit, digits in (
        ("latency_ms", "N6 latency (ms)", 1, " ms", 3),
        ("ops_npu", "ops on the NPU", 1, "", 0),
        ("ops_cpu", "ops on the CPU", 1, "", 0),
        ("epochs_sw", "SW epochs", 1, "", 0),
        ("weights_flash_bytes", "weights in flash", 1 / 1024, " KiB", 1),
        ("activations_ram_bytes", "activation RAM", 1 / 1024, " KiB", 1),
        ("external_ram_bytes", "external RAM", 1 / 1024, " KiB", 1),
    ):
        x, y = getattr(na, key), getattr(nb, key)
        if x is None and y is None:
            continue
        show = say.size if key.endswith("bytes") else (lambda v: fmt.num(v, 3))
        rows.append((label, show(x), show(y), _delta(x, y, scale, unit, digits)))
    ta, tb = a.timing("total"), b.timing("total")
    rows.append(("run time", fmt.seconds(ta), fmt.seconds(tb), _delta(ta, tb, 1, " s", 1)))
    empty = ("", "—", "None")
    return [r for r in rows if r[0].startswith(("status", "verdict", "INT8 drop"))
            or (r[1] not in empty and r[2] not in empty)]


def model_of(rep: Report | None) -> str | None:
    """The model file a run quantized (what pairs two runs in Compare)."""
    path = rep.model.path if rep is not None and rep.model is not None else None
    return str(path) if path else None


def pick_pair(finished: list[str], b: str | None = None,
              models: dict[str, str | None] | None = None) -> tuple[str, str] | None:
    """(A, B) to compare: B the given run or the newest; A the newest other run of the same
    model (``models``: run folder → model file; a what-if is tried on one model, whatever
    the job is called), else of the same job, else the newest other run. Newest first in."""
    from .models import job_name  # noqa: PLC0415 - as set_runs imports run_label

    if not finished:
        return None
    b = b or finished[0]
    others = [r for r in finished if r != b]
    if not others:
        return None
    models = models or {}
    same_model = [r for r in others if models.get(b) and models.get(r) == models.get(b)]
    same_job = [r for r in others if job_name(r) == job_name(b)]
    return (same_model or same_job or others)[0], b


def read_sweep(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _variant_metric(v: dict[str, Any], primary: str | None = None) -> tuple[str, Any]:
    """The variant's primary INT8 metric, wherever the sweep put it."""
    m = v.get("metrics") or {}
    if primary and isinstance(m, dict) and isinstance(m.get(primary), int | float):
        return primary, m[primary]
    flat = fmt.flatten(m) if isinstance(m, dict) else {}
    for k, val in flat.items():
        if "int8" in k and isinstance(val, int | float) and "agreement" not in k:
            return k.replace("int8.", ""), val
    for k, val in flat.items():
        if isinstance(val, int | float) and "agreement" not in k:
            return k, val
    return "", None


def variant_label(v: dict[str, Any], same: frozenset[str] = frozenset()) -> str:
    """``same``: keys every variant sets alike, left out (they only crowd the table)."""
    s = v.get("set")
    if isinstance(s, dict):
        return " ".join(f"{k}={fmt.num(x)}" for k, x in s.items() if k not in same) or "(base)"
    if isinstance(s, list):
        return " ".join(str(x) for x in s) or "(base)"
    return str(s or "(base)")


def constant_keys(variants: list[dict[str, Any]]) -> frozenset[str]:
    """Keys set to one value in every variant, when some other key does vary."""
    from engine.sweep import varying_keys  # noqa: PLC0415 - the CLI's rule, one place

    sets = [v.get("set") for v in variants]
    if len(sets) < 2 or not all(isinstance(s, dict) for s in sets):
        return frozenset()
    return frozenset(set().union(*sets) - set(varying_keys(sets)))


def sweep_chart(sweep: dict[str, Any], width: int) -> str:
    variants = sweep.get("variants") or []
    same = constant_keys(variants)
    rows = [(variant_label(v, same), v.get("drop"),
             f"{say.drop_cell(v.get('drop'), v.get('interval'), sign='')} pts")
            for v in variants]
    if not rows:
        return "This sweep has no variants."
    labels = [variant_label(v, same) for v in variants]
    ivs = [v.get("interval") for v in variants]
    if all(isinstance(iv, dict) for v, iv in zip(variants, ivs, strict=True)
           if v.get("drop") is not None):
        # Each drop with its 95 % interval on one axis: overlaps are plain to see.
        pad = min(max(map(len, labels)), 28)
        chart = ("INT8 drop per variant (points; ● the drop, ├─┤ its 95 % interval, │ zero)\n"
                 + "\n".join(say.interval_chart(labels, [v.get("drop") for v in variants],
                                                 ivs, max(width - pad - 20, 10))))
    else:
        chart = ("INT8 drop per variant (points; shorter is better)\n"
                 + "\n".join(fmt.hbar_chart(rows, width)))
    said = say.noise_sentence(labels, [v.get("versus_best") for v in variants])
    return chart + (f"\n{say.VERSUS_NOTE}. {said}" if said else "")


CELL = 24  # widest A or B cell: both runs stay in view at 80 columns


def clip(text: str, width: int = CELL) -> str:
    """A long value cut in the middle: a path keeps its start and its file name."""
    if len(text) <= width:
        return text
    tail = (width - 1) * 2 // 3
    return text[: width - 1 - tail] + "…" + text[-tail:]


def clip_key(text: str, width: int) -> str:
    """A setting's row name cut at its start: ``…qat.learning_rate`` keeps the key's end."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def fit_rows(rows: list[tuple[str, str, str, str]], width: int) -> list[tuple[str, ...]]:
    """The rows cut to ``width`` columns so A and B both stay in view: A and B as wide as
    their values (at most CELL), the name gets the rest, then the difference (each column
    has 2 of padding, the scroll bars 4). A setting's name is cut at its start."""
    delta = min(max((len(r[3]) for r in rows), default=5), 14)
    room = width - 4 - 4 * 2 - delta
    longest = max((len(v) for r in rows for v in r[1:3]), default=4)
    what = min(max((len(r[0]) for r in rows), default=4), max(room - 2 * min(longest, CELL), 14))
    cell = max(min(CELL, (room - what) // 2), 6)
    return [(clip_key(w, what), clip(va, cell), clip(vb, cell), d) for w, va, vb, d in rows]


def _fill(table: DataTable, heads: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Replace the table's columns and rows, each column as wide as its widest cell.

    Explicit widths: left to auto-width, a table refilled while a Select's overlay closed
    kept header-wide columns ("5" for "50"), seen in tmux at 80×24."""
    table.clear(columns=True)
    for i, head in enumerate(heads):
        width = max([len(head), *(len(str(r[i])) for r in rows)])
        table.add_column(head, width=width)
    for row in rows:
        table.add_row(*row)


class ComparePane(Guarded, QuietFocus, VerticalScroll):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="knobs"):
            yield Label("A", classes="knob-label")
            yield Choice([], id="cmp-a", compact=True, prompt="run A")
            yield Label("B", classes="knob-label")
            yield Choice([], id="cmp-b", compact=True, prompt="run B")
        yield DataTable(id="cmp-table", zebra_stripes=True, cursor_type="row")
        yield Label("Sweeps (artq sweep)", classes="section")
        with Horizontal(classes="knobs"):
            yield Choice([], id="sweep-pick", compact=True, prompt="no sweep yet")
        yield DataTable(id="sweep-table", zebra_stripes=True, cursor_type="row")
        yield Static("", id="sweep-chart", markup=False)

    # --- handlers (the rendering is below) ---------------------------------------------

    def runs_loaded(self, runs: list[tuple[Path, dict[str, Any] | None]], sweeps: list[Path],
                    pending: str | None, new_sweep: bool) -> bool:
        """The runs were read again: fill the pickers and pick a pair and a sweep if none is
        picked (``pending``: a run just done, shown as B; ``new_sweep``: show the newest
        sweep). Returns whether this pane should be shown."""
        from ..session import finished  # noqa: PLC0415

        self.set_runs(runs, sweeps)
        a, b = self.query_one("#cmp-a", Select), self.query_one("#cmp-b", Select)
        done = finished(runs)
        models = {str(p): model_of(r) for p, r in runs}
        if a.is_blank() and b.is_blank():
            pair = pick_pair(done, None, models)
            if pair:
                self.compare(*pair)
            else:
                self.show_pair(None, None)
        if pending and pending in done:
            pair = pick_pair(done, pending, models)
            if pair:
                self.compare(*pair)
        sweep = self.query_one("#sweep-pick", Select)
        if sweeps and (sweep.is_blank() or new_sweep):
            sweep.value = str(sweeps[0])
            return new_sweep
        if not sweeps:
            self.show_sweep(None)
        return False

    def compare(self, a: str, b: str) -> None:
        """Show runs ``a`` and ``b`` (folders) side by side."""
        from ..session import read_report  # noqa: PLC0415

        sa, sb = self.query_one("#cmp-a", Select), self.query_one("#cmp-b", Select)
        with sa.prevent(Select.Changed), sb.prevent(Select.Changed):
            sa.value, sb.value = a, b
        self.show_pair(read_report(a), read_report(b))

    def pick_sweep(self, folder: Path) -> None:
        self.query_one("#sweep-pick", Select).value = str(folder)

    def on_resize(self) -> None:
        self._compare_changed()

    def compare_latest(self, runs: list[tuple[Path, Report | None]]) -> bool:
        """The two newest finished runs of one model, side by side; whether there were two."""
        from ..session import finished  # noqa: PLC0415

        pair = pick_pair(finished(runs), None, {str(p): model_of(r) for p, r in runs})
        if not pair:
            self.app.notify("Compare needs two finished runs.", severity="warning")
            return False
        self.compare(*pair)
        return True

    def swap(self) -> None:
        a, b = self.query_one("#cmp-a", Select), self.query_one("#cmp-b", Select)
        if not a.is_blank() and not b.is_blank():
            self.compare(str(b.value), str(a.value))

    @on(Select.Changed, "#cmp-a, #cmp-b")
    def _compare_changed(self) -> None:
        from ..session import read_report  # noqa: PLC0415

        a, b = self.query_one("#cmp-a", Select), self.query_one("#cmp-b", Select)
        if not a.is_blank() and not b.is_blank():
            self.show_pair(read_report(str(a.value)), read_report(str(b.value)))

    @on(Select.Changed, "#sweep-pick")
    def _sweep_changed(self, event: Select.Changed) -> None:
        if not event.select.is_blank():
            self.show_sweep(read_sweep(Path(str(event.value))))


    def set_runs(self, runs: list[tuple[Path, Report | None]], sweeps: list[Path]) -> None:
        from .models import run_labels  # noqa: PLC0415

        opts = [(label, str(p)) for (p, r), label in zip(runs, run_labels(runs), strict=True)
                if r is not None]
        for sel_id in ("#cmp-a", "#cmp-b"):
            sel = self.query_one(sel_id, Select)
            keep = sel.value
            with sel.prevent(Select.Changed):
                sel.set_options(opts)
                if keep in [v for _, v in opts]:
                    sel.value = keep
        sp = self.query_one("#sweep-pick", Select)
        keep = sp.value
        with sp.prevent(Select.Changed):
            sp.set_options([(p.name, str(p)) for p in sweeps])
            if keep in [str(p) for p in sweeps]:
                sp.value = keep

    def show_pair(self, a: Report | None, b: Report | None) -> None:
        table = self.query_one("#cmp-table", DataTable)
        if not a or not b:
            _fill(table, ("what", "A", "B", "B − A"),
                  [("Pick two finished runs (A and B) to compare.", "", "", "")])
            return
        rows = fit_rows(compare_rows(a, b), self.size.width or self.app.size.width)
        _fill(table, ("what", "A", "B", "B − A"), rows)

    def show_sweep(self, sweep: dict[str, Any] | None) -> None:
        table = self.query_one("#sweep-table", DataTable)
        table.clear(columns=True)
        chart = self.query_one("#sweep-chart", Static)
        if not sweep:
            chart.update("No sweep picked. Run `artq sweep CONFIG --set KEY=V1,V2 …`; "
                         "its folder appears here.")
            return
        rows = []
        same = constant_keys(sweep.get("variants") or [])
        vs_col = any(isinstance(v.get("versus_best"), dict) for v in sweep.get("variants") or [])
        for v in sweep.get("variants") or []:
            name, val = _variant_metric(v, sweep.get("metric"))
            rep = v.get("report") if isinstance(v.get("report"), dict) else {}
            status = str(v.get("status") or rep.get("status") or "").upper() or "—"
            vs = [say.versus_cell(v.get("versus_best"))] if vs_col else []
            rows.append((variant_label(v, same), status, name or "—",
                         fmt.pct(val) if isinstance(val, float) and val <= 1 else fmt.num(val),
                         say.drop_cell(v.get("drop"), v.get("interval")), *vs,
                         fmt.seconds(v.get("total_s"))))
        _fill(table, ("variant", "status", "metric", "INT8", "drop pts",
                      *(["vs best"] if vs_col else []), "time"), rows)
        wall = sweep.get("wall_s")
        # Less the padding and the scroll bar, so a bar never wraps.
        chart.update(sweep_chart(sweep, (self.size.width or 80) - 6)
                     + (f"\nwall time {fmt.seconds(wall)}" if wall is not None else ""))
