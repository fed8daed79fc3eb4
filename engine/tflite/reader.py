"""Read a ``.tflite`` flatbuffer into frozen dataclasses, without importing TensorFlow.

The parse goes through the flatbuffers runtime and the TFLite schema that ``ai-edge-litert``
ships (``ai_edge_litert.schema_py_generated``), using its accessor API rather than its
object API: the object API copies every constant buffer into Python lists, which costs
seconds on a megabyte model, while the accessors read buffer *sizes* without touching data.

A file that is too short, lacks the ``TFL3`` identifier, points outside itself or fails
anywhere in the parse raises :class:`~engine.errors.TFLiteReadError`. Numeric vectors are
decoded in one bounds-checked call, and every table count is checked against the file
size before it is looped over, so a corrupt length cannot make us spin.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import replace
from types import MappingProxyType
from typing import Any

# The schema module imports flatbuffers, and flatbuffers imports numpy (~0.2 s); both are
# light next to TensorFlow.
from ai_edge_litert import schema_py_generated as _fb

from ..errors import TFLiteReadError
from .model import Model, Operator, Quantization, SignatureDef, Subgraph, Tensor

# The model types are re-exported: callers that read a file get its types from one place.
__all__ = [
    "BUILTIN_NAMES",
    "Model",
    "Operator",
    "Quantization",
    "SignatureDef",
    "Subgraph",
    "Tensor",
    "read_model",
    "read_model_bytes",
]


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


BUILTIN_NAMES: dict[int, str] = _enum_names(_fb.BuiltinOperator)
_OPTION_NAMES: dict[int, str] = _enum_names(_fb.BuiltinOptions)
_OPTION2_NAMES: dict[int, str] = _enum_names(_fb.BuiltinOptions2)
_TYPE_NAMES: dict[int, str] = {k: v.lower() for k, v in _enum_names(_fb.TensorType).items()}
_PADDING = _enum_names(_fb.Padding)
_ACTIVATION = _enum_names(_fb.ActivationFunctionType)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


# ----------------------------------------------------------------------------- parsing


class _Corrupt(Exception):
    """Raised inside the parse; turned into TFLiteReadError with the path."""


class _Budget:
    """Caps the number of tables visited, so a forged vector length cannot spin the parse.

    A real file stores each table at least 4 bytes apart, so ``len(buf) / 4`` bounds the
    count of tables it can hold.
    """

    def __init__(self, size: int) -> None:
        self.left = size // 4 + 64
        self.size = size

    def count(self, n: int, what: str) -> int:
        if n < 0 or n * 4 > self.size:
            raise _Corrupt(f"{what} count {n} does not fit in a {self.size}-byte file")
        self.left -= n
        if self.left < 0:
            raise _Corrupt("more tables than the file can hold")
        return n


# vtable slots of the numeric vectors read in bulk, as in schema_py_generated (each
# generated ``XxxAsNumpy`` accessor reads ``self._tab.Offset(slot)``); a test checks them
# against those accessors.
SLOT_TENSOR_SHAPE = 4
SLOT_TENSOR_SHAPE_SIGNATURE = 18
SLOT_QUANT_SCALE = 8
SLOT_QUANT_ZERO_POINT = 10
SLOT_OPERATOR_INPUTS = 6
SLOT_OPERATOR_OUTPUTS = 8
SLOT_OPERATOR_INTERMEDIATES = 20
SLOT_SUBGRAPH_INPUTS = 6
SLOT_SUBGRAPH_OUTPUTS = 8


def _vec(obj: Any, slot: int, code: str) -> tuple[Any, ...] | None:
    """A numeric vector field decoded in one call (None when the field is absent).

    The flatbuffers table API locates the vector; ``struct`` decodes its little-endian
    elements at once, as the runtime's own scalar getters do one at a time. A length that
    runs past the buffer raises struct.error, which the parse reports as corruption.
    """
    tab = obj._tab
    o = tab.Offset(slot)
    if o == 0:
        return None
    n = tab.VectorLen(o)
    if n == 0:
        return ()
    return struct.unpack_from(f"<{n}{code}", tab.Bytes, tab.Vector(o))


def _ints(obj: Any, slot: int) -> tuple[int, ...]:
    return _vec(obj, slot, "i") or ()


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", errors="replace") if raw else ""


def _options(union_names: dict[int, str], kind: int, table: Any) -> dict[str, Any]:
    """An options table as a dict, read through its generated accessors.

    The field names come from the object-API class (``Conv2DOptionsT()``); the values from
    the accessor of each (``StrideH()``), short vectors through ``X(j)`` and ``XLength()``.
    """
    name = union_names.get(kind)
    if not name or table is None:
        return {}
    reader_cls = getattr(_fb, name, None)
    obj_cls = getattr(_fb, name + "T", None)
    if reader_cls is None or obj_cls is None:
        return {}
    reader = reader_cls()
    reader.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for key in vars(obj_cls()):
        acc = key[0].upper() + key[1:]
        get = getattr(reader, acc, None)
        if get is None:
            continue
        length = getattr(reader, acc + "Length", None)
        if length is not None:
            n = length()
            if n * 4 > len(table.Bytes):
                raise _Corrupt(f"{name}.{key} length {n} does not fit in the file")
            value: Any = tuple(get(j) for j in range(n))
        else:
            try:
                value = get()
            except TypeError:
                continue  # an accessor that needs arguments: a nested table vector
        if isinstance(value, bytes):
            value = _text(value)
        elif value is not None and not isinstance(value, int | float | bool | str | tuple):
            continue  # nested tables (StableHLO only): not needed for placement
        out[_snake(key)] = value
    if "padding" in out:
        out["padding"] = _PADDING.get(out["padding"], str(out["padding"]))
    if "fused_activation_function" in out:
        fa = out["fused_activation_function"]
        out["fused_activation_function"] = _ACTIVATION.get(fa, str(fa))
    return out


def _quantization(q: Any) -> Quantization | None:
    if q is None:
        return None
    scales = _vec(q, SLOT_QUANT_SCALE, "f")
    if not scales:
        return None
    zps = _vec(q, SLOT_QUANT_ZERO_POINT, "q") or ()
    return Quantization(scales, zps, int(q.QuantizedDimension()))


def _parse(path: str, buf: bytes) -> Model:
    size = len(buf)
    if size < 8:
        raise _Corrupt(f"file is {size} bytes, too short to be a TFLite model")
    ident = buf[4:8]
    if ident != b"TFL3":
        shown = ident.decode("ascii", errors="replace") if ident.isascii() else ident.hex()
        raise _Corrupt(f"not a TFLite flatbuffer (file identifier is {shown!r}, expected 'TFL3')")
    (root,) = struct.unpack_from("<I", buf, 0)
    if root + 4 > size:
        raise _Corrupt(f"root table offset {root} points past the end of the {size}-byte file")

    budget = _Budget(size)
    m = _fb.Model.GetRootAs(buf, 0)

    # Buffers: sizes only (DataLength reads the length word, not the data).
    buffer_spans: list[tuple[int, int]] = []
    n_buf = budget.count(m.BuffersLength(), "buffer")
    for i in range(n_buf):
        b = m.Buffers(i)
        if b is None:
            buffer_spans.append((0, 0))
            continue
        n = b.DataLength()
        if n:
            start = b._tab.Vector(b._tab.Offset(4))
            if start + n > size:
                raise _Corrupt(f"buffer {i} ({n} bytes) runs past the end of the file")
            buffer_spans.append((start, n))
            continue
        # Models over 2 GB keep buffers after the flatbuffer: offset/size from file start.
        off, length = b.Offset(), b.Size()
        if off > 1 and length:
            if off + length > size:
                raise _Corrupt(
                    f"buffer {i} points at bytes {off}..{off + length}, past the end of the "
                    f"{size}-byte file"
                )
            buffer_spans.append((off, length))
        else:
            buffer_spans.append((0, 0))

    opcodes: list[tuple[str, str | None, int]] = []
    for i in range(budget.count(m.OperatorCodesLength(), "operator code")):
        oc = m.OperatorCodes(i)
        # Codes < 127 live in the deprecated int8 field in older files; take the larger.
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        name = BUILTIN_NAMES.get(code, f"UNKNOWN_{code}")
        custom = _text(oc.CustomCode()) or None
        opcodes.append((name, custom, int(oc.Version())))

    subgraphs: list[Subgraph] = []
    n_sg = budget.count(m.SubgraphsLength(), "subgraph")
    if n_sg == 0:
        raise _Corrupt("the model has no subgraph")
    for si in range(n_sg):
        sg = m.Subgraphs(si)
        tensors: list[Tensor] = []
        for ti in range(budget.count(sg.TensorsLength(), "tensor")):
            t = sg.Tensors(ti)
            shape = _ints(t, SLOT_TENSOR_SHAPE)
            sig = _vec(t, SLOT_TENSOR_SHAPE_SIGNATURE, "i")
            dtype = _TYPE_NAMES.get(int(t.Type()), f"type{t.Type()}")
            bi = int(t.Buffer())
            const_bytes = buffer_spans[bi][1] if 0 < bi < len(buffer_spans) else 0
            external = int(t.ExternalBuffer()) if hasattr(t, "ExternalBuffer") else 0
            is_const = const_bytes > 0 or external != 0
            tensor = Tensor(
                index=ti,
                name=_text(t.Name()),
                shape=shape,
                shape_signature=sig,
                dtype=dtype,
                quantization=_quantization(t.Quantization()),
                buffer=bi,
                is_constant=is_const,
                const_bytes=const_bytes,
                is_variable=bool(t.IsVariable()),
            )
            if external and not const_bytes:
                # Data in a separate file: size it from the shape.
                tensor = replace(tensor, const_bytes=tensor.nbytes)
            tensors.append(tensor)
        n_t = len(tensors)
        operators: list[Operator] = []
        for oi in range(budget.count(sg.OperatorsLength(), "operator")):
            op = sg.Operators(oi)
            idx = int(op.OpcodeIndex())
            if not 0 <= idx < len(opcodes):
                raise _Corrupt(f"operator {oi} uses opcode {idx}, beyond the {len(opcodes)} codes")
            name, custom, version = opcodes[idx]
            ins = _ints(op, SLOT_OPERATOR_INPUTS)
            outs = _ints(op, SLOT_OPERATOR_OUTPUTS)
            for ref in ins + outs:
                if ref >= n_t or ref < -1:
                    raise _Corrupt(f"operator {oi} ({name}) refers to tensor {ref}, beyond {n_t}")
            opts = _options(_OPTION_NAMES, int(op.BuiltinOptionsType()), op.BuiltinOptions())
            if hasattr(op, "BuiltinOptions2Type") and op.BuiltinOptions2Type():
                opts.update(
                    _options(_OPTION2_NAMES, int(op.BuiltinOptions2Type()), op.BuiltinOptions2())
                )
            inter = _ints(op, SLOT_OPERATOR_INTERMEDIATES)
            operators.append(
                Operator(
                    index=oi,
                    opcode=name,
                    custom_code=custom,
                    version=version,
                    inputs=ins,
                    outputs=outs,
                    options=MappingProxyType(opts),
                    intermediates=inter,
                )
            )
        ins = _ints(sg, SLOT_SUBGRAPH_INPUTS)
        outs = _ints(sg, SLOT_SUBGRAPH_OUTPUTS)
        for ref in ins + outs:
            if not 0 <= ref < n_t:
                raise _Corrupt(f"subgraph {si} input/output {ref} is not one of its {n_t} tensors")
        subgraphs.append(
            Subgraph(si, _text(sg.Name()), tuple(tensors), tuple(operators), ins, outs)
        )

    signatures: list[SignatureDef] = []
    for i in range(budget.count(m.SignatureDefsLength(), "signature")):
        s = m.SignatureDefs(i)
        sins = tuple(
            (_text(s.Inputs(j).Name()), int(s.Inputs(j).TensorIndex()))
            for j in range(budget.count(s.InputsLength(), "signature input"))
        )
        souts = tuple(
            (_text(s.Outputs(j).Name()), int(s.Outputs(j).TensorIndex()))
            for j in range(budget.count(s.OutputsLength(), "signature output"))
        )
        signatures.append(
            SignatureDef(_text(s.SignatureKey()), int(s.SubgraphIndex()), sins, souts)
        )

    return Model(
        path=path,
        version=int(m.Version()),
        description=_text(m.Description()),
        subgraphs=tuple(subgraphs),
        signatures=tuple(signatures),
        size_bytes=size,
        buffer_spans=tuple(buffer_spans),
        _data=buf,
    )


def read_model_bytes(buf: bytes, path: str = "<bytes>") -> Model:
    """Parse a TFLite flatbuffer held in memory. ``path`` names it in errors."""
    try:
        return _parse(path, bytes(buf))
    except TFLiteReadError:
        raise
    except _Corrupt as exc:
        raise TFLiteReadError(path, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any slip in a corrupt file is the file's fault
        raise TFLiteReadError(
            path, f"corrupt or truncated TFLite flatbuffer ({type(exc).__name__}: {exc})"
        ) from None


def read_model(path: str | os.PathLike[str]) -> Model:
    """Read a ``.tflite`` file. Raises TFLiteReadError when it is missing or not TFLite."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            buf = fh.read()
    except FileNotFoundError:
        raise TFLiteReadError(p, "no such file") from None
    except IsADirectoryError:
        raise TFLiteReadError(p, "is a folder, not a .tflite file") from None
    except OSError as exc:
        raise TFLiteReadError(p, f"cannot read: {exc.strerror or exc}") from None
    return read_model_bytes(buf, p)
