"""The verdict: INT8's drop against the use-case profile, with the guide's next step."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

#: A judgement's or verdict's state once its uncertainty is counted (report.json
#: ``verdict.state``, ``verdict.outputs[i].state`` is not written: it follows from the interval).
PASS, FAIL, UNRESOLVED = "pass", "fail", "unresolved"
_STATE_RANK = {PASS: 0, UNRESOLVED: 1, FAIL: 2}


@dataclass(frozen=True)
class Uncertainty:
    """How exact a judgement's value is (report.json ``verdict.outputs[i].interval``): the
    95 % interval ``low``–``high`` in the judgement's unit. ``method`` "paired": from the
    items FP32 got right and INT8 wrong (``lost``) and the reverse (``gained``) of ``n``,
    with the standard error ``se`` (points), McNemar's exact ``p_value`` and the test items
    that would resolve an interval straddling the bar (``items_to_resolve``, at the
    observed discordance); "bootstrap": percentiles over resampled test items (fixed seed),
    ``items_to_resolve`` from the interval's width shrinking as 1/√n."""

    low: float
    high: float
    method: str
    n: int
    level: float = 0.95
    lost: int | None = None
    gained: int | None = None
    se: float | None = None
    p_value: float | None = None
    items_to_resolve: int | None = None

    _KEYS = ("low", "high", "level", "method", "n", "lost", "gained", "se", "p_value",
             "items_to_resolve")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._KEYS if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Uncertainty:
        return cls(**{k: d[k] for k in cls._KEYS if d.get(k) is not None})


@dataclass(frozen=True)
class Judgement:
    """One output of one stage against its bar (report.json ``verdict.outputs``).

    ``value`` is in ``unit``: "points", the drop against FP32 (lower is better), or "dB",
    SQNR against FP32 (higher is better; None with ``exact``: identical to FP32). ``rule``
    says what judged it: "task" (the task's labelled metric), "argmax" (agreement of the
    top class, for class outputs) or "sqnr" (fidelity). ``judged`` is False for an output
    ``evaluation.outputs`` leaves out: shown, not part of the verdict."""

    name: str
    rule: str
    metric: str
    unit: str
    value: float | None
    bar: float
    passed: bool
    judged: bool = True
    exact: bool = False
    #: The metric itself in FP32 and in the stage (fractions; SQNR dB for "sqnr"): working
    #: figures for the headline and QAT, not written (the stages' metrics hold them).
    fp32: float | None = field(default=None, compare=False)
    stage: float | None = field(default=None, compare=False)
    #: Absent in reports from before verdicts carried their uncertainty, and where the
    #: items do not pair up (a task without per-item correctness).
    interval: Uncertainty | None = None

    @property
    def state(self) -> str:
        """PASS when the whole interval is inside the bar, FAIL when it is wholly outside,
        UNRESOLVED when it straddles it; without an interval, the point value decides."""
        iv = self.interval
        if self.exact or iv is None or self.value is None:
            return PASS if self.passed else FAIL
        inside, outside = ((iv.low >= self.bar, iv.high < self.bar) if self.unit == "dB"
                           else (iv.high <= self.bar, iv.low > self.bar))
        # A percentile interval may leave out its own point value: never a confident state
        # against the value itself.
        return (PASS if inside and self.passed else FAIL if outside and not self.passed
                else UNRESOLVED)

    @property
    def used(self) -> float:
        """The share of the bar's allowance this output uses: the drop over the bar, or the
        noise power over the noise the bar allows. Outputs are ranked by it."""
        if self.exact:
            return 0.0
        if self.value is None:
            return math.inf
        if self.unit == "dB":
            return 10.0 ** ((self.bar - self.value) / 10.0)
        return self.value / self.bar if self.bar > 0 else (0.0 if self.value <= 0 else math.inf)

    @property
    def figure(self) -> float:
        """Higher is better, in the metric's own scale (QAT's validation value and
        sensitivity's "regained"): the task metric or agreement as a fraction, SQNR in dB."""
        if self.unit == "dB":
            return math.inf if self.exact else (-math.inf if self.value is None else self.value)
        return float(self.stage) if self.stage is not None else -math.inf

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "rule": self.rule, "metric": self.metric, "unit": self.unit,
             "value": self.value, "bar": self.bar, "pass": self.passed, "judged": self.judged}
        if self.exact:
            d["exact"] = True
        if self.interval is not None:
            d["interval"] = self.interval.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Judgement:
        return cls(name=d.get("name", ""), rule=d.get("rule", ""), metric=d.get("metric", ""),
                   unit=d.get("unit", ""), value=d.get("value"), bar=d.get("bar", 0.0),
                   passed=bool(d.get("pass")), judged=bool(d.get("judged", True)),
                   exact=bool(d.get("exact", False)),
                   interval=Uncertainty.from_dict(d["interval"]) if d.get("interval") else None)


@dataclass(frozen=True)
class Verdict:
    """INT8 against FP32 on the worst judged output (``output``), in that output's unit:
    ``threshold``, ``int8`` in dB for a fidelity judgement (``fp32`` and ``drop`` None),
    or the metric's fractions and the ``drop`` in points. ``outputs``: every output's
    judgement."""

    profile: str
    threshold: float
    metric: str
    fp32: float | None
    int8: float | None
    drop: float | None  # points (FP32 − INT8) × 100; None when judged in dB
    passed: bool
    advice: str
    output: str | None = None
    unit: str | None = None
    outputs: tuple[Judgement, ...] = ()
    #: PASS, FAIL or UNRESOLVED: the worst judged output's state (FAIL > UNRESOLVED > PASS).
    #: ``passed`` stays the point estimate's. None in reports from before.
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "profile": self.profile, "threshold": self.threshold, "metric": self.metric,
            "fp32": self.fp32, "int8": self.int8, "drop": self.drop, "passed": self.passed,
            "advice": self.advice}
        d["pass"] = d.pop("passed")
        # Written only when set: verdicts from before per-output judging read back as written.
        if self.output is not None:
            d["output"] = self.output
        if self.unit is not None:
            d["unit"] = self.unit
        if self.outputs:
            d["outputs"] = [j.to_dict() for j in self.outputs]
        if self.state is not None:
            d["state"] = self.state
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """The verdict of a report.json (``to_dict``'s inverse); missing figures read None."""
        return cls(profile=d.get("profile", ""), threshold=d.get("threshold", 0.0),
                   metric=d.get("metric", ""), fp32=d.get("fp32", 0.0), int8=d.get("int8"),
                   drop=d.get("drop"), passed=bool(d.get("pass")), advice=d.get("advice", ""),
                   output=d.get("output"), unit=d.get("unit"),
                   outputs=tuple(Judgement.from_dict(j) for j in d.get("outputs") or ()),
                   state=d.get("state"))

    @property
    def judged(self) -> tuple[Judgement, ...]:
        return tuple(j for j in self.outputs if j.judged)

    @property
    def confidence(self) -> str:
        """The state, or for a report from before states, the point estimate's."""
        return self.state or (PASS if self.passed else FAIL)


def worst_state(judgements: Collection[Judgement]) -> str | None:
    """FAIL over UNRESOLVED over PASS, on the judged outputs (None: none judged)."""
    states = [j.state for j in judgements if j.judged]
    return max(states, key=_STATE_RANK.__getitem__) if states else None


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


#: The sentence of advice when the run did not place the model (older reports said this).
UNPLACED = ("This run has no NPU placement: artq inspect on the INT8 model says which layers "
            "would run on the CPU.")
UNPLACED_BEFORE = "Check which layers fall back to the CPU before flashing."


def placement_sentence(cpu_ops: int | None) -> str:
    """What a passing verdict says about CPU fallbacks: only those there are (none is said
    as none; not analysed as not analysed, never as an invitation to look for some)."""
    if cpu_ops == 0:
        return "Every op runs on the NPU."
    if cpu_ops:
        return (f"{cpu_ops} op{'s' if cpu_ops != 1 else ''} fall{'s' if cpu_ops == 1 else ''} "
                "back to the CPU: see the placement before flashing.")
    return UNPLACED


def advise(drop: float, threshold: float, profile: str, method: str,
           cpu_ops: int | None = None, *, granularity: str = "per-channel",
           images: bool = True) -> str:
    """The guide's recommended next step, in words."""
    if drop <= threshold:
        if drop <= 0:
            unit = "point" if threshold == 1 else "points"
            return (f"INT8 matches FP32 on this test set; it meets the {profile} bar "
                    f"(at most {threshold:g} {unit} of drop).")
        then = placement_sentence(cpu_ops)  # CPU fallbacks only where there are some
        return f"INT8 loses {drop:.2f} points, within the {profile} bar ({threshold:g}). {then}"
    if granularity.replace("_", "-") == "per-tensor" and method == "ptq":
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


def db_text(v: float) -> str:
    """A dB figure to one decimal, never "-0.0"."""
    return f"{round(v, 1) + 0.0:.1f}"


def judge_outputs(judgements: tuple[Judgement, ...] | list[Judgement], profile: str,
                  method: str = "ptq", cpu_ops: int | None = None, *,
                  granularity: str = "per-channel", images: bool = True,
                  packed: Collection[str] = ()) -> Verdict:
    """The verdict on every judged output: it passes when each does, and states the worst
    (the one using most of its bar's allowance) in that output's own unit. ``packed``:
    the outputs holding several values per position (the advice may blame their mix)."""
    judgements = tuple(judgements)
    judged = [j for j in judgements if j.judged]
    if not judged:
        from .config import PROFILE_THRESHOLDS  # noqa: PLC0415

        return Verdict(profile, PROFILE_THRESHOLDS[profile], "", None, None, None, False,
                       "no INT8 model was evaluated, so there is nothing to judge",
                       outputs=judgements)
    # The output that decides the state first (a failing one, then one left open), then by
    # the point value; without intervals that is the failing one using most of its bar.
    w = max(judged, key=lambda j: (_STATE_RANK[j.state], not j.passed, j.used))
    passed = all(j.passed for j in judged)
    state = worst_state(judged)
    several = len(judgements) > 1
    if w.unit == "dB":
        return Verdict(profile, w.bar, w.metric, None, w.value, None, passed,
                       advise_fidelity(w, profile, method, cpu_ops, granularity=granularity,
                                       images=images, named=several, packed=w.name in packed)
                       + _unresolved_advice(w, state),
                       output=w.name, unit="dB", outputs=judgements, state=state)
    if w.value is None:
        advice = f"output '{w.name}' has no {w.metric} to judge"
    else:
        advice = advise(w.value, w.bar, profile, method, cpu_ops, granularity=granularity,
                        images=images)
        if several:
            advice = f"Output '{w.name}': {advice}"
        advice += _unresolved_advice(w, state)
    return Verdict(profile, w.bar, w.metric, w.fp32, w.stage, w.value, passed, advice,
                   output=w.name, unit="points", outputs=judgements, state=state)


def _unresolved_advice(w: Judgement, state: str | None) -> str:
    """What to do before acting on a verdict this test set cannot resolve."""
    if state != UNRESOLVED or w.state != UNRESOLVED or w.interval is None:
        return ""
    side = "within" if w.passed else "over"
    need = w.interval.items_to_resolve
    more = (f"about {need:,} test items (this set has {w.interval.n:,})" if need is not None
            else "a larger test set")
    return (f" The measured value is {side} the bar, but its 95 % interval straddles it: "
            f"test on {more} before relying on this verdict.")


def advise_fidelity(j: Judgement, profile: str, method: str, cpu_ops: int | None = None, *,
                    granularity: str = "per-channel", images: bool = True,
                    named: bool = False, packed: bool = False) -> str:
    """The next step for an output judged on fidelity (SQNR in dB against FP32); ``packed``:
    the output holds several values per position, which one INT8 scale may not fit."""
    what = f"output '{j.name}'" if named else "the output"
    spread = (f"rms error ≤ {100 * 10 ** (-j.bar / 20):.1f} % of the output's spread")
    if j.passed:
        head = (f"INT8 reproduces {what} exactly." if j.exact else
                f"INT8 keeps {what} at {db_text(j.value)} dB SQNR against FP32, above the {profile} "
                f"bar ({j.bar:g} dB: {spread}).")
        return f"{head} {placement_sentence(cpu_ops)}"
    got = ("no signal to compare (FP32 gives all zeros there)" if j.value is None
           else f"{db_text(j.value)} dB SQNR against FP32")
    head = f"INT8 keeps {what} at {got}, under the {profile} bar ({j.bar:g} dB: {spread})."
    if granularity.replace("_", "-") == "per-tensor" and method == "ptq":
        return (f"{head} With one weight scale per tensor, try per-channel weights first "
                "(quantization.granularity = \"per-channel\"); then look at the per-layer error.")
    tail = (" If the error is spread over many layers, use more and more varied calibration "
            "data" + (" (same preprocessing as training, real images)" if images else "")
            + ", then QAT.")
    if packed:
        return (f"{head} Look at the per-layer error (report.md) for the layer that loses "
                "it: an output that packs values of very different ranges into one tensor "
                "(box coordinates beside scores) shares one INT8 scale, which flattens the "
                "small ones: the sensitivity shows whether keeping its last layers in float "
                "regains it, else splitting the output does." + tail)
    return (f"{head} Look at the per-layer error (report.md) for the layer that loses it, "
            "and the sensitivity for what keeping it in float would regain." + tail)
