"""Phase 3, memory: the graph's activation buffers, planned into the target's pools.

memory.py is the allocator (lifetimes, first fit, pools in order); this module says which
buffers a placed model has: views share their input's buffer, software-float layers add
float32 copies, and conversions run in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..tflite.model import Model
from .fold import Folding
from .memory import MemoryPlan, PoolSpec, allocate, lifetimes
from .placement import PlacedLayers, float_copies
from .rules import VIEW_OPS
from .targets import Target


@dataclass(frozen=True)
class ActivationPlan:
    plan: MemoryPlan
    #: Per activation tensor, the freq ratio of the pool it sits in.
    pool_ratio: Mapping[int, float]
    #: Per layer (index in run order), the int8 elements it re-quantizes in place for later
    #: readers.
    requantized: Mapping[int, int]


def plan_activations(
    model: Model, folding: Folding, placed: PlacedLayers, target: Target
) -> ActivationPlan:
    """Allocate the activation buffers of the placed layers into the target's pools."""
    views, placements = placed.views, placed.placements
    sg = model.main
    tensors = sg.tensors
    # Views share their input's buffer.
    act_ids = (
        {
            i
            for v in views
            for i in (*v.op.inputs, *v.op.outputs)
            if i >= 0 and i not in folding.constants
        }
        | set(sg.inputs)
        | set(sg.outputs)
    )
    sizes = {i: tensors[i].nbytes for i in act_ids}
    aliases = {
        v.op.outputs[0]: v.op.inputs[0]
        for v, p in zip(views, placements, strict=True)
        if v.opcode in VIEW_OPS
        and p.placement == "NPU"
        and v.op.inputs
        and v.op.outputs
        and v.op.inputs[0] >= 0
        and v.op.inputs[0] not in folding.constants
    }
    steps = [([i for i in v.op.inputs if i >= 0], list(v.op.outputs)) for v in views]
    names = {i: tensors[i].name for i in act_ids}
    # Software-float layers on integer tensors work on float32 copies, live for that step.
    # The conversions run in place: the int8 buffer is expanded into its float32 copy (and
    # the float32 result compacted into its int8 output), so the int8 tensor takes no
    # memory of its own during that step, and a later reader gets it re-quantized in place.
    # [I] from ST's published figures for st_efficientnet_lc_v1 (model zoo README, ST Edge
    # AI 2.0.0): 256 KiB at 128×128 and 784.02 KiB at 224×224 are the float32 copy of the
    # 64×64×16 (112×112×16) map its first global pool reads, plus 16 B, although the int8
    # map (64 / 196 KiB) is read again by the squeeze-and-excite MUL after that pool.
    scratch_id = len(tensors)
    in_place: list[tuple[int, int]] = []
    for step, (v, p) in enumerate(zip(views, placements, strict=True)):
        if p.tier == "SW_FLOAT":
            for t in float_copies(v):
                sizes[scratch_id] = 4 * t.num_elements
                names[scratch_id] = f"float32 copy of {t.name}"
                steps[step][1].append(scratch_id)
                in_place.append((step, t.index))
                scratch_id += 1
    buffers = lifetimes(steps, sizes, names, sg.inputs, sg.outputs, aliases, in_place)
    pools = [
        PoolSpec(p.name, p.size_bytes, p.internal, p.address, p.freq_ratio) for p in target.pools
    ]
    plan: MemoryPlan = allocate(buffers, pools, target.alignment_bytes)
    ratio_of_pool = {p.name: p.freq_ratio for p in target.pools}
    pool_of_root = {a.buffer.id: a.pool for a in plan.allocations}

    def root(i: int) -> int:
        while i in aliases:
            i = aliases[i]
        return i

    pool_ratio = {
        i: ratio_of_pool[pool_of_root[root(i)]] for i in act_ids if root(i) in pool_of_root
    }

    # An int8 input expanded in place and read again later is re-quantized in place after
    # the layer: one more conversion pass over it, per step.
    read_at: dict[int, set[int]] = {}
    for step, (ins, _outs) in enumerate(steps):
        for i in ins:
            read_at.setdefault(root(i), set()).add(step)
    for i in sg.outputs:
        read_at.setdefault(root(i), set()).add(len(steps))
    requantized: dict[int, int] = {}
    for step, t in in_place:
        if t in views[step].op.inputs and any(s > step for s in read_at.get(root(t), ())):
            requantized[step] = requantized.get(step, 0) + tensors[t].num_elements

    return ActivationPlan(plan, pool_ratio, requantized)
