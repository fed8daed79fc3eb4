"""Keras files artq must read or refuse in one true line, without TensorFlow: TFOpLambda
layers pass the safety check, a Lambda is refused by name, and damaged or foreign files say
what is wrong with them (truncated, config cut off, HDF5 that is not Keras)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from engine.errors import InputFileError, ModelError
from engine.modelfile import inspect_model_file


def _layer(cls: str, name: str, inbound: str | None, **cfg: Any) -> dict[str, Any]:
    nodes = [[[inbound, 0, 0, {}]]] if inbound else []
    return {"class_name": cls, "name": name, "config": {"name": name, **cfg}, "inbound_nodes": nodes}


def _h5_model(path: Path, *middle: tuple[str, dict[str, Any]]) -> Path:
    """A legacy tf-keras .h5 as tf-keras writes it: model_config JSON as a root attribute."""
    layers = [_layer("InputLayer", "in", None, batch_input_shape=[None, 8], dtype="float32")]
    prev = "in"
    for i, (cls, cfg) in enumerate(middle):
        layers.append(_layer(cls, f"l{i}", prev, **cfg))
        prev = f"l{i}"
    cfg = {"class_name": "Functional", "config": {
        "name": "m", "layers": layers, "input_layers": [["in", 0, 0]],
        "output_layers": [[prev, 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
        f.create_group("model_weights")
    return path


def test_tf_op_lambda_layers_pass_and_mark_the_model_for_tf_keras(tmp_path: Path) -> None:
    mf = inspect_model_file(_h5_model(
        tmp_path / "m.h5",
        ("TFOpLambda", {"function": "compat.v1.shape"}),
        ("TFOpLambda", {"function": "reshape"}),
        ("TFOpLambda", {"function": "tile"}),
        ("SlicingOpLambda", {"function": "__operators__.getitem"}),
    ))
    assert mf.format == "h5" and mf.needs_tf_keras
    assert mf.layer_classes.count("TFOpLambda") == 3
    plain = inspect_model_file(_h5_model(tmp_path / "p.h5", ("Dense", {"units": 2})))
    assert not plain.needs_tf_keras


def test_a_lambda_layer_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    path = _h5_model(tmp_path / "m.h5", ("TFOpLambda", {"function": "reshape"}),
                     ("Lambda", {"function": ["4wEAAAAAAAAA", None, None], "function_type": "lambda"}))
    with pytest.raises(ModelError) as err:
        inspect_model_file(path)
    line = str(err.value)
    assert "'l1'" in line and "Lambda layer" in line and "Python code" in line
    assert "TFOpLambda" not in line and "\n" not in err.value.message


def test_a_tf_op_lambda_calling_outside_the_tensor_is_refused(tmp_path: Path) -> None:
    path = _h5_model(tmp_path / "m.h5", ("TFOpLambda", {"function": "io.write_file"}))
    with pytest.raises(ModelError, match=r"'l0' is a TFOpLambda layer calling tf.io.write_file"):
        inspect_model_file(path)
    path = _h5_model(tmp_path / "n.h5", ("TFOpLambda", {"function": "numpy_function"}))
    with pytest.raises(ModelError, match="numpy_function"):
        inspect_model_file(path)


def test_an_unregistered_custom_layer_is_named_with_what_to_do() -> None:
    from engine.custom_objects import unknown_layer_error

    k3 = ("Unknown layer: 'FancyNorm'. Please ensure you are using a "
          "`keras.utils.custom_object_scope` and that this object is included in the scope.")
    err = unknown_layer_error("m.h5", k3)
    assert err is not None and "'FancyNorm'" in err.message and "custom_object_scope" not in str(err)
    assert "model.custom_objects" in (err.hint or "")
    k3_keras = "Could not locate class 'Blur'. Make sure custom classes are decorated with ..."
    assert "'Blur'" in unknown_layer_error("m.keras", k3_keras).message  # type: ignore[union-attr]
    assert unknown_layer_error("m.h5", "Input 0 of layer dense is incompatible") is None


def _keras_zip(path: Path, config: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        z.writestr("config.json", config)
        z.writestr("model.weights.h5", np.random.default_rng(0).bytes(4096))
    return path


def test_a_truncated_keras_file_says_truncated(tmp_path: Path) -> None:
    whole = _keras_zip(tmp_path / "whole.keras", json.dumps({"class_name": "Sequential"}).encode())
    cut = tmp_path / "cut.keras"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputFileError, match="is truncated") as err:
        inspect_model_file(cut)
    assert "not a Keras 3 model" not in str(err.value)


def test_a_cut_off_config_json_is_not_called_missing(tmp_path: Path) -> None:
    cfg = json.dumps({"class_name": "Functional", "config": {"layers": []}}).encode()
    path = _keras_zip(tmp_path / "m.keras", cfg[: len(cfg) // 2])
    with pytest.raises(InputFileError, match="config.json that is cut off or not valid JSON") as err:
        inspect_model_file(path)
    assert "holds no" not in str(err.value)


def test_an_hdf5_file_that_is_not_keras_is_not_called_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 4), "float32"))
    with pytest.raises(InputFileError, match="not a Keras model") as err:
        inspect_model_file(path)
    assert "weights only" not in str(err.value)
    # save_weights' own layout still reads as weights only.
    weights = tmp_path / "w.h5"
    with h5py.File(weights, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        f.create_group("dense")
    with pytest.raises(InputFileError, match="holds weights only"):
        inspect_model_file(weights)

