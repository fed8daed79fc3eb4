"""Phase 2, placement: each layer left after folding, placed by the rule table (rules.py),
and the model's precision as the placements show it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..tflite.model import Model, Operator, Tensor
from .fold import Folding
from .rules import FLOAT_DTYPES, TABLE, OpView, Placement, place


@dataclass(frozen=True)
class PlacedLayers:
    """The model's layers in run order, each with its tensors resolved and its placement."""

    views: tuple[OpView, ...]
    placements: tuple[Placement, ...]


def _view(model: Model, op: Operator, constants: frozenset[int]) -> OpView:
    t = model.main.tensors
    return OpView(
        op,
        tuple(t[i] if i >= 0 else None for i in op.inputs),
        tuple(t[i] for i in op.outputs),
        constants,
        model,
    )


#: Provenance labels from the strongest to the weakest.
_STRENGTH = ("ST", "3P", "I")


def _placed(v: OpView) -> Placement:
    """The rule's placement; an ONNX layer's provenance is the weaker of the rule's and the
    mapping's (engine.onnx.ops): a decision is as sure as its least sure step. An ONNX op in
    no row is placed by the mapping's evidence alone (HardSigmoid seen in software, 3P)."""
    p = place(v)
    mapping = v.options.get("onnx_provenance")
    if mapping in _STRENGTH and v.opcode not in TABLE:
        return replace(p, provenance=mapping)
    if mapping in _STRENGTH and p.provenance in _STRENGTH:
        weaker = max(mapping, p.provenance, key=_STRENGTH.index)
        if weaker != p.provenance:
            p = replace(p, provenance=weaker)
    return p


def place_layers(model: Model, folding: Folding) -> PlacedLayers:
    """Place every operator that folding kept."""
    views = tuple(_view(model, op, folding.constants) for op in folding.kept)
    return PlacedLayers(views, tuple(_placed(v) for v in views))


def precision(placed: PlacedLayers) -> str:
    """int8, int16 (int16 activations: 16x8 quantization), float32, mixed (integer with
    float layers between conversions) or hybrid."""
    if any(p.rule == "no_hybrid" for p in placed.placements):
        return "hybrid"
    views = placed.views
    acts = [t for v in views for t in v.activations]
    has_int = any(t.dtype in ("int8", "int16") for t in acts)
    float_layers = [
        v
        for v in views
        if v.opcode not in ("QUANTIZE", "DEQUANTIZE")
        and any(t.dtype in FLOAT_DTYPES for t in v.activations)
    ]
    if float_layers and not has_int:
        return "float32"
    if float_layers:
        return "mixed"
    # 16x8 quantization makes (nearly) every layer's output int16; an int8 model may still
    # hold a few int16 tensors (an LSTM's cell state), which do not make it int16.
    outs = [t.dtype for v in views if v.opcode not in ("QUANTIZE", "DEQUANTIZE") for t in v.outputs]
    return "int16" if outs.count("int16") > outs.count("int8") + outs.count("uint8") else "int8"


def float_copies(v: OpView) -> tuple[Tensor, ...]:
    """Integer activations a software-float layer must convert to float32 and back."""
    if v.opcode in ("QUANTIZE", "DEQUANTIZE"):
        return ()  # the conversion itself
    return tuple(t for t in v.activations if t.dtype in ("int8", "uint8", "int16"))
