"""Read an ONNX model into the operator view the NPU rule table reads (engine.tflite.model).

Only the ``onnx`` package's protobuf schema is used (engine.onnx.proto): no onnxruntime, no
TensorFlow, no numpy. What the reader does, in order:

1. Shapes from the file's value_info (Q/DQ outputs take their input's shape); when a layer's
   shape is unstated, onnx's shape inference fills it (a slow import, so only then).
2. QDQ folding. A node whose activation inputs all come from DequantizeLinear and whose
   outputs all go to QuantizeLinear only is an integer layer: it reads the int8 tensors
   before the DQs and writes the int8 tensor after its Q, and those Q/DQ nodes disappear
   into it, as ST's compiler fuses them. Weights are the int8 initializers behind their DQs,
   with the DQ's scales, zero points and axis. Any other node is a float layer: the DQs
   before it stay as DEQUANTIZE and the Qs after it as QUANTIZE — the two conversions a
   float island costs. A DQ → Q pair between integer tensors is one int8 requantization.
3. Layout. The NPU keeps feature maps channel-last (ST's compiler converts channel-first
   ONNX graphs), so 4-D activations are laid out NHWC and weights as the rule table's
   kernels hold them (a Conv's [O, I, kh, kw] as [O, kh, kw, I]); element counts, so memory
   and cost, are unchanged. Each layer keeps its ONNX output shape for display.
4. Each node mapped onto a rule-table row by engine.onnx.ops, its ONNX op, node name and
   mapping provenance in the options (``onnx_op``, ``onnx_name``, ``onnx_provenance``).
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import OnnxReadError
from ..tflite.model import Model, Operator, Quantization, Subgraph, Tensor
from . import proto
from .fields import DTYPES, MAX_VALUES, attrs, nbytes, values
from .layout import lay_out
from .ops import Mapped, map_node, provenance

Q, DQ = "QuantizeLinear", "DequantizeLinear"


def read_onnx(path: str | os.PathLike[str]) -> Model:
    """Read a ``.onnx`` file. Raises OnnxReadError when it is missing or not ONNX."""
    p = str(path)
    try:
        data = Path(p).read_bytes()
    except FileNotFoundError:
        raise OnnxReadError(p, "no such file") from None
    except IsADirectoryError:
        raise OnnxReadError(p, "is a folder, not a .onnx file") from None
    except OSError as exc:
        raise OnnxReadError(p, f"cannot read: {exc.strerror or exc}") from None
    return read_onnx_bytes(data, p)


def read_onnx_bytes(data: bytes, path: str = "<bytes>") -> Model:
    """Read an ONNX model from bytes; ``path`` names it in errors and in the result."""
    if not data:
        raise OnnxReadError(path, "empty file, not an ONNX model")
    try:
        mp = proto.parse_model(data)
    except ImportError as exc:
        raise OnnxReadError(path, f"cannot read ONNX: {exc} (pip install onnx)") from None
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and its kin, on any garbage
        raise OnnxReadError(path, "not an ONNX model (the file does not parse as one)") from None
    if not mp.ir_version or not mp.HasField("graph") or not mp.graph.node:
        raise OnnxReadError(path, "not an ONNX model (no IR version or no graph nodes)")
    try:
        return _Builder(mp, path, len(data)).build()
    except OnnxReadError:
        raise
    except (ValueError, KeyError, IndexError, struct.error) as exc:
        raise OnnxReadError(path, f"corrupt or inconsistent graph ({exc})") from None


@dataclass
class _Const:
    dims: tuple[int, ...]
    dtype: str
    values: tuple[Any, ...] | None
    nbytes: int


class _Builder:
    def __init__(self, mp: Any, path: str, size: int) -> None:
        self.mp, self.g, self.path, self.size = mp, mp.graph, path, size
        self.consts: dict[str, _Const] = {}
        for t in self.g.initializer:
            dims, dt = tuple(t.dims), DTYPES.get(t.data_type, "float32")
            self.consts[t.name] = _Const(dims, dt, values(t), nbytes(dims, dt))
        for node in self.g.node:
            if node.op_type == "Constant" and node.output:
                self._constant_node(node)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.types: dict[str, str] = {}
        self._read_shapes(self.g)
        self.nodes = [n for n in self.g.node if n.op_type != "Constant"]
        if not self._shapes_complete():
            self._infer()

    # --------------------------------------------------------------------- facts

    def _constant_node(self, node: Any) -> None:
        a = {x.name: x for x in node.attribute}
        name = node.output[0]
        if "value" in a:
            t = a["value"].t
            dims, dt = tuple(t.dims), DTYPES.get(t.data_type, "float32")
            self.consts[name] = _Const(dims, dt, values(t), nbytes(dims, dt))
        elif "value_float" in a or "value_int" in a:
            f = "value_float" in a
            v = a["value_float"].f if f else a["value_int"].i
            self.consts[name] = _Const((), "float32" if f else "int64", (v,), 4 if f else 8)
        elif "value_floats" in a or "value_ints" in a:
            f = "value_floats" in a
            vs = tuple(a["value_floats"].floats if f else a["value_ints"].ints)
            self.consts[name] = _Const((len(vs),), "float32" if f else "int64", vs,
                                       len(vs) * (4 if f else 8))

    def _read_shapes(self, g: Any) -> None:
        for vi in (*g.input, *g.output, *g.value_info):
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                continue
            self.types[vi.name] = DTYPES.get(tt.elem_type, "float32")
            if tt.HasField("shape"):
                self.shapes[vi.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim
                )
        for name, c in self.consts.items():
            self.shapes.setdefault(name, c.dims)
            self.types.setdefault(name, c.dtype)
        # Q and DQ keep their input's shape: share it both ways until nothing changes.
        changed = True
        while changed:
            changed = False
            for n in g.node:
                if n.op_type in (Q, DQ) and n.input and n.output:
                    a, b = n.input[0], n.output[0]
                    if a in self.shapes and b not in self.shapes:
                        self.shapes[b], changed = self.shapes[a], True
                    elif b in self.shapes and a not in self.shapes:
                        self.shapes[a], changed = self.shapes[b], True
        # Static shapes, as ST's compiler sees them once the batch is 1: a reshape whose
        # target came from the input's own shape (Shape → Gather → Concat, as exporters
        # write a flatten) has one unknown dimension left, the element count tells it.
        for n in g.node:
            if n.op_type in ("Reshape", "Flatten") and n.input and n.output:
                fixed = _resolve(self.shapes.get(n.input[0]), self.shapes.get(n.output[0]))
                if fixed is not None:
                    self.shapes[n.output[0]] = fixed
            elif n.op_type in (Q, DQ) and n.input and n.output:
                a, b = self.shapes.get(n.input[0]), self.shapes.get(n.output[0])
                if a is not None and b is not None and _unknown(a) < _unknown(b):
                    self.shapes[n.output[0]] = a

    def _shapes_complete(self) -> bool:
        return all(o in self.shapes for n in self.nodes for o in n.output[:1] if o)

    def _infer(self) -> None:
        try:
            inferred = proto.infer_shapes(self.mp)
        except Exception:  # noqa: BLE001 - inference is a best effort; unknown shapes stay so
            return
        self._read_shapes(inferred.graph)

    def shape(self, name: str) -> tuple[int, ...] | None:
        s = self.shapes.get(name)
        return None if s is None else tuple(max(d, 1) if i == 0 else d for i, d in enumerate(s))

    def is_const(self, name: str) -> bool:
        """Known at compile time: stored, or computed from stored tensors and static shapes
        (the Shape → Gather → Concat chains exporters write); fold.py folds those."""
        return name in self.consts or name in self.computed

    def _compute_constants(self) -> set[str]:
        computed: set[str] = set()
        for n in self.nodes:
            ins = [i for i in n.input if i]
            static = bool(ins) and n.op_type == "Shape" and not _unknown(
                self.shapes.get(ins[0], (-1, -1)))
            if static or (ins and all(i in self.consts or i in computed for i in ins)):
                computed.update(o for o in n.output if o)
        return computed

    def _const_values(self, name: str) -> tuple[Any, ...] | None:
        c = self.consts.get(name)
        if c is not None:
            return c.values
        p = self.producer.get(name)
        if p is not None and p.op_type == DQ and p.input[0] in self.consts:
            q = self._qparams(p)
            raw = self.consts[p.input[0]].values
            if raw is not None and q is not None and len(q.scales) == 1:
                return tuple(q.scales[0] * (v - q.zero_points[0]) for v in raw)
        return None

    def ints(self, name: str) -> tuple[int, ...] | None:
        v = self._const_values(name)
        return tuple(int(x) for x in v) if v is not None else None

    def floats(self, name: str) -> tuple[float, ...] | None:
        v = self._const_values(name)
        return tuple(float(x) for x in v) if v is not None else None

    def _qparams(self, node: Any) -> Quantization | None:
        scale = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        if scale is None or scale.values is None:
            return None
        zp = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        zps = tuple(int(z) for z in zp.values) if zp is not None and zp.values else (0,)
        axis = int(attrs(node).get("axis", 1)) if len(scale.values) > 1 else 0
        return Quantization(tuple(float(s) for s in scale.values), zps, axis)

    def _qtype(self, node: Any) -> str:
        """The integer type a Q makes (its zero point's type; uint8 when it has none)."""
        zp = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is not None:
            return zp.dtype
        return DTYPES.get(int(attrs(node).get("output_dtype", 2)), "uint8")

    # --------------------------------------------------------------------- build

    def build(self) -> Model:
        g = self.g
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.computed = self._compute_constants()
        consumers: dict[str, list[Any]] = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                if i:
                    consumers[i].append(n)
        graph_out = {o.name for o in g.output}
        quant: dict[str, Quantization] = {}  # integer tensor -> its parameters
        dtype: dict[str, str] = {}
        deq: dict[str, str] = {}  # DQ output -> the integer tensor it reads
        for n in self.nodes:
            if n.op_type == DQ and len(n.input) >= 2:
                deq[n.output[0]] = n.input[0]
                if (q := self._qparams(n)) is not None:
                    quant.setdefault(n.input[0], q)
                dtype[n.output[0]] = self.types.get(n.output[0], "float32")
            elif n.op_type == Q and len(n.input) >= 2:
                if (q := self._qparams(n)) is not None:
                    quant[n.output[0]] = q
                dtype[n.output[0]] = self._qtype(n)

        def activations(n: Any) -> list[str]:
            return [i for i in n.input if i and not self.is_const(i)]

        integer: set[int] = set()
        for k, n in enumerate(self.nodes):
            if n.op_type in (Q, DQ):
                continue
            acts = activations(n)
            outs = [o for o in n.output if o]
            if (
                acts
                and all(i in deq for i in acts)
                and outs
                and all(
                    o not in graph_out
                    and consumers[o]
                    and all(c.op_type == Q for c in consumers[o])
                    for o in outs
                )
            ):
                integer.add(k)

        rename: dict[str, str] = {}  # integer layer's float output -> its Q's int8 output
        fused_q: set[int] = set()
        for k in integer:
            for o in self.nodes[k].output:
                if o:
                    q = consumers[o][0]
                    rename[o] = q.output[0]
                    fused_q.add(id(q))

        ops: list[tuple[Any, Mapped]] = []
        float_readers: set[str] = set()  # DQ outputs a float layer (or the graph) reads
        for k, n in enumerate(self.nodes):
            if n.op_type in (Q, DQ):
                continue
            m = map_node(n, attrs(n), self)
            if k in integer or all(self.is_const(o) for o in n.output if o):
                # An integer layer reads the int8 tensors; a compile-time computation (the
                # Shape of a map) reads them too, and needs no DEQUANTIZE for it.
                m.inputs = [deq.get(i, i) for i in m.inputs]
                m.options["onnx_outputs"] = tuple(rename.get(o, o) for o in n.output)
            else:
                float_readers.update(i for i in m.inputs if i in deq)
            ops.append((n, m))
        float_readers |= graph_out & deq.keys()

        for n in self.nodes:
            if n.op_type == Q and id(n) not in fused_q and not self.is_const(n.input[0]):
                x = n.input[0]
                if x in rename:
                    src = rename[x]  # a second Q of an integer output: int8 -> int8
                elif x in deq and x not in float_readers:
                    src = deq[x]  # DQ -> Q between integer tensors: a requantization
                else:
                    src = x
                    if x in deq:
                        float_readers.add(x)
                ops.append((n, Mapped("QUANTIZE", [src], {"onnx_outputs": (n.output[0],)})))
        for n in self.nodes:
            if n.op_type == DQ and n.output[0] in float_readers:
                ops.append((n, Mapped("DEQUANTIZE", [n.input[0]], {})))
        order = {id(n): k for k, n in enumerate(self.nodes)}
        ops.sort(key=lambda nm: order[id(nm[0])])
        return self._model(ops, quant, dtype)

    def _model(
        self, ops: list[tuple[Any, Mapped]], quant: dict[str, Quantization], dtype: dict[str, str]
    ) -> Model:
        g = self.g
        roles: dict[str, str] = {}
        out_rank: dict[str, int] = {}
        for n, m in ops:
            for pos, role in m.layouts.items():
                if pos < len(m.inputs) and m.inputs[pos]:
                    roles.setdefault(m.inputs[pos], role)
                    out_rank.setdefault(m.inputs[pos], len(self.shapes.get(n.output[0], ())))
        index: dict[str, int] = {}
        tensors: list[Tensor] = []
        spans: list[tuple[int, int]] = [(0, 0)]
        blob = bytearray()
        synthetic: dict[str, tuple[int, ...]] = {}
        for _n, m in ops:
            synthetic |= m.synthetic

        def tensor(name: str) -> int:
            if name in index:
                return index[name]
            const = self.consts.get(name)
            is_const = const is not None or name in synthetic or self._q_of_const(name)
            dt = dtype.get(name) or self.types.get(name) or (const.dtype if const else "float32")
            raw = self.shapes.get(name)
            if name in synthetic:
                vals = synthetic[name]
                raw, dt = (len(vals),), "int32"
            sig = tuple(raw) if raw is not None else None
            shape = tuple(max(d, 1) for d in raw) if raw is not None else ()
            q = quant.get(name)
            shape, sig, q = lay_out(shape, sig, q, roles.get(name), out_rank.get(name, 0))
            buf, size = 0, 0
            if is_const:
                size = nbytes(shape, dt)
                buf = len(spans)
                vals = synthetic.get(name) or (const.values if const else None)
                if vals is not None and dt in ("int32", "int64") and size <= MAX_VALUES:
                    data = struct.pack(f"<{len(vals)}{'i' if dt == 'int32' else 'q'}", *vals)
                    spans.append((len(blob), len(data)))
                    blob.extend(data)
                else:
                    spans.append((0, 0))
            index[name] = len(tensors)
            tensors.append(Tensor(len(tensors), name, shape, sig, dt, q, buf, is_const, size))
            return index[name]

        operators: list[Operator] = []
        graph_in = {i.name for i in g.input}
        for n, m in ops:
            outs = m.options.pop("onnx_outputs", tuple(n.output))
            opts = dict(m.options)
            # A layer is named by the float tensor it makes (a Q node: the one it quantizes),
            # as a TFLite layer by its output tensor: per-layer errors are keyed the same way.
            # Only an input's Q: a Q after a float layer would take that layer's name. A uint8
            # input's requantization (DQ → Q, io_type uint8) is named by the input too.
            named = n.output[0] if n.output else ""
            if n.op_type == Q and n.input:
                src, p = n.input[0], self.producer.get(n.input[0])
                if p is not None and p.op_type == DQ and p.input[0] in graph_in:
                    src, p = p.input[0], None
                if p is None:
                    named = src
            opts |= {"onnx_op": n.op_type, "onnx_name": named or n.name,
                     "onnx_provenance": provenance(n.op_type)}
            if n.output and (s := self.shape(n.output[0])) is not None:
                opts["onnx_output_shape"] = s
            operators.append(
                Operator(
                    index=len(operators),
                    opcode=m.opcode,
                    custom_code=None,
                    version=1,
                    inputs=tuple(tensor(i) if i else -1 for i in m.inputs),
                    outputs=tuple(tensor(o) for o in outs if o),
                    options=MappingProxyType(opts),
                )
            )
        inits = set(self.consts)
        ins = tuple(tensor(i.name) for i in g.input if i.name not in inits)
        outs = tuple(tensor(o.name) for o in g.output)
        sg = Subgraph(0, g.name or "main", tuple(tensors), tuple(operators), ins, outs)
        opset = max((o.version for o in self.mp.opset_import if o.domain in ("", "ai.onnx")),
                    default=0)
        producer = " ".join(x for x in (self.mp.producer_name, self.mp.producer_version) if x)
        return Model(
            path=self.path,
            version=int(self.mp.ir_version),
            description=f"ONNX opset {opset}" + (f", {producer}" if producer else ""),
            subgraphs=(sg,),
            signatures=(),
            size_bytes=self.size,
            buffer_spans=tuple(spans),
            _data=bytes(blob),
        )

    def _q_of_const(self, name: str) -> bool:
        p = self.producer.get(name)
        return p is not None and p.op_type == Q and self.is_const(p.input[0])


def _unknown(shape: tuple[int, ...]) -> int:
    """Unknown dimensions other than the batch."""
    return sum(1 for d in shape[1:] if d < 0)


def _resolve(x: tuple[int, ...] | None, y: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """A reshape's output with its one unknown non-batch dimension computed from the
    input's element count (the batch taken as 1 on both sides), else None."""
    if x is None or y is None or not x or not y or _unknown(x) or _unknown(y) != 1:
        return None
    total = 1
    for d in x[1:]:
        total *= d
    total *= x[0] if x[0] > 0 else 1
    known = 1
    for i, d in enumerate(y):
        if d > 0:
            known *= d
        elif i == 0 and x[0] < 0:
            continue  # the batch, carried through
    rest = [i for i, d in enumerate(y) if d < 0 and not (i == 0 and x[0] < 0)]
    if len(rest) != 1 or known == 0 or total % known:
        return None
    return tuple(total // known if i == rest[0] else d for i, d in enumerate(y))
