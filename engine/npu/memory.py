"""Activation memory: tensor lifetimes, an offset allocator and pool placement.

ST's compiler places every activation buffer, the model's input and output included, in
the target's memory pools; its "internal RAM" figure is what the NPU RAMs and AXISRAM2
hold, and what does not fit spills to external PSRAM. artq does the same with a real
allocator: each buffer lives from the step that writes it to the last step that reads it;
buffers are placed largest first, each at the lowest offset of the first pool where it
overlaps no live buffer (first fit over an offset-sorted list). A pool's use is the end of
its highest buffer. Views (RESHAPE and friends) share their input's buffer.

A buffer too big for any single pool of a speed class spans pools whose address ranges
touch (AXISRAM3..6 are contiguous, and AXISRAM2 ends where AXISRAM3 starts): ST's compiler
joins such pools into virtual pools ([ST] ``--enable-virtual-mem-pools`` in the Neural-ART
compiler primer's recommended options; [3P] compile outputs list a merged pool
``cpuRAM2_npuRAM3_npuRAM4_npuRAM5_npuRAM6`` spanning 0x34100000-0x343C0000). Which spans
come first is artq's inference [I]: the fast NPU RAMs joined together before the slower
AXISRAM2 alone, then spans across speed classes, then external memory.
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
    #: The pool where the buffer starts, and its offset from that pool's start.
    pool: str
    offset: int
    #: Every pool the buffer covers, in address order (more than one for a spanning buffer).
    pools: tuple[str, ...] = ()

    @property
    def end_offset(self) -> int:
        return self.offset + self.buffer.size


@dataclass(frozen=True)
class PoolSpec:
    name: str
    capacity: int
    internal: bool = True
    #: Start address. Pools whose ranges touch can hold one buffer across both; None
    #: (unknown) never touches another pool.
    address: int | None = None
    #: Bus cycles per NPU cycle; consecutive pools with the same ratio form a speed class.
    freq_ratio: float = 1.0


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
    in_place: Iterable[tuple[int, int]] = (),
) -> list[Buffer]:
    """Buffers with their live ranges from an ordered list of (inputs, outputs) steps.

    ``sizes`` names the tensors that need a buffer (constants are left out by the caller).
    Graph inputs are live from step 0, graph outputs to the last step. ``aliases`` maps a
    tensor to the tensor whose buffer it shares (a view to its input).

    ``in_place`` lists ``(step, tensor)`` pairs where ``tensor`` is converted in place into
    a larger copy that ``step`` holds (an int8 tensor expanded to the float32 copy a
    software-float layer reads, or the float32 result compacted into its int8 output). At
    that step the tensor's bytes are part of the copy, so its own buffer is not alive
    there, and a use after the step reads it re-created in place (re-quantized). Each
    stretch of uses between conversions is its own buffer: the first keeps the tensor's
    id, later ones take new ids above every id in ``sizes``.
    """
    aliases = aliases or {}
    names = names or {}

    def root(t: int) -> int:
        seen = 0
        while t in aliases and seen < 1000:
            t = aliases[t]
            seen += 1
        return t

    touches: dict[int, list[int]] = {}
    size: dict[int, int] = {}

    def touch(t: int, step: int) -> None:
        if t not in sizes:
            return
        r = root(t)
        touches.setdefault(r, []).append(step)
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

    converted: dict[int, set[int]] = {}
    for step, t in in_place:
        if t in sizes:
            converted.setdefault(root(t), set()).add(step)
    next_id = max((*sizes, *touches), default=-1) + 1
    out: list[Buffer] = []
    for r, steps_r in touches.items():
        cuts = converted.get(r, set())
        # Split the tensor's uses at each in-place conversion: one buffer per stretch.
        segments: list[list[int]] = [[]]
        for s in sorted(steps_r):
            if s in cuts:
                if segments[-1]:
                    segments.append([])
                continue
            if segments[-1] and any(segments[-1][-1] < c < s for c in cuts):
                segments.append([])
            segments[-1].append(s)
        name = names.get(r, str(r))
        for k, seg in enumerate(x for x in segments if x):
            if k == 0:
                out.append(Buffer(r, name, size[r], seg[0], seg[-1]))
            else:
                out.append(Buffer(next_id, f"{name} (re-quantized)", size[r], seg[0], seg[-1]))
                next_id += 1
    return sorted(out, key=lambda b: (b.start, b.id))


def allocate(
    buffers: Sequence[Buffer], pools: Sequence[PoolSpec], alignment: int = 1
) -> MemoryPlan:
    """Place buffers largest first, first fit by offset, pools in the order of
    :func:`placement_order` (the given order, with spans of touching pools where a buffer
    fits no single pool).

    A buffer that fits nowhere goes to the last pool anyway, which then reads as over
    budget (the report warns).
    """
    if not pools:
        raise ValueError("allocate needs at least one pool")
    base = _bases(pools)
    candidates = placement_order(pools)
    placed: list[tuple[Allocation, int]] = []  # with the absolute start of each
    order = sorted(buffers, key=lambda b: (-b.size, b.start, b.id))
    for b in order:
        chosen: tuple[Allocation, int] | None = None
        for cand in candidates:
            lo = base[cand[0]]
            hi = base[cand[-1]] + pools[cand[-1]].capacity
            live = sorted(
                (start - lo, start - lo + a.buffer.size)
                for a, start in placed
                if a.buffer.overlaps(b) and start < hi and start + a.buffer.size > lo
            )
            offset = _first_fit(b.size, live, alignment)
            if offset + b.size <= hi - lo:
                start = lo + offset
                covered = [
                    i
                    for i in cand
                    if base[i] < start + b.size and start < base[i] + pools[i].capacity
                ] or [cand[0]]
                names = tuple(pools[i].name for i in covered)
                chosen = (Allocation(b, names[0], start - base[covered[0]], names), start)
                break
        if chosen is None:
            last = len(pools) - 1
            lo = base[last]
            live = sorted(
                (start - lo, start - lo + a.buffer.size)
                for a, start in placed
                if a.buffer.overlaps(b) and pools[last].name in a.pools
            )
            offset = _first_fit(b.size, live, alignment)
            chosen = (Allocation(b, pools[last].name, offset, (pools[last].name,)), lo + offset)
        placed.append(chosen)
    uses = []
    for i, p in enumerate(pools):
        ends = []
        for a, start in placed:
            if p.name not in a.pools:
                continue
            end = start + a.buffer.size - base[i]
            # A spanning buffer uses this pool up to its end, the rest is the next pool's.
            ends.append(min(end, p.capacity) if a.pools[-1] != p.name else end)
        uses.append(PoolUse(p.name, p.internal, p.capacity, max(ends, default=0), len(ends)))
    out = tuple(sorted((a for a, _ in placed), key=lambda a: a.buffer.id))
    return MemoryPlan(out, tuple(uses), peak_live(buffers))


def _bases(pools: Sequence[PoolSpec]) -> list[int]:
    """Start address of each pool; pools of unknown address get ranges far from any other."""
    return [
        p.address if p.address is not None else (1 << 62) + i * (1 << 48)
        for i, p in enumerate(pools)
    ]


def placement_order(pools: Sequence[PoolSpec]) -> list[tuple[int, ...]]:
    """Where a buffer may go, in the order tried, as tuples of pool indices.

    Internal speed classes in their given order (consecutive pools of one freq ratio; for
    the STM32N6570-DK: npuRAM3..6, then cpuRAM2), each as its single pools in the given
    order and then its spans of touching pools (shortest first, lowest address first);
    then internal spans across classes; then the external pools the same way.
    """
    base = _bases(pools)
    classes: list[list[int]] = []
    for i, p in enumerate(pools):
        prev = pools[classes[-1][-1]] if classes else None
        if prev is not None and (prev.internal, prev.freq_ratio) == (p.internal, p.freq_ratio):
            classes[-1].append(i)
        else:
            classes.append([i])

    def spans(members: Sequence[int]) -> list[tuple[int, ...]]:
        by_addr = sorted(members, key=lambda i: base[i])
        runs: list[list[int]] = []
        for i in by_addr:
            if runs and base[runs[-1][-1]] + pools[runs[-1][-1]].capacity == base[i]:
                runs[-1].append(i)
            else:
                runs.append([i])
        found = [
            tuple(run[k : k + n])
            for run in runs
            for n in range(2, len(run) + 1)
            for k in range(len(run) - n + 1)
        ]
        return sorted(found, key=lambda c: (len(c), base[c[0]]))

    out: list[tuple[int, ...]] = []
    for internal in (True, False):
        mine = [c for c in classes if pools[c[0]].internal == internal]
        for c in mine:
            out += [(i,) for i in c] + spans(c)
        out += [s for s in spans([i for c in mine for i in c]) if s not in out]
    return out


def _first_fit(size: int, live: Sequence[tuple[int, int]], alignment: int) -> int:
    """Lowest aligned offset where ``size`` bytes overlap none of the ``live`` (start, end)
    ranges (sorted by start) of buffers alive at the same time."""
    offset = 0
    for start, end in live:
        if offset + size <= start:
            break
        offset = max(offset, _align(end, alignment))
    return offset


def peak_live(buffers: Sequence[Buffer]) -> int:
    """Largest total size of buffers alive at the same step."""
    if not buffers:
        return 0
    steps = range(min(b.start for b in buffers), max(b.end for b in buffers) + 1)
    return max(sum(b.size for b in buffers if b.start <= s <= b.end) for s in steps)
