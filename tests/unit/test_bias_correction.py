"""Sequential bias correction on crafted INT8/float model pairs (LiteRT, no TensorFlow)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from npu_models import Op, T, craft

from engine.bias_correction import channel_error, correct, run, sqnr
from engine.tflite import read_model_bytes
from engine.tflite.bias import INT32_MAX, INT32_MIN, bias_layers, fold, read_bias, write_bias

C = 4
SX = 1 / 127  # input scale: the items are in [-1, 1]
DW = np.array([[0.3, -0.2, 0.5, 0.1], [0.2, 0.4, -0.3, 0.6], [-0.1, 0.2, 0.3, -0.4]] * 3,
              np.float32).reshape(1, 3, 3, C)
DB = np.array([0.05, -0.1, 0.2, 0.0], np.float32)
PW = np.array([[0.5, -0.3, 0.2, 0.1], [0.1, 0.6, -0.2, 0.3], [-0.4, 0.2, 0.5, -0.1],
               [0.2, 0.1, 0.3, 0.7]], np.float32).reshape(C, 1, 1, C)
PB = np.array([0.1, 0.0, -0.2, 0.05], np.float32)
DW_OPTS = {"padding": 0, "strideH": 1, "strideW": 1, "depthMultiplier": 1,
           "fusedActivationFunction": 0}
PW_OPTS = {"padding": 0, "strideH": 1, "strideW": 1, "fusedActivationFunction": 0}
SHAPE = (1, 8, 8, C)


def _f32(name: str, a: np.ndarray) -> T:
    return T(name, a.shape, "float32", a.astype("<f4").tobytes(), scales=None)


def float_model(prefix: str = "") -> bytes:
    """x → DEPTHWISE_CONV_2D 3×3 → y1 → CONV_2D 1×1 → y2, in float (its intermediate
    tensors' names prefixed: another exporter's names)."""
    tensors = [T("x", SHAPE, "float32", scales=None), _f32("dw", DW), _f32("db", DB),
               T(prefix + "y1", SHAPE, "float32", scales=None), _f32("pw", PW), _f32("pb", PB),
               T("y2", SHAPE, "float32", scales=None)]
    ops = [Op("DEPTHWISE_CONV_2D", [0, 1, 2], [3], DW_OPTS), Op("CONV_2D", [3, 4, 5], [6], PW_OPTS)]
    return craft(tensors, ops, [0], [6])


def _weights(name: str, w: np.ndarray, axis: int) -> tuple[T, np.ndarray]:
    other = tuple(i for i in range(w.ndim) if i != axis)
    scale = np.abs(w).max(axis=other) / 127
    q = np.rint(w / np.expand_dims(scale, other)).astype(np.int8)
    return T(name, w.shape, "int8", q.tobytes(), scales=list(scale), qdim=axis), scale


def _bias(name: str, b: np.ndarray, scale: np.ndarray, plant: np.ndarray) -> T:
    q = np.rint(b / scale).astype(np.int64) + plant
    return T(name, b.shape, "int32", struct.pack(f"<{len(q)}i", *q.tolist()),
             scales=list(scale))


def int8_model(s1: float, s2: float, plant_lsb: np.ndarray) -> bytes:
    """The float model quantized per channel, with ``plant_lsb`` (in y1's steps) added to
    the depthwise bias: a per-channel shift every later layer inherits."""
    dq, dscale = _weights("dw", DW, 3)
    pq, pscale = _weights("pw", PW, 0)
    dbs = SX * dscale
    plant = np.rint(plant_lsb * s1 / dbs).astype(np.int64)
    tensors = [T("x", SHAPE, "int8", scales=[SX]), dq, _bias("db", DB, dbs, plant),
               T("y1", SHAPE, "int8", scales=[s1]), pq,
               _bias("pb", PB, s1 * pscale, np.zeros(C, np.int64)),
               T("y2", SHAPE, "int8", scales=[s2])]
    ops = [Op("DEPTHWISE_CONV_2D", [0, 1, 2], [3], DW_OPTS), Op("CONV_2D", [3, 4, 5], [6], PW_OPTS)]
    return craft(tensors, ops, [0], [6])


def make_pair() -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """The INT8 model with its planted shift, the float model, 40 items, float outputs."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, *SHAPE[1:])).astype(np.float32)
    fp32 = float_model()
    ref = run(fp32, x, [])
    y1 = run(fp32, x, [3]).tensors[3]
    s1 = float(np.abs(y1).max()) / 100  # room for the planted shift
    s2 = float(np.abs(ref.outputs["y2"]).max()) / 100
    int8 = int8_model(s1, s2, np.array([4.0, -4.0, 6.0, -6.0]))
    return int8, fp32, x, ref.outputs["y2"]


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    return make_pair()


def _mean_error(content: bytes, x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    out = run(content, x, []).outputs["y2"]
    return np.abs((out - ref).reshape(-1, C).mean(axis=0))


def test_sequential_removes_a_planted_bias_and_one_shot_does_not(pair):  # noqa: ANN001
    int8, fp32, x, ref = pair
    before = _mean_error(int8, x, ref)
    seq = correct(int8, fp32, x, sequential=True).content
    once = correct(int8, fp32, x, sequential=False).content
    after, after_once = _mean_error(seq, x, ref), _mean_error(once, x, ref)
    # The planted shift dominates the output error, and sequential correction removes most.
    assert before.max() > 0.05
    assert after.max() < 0.2 * before.max()
    # All at once, the 1×1 conv is corrected for its input's shift as well as the
    # depthwise: the shift comes back with the other sign.
    assert after_once.max() > 0.5 * before.max()
    out = run(int8, x, []).outputs["y2"]
    s_before, s_seq = sqnr(out, ref), sqnr(run(seq, x, []).outputs["y2"], ref)
    assert s_seq > s_before + 6
    assert sqnr(run(once, x, []).outputs["y2"], ref) < s_seq - 6


def test_corrected_model_keeps_its_operators_and_loads_in_litert(pair):  # noqa: ANN001
    int8, fp32, x, ref = pair
    fixed = correct(int8, fp32, x)
    a, b = read_model_bytes(int8), read_model_bytes(fixed.content)
    assert [(o.opcode, o.inputs, o.outputs) for o in a.main.operators] == [
        (o.opcode, o.inputs, o.outputs) for o in b.main.operators]
    assert len(fixed.content) == len(int8)
    assert [t.name for t in a.main.tensors] == [t.name for t in b.main.tensors]
    # Only bias bytes differ.
    layers, _ = bias_layers(a)
    spans = [range(la.span[0], la.span[0] + la.span[1]) for la in layers]
    diff = [i for i, (p, q) in enumerate(zip(int8, fixed.content, strict=True)) if p != q]
    assert diff and all(any(i in s for s in spans) for i in diff)
    assert [f.layer.opcode for f in fixed.fixes] == ["DEPTHWISE_CONV_2D", "CONV_2D"]
    assert run(fixed.content, x[:2], []).outputs["y2"].shape == (2, *SHAPE[1:])


def test_fold_subtracts_the_error_in_bias_units():
    new, sat, left = fold(np.array([100, -5]), np.array([0.5, -0.25]), np.array([0.1, 0.05]))
    assert new.tolist() == [95, 0] and sat == 0 and left == 0


def test_fold_saturates_at_the_int32_limits():
    new, sat, left = fold(np.array([INT32_MAX - 2, INT32_MIN + 1, 7]),
                          np.array([-1e6, 1e6, 1e300]), np.array([1e-6, 1e-6, 1e-300]))
    assert new.tolist() == [INT32_MAX, INT32_MIN, INT32_MIN]
    assert sat == 3 and left == 0


def test_fold_leaves_zero_scale_and_unmeasured_channels():
    new, sat, left = fold(np.array([10, 20, 30, 40]), np.array([1.0, np.nan, 1.0, 1.0]),
                          np.array([0.0, 0.5, np.inf, 0.5]))
    assert new.tolist() == [10, 20, 30, 38]
    assert left == 3 and sat == 0


def test_write_bias_round_trips_and_refuses_what_int32_cannot_hold(pair):  # noqa: ANN001
    int8 = pair[0]
    layer = bias_layers(read_model_bytes(int8))[0][0]
    data = bytearray(int8)
    write_bias(data, layer, np.array([1, -2, INT32_MAX, INT32_MIN]))
    assert read_bias(data, layer).tolist() == [1, -2, INT32_MAX, INT32_MIN]
    with pytest.raises(ValueError, match="int32"):
        write_bias(data, layer, np.array([0, 0, 0, INT32_MAX + 1]))


def test_channel_error_ignores_values_a_fused_relu_clamps(pair):  # noqa: ANN001
    from dataclasses import replace  # noqa: PLC0415

    layer = replace(bias_layers(read_model_bytes(pair[0]))[0][0], act_range=(0.0, np.inf),
                    out_scale=0.1, out_zero_point=-128, bias_scale=(1.0,))
    # One channel: the float value is −1 (clamped to 0 in INT8) or 1.0 (INT8 reads 1.2).
    ref = np.array([-1.0] * 20 + [1.0] * 20, np.float32).reshape(-1, 1)
    q = np.array([-128] * 20 + [-116] * 20, np.int8).reshape(-1, 1)
    assert channel_error(q, ref, layer) == pytest.approx([0.2], abs=1e-5)


def test_carry_applies_the_correction_where_the_target_holds_the_same_bias(pair):  # noqa: ANN001
    from engine.bias_correction import carry  # noqa: PLC0415

    int8, fp32, x, _ = pair
    fixed = correct(int8, fp32, x).content
    same, n = carry(int8, fixed, int8)
    assert same == fixed and n == 2
    # A target whose depthwise bias differs (quantized otherwise) keeps its own.
    layers, _ = bias_layers(read_model_bytes(int8))
    other = bytearray(int8)
    write_bias(other, layers[0], read_bias(int8, layers[0]) + 1)
    got, n = carry(int8, fixed, bytes(other))
    assert n == 1
    assert read_bias(got, layers[0]).tolist() == (read_bias(int8, layers[0]) + 1).tolist()
    assert read_bias(got, layers[1]).tolist() == read_bias(fixed, layers[1]).tolist()


def test_layers_pair_by_place_when_the_float_names_differ(pair):  # noqa: ANN001
    int8, _, x, ref = pair
    fixed = correct(int8, float_model(prefix="exported_1/"), x)
    assert not fixed.skipped and len(fixed.fixes) == 2
    assert _mean_error(fixed.content, x, ref).max() < 0.2 * _mean_error(int8, x, ref).max()


def test_the_float_reference_budget_caps_the_items_fitted_on(pair, monkeypatch):  # noqa: ANN001
    import engine.bias_correction as bc  # noqa: PLC0415

    int8, fp32, x, _ = pair
    assert correct(int8, fp32, x).items == len(x)
    per_item = 2 * 4 * 8 * 8 * C  # two layer outputs of float32
    monkeypatch.setattr(bc, "REF_BUDGET", 10 * per_item)
    assert correct(int8, fp32, x).items == 10
