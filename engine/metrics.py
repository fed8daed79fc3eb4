"""Agreement between a stage's outputs and FP32's: ST's `validate` metrics, plus SQNR.

acc = argmax agreement (class outputs only); e = pred − ref; rmse = √mean(e²); mae =
mean|e|; l2r = ‖e‖₂ / ‖ref‖₂; mean, std of e; nse = 1 − Σe² / Σ(ref − mean(ref))²;
cos = ⟨pred, ref⟩ / (‖pred‖ ‖ref‖). These reproduce the values ST's tool prints.

sqnr_db = 10·log10(Σ(ref − mean_c(ref))² / Σe²): the output's own variation over the noise
quantization added, each channel (last axis) centred on its own mean. A grid that packs
box coordinates beside objectness logits of −50 would otherwise count the gap between
their levels as signal and flatter the output by ~9 dB (measured on ST's YOLO-LC); for a
one-channel output it is the global mean, and nse = 1 − 10^(−sqnr_db/10) exactly. A
reference without variation (a constant output) has its power Σref² stand in. JSON has no
infinity: an exact match (Σe² = 0)
is stored as ``sqnr_db: null`` with ``exact: true``; ``sqnr_db: null`` with ``exact:
false`` means the reference is all zeros and the stage is not (no signal to compare: as
bad as it gets). l2r and nse are null where their denominator is 0 and the stage differs.
"""

from __future__ import annotations

import math

import numpy as np

AGREEMENT_KEYS = ("acc", "rmse", "mae", "l2r", "mean", "std", "nse", "cos", "sqnr_db", "exact")


def sqnr_db(sse: float, sst: float, power: float) -> float | None:
    """SQNR in dB from the error's Σe², the reference's variation Σ(ref − mean)² and its
    power Σref²; +inf for an exact match, None when there is no signal to compare with
    (all-zero reference)."""
    if sse == 0:
        return math.inf
    signal = sst if sst > 0 else power
    return 10.0 * math.log10(signal / sse) if signal > 0 else None


def agreement(pred: np.ndarray, ref: np.ndarray, *, classes: bool = True) -> dict[str, float | None]:
    """Validate metrics of ``pred`` against ``ref`` (both (N, ...) float).

    ``acc`` compares the argmax over the last axis per position: only for ``classes``
    outputs (class scores) with more than one value on that axis; else ``None``.
    """
    pred = np.asarray(pred, np.float64)
    ref = np.asarray(ref, np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {ref.shape}")
    e = pred - ref
    power = float(np.sum(ref * ref))
    ref_norm = power**0.5
    pred_norm = float(np.sqrt(np.sum(pred * pred)))
    sse = float(np.sum(e * e))
    sst = float(np.sum((ref - ref.mean()) ** 2)) if ref.size else 0.0
    # Per channel (last axis) for SQNR: the levels channels sit at are not signal.
    per_channel = ref.mean(axis=tuple(range(ref.ndim - 1)), keepdims=True) if ref.ndim > 1 else ref.mean()
    sst_c = float(np.sum((ref - per_channel) ** 2)) if ref.size else 0.0
    acc: float | None = None
    if classes and pred.ndim >= 2 and pred.shape[-1] > 1:
        acc = float(np.mean(np.argmax(pred, axis=-1) == np.argmax(ref, axis=-1)))
    db = sqnr_db(sse, sst_c, power)
    return {
        "acc": acc,
        "rmse": float(np.sqrt(np.mean(e * e))),
        "mae": float(np.mean(np.abs(e))),
        "l2r": sse**0.5 / ref_norm if ref_norm > 0 else (0.0 if sse == 0 else None),
        "mean": float(np.mean(e)),
        "std": float(np.std(e)),
        "nse": 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else None),
        "cos": float(np.sum(pred * ref) / (pred_norm * ref_norm))
        if pred_norm > 0 and ref_norm > 0
        else (1.0 if pred_norm == ref_norm else 0.0),
        "sqnr_db": db if db is not None and math.isfinite(db) else None,
        "exact": sse == 0,
    }
