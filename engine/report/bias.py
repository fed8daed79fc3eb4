"""``bias_correction`` of report.json: what the sequential bias correction did and which
model the run kept."""

from __future__ import annotations

from dataclasses import dataclass

from .record import Record, item

_frozen = dataclass(frozen=True, kw_only=True)


@_frozen
class SqnrChange(Record):
    """SQNR in dB against FP32 of the uncorrected (``before_db``) and corrected
    (``after_db``) model; null for an exact match."""

    before_db: float | None = item(always=True)
    after_db: float | None = item(always=True)

    @property
    def gain_db(self) -> float | None:
        if self.before_db is None or self.after_db is None:
            return None
        return self.after_db - self.before_db


@_frozen
class BiasOutput(Record):
    """One model output (by signature name) on the held-out calibration slice (which
    decided) and on the test set (measured after the choice)."""

    name: str = item("", always=True)
    calibration: SqnrChange | None = item(of=SqnrChange, always=True)
    test: SqnrChange | None = item(of=SqnrChange, always=True)


@_frozen
class BiasLayer(Record):
    """One corrected layer: its output tensor (``name``; an ONNX model's float tensor),
    short ``layer`` name, op (an ONNX model's node type), how many
    of its ``channels`` changed, hit the int32 limits or were ``left`` (zero scale, nothing
    unclamped to measure), the mean error removed in output LSB, and its output's SQNR."""

    name: str = item("", always=True)
    layer: str = item("", always=True)
    op: str = item("", always=True)
    channels: int = item(0, always=True)
    changed: int = item(0, always=True)
    saturated: int = item(0, always=True)
    left: int = item(0, always=True)
    shift_lsb: float = item(0.0, always=True)
    calibration: SqnrChange | None = item(of=SqnrChange, always=True)
    test: SqnrChange | None = item(of=SqnrChange, always=True)


@_frozen
class SkippedLayer(Record):
    name: str = item("", always=True)
    why: str = item("", always=True)


@_frozen
class BiasCorrection(Record):
    """``kept``: "corrected" or "uncorrected" — the model int8.tflite (or int8.onnx) is;
    ``other_path`` the file of the other. ``heldout_items`` 0: too few calibration items to hold some out, so
    the choice was made on the items fitted on."""

    method: str = item("sequential", always=True)
    kept: str = item("uncorrected", always=True)
    other_path: str = item("", always=True)
    fit_items: int = item(0, always=True)
    heldout_items: int = item(0, always=True)
    test_items: int = item(0, always=True)
    #: Per-layer figures use at most this many items of each split (the first ones).
    layer_items: int | None = item()
    outputs: tuple[BiasOutput, ...] = item((), of=BiasOutput, seq=True, always=True)
    layers: tuple[BiasLayer, ...] = item((), of=BiasLayer, seq=True, always=True)
    skipped: tuple[SkippedLayer, ...] = item((), of=SkippedLayer, seq=True, always=True)
    #: Why the correction failed (the converter's model then stands).
    error: str | None = item()

    @property
    def corrected(self) -> bool:
        return self.kept == "corrected"
