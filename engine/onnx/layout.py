"""ONNX tensors laid out as the NPU's kernels hold them: feature maps channel-last (ST's
compiler converts channel-first graphs), weights in the rule table's kernel layouts."""

from __future__ import annotations

from ..tflite.model import Quantization
from .ops import CONV_W, DW_W, FC_W, FC_WT, OPERAND, TCONV_W

_NHWC = (0, 2, 3, 1)
_AXIS_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}


def lay_out(
    shape: tuple[int, ...],
    sig: tuple[int, ...] | None,
    q: Quantization | None,
    role: str | None,
    out_rank: int,
) -> tuple[tuple[int, ...], tuple[int, ...] | None, Quantization | None]:
    """A tensor's shape (and per-channel axis) as the NPU's kernels hold it."""
    perm: tuple[int, ...] | None = None
    if role in (CONV_W, DW_W, TCONV_W) and len(shape) == 3:  # 1-D kernels: H = 1
        shape = (shape[0], shape[1], 1, shape[2])
        sig = shape
        if q is not None and q.quantized_dimension == 2:
            q = Quantization(q.scales, q.zero_points, 3)
    if role == CONV_W and len(shape) == 4:
        perm = (0, 2, 3, 1)
    elif role in (DW_W, TCONV_W) and len(shape) == 4:
        perm = (1, 2, 3, 0)
    elif role == FC_W and len(shape) == 2:
        perm = (1, 0)
    elif role == FC_WT:
        perm = None
    elif role == OPERAND and out_rank == 4 and len(shape) <= 4:
        pad = (1,) * (4 - len(shape))
        shape, sig = pad + shape, (pad + sig) if sig is not None else None
        perm = _NHWC
    elif role is None and len(shape) == 4:
        perm = _NHWC
    if perm is None:
        return shape, sig, q
    new = tuple(shape[p] for p in perm)
    new_sig = tuple(sig[p] for p in perm) if sig is not None and len(sig) == len(perm) else sig
    if q is not None and q.per_channel and q.quantized_dimension < len(perm):
        q = Quantization(q.scales, q.zero_points, perm.index(q.quantized_dimension))
    return new, new_sig, q
