"""Calibration diagnostics: what is wrong with the data before anything is converted.

numpy only (no TensorFlow, no UI), so the TUI can call :func:`diagnose_config` on a config
before it launches a job, and every job runs :func:`diagnose` on its own preprocessed data
first. Each finding carries a code, a severity, one line of message, the numbers behind it
(evidence) and what to do (fix). The checks follow the guide's §3.2 and §8: random
calibration data, a preprocessing mismatch between calibration and test data, too few (or
too many) samples, low variety of brightness and contrast, and inputs the calibrated INT8
input range cannot hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ModelError
from .modelfile import model_input_shape

#: The guide (§3.2): 100–500 representative samples.
MIN_SAMPLES = 100
MANY_SAMPLES = 500
#: Neighbouring pixels of real images correlate strongly (smooth regions, edges); i.i.d.
#: noise does not. Measured on the bundled digits and OCR crops: 0.6–0.95; uniform noise: 0.0.
NOISE_CORRELATION = 0.3
#: A scale difference this large between calibration and test data is a preprocessing bug.
SPAN_RATIO = 3.0
#: Means further apart than this many test standard deviations: a normalization mismatch.
MEAN_SHIFT_STD = 0.5
#: Calibration spread of per-image brightness/contrast below this share of the test
#: spread, or calibration images closer to each other than this share of the test images'
#: typical distance: the calibration set shows the model one kind of image.
DIVERSITY_RATIO = 0.25
DUPLICATE_RATIO = 0.1
#: Share of test input values outside the calibrated input range (they clip).
SATURATION_WARN = 0.01
SATURATION_ERROR = 0.10

_MAX_ITEMS = 256
_MAX_VALUES = 2_000_000
_BARS = " ▁▂▃▄▅▆▇█"


#: Values farther than this many 0.1–99.9 % spans beyond that range count as extreme.
OUTLIER_SPANS = 10.0


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: str  # "error" | "warning" | "info"
    message: str
    evidence: str = ""
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class _Summary:
    """What the checks need from one split, computed once on a bounded subsample."""

    n: int
    lo: float  # 0.1 % quantile
    hi: float  # 99.9 % quantile
    vmin: float
    vmax: float
    mean: float
    std: float
    img_mean: np.ndarray  # per item
    img_std: np.ndarray
    correlation: float | None  # neighbouring-pixel correlation (images only)
    flatness: float  # histogram entropy / max entropy: 1.0 is a flat histogram
    far: int = 0  # sampled values far outside the 0.1–99.9 % quantiles (see OUTLIER_SPANS)
    n_values: int = 0

    @property
    def span(self) -> float:
        return self.hi - self.lo


def _pick(n: int, k: int) -> np.ndarray:
    """At most ``k`` indices spread evenly over ``range(n)`` (distinct: the step is ≥ 1)."""
    if n <= k:
        return np.arange(n)
    return (np.arange(k) * (n / k)).astype(np.int64)


def _summarize(x: np.ndarray) -> _Summary:
    x = np.asarray(x)
    # float64: model-ready data can hold values near float32's limit, whose squares and
    # differences would overflow (a raw numpy RuntimeWarning on the user's terminal).
    items = x[_pick(len(x), _MAX_ITEMS)].astype(np.float64, copy=False)
    flat = items.reshape(len(items), -1)
    values = flat.ravel()
    if values.size > _MAX_VALUES:
        values = values[_pick(values.size, _MAX_VALUES)]
    lo, hi = (float(v) for v in np.quantile(values, [0.001, 0.999]))
    reach = OUTLIER_SPANS * max(hi - lo, 1e-12)
    far = int(np.count_nonzero((values < lo - reach) | (values > hi + reach)))
    hist, _ = np.histogram(values, bins=64, range=(float(values.min()), float(values.max()) or 1.0))
    p = hist[hist > 0] / hist.sum()
    flatness = float(-(p * np.log(p)).sum() / np.log(64)) if p.size > 1 else 0.0
    return _Summary(
        n=len(x), lo=lo, hi=hi, vmin=float(values.min()), vmax=float(values.max()),
        mean=float(values.mean()), std=float(values.std()),
        img_mean=flat.mean(axis=1), img_std=flat.std(axis=1),
        correlation=_neighbour_correlation(items), flatness=flatness,
        far=far, n_values=int(values.size),
    )


def _neighbour_correlation(items: np.ndarray) -> float | None:
    """Median over images of the correlation between horizontally and vertically adjacent
    pixels; None when the items are not images (H and W of at least 4)."""
    if items.ndim == 3:
        items = items[..., None]
    if items.ndim != 4 or items.shape[1] < 4 or items.shape[2] < 4:
        return None
    vals = []
    for img in items[_pick(len(items), 64)]:
        pairs = ((img[:, :-1], img[:, 1:]), (img[:-1, :], img[1:, :]))
        a = np.concatenate([p[0].ravel() for p in pairs]).astype(np.float64)
        b = np.concatenate([p[1].ravel() for p in pairs]).astype(np.float64)
        a -= a.mean()
        b -= b.mean()
        den = np.sqrt((a * a).sum() * (b * b).sum())
        if den > 0:
            vals.append(float((a * b).sum() / den))
    return float(np.median(vals)) if vals else None


def _spark(values: np.ndarray, lo: float, hi: float, bins: int = 12) -> str:
    """A one-line histogram (block characters), for evidence a terminal can show."""
    if hi <= lo:
        hi = lo + 1e-9
    h, _ = np.histogram(values, bins=bins, range=(lo, hi))
    top = h.max() or 1
    return "".join(_BARS[int(round(8 * c / top))] if c else _BARS[0] for c in h)


def _pairwise_distance(x: np.ndarray, k: int = 48, features: int = 4096) -> float:
    """Median RMS distance between pairs of items, on a fixed subsample of items and pixels."""
    items = np.asarray(x)[_pick(len(x), k)].reshape(min(len(x), k), -1)
    items = items[:, _pick(items.shape[1], features)].astype(np.float64)
    if len(items) < 2:
        return 0.0
    sq = (items * items).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * items @ items.T, 0.0)
    iu = np.triu_indices(len(items), 1)
    return float(np.median(np.sqrt(d2[iu] / items.shape[1])))


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def image_shaped(shape: tuple[int | None, ...]) -> bool:
    """A batch of items shaped H×W×C with 1, 3 or 4 channels reads as pictures; anything else
    (sensor windows, spectrogram stacks of other depths, vectors) gets words about levels and
    ranges, not light."""
    return (len(shape) == 4 and shape[-1] in (1, 3, 4)
            and all(isinstance(d, int) and d >= 8 for d in shape[1:3]))


def looks_like_images(x: np.ndarray) -> bool:
    return image_shaped(x.shape)


def diagnose(
    calibration: np.ndarray,
    test: np.ndarray | None = None,
    *,
    requested: int | None = None,
) -> list[Diagnostic]:
    """Findings on model-ready (preprocessed) calibration data, against test data if given.

    ``requested`` is ``calibration.samples`` as configured (the data may hold fewer).
    Clean, real data gives no finding.
    """
    out: list[Diagnostic] = []
    if len(calibration) == 0:
        return [Diagnostic("no_calibration_data", "error", "the calibration set is empty",
                           fix="point data.calibration at real images")]
    cal = _summarize(calibration)
    tst = _summarize(test) if test is not None and len(test) else None
    images = looks_like_images(calibration)

    # 1. Random noise instead of images (the guide's "bad example").
    if cal.correlation is not None and cal.correlation < NOISE_CORRELATION and (
        tst is None or tst.correlation is None or tst.correlation >= NOISE_CORRELATION
    ):
        seen = f"; test images: {tst.correlation:.2f}" if tst and tst.correlation is not None else ""
        out.append(Diagnostic(
            "random_calibration_data", "error",
            "the calibration data looks like random noise, not images",
            f"neighbouring pixels correlate {cal.correlation:.2f} in the calibration items "
            f"(real images: above 0.5{seen}); value histogram flatness {cal.flatness:.2f} "
            "(1.0 = flat, as uniform noise)",
            "calibrate with real, preprocessed images from the training or validation set "
            "(guide §3.2), 100–500 of them; random data sets every range wrongly",
        ))

    # 2. Range and normalization: the same preprocessing on both sides?
    noise = bool(out)
    mismatch = False
    if tst is not None and cal.span > 0 and tst.span > 0:
        ratio = cal.span / tst.span
        if ratio > SPAN_RATIO or ratio < 1 / SPAN_RATIO:
            mismatch = True
            big = max(ratio, 1 / ratio)
            guess = ""
            if abs(big / 255.0 - 1) < 0.25:
                which = "calibration" if ratio > 1 else "test"
                guess = f" — {which} data looks like raw 0–255 pixels, the other like 0–1"
            if ratio > 1:
                used = max(1, int(round(255.0 * tst.span / cal.span)))
                grid = f"on the calibrated input grid the test data uses about {used} of 256 levels"
            else:
                grid = f"test values reach ×{big:.3g} beyond the calibrated input range"
            out.append(Diagnostic(
                "range_mismatch", "error",
                f"calibration and test data have different ranges (×{big:.3g}){guess}",
                f"calibration values span [{_fmt(cal.lo)}, {_fmt(cal.hi)}], test values "
                f"[{_fmt(tst.lo)}, {_fmt(tst.hi)}] (0.1–99.9 % quantiles); {grid}",
                "preprocess calibration and test data with the same scale, mean and std as "
                "training (the guide's §8: one preprocessing function for both); check "
                "data.*.raw and how the arrays were saved",
            ))
        elif (
            tst.std > 0
            and abs(cal.mean - tst.mean) > MEAN_SHIFT_STD * tst.std
            # A narrow calibration set sits off-centre by chance: low_diversity says that.
            and float(cal.img_mean.std()) >= DIVERSITY_RATIO * float(tst.img_mean.std())
        ):
            out.append(Diagnostic(
                "normalization_mismatch", "warning",
                "calibration and test data are centred differently (mean/std normalization "
                "differs?)",
                f"mean {_fmt(cal.mean)} vs {_fmt(tst.mean)}, std {_fmt(cal.std)} vs "
                f"{_fmt(tst.std)}: the means differ by {abs(cal.mean - tst.mean) / tst.std:.2f} "
                "test standard deviations",
                "apply the training mean/std to both sets (preprocessing.mean and .std), or "
                "calibrate on data from the test set's distribution",
            ))

    # 3. Extreme values: min/max calibration stretches the INT8 range over them.
    for s, name in ((cal, "calibration"), (tst, "test")):
        if s is not None and s.far:
            out.append(Diagnostic(
                "extreme_values", "warning",
                f"{s.far} of {s.n_values:,} sampled {name} values lie far outside the rest",
                f"values span [{_fmt(s.vmin)}, {_fmt(s.vmax)}] while 99.8 % lie in "
                f"[{_fmt(s.lo)}, {_fmt(s.hi)}]",
                "look for sentinel values (such as -9999 for missing), corrupt items or mixed "
                "units; min/max calibration spreads INT8's 256 steps over these outliers",
            ))

    # 4. How many samples.
    n = cal.n
    if n < MIN_SAMPLES:
        cover = ""
        if tst is not None and len(tst.img_mean):
            lo_m, hi_m = float(cal.img_mean.min()), float(cal.img_mean.max())
            outside = float(np.mean((tst.img_mean < lo_m) | (tst.img_mean > hi_m)))
            cover = (f"; {100 * outside:.0f} % of test images are brighter or darker than "
                     "every calibration image" if images else
                     f"; {100 * outside:.0f} % of test items have a mean level outside every "
                     "calibration item's")
        asked = f" (calibration.samples = {requested})" if requested and requested != n else ""
        out.append(Diagnostic(
            "too_few_samples", "warning",
            f"only {n} calibration samples{asked}: too few to see the inputs' variety",
            f"the guide recommends 100–500 varied samples{cover}",
            ("give 100–500 real samples covering the brightness, contrast and content of "
             "the test data" if images else
             "give 100–500 real samples covering the range and variety of the test data")
            + " (data.calibration.count and calibration.samples)",
        ))
    elif requested and requested > n:
        # Not an error: the run calibrates on what exists. But a what-if at 200 samples that
        # silently calibrated on 100 would be read wrongly.
        out.append(Diagnostic(
            "fewer_samples_than_asked", "warning",
            f"calibration.samples = {requested} but only {n} calibration items exist: "
            f"all {n} are used",
            f"the calibration set holds {n} items",
            "add items (data.calibration.count for synthetic data, more files otherwise) "
            f"or set calibration.samples to {n} or fewer",
        ))
    if n > MANY_SAMPLES:
        out.append(Diagnostic(
            "many_samples", "info",
            f"{n} calibration samples: beyond about {MANY_SAMPLES}, calibration only gets slower",
            "ranges come from min/max statistics that settle after a few hundred samples "
            "(the guide's §8, problem 3)",
            f"set calibration.samples to 100–{MANY_SAMPLES}",
        ))

    # 4. Variety of brightness and contrast; near-duplicates.
    if tst is not None and n >= 2 and len(tst.img_mean) >= 2 and not (mismatch or noise):
        sm_c, sm_t = float(cal.img_mean.std()), float(tst.img_mean.std())
        ss_c, ss_t = float(cal.img_std.std()), float(tst.img_std.std())
        d_c = _pairwise_distance(calibration)
        d_t = _pairwise_distance(test)  # type: ignore[arg-type]
        narrow = sm_t > 0 and ss_t > 0 and sm_c < DIVERSITY_RATIO * sm_t and ss_c < DIVERSITY_RATIO * ss_t
        dupes = d_t > 0 and d_c < DUPLICATE_RATIO * d_t
        if narrow or dupes:
            lo_m = min(float(cal.img_mean.min()), float(tst.img_mean.min()))
            hi_m = max(float(cal.img_mean.max()), float(tst.img_mean.max()))
            lo_s = min(float(cal.img_std.min()), float(tst.img_std.min()))
            hi_s = max(float(cal.img_std.max()), float(tst.img_std.max()))
            evidence = (
                f"per-image brightness sd {_fmt(sm_c)} vs {_fmt(sm_t)} in test "
                f"[cal {_spark(cal.img_mean, lo_m, hi_m)} | test "
                f"{_spark(tst.img_mean, lo_m, hi_m)}]; contrast sd {_fmt(ss_c)} vs "
                f"{_fmt(ss_t)} [cal {_spark(cal.img_std, lo_s, hi_s)} | test "
                f"{_spark(tst.img_std, lo_s, hi_s)}]"
            )
            if d_t > 0:
                evidence += (f"; typical distance between calibration images "
                             f"{100 * d_c / d_t:.0f} % of that between test images")
            message = (
                "the calibration images are nearly alike: little variety of brightness, "
                "contrast or content" if dupes else
                "the calibration images vary far less in brightness and contrast than the "
                "test images"
            )
            out.append(Diagnostic(
                "low_diversity", "warning", message, evidence,
                "draw calibration samples at random from varied real data (the guide's §3.2: "
                "cover brightness, contrast and size), not from one scene or one class",
            ))

    # 5. Inputs the calibrated INT8 input range cannot hold.
    if tst is not None and not (mismatch and cal.span > tst.span):
        # The input tensor's range is the calibration min/max, widened to include 0.
        lo, hi = min(0.0, cal.vmin), max(0.0, cal.vmax)
        t_items = np.asarray(test)[_pick(len(test), _MAX_ITEMS)]  # type: ignore[arg-type]
        vals = t_items.reshape(-1)
        if vals.size > _MAX_VALUES:
            vals = vals[_pick(vals.size, _MAX_VALUES)]
        tol = (hi - lo) / 255.0
        share = float(np.mean((vals < lo - tol) | (vals > hi + tol)))
        if share > SATURATION_WARN:
            out.append(Diagnostic(
                "input_saturation", "error" if share > SATURATION_ERROR else "warning",
                f"{100 * share:.1f} % of test input values fall outside the calibrated INT8 "
                "input range and clip to its ends",
                f"calibrated input range [{_fmt(lo)}, {_fmt(hi)}]; test values reach "
                f"[{_fmt(float(vals.min()))}, {_fmt(float(vals.max()))}]",
                "calibrate with data that covers the test data's range (same preprocessing, "
                "real samples including the brightest and darkest)",
            ))
    return out


# ------------------------------------------------------------------ on a config (for the TUI)


def diagnose_config(cfg: Any, input_shape: tuple[int, ...] | None = None) -> list[dict[str, str]]:
    """The job's own diagnostics for a :class:`~engine.config.JobConfig`, before running it.

    Loads and preprocesses the calibration and test data exactly as the job does (same
    sample selection, same preprocessing). ``input_shape`` (H, W, C) is needed only when
    the model file does not state it (a SavedModel) and the config has no model.input_shape.
    A synthetic test split is rendered only as far as the checks look (256 items: rendering
    1,000 OCR scenes takes most of a minute); generators are deterministic per index, so
    these are the job's own first test items.
    """
    import dataclasses  # noqa: PLC0415

    from .data import load_source, prepare, select_calibration  # noqa: PLC0415
    from .preprocess import PreprocessSpec  # noqa: PLC0415

    shape = input_shape or (tuple(cfg.model.input_shape) if cfg.model.input_shape else None)
    if shape is None:
        shape = model_input_shape(cfg.model.path)
    cal_raw = load_source(cfg.data.calibration, "data.calibration")
    test_src = cfg.data.test
    if test_src.kind == "synthetic":
        test_src = dataclasses.replace(test_src, count=min(test_src.count, _MAX_ITEMS))
    test_raw = load_source(test_src, "data.test")
    if cfg.evaluation.max_samples and len(test_raw) > cfg.evaluation.max_samples:
        test_raw = test_raw.subset(np.arange(cfg.evaluation.max_samples))
    if shape is None:
        arrays = cal_raw.arrays if cal_raw.arrays is not None else None
        if arrays is None:
            raise ModelError(
                f"{cfg.model.path}: the model's input shape is not readable without TensorFlow",
                "set model.input_shape = [H, W, C] in the config, or pass input_shape",
            )
        shape = tuple(arrays.shape[1:])
    spec = None
    if cal_raw.images is not None or test_raw.images is not None:
        spec = PreprocessSpec.resolve(cfg.preprocessing, shape)
    idx = select_calibration(len(cal_raw), cfg.calibration.samples, cfg.calibration.seed)
    cal = prepare(cal_raw.subset(idx), spec, shape, "data.calibration")
    test = prepare(test_raw, spec, shape, "data.test")
    return [d.to_dict() for d in diagnose(cal.x, test.x, requested=cfg.calibration.samples)]
