"""The verdict: INT8's drop against the use-case profile, with the guide's next step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    profile: str
    threshold: float  # points
    metric: str
    fp32: float
    int8: float | None
    drop: float | None  # points (FP32 − INT8) × 100
    passed: bool
    advice: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pass"] = d.pop("passed")
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """The verdict of a report.json (``to_dict``'s inverse); missing figures read None."""
        return cls(profile=d.get("profile", ""), threshold=d.get("threshold", 0.0),
                   metric=d.get("metric", ""), fp32=d.get("fp32", 0.0), int8=d.get("int8"),
                   drop=d.get("drop"), passed=bool(d.get("pass")), advice=d.get("advice", ""))


def primary_value(metrics: dict[str, Any], primary: str) -> float | None:
    """The value a stage is judged on; for label-free tasks, agreement with FP32."""
    if primary != "agreement":
        v = metrics.get(primary)
        return float(v) if v is not None else None
    agr = metrics.get("agreement") or {}
    v = agr.get("acc")
    if v is None:
        v = agr.get("cos")
    return float(v) if v is not None else None


def judge(metric: str, fp32: float, int8: float | None, profile: str, method: str = "ptq",
          cpu_ops: int | None = None, *, granularity: str = "per-channel",
          images: bool = True) -> Verdict:
    """Pass when the drop is within the profile's threshold (the guide's table, §6.2).
    ``cpu_ops``: how many INT8 ops the NPU analysis left on the CPU (None: not analysed);
    ``granularity`` and ``images`` fit the advice to the run."""
    from .config import PROFILE_THRESHOLDS  # noqa: PLC0415 - readers of a report need no config

    threshold = PROFILE_THRESHOLDS[profile]
    if int8 is None:
        return Verdict(profile, threshold, metric, fp32, None, None, False,
                       "no INT8 model was evaluated, so there is nothing to judge")
    drop = round((fp32 - int8) * 100.0, 4)
    passed = drop <= threshold
    return Verdict(profile, threshold, metric, fp32, int8, drop, passed,
                   advise(drop, threshold, profile, method, cpu_ops, granularity=granularity,
                          images=images))


def advise(drop: float, threshold: float, profile: str, method: str,
           cpu_ops: int | None = None, *, granularity: str = "per-channel",
           images: bool = True) -> str:
    """The guide's recommended next step, in words."""
    if drop <= threshold:
        if drop <= 0:
            unit = "point" if threshold == 1 else "points"
            return (f"INT8 matches FP32 on this test set; it meets the {profile} bar "
                    f"(at most {threshold:g} {unit} of drop).")
        # Pointing at CPU fallbacks only where there are some (or none were looked for).
        if cpu_ops == 0:
            then = "Every op runs on the NPU."
        elif cpu_ops:
            then = (f"{cpu_ops} op{'s' if cpu_ops != 1 else ''} fall{'s' if cpu_ops == 1 else ''} "
                    "back to the CPU: see the placement before flashing.")
        else:
            then = "Check which layers fall back to the CPU before flashing."
        return f"INT8 loses {drop:.2f} points, within the {profile} bar ({threshold:g}). {then}"
    if granularity == "per-tensor" and method == "ptq":
        # One scale for a whole weight tensor is the usual cause; the cheapest fix comes first.
        return (
            f"INT8 loses {drop:.2f} points, over the {profile} bar ({threshold:g}), with one "
            "weight scale per tensor. Try per-channel weights first (quantization.granularity "
            "= \"per-channel\": what the N6 takes); then more calibration data, then QAT."
        )
    if drop > 5.0:
        return (
            f"INT8 loses {drop:.2f} points, far over the {profile} bar ({threshold:g}). A drop this "
            "large usually means the calibration data does not match the test data: check that "
            + ("calibration uses the same preprocessing as training (range, mean/std, colour "
               "order) and real images, not random data." if images else
               "calibration uses the same scaling as training (range, mean/std) and real "
               "recordings, not random data.")
        )
    if profile in ("high", "production") and method == "ptq":
        return (
            f"INT8 loses {drop:.2f} points, over the {profile} bar ({threshold:g}). The guide "
            "prescribes QAT for this bar: set quantization.method = \"qat\" (3–10 epochs at "
            "learning rate 1e-5). Before that, try 100–500 diverse calibration samples."
        )
    return (
        f"INT8 loses {drop:.2f} points, over the {profile} bar ({threshold:g}). Use more and more "
        "diverse calibration data (the guide recommends 100–500 samples covering "
        + ("brightness, contrast and size" if images else "the range and variety of the inputs")
        + "), keep per-channel weights, and look at the per-layer error to find "
        "the layer that loses it; if that is not enough, use QAT."
    )
