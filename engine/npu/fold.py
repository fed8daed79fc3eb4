"""Phase 1, folding: operators that are constant once shapes are static become constants.

ST's compiler sees static shapes (an unknown batch is taken as 1), so the SHAPE →
STRIDED_SLICE → PACK → RESHAPE chains that a dynamic batch leaves in TFLite files fold to
constants before placement. [I]
"""

from __future__ import annotations

from dataclasses import dataclass

from ..tflite.model import Model, Operator

#: Ops never folded although their inputs are constant (state or randomness).
_NO_FOLD = frozenset(
    {
        "RANDOM_UNIFORM",
        "RANDOM_STANDARD_NORMAL",
        "MULTINOMIAL",
        "VAR_HANDLE",
        "READ_VARIABLE",
        "ASSIGN_VARIABLE",
        "CALL_ONCE",
        "WHILE",
        "IF",
        "CUSTOM",
    }
)


@dataclass(frozen=True)
class Folding:
    #: Tensor indices constant at compile time: stored, or outputs of folded operators.
    constants: frozenset[int]
    folded: tuple[Operator, ...]
    #: The operators left to place, in run order: the model's layers.
    kept: tuple[Operator, ...]

    def producers(self) -> dict[int, Operator]:
        """The folded operator that makes each folded tensor."""
        return {o: op for op in self.folded for o in op.outputs}


def fold(model: Model) -> Folding:
    """Fold operators whose inputs are all constant, and SHAPE of a static tensor."""
    sg = model.main
    constants = {t.index for t in sg.tensors if t.is_constant}
    folded: list[Operator] = []
    kept: list[Operator] = []
    for op in sg.operators:
        ins = [i for i in op.inputs if i >= 0]
        foldable = (
            op.opcode not in _NO_FOLD
            and bool(op.outputs)
            and (
                (op.opcode == "SHAPE" and ins and not sg.tensors[ins[0]].is_dynamic)
                or (ins and all(i in constants for i in ins))
            )
        )
        if foldable:
            folded.append(op)
            constants.update(op.outputs)
        else:
            kept.append(op)
    return Folding(frozenset(constants), tuple(folded), tuple(kept))
