"""``artq inspect`` tells the truth about models beyond one static INT8 graph: the subgraphs
of a WHILE or IF are listed, a 16x8 model says int16, and dynamic shapes are warned about
rather than estimated silently at the size the file stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from npu_models import Graph, Op, T, conv_model, craft, loop_model, write

from engine.cli import main
from engine.npu import analyze
from engine.tflite import read_model_bytes


def _inspect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes
) -> tuple[dict, str]:
    """The JSON and the text ``artq inspect`` prints for ``data``."""
    path = write(tmp_path, name, data)
    assert main(["inspect", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert main(["inspect", str(path)]) == 0
    text = " ".join(capsys.readouterr().out.split())  # undo the console's wrapping
    return d, text


# ----------------------------------------------------------------------------- subgraphs


def test_while_subgraphs_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d, text = _inspect(tmp_path, capsys, "loop", loop_model())
    assert [x["op"] for x in d["layers"]] == ["WHILE"]
    assert d["subgraphs"] == [
        {
            "index": 1,
            "name": "cond",
            "ops": ["LESS"],
            "called_by": [{"subgraph": 0, "operator": 0, "op": "WHILE", "role": "cond"}],
            "signature": "",
        },
        {
            "index": 2,
            "name": "body",
            "ops": [],
            "called_by": [{"subgraph": 0, "operator": 0, "op": "WHILE", "role": "body"}],
            "signature": "",
        },
    ]
    assert "Subgraph 1 'cond': cond of WHILE (layer 0), 1 op (LESS); runs on the CPU" in text
    assert "Subgraph 2 'body': body of WHILE (layer 0), 0 ops (no operators)" in text


def test_if_branches_and_nested_calls_are_listed() -> None:
    """An IF's two branches, and a WHILE inside a branch: every subgraph named once, with
    the operator that runs it."""
    x, y = T("x", (1, 4)), T("y", (1, 4))
    flag = T("flag", (), "bool", scales=None)
    i = T("i", (), "int32", scales=None)
    data = craft(
        [flag, x, y],
        [Op("IF", [0, 1], [2], {"thenSubgraphIndex": 1, "elseSubgraphIndex": 2})],
        [0, 1],
        [2],
        subgraphs=[
            Graph([x, y], [Op("RELU", [0], [1]), Op("TANH", [1], [1])], [0], [1], "then"),
            Graph(
                [i, x],
                [Op("WHILE", [0, 1], [0, 1], {"condSubgraphIndex": 3, "bodySubgraphIndex": 3})],
                [1],
                [1],
                "else",
            ),
            Graph([i, x, T("go", (), "bool")], [Op("LESS", [0, 0], [2])], [0, 1], [2], "step"),
        ],
    )
    a = analyze(read_model_bytes(data, "if.tflite"))
    got = [
        (s.index, s.name, [(c.subgraph, c.operator, c.op, c.role) for c in s.called_by])
        for s in a.subgraphs
    ]
    assert got == [
        (1, "then", [(0, 0, "IF", "then")]),
        (2, "else", [(0, 0, "IF", "else")]),
        (3, "step", [(2, 0, "WHILE", "cond"), (2, 0, "WHILE", "body")]),
    ]
    lines = a.summary_lines()
    assert (
        "Subgraph 1 'then': then of IF (layer 0), 2 ops (RELU, TANH); runs on the CPU with it"
        in lines
    )
    assert any(
        x.startswith("Subgraph 3 'step': cond of WHILE (subgraph 2 op 0) and 1 more") for x in lines
    )


def test_single_graph_json_has_no_subgraphs_key() -> None:
    """The contract a one-graph model prints is unchanged."""
    d = analyze(read_model_bytes(conv_model())).to_dict()
    assert "subgraphs" not in d


# ----------------------------------------------------------------------------- precision


def test_int16_activations_say_int16(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d, text = _inspect(tmp_path, capsys, "x16", conv_model(dtype="int16", weight_dtype="int8"))
    assert d["summary"]["precision"] == "int16"
    assert "Precision: INT16 activations with INT8 weights (16x8 quantization)" in text
    assert "INT8 activations" not in text
    assert any("int16 activations (16x8 quantization)" in x for x in d["advice"])
    assert d["layers"][0]["placement"] == "CPU"


def test_int8_model_says_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d, text = _inspect(tmp_path, capsys, "x8", conv_model())
    assert d["summary"]["precision"] == "int8"
    assert "Precision: INT8 activations and weights" in text


def test_an_int16_tensor_or_two_do_not_make_an_int8_model_int16() -> None:
    """An INT8 model may hold an int16 tensor (an LSTM's cell state); most outputs decide."""
    tensors = [T("x", (1, 4)), T("a", (1, 4)), T("b", (1, 4)), T("c", (1, 4), "int16")]
    ops = [Op("RELU", [0], [1]), Op("TANH", [1], [2]), Op("LOGISTIC", [2], [3])]
    assert analyze(read_model_bytes(craft(tensors, ops, [0], [3]))).precision == "int8"


# ----------------------------------------------------------------------------- dynamic shapes


def test_dynamic_shape_is_warned_in_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the converter writes it: -1 in the signature, 1 in the stored shape."""
    data = conv_model(in_shape=(1, 1, 1, 4), sig=(1, -1, -1, 4))
    d, text = _inspect(tmp_path, capsys, "dyn", data)
    warning = d["warnings"][0]
    assert warning.startswith(
        "dynamic shape: input 'x' is [1, -1, -1, 4]; the file stores [1, 1, 1, 4]"
    )
    assert "convert with a fixed input shape" in warning
    assert "Operators:" in text and text.index("Warning: dynamic shape: input 'x'") < text.index(
        "Operators:"
    )


def test_names_in_summary_lines_are_not_console_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warning quotes the tensor's name; "[/x]" in it is text, not a closing tag."""
    tensors = [T("in[/x]", (1, 1, 4), sig=(1, -1, 4)), T("out", (1, 1, 4), sig=(1, -1, 4))]
    data = craft(tensors, [Op("RELU", [0], [1])], [0], [1])
    d, text = _inspect(tmp_path, capsys, "markup", data)
    assert "dynamic shape: input 'in[/x]' is [1, -1, 4] (and 1 more tensors)" in text
    assert d["warnings"][0].startswith("dynamic shape: input 'in[/x]'")


def test_unknown_batch_alone_is_no_dynamic_shape() -> None:
    a = analyze(read_model_bytes(conv_model(sig=(-1, 8, 8, 4))))
    assert a.dynamic == () and not any("dynamic" in w for w in a.warnings)
    assert not a.summary_lines()[0].startswith("Warning")
