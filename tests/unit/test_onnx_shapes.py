"""When the INT8 stage skips onnxruntime's symbolic shape inference: only where ONNX's own
inference already fixes every tensor's shape (the pass costs a sympy import, and a PyTorch
one where that is installed)."""

from __future__ import annotations

from pathlib import Path

from onnx_models import ONNX_TESTS, conv_classifier, onnx

from engine.backends.onnx.quantize import shapes_all_known

pytestmark = ONNX_TESTS


def test_a_static_graph_needs_no_symbolic_pass(tmp_path: Path) -> None:
    assert shapes_all_known(str(conv_classifier(tmp_path / "m.onnx")))


def test_an_open_batch_dimension_keeps_it(tmp_path: Path) -> None:
    assert not shapes_all_known(str(conv_classifier(tmp_path / "m.onnx", shape=("N", 1, 8, 8))))


def test_a_tensor_of_unknown_length_keeps_it(tmp_path: Path) -> None:
    # NonZero's output length depends on the data: ONNX leaves it open.
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("NonZero", ["x"], ["nz"]),
         onnx.helper.make_node("Cast", ["nz"], ["y"], to=onnx.TensorProto.FLOAT)],
        "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    path = tmp_path / "nz.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    assert not shapes_all_known(str(path))


def test_an_unreadable_file_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert not shapes_all_known(str(tmp_path / "bad.onnx"))


def test_weights_in_an_external_file_are_not_needed_to_tell(tmp_path: Path) -> None:
    model = onnx.load(conv_classifier(tmp_path / "m.onnx"))
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.bin", size_threshold=0)
    (tmp_path / "ext.bin").write_bytes(b"")  # the weights gone: shapes are in the graph
    assert shapes_all_known(str(tmp_path / "ext.onnx"))


def test_a_subgraph_keeps_it(tmp_path: Path) -> None:
    # Every tensor here is typed, so only the If's branches decide: what a subgraph computes
    # ONNX does not always infer, and such a graph keeps the pass, as before.
    def branch(name: str, value: float) -> onnx.GraphProto:
        return onnx.helper.make_graph(
            [onnx.helper.make_node("Constant", [], [name], value=onnx.helper.make_tensor(
                "v", onnx.TensorProto.FLOAT, [1, 4], [value] * 4))],
            name, [], [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, 4])])

    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         onnx.helper.make_node("Cast", ["s"], ["c"], to=onnx.TensorProto.BOOL),
         onnx.helper.make_node("If", ["c"], ["y"], then_branch=branch("a", 1.0),
                          else_branch=branch("b", 0.0))],
        "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "if.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    assert not shapes_all_known(str(path))
