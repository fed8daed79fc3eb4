"""Placement rules: each constraint on crafted tiny models that hit and miss it."""

from __future__ import annotations

import os

import pytest
from npu_models import Op, T, const, conv_model, craft, ints, single_op

from engine.npu import analyze_model, load_target
from engine.npu.rules import (
    GENERIC,
    HW,
    HW_AXES,
    MAX_CONV_STRIDE,
    MAX_POOL_SIDE,
    MAX_POOL_STRIDE,
    NHWC_RANK,
    RECURRENT_REASON,
    SW_FLOAT,
    SW_INT,
    TABLE,
    Constraint,
    all_builtins,
    conv_stride,
    global_pool_size,
    mean_is_global_pool,
    pool_stride,
    pool_window_size,
    rule_for,
)
from engine.tflite import read_model_bytes

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = load_target("stm32n6570-dk")


def run(data: bytes):  # noqa: ANN201
    return analyze_model(read_model_bytes(data, "crafted.tflite"), TARGET)


def only(data: bytes):  # noqa: ANN201
    """The single layer of a one-operator model."""
    a = run(data)
    assert len(a.layers) == 1
    return a.layers[0]


# ----------------------------------------------------------------------------- the table


def test_every_builtin_has_a_tier() -> None:
    names = all_builtins()
    assert len(names) > 150 and "CONV_2D" in names
    for name in names:
        r = rule_for(name)
        assert r.tier in (HW, SW_INT, SW_FLOAT), name
        assert r.provenance in ("ST", "3P", "I"), name


def _all_constraints() -> dict[str, Constraint]:
    constraints = {c.name: c for r in TABLE.values() for c in r.constraints}
    constraints.update({c.name: c for c in GENERIC})
    return constraints


def test_constraints_read_as_rules() -> None:
    constraints = _all_constraints()
    assert len(constraints) >= 12
    for c in constraints.values():
        assert c.rule[0].isupper() and c.rule.endswith("."), c.name
        assert c.provenance in ("ST", "3P", "I")
        assert "{" not in c.rule and "}" not in c.rule, f"unformatted placeholder in {c.name}"


def test_rule_thresholds_are_formatted_from_their_constants() -> None:
    formatted = {n: c for n, c in _all_constraints().items() if c.doc_args}
    assert set(formatted) == {
        "conv_stride",
        "pool_stride",
        "pool_window_size",
        "global_pool_size",
        "mean_is_global_pool",
    }
    for c in formatted.values():
        for name, value in c.doc_args.items():
            assert str(value) in c.rule, (c.name, name, value)
    # Each number sits where the sentence states the threshold.
    assert f"at most {MAX_CONV_STRIDE}:" in conv_stride.rule
    assert f"1 to {MAX_POOL_STRIDE} " in pool_stride.rule
    side = f"{MAX_POOL_SIDE}×{MAX_POOL_SIDE}"
    assert f"over {side} elements" in pool_window_size.rule
    assert f"up to {side} runs" in global_pool_size.rule
    h, w = HW_AXES
    assert f"(axes {h} and {w} of a {NHWC_RANK}-D tensor)" in mean_is_global_pool.rule
    # The table's own comment quotes the pool stride range from the same constant.
    assert f"strides 1–{MAX_POOL_STRIDE}," in TABLE["AVERAGE_POOL_2D"].comment


# ----------------------------------------------------------------------------- generic


def test_int8_conv_on_npu() -> None:
    layer = only(conv_model())
    assert (layer.placement, layer.tier, layer.rule) == ("NPU", HW, "table")
    assert layer.reason == "runs on the NPU (the convolution accelerators)"


def test_static_shapes_hit_and_miss() -> None:
    hit = only(conv_model(sig=(1, -1, -1, 4)))
    assert hit.placement == "CPU" and hit.rule == "static_shapes"
    assert "dynamic shape [1, -1, -1, 4]" in hit.reason
    assert only(conv_model(sig=(-1, 8, 8, 4))).placement == "NPU"  # batch only: taken as 1


def test_float_goes_to_cpu_with_reason() -> None:
    layer = only(conv_model(dtype="float32"))
    assert (layer.placement, layer.tier, layer.rule) == ("CPU", SW_FLOAT, "int8_tensors")
    assert layer.reason == "float32 tensors: the NPU runs INT8 only"
    assert layer.provenance == "ST"


def test_hybrid_hit_and_miss() -> None:
    layer = only(conv_model(dtype="float32", weight_dtype="int8"))
    assert (layer.placement, layer.rule) == ("CPU", "no_hybrid")
    assert "hybrid operator" in layer.reason
    assert run(conv_model(dtype="float32", weight_dtype="int8")).precision == "hybrid"


def test_int16_activations_hit_and_miss() -> None:
    layer = only(conv_model(dtype="int16", weight_dtype="int8"))
    assert (layer.placement, layer.rule, layer.provenance) == ("CPU", "no_int16_activations", "I")
    assert layer.tier == SW_INT


# ----------------------------------------------------------------------------- operators


def test_weights_constant_hit_and_miss() -> None:
    hit = only(conv_model(weights_const=False))
    assert (hit.placement, hit.rule) == ("CPU", "weights_constant")
    assert only(conv_model(weights_const=True)).placement == "NPU"


def test_conv_stride_hit_and_miss() -> None:
    hit = only(conv_model(stride=8, in_shape=(1, 16, 16, 4)))
    assert (hit.placement, hit.rule) == ("CPU", "conv_stride")
    assert hit.reason == "stride 8×8 exceeds the accelerator's 3-bit stride field (max 7)"
    assert only(conv_model(stride=2)).placement == "NPU"


def test_conv_stride_threshold_is_the_documented_one() -> None:
    """The stride the rule's text names is the last one that stays on the NPU."""
    at = only(conv_model(stride=MAX_CONV_STRIDE, in_shape=(1, 16, 16, 4)))
    assert at.placement == "NPU"
    over = only(conv_model(stride=MAX_CONV_STRIDE + 1, in_shape=(1, 16, 16, 4)))
    assert over.rule == "conv_stride"


def test_batch_matmul_second_operand() -> None:
    rhs = const("rhs", [1, 8, 4], scales=[0.1])
    ok = only(single_op("BATCH_MATMUL", [(1, 3, 8), (1, 8, 4)], (1, 3, 4), consts={1: rhs}))
    assert ok.placement == "NPU" and ok.macs == 3 * 4 * 8
    hit = only(single_op("BATCH_MATMUL", [(1, 3, 8), (1, 8, 4)], (1, 3, 4)))
    assert (hit.placement, hit.rule) == ("CPU", "second_operand_constant")
    assert "activation × activation" in hit.reason


def _pool(op: str, k: int, s: int, hw: int = 8) -> bytes:
    o = -(-hw // s)
    opts = {"filterHeight": k, "filterWidth": k, "strideH": s, "strideW": s, "padding": 0}
    return single_op(op, [(1, hw, hw, 4)], (1, o, o, 4), opts)


def test_pool_stride_hit_and_miss() -> None:
    hit = only(_pool("MAX_POOL_2D", 2, 16, hw=32))
    assert (hit.placement, hit.rule, hit.provenance) == ("CPU", "pool_stride", "ST")
    assert hit.reason == "pool stride 16×16 is outside the pooling unit's 1–15"
    assert only(_pool("MAX_POOL_2D", 2, 2)).placement == "NPU"
    assert only(_pool("MAX_POOL_2D", 2, MAX_POOL_STRIDE, hw=32)).placement == "NPU"


def test_pool_window_hit_and_miss() -> None:
    hit = only(_pool("AVERAGE_POOL_2D", 40, 1, hw=40))
    assert (hit.placement, hit.tier, hit.rule) == ("CPU", SW_FLOAT, "pool_window_size")
    assert hit.reason == "pool window 40×40 is too large for the pooling unit (over 32×32)"
    side = MAX_POOL_SIDE
    assert only(_pool("AVERAGE_POOL_2D", side, 1, hw=side)).placement == "NPU"
    assert only(_pool("AVERAGE_POOL_2D", side + 1, 1, hw=side + 1)).placement == "CPU"
    ok = only(_pool("AVERAGE_POOL_2D", 3, 1))
    assert ok.placement == "NPU" and ok.macs == 8 * 8 * 4 * 9


def _mean(axes: tuple[int, ...], hw: int = 8) -> bytes:
    out = (1, 4) if set(axes) in ({1, 2}, {-3, -2}) else (1, hw, hw)
    return single_op(
        "MEAN",
        [(1, hw, hw, 4), (len(axes),)],
        out,
        {"keepDims": False},
        consts={1: ints("axes", axes)},
    )


def test_mean_global_pool_hit_and_miss() -> None:
    assert only(_mean((1, 2))).placement == "NPU"
    assert only(_mean((-3, -2))).placement == "NPU"
    hit = only(_mean((3,)))
    assert (hit.placement, hit.rule) == ("CPU", "mean_is_global_pool")
    assert "axes (3,)" in hit.reason


def test_global_pool_size_hit_and_miss() -> None:
    hit = only(_mean((1, 2), hw=64))
    assert (hit.placement, hit.tier, hit.rule) == ("CPU", SW_FLOAT, "global_pool_size")
    assert hit.reason.startswith("global pool over 64×64 is too large")
    assert only(_mean((1, 2), hw=MAX_POOL_SIDE)).placement == "NPU"
    assert only(_mean((1, 2), hw=MAX_POOL_SIDE + 1)).rule == "global_pool_size"


@pytest.mark.parametrize(
    ("other", "placement"),
    [
        ((1, 4, 4, 8), "NPU"),  # same shape
        ((1, 1, 1, 8), "NPU"),  # per channel
        ((1, 4, 4, 1), "NPU"),  # per plane
        ((1, 4, 1, 1), "NPU"),  # per row
        ((1,), "NPU"),  # scalar
        ((1, 4, 1, 8), "CPU"),  # H x C: not a supported pattern
        ((1, 1, 4, 8), "CPU"),  # W x C
    ],
)
def test_broadcast_patterns(other: tuple[int, ...], placement: str) -> None:
    layer = only(single_op("ADD", [(1, 4, 4, 8), other], (1, 4, 4, 8)))
    assert layer.placement == placement
    if placement == "CPU":
        assert layer.rule == "broadcast_supported" and "broadcast of" in layer.reason


def test_quantize_integer_hit_and_miss() -> None:
    assert only(single_op("QUANTIZE", [(1, 8)], (1, 8))).placement == "NPU"  # int8 → int8
    tensors = [T("x", (1, 8), "uint8"), T("y", (1, 8), "int8")]
    assert only(craft(tensors, [Op("QUANTIZE", [0], [1])], [0], [1])).placement == "NPU"
    tensors = [T("x", (1, 8), "float32", scales=None), T("y", (1, 8), "int8")]
    hit = only(craft(tensors, [Op("QUANTIZE", [0], [1])], [0], [1]))
    assert (hit.placement, hit.rule) == ("CPU", "quantize_integer")
    assert hit.reason.startswith("float→int8 conversion runs on the CPU")


def test_softmax_on_cpu() -> None:
    layer = only(single_op("SOFTMAX", [(1, 10)], (1, 10), {"beta": 1.0}))
    assert (layer.placement, layer.tier) == ("CPU", SW_INT)
    assert layer.reason.startswith("SOFTMAX runs in software on the CPU")


def test_unknown_and_custom_ops_on_cpu() -> None:
    layer = only(single_op("CUMSUM", [(1, 8), (1,)], (1, 8)))
    assert layer.placement == "CPU" and "not in ST's Neural-ART operator table" in layer.reason
    tensors = [T("x", (1, 8)), T("y", (1, 8))]
    custom = only(craft(tensors, [Op("CUSTOM", [0], [1], custom="MyOp")], [0], [1]))
    assert custom.placement == "CPU" and "custom operator 'MyOp'" in custom.reason
    assert custom.op == "CUSTOM:MyOp"


def lstm_model(steps: int = 10, feats: int = 6, hidden: int = 8) -> bytes:
    """UNIDIRECTIONAL_SEQUENCE_LSTM with int8 weights, as TFLite fuses a Keras LSTM."""
    tensors = [T("x", (1, steps, feats))]
    ins = [0]
    for g in range(4):  # input-to-gate weights
        tensors.append(const(f"wi{g}", [hidden, feats]))
        ins.append(len(tensors) - 1)
    for g in range(4):  # recurrent weights
        tensors.append(const(f"wr{g}", [hidden, hidden]))
        ins.append(len(tensors) - 1)
    ins += [-1, -1, -1]  # no peepholes
    for g in range(4):
        tensors.append(const(f"b{g}", [hidden], "int32", value=0))
        ins.append(len(tensors) - 1)
    ins += [-1, -1]  # no projection
    tensors.append(T("h0", (1, hidden), "int8"))
    tensors.append(T("c0", (1, hidden), "int16"))
    ins += [len(tensors) - 2, len(tensors) - 1, -1, -1, -1, -1]
    tensors.append(T("y", (1, steps, hidden)))
    return craft(
        tensors,
        [Op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [len(tensors) - 1])],
        [0],
        [len(tensors) - 1],
    )


def test_lstm_on_cpu_with_reason() -> None:
    layer = only(lstm_model())
    assert layer.placement == "CPU"
    assert layer.reason == RECURRENT_REASON
    assert layer.macs == 10 * 4 * 8 * (6 + 8)


# ----------------------------------------------------------------------------- folding, epochs


def shape_chain(dynamic: bool = False) -> bytes:
    """CONV → SHAPE → STRIDED_SLICE → PACK → RESHAPE: the chain a dynamic batch leaves."""
    sig = (1, -1, -1, 8) if dynamic else (-1, 4, 4, 8)
    tensors = [
        T("x", (1, 4, 4, 8), sig=sig),  # 0
        T("shape", (4,), "int32", scales=None),  # 1
        ints("b", (0,)),
        ints("e", (1,)),
        ints("s", (1,)),  # 2, 3, 4
        T("n", (), "int32", scales=None),  # 5
        T("c128", (), "int32", struct_value(128), scales=None),  # 6
        T("newshape", (2,), "int32", scales=None),  # 7
        T("y", (1, 128)),  # 8
    ]
    ops = [
        Op("SHAPE", [0], [1]),
        Op("STRIDED_SLICE", [1, 2, 3, 4], [5]),
        Op("PACK", [5, 6], [7]),
        Op("RESHAPE", [0, 7], [8]),
    ]
    return craft(tensors, ops, [0], [8])


def struct_value(v: int) -> bytes:
    import struct

    return struct.pack("<i", v)


def test_shape_chain_folds() -> None:
    a = run(shape_chain())
    assert [f.op for f in a.folded] == ["SHAPE", "STRIDED_SLICE", "PACK"]
    assert [(x.op, x.placement) for x in a.layers] == [("RESHAPE", "NPU")]
    assert "folded 3 shape ops" in a.summary_lines()[0]
    assert any("folded 3 shape ops" in s for s in a.advice)


def test_shape_of_dynamic_tensor_stays() -> None:
    a = run(shape_chain(dynamic=True))
    assert not a.folded
    shape = a.layers[0]
    assert (shape.op, shape.placement) == ("SHAPE", "CPU")


def test_epochs_and_float_island() -> None:
    """conv(int8) → DEQUANTIZE → conv(float) → QUANTIZE → conv(int8) → SOFTMAX."""
    w = lambda n: const(n, [4, 1, 1, 4], scales=[0.01] * 4)  # noqa: E731
    wf = lambda n: const(n, [4, 1, 1, 4], "float32", scales=None)  # noqa: E731
    b = lambda n: const(n, [4], "int32", value=0, scales=[1e-4] * 4)  # noqa: E731
    bf = lambda n: const(n, [4], "float32", value=0, scales=None)  # noqa: E731
    f = lambda n: T(n, (1, 4, 4, 4), "float32", scales=None)  # noqa: E731
    tensors = [
        T("x", (1, 4, 4, 4)),
        w("w0"),
        b("b0"),
        T("a0", (1, 4, 4, 4)),  # 0-3
        f("a1"),
        wf("w1"),
        bf("b1"),
        f("a2"),  # 4-7
        T("a3", (1, 4, 4, 4)),
        w("w2"),
        b("b2"),
        T("a4", (1, 4, 4, 4)),  # 8-11
        T("y", (1, 4, 4, 4)),  # 12
    ]
    c = {"padding": 0, "strideH": 1, "strideW": 1}
    ops = [
        Op("CONV_2D", [0, 1, 2], [3], c),
        Op("DEQUANTIZE", [3], [4]),
        Op("CONV_2D", [4, 5, 6], [7], c),
        Op("QUANTIZE", [7], [8]),
        Op("CONV_2D", [8, 9, 10], [11], c),
        Op("SOFTMAX", [11], [12], {"beta": 1.0}),
    ]
    a = run(craft(tensors, ops, [0], [12]))
    assert [x.placement for x in a.layers] == ["NPU", "CPU", "CPU", "CPU", "NPU", "CPU"]
    assert (a.epochs_hw, a.epochs_sw) == (2, 4)
    assert [e.kind for e in a.epochs] == ["HW", "SW", "SW", "SW", "HW", "SW"]
    assert a.precision == "mixed"
    (island,) = a.float_islands
    assert island.ops == ("DEQUANTIZE", "CONV_2D", "QUANTIZE")
    q, dq = a.layers[3], a.layers[1]
    assert island.conversion_us == pytest.approx(q.est_us + dq.est_us)
    assert island.cpu_us == pytest.approx(a.layers[2].est_us)
    assert any(s.startswith("float island at layers 1–3") for s in a.advice)
    # The softmax at the end is not an island: nothing runs on the NPU after it.
    d = a.to_dict()
    assert d["float_islands"][0]["ops"] == ["DEQUANTIZE", "CONV_2D", "QUANTIZE"]


def test_views_join_the_epoch_before() -> None:
    tensors = [T("x", (1, 4, 4, 8)), ints("shape", (1, 128)), T("y", (1, 128)), T("z", (1, 128))]
    ops = [Op("RESHAPE", [0, 1], [2]), Op("RELU", [2], [3])]
    a = run(craft(tensors, ops, [0], [3]))
    assert [x.placement for x in a.layers] == ["NPU", "NPU"]
    assert a.epochs_hw == 1  # the view starts the epoch, the RELU it feeds fuses into it
    assert len(a.epochs[0].layers) == 2
