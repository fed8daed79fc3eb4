"""Fake quantization matching the N6, the PyTorch way (torch.ao.quantization, FX graph mode).

The guide's §4.2 uses ``get_default_qat_qconfig('fbgemm')``: unsigned activations with a
reduced range (7 bits) and per-tensor-affine weights — not what the N6 runs. Here weights are
int8 symmetric per channel (zero point 0) and activations int8 per tensor over the full
range, as ST's compiler takes an ONNX QDQ model. PyTorch's native backend config only lists
unsigned activations for most patterns (a qint8 activation there silently gets no observer,
measured), so each pattern gains a signed-int8 dtype config.

BatchNorm is folded into the convolution before QAT (``fuse_fx`` in eval mode): the N6 runs
the folded convolution, the fine-tune sees the weights it will quantize, and the export is a
plain Conv(+Relu) with Q/DQ pairs — the fake-quant model, not a ``convert()``ed one (that
does not export to ONNX at all).
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import numpy as np

from ...errors import ModelError
from .lib import require_torch

QMIN, QMAX = -128, 127

#: report.json ``stages.int8.quantization`` of a PyTorch QAT model (keys as the ONNX PTQ's).
QAT_RECORD = {
    "tool": "PyTorch QAT (torch.ao.quantization, FX graph mode), exported by torch.onnx "
            "(TorchScript, opset 13)",
    "format": "QDQ",
    "calibration": "minmax on the calibration data, then moving averages while training",
    "weights": "int8 symmetric per-channel (BatchNorm folded)",
    "activations": "int8 asymmetric per-tensor, full range",
    "io": "float32 (QuantizeLinear/DequantizeLinear at the model's edges)",
}


def n6_qconfig() -> Any:
    """Weights int8 symmetric per output channel; activations int8 per tensor, full range."""
    torch = require_torch()
    from torch.ao.quantization import FakeQuantize, QConfig  # noqa: PLC0415
    from torch.ao.quantization.observer import (  # noqa: PLC0415
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
    )

    act = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=QMIN,
                                 quant_max=QMAX, dtype=torch.qint8,
                                 qscheme=torch.per_tensor_affine, reduce_range=False)
    # averaging_constant=1: the weight range is the current weight's, recomputed each step.
    wt = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver,
                                averaging_constant=1.0, quant_min=QMIN, quant_max=QMAX,
                                dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                ch_axis=0, reduce_range=False)
    return QConfig(activation=act, weight=wt)


def n6_backend_config() -> Any:
    """PyTorch's native patterns, each also accepting signed int8 activations."""
    torch = require_torch()
    from torch.ao.quantization.backend_config import (  # noqa: PLC0415
        DTypeConfig,
        get_native_backend_config,
    )

    bc = get_native_backend_config()
    weighted = DTypeConfig(input_dtype=torch.qint8, output_dtype=torch.qint8,
                           weight_dtype=torch.qint8, bias_dtype=torch.float)
    plain = DTypeConfig(input_dtype=torch.qint8, output_dtype=torch.qint8)
    for cfg in bc.configs:
        has_weight = any(d.weight_dtype is not None for d in cfg.dtype_configs)
        cfg.add_dtype_config(weighted if has_weight else plain)
    return bc


def _relu_calls_as_functional(module: Any) -> Any:
    """The model traced, with ``torch.relu(x)`` and ``x.relu()`` written as ``F.relu(x)``:
    PyTorch's fusion patterns know ``nn.ReLU`` and ``F.relu`` only, and an unfused ReLU
    gets its own Q/DQ pair after the convolution, quantizing the negative half it drops."""
    torch = require_torch()
    import torch.nn.functional as F  # noqa: N812, PLC0415

    gm = torch.fx.symbolic_trace(module)
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in (torch.relu, torch.relu_, F.relu_):
            node.target = F.relu
        elif node.op == "call_method" and node.target in ("relu", "relu_"):
            node.op, node.target = "call_function", F.relu
    gm.recompile()
    return gm


def prepare(module: Any, input_shape: Sequence[int]) -> Any:
    """Fold BN, fuse conv-bn-relu patterns and insert fake quantization (a GraphModule)."""
    torch = require_torch()
    from torch.ao.quantization import QConfigMapping  # noqa: PLC0415
    from torch.ao.quantization.quantize_fx import fuse_fx, prepare_qat_fx  # noqa: PLC0415

    bc = n6_backend_config()
    example = (torch.zeros((1, *input_shape)),)
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(), redirect_stdout(buf), redirect_stderr(buf):
            warnings.simplefilter("ignore")
            # A copy: the traced model shares the module's parameters, and fine-tuning
            # must not change the float model it is compared with.
            fused = fuse_fx(_relu_calls_as_functional(copy.deepcopy(module).eval()),
                            backend_config=bc)
            prepared = prepare_qat_fx(fused.train(), QConfigMapping().set_global(n6_qconfig()),
                                      example, backend_config=bc)
    except Exception as exc:  # noqa: BLE001 - torch.fx cannot trace every forward
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"PyTorch cannot insert fake quantization into this model: {text}",
                         "QAT traces the forward with torch.fx: it must not branch on tensor "
                         "values; use PTQ for the rest") from None
    return prepared


def fake_quants(model: Any) -> tuple[list[Any], list[Any]]:
    """(activation, weight) FakeQuantize modules of a prepared model."""
    from torch.ao.quantization import FakeQuantizeBase  # noqa: PLC0415

    weights = [m.weight_fake_quant for m in model.modules() if hasattr(m, "weight_fake_quant")]
    ids = {id(w) for w in weights}
    acts = [m for m in model.modules() if isinstance(m, FakeQuantizeBase) and id(m) not in ids]
    return acts, weights


def _set_range(fq: Any, lo: float, hi: float) -> None:
    torch = require_torch()
    obs = fq.activation_post_process
    # The range must hold 0 so that zero is exactly representable.
    obs.min_val.resize_(()).fill_(min(lo, 0.0))
    obs.max_val.resize_(()).fill_(max(hi, 0.0))
    scale, zp = obs.calculate_qparams()
    fq.scale.resize_(scale.shape).copy_(scale)
    fq.zero_point.resize_(zp.shape).copy_(zp.to(torch.int32))


def init_ranges(model: Any, x_cal: np.ndarray, batch: int = 32) -> int:
    """Every activation range set to the float model's min/max on ``x_cal`` — what PTQ
    would use — before training moves them; returns how many were set."""
    torch = require_torch()
    acts, _ = fake_quants(model)
    lo = {id(m): float("inf") for m in acts}
    hi = {id(m): float("-inf") for m in acts}

    def hook(mod: Any, args: tuple[Any, ...]) -> None:
        x = args[0].detach()
        lo[id(mod)] = min(lo[id(mod)], float(x.min()))
        hi[id(mod)] = max(hi[id(mod)], float(x.max()))

    handles = [m.register_forward_pre_hook(hook) for m in acts]
    for m in acts:  # the float model's tensors: nothing quantized while measuring
        m.disable_fake_quant()
        m.disable_observer()
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(x_cal), batch):
                model(torch.from_numpy(np.ascontiguousarray(x_cal[i:i + batch], np.float32)))
    finally:
        for h in handles:
            h.remove()
    done = 0
    for m in acts:
        m.enable_fake_quant()
        m.enable_observer()
        if np.isfinite(lo[id(m)]):
            _set_range(m, lo[id(m)], hi[id(m)])
            done += 1
    return done


def for_inference(model: Any) -> None:
    """Eval mode with ranges fixed: weight scales from the current weights, activation
    observers off (a FakeQuantize updates its observer even in eval mode)."""
    torch = require_torch()
    model.eval()
    acts, weights = fake_quants(model)
    with torch.no_grad():
        for m in model.modules():
            fq = getattr(m, "weight_fake_quant", None)
            if fq is not None:
                fq.enable_observer()
                fq(m.weight)
    for fq in (*acts, *weights):
        fq.disable_observer()


def for_training(model: Any) -> None:
    model.train()
    acts, weights = fake_quants(model)
    for fq in (*acts, *weights):
        fq.enable_observer()


def export_qdq(model: Any, input_shape: Sequence[int], out_path: str) -> None:
    """The fake-quant model as ONNX QDQ (QuantizeLinear/DequantizeLinear pairs)."""
    from .export import export_onnx  # noqa: PLC0415
    from .qdq import fold_weight_quantization  # noqa: PLC0415

    for_inference(model)
    export_onnx(model, input_shape, out_path, what="the QAT model")
    fold_weight_quantization(out_path)
