"""Read a ``.tflite`` flatbuffer into frozen dataclasses, without importing TensorFlow.

The parse goes through the flatbuffers runtime and the TFLite schema that ``ai-edge-litert``
ships (``ai_edge_litert.schema_py_generated``), using its accessor API rather than its
object API: the object API copies every constant buffer into Python lists, which costs
seconds on a megabyte model, while the accessors read buffer *sizes* without touching data.

A file that is too short, lacks the ``TFL3`` identifier, points outside itself or fails
anywhere in the parse raises :class:`~engine.errors.TFLiteReadError`, whose one line names
the table being read and its byte offset, never the flatbuffers runtime's own words.
Numeric vectors are decoded in one bounds-checked call, and every table count is checked
against the file size before it is looped over, so a corrupt length cannot make us spin.
Every index the file holds (opcode, tensor, buffer, subgraph) is checked before it is
followed, and validate.py checks the structure the analysis relies on (operator arity,
control-flow calls, signatures), so a model that reads is one the analysis can walk.
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
from .validate import problem

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


class _Where:
    """The table the parse is reading, to say where a corrupt file went wrong."""

    def __init__(self) -> None:
        self.what = "the model table"
        self.pos = 0

    def at(self, what: str, obj: Any) -> None:
        self.what = what
        self.pos = int(obj._tab.Pos) if obj is not None else self.pos


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


#: The largest tensor, bytes, that a 64-bit size can count.
_MAX_BYTES = 2**63 - 1

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
    elements at once, as the runtime's own scalar getters do one at a time.
    """
    tab = obj._tab
    o = tab.Offset(slot)
    if o == 0:
        return None
    n = tab.VectorLen(o)
    if n == 0:
        return ()
    start, size = tab.Vector(o), len(tab.Bytes)
    if start + n * struct.calcsize(code) > size:
        raise _Corrupt(
            f"truncated or corrupt at byte {start}: a vector of {n} values there runs past "
            f"the end of the {size}-byte file"
        )
    return struct.unpack_from(f"<{n}{code}", tab.Bytes, start)


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


def _parse(path: str, buf: bytes, where: _Where) -> Model:
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
    where.at("the model table", m)

    # Buffers: sizes only (DataLength reads the length word, not the data).
    buffer_spans: list[tuple[int, int]] = []
    n_buf = budget.count(m.BuffersLength(), "buffer")
    for i in range(n_buf):
        where.what = f"buffer {i}"
        b = m.Buffers(i)
        where.at(f"buffer {i}", b)
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
        where.what = f"operator code {i}"
        oc = m.OperatorCodes(i)
        where.at(f"operator code {i}", oc)
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
        where.what = f"subgraph {si}"
        sg = m.Subgraphs(si)
        where.at(f"subgraph {si}", sg)
        tensors: list[Tensor] = []
        for ti in range(budget.count(sg.TensorsLength(), "tensor")):
            where.what = f"subgraph {si}, tensor {ti}"
            t = sg.Tensors(ti)
            where.at(f"subgraph {si}, tensor {ti}", t)
            shape = _ints(t, SLOT_TENSOR_SHAPE)
            sig = _vec(t, SLOT_TENSOR_SHAPE_SIGNATURE, "i")
            dtype = _TYPE_NAMES.get(int(t.Type()), f"type{t.Type()}")
            bi = int(t.Buffer())
            if bi >= n_buf:
                raise _Corrupt(
                    f"subgraph {si}, tensor {ti} uses buffer {bi}, but the file has "
                    f"{n_buf} buffers"
                )
            const_bytes = buffer_spans[bi][1] if bi > 0 else 0
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
            if tensor.nbytes > _MAX_BYTES:
                # TFLite counts bytes in a size_t and refuses a shape that overflows it.
                raise _Corrupt(
                    f"subgraph {si}, tensor {ti} has shape {list(shape)}: more bytes than a "
                    "64-bit size can count"
                )
            if external and not const_bytes:
                # Data in a separate file: size it from the shape.
                tensor = replace(tensor, const_bytes=tensor.nbytes)
            tensors.append(tensor)
        n_t = len(tensors)
        operators: list[Operator] = []
        for oi in range(budget.count(sg.OperatorsLength(), "operator")):
            where.what = f"subgraph {si}, operator {oi}"
            op = sg.Operators(oi)
            where.at(f"subgraph {si}, operator {oi}", op)
            idx = int(op.OpcodeIndex())
            at = f"subgraph {si}, operator {oi}" if si else f"operator {oi}"
            if not 0 <= idx < len(opcodes):
                raise _Corrupt(f"{at} uses opcode {idx}, beyond the {len(opcodes)} codes")
            name, custom, version = opcodes[idx]
            ins = _ints(op, SLOT_OPERATOR_INPUTS)
            outs = _ints(op, SLOT_OPERATOR_OUTPUTS)
            inter = _ints(op, SLOT_OPERATOR_INTERMEDIATES)
            for ref in ins + outs + inter:
                if ref >= n_t or ref < -1:
                    raise _Corrupt(
                        f"{at} ({name}) refers to tensor {ref}, but the subgraph has {n_t} tensors"
                    )
            opts = _options(_OPTION_NAMES, int(op.BuiltinOptionsType()), op.BuiltinOptions())
            if hasattr(op, "BuiltinOptions2Type") and op.BuiltinOptions2Type():
                opts.update(
                    _options(_OPTION2_NAMES, int(op.BuiltinOptions2Type()), op.BuiltinOptions2())
                )
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
        where.what = f"signature {i}"
        s = m.SignatureDefs(i)
        where.at(f"signature {i}", s)
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

    model = Model(
        path=path,
        version=int(m.Version()),
        description=_text(m.Description()),
        subgraphs=tuple(subgraphs),
        signatures=tuple(signatures),
        size_bytes=size,
        buffer_spans=tuple(buffer_spans),
        _data=buf,
    )
    found = problem(model)
    if found:
        raise _Corrupt(found)
    return model


def read_model_bytes(buf: bytes, path: str = "<bytes>") -> Model:
    """Parse a TFLite flatbuffer held in memory. ``path`` names it in errors."""
    where = _Where()
    data = bytes(buf)
    try:
        return _parse(path, data, where)
    except TFLiteReadError:
        raise
    except _Corrupt as exc:
        raise TFLiteReadError(path, str(exc)) from None
    except Exception:  # noqa: BLE001 - any slip in a corrupt file is the file's fault
        # The runtime's own words (struct's "unpack_from requires a buffer of ...") say
        # nothing to a user; where the parse was does.
        size = len(data)
        detail = (
            f": {where.what} is at byte {where.pos}, past the end of the {size}-byte file"
            if where.pos >= size
            else f" at byte {where.pos} ({where.what}): an offset there points outside the "
            f"{size}-byte file"
        )
        raise TFLiteReadError(path, f"truncated or corrupt{detail}") from None


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
