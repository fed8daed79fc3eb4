"""Corrupt ``.tflite`` files: the reader rejects them in one line, and nothing reaches the
NPU analysis that could crash it.

The fuzz test mutates the reference models (and crafted ones, so it runs without them)
with seeded bit flips, truncations and spliced offsets, and runs each mutant through the
reader and the whole ``artq inspect --json`` path: it works or fails with an EngineError
in one line, never a traceback. The other tests pin each structural check of the reader
and each crash the fuzzer found (a scalar-output broadcast, loops nested past the stack).
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import flatbuffers
import pytest
from ai_edge_litert import schema_py_generated as fb
from npu_models import (
    REFERENCE_DIR,
    Graph,
    Op,
    T,
    const,
    conv_model,
    craft,
    loop_model,
    single_op,
    write,
)

from engine.cli import main
from engine.errors import EngineError, TFLiteReadError
from engine.npu import analyze
from engine.tflite import read_model, read_model_bytes

#: Words of the flatbuffers runtime and struct that must never reach a user.
RAW = ("unpack_from", "struct.error", "requires a buffer", "bad number", "Traceback")


def _classifier() -> bytes:
    """CONV_2D → QUANTIZE → MEAN → FULLY_CONNECTED → SOFTMAX: the ops the rules index."""
    tensors = [
        T("x", (1, 8, 8, 3)),
        const("w", [4, 3, 3, 3], scales=[0.01] * 4),
        const("b", [4], "int32", value=0),
        T("c", (1, 8, 8, 4)),
        T("q", (1, 8, 8, 4)),
        T("axes", (2,), "int32", struct.pack("<2i", 1, 2), scales=None),
        T("m", (1, 4)),
        const("fw", [10, 4]),
        const("fb", [10], "int32", value=0),
        T("logits", (1, 10)),
        T("probs", (1, 10)),
    ]
    ops = [
        Op("CONV_2D", [0, 1, 2], [3], {"padding": 0, "strideH": 1, "strideW": 1}),
        Op("QUANTIZE", [3], [4]),
        Op("MEAN", [4, 5], [6], {"keepDims": False}),
        Op("FULLY_CONNECTED", [6, 7, 8], [9]),
        Op("SOFTMAX", [9], [10], {"beta": 1.0}),
    ]
    return craft(tensors, ops, [0], [10])


def _repack(data: bytes, edit) -> bytes:  # noqa: ANN001 - a callable on the object API model
    """``data`` after ``edit(model)`` on its object-API form: a file a converter would never
    write, but one a flatbuffer can hold."""
    model = fb.ModelT.InitFromPackedBuf(data, 0)
    edit(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _rejects(data: bytes, match: str) -> str:
    with pytest.raises(TFLiteReadError, match=match) as info:
        read_model_bytes(data, "bad.tflite")
    text = str(info.value)
    assert text.startswith("bad.tflite: ") and "\n" not in text
    return text


# ----------------------------------------------------------------------------- structure


def test_operator_without_input_is_rejected_by_the_reader() -> None:
    """The issue's case: a QUANTIZE left with no input reached IndexError in the rules."""

    def drop_inputs(m) -> None:  # noqa: ANN001
        m.subgraphs[0].operators[1].inputs = []

    _rejects(_repack(_classifier(), drop_inputs), r"operator 1 \(QUANTIZE\) has no input")


def test_operator_without_input_fails_inspect_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def drop_inputs(m) -> None:  # noqa: ANN001
        m.subgraphs[0].operators[1].inputs = []

    path = write(tmp_path, "no_input", _repack(_classifier(), drop_inputs))
    assert main(["inspect", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: operator 1 (QUANTIZE)")


@pytest.mark.parametrize(
    ("op", "edit", "match"),
    [
        (0, lambda o: setattr(o, "outputs", []), r"operator 0 \(CONV_2D\) has no output"),
        (
            0,
            lambda o: setattr(o, "inputs", [0]),
            r"CONV_2D\) has 1 input; CONV_2D needs at least 2",
        ),
        (0, lambda o: setattr(o, "inputs", [0, -1, 2]), r"input 1 is empty \(-1\)"),
        (2, lambda o: setattr(o, "inputs", [4]), r"MEAN\) has 1 input; MEAN needs at least 2"),
        (4, lambda o: setattr(o, "outputs", [-1]), r"output 0 is empty"),
        (3, lambda o: setattr(o, "intermediates", [99]), r"refers to tensor 99"),
        (1, lambda o: setattr(o, "opcodeIndex", 40), r"uses opcode 40, beyond the 5 codes"),
    ],
)
def test_operator_faults_are_rejected(op: int, edit, match: str) -> None:  # noqa: ANN001
    _rejects(_repack(_classifier(), lambda m: edit(m.subgraphs[0].operators[op])), match)


def test_tensor_buffer_beyond_the_buffers_is_rejected() -> None:
    def edit(m) -> None:  # noqa: ANN001
        m.subgraphs[0].tensors[1].buffer = 77

    text = _rejects(_repack(_classifier(), edit), r"tensor 1 uses buffer 77")
    assert "buffers" in text


def test_signature_out_of_range_is_rejected() -> None:
    def edit(m) -> None:  # noqa: ANN001
        sig = fb.SignatureDefT()
        sig.signatureKey = b"serving_default"
        sig.subgraphIndex = 3
        m.signatureDefs = [sig]

    _rejects(_repack(_classifier(), edit), r"signature 'serving_default' names subgraph 3")


def test_tensor_too_large_to_count_is_rejected() -> None:
    def edit(m) -> None:  # noqa: ANN001
        m.subgraphs[0].tensors[3].shape = [2**31 - 1] * 9

    _rejects(_repack(_classifier(), edit), r"tensor 3 has shape .* 64-bit size")


def test_control_flow_reference_out_of_range_is_rejected() -> None:
    _rejects(
        loop_model(body=5), r"operator 0 \(WHILE\) runs subgraph 5 as its body, but the file has 3"
    )


@pytest.mark.parametrize(("body_calls", "match"), [(2, "its own subgraph 2"), (0, "leads back")])
def test_subgraphs_running_themselves_are_rejected(body_calls: int, match: str) -> None:
    """A body that runs itself, or the main graph, would send the loop-cost walk round for
    ever."""
    _rejects(loop_model(body_calls=body_calls), match)


def test_operand_of_higher_rank_than_output_is_no_broadcast() -> None:
    """Found by the fuzzer: the broadcast rule indexed a scalar output's last axis."""
    a = analyze(read_model_bytes(single_op("ADD", [(1, 4), (1, 4)], ())))
    (layer,) = a.layers
    assert layer.placement == "CPU" and layer.rule == "broadcast_supported"


def test_corrupt_offset_says_where_without_runtime_words() -> None:
    """An offset that points outside the file names the table being read and its byte."""
    good = bytearray(_classifier())
    m = fb.Model.GetRootAs(bytes(good), 0)
    pos = m.Subgraphs(0).Tensors(3)._tab.Pos  # the table of tensor 3 ("c")
    struct.pack_into("<i", good, pos, -(2**30))  # its vtable now lies far past the end
    text = _rejects(bytes(good), r"truncated or corrupt at byte \d+ \(subgraph 0, tensor 3\)")
    assert not any(w in text for w in RAW)


@pytest.mark.parametrize("source", ["crafted", "reference"])
def test_every_truncation_says_so_in_one_line(source: str) -> None:
    path = REFERENCE_DIR / "st_yolo_lc_v1_192_int8.tflite"
    if source == "reference" and not path.is_file():
        pytest.skip("shared/reference_models not present")
    good = _classifier() if source == "crafted" else path.read_bytes()
    rng = random.Random(7)
    cuts = range(8, len(good)) if source == "crafted" else rng.sample(range(8, len(good)), 150)
    for n in cuts:
        with pytest.raises(TFLiteReadError) as info:
            read_model_bytes(good[:n], "cut.tflite")
        text = str(info.value)
        assert "\n" not in text and not any(w in text for w in RAW), (n, text)


# ----------------------------------------------------------------------------- the fuzzer


def _structural(data: bytes, spans: tuple[tuple[int, int], ...], rng: random.Random) -> int:
    """A byte position outside every constant buffer: flatbuffer tables, vectors, offsets
    (flipping weight bytes changes numbers, not structure)."""
    for _ in range(100):
        p = rng.randrange(8, len(data))
        if not any(s <= p < s + n for s, n in spans):
            return p
    return rng.randrange(8, len(data))


def _mutant(good: bytes, spans: tuple[tuple[int, int], ...], rng: random.Random) -> bytes:
    data = bytearray(good)
    kind = rng.randrange(4)
    if kind == 0:  # bit flips
        for _ in range(rng.randrange(1, 8)):
            data[_structural(good, spans, rng)] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncation
        del data[rng.randrange(8, len(data)) :]
    elif kind == 2:  # an offset-sized word copied over another: tables point elsewhere
        for _ in range(rng.randrange(1, 4)):
            dst = _structural(good, spans, rng) & ~3
            src = _structural(good, spans, rng) & ~3
            if dst + 4 <= len(data) and src + 4 <= len(data):
                data[dst : dst + 4] = good[src : src + 4]
    else:  # a word set to a boundary value: counts, indices and offsets at their limits
        dst = _structural(good, spans, rng) & ~3
        value = rng.choice((0, 1, -1, -2, 2**31 - 1, -(2**31), len(good), rng.randrange(-64, 64)))
        if dst + 4 <= len(data):
            struct.pack_into("<i", data, dst, value)
    return bytes(data)


def _sources(scale: int) -> list[tuple[str, bytes, int]]:
    """(name, bytes, mutants to make): crafted models always, the reference models when
    present; the 240-operator EfficientNet takes ten times longer to inspect than the
    others, so it gets fewer mutants."""
    crafted = [
        ("classifier", _classifier()),
        ("loop", loop_model()),
        ("conv", conv_model(stride=2)),
    ]
    files = sorted(REFERENCE_DIR.glob("*.tflite")) if REFERENCE_DIR.is_dir() else []
    return [(n, data, 40 * scale) for n, data in crafted] + [
        (p.stem, p.read_bytes(), (8 if "efficientnet" in p.name else 20) * scale) for p in files
    ]


def test_mutants_read_or_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every mutant of every source either reads and inspects, or fails with an EngineError
    of one line naming the file: no other exception, no runtime words, no traceback."""
    rng = random.Random(20261202)
    counts = {"inspected": 0, "rejected": 0}
    for name, good, mutants in _sources(1):
        spans = read_model_bytes(good).buffer_spans
        for k in range(mutants):
            path = tmp_path / f"{name}_{k}.tflite"
            path.write_bytes(_mutant(good, spans, rng))
            try:
                read_model(path)
            except EngineError as exc:
                text = str(exc)
                assert text.startswith(f"{path}: ") and "\n" not in text, text
                assert not any(w in text for w in RAW), text
            code = main(["inspect", str(path), "--json"])
            out, err = capsys.readouterr()
            if code == 0:
                assert json.loads(out)["schema"] == "artq.npu/1" and err == ""
                counts["inspected"] += 1
            else:
                assert code == 2 and out == "", (path, code, err)
                lines = err.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), err
                assert not any(w in err for w in RAW), err
                counts["rejected"] += 1
            path.unlink()
    # Both outcomes are exercised: the mutations are neither all fatal nor all harmless.
    assert counts["inspected"] > 20 and counts["rejected"] > 20, counts


def _nested_loops(depth: int, width: int, trips: int) -> bytes:
    """A WHILE whose body runs ``width`` WHILEs of the next body, ``depth`` bodies deep (all
    sharing one cond of ``trips`` steps); the innermost body is one ADD of 4 elements."""
    i, x = T("i", (), "int32", scales=None), T("x", (1, 4))
    cond = Graph(
        [i, x, const("n", (), "int32", value=trips, scales=None), T("go", (), "bool")],
        [Op("LESS", [0, 2], [3])],
        [0, 1],
        [3],
        "cond",
    )
    bodies = [
        Graph(
            [i, x],
            [Op("WHILE", [0, 1], [0, 1], {"condSubgraphIndex": 1, "bodySubgraphIndex": k + 1})]
            * width
            if k < depth + 1
            else [Op("ADD", [1, 1], [1])],
            [0, 1],
            [0, 1],
            f"body{k}",
        )
        for k in range(2, depth + 2)
    ]
    main_graph = [i, x, T("i_out", (), "int32", scales=None), T("x_out", (1, 4))]
    loop = Op("WHILE", [0, 1], [2, 3], {"condSubgraphIndex": 1, "bodySubgraphIndex": 2})
    return craft(main_graph, [loop], [0, 1], [2, 3], subgraphs=[cond, *bodies])


def test_nested_loop_macs_count_each_body_once() -> None:
    """Two loops per body, three bodies, 10 trips: 10 × (2 × 10 × (2 × 10 × 4))."""
    (layer,) = analyze(read_model_bytes(_nested_loops(3, 2, 10))).layers
    assert layer.op == "WHILE" and layer.macs == 10 * (2 * 10 * (2 * 10 * 4))


def test_loops_nested_past_the_stack_are_counted_and_capped() -> None:
    """1500 nested loops of a million trips: deeper than Python's stack, and more MACs than
    a float holds. The count is capped, the estimate finite."""
    from engine.npu.cost import MAX_MACS

    a = analyze(read_model_bytes(_nested_loops(1500, 1, 1_000_000)))
    (layer,) = a.layers
    assert layer.macs == MAX_MACS and 0 < layer.est_us < float("inf")
    assert len(a.subgraphs) == 1501


def test_operators_of_their_own_arity_analyse_without_inputs_or_outputs() -> None:
    """A custom operator, or a builtin newer than the schema, may take no tensors: the
    reader keeps it and the analysis places it on the CPU."""
    tensors = [T("x", (1, 4)), T("y", (1, 4))]
    data = craft(tensors, [Op("RELU", [0], [1]), Op("CUSTOM", [], [], custom="Flush")], [0], [1])

    def newer(m) -> None:  # noqa: ANN001
        m.operatorCodes[0].builtinCode = 250  # RELU's code becomes one the schema lacks
        m.operatorCodes[0].deprecatedBuiltinCode = 127
        m.subgraphs[0].operators[0].inputs = []

    a = analyze(read_model_bytes(_repack(data, newer)))
    assert [(x.op, x.placement) for x in a.layers] == [
        ("UNKNOWN_250", "CPU"),
        ("CUSTOM:Flush", "CPU"),
    ]
