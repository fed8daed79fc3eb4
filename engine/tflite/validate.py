"""Structural checks on a parsed model: what a corrupt file can get wrong although every
table in it could be read.

The reader parses tables and bounds-checks the indices it follows itself (opcodes, tensors,
buffers); this module checks what the analysis relies on later: each operator has the
inputs and outputs its kind cannot do without, control-flow operators run subgraphs that
exist and never run themselves, and signatures name tensors that exist. TFLite's own
interpreter refuses the same files (``InterpreterBuilder`` and each kernel's ``Prepare``).
"""

from __future__ import annotations

from .model import Model, Operator, Subgraph

__all__ = ["problem"]

#: Inputs (by position, none of them -1) without which an operator cannot run, where it is
#: more than one; TFLite's kernels check the same counts. Other builtins need input 0.
REQUIRED_INPUTS: dict[str, int] = {
    "CONV_2D": 2,
    "DEPTHWISE_CONV_2D": 2,
    "FULLY_CONNECTED": 2,
    "TRANSPOSE_CONV": 3,
    "BATCH_MATMUL": 2,
    "ADD": 2,
    "SUB": 2,
    "MUL": 2,
    "DIV": 2,
    "MAXIMUM": 2,
    "MINIMUM": 2,
    "SQUARED_DIFFERENCE": 2,
    "PRELU": 2,
    "MEAN": 2,
    "SUM": 2,
    "REDUCE_MAX": 2,
    "REDUCE_MIN": 2,
    "REDUCE_PROD": 2,
    "PAD": 2,
    "PADV2": 2,
    "TRANSPOSE": 2,
    "GATHER": 2,
    "SLICE": 3,
    "STRIDED_SLICE": 4,
}

#: Operators whose arity is their own: custom ones, delegated partitions, calls. Builtins
#: newer than the schema (read as UNKNOWN_<code>) are treated alike.
_OWN_ARITY = frozenset({"CUSTOM", "DELEGATE", "CALL", "STABLEHLO_CUSTOM_CALL"})
#: Builtins that may take no input: they make a resource or a sequence, run an init
#: subgraph, or loop over no variables.
NO_INPUTS_OK = _OWN_ARITY | {"VAR_HANDLE", "HASHTABLE", "CALL_ONCE", "WHILE", "STABLEHLO_IOTA"}
#: Builtins that may have no output: they write a variable or a table, or run a subgraph
#: for its effects.
NO_OUTPUTS_OK = _OWN_ARITY | {"ASSIGN_VARIABLE", "HASHTABLE_IMPORT", "CALL_ONCE", "WHILE", "IF"}


def _name(sg: Subgraph, op: Operator) -> str:
    where = f"subgraph {sg.index}, " if sg.index else ""
    return f"{where}operator {op.index} ({op.opcode})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _operator_problem(sg: Subgraph, op: Operator) -> str | None:
    # An empty (-1) output is refused whatever the operator: the analysis sizes and places
    # every output, and no converter writes one.
    for pos, ref in enumerate(op.outputs):
        if ref < 0:
            return f"{_name(sg, op)} output {pos} is empty (-1): every output must be a tensor"
    if op.opcode.startswith("UNKNOWN_"):
        return None  # a builtin newer than the schema: its arity is not known here
    need = REQUIRED_INPUTS.get(op.opcode, 0 if op.opcode in NO_INPUTS_OK else 1)
    if len(op.inputs) < need:
        have = f"has {_plural(len(op.inputs), 'input')}" if op.inputs else "has no input"
        return f"{_name(sg, op)} {have}; {op.opcode} needs at least {need}"
    for pos in range(need):
        if op.inputs[pos] < 0:
            return f"{_name(sg, op)} input {pos} is empty (-1); {op.opcode} needs it"
    if not op.outputs and op.opcode not in NO_OUTPUTS_OK:
        return f"{_name(sg, op)} has no output"
    return None


def _call_problem(model: Model) -> str | None:
    """Subgraph indices in range, and no subgraph that runs itself, directly or not."""
    n = len(model.subgraphs)
    calls: dict[int, list[tuple[int, Operator, str]]] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            for role, idx in op.subgraph_calls:
                if not 0 <= idx < n:
                    return (
                        f"{_name(sg, op)} runs subgraph {idx} as its {role}, but the file has "
                        f"{_plural(n, 'subgraph')}"
                    )
                calls.setdefault(sg.index, []).append((idx, op, role))
    # Depth-first search with colours: a grey subgraph met again closes a loop.
    state = [0] * n  # 0 unseen, 1 on the current path, 2 done
    for root in range(n):
        if state[root]:
            continue
        stack = [(root, iter(calls.get(root, ())))]
        state[root] = 1
        while stack:
            si, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[si] = 2
                stack.pop()
                continue
            idx, op, role = nxt
            if state[idx] == 1:
                name = _name(model.subgraphs[si], op)
                if idx == si:
                    return f"{name} runs its own subgraph {si} as its {role}: a loop of calls"
                return (
                    f"{name} runs subgraph {idx} as its {role}, and subgraph {idx} leads back "
                    f"to subgraph {si}: a loop of calls"
                )
            if state[idx] == 0:
                state[idx] = 1
                stack.append((idx, iter(calls.get(idx, ()))))
    return None


def _signature_problem(model: Model) -> str | None:
    n = len(model.subgraphs)
    for s in model.signatures:
        label = f"signature '{s.key}'" if s.key else "a signature"
        if not 0 <= s.subgraph_index < n:
            return (
                f"{label} names subgraph {s.subgraph_index}, but the file has "
                f"{_plural(n, 'subgraph')}"
            )
        n_t = len(model.subgraphs[s.subgraph_index].tensors)
        for name, ref in (*s.inputs, *s.outputs):
            if not 0 <= ref < n_t:
                return (
                    f"{label} maps '{name}' to tensor {ref}, but its subgraph has "
                    f"{_plural(n_t, 'tensor')}"
                )
    return None


def problem(model: Model) -> str | None:
    """The first structural fault of ``model`` in words, or None when it has none."""
    for sg in model.subgraphs:
        for op in sg.operators:
            found = _operator_problem(sg, op)
            if found:
                return found
    return _call_problem(model) or _signature_problem(model)
