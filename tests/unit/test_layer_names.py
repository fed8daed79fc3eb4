"""Names of ops for people: each after its own output tensor, unique in a model.

The tensor names are the converter's, copied from a real INT8 conversion of a Keras 3 model
(Conv2D → BatchNorm → ReLU layer → Flatten → a nested Sequential of two Dense → Dense).
"""

from __future__ import annotations

import csv
import io

from engine.layer_names import layer_names, model_layer_names, own_path, short_name
from engine.layers import layers_csv, merge_layers

CONV = "functional_1_1/re_lu_1/Relu;functional_1_1/conv2d_1/convolution"
FLAT = "functional_1_1/flatten_1/Reshape"
FC1 = "functional_1_1/head_1/dense_1/MatMul;functional_1_1/head_1/dense_1/Relu"
FC2 = "functional_1_1/head_1/dense_1_2/MatMul;functional_1_1/head_1/dense_1_2/Relu"
FC3 = "functional_1_1/dense_2_1/MatMul1"
OUT = "StatefulPartitionedCall_1:0"
OPS = [(CONV, "CONV_2D"), (FLAT, "RESHAPE"), (FC1, "FULLY_CONNECTED"),
       (FC2, "FULLY_CONNECTED"), (FC3, "FULLY_CONNECTED"), (OUT, "SOFTMAX")]


def test_a_conv_is_named_after_itself_not_its_fused_activation() -> None:
    assert own_path(CONV, "CONV_2D") == "functional_1_1/conv2d_1/convolution"
    assert short_name(CONV, "CONV_2D") == "conv2d_1"
    # Without the op type, a fused activation is still not the op's own path.
    assert short_name(CONV) == "conv2d_1"
    # A ReLU op of its own is named after its ReLU layer.
    assert short_name("functional_1/re_lu/Relu", "RELU") == "re_lu"
    # tf-keras: BatchNorm folded into the conv, then a ReLU layer; the conv is the kernel.
    tfk = ("model/re_lu/Relu;model/batch_normalization/FusedBatchNormV3;"
           "model/conv2d/BiasAdd;model/conv2d/Conv2D")
    assert short_name(tfk, "CONV_2D") == "conv2d"
    assert short_name("functional_1/conv2d_1_2/Relu;functional_1/conv2d_1_2/BiasAdd") == "conv2d_1_2"


def test_two_fully_connected_ops_never_share_a_name() -> None:
    # The old naming (the first path's second part) called both Dense layers "head_1".
    assert short_name(FC1, "FULLY_CONNECTED") == short_name(FC2, "FULLY_CONNECTED") == "head_1"
    names = layer_names(OPS)
    assert names == {CONV: "conv2d_1", FLAT: "flatten_1", FC1: "head_1/dense_1",
                     FC2: "head_1/dense_1_2", FC3: "dense_2_1", OUT: OUT}
    assert len(set(names.values())) == len(OPS)


def test_ops_of_one_layer_get_more_of_their_path_then_a_number() -> None:
    flatten = [("m/flatten/Shape", "SHAPE"), ("m/flatten/strided_slice", "STRIDED_SLICE"),
               ("m/flatten/Reshape/shape", "PACK"), ("m/flatten/Reshape", "RESHAPE")]
    assert list(layer_names(flatten).values()) == [
        "flatten/Shape", "flatten/strided_slice", "flatten/Reshape/shape", "flatten/Reshape"]
    # Two paths alike to the end: numbered in execution order; a taken "#2" is skipped.
    same = [("m/x/Relu;a", "RELU"), ("m/x/Relu;b", "RELU"), ("m/x/Relu#2", "RELU")]
    names = layer_names(same)
    assert len(set(names.values())) == 3
    assert names["m/x/Relu;a"] == "x/Relu" and names["m/x/Relu;b"] == "x/Relu#2"


def test_layers_table_csv_and_sensitivity_use_the_same_names() -> None:
    npu = [{"index": i, "op": op, "name": t} for i, (t, op) in enumerate(OPS)]
    errors = {t: {"tensor": t, "suspect": False, "why": ""} for t, _ in OPS}
    names = model_layer_names(npu, errors)
    rows = merge_layers(npu, errors)
    assert [r["layer"] for r in rows] == [names[t] for t, _ in OPS]
    table = list(csv.DictReader(io.StringIO(layers_csv(rows))))
    assert [r["layer"] for r in table][2:4] == ["head_1/dense_1", "head_1/dense_1_2"]
    assert [r["name"] for r in table] == [t for t, _ in OPS]
    # Without the NPU's op list, the candidates' op types name the analysed tensors.
    alone = model_layer_names((), errors, [{"tensor": CONV, "op": "CONV_2D"}])
    assert alone[CONV] == "conv2d_1" and alone[FC1] != alone[FC2]
