"""Agreement between a stage's outputs and FP32's: ST's `validate` metrics.

acc = argmax agreement; e = pred − ref; rmse = √mean(e²); mae = mean|e|;
l2r = ‖e‖₂ / ‖ref‖₂; mean, std of e; nse = 1 − Σe² / Σ(ref − mean(ref))²;
cos = ⟨pred, ref⟩ / (‖pred‖ ‖ref‖). These reproduce the values ST's tool prints.
"""

from __future__ import annotations

import numpy as np

AGREEMENT_KEYS = ("acc", "rmse", "mae", "l2r", "mean", "std", "nse", "cos")


def agreement(pred: np.ndarray, ref: np.ndarray) -> dict[str, float | None]:
    """Validate metrics of ``pred`` against ``ref`` (both (N, ...) float).

    ``acc`` compares the argmax over the last axis per position; it is ``None`` when the
    last axis has a single value (a score map, a regression) where argmax means nothing.
    """
    pred = np.asarray(pred, np.float64)
    ref = np.asarray(ref, np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {ref.shape}")
    e = pred - ref
    ref_norm = float(np.sqrt(np.sum(ref * ref)))
    pred_norm = float(np.sqrt(np.sum(pred * pred)))
    sse = float(np.sum(e * e))
    sst = float(np.sum((ref - ref.mean()) ** 2))
    acc: float | None = None
    if pred.ndim >= 2 and pred.shape[-1] > 1:
        acc = float(np.mean(np.argmax(pred, axis=-1) == np.argmax(ref, axis=-1)))
    return {
        "acc": acc,
        "rmse": float(np.sqrt(np.mean(e * e))),
        "mae": float(np.mean(np.abs(e))),
        "l2r": sse**0.5 / ref_norm if ref_norm > 0 else (0.0 if sse == 0 else float("inf")),
        "mean": float(np.mean(e)),
        "std": float(np.std(e)),
        "nse": 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else float("-inf")),
        "cos": float(np.sum(pred * ref) / (pred_norm * ref_norm))
        if pred_norm > 0 and ref_norm > 0
        else (1.0 if pred_norm == ref_norm else 0.0),
    }
