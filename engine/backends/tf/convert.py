"""TensorFlow side: load a model, export it with batch 1, convert FP32 → FP16 → INT8.

Only the TensorFlow child process (:mod:`engine.backends.tf.process`) imports this module, so the rest
of the engine — and every UI — stays free of TensorFlow and of its crashes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.lite.python import convert as _tfl_convert  # noqa: E402
from tensorflow.lite.python import lite as _tfl_lite  # noqa: E402

from ...custom_objects import unknown_layer_error  # noqa: E402
from ...errors import ConversionError, ModelError  # noqa: E402
from ...modelfile import inspect_model_file, static_input_shape  # noqa: E402


def load_keras(path: str, fmt: str, custom_objects: str = "") -> Any:
    """The Keras model in ``path``; ``custom_objects``: the ``model.custom_objects`` spec,
    whose dict Keras needs to rebuild the user's own layer classes."""
    import keras  # noqa: PLC0415

    from .custom_layers import load_custom_objects  # noqa: PLC0415

    objects = load_custom_objects(custom_objects)
    if fmt == "h5" and inspect_model_file(path).needs_tf_keras:
        # TFOpLambda layers exist only in tf-keras; the file was checked (no Lambda, no
        # TensorFlow call outside the tensor) before we got here.
        return _load_tf_keras(path, None, objects, custom_objects)
    try:
        return keras.models.load_model(path, custom_objects=objects, compile=False,
                                       safe_mode=True)
    except Exception as k3_error:  # noqa: BLE001 - Keras raises many types here
        unknown = unknown_layer_error(path, str(k3_error), custom_objects)
        if fmt != "h5":
            raise unknown or ModelError(
                f"{path}: Keras could not load the model: {_first_line(k3_error)}",
                "check that it was saved by Keras 3 with model.save('model.keras')",
            ) from None
        # Some Keras 2 .h5 files only load in tf-keras. The file was checked for Lambda
        # layers before we got here, so loading it runs no code from the file.
        return _load_tf_keras(path, k3_error, objects, custom_objects)


_load_keras = load_keras  # the name the QAT path and older tests use


def _load_tf_keras(path: str, k3_error: BaseException | None,
                   objects: dict[str, Any] | None, spec: str) -> Any:
    try:
        import tf_keras  # noqa: PLC0415

        return tf_keras.models.load_model(path, custom_objects=objects, compile=False,
                                          safe_mode=True)
    except Exception as k2_error:  # noqa: BLE001
        unknown = unknown_layer_error(path, str(k2_error), spec)
        if unknown is not None:
            raise unknown from None
        first = f"{_first_line(k3_error)} / " if k3_error is not None else ""
        raise ModelError(
            f"{path}: {'neither Keras 3 nor ' if k3_error is not None else ''}tf-keras could "
            f"{'' if k3_error is not None else 'not '}load the model: {first}{_first_line(k2_error)}",
            "save it again as .keras with Keras 3, or as a SavedModel folder",
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def load_and_export(
    path: str, fmt: str, input_shape: list[int] | None, export_dir: str,
    via_tf_keras: bool = False,
    custom_objects: str = "",
) -> dict[str, Any]:
    """Load the model and write a SavedModel whose signature has a fixed batch of 1.

    A dynamic batch makes the converter emit SHAPE/GATHER/PACK ops the NPU cannot run.
    ``via_tf_keras`` rebuilds a Keras 3 model in tf-keras first (weights copied): the way
    around TF 2.21's converter crash on Keras 3 LSTMs. ``custom_objects``: the
    ``model.custom_objects`` spec (the user's layer classes).
    """
    if fmt == "saved_model":
        return _export_saved_model(path, input_shape, export_dir)
    model = load_keras(path, fmt, custom_objects)
    if via_tf_keras and _is_keras3(model):
        import tf_keras  # noqa: PLC0415

        from .keras_compat import rebuild_in_tf_keras  # noqa: PLC0415

        model = rebuild_in_tf_keras(model, tf_keras)
    return export_keras(model, path, input_shape, export_dir)


def export_keras(model: Any, path: str, input_shape: list[int] | None,
                 export_dir: str) -> dict[str, Any]:
    """Write ``model`` (loaded from ``path``) as a SavedModel with a batch of 1."""
    if len(model.inputs) != 1:
        raise ModelError(
            f"{path}: the model has {len(model.inputs)} inputs; artq handles single-input models",
            "export a single-input model",
        )
    shape = static_input_shape(model.inputs[0].shape, input_shape, "Keras input", path)
    spec = tf.TensorSpec((1, *shape), tf.float32, name="input")
    try:
        _save_serving(model, spec, export_dir)
    except (ValueError, AssertionError):
        if not _is_keras3(model):
            raise
        # A resource the variables do not hold (a lookup table): Keras's export finds it.
        shutil.rmtree(export_dir, ignore_errors=True)
        model.export(export_dir, format="tf_saved_model", input_signature=[spec], verbose=False)
    # Named as the model names them; "signature" is the key the export gives each output,
    # by which the job finds it in every .tflite whatever order the converter chose.
    names = [str(n) for n in (getattr(model, "output_names", None) or [])]
    if len(names) != len(model.outputs) or len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    outputs = [
        {"name": names[i], "signature": f"output_{i}",
         "shape": [1, *[int(d) for d in list(o.shape)[1:] if d is not None]]}
        for i, o in enumerate(model.outputs)
    ]
    return {
        "inputs": [{"name": "input", "shape": [1, *shape], "dtype": "float32"}],
        "outputs": outputs,
        "params": int(model.count_params()),
        "layers": sorted({type(layer).__name__ for layer in _all_layers(model)}),
    }


def _save_serving(model: Any, spec: Any, export_dir: str) -> None:
    """A SavedModel of the serving function and the variables it reads, nothing more.

    Keras 3's own export traces the model three times and looks for resources (crnn_conv:
    0.8 s against 0.4 s); saving a tf-keras model itself traces and writes every layer's
    calls (MobileNet v2: 15.7 s against 4.5 s), and the converter then reloads all of them
    (19.9 s against 10.5 s per stage). The .tflite is the same but for the output tensor's
    generated name, and outputs are found by their signature key."""

    @tf.autograph.experimental.do_not_convert  # a Keras call: nothing for autograph to do
    def serve(x: Any) -> Any:
        return model(x, training=False)

    fn = tf.function(serve, input_signature=[spec])
    lean = tf.Module()
    # Keras 3 wraps each tf.Variable (.value); all of them, seed generators' states too.
    lean.variables_ = ([v.value for v in model.variables] if _is_keras3(model)
                       else list(model.weights))
    lean.serve = fn
    tf.saved_model.save(lean, export_dir, signatures=fn.get_concrete_function())


def _is_keras3(model: Any) -> bool:
    return type(model).__module__.startswith("keras.")


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        out.extend(_all_layers(layer))
        inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
        if inner is not None:
            out.append(inner)
    return out


def _export_saved_model(path: str, input_shape: list[int] | None, export_dir: str) -> dict[str, Any]:
    try:
        loaded = tf.saved_model.load(path)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: TensorFlow could not load the SavedModel: {_first_line(exc)}") from None
    sigs = getattr(loaded, "signatures", {})
    if "serving_default" not in sigs:
        raise ModelError(
            f"{path}: the SavedModel has no serving_default signature",
            "export it with a serving signature (model.export or tf.saved_model.save with signatures=)",
        )
    sig = sigs["serving_default"]
    in_specs = sig.structured_input_signature[1]
    if len(in_specs) != 1:
        raise ModelError(f"{path}: the signature has {len(in_specs)} inputs; artq handles one")
    in_name, in_spec = next(iter(in_specs.items()))
    shape = static_input_shape(in_spec.shape, input_shape, "SavedModel input", path)
    out_keys = sorted(sig.structured_outputs.keys())

    class Batch1(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = loaded

        @tf.function(input_signature=[tf.TensorSpec((1, *shape), tf.float32, name="input")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            res = sig(**{in_name: x})
            return {f"output_{i}": res[k] for i, k in enumerate(out_keys)}

    module = Batch1()
    tf.saved_model.save(module, export_dir, signatures=module.serve.get_concrete_function())
    outputs = [
        {"name": str(k), "signature": f"output_{i}",
         "shape": [1, *list(sig.structured_outputs[k].shape)[1:]]}
        for i, k in enumerate(out_keys)
    ]
    params = int(sum(np.prod(v.shape) for v in getattr(loaded, "variables", [])))
    return {
        "inputs": [{"name": "input", "shape": [1, *shape], "dtype": "float32"}],
        "outputs": outputs,
        "params": params,
        "layers": [],
    }


_IO_TYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}


def full_integer(
    conv: Any,
    data: np.ndarray,
    granularity: str,
    allow_float: bool,
    on_sample: Callable[[int, int], None] | None = None,
) -> None:
    """Set ``conv`` up for full-integer quantization calibrated on ``data`` (N, ...), one
    item per step — the setup the INT8 stage and the per-layer analysis share."""
    n = len(data)

    def representative_dataset():  # the one Python hook inside the converter
        for i in range(n):
            yield [np.asarray(data[i : i + 1], dtype=np.float32)]
            if on_sample is not None:
                on_sample(i + 1, n)

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if allow_float:
        ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
    conv.target_spec.supported_ops = ops
    if granularity == "per_tensor":
        # ST's own switch for per-tensor weights in its TFLite path.
        conv._experimental_disable_per_channel = True


def quantize(
    calibrated: bytes,
    *,
    granularity: str = "per_channel",
    io_type: str = "int8",
    denylist: list[str] | None = None,
    numeric_verify: bool = False,
) -> bytes:
    """``mlir_quantize`` as the converter calls it (plus its read-only buffer dedup)."""
    blob = _tfl_convert.mlir_quantize(
        calibrated,
        disable_per_channel=granularity == "per_tensor",
        input_data_type=_IO_TYPES[io_type],
        output_data_type=_IO_TYPES[io_type],
        enable_numeric_verify=numeric_verify,
        denylisted_nodes=denylist or None,
    )
    return _tfl_lite._deduplicate_readonly_buffers(blob)



def float_for_int8(conv: Any) -> bytes:
    """The float model ``conv`` (set up by :func:`full_integer`) would calibrate: its
    conversion of the SavedModel, stopped where the converter hands it to the calibrator.

    This is the costly part of an INT8 conversion and does not depend on the calibration
    data, so a run with another calibration can start from it (:func:`calibrate_float`)."""
    captured: list[bytes] = []

    def stop_before_calibration(model: bytes, *args: Any, **kwargs: Any) -> bytes:
        captured.append(model)
        return model

    conv.exclude_conversion_metadata = True  # its hash would name this float model
    conv._quantize = stop_before_calibration
    conv.convert()
    if not captured:
        raise ConversionError("TFLite's converter did not reach its quantization step",
                              "see the run's log.txt for the converter's output")
    return captured[0]


def calibrate_float(float_model: bytes, data: np.ndarray,
                    on_sample: Callable[[int, int], None] | None = None) -> bytes:
    """Calibrate the converter's float model on ``data`` one item at a time, as the
    converter does: the model with each tensor's min/max, ready for ``mlir_quantize``."""
    from tensorflow.lite.python.optimize import calibrator  # noqa: PLC0415

    n = len(data)

    def items():  # noqa: ANN202
        for i in range(n):
            yield [np.asarray(data[i : i + 1], dtype=np.float32)]
            if on_sample is not None:
                on_sample(i + 1, n)

    cal = calibrator.Calibrator(calibrator.add_intermediate_tensors(float_model))
    return cal.calibrate(items)


def convert(
    saved_model_dir: str,
    stage: str,
    out_path: str,
    *,
    calibration: str | None = None,
    granularity: str = "per_channel",
    io_type: str = "int8",
    allow_float: bool = False,
    on_sample: Callable[[int, int], None] | None = None,
    keep: dict[str, Any] | None = None,
    float_model: str | None = None,
    float_out: str | None = None,
) -> dict[str, Any]:
    """Convert to one stage's ``.tflite``; returns its size and time.

    INT8 (without float fallback) runs in the converter's own three steps — the float
    conversion, calibration, ``mlir_quantize`` — taken one by one, so the float model can
    come from ``float_model`` (a cached one) or ``keep["float"]`` (an earlier conversion's,
    with the same settings) or be written to ``float_out``, and the calibrated model be kept
    in ``keep["calibrated"]`` (and the INT8 model in ``keep["int8"]``) for the per-layer
    analysis. The
    tensors, weights and ops are the converter's; the model carries no conversion metadata
    (the converter's hash of the float model it started from)."""
    t0 = time.perf_counter()
    conv = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    stepwise = False
    data: np.ndarray | None = None
    if stage == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif stage == "int8":
        if calibration is None:
            raise ConversionError("INT8 conversion needs calibration data")
        data = np.load(calibration, mmap_mode="r")
        full_integer(conv, data, granularity, allow_float, on_sample)
        conv.inference_input_type = _IO_TYPES[io_type]
        conv.inference_output_type = _IO_TYPES[io_type]
        stepwise = not allow_float
    elif stage != "fp32":
        raise ConversionError(f"unknown stage {stage!r}")
    try:
        if stepwise:
            assert data is not None
            if float_model is not None:
                base = Path(float_model).read_bytes()
            elif keep is not None and isinstance(keep.get("float"), bytes):
                base = keep["float"]  # this process's last INT8 conversion of this model
            else:
                base = float_for_int8(conv)
            if float_out is not None:
                Path(float_out).write_bytes(base)
            calibrated = calibrate_float(base, data, on_sample)
            if keep is not None:
                keep["calibrated"], keep["float"] = calibrated, base
            blob = quantize(calibrated, granularity=granularity, io_type=io_type)
            if keep is not None:
                keep["int8"] = blob
        else:
            blob = conv.convert()
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - the converter raises many types
        raise ConversionError(
            f"TFLite's converter failed on the {stage.upper()} stage: {_converter_message(exc)}",
            _converter_hint(exc, stage),
        ) from exc
    Path(out_path).write_bytes(blob)
    return {"size_bytes": len(blob), "seconds": time.perf_counter() - t0}


def _converter_message(exc: BaseException) -> str:
    # The converter's message is a wall of MLIR; keep the line that names the op.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "error:" in ln:
            return ln[ln.index("error:") + 6 :].strip()[:300]
    return lines[0][:300] if lines else type(exc).__name__


def _converter_hint(exc: BaseException, stage: str) -> str:
    text = str(exc)
    if stage == "int8" and ("is neither a custom op nor a flex op" in text or "failed to legalize" in text):
        return (
            "an op has no INT8 kernel; replace it with a standard op, or set "
            "quantization.allow_float = true to leave it in float on the CPU"
        )
    return "see the run's log.txt for the converter's full output"
