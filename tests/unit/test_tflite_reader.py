"""The TFLite reader: fields, options, quantization, and bad files that must not crash."""

from __future__ import annotations

import os
import random
import struct

import pytest
from npu_models import REFERENCE_DIR, Op, T, conv_model, craft, ints, reference_model

from engine.errors import TFLiteReadError
from engine.tflite import read_model, read_model_bytes

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def test_crafted_conv_fields() -> None:
    m = read_model_bytes(conv_model(stride=2, in_shape=(1, 8, 8, 4), out_ch=8), "conv.tflite")
    assert m.version == 3
    assert m.description == "crafted by tests/npu_models.py"
    op = m.main.operators[0]
    assert op.opcode == "CONV_2D"
    assert op.options["stride_h"] == 2 and op.options["stride_w"] == 2
    assert op.options["padding"] == "SAME"
    assert op.options["fused_activation_function"] == "RELU"
    assert op.options["dilation_h_factor"] == 1
    x, w, b, y = m.main.tensors
    assert x.shape == (1, 8, 8, 4) and x.dtype == "int8" and not x.is_constant
    assert w.is_constant and w.const_bytes == 8 * 3 * 3 * 4
    assert w.quantization is not None and w.quantization.per_channel
    assert len(w.quantization.scales) == 8 and w.quantization.zero_points == (0,) * 8
    assert b.dtype == "int32" and b.const_bytes == 32
    assert y.shape == (1, 4, 4, 8) and y.nbytes == 128
    assert m.inputs == (x,) and m.outputs == (y,)
    assert m.constant_bytes == 288 + 32
    assert bytes(m.buffer_data(b)) == b"\0" * 32


def test_shape_signature_and_dynamic() -> None:
    data = conv_model(sig=(-1, 8, 8, 4))
    x = read_model_bytes(data).main.tensors[0]
    assert x.shape_signature == (-1, 8, 8, 4)
    assert not x.is_dynamic  # an unknown batch only
    data = conv_model(sig=(1, -1, -1, 4))
    assert read_model_bytes(data).main.tensors[0].is_dynamic


def test_pool_and_reducer_options() -> None:
    tensors = [T("x", (1, 8, 8, 4)), T("p", (1, 4, 4, 4)), ints("axes", (1, 2)), T("m", (1, 4))]
    ops = [
        Op(
            "MAX_POOL_2D",
            [0],
            [1],
            {"filterHeight": 2, "filterWidth": 2, "strideH": 2, "strideW": 2, "padding": 1},
        ),
        Op("MEAN", [1, 2], [3], {"keepDims": False}),
    ]
    m = read_model_bytes(craft(tensors, ops, [0], [3]))
    pool, mean = m.main.operators
    assert pool.options["filter_height"] == 2 and pool.options["padding"] == "VALID"
    assert mean.options["keep_dims"] is False
    assert m.main.tensors[2].dtype == "int32" and m.main.tensors[2].quantization is None


def test_reference_model_reads(request: pytest.FixtureRequest) -> None:
    path = reference_model("yamnet_256_64x96_tl_int8.tflite")
    m = read_model(path)
    assert [op.opcode for op in m.main.operators][:3] == [
        "TRANSPOSE",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
    ]
    assert m.signatures[0].key == "serving_default"
    assert m.signatures[0].inputs[0][1] == m.main.inputs[0]
    assert m.inputs[0].shape_signature == (-1, 64, 96, 1)
    assert m.outputs[0].dtype == "float32"
    assert m.constant_bytes == 139200


# ----------------------------------------------------------------------------- bad files


def _good() -> bytes:
    return conv_model()


def test_missing_file(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(TFLiteReadError, match="no such file"):
        read_model(tmp_path / "nope.tflite")


def test_directory(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(TFLiteReadError, match="folder"):
        read_model(tmp_path)


@pytest.mark.parametrize("data", [b"", b"TFL3", b"\0" * 7])
def test_too_short(data: bytes) -> None:
    with pytest.raises(TFLiteReadError, match="too short"):
        read_model_bytes(data, "short.tflite")


def test_not_tflite_identifier() -> None:
    with pytest.raises(TFLiteReadError, match=r"not a TFLite flatbuffer .*'TFL3'") as info:
        read_model_bytes(b"PK\x03\x04" + b"\0" * 100, "archive.zip")
    assert "archive.zip" in str(info.value)
    assert info.value.hint  # says what to pass instead


def test_root_offset_past_end() -> None:
    bad = struct.pack("<I", 10_000) + b"TFL3" + b"\0" * 32
    with pytest.raises(TFLiteReadError, match="root table offset"):
        read_model_bytes(bad)


@pytest.mark.parametrize("cut", [0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_truncated(cut: float) -> None:
    data = _good()
    n = max(8, int(len(data) * cut))
    with pytest.raises(TFLiteReadError) as info:
        read_model_bytes(data[:n], "cut.tflite")
    assert str(info.value).startswith("cut.tflite: ")


def test_random_bytes_never_crash() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        n = rng.randrange(8, 600)
        data = bytearray(rng.randbytes(n))
        if rng.random() < 0.7:
            data[4:8] = b"TFL3"  # get past the identifier check most of the time
        try:
            read_model_bytes(bytes(data), "random.tflite")
        except TFLiteReadError as exc:
            assert "random.tflite" in str(exc)


def test_bit_flips_never_crash() -> None:
    good = _good()
    rng = random.Random(99)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        try:
            m = read_model_bytes(bytes(data), "flipped.tflite")
        except TFLiteReadError:
            continue
        assert m.subgraphs  # parsed: still a model


def test_forged_vector_length_fails_fast() -> None:
    """A vector length near 2**32 must be rejected, not looped over."""
    good = bytearray(_good())
    m = read_model_bytes(bytes(good))
    # Find the tensors vector: its length word equals the tensor count (4) and is followed
    # by offsets; forge every plausible candidate until the reader rejects one.
    count = len(m.main.tensors)
    forged = 0
    for pos in range(8, len(good) - 4, 4):
        if struct.unpack_from("<I", good, pos)[0] == count:
            data = bytearray(good)
            struct.pack_into("<I", data, pos, 0x7FFFFFF0)
            try:
                read_model_bytes(bytes(data))
            except TFLiteReadError:
                forged += 1
    assert forged >= 1


def test_external_buffer_offset_size() -> None:
    """Buffers stored after the flatbuffer (models over 2 GB) are sized from offset/size."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    base = read_model_bytes(_good())
    model = fb.ModelT.InitFromPackedBuf(_good(), 0)
    w_buf = base.main.tensors[1].buffer
    payload = bytes(range(256)) * 2  # 512 bytes appended after the flatbuffer
    model.buffers[w_buf].data = None
    model.buffers[w_buf].offset = 2  # placeholder, non-default so the field is written
    model.buffers[w_buf].size = len(payload)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    head = bytes(b.Output())
    # Re-pack with the real offset (the flatbuffer's size does not change with it).
    model.buffers[w_buf].offset = len(head)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    head = bytes(b.Output())
    assert model.buffers[w_buf].offset == len(head)
    m = read_model_bytes(head + payload, "big.tflite")
    w = m.main.tensors[1]
    assert w.is_constant and w.const_bytes == 512
    assert bytes(m.buffer_data(w)) == payload
    with pytest.raises(TFLiteReadError, match="past the end"):
        read_model_bytes(head + payload[:100], "big.tflite")


def test_bulk_vector_slots_match_generated_accessors() -> None:
    """The reader decodes numeric vectors from fixed vtable slots; they must agree with the
    generated ``*AsNumpy`` accessors on every tensor and operator of a real model."""
    from ai_edge_litert import schema_py_generated as fb

    from engine.tflite import reader as r

    path = REFERENCE_DIR / "st_yolo_lc_v1_192_int8.tflite"
    data = path.read_bytes() if path.is_file() else conv_model()
    sg = fb.Model.GetRootAs(data, 0).Subgraphs(0)
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        assert r._ints(t, r.SLOT_TENSOR_SHAPE) == tuple(t.ShapeAsNumpy().tolist())
        if not t.ShapeSignatureIsNone():
            assert r._vec(t, r.SLOT_TENSOR_SHAPE_SIGNATURE, "i") == tuple(
                t.ShapeSignatureAsNumpy().tolist()
            )
        q = t.Quantization()
        if q is not None and not q.ScaleIsNone():
            assert r._vec(q, r.SLOT_QUANT_SCALE, "f") == tuple(q.ScaleAsNumpy().tolist())
            assert r._vec(q, r.SLOT_QUANT_ZERO_POINT, "q") == tuple(q.ZeroPointAsNumpy().tolist())
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        assert r._ints(op, r.SLOT_OPERATOR_INPUTS) == tuple(op.InputsAsNumpy().tolist())
        assert r._ints(op, r.SLOT_OPERATOR_OUTPUTS) == tuple(op.OutputsAsNumpy().tolist())
    assert r._ints(sg, r.SLOT_SUBGRAPH_INPUTS) == tuple(sg.InputsAsNumpy().tolist())
    assert r._ints(sg, r.SLOT_SUBGRAPH_OUTPUTS) == tuple(sg.OutputsAsNumpy().tolist())
