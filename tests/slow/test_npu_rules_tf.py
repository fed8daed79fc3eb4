"""Placement rules on small models TensorFlow builds and converts (the crafted ones are in
tests/unit/test_npu_rules.py)."""

from __future__ import annotations

import pytest
from npu_models import tf_model

from engine.npu import analyze
from engine.npu.rules import RECURRENT_REASON, SW_FLOAT


def test_tf_int8_convnet(tmp_path_factory: pytest.TempPathFactory) -> None:
    a = analyze(tf_model("conv_int8", tmp_path_factory))
    placed = [(x.op, x.placement) for x in a.layers]
    assert placed == [
        ("CONV_2D", "NPU"),
        ("DEPTHWISE_CONV_2D", "NPU"),
        ("CONV_2D", "NPU"),
        ("MAX_POOL_2D", "NPU"),
        ("MEAN", "NPU"),
        ("FULLY_CONNECTED", "NPU"),
        ("SOFTMAX", "CPU"),
    ]
    assert a.precision == "int8" and (a.epochs_hw, a.epochs_sw) == (6, 1)
    assert a.layers[0].macs == 16 * 16 * 8 * 3 * 3 * 3


def test_tf_float_model_all_cpu(tmp_path_factory: pytest.TempPathFactory) -> None:
    a = analyze(tf_model("conv_float", tmp_path_factory))
    assert a.precision == "float32" and a.ops_npu == 0 and a.ops_cpu == len(a.layers) == 7
    assert all(x.tier == SW_FLOAT for x in a.layers)
    assert all(
        x.reason == "float32 tensors: the NPU runs INT8 only" for x in a.layers if x.op != "SOFTMAX"
    )
    assert a.advice[0].startswith("every layer runs on the CPU: float32 tensors")


def test_tf_hybrid_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    a = analyze(tf_model("hybrid", tmp_path_factory))
    fcs = [x for x in a.layers if x.op == "FULLY_CONNECTED"]
    assert fcs and fcs[0].rule == "no_hybrid" and fcs[0].placement == "CPU"
    assert a.precision == "hybrid"


def test_tf_lstm_loop(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keras 3's LSTM converts to a WHILE loop; it is recognised as recurrent."""
    a = analyze(tf_model("lstm_float", tmp_path_factory))
    (loop,) = [x for x in a.layers if x.op == "WHILE"]
    assert loop.placement == "CPU" and loop.kind == "recurrent"
    assert loop.reason.endswith(RECURRENT_REASON)
    assert loop.macs >= 12 * 4 * 8 * (8 + 8)  # 12 steps of 4 gates
    assert any(s.startswith("the WHILE takes") for s in a.advice)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tf_mixed_model_float_island(tmp_path_factory: pytest.TempPathFactory) -> None:
    a = analyze(tf_model("mixed_int8", tmp_path_factory))
    assert a.precision == "mixed"
    (island,) = a.float_islands
    assert island.ops == ("DEQUANTIZE", "CONV_2D", "QUANTIZE")
    assert island.conversion_us > 0 and island.cpu_us > 0
    conv = [x for x in a.layers if x.op == "CONV_2D"]
    assert [x.placement for x in conv] == ["NPU", "CPU"]
