"""Target descriptions: a TOML file per board, validated into frozen dataclasses.

A target says what the cost model needs and nothing else: clocks, the NPU's MAC rate and
per-operator efficiencies, the activation memory pools in the order they are filled, the
external flash that holds the weights, the CPU's fallback costs, and the weight-layout
constants. Users copy a bundled file (``engine/targets/stm32n6570-dk.toml``) to ask what-if
questions (a bigger pool, a faster flash) and pass its path as ``--target FILE``.

Errors name the file and the key path and say what was expected.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import TargetError

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"
DEFAULT_TARGET = "stm32n6570-dk"
SCHEMA = "artq.target/1"
#: A memory larger than the 32-bit address space is a typo (and 1e306 KiB overflows bytes).
MAX_KIB = 4 * 1024 * 1024
MAX_KIB_WHY = " (4 GiB, the 32-bit address space)"

#: NPU operator kinds that need an efficiency (see rules.OpRule.kind).
NPU_KINDS = ("conv", "depthwise", "pool", "eltwise", "activation", "dma", "requant")
#: CPU work kinds with a cost per element.
CPU_KINDS = ("eltwise", "softmax", "convert", "resize", "dma", "pool", "activation", "other")


@dataclass(frozen=True)
class Pool:
    """An activation memory pool, filled in the order the target lists them."""

    name: str
    kind: str  # "internal" | "external"
    address: int
    size_bytes: int
    #: ST's mpool figure: bus cycles per NPU cycle. Higher is slower.
    freq_ratio: float

    @property
    def internal(self) -> bool:
        return self.kind == "internal"


@dataclass(frozen=True)
class Flash:
    name: str
    address: int
    size_bytes: int
    freq_ratio: float
    #: Effective read rate of weights streamed through the NPU cache, MB/s (fitted).
    read_mb_s: float


@dataclass(frozen=True)
class Npu:
    clock_mhz: float
    macs_per_cycle: float
    #: Bytes per NPU cycle a stream engine moves from a pool of freq_ratio 1.
    bus_bytes_per_cycle: float
    #: Fixed cost of one hardware epoch (programming, start, sync), µs (fitted).
    epoch_overhead_us: float
    #: Fraction of the peak MAC rate reached, per operator kind.
    efficiency: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Cpu:
    name: str
    clock_mhz: float
    cycles_per_mac_int8: float
    cycles_per_mac_float: float
    #: Cycles per output element of software operators, by kind, integer and float.
    cycles_per_element_int8: Mapping[str, float]
    cycles_per_element_float: Mapping[str, float]
    #: Fixed cost of one software epoch (hand-off NPU → CPU → NPU, cache maintenance), µs.
    sw_epoch_overhead_us: float


@dataclass(frozen=True)
class WeightLayout:
    """How the compiler lays weights out in flash (fitted on published figures).

    Flash bytes = the model's constant bytes + for each depthwise channel
    ``max(0, dw_channel_bytes - dw_tap_bytes * kernel_h * kernel_w)``.
    """

    dw_channel_bytes: float
    dw_tap_bytes: float


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    path: str
    npu: Npu
    cpu: Cpu
    pools: tuple[Pool, ...]
    flash: Flash
    weights: WeightLayout
    alignment_bytes: int

    @property
    def internal_pools(self) -> tuple[Pool, ...]:
        return tuple(p for p in self.pools if p.internal)

    @property
    def internal_bytes(self) -> int:
        return sum(p.size_bytes for p in self.internal_pools)


# ----------------------------------------------------------------------------- validation


class _Reader:
    """Pulls typed values out of a TOML table, naming file and key path in errors."""

    def __init__(self, file: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self.file = file
        self.data = data
        self.prefix = prefix
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, message: str) -> TargetError:
        return TargetError(
            f"{self.file}: {self._key(key)}: {message}",
            "fix the target file (copy engine/targets/stm32n6570-dk.toml for a complete example)",
        )

    def get(self, key: str) -> Any:
        self.used.add(key)
        if key not in self.data:
            raise self.fail(key, "missing")
        return self.data[key]

    def number(self, key: str, *, minimum: float = 0.0, positive: bool = True,
               maximum: float | None = None, why: str = "") -> float:
        v = self.get(key)
        bound = "> 0" if positive else f"≥ {minimum:g}"
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(key, f"must be a number {bound}, got {v!r}")
        # TOML has inf and nan, and 1e400 reads as inf: nan passes every comparison below
        # and inf overflows round(); either makes every time or size meaningless.
        try:
            finite = math.isfinite(v)
        except OverflowError:  # an integer too big for a float
            finite = False
        if not finite:
            raise self.fail(key, f"must be a finite number {bound}, got {v!r}")
        if (positive and v <= 0) or v < minimum:
            raise self.fail(key, f"must be {bound}, got {v!r}")
        if maximum is not None and v > maximum:
            raise self.fail(key, f"must be ≤ {maximum:.10g}{why}, got {v!r}")
        return float(v)

    def integer(self, key: str, *, minimum: int = 0) -> int:
        v = self.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"must be an integer, got {v!r}")
        if v < minimum:
            raise self.fail(key, f"must be ≥ {minimum}, got {v!r}")
        return v

    def text(self, key: str, *, choices: tuple[str, ...] = ()) -> str:
        v = self.get(key)
        if not isinstance(v, str) or not v:
            raise self.fail(key, f"must be a non-empty string, got {v!r}")
        if choices and v not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {v!r}")
        return v

    def table(self, key: str) -> _Reader:
        v = self.get(key)
        if not isinstance(v, dict):
            raise self.fail(key, "must be a table")
        return _Reader(self.file, v, f"{self._key(key)}.")

    def tables(self, key: str) -> list[_Reader]:
        v = self.get(key)
        if not isinstance(v, list) or not v or not all(isinstance(x, dict) for x in v):
            raise self.fail(key, "must be a non-empty array of tables ([[...]])")
        return [_Reader(self.file, x, f"{self._key(key)}[{i}].") for i, x in enumerate(v)]

    def numbers(self, key: str, names: tuple[str, ...]) -> Mapping[str, float]:
        sub = self.table(key)
        out = {n: sub.number(n) for n in names}
        sub.done()
        return MappingProxyType(out)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.fail(extra[0], "unknown key (check the spelling)")


def _build(file: str, data: Mapping[str, Any]) -> Target:
    r = _Reader(file, data)
    schema = r.text("schema")
    if schema != SCHEMA:
        raise r.fail("schema", f"must be {SCHEMA!r}, got {schema!r}")
    name = r.text("name")
    description = r.text("description")

    n = r.table("npu")
    npu = Npu(
        clock_mhz=n.number("clock_mhz"),
        macs_per_cycle=n.number("macs_per_cycle"),
        bus_bytes_per_cycle=n.number("bus_bytes_per_cycle"),
        epoch_overhead_us=n.number("epoch_overhead_us", positive=False),
        efficiency=n.numbers("efficiency", NPU_KINDS),
    )
    for k, e in npu.efficiency.items():
        if e > 1:
            raise n.fail(f"efficiency.{k}", f"is a fraction of the peak rate, ≤ 1; got {e!r}")
    n.done()

    c = r.table("cpu")
    cpu = Cpu(
        name=c.text("name"),
        clock_mhz=c.number("clock_mhz"),
        cycles_per_mac_int8=c.number("cycles_per_mac_int8"),
        cycles_per_mac_float=c.number("cycles_per_mac_float"),
        cycles_per_element_int8=c.numbers("cycles_per_element_int8", CPU_KINDS),
        cycles_per_element_float=c.numbers("cycles_per_element_float", CPU_KINDS),
        sw_epoch_overhead_us=c.number("sw_epoch_overhead_us", positive=False),
    )
    c.done()

    m = r.table("memory")
    alignment = m.integer("alignment_bytes", minimum=1)
    pools: list[Pool] = []
    for p in m.tables("pools"):
        pools.append(
            Pool(
                name=p.text("name"),
                kind=p.text("kind", choices=("internal", "external")),
                address=p.integer("address"),
                size_bytes=round(p.number("size_kib", maximum=MAX_KIB, why=MAX_KIB_WHY) * 1024),
                freq_ratio=p.number("freq_ratio"),
            )
        )
        p.done()
    names = [p.name for p in pools]
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        raise m.fail("pools", f"pool names must be unique; {sorted(dup)[0]!r} repeats")
    if not any(p.internal for p in pools):
        raise m.fail("pools", "needs at least one internal pool")
    f = m.table("flash")
    flash = Flash(
        name=f.text("name"),
        address=f.integer("address"),
        size_bytes=round(f.number("size_kib", maximum=MAX_KIB, why=MAX_KIB_WHY) * 1024),
        freq_ratio=f.number("freq_ratio"),
        read_mb_s=f.number("read_mb_s"),
    )
    f.done()
    m.done()

    w = r.table("weights")
    weights = WeightLayout(
        dw_channel_bytes=w.number("dw_channel_bytes", positive=False),
        dw_tap_bytes=w.number("dw_tap_bytes", positive=False),
    )
    w.done()
    r.done()
    return Target(name, description, file, npu, cpu, tuple(pools), flash, weights, alignment)


def bundled_targets() -> list[str]:
    """Names of the targets shipped with artq."""
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def load_target(target: str | os.PathLike[str] | Target = DEFAULT_TARGET) -> Target:
    """Load a bundled target by name or a TOML file by path."""
    if isinstance(target, Target):
        return target
    spec = os.fspath(target)
    path = Path(spec)
    looks_like_path = path.suffix == ".toml" or os.sep in spec or "/" in spec
    if not looks_like_path:
        path = TARGETS_DIR / f"{spec}.toml"
        if not path.is_file():
            known = ", ".join(bundled_targets()) or "none"
            raise TargetError(
                f"unknown target {spec!r}",
                f"use a bundled target ({known}) or the path to a target .toml file",
            )
    if not path.is_file():
        raise TargetError(
            f"{spec}: target file not found",
            "pass a bundled target name or the path to an existing .toml file",
        )
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})", "fix the TOML syntax") from None
    except OSError as exc:
        raise TargetError(
            f"{path}: cannot read ({exc.strerror or exc})", "check the path"
        ) from None
    return _build(str(path), data)
