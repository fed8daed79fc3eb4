"""The calibration data check a UI shows before launching: a few preprocessed samples, their
statistics, and the engine's calibration diagnostics.

``python -m engine.worker check CONFIG --model JSON [--set KEY=VALUE]...`` runs it in a child
process and sends two events (:class:`~engine.protocol.DataPreview`, then the slower
:class:`~engine.protocol.DataDiagnostics`, which load the test data too): generating and
preprocessing data is Python-heavy, and in a UI's thread it held the GIL long enough to
stall the screen for hundreds of milliseconds (measured while a job ran). It loads the data
with the engine's own loaders and the one :func:`engine.preprocess.preprocess`, so the
preview is exactly what calibration will see. TensorFlow is never imported.
"""

from __future__ import annotations

from typing import Any

from .protocol import DataDiagnostics, DataPreview

PREVIEW = 4


def check(config: str, overrides: list[str], model: dict[str, Any],
          with_diagnostics: bool = True) -> dict[str, Any]:
    """{'images', 'captions', 'stats' (lines), 'diagnostics' (list of dicts), 'diag_note', 'error',
    'cfg'}; the diagnostics (slower: they load the test data too) only ``with_diagnostics``."""
    import numpy as np  # noqa: PLC0415 - heavy: only here, in a thread

    from .config import load_config  # noqa: PLC0415
    from .data import load_source, prepare, select_calibration  # noqa: PLC0415
    from .errors import EngineError  # noqa: PLC0415
    from .preprocess import PreprocessSpec  # noqa: PLC0415

    out: dict[str, Any] = {"images": [], "captions": [], "stats": [], "diagnostics": [],
                           "diag_note": "checking…", "error": None, "cfg": None}
    try:
        cfg = load_config(config, overrides)
    except EngineError as exc:
        out["error"] = (exc.message, exc.hint)
        out["diag_note"] = "no diagnostics: the settings do not load"
        return out
    out["cfg"] = cfg
    if with_diagnostics:
        out["diagnostics"], out["diag_note"] = diagnostics(cfg, input_shape_of(model, cfg))
    try:
        raw = load_source(cfg.data.calibration, "data.calibration")
        idx = select_calibration(len(raw), cfg.calibration.samples, cfg.calibration.seed)
        shape = input_shape_of(model, cfg)
        spec = None
        if raw.images is not None:
            if shape is None:
                out["error"] = ("the model's input size is unknown, so images cannot be "
                                "preprocessed for a preview", "set preprocessing.resize")
                return out
            spec = PreprocessSpec.resolve(cfg.preprocessing, shape)
        data = prepare(raw.subset(idx), spec, shape or tuple(raw.arrays.shape[1:]),  # type: ignore[union-attr]
                       "data.calibration")
    except EngineError as exc:
        out["error"] = (exc.message, exc.hint)
        return out
    x = data.x
    n_avail, n = len(raw), len(x)
    lines = [f"source     {raw.source}: {n_avail} items, {n} drawn (seed {cfg.calibration.seed})"]
    if cfg.calibration.samples > n_avail:
        lines.append(f"           only {n_avail} exist: all are used, not {cfg.calibration.samples}")
    lines.append(f"tensor     {n}×{'×'.join(str(d) for d in x.shape[1:])} float32")
    lines.append(f"range      {float(x.min()):.4g} … {float(x.max()):.4g}")
    lines.append(f"mean / std {float(x.mean()):.4g} / {float(x.std()):.4g}")
    if x.ndim == 4 and x.shape[-1] > 1:
        per = ", ".join(f"{float(m):.3g}±{float(s):.3g}" for m, s in
                        zip(x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2)), strict=False))
        lines.append(f"channels   {per}")
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        at_edge = float(np.mean((x <= lo) | (x >= hi)))
        lines.append(f"at min/max {100 * at_edge:.1f} % of values")
    if hi > 2.0:
        lines.append("NOTE       values above 2: is the scale (1/255) applied?")
    labels = data.y
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        counts = np.bincount(labels)
        present = int((counts > 0).sum())
        lines.append(f"classes    {present} of {len(counts)} present; fewest {int(counts[counts > 0].min())},"
                     f" most {int(counts.max())} samples")
    out["stats"] = lines
    for i in range(min(PREVIEW, n)):
        img = x[i]
        img2 = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else (
            img.mean(axis=-1) if img.ndim == 3 else img)
        if img2.ndim != 2:
            break
        a, b = float(img2.min()), float(img2.max())
        out["images"].append((img2 - a) / (b - a) if b > a else np.zeros_like(img2))
        cap = f"#{int(idx[i])}"
        if isinstance(labels, list | np.ndarray) and len(labels) > i and np.ndim(labels[i]) == 0:
            cap += f" {labels[i]}"
        out["captions"].append(cap)
    return out


def input_shape_of(model: dict[str, Any], cfg: Any) -> tuple[int, ...] | None:
    """The item shape the data is checked in: H×W×C, also for a channels-first model."""
    from .layout import data_view, resolve  # noqa: PLC0415

    shape: tuple[int, ...] | None = None
    ins = model.get("inputs") or []
    if cfg.model.input_shape:
        shape = tuple(cfg.model.input_shape)
    elif ins and ins[0].get("shape") and all(d for d in ins[0]["shape"][1:]):
        shape = tuple(int(d) for d in ins[0]["shape"][1:])
    if shape is not None:
        return data_view(shape, resolve(cfg.preprocessing.layout, shape))
    if cfg.preprocessing.resize:
        h, w = cfg.preprocessing.resize
        return (h, w, 1 if cfg.preprocessing.color == "gray" else 3)
    return None


def diagnostics(cfg: Any, input_shape: tuple[int, ...] | None = None) -> tuple[list[dict[str, Any]], str]:
    """The engine's calibration diagnostics as dicts, or a note saying why there are none."""
    from .diagnostics import diagnose_config  # noqa: PLC0415 - loads the test data: slower

    try:
        found = diagnose_config(cfg, input_shape=input_shape)
    except Exception as exc:  # noqa: BLE001 - a diagnostic must never take the workbench down
        msg = getattr(exc, "message", None) or str(exc)
        return [], f"the diagnostics could not run: {msg}"
    return [as_finding(f) for f in (found or [])], ""


def as_finding(f: Any) -> dict[str, Any]:
    """A Finding event, a dataclass or a dict → {code, severity, message, evidence, fix}."""
    if isinstance(f, dict):
        d = f
    elif hasattr(f, "to_dict"):
        d = f.to_dict()
    else:
        d = dict(getattr(f, "__dict__", {}))
    return {k: d.get(k, "") for k in ("code", "severity", "message", "evidence", "fix")}


def downsample(img: Any, max_side: int = 64) -> list[list[float]]:
    """A 2-D array in [0, 1] → nested lists no larger than a terminal can show."""
    h, w = img.shape[:2]
    step = max(1, -(-max(h, w) // max_side))
    return [[round(float(v), 3) for v in row[::step]] for row in img[::step]]


def preview_event(res: dict[str, Any]) -> DataPreview:
    """:func:`check`'s result as the event that crosses the process boundary."""
    err = res.get("error")
    return DataPreview(images=[downsample(img) for img in res.get("images") or []],
                       captions=list(res.get("captions") or []), stats=list(res.get("stats") or []),
                       error=list(err) if err else None, diag_note=str(res.get("diag_note") or ""),
                       loaded=res.get("cfg") is not None)


def diagnostics_event(res: dict[str, Any], model: dict[str, Any],
                      diagnose: Any = None) -> DataDiagnostics:
    """The diagnostics of a loaded config (``diagnose``: :func:`diagnostics` by default)."""
    cfg = res["cfg"]
    found, note = (diagnose or diagnostics)(cfg, input_shape_of(model, cfg))
    return DataDiagnostics(diagnostics=found, diag_note=note)
