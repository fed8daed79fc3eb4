"""Knob widgets: one compact Input, Select or Checkbox per config key, read back generically.

A pane may be built the first time its tab is shown, so a knob may have no widget yet. The
app keeps each knob's value as its widget would hold it (``shown``: the text of an Input,
the choice of a Select, a Checkbox's bool); a pane built later shows it, and a knob with no
widget is read from it. A widget, once there, is what counts: it holds the edits.
"""

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
    """The widget of ``key``; it takes its value from the app (:func:`show_all`)."""
    k = KNOB[key]
    if k.kind == "choice":
        return Choice([(c.replace("_", "-"), c) for c in k.choices], allow_blank=False,
                      value=k.choices[0], id=k.wid, compact=True, classes="knob")
    if k.kind in ("bool", "stage"):
        return Toggle(k.label, id=k.wid, compact=True, classes="knob")
    typ = "integer" if k.kind == "int" else ("number" if k.kind == "float" else "text")
    return Input(id=k.wid, type=typ, compact=True, classes="knob", tooltip=k.help or None)


def initial(k: Knob) -> Any:
    """What a knob's widget holds before any config is loaded."""
    if k.kind == "choice":
        return k.choices[0]
    return False if k.kind in ("bool", "stage") else ""


def as_shown(k: Knob, value: Any, before: Any) -> Any:
    """A config value as the knob's widget holds it; a choice it does not offer leaves the
    knob as it was (``before``), as writing it to the Select would."""
    if k.kind == "choice":
        return value if value in k.choices else before
    if k.kind in ("bool", "stage"):
        return bool(value)
    return show(k, value)


def from_shown(k: Knob, shown: Any) -> Any:
    """What a knob holding ``shown`` means: the config value (SettingError if it does not
    parse), None for an empty field."""
    if k.kind in ("choice", "bool", "stage"):
        return shown
    return parse(k, shown) if str(shown).strip() else None


def read(widget: Widget, k: Knob) -> Any:
    if isinstance(widget, Select | Checkbox):
        return widget.value
    assert isinstance(widget, Input)
    return from_shown(k, widget.value)


def read_one(root: Widget, shown: dict[str, Any], key: str) -> Any:
    """One knob's config value: its widget's under ``root``, else the value it was given."""
    k = KNOB[key]
    widget = root.query_one_optional(f"#{k.wid}")  # by id: cached, not a CSS match per widget
    return read(widget, k) if widget is not None else from_shown(k, shown.get(key, initial(k)))


def read_all(root: Widget, shown: dict[str, Any]) -> dict[str, Any]:
    """Every knob by config key; raises SettingError naming one that does not parse."""
    return {k.key: read_one(root, shown, k.key) for k in KNOBS}


def show_all(root: Widget, shown: dict[str, Any]) -> None:
    """Show the values in ``shown`` in the knob widgets under ``root``, without a Changed
    message (each would re-check the data)."""
    for k in KNOBS:
        widget = root.query_one_optional(f"#{k.wid}")  # by id: cached, not a CSS match each
        if widget is not None and k.key in shown:
            with widget.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
                widget.value = shown[k.key]  # type: ignore[attr-defined]


def write_all(root: Widget, shown: dict[str, Any], values: dict[str, Any]) -> None:
    """Give every knob its value in ``values``: kept in ``shown``, and shown in the knob's
    widget under ``root`` if it has one."""
    for k in KNOBS:
        shown[k.key] = as_shown(k, values.get(k.key), shown.get(k.key, initial(k)))
    show_all(root, shown)
