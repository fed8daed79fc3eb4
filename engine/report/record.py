"""The one rule by which every part of the typed report reads and writes its JSON.

A field is read from its key when the key is there and written back when it holds a value.
Keys the engine always writes, even as ``null``, are marked ``always``. A key present as
``null`` that is usually left out, and any key this version does not know, go to ``extra``
and are written back as they were: ``from_dict(d).to_dict() == d`` for every report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self


def item(default: Any = None, *, key: str | None = None, of: Any = None, seq: bool = False,
         mapping: bool = False, always: bool = False) -> Any:
    """A report field. ``of``: a :class:`Record` type for a nested object (a list of them
    with ``seq``, a name → object dict with ``mapping``); without it the JSON value is kept
    as read (lists as tuples with ``seq``)."""
    meta = {"key": key, "of": of, "seq": seq, "mapping": mapping, "always": always}
    return field(default=default, metadata=meta)


def _load(value: Any, meta: Mapping[str, Any]) -> Any:
    of = meta["of"]
    one = of.from_dict if of is not None else (lambda v: v)
    if meta["seq"]:
        return tuple(one(v) for v in value)
    if meta["mapping"]:
        return {k: one(v) for k, v in value.items()}
    return one(value)


def plain(value: Any) -> Any:
    """JSON-ready: records to dicts, tuples to lists, all the way down."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of every part of the report: generic ``from_dict``/``to_dict`` over its fields."""

    #: Keys this version does not model, or present as null where usually absent.
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Self:
        rest = dict(d or {})
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            key = f.metadata.get("key") or f.name
            if key not in rest:
                continue
            value = rest[key]
            if value is None and not f.metadata.get("always"):
                continue  # stays in rest: written back as null
            del rest[key]
            kw[f.name] = None if value is None else _load(value, f.metadata)
        return cls(**kw, extra=rest)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and not f.metadata.get("always"):
                continue
            out[f.metadata.get("key") or f.name] = plain(value)
        out.update(plain(dict(self.extra)))
        return out
