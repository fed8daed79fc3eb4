"""``stages.int8.draws`` of report.json: INT8 converted from several calibration draws, each
draw's figures, their spread, and the draw kept (``calibration.draws`` > 1)."""

from __future__ import annotations

from dataclasses import dataclass

from .record import Record, item

_frozen = dataclass(frozen=True, kw_only=True)


@_frozen
class DrawFigures(Record):
    """The judged figure over the draws on one split: what it is (``metric`` of ``output``,
    in ``unit`` "fraction" or "dB", higher is better), on how many ``items``, and its
    ``mean``, ``min``, ``max`` and ``std`` (sample standard deviation) over the draws."""

    metric: str = item("", always=True)
    output: str = item("", always=True)
    unit: str = item("fraction", always=True)
    items: int = item(0, always=True)
    mean: float | None = item(always=True)
    min: float | None = item(always=True)
    max: float | None = item(always=True)
    std: float | None = item(always=True)


@_frozen
class CalibrationDraw(Record):
    """One draw: its number (0: the config's seed), ``seed``, calibration ``items``, the
    INT8 model's ``sha256`` and ``size_bytes``, and its figure on the held-out calibration
    slice (``heldout``, which chose) and on the test set (``test``, for information)."""

    index: int = item(0, always=True)
    seed: int = item(0, always=True)
    items: int = item(0, always=True)
    sha256: str = item("", always=True)
    size_bytes: int = item(0, always=True)
    heldout: float | None = item(always=True)
    test: float | None = item(always=True)


@_frozen
class CalibrationDraws(Record):
    """``count`` draws; ``keep`` the rule ("median" or "best", on the held-out slice) and
    ``kept`` the draw number whose model the stage's file is."""

    count: int = item(0, always=True)
    keep: str = item("median", always=True)
    kept: int = item(0, always=True)
    heldout: DrawFigures | None = item(of=DrawFigures, always=True)
    test: DrawFigures | None = item(of=DrawFigures, always=True)
    per_draw: tuple[CalibrationDraw, ...] = item((), of=CalibrationDraw, seq=True, always=True)

    @property
    def kept_draw(self) -> CalibrationDraw | None:
        return next((d for d in self.per_draw if d.index == self.kept), None)
