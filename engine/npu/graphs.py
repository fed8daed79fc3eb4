"""What the analysis of the main graph does not cover, said rather than ignored: the other
subgraphs a file holds (a WHILE's cond and body, an IF's branches, other signatures'
graphs), and dynamic shapes, whose unknown dimensions the file stores as 1."""

from __future__ import annotations

from ..tflite.model import Model
from .result import DynamicTensor, SubgraphCall, SubgraphReport


def other_subgraphs(model: Model) -> tuple[SubgraphReport, ...]:
    """Every subgraph but the main one, with the operators that run it."""
    calls: dict[int, list[SubgraphCall]] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            for role, idx in op.subgraph_calls:
                calls.setdefault(idx, []).append(SubgraphCall(sg.index, op.index, op.opcode, role))
    signature = {s.subgraph_index: s.key for s in model.signatures}
    return tuple(
        SubgraphReport(
            index=sg.index,
            name=sg.name,
            ops=tuple(
                op.opcode if op.opcode != "CUSTOM" else f"CUSTOM:{op.custom_code or '?'}"
                for op in sg.operators
            ),
            called_by=tuple(calls.get(sg.index, ())),
            signature=signature.get(sg.index, ""),
        )
        for sg in model.subgraphs[1:]
    )


def dynamic_tensors(model: Model) -> tuple[DynamicTensor, ...]:
    """Tensors of the main graph with an unknown dimension besides the batch; graph inputs
    first, as they are what a user can fix at conversion."""
    sg = model.main
    inputs = set(sg.inputs)
    found = [
        DynamicTensor(t.name, tuple(t.shape_signature or ()), t.shape, t.index in inputs)
        for t in sg.tensors
        if t.is_dynamic and not t.is_constant
    ]
    return tuple(sorted(found, key=lambda d: not d.is_input))
