"""Per-layer quantization error: the statistics, the diagnosis and the per-layer table.

No TensorFlow here: the TF child (:mod:`engine.backends.tf.layer_error`) feeds tensors into the
accumulators below, and the orchestrator merges the results with the NPU placement into
``report.json["layers"]`` and ``layers.csv``.

Two modes, as TFLite's QuantizationDebugger has them:

- *layer*: every quantized op is fed the same quantized input as a float copy of itself, so
  the difference is the error that op adds (its weights, arithmetic and output rounding).
- *model*: the whole INT8 model runs end to end against the float model, so the difference
  at a tensor is all the error accumulated up to it.

Figures per tensor and mode: SQNR (10·log10 Σf² / Σe²), rmse/scale (the rms error in
quantization steps; uniform rounding alone gives 1/√12 ≈ 0.289), cosine similarity and the
largest absolute error, where f is the float reference and e = dequantized INT8 − f.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .layer_names import model_layer_names, short_name

#: rms error of uniform rounding, in quantization steps: 1/√12.
HEALTHY_RMSE_SCALE = 1.0 / math.sqrt(12.0)
#: TFLite's debugger guide: rmse/scale well above 0.289 means more than rounding is lost.
SUSPECT_RMSE_SCALE = 0.7
#: Below this SQNR the error is over a tenth of the signal's amplitude. 8-bit rounding of a
#: well-used range gives 40–48 dB; healthy conv layers measure 30–45 dB.
SUSPECT_SQNR_DB = 20.0
#: 99.8 % of a tensor's non-zero values within fewer levels than this: the range is wasted.
FEW_LEVELS = 16
#: SQNR reported when the error is exactly zero (pass-through ops such as MAX_POOL_2D):
#: JSON has no infinity.
SQNR_CAP_DB = 100.0

#: Ops whose INT8 output shares its input's scale: an outlier range passes through them to
#: the next op, so keeping a tensor in float means keeping these consumers in float too.
SAME_SCALE_OPS = frozenset({
    "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE",
    "STRIDED_SLICE", "SLICE", "GATHER", "PAD", "PADV2", "SPLIT", "SPLIT_V", "PACK", "UNPACK",
    "CONCATENATION", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "REDUCE_MAX", "REDUCE_MIN",
    "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "TILE", "BROADCAST_TO", "MAXIMUM", "MINIMUM"})


@dataclass(frozen=True)
class ErrorStats:
    """One tensor's error in one mode, over all debug samples."""

    sqnr_db: float
    rmse_scale: float
    cos: float
    max_abs: float
    #: mean of e² (what QuantizationDebugger calls mean_squared_error).
    mse: float
    #: mean of e (the debugger's mean_error): a bias, not noise.
    mean_error: float
    #: median over channels (last axis) of each channel's own SQNR: an outlier channel
    #: that dominates Σf² cannot hide the other channels' loss here.
    channel_sqnr_db: float
    elements: int
    #: float-reference values that were inf or NaN (left out of every figure above).
    nonfinite: int = 0

    @property
    def effective_sqnr_db(self) -> float:
        return min(self.sqnr_db, self.channel_sqnr_db)

    def to_dict(self) -> dict[str, float]:
        """The report's four figures."""
        return {
            "sqnr_db": round(self.sqnr_db, 2),
            "rmse_scale": round(self.rmse_scale, 4),
            "cos": round(self.cos, 6),
            "max_abs": float(f"{self.max_abs:.6g}"),
        }


def _sqnr(signal: float, noise: float) -> float:
    if noise <= 0.0:
        return SQNR_CAP_DB
    if signal <= 0.0:
        return -SQNR_CAP_DB
    return float(min(SQNR_CAP_DB, max(-SQNR_CAP_DB, 10.0 * math.log10(signal / noise))))


def _sums(fc: np.ndarray, qc: np.ndarray) -> tuple[Any, ...]:
    """Σf², Σq², Σq·f, Σe², Σe, max |e| and per channel Σf², Σe² (e = q − f) of (items ×
    channels) arrays. Sums of products without a temporary array each: this runs for every
    tensor of every debug item (MobileNet v2: ~1.6 s of a 2.9 s analysis, halved)."""
    e = qc - fc
    ff_c, ee_c = np.einsum("ij,ij->j", fc, fc), np.einsum("ij,ij->j", e, e)
    max_abs = max(float(e.max()), -float(e.min())) if e.size else 0.0
    return (float(ff_c.sum()), float(np.einsum("ij,ij->", qc, qc)),
            float(np.einsum("ij,ij->", qc, fc)), float(ee_c.sum()), float(e.sum()), max_abs,
            ff_c, ee_c)


class ErrorAccumulator:
    """Running sums of f (float reference) against q (dequantized INT8) for one tensor."""

    def __init__(self, scale: float) -> None:
        self.scale = float(scale)
        self.n = 0
        self.ff = 0.0
        self.qq = 0.0
        self.qf = 0.0
        self.ee = 0.0
        self.e = 0.0
        self.max_abs = 0.0
        self.ch_ff: np.ndarray | None = None
        self.ch_ee: np.ndarray | None = None
        self.nonfinite = 0

    def add(self, f: np.ndarray, q: np.ndarray) -> None:
        f64 = np.asarray(f, np.float64)
        q64 = np.asarray(q, np.float64)
        c = f64.shape[-1] if f64.ndim else 1
        fc, qc = f64.reshape(-1, c), q64.reshape(-1, c)
        sums = _sums(fc, qc)
        if not math.isfinite(sum(sums[:5])):
            # rsqrt(0), x/0 in the float copy: count them, keep them out of the sums.
            bad = ~(np.isfinite(fc) & np.isfinite(qc))
            self.nonfinite += int(bad.sum())
            sums = _sums(np.where(bad, 0.0, fc), np.where(bad, 0.0, qc))
        ff, qq, qf, ee, total, max_abs, ff_c, ee_c = sums
        self.n += fc.size
        self.ff += ff
        self.qq += qq
        self.qf += qf
        self.ee += ee
        self.e += total
        self.max_abs = max(self.max_abs, max_abs)
        if self.ch_ff is None or self.ch_ee is None:
            self.ch_ff, self.ch_ee = ff_c, ee_c
        else:
            self.ch_ff, self.ch_ee = self.ch_ff + ff_c, self.ch_ee + ee_c

    def result(self) -> ErrorStats:
        n = max(self.n, 1)
        mse = self.ee / n
        norm = math.sqrt(self.ff * self.qq)
        cos = self.qf / norm if norm > 0 else (1.0 if self.ff == self.qq else 0.0)
        ch = SQNR_CAP_DB
        if self.ch_ff is not None and self.ch_ee is not None:
            # Channels that are zero in float carry no signal to lose; leave them out.
            live = self.ch_ff > 0
            if np.any(live):
                vals = [_sqnr(float(s), float(e)) for s, e in
                        zip(self.ch_ff[live], self.ch_ee[live], strict=True)]
                ch = float(np.median(vals))
        return ErrorStats(
            sqnr_db=_sqnr(self.ff, self.ee),
            rmse_scale=math.sqrt(mse) / self.scale if self.scale > 0 else float("nan"),
            cos=float(cos),
            max_abs=self.max_abs,
            mse=mse,
            mean_error=self.e / n,
            channel_sqnr_db=ch,
            elements=self.n,
            nonfinite=self.nonfinite,
        )


@dataclass(frozen=True)
class RangeStats:
    """How a tensor's float values use its INT8 grid (from the FP32 model's values)."""

    #: the representable range, scale × (qmin − zp) … scale × (qmax − zp).
    lo: float
    hi: float
    observed_min: float
    observed_max: float
    #: levels spanned by 99.8 % of the values off the zero point (0.1 %–99.9 % quantiles).
    levels: int
    #: median and largest per-channel span, in levels; which channel is the largest.
    channel_levels_median: float
    channel_levels_max: float
    widest_channel: int
    channels: int


class RangeAccumulator:
    """A 256-bin histogram on the tensor's own INT8 grid, plus per-channel min and max.

    The grid histogram is O(n) per sample, so it stays cheap on big feature maps where a
    percentile (a sort) would not.
    """

    def __init__(self, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> None:
        self.scale, self.zp, self.qmin, self.qmax = float(scale), int(zero_point), qmin, qmax
        self.hist = np.zeros(qmax - qmin + 1, np.int64)
        self.ch_min: np.ndarray | None = None
        self.ch_max: np.ndarray | None = None

    def add(self, f: np.ndarray) -> None:
        f32 = np.asarray(f, np.float32)
        if self.scale > 0:
            # The grid index rint(f / scale) + zp − qmin, clipped, in one array, in place.
            idx = f32 / self.scale
            np.rint(idx, out=idx)
            idx += self.zp - self.qmin
            np.clip(idx, 0, self.qmax - self.qmin, out=idx)
            self.hist += np.bincount(idx.astype(np.intp).ravel(), minlength=self.hist.size)
        c = f32.shape[-1] if f32.ndim else 1
        fc = f32.reshape(-1, c)
        mn, mx = fc.min(axis=0), fc.max(axis=0)
        if self.ch_min is None or self.ch_max is None:
            self.ch_min, self.ch_max = mn, mx
        else:
            self.ch_min, self.ch_max = np.minimum(self.ch_min, mn), np.maximum(self.ch_max, mx)

    def result(self) -> RangeStats:
        lo = self.scale * (self.qmin - self.zp)
        hi = self.scale * (self.qmax - self.zp)
        h = self.hist.copy()
        # Exact zeros (ReLU's dead half) lose nothing to rounding; count the spread of the rest.
        h[self.zp - self.qmin] = 0
        levels = 0
        if h.sum() > 0:
            cum = np.cumsum(h) / h.sum()
            a = int(np.searchsorted(cum, 0.001))
            b = int(np.searchsorted(cum, 0.999))
            levels = b - a + 1
        if self.ch_min is None or self.ch_max is None or self.scale <= 0:
            return RangeStats(lo, hi, 0.0, 0.0, levels, 0.0, 0.0, 0, 0)
        span = (self.ch_max - self.ch_min) / self.scale
        return RangeStats(
            lo, hi, float(self.ch_min.min()), float(self.ch_max.max()), levels,
            float(np.median(span)), float(span.max()), int(np.argmax(span)), int(span.size),
        )


@dataclass(frozen=True)
class Diagnosis:
    suspect: bool
    #: "range" (the tensor's range is wasted: keep the tensor in float), "op" (the op
    #: itself loses precision: keep the op in float), or "" (healthy).
    kind: str
    why: str
    #: ranking key, lower is worse: the layer-mode effective SQNR.
    score: float


def diagnose(layer: ErrorStats | None, rng: RangeStats | None) -> Diagnosis:
    """Suspect or not, and why, in one line a person can act on."""
    if layer is None:
        return Diagnosis(False, "", "", SQNR_CAP_DB)
    if layer.nonfinite:
        return Diagnosis(
            True, "op",
            f"the float copy gives inf/NaN for {layer.nonfinite} of {layer.elements} values "
            "fed the quantized input (a division or rsqrt of a value that rounds to 0): "
            "the op cannot work on this INT8 input",
            -SQNR_CAP_DB,
        )
    score = layer.effective_sqnr_db
    reasons: list[str] = []
    kind = ""
    range_wasted = False
    if rng is not None and rng.channels:
        one_channel = (rng.channels > 1 and rng.channel_levels_median < FEW_LEVELS / 2
                       and rng.channel_levels_max > 8 * max(rng.channel_levels_median, 1.0))
        if one_channel:
            range_wasted = True
            reasons.append(
                f"channel {rng.widest_channel} alone spans the range [{rng.lo:.4g}, {rng.hi:.4g}]; "
                f"the median channel gets {rng.channel_levels_median:.1f} of 256 levels "
                f"(median channel SQNR {layer.channel_sqnr_db:.1f} dB)"
            )
        elif 0 < rng.levels < FEW_LEVELS:
            range_wasted = True
            reasons.append(
                f"the range [{rng.lo:.4g}, {rng.hi:.4g}] is set by rare outliers: 99.8 % of "
                f"values fall within {rng.levels} of 256 levels"
            )
    if layer.rmse_scale > SUSPECT_RMSE_SCALE:
        reasons.insert(0, f"rmse/scale {layer.rmse_scale:.2f} (healthy ≈ 0.29)")
        if not range_wasted:
            reasons.append("the op adds error beyond rounding its output: its 8-bit weights "
                           "or arithmetic lose precision")
    low_sqnr = score < SUSPECT_SQNR_DB
    if low_sqnr and not reasons:
        reasons.append(f"SQNR {score:.1f} dB (healthy > 30 dB)")
    suspect = low_sqnr or layer.rmse_scale > SUSPECT_RMSE_SCALE or (
        range_wasted and score < 30.0)
    if suspect:
        kind = "range" if range_wasted else "op"
    return Diagnosis(suspect, kind, "; ".join(reasons) if suspect else "", score)


def rank(diagnoses: dict[str, Diagnosis]) -> list[str]:
    """Tensor names, most suspect first: flagged ones, then by effective SQNR."""
    names = [n for n, d in diagnoses.items() if d.score < SQNR_CAP_DB]
    return sorted(names, key=lambda n: (not diagnoses[n].suspect, diagnoses[n].score))


def float_unit(
    name: str, kind: str, ops: Sequence[dict[str, Any]], graph_outputs: Iterable[str] = ()
) -> list[str]:
    """Output-tensor names of the ops to keep in float to fix the tensor ``name``.

    An op problem ("op") needs only that op in float. A wasted range ("range") lives on the
    tensor: any INT8 op that reads it quantizes it again with the same calibrated range, so
    the readers must be float as well, following same-scale ops (pooling, reshapes, concat)
    that carry the range on, up to and including the first op that computes a new tensor.
    ``ops`` are ``{"op", "inputs": [names], "outputs": [names]}`` in execution order.
    """
    unit = [name]
    if kind != "range":
        return unit
    readers: dict[str, list[dict[str, Any]]] = {}
    for op in ops:
        for t in op["inputs"]:
            readers.setdefault(t, []).append(op)
    todo, seen = [name], {name}
    outputs = set(graph_outputs)
    while todo:
        t = todo.pop()
        for op in readers.get(t, []):
            if op["op"] in ("QUANTIZE", "DEQUANTIZE"):
                continue
            for out in op["outputs"]:
                if out in seen:
                    continue
                seen.add(out)
                unit.append(out)
                if op["op"] in SAME_SCALE_OPS and out not in outputs:
                    todo.append(out)
    return unit


# ------------------------------------------------------------------- the per-layer table


def merge_layers(
    npu_layers: Sequence[dict[str, Any]],
    errors: dict[str, dict[str, Any]],
    sensitivity: Sequence[dict[str, Any]] = (),
    names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``report.json["layers"]``: NPU placement beside error and sensitivity, per layer.

    Rows follow the INT8 model's layers (folded shape arithmetic excluded, as in the NPU
    table); ``errors`` is keyed by output-tensor name. ``layer`` is the op's unique name for
    people (``names``, else :func:`engine.layer_names.model_layer_names`), the one the
    sensitivity entries use.
    """
    if names is None:
        names = model_layer_names(npu_layers, errors)
    by_layer = {s["tensor"]: s for s in sensitivity if s.get("tensor")}
    rows = []
    for layer in npu_layers:
        name = layer.get("name", "")
        err = errors.get(name)
        sens = by_layer.get(name)
        rows.append(
            {
                "index": layer.get("index"),
                "op": layer.get("op"),
                "name": name,
                "layer": names.get(name) or short_name(name, layer.get("op")),
                "output_shape": list(layer.get("output_shape") or []),
                "placement": layer.get("placement"),
                "reason": layer.get("reason", ""),
                "macs": layer.get("macs", 0),
                "est_us": layer.get("est_us", 0.0),
                "pct": layer.get("pct", 0.0),
                "error": err,
                "sensitivity": None if sens is None else {
                    "metric": sens["metric"],
                    "regained_points": sens["regained_points"],
                    "cost_ms": sens["cost_ms"],
                    "suggestion": sens["suggestion"],
                    **{k: sens[k] for k in ("regained", "unit") if sens.get(k) is not None},
                },
            }
        )
    return rows


CSV_FIELDS = (
    "index", "op", "name", "layer", "placement", "est_us", "macs", "scale", "zero_point", "range_min",
    "range_max", "layer_sqnr_db", "layer_rmse_scale", "layer_cos", "layer_max_abs",
    "model_sqnr_db", "model_rmse_scale", "model_cos", "model_max_abs", "suspect", "why",
    "regained_points", "regained", "regained_unit", "cost_ms", "suggestion",
)


def layers_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``layers.csv``: one row per layer, the same figures as report.json, flat."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        err = r.get("error") or {}
        sens = r.get("sensitivity") or {}
        flat: dict[str, Any] = {k: r.get(k) for k in ("index", "op", "name", "layer",
                                                       "placement", "est_us", "macs")}
        if err:
            flat.update(scale=err.get("scale"), zero_point=err.get("zero_point"),
                        range_min=(err.get("range") or [None, None])[0],
                        range_max=(err.get("range") or [None, None])[1],
                        suspect=err.get("suspect"), why=err.get("why"))
            for mode in ("layer", "model"):
                for k, v in (err.get(mode) or {}).items():
                    flat[f"{mode}_{k}"] = v
        if sens:
            flat.update(regained_points=sens.get("regained_points"), regained=sens.get("regained"),
                        regained_unit=sens.get("unit"), cost_ms=sens.get("cost_ms"),
                        suggestion=sens.get("suggestion"))
        w.writerow(flat)
    return buf.getvalue()


def error_entry(
    tensor: str,
    scale: float,
    zero_point: int,
    layer: ErrorStats | None,
    model: ErrorStats | None,
    rng: RangeStats | None,
    diag: Diagnosis,
    qrange: tuple[int, int] = (-128, 127),
) -> dict[str, Any]:
    """The ``error`` object of one row of ``report.json["layers"]``.

    ``range`` is what the tensor's INT8 grid can represent: scale × (qmin − zp) …
    scale × (qmax − zp), set by calibration.
    """
    lo, hi = (rng.lo, rng.hi) if rng is not None else (
        scale * (qrange[0] - zero_point), scale * (qrange[1] - zero_point))
    return {
        "tensor": tensor,
        "scale": float(f"{scale:.8g}"),
        "zero_point": int(zero_point),
        "range": [float(f"{lo:.6g}"), float(f"{hi:.6g}")],
        "layer": layer.to_dict() if layer is not None else None,
        "model": model.to_dict() if model is not None else None,
        "suspect": diag.suspect,
        "why": diag.why,
    }
