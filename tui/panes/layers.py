"""5 Layers: every layer of a run — placement and why, cost, quantization error — sortable
by any column, filterable (CPU only, suspects only, text), with a detail pane."""

from __future__ import annotations

import re
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Checkbox, DataTable, Input, Label, Select, Static

from engine.report import (
    ErrorFigures,
    LayerError,
    LayerRow,
    LayerSensitivity,
    NpuLayer,
    Report,
)

from .. import format as fmt
from ..choice import Choice
from ..guard import Guarded
from ..widgets import QuietFocus, Toggle

# (key, header, descending first?) — numbers that mean "cost" sort largest first.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("index", "#", False),
    ("op", "op", False),
    ("shape", "shape", False),
    ("placement", "place", False),
    ("macs", "MACs", True),
    ("est_us", "est µs", True),
    ("pct", "% time", True),
    ("sqnr", "SQNR dB", False),
    ("rmse_scale", "rmse/s", True),
    ("flag", "flag", True),
    ("reason", "reason", False),
)
HEADERS = {k: h for k, h, _ in COLUMNS}
#: Under this width the table leaves out what the detail pane says anyway, so the flag and
#: the reason stay readable (at 80 columns the reason was cut to nothing).
NARROW = 100
NARROW_HIDDEN = ("shape", "macs", "est_us", "rmse_scale")

_NPU_UNIT = re.compile(r"runs on the NPU \((?:the )?(?P<unit>[^)]*)\)")
# Whole phrases of engine.npu.rules' reasons and their short forms, then single words.
_PHRASES = (
    ("runs on the NPU as a view (no data movement)", "view, no data moved"),
    ("of a dynamic tensor is computed at run time on the CPU", "dynamic: at run time"),
    ("is not in ST's Neural-ART operator table", "not in ST's op table"),
    ("is not accelerated by the NPU", "not accelerated"),
    ("recurrent layers are not accelerated", "recurrent: not accelerated"),
    ("runs in software on the CPU", "in software"),
    ("conversion runs on the CPU", "on the CPU"),
)
_WORDS = (("convolution", "conv"), ("accelerators", "units"), ("software", "SW"),
          ("operator", "op"), ("in SW", "SW"))


def fit_words(text: str, room: int) -> str:
    """``text`` in ``room`` columns by whole words, an ellipsis saying some were left out."""
    if len(text) <= room:
        return text
    out = ""
    for word in text.split():
        if len(out) + len(word) + (1 if out else 0) > room - 1:
            break
        out = f"{out} {word}" if out else word
    return (out or text[: room - 1]) + "…"


def short_reason(reason: str, op: str = "", room: int = 26) -> str:
    """A placement reason said in ``room`` columns: its head (the why, before a colon or a
    bracket of detail), the op name left out (the op column has it), abbreviated in words.
    The detail pane has the whole sentence."""
    text = reason.strip()
    if m := _NPU_UNIT.fullmatch(text):
        text = m["unit"]
    for long, short in _PHRASES:
        text = text.replace(long, short)
    text = re.split(r": | \(|; ", text, maxsplit=1)[0].strip()
    if op and text.startswith(op + " "):
        text = text[len(op) + 1:]
    text = text.removeprefix("it ")
    for long, short in _WORDS:
        if len(text) <= room:
            break
        text = text.replace(long, short)
    return fit_words(text, room)


def layer_rows(rep: Report) -> list[dict[str, Any]]:
    """One flat row per layer: report.layers (with error and sensitivity) beside the NPU's
    view of the same layer (tier, rule, epoch, bound), else the NPU's layers alone."""
    src: tuple[LayerRow | NpuLayer, ...] = rep.layers or (rep.npu.layers if rep.npu else None) or ()
    rows = []
    for layer in src:
        npu = rep.npu_layer(layer.index) if isinstance(layer, LayerRow) else layer
        err = layer.error if isinstance(layer, LayerRow) else None
        sens = layer.sensitivity if isinstance(layer, LayerRow) else None
        el = err.layer if err else None
        suspect = bool(err and err.suspect)
        shape = layer.output_shape or ()
        rows.append({
            "index": layer.index if layer.index is not None else len(rows),
            "op": layer.op or "?",
            "name": layer.name or "",
            # The op's unique name, as sensitivity advice and layers.csv give it.
            "layer": (layer.layer if isinstance(layer, LayerRow) else "") or "",
            # Without the batch of 1: the table is narrow at 80 columns.
            "shape": fmt.shape(shape[1:] or shape),
            "placement": layer.placement or "?",
            "reason": layer.reason or "",
            "rule": (npu.rule if npu else None) or "",
            "tier": (npu.tier if npu else None) or "",
            "epoch": npu.epoch if npu else None,
            "bound": (npu.bound if npu else None) or "",
            "macs": layer.macs,
            "est_us": layer.est_us,
            "pct": layer.pct,
            "sqnr": el.sqnr_db if el else None,
            "rmse_scale": el.rmse_scale if el else None,
            "suspect": suspect,
            "flag": ("SUSPECT" if suspect else "") + (" SENS" if sens else ""),
            "error": err,
            "sensitivity": sens,
        })
    return rows


def _sort_key(key: str):  # noqa: ANN202
    def k(row: dict[str, Any]) -> tuple[int, Any]:
        v = row.get(key)
        if v is None or v == "":
            return (1, 0)
        return (0, v.lower() if isinstance(v, str) else v)

    return k


def select_rows(rows: list[dict[str, Any]], sort: str, desc: bool, cpu_only: bool,
                suspects_only: bool, text: str) -> list[dict[str, Any]]:
    out = [r for r in rows if (not cpu_only or r["placement"] != "NPU")
           and (not suspects_only or r["suspect"])]
    if text:
        t = text.lower()
        out = [r for r in out if t in f"{r['op']} {r.get('layer', '')} {r['name']} {r['reason']} {r['shape']}".lower()]
    present = [r for r in out if r.get(sort) not in (None, "")]
    missing = [r for r in out if r.get(sort) in (None, "")]
    present.sort(key=_sort_key(sort), reverse=desc)
    return present + missing  # rows without the value always last


def detail_text(row: dict[str, Any], rep: Report) -> str:
    from engine.inspect_model import rule_text  # noqa: PLC0415 - loads the rule table lazily

    lines = [f"#{row['index']} {row['op']}  {row['shape']}  {row.get('layer') or row['name']}"]
    if row.get("layer") and row["layer"] != row["name"]:
        lines.append(f"tensor     {row['name']}")
    where = f"{row['placement']}"
    if row["tier"]:
        where += f" ({row['tier']}{'' if row.get('epoch') is None else ', epoch ' + str(row['epoch'])})"
    lines.append(f"placement  {where}: {row['reason']}")
    rule = rule_text(row["op"], row["rule"])
    if row["reason"]:
        rule = rule.replace(row["reason"], "").strip()  # said on the line above already
    if rule:
        lines.append(f"rule       {row['rule'] or 'table'}: {rule}")
    lines.append(f"cost       {fmt.count(row['macs'])} MACs, {fmt.num(row['est_us'], 3)} µs "
                 f"({fmt.num(row['pct'], 3)} % of the time)"
                 f"{', ' + row['bound'] + '-bound' if row.get('bound') else ''}")
    err: LayerError | None = row["error"]
    if err is not None:
        el, em = err.layer or ErrorFigures(), err.model
        lines.append(f"error      layer: SQNR {fmt.num(el.sqnr_db, 3)} dB, rmse/scale "
                     f"{fmt.num(el.rmse_scale, 3)}, cos {fmt.num(el.cos, 5)}, "
                     f"max |err| {fmt.num(el.max_abs, 3)}")
        if em is not None:
            lines.append(f"           in the model: SQNR {fmt.num(em.sqnr_db, 3)} dB, "
                         f"rmse/scale {fmt.num(em.rmse_scale, 3)}, cos {fmt.num(em.cos, 5)}")
        rng = list(err.range) if err.range else None
        lines.append(f"tensor     {err.tensor or ''}  scale {fmt.num(err.scale, 4)}  "
                     f"zero point {'—' if err.zero_point is None else err.zero_point}"
                     f"{'  range ' + str(rng) if rng else ''}")
        if err.suspect:
            lines.append(f"SUSPECT    {err.why or 'rmse/scale well above the 0.289 of rounding'}")
        else:
            lines.append("quant      OK (rmse/scale near the 0.289 of pure rounding is healthy)")
    else:
        lines.append("error      not measured in this run (analysis.debug_samples = 0, or an older run)")
    sens: LayerSensitivity | None = row["sensitivity"]
    if sens is not None:
        lines.append(f"sensitivity kept in float: regains {fmt.num(sens.regained_points, 3)} "
                     f"points of {sens.metric or ''}, costs {fmt.num(sens.cost_ms, 3)} ms")
        if sens.suggestion:
            lines.append(f"advice     {sens.suggestion}")
    op = row["op"]
    for a in (rep.npu.advice if rep.npu else None) or ():
        if op in a:
            lines.append(f"advice     {a}")
    return "\n".join(lines)


def count_line(shown: list[dict[str, Any]], rows: list[dict[str, Any]], sort: str,
               hidden: list[str]) -> str:
    """The line under the table: what the rows shown hold (the same suspects the flag column
    shows), the whole run's when a filter hides some, the sort and the keys."""

    def counts(rs: list[dict[str, Any]]) -> str:
        n_sus = sum(1 for r in rs if r["suspect"])
        return (f"{sum(1 for r in rs if r['placement'] != 'NPU')} CPU, "
                f"{n_sus} SUSPECT{'' if n_sus == 1 else 's'}")

    line = f"{len(shown)}/{len(rows)} layers: {counts(shown)}"
    if len(shown) != len(rows):
        line += f" (all: {counts(rows)})"
    line += f" · by {sort}"
    if hidden:
        line += f" · {', '.join(hidden)} below"
    return line + " · keys: t time, s sort, r reverse, u CPU, x suspects, / search"


class LayersPane(Guarded, QuietFocus, Vertical):
    # The footer has room for two at 80 columns; the count line under the table names the rest.
    BINDINGS = [
        Binding("t", "sort_time", "By time", id="layers_sort_time"),
        Binding("u", "toggle('cpu')", "CPU only", id="layers_cpu"),
        Binding("s", "sort_next", "Sort", id="layers_sort", show=False),
        Binding("r", "reverse", "Reverse", id="layers_reverse", show=False),
        Binding("x", "toggle('suspect')", "Suspects", id="layers_suspects", show=False),
        Binding("slash", "search", "Search", id="layers_search", show=False),
    ]

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []
        self.report: Report | None = None
        self.sort_key = "index"
        self.desc = False
        self._shown_cells: list[dict[str, str]] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="layer-filters"):
            yield Label("Sort", classes="knob-label")
            yield Choice([(h, k) for k, h, _ in COLUMNS], value="index", allow_blank=False,
                         id="layer-sort", compact=True)
            yield Label("↑ asc", id="layer-dir")
            yield Toggle("CPU only", id="layer-cpu", compact=True)
            yield Toggle("suspects", id="layer-suspect", compact=True)
            yield Input(placeholder="/ search", id="layer-search", compact=True)
        yield DataTable(id="layer-table", cursor_type="row", zebra_stripes=True)
        yield Label("", id="layer-count")
        with VerticalScroll(id="layer-detail-box"):
            yield Static("Open a run to see its layers.", id="layer-detail", markup=False)

    def on_mount(self) -> None:
        self._columns()

    def visible(self) -> list[str]:
        """The columns the table shows at this width (all of them from NARROW on)."""
        width = self.size.width or self.app.size.width
        return [k for k, _, _ in COLUMNS if width >= NARROW or k not in NARROW_HIDDEN]

    def _columns(self) -> None:
        table = self.query_one("#layer-table", DataTable)
        want = self.visible()
        if [str(c.value) for c in table.columns] != want:
            table.clear(columns=True)
            for key in want:
                table.add_column(HEADERS[key], key=key)

    def on_resize(self) -> None:
        if [str(c.value) for c in self.query_one("#layer-table", DataTable).columns] != self.visible():
            self.refill()

    def _cells(self, r: dict[str, Any], keys: list[str]) -> list[str]:
        cells = {
            "index": str(r["index"]), "op": r["op"], "shape": r["shape"],
            "placement": r["placement"], "macs": fmt.count(r["macs"], 3),
            "est_us": fmt.fixed(r["est_us"], 1), "pct": fmt.fixed(r["pct"], 1),
            "sqnr": fmt.fixed(r["sqnr"], 1), "rmse_scale": fmt.fixed(r["rmse_scale"], 2),
            "flag": r["flag"].strip() or "—", "reason": "",
        }
        # The reason gets the columns the others leave (the table's scrollbar takes one).
        used = sum(max(len(HEADERS[k]), max((len(c[k]) for c in self._shown_cells), default=0)) + 2
                   for k in keys if k != "reason")
        room = max((self.size.width or self.app.size.width) - used - 3, 12)
        cells["reason"] = short_reason(r["reason"], r["op"], room)
        return [cells[k] for k in keys]

    def show(self, rep: Report) -> None:
        self.report = rep
        self.rows = layer_rows(rep)
        self.refill()

    def refill(self, keep_cursor: bool = True) -> None:
        """Rebuild the table; a filter keeps the selected layer, a new sort starts at the top."""
        table = self.query_one("#layer-table", DataTable)
        keep = None
        if keep_cursor and self.shown and 0 <= table.cursor_row < len(self.shown):
            keep = self.shown[table.cursor_row]["index"]
        self.shown = select_rows(
            self.rows, self.sort_key, self.desc,
            self.query_one("#layer-cpu", Checkbox).value,
            self.query_one("#layer-suspect", Checkbox).value,
            self.query_one("#layer-search", Input).value.strip(),
        )
        self._columns()  # a report can arrive before on_mount
        table.clear()
        keys = [str(c.value) for c in table.columns]
        self._shown_cells = [{k: v for k, v in zip(
            ("index", "op", "shape", "placement", "macs", "est_us", "pct", "sqnr", "rmse_scale",
             "flag"),
            (str(r["index"]), r["op"], r["shape"], r["placement"], fmt.count(r["macs"], 3),
             fmt.fixed(r["est_us"], 1), fmt.fixed(r["pct"], 1), fmt.fixed(r["sqnr"], 1),
             fmt.fixed(r["rmse_scale"], 2), r["flag"].strip() or "—"), strict=True)}
            for r in self.shown]
        for r in self.shown:
            table.add_row(*self._cells(r, keys), key=str(r["index"]))
        arrow = "↓ desc" if self.desc else "↑ asc"
        self.query_one("#layer-dir", Label).update(arrow)
        self.query_one("#layer-count", Label).update(count_line(
            self.shown, self.rows, f"{HEADERS[self.sort_key]} {arrow[0]}",
            [HEADERS[k] for k in NARROW_HIDDEN if k not in keys]))
        n_cpu = sum(1 for r in self.rows if r["placement"] != "NPU")
        if not self.rows:
            self.query_one("#layer-detail", Static).update(
                "This run has no per-layer data (the NPU analysis did not run)."
                if self.report is not None
                else "Open a run to see its layers.")
            return
        row = 0
        if keep is not None:
            row = next((i for i, r in enumerate(self.shown) if r["index"] == keep), 0)
        if self.shown:
            table.move_cursor(row=row)
            self._detail(row)
        elif self.query_one("#layer-cpu", Toggle).value and n_cpu == 0:
            self.query_one("#layer-detail", Static).update(
                f"Every layer runs on the NPU: none of the {len(self.rows)} is on the CPU (u shows all).")
        else:
            self.query_one("#layer-detail", Static).update("No layer matches the filters.")

    def _detail(self, row: int) -> None:
        if 0 <= row < len(self.shown) and self.report is not None:
            self.query_one("#layer-detail", Static).update(
                detail_text(self.shown[row], self.report))

    @on(DataTable.RowHighlighted, "#layer-table")
    def _highlight(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    @on(DataTable.HeaderSelected, "#layer-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        self.set_sort(str(event.column_key.value))

    @on(Select.Changed, "#layer-sort")
    def _sort_changed(self, event: Select.Changed) -> None:
        if event.value != self.sort_key and isinstance(event.value, str):
            self.set_sort(event.value)

    @on(Checkbox.Changed)
    def _filters(self) -> None:
        self.refill()

    @on(Input.Changed, "#layer-search")
    def _search_changed(self) -> None:
        self.refill()

    @on(Input.Submitted, "#layer-search")
    def _search_done(self) -> None:
        self.query_one("#layer-table", DataTable).focus()

    def set_sort(self, key: str, desc: bool | None = None) -> None:
        """Sort by ``key``; choosing the current column again flips the direction."""
        if desc is None:
            desc = (not self.desc) if key == self.sort_key else next(d for k, _, d in COLUMNS if k == key)
        self.sort_key, self.desc = key, desc
        sel = self.query_one("#layer-sort", Select)
        if sel.value != key:
            with sel.prevent(Select.Changed):
                sel.value = key
        self.refill(keep_cursor=False)

    def action_sort_next(self) -> None:
        keys = [k for k, _, _ in COLUMNS]
        nxt = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.set_sort(nxt, next(d for k, _, d in COLUMNS if k == nxt))

    def action_sort_time(self) -> None:
        self.set_sort("est_us", True)

    def action_reverse(self) -> None:
        self.set_sort(self.sort_key, not self.desc)

    def action_toggle(self, which: str) -> None:
        box = self.query_one("#layer-cpu" if which == "cpu" else "#layer-suspect", Checkbox)
        box.value = not box.value

    def action_search(self) -> None:
        self.query_one("#layer-search", Input).focus()

    def palette(self, what: str) -> None:
        """A palette entry: ``sort:KEY``, ``reverse``, ``cpu``, ``suspect`` or ``search``."""
        verb, _, arg = what.partition(":")
        if verb == "sort":
            self.set_sort(arg, next(d for k, _, d in COLUMNS if k == arg))
        elif verb == "reverse":
            self.action_reverse()
        elif verb in ("cpu", "suspect"):
            self.action_toggle(verb)
        elif verb == "search":
            self.call_after_refresh(self.action_search)
