"""Fields of the ONNX protobuf as plain Python: attributes, small constant values, types."""

from __future__ import annotations

import struct
from typing import Any

from ..tflite.model import DTYPE_BITS

DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
          7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32",
          13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16", 21: "uint4",
          22: "int4"}
STRUCT = {1: "f", 2: "B", 3: "b", 4: "H", 5: "h", 6: "i", 7: "q", 9: "?", 11: "d",
           12: "I", 13: "Q"}
#: Elements of a constant whose values the reader decodes (scales, axes, bounds).
MAX_VALUES = 4096
#: AttributeProto type -> the field that holds its value.
ATTR = {1: "f", 2: "i", 3: "s", 4: "t", 6: "floats", 7: "ints", 8: "strings"}


def attrs(node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        field = ATTR.get(a.type)
        if field is None:
            continue
        v = getattr(a, field)
        if field == "s":
            v = v.decode("utf-8", "replace")
        elif field in ("floats", "ints", "strings"):
            v = tuple(v)
        out[a.name] = v
    return out


def values(t: Any) -> tuple[Any, ...] | None:
    """Values of a small constant TensorProto, else None."""
    n = 1
    for d in t.dims:
        n *= d
    code = STRUCT.get(t.data_type)
    if code is None or n > MAX_VALUES:
        return None
    if t.raw_data:
        size = struct.calcsize(code)
        return struct.unpack_from(f"<{n}{code}", t.raw_data) if len(t.raw_data) >= n * size else None
    for field in ("float_data", "int64_data", "double_data", "uint64_data", "int32_data"):
        vals = getattr(t, field)
        if vals:
            return tuple(vals)
    return () if n == 0 else None


def nbytes(dims: tuple[int, ...], dtype: str) -> int:
    n = 1
    for d in dims:
        n *= max(d, 0)
    return (n * DTYPE_BITS.get(dtype, 8) + 7) // 8
