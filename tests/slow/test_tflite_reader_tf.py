"""The reader on a model TensorFlow converts (crafted models: tests/unit/test_tflite_reader.py)."""

from __future__ import annotations

import pytest
from npu_models import tf_model

from engine.tflite import read_model


def test_tf_int8_model_per_channel(tmp_path_factory: pytest.TempPathFactory) -> None:
    m = read_model(tf_model("conv_int8", tmp_path_factory))
    ops = [op.opcode for op in m.main.operators]
    assert ops[:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    dw = m.main.operators[1]
    assert dw.options["depth_multiplier"] == 1 and dw.options["stride_h"] == 2
    w = m.main.tensors[dw.inputs[1]]
    q = w.quantization
    assert q is not None and q.per_channel and q.quantized_dimension == 3
    assert len(q.scales) == 8 and all(s > 0 for s in q.scales)
    x = m.inputs[0]
    assert x.dtype == "int8" and x.quantization is not None and not x.quantization.per_channel
