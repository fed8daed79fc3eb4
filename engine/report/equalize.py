"""``equalization`` of report.json: what cross-layer equalization did and which INT8 model
the run kept (``quantization.equalize``)."""

from __future__ import annotations

from dataclasses import dataclass

from .bias import BiasOutput, SkippedLayer
from .record import Record, item

_frozen = dataclass(frozen=True, kw_only=True)


@_frozen
class EqualizedPair(Record):
    """Two layers whose channels were balanced, and the BatchNorm between (or "")."""

    first: str = item("", always=True)
    batch_norm: str = item("", always=True)
    second: str = item("", always=True)


@_frozen
class Equalization(Record):
    """``kept``: "equalized" or "plain" — the model int8.tflite is; ``other_path`` the file
    of the other. ``outputs``: SQNR against FP32 of the plain (``before_db``) and
    equalized (``after_db``) INT8 model on the held-out calibration slice (which decided)
    and the test set (measured after the choice). ``float_diff``: per output, how far the
    equalized float model moved on the calibration items (max |Δ| / max |output|); it must
    stay under ``float_tolerance`` or the equalized model is not used."""

    kept: str = item("plain", always=True)
    other_path: str = item("", always=True)
    heldout_items: int = item(0, always=True)
    test_items: int = item(0, always=True)
    sweeps: int = item(0, always=True)
    float_diff: tuple[float, ...] = item((), seq=True, always=True)
    float_tolerance: float = item(1e-4, always=True)
    pairs: tuple[EqualizedPair, ...] = item((), of=EqualizedPair, seq=True, always=True)
    skipped: tuple[SkippedLayer, ...] = item((), of=SkippedLayer, seq=True, always=True)
    outputs: tuple[BiasOutput, ...] = item((), of=BiasOutput, seq=True, always=True)
    #: Why equalization failed or was not used (the plain model then stands).
    error: str | None = item()
