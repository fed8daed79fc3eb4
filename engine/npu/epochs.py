"""Phase 5, epochs: layers grouped as ST's reports count epochs, and the float islands
(CPU layers in float between two NPU epochs) that cost two conversions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .placement import PlacedLayers
from .result import Epoch, FloatIsland, LayerResult
from .rules import VIEW_OPS

#: Activations that the compiler fuses into the NPU layer that feeds them. [I]
_FUSABLE_ACTIVATIONS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"})


def group_epochs(placed: PlacedLayers) -> tuple[tuple[Epoch, ...], list[int]]:
    """Epochs as ST's reports count them: one per NPU layer (views and fusable activations
    join the epoch before them), one per CPU layer. Returns them and each layer's epoch."""
    views, placements = placed.views, placed.placements
    epochs: list[list[Any]] = []  # [kind, [op indices], [ops]]
    epoch_of: list[int] = []
    prev_npu_out: set[int] = set()
    for v, p in zip(views, placements, strict=True):
        if p.placement == "NPU":
            joins = (
                epochs
                and epochs[-1][0] == "HW"
                and (
                    v.opcode in VIEW_OPS
                    or (
                        v.opcode in _FUSABLE_ACTIVATIONS
                        and v.op.inputs
                        and v.op.inputs[0] in prev_npu_out
                    )
                )
            )
            if not joins:
                epochs.append(["HW", [], []])
            prev_npu_out = set(v.op.outputs)
        else:
            epochs.append(["SW", [], []])
            prev_npu_out = set()
        epochs[-1][1].append(v.op.index)
        epochs[-1][2].append(v.opcode)
        epoch_of.append(len(epochs) - 1)
    epoch_list = tuple(Epoch(i, e[0], tuple(e[1]), tuple(e[2])) for i, e in enumerate(epochs))
    return epoch_list, epoch_of


def float_islands(layers: Sequence[LayerResult]) -> tuple[FloatIsland, ...]:
    """Runs of CPU layers between two NPU layers that include float work."""
    out: list[FloatIsland] = []
    i, n = 0, len(layers)
    while i < n:
        if layers[i].placement != "CPU":
            i += 1
            continue
        j = i
        while j < n and layers[j].placement == "CPU":
            j += 1
        run = layers[i:j]
        between = i > 0 and j < n
        floaty = any(layer.tier == "SW_FLOAT" for layer in run)
        if between and floaty:
            qdq = [x for x in run if x.op in ("QUANTIZE", "DEQUANTIZE")]
            work = [x for x in run if x.op not in ("QUANTIZE", "DEQUANTIZE")]
            convert = sum(x.est_us for x in qdq) + sum(x.convert_us for x in work)
            out.append(
                FloatIsland(
                    tuple(x.index for x in run),
                    tuple(x.op for x in run),
                    sum(x.est_us - x.convert_us for x in work),
                    convert,
                )
            )
        i = j
    return tuple(out)
