"""Activation memory: tensor lifetimes, an offset allocator and pool placement.

ST's compiler places every activation buffer, the model's input and output included, in
the target's memory pools; its "internal RAM" figure is what the NPU RAMs and AXISRAM2
hold, and what does not fit spills to external PSRAM. artq does the same with a real
allocator: each buffer lives from the step that writes it to the last step that reads it;
buffers are placed largest first, each at the lowest offset of the first pool where it
overlaps no live buffer (first fit over an offset-sorted list). A pool's use is the end of
its highest buffer. Views (RESHAPE and friends) share their input's buffer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    """One activation buffer and the steps during which it must stay intact."""

    id: int
    name: str
    size: int
    #: First step that writes it (0 for model inputs) and last step that reads it.
    start: int
    end: int

    def overlaps(self, other: Buffer) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass(frozen=True)
class Allocation:
    buffer: Buffer
    pool: str
    offset: int

    @property
    def end_offset(self) -> int:
        return self.offset + self.buffer.size


@dataclass(frozen=True)
class PoolSpec:
    name: str
    capacity: int
    internal: bool = True


@dataclass(frozen=True)
class PoolUse:
    name: str
    internal: bool
    capacity: int
    used: int
    buffers: int

    @property
    def over_budget(self) -> bool:
        return self.used > self.capacity

    @property
    def pct(self) -> float:
        return 100.0 * self.used / self.capacity if self.capacity else 0.0


@dataclass(frozen=True)
class MemoryPlan:
    allocations: tuple[Allocation, ...]
    pools: tuple[PoolUse, ...]
    #: Largest sum of sizes of buffers alive at one step (a lower bound for any allocator).
    peak_live: int

    @property
    def internal_bytes(self) -> int:
        return sum(p.used for p in self.pools if p.internal)

    @property
    def external_bytes(self) -> int:
        return sum(p.used for p in self.pools if not p.internal)

    def pool_of(self, buffer_id: int) -> str | None:
        for a in self.allocations:
            if a.buffer.id == buffer_id:
                return a.pool
        return None


def _align(x: int, alignment: int) -> int:
    return -(-x // alignment) * alignment


def lifetimes(
    steps: Sequence[tuple[Iterable[int], Iterable[int]]],
    sizes: dict[int, int],
    names: dict[int, str] | None = None,
    graph_inputs: Iterable[int] = (),
    graph_outputs: Iterable[int] = (),
    aliases: dict[int, int] | None = None,
) -> list[Buffer]:
    """Buffers with their live ranges from an ordered list of (inputs, outputs) steps.

    ``sizes`` names the tensors that need a buffer (constants are left out by the caller).
    Graph inputs are live from step 0, graph outputs to the last step. ``aliases`` maps a
    tensor to the tensor whose buffer it shares (a view to its input).
    """
    aliases = aliases or {}
    names = names or {}

    def root(t: int) -> int:
        seen = 0
        while t in aliases and seen < 1000:
            t = aliases[t]
            seen += 1
        return t

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}

    def touch(t: int, step: int) -> None:
        if t not in sizes:
            return
        r = root(t)
        first[r] = min(first.get(r, step), step)
        last[r] = max(last.get(r, step), step)
        size[r] = max(size.get(r, 0), sizes[t])

    n = len(steps)
    for t in graph_inputs:
        touch(t, 0)
    for i, (ins, outs) in enumerate(steps):
        for t in ins:
            touch(t, i)
        for t in outs:
            touch(t, i)
    for t in graph_outputs:
        touch(t, max(n - 1, 0))
    return [
        Buffer(r, names.get(r, str(r)), size[r], first[r], last[r])
        for r in sorted(first, key=lambda r: (first[r], r))
    ]


def allocate(
    buffers: Sequence[Buffer], pools: Sequence[PoolSpec], alignment: int = 1
) -> MemoryPlan:
    """Place buffers largest first, first fit by offset, pools in the given order.

    A buffer that fits in no pool goes to the last pool anyway, which then reads as over
    budget (the report warns).
    """
    if not pools:
        raise ValueError("allocate needs at least one pool")
    placed: dict[str, list[Allocation]] = {p.name: [] for p in pools}
    out: list[Allocation] = []
    order = sorted(buffers, key=lambda b: (-b.size, b.start, b.id))
    for b in order:
        chosen: Allocation | None = None
        for pool in pools:
            offset = _first_fit(b, placed[pool.name], alignment)
            if offset + b.size <= pool.capacity:
                chosen = Allocation(b, pool.name, offset)
                break
        if chosen is None:
            last = pools[-1]
            chosen = Allocation(b, last.name, _first_fit(b, placed[last.name], alignment))
        placed[chosen.pool].append(chosen)
        out.append(chosen)
    uses = tuple(
        PoolUse(
            p.name,
            p.internal,
            p.capacity,
            max((a.end_offset for a in placed[p.name]), default=0),
            len(placed[p.name]),
        )
        for p in pools
    )
    return MemoryPlan(tuple(sorted(out, key=lambda a: a.buffer.id)), uses, peak_live(buffers))


def _first_fit(b: Buffer, allocs: list[Allocation], alignment: int) -> int:
    """Lowest aligned offset where ``b`` overlaps no allocation alive at the same time."""
    live = sorted((a for a in allocs if a.buffer.overlaps(b)), key=lambda a: a.offset)
    offset = 0
    for a in live:
        if offset + b.size <= a.offset:
            break
        offset = max(offset, _align(a.end_offset, alignment))
    return offset


def peak_live(buffers: Sequence[Buffer]) -> int:
    """Largest total size of buffers alive at the same step."""
    if not buffers:
        return 0
    steps = range(min(b.start for b in buffers), max(b.end for b in buffers) + 1)
    return max(sum(b.size for b in buffers if b.start <= s <= b.end) for s in steps)
