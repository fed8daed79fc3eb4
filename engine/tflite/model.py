"""The parsed ``.tflite`` model as frozen dataclasses: tensors, operators, subgraphs.

engine.tflite.reader fills them from the flatbuffer; everything downstream (the NPU rules,
the cost model) reads only these types, never the flatbuffer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

__all__ = [
    "DTYPE_BITS",
    "Model",
    "Operator",
    "Quantization",
    "SignatureDef",
    "Subgraph",
    "Tensor",
]

#: Bits per element of each TFLite tensor type (0: not a plain array, e.g. string, resource).
DTYPE_BITS: dict[str, int] = {
    "float32": 32,
    "float16": 16,
    "int32": 32,
    "uint8": 8,
    "int64": 64,
    "string": 0,
    "bool": 8,
    "int16": 16,
    "complex64": 64,
    "int8": 8,
    "float64": 64,
    "complex128": 128,
    "uint64": 64,
    "resource": 0,
    "variant": 0,
    "uint32": 32,
    "uint16": 16,
    "int4": 4,
    "bfloat16": 16,
    "int2": 2,
}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    #: Axis along which per-channel scales apply (TFLite's ``quantized_dimension``).
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    #: Shape with -1 for dimensions unknown at conversion time; None when the file has none.
    shape_signature: tuple[int, ...] | None
    dtype: str
    quantization: Quantization | None
    buffer: int
    #: True when the tensor's data is stored in the file (weights, biases, shape constants).
    is_constant: bool
    #: Bytes of stored data (0 for activations).
    const_bytes: int
    is_variable: bool = False

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(d, 1)
        return n

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes at run time (int4 packed two per byte)."""
        return (self.num_elements * DTYPE_BITS.get(self.dtype, 8) + 7) // 8

    @property
    def is_dynamic(self) -> bool:
        """True when a dimension other than the batch is unknown (-1)."""
        sig = self.shape_signature
        return sig is not None and any(d < 0 for d in sig[1:])

    @property
    def is_float(self) -> bool:
        return self.dtype in ("float32", "float16", "float64", "bfloat16")


@dataclass(frozen=True)
class Operator:
    index: int
    #: Builtin operator name (``CONV_2D``) or ``CUSTOM``.
    opcode: str
    #: Name of a custom operator, else None.
    custom_code: str | None
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    #: Builtin options with snake_case keys; ``padding`` and ``fused_activation_function``
    #: are given by name ("SAME", "RELU6").
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    intermediates: tuple[int, ...] = ()

    @property
    def subgraph_calls(self) -> tuple[tuple[str, int], ...]:
        """The subgraphs this operator runs, as (role, subgraph index): a WHILE's
        ``("cond", 1), ("body", 2)``, an IF's ``then`` and ``else``, a CALL_ONCE's ``init``.

        Read from every option named ``*_subgraph_index`` (or ``*_subgraph_indices``), so
        the StableHLO ops that call subgraphs are covered too.
        """
        calls: list[tuple[str, int]] = []
        for key, value in self.options.items():
            if key.endswith("_subgraph_index") and isinstance(value, int):
                calls.append((key.removesuffix("_subgraph_index"), value))
            elif key.endswith("_subgraph_indices") and isinstance(value, tuple):
                role = key.removesuffix("_subgraph_indices")
                calls.extend((f"{role} {j}", int(v)) for j, v in enumerate(value))
            elif key == "subgraph" and self.opcode == "CALL" and isinstance(value, int):
                calls.append(("call", value))
        return tuple(calls)


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class SignatureDef:
    key: str
    subgraph_index: int
    #: (signature name, tensor index) pairs.
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Model:
    path: str
    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    signatures: tuple[SignatureDef, ...]
    size_bytes: int
    #: (start, length) in the file of each buffer's data; (0, 0) when empty.
    buffer_spans: tuple[tuple[int, int], ...] = field(repr=False, default=())
    _data: bytes = field(repr=False, compare=False, default=b"")

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        sg = self.main
        return tuple(sg.tensors[i] for i in sg.inputs)

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        sg = self.main
        return tuple(sg.tensors[i] for i in sg.outputs)

    @cached_property
    def constant_bytes(self) -> int:
        """Bytes of constant data of the main subgraph, each buffer counted once."""
        seen: set[int] = set()
        total = 0
        for t in self.main.tensors:
            if t.is_constant and t.buffer not in seen:
                seen.add(t.buffer)
                total += t.const_bytes
        return total

    def buffer_data(self, tensor: Tensor) -> memoryview:
        """The stored bytes of a constant tensor (a view, no copy)."""
        if not 0 <= tensor.buffer < len(self.buffer_spans):
            return memoryview(b"")
        start, length = self.buffer_spans[tensor.buffer]
        return memoryview(self._data)[start : start + length]
