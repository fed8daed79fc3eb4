"""Knob widgets: one compact Input, Select or Checkbox per config key, read back generically."""

from __future__ import annotations

from typing import Any

from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select

from ..choice import Choice
from ..settings import KNOB, KNOBS, Knob, parse, show
from ..widgets import Toggle


def knob_label(key: str) -> Label:
    return Label(KNOB[key].label, classes="knob-label")


def knob_widget(key: str) -> Widget:
    k = KNOB[key]
    if k.kind == "choice":
        return Choice([(c.replace("_", "-"), c) for c in k.choices], allow_blank=False,
                      value=k.choices[0], id=k.wid, compact=True, classes="knob")
    if k.kind in ("bool", "stage"):
        return Toggle(k.label, id=k.wid, compact=True, classes="knob")
    typ = "integer" if k.kind == "int" else ("number" if k.kind == "float" else "text")
    return Input(id=k.wid, type=typ, compact=True, classes="knob", tooltip=k.help or None)


def read(widget: Widget, k: Knob) -> Any:
    if isinstance(widget, Select):
        return widget.value
    if isinstance(widget, Checkbox):
        return widget.value
    assert isinstance(widget, Input)
    return parse(k, widget.value) if widget.value.strip() else None


def write(widget: Widget, k: Knob, value: Any) -> None:
    if isinstance(widget, Select):
        if value in k.choices:
            widget.value = value
    elif isinstance(widget, Checkbox):
        widget.value = bool(value)
    elif isinstance(widget, Input):
        widget.value = show(k, value)


def read_all(root: Widget) -> dict[str, Any]:
    """Every knob under ``root`` by config key; raises SettingError naming one that does
    not parse."""
    return {k.key: read(root.query_one(f"#{k.wid}"), k) for k in KNOBS}


def write_all(root: Widget, values: dict[str, Any]) -> None:
    """Show ``values`` in every knob under ``root``, without a Changed message for each."""
    for k in KNOBS:
        widget = root.query_one(f"#{k.wid}")
        with widget.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
            write(widget, k, values.get(k.key))
