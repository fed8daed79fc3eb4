"""The NPU analysis as a pipeline of phases, each in its own module:

    fold → place → memory → cost → epochs → advice

fold.py folds what is constant once shapes are static; placement.py places each remaining
operator with the rule table (rules.py); activations.py plans activation buffers into the
target's pools (memory.py allocates); cost.py times each layer; epochs.py groups layers as
ST's reports count epochs and finds float islands; advice.py says what to change. graphs.py
names what the main graph's analysis does not cover (other subgraphs, dynamic shapes).
"""

from __future__ import annotations

import os
from dataclasses import replace

from ..tflite.model import Model
from ..tflite.reader import read_model
from .activations import ActivationPlan, plan_activations
from .advice import advise, graph_notes
from .cost import LayerCost, cost_layers
from .epochs import float_islands, group_epochs
from .fold import fold
from .graphs import dynamic_tensors, other_subgraphs
from .placement import PlacedLayers, place_layers, precision
from .result import Analysis, FoldedOp, LayerResult, PoolReport
from .targets import DEFAULT_TARGET, Target, load_target

#: A model to analyse: a ``.tflite`` or ``.onnx`` path, or a model already read
#: (engine.tflite.read_model, engine.onnx.read_onnx).
ModelSource = str | os.PathLike[str] | Model

#: Suffix of the ONNX files the ONNX reader takes; any other path is read as TFLite.
ONNX_SUFFIX = ".onnx"


def read_any(path: str | os.PathLike[str]) -> Model:
    """Read a model file by its suffix: ``.onnx`` with the ONNX reader, else TFLite."""
    if str(path).lower().endswith(ONNX_SUFFIX):
        from ..onnx.reader import read_onnx  # noqa: PLC0415 - only ONNX callers pay for it

        return read_onnx(path)
    return read_model(path)


def analyze(
    model: ModelSource,
    target: str | os.PathLike[str] | Target = DEFAULT_TARGET,
) -> Analysis:
    """Place, size and time a ``.tflite`` or ONNX QDQ ``.onnx`` on a Neural-ART target.

    ``model`` is a path or a model already read; ``target`` a bundled target name, the path
    to a target TOML, or a loaded Target. Pass what you already hold and nothing is read
    twice. Raises TFLiteReadError or OnnxReadError for a bad model and TargetError for a
    bad target.
    """
    tgt = load_target(target)  # first: a bad target fails before the model is read
    return analyze_model(model if isinstance(model, Model) else read_any(model), tgt)


def analyze_model(model: Model, target: Target) -> Analysis:
    """As :func:`analyze`, on a model already read and a target already loaded."""
    folding = fold(model)
    placed = place_layers(model, folding)
    memory = plan_activations(model, folding, placed, target)
    costs = cost_layers(model, folding, placed, memory, target)
    epochs, epoch_of = group_epochs(placed)
    layers = _layer_results(placed, costs, epoch_of)
    tensors = model.main.tensors
    analysis = Analysis(
        model_path=model.path,
        target=target.name,
        model_bytes=model.size_bytes,
        precision=precision(placed),
        layers=layers,
        folded=tuple(
            FoldedOp(op.index, op.opcode, tensors[op.outputs[0]].name if op.outputs else "")
            for op in folding.folded
        ),
        epochs=epochs,
        float_islands=float_islands(layers),
        pools=_pools(memory),
        weights_raw_bytes=sum(c.weight_bytes for c in costs),
        weights_flash_bytes=sum(c.flash_bytes for c in costs),
        activations_ram_bytes=memory.plan.internal_bytes,
        external_ram_bytes=memory.plan.external_bytes,
        peak_live_bytes=memory.plan.peak_live,
        flash_read_mb_s=target.flash.read_mb_s,
        subgraphs=other_subgraphs(model),
        dynamic=dynamic_tensors(model),
    )
    advice, warnings = advise(analysis, graph_notes(placed))
    return replace(analysis, advice=tuple(advice), warnings=tuple(warnings))


def _pools(memory: ActivationPlan) -> tuple[PoolReport, ...]:
    return tuple(
        PoolReport(u.name, u.internal, u.capacity, u.used, u.buffers) for u in memory.plan.pools
    )


def _layer_results(
    placed: PlacedLayers, costs: tuple[LayerCost, ...], epoch_of: list[int]
) -> tuple[LayerResult, ...]:
    """One row per layer: its placement, cost, share of the time and epoch."""
    total_us = sum(c.total_us for c in costs) or 1.0
    rows: list[LayerResult] = []
    for v, p, c, ep in zip(placed.views, placed.placements, costs, epoch_of, strict=True):
        out = v.outputs[0] if v.outputs else None
        if p.placement == "CPU":
            bound = "cpu"
        else:
            streams = {"compute": c.compute_us, "memory": c.memory_us, "weights": c.weights_us}
            bound = (
                max(streams, key=lambda k: streams[k]) if max(streams.values()) > 0 else "overhead"
            )
        rows.append(
            LayerResult(
                index=v.op.index,
                op=v.opcode if v.opcode != "CUSTOM" else f"CUSTOM:{v.op.custom_code or '?'}",
                name=str(v.options.get("onnx_name", out.name if out is not None else "")),
                # An ONNX layer shows its own (channel-first) shape; the analysis is NHWC.
                output_shape=tuple(
                    v.options.get("onnx_output_shape", out.shape if out is not None else ())
                ),
                placement=p.placement,
                tier=p.tier,
                kind=p.kind,
                reason=p.reason,
                rule=p.rule,
                provenance=p.provenance,
                macs=c.macs,
                weight_bytes=c.weight_bytes,
                flash_bytes=c.flash_bytes,
                activation_bytes=c.activation_bytes,
                est_us=c.total_us,
                pct=100.0 * c.total_us / total_us,
                epoch=ep,
                bound=bound,
                overhead_us=c.overhead_us,
                convert_us=c.convert_us,
                source_op=str(v.options.get("onnx_op", "")),
            )
        )
    return tuple(rows)
