"""TensorFlow side of the per-layer analysis: calibrate once, measure, keep layers in float.

Runs in the TF child (the ``analyze_layers`` request of :mod:`engine.backends.tf.process`).

One calibration serves everything. TFLite's converter with ``_experimental_calibrate_only``
returns the float model with every tensor's calibrated range attached; ``mlir_quantize``
turns that into

- the INT8 model again (checked tensor by tensor against the job's ``int8.tflite``: the
  converter does exactly this call, so ranges must match),
- the *debug* model of TFLite's QuantizationDebugger (``enable_numeric_verify``): every
  quantized op runs beside a float copy fed the same dequantized input, and a NumericVerify
  op joins the two. Reading both inputs of each NumericVerify op gives the *layer* mode,
- mixed models with chosen ops left in float (``denylisted_nodes``), for the sensitivity
  test, without calibrating again.

The *model* mode runs the job's real ``int8.tflite`` and the calibrated float graph (the
FP32 model: calibration only attaches statistics) side by side with
``experimental_preserve_all_tensors`` and matches tensors by name. The quantizer keeps the
float graph's tensor names, so the match is exact; it measures the shipped artifact itself,
where TFLite's whole-model verify mode would measure a rebuilt copy.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ...errors import ConversionError  # noqa: E402
from ...evaluate import quantize as quantize_input  # noqa: E402
from ...evaluate import signature_io  # noqa: E402
from ...events import Log, Progress, Sink  # noqa: E402
from ...layers import (  # noqa: E402
    Diagnosis,
    ErrorAccumulator,
    ErrorStats,
    RangeAccumulator,
    RangeStats,
    diagnose,
    error_entry,
    float_unit,
    rank,
)
from .convert import calibrate_float, float_for_int8, full_integer, quantize  # noqa: E402

_QUANT_DTYPES = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)}


def _interpreter(content: bytes | None = None, path: str | None = None,
                 delegates: bool = False) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: PLC0415

    with warnings.catch_warnings():
        # LiteRT warns that preserving tensors costs memory: that is the point here.
        warnings.simplefilter("ignore")
        # No XNNPACK: a delegate swallows ops whole, and their intermediate tensors with them.
        it = Interpreter(
            model_path=path,
            model_content=content,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.AUTO if delegates
            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    it.allocate_tensors()
    return it


# ------------------------------------------------------------------ calibrate / quantize


def calibrate(
    saved_model: str,
    data: np.ndarray,
    *,
    granularity: str = "per_channel",
    allow_float: bool = False,
    on_sample: Callable[[int, int], None] | None = None,
) -> bytes:
    """The float model with calibrated ranges, set up as :func:`engine.backends.tf.convert.convert` sets
    up its INT8 stage, so quantizing it gives that stage's model."""
    conv = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    full_integer(conv, data, granularity, allow_float, on_sample)
    try:
        if not allow_float:  # the INT8 stage's own steps (convert.convert)
            return calibrate_float(float_for_int8(conv), data, on_sample)
        conv._experimental_calibrate_only = True
        return conv.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises many types
        raise ConversionError(
            f"calibrating for the per-layer analysis failed: {str(exc).splitlines()[0][:300]}",
            "set analysis.debug_samples = 0 to skip the per-layer analysis",
        ) from exc


# ------------------------------------------------------------------ graphs and tensors


def _details(it: Any) -> dict[int, dict[str, Any]]:
    return {int(d["index"]): d for d in it.get_tensor_details()}


def _qparams(d: dict[str, Any]) -> tuple[float, int]:
    scale, zp = d.get("quantization", (0.0, 0))
    return float(scale), int(zp)


def _is_quantized(d: dict[str, Any]) -> bool:
    return np.dtype(d["dtype"]) in _QUANT_DTYPES and _qparams(d)[0] > 0


def _dequantize(v: np.ndarray, d: dict[str, Any]) -> np.ndarray:
    scale, zp = _qparams(d)
    return (v.astype(np.float32) - np.float32(zp)) * np.float32(scale)


def graph_ops(it: Any) -> list[dict[str, Any]]:
    """``{"op", "inputs", "outputs"}`` per op, tensors by name, in execution order."""
    td = _details(it)
    return [
        {
            "op": o["op_name"],
            "inputs": [td[i]["name"] for i in o["inputs"] if i >= 0],
            "outputs": [td[i]["name"] for i in o["outputs"] if i >= 0],
        }
        for o in it._get_ops_details()  # noqa: SLF001 - the interpreter's only op listing
    ]


def _quantized_outputs(it: Any) -> dict[str, dict[str, Any]]:
    """Quantized tensors an op writes, by name: the tensors the analysis covers."""
    td = _details(it)
    out: dict[str, dict[str, Any]] = {}
    for o in it._get_ops_details():  # noqa: SLF001
        for i in o["outputs"]:
            if i >= 0 and _is_quantized(td[i]):
                out[td[i]["name"]] = {**td[i], "op": o["op_name"], "op_index": int(o["index"])}
    return out


def _debug_name_map(debug_it: Any, int8: dict[str, dict[str, Any]]) -> dict[int, str]:
    """NumericVerify's quantized input tensor (debug model) → the INT8 model's tensor name.

    The debug model duplicates each quantized op, and MLIR makes the copy's name unique by
    appending a number (``…/MaxPool2d`` → ``…/MaxPool2d1``). Take the longest INT8 name that
    is the debug name minus trailing digits, with the same shape, scale and zero point.
    """
    td = _details(debug_it)
    found: dict[int, str] = {}
    for o in debug_it._get_ops_details():  # noqa: SLF001
        if o["op_name"] != "NumericVerify":
            continue
        qi = int(o["inputs"][0])
        d = td[qi]
        name = d["name"]
        best = None
        for cut in range(len(name), 0, -1):
            cand = name[:cut]
            if cut < len(name) and not name[cut:].isdigit():
                break
            t = int8.get(cand)
            if t is not None and tuple(t["shape"]) == tuple(d["shape"]) and np.isclose(
                _qparams(t)[0], _qparams(d)[0], rtol=1e-6
            ) and _qparams(t)[1] == _qparams(d)[1]:
                best = cand
                break
        if best is not None:
            found[qi] = best
    return found


# ------------------------------------------------------------------ the two modes


def layer_mode(
    debug_model: bytes,
    x: np.ndarray,
    int8: dict[str, dict[str, Any]],
    progress: Callable[[], None] | None = None,
) -> dict[str, ErrorStats]:
    """Each quantized op against its float copy fed the same input (NumericVerify pairs)."""
    it = _interpreter(content=debug_model, delegates=True)
    td = _details(it)
    names = _debug_name_map(it, int8)
    pairs = [
        (int(o["inputs"][0]), int(o["inputs"][1]))
        for o in it._get_ops_details()  # noqa: SLF001
        if o["op_name"] == "NumericVerify" and int(o["inputs"][0]) in names
    ]
    acc = {qi: ErrorAccumulator(_qparams(td[qi])[0]) for qi, _ in pairs}
    inp = it.get_input_details()[0]
    for i in range(len(x)):
        it.set_tensor(inp["index"], np.asarray(x[i : i + 1], inp["dtype"]))
        it.reset_all_variables()  # an LSTM's state: from zero for each item
        it.invoke()
        for qi, fi in pairs:
            acc[qi].add(it.get_tensor(fi), _dequantize(it.get_tensor(qi), td[qi]))
        if progress is not None:
            progress()
    return {names[qi]: a.result() for qi, a in acc.items()}


def model_mode(
    float_model: bytes,
    int8_path: str,
    x: np.ndarray,
    progress: Callable[[], None] | None = None,
) -> tuple[dict[str, ErrorStats], dict[str, RangeStats]]:
    """The whole INT8 model against the float model, tensor by tensor (matched by name)."""
    fit = _interpreter(content=float_model)
    qit = _interpreter(path=int8_path)
    f_by_name = {d["name"]: int(d["index"]) for d in fit.get_tensor_details()}
    q_td = _details(qit)
    # A requantize (QUANTIZE int8 → int8) has no float twin: its value is its input's.
    twin: dict[int, int] = {}
    for o in qit._get_ops_details():  # noqa: SLF001
        for oi in o["outputs"]:
            if oi < 0 or not _is_quantized(q_td[oi]):
                continue
            name = q_td[oi]["name"]
            if name in f_by_name:
                twin[oi] = f_by_name[name]
            elif o["op_name"] == "QUANTIZE" and o["inputs"][0] >= 0:
                src = q_td[int(o["inputs"][0])]["name"]
                if src in f_by_name:
                    twin[oi] = f_by_name[src]
    acc = {qi: ErrorAccumulator(_qparams(q_td[qi])[0]) for qi in twin}
    rng = {qi: RangeAccumulator(*_qparams(q_td[qi]), *_int_range(q_td[qi])) for qi in twin}
    q_in, _ = signature_io(qit)
    f_in = fit.get_input_details()[0]
    for i in range(len(x)):
        item = np.asarray(x[i : i + 1], np.float32)
        fit.set_tensor(f_in["index"], item)
        fit.reset_all_variables()  # an LSTM's state: from zero for each item
        fit.invoke()
        qit.set_tensor(q_in[0].index, quantize_input(item, q_in[0]))
        qit.reset_all_variables()
        qit.invoke()
        for qi, fi in twin.items():
            f = fit.get_tensor(fi)
            acc[qi].add(f, _dequantize(qit.get_tensor(qi), q_td[qi]))
            rng[qi].add(f)
        if progress is not None:
            progress()
    return (
        {q_td[qi]["name"]: a.result() for qi, a in acc.items()},
        {q_td[qi]["name"]: r.result() for qi, r in rng.items()},
    )


def _int_range(d: dict[str, Any]) -> tuple[int, int]:
    info = np.iinfo(np.dtype(d["dtype"]))
    return int(info.min), int(info.max)


def _same_ranges(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> bool:
    if set(a) != set(b):
        return False
    return all(
        np.isclose(_qparams(a[k])[0], _qparams(b[k])[0], rtol=1e-6)
        and _qparams(a[k])[1] == _qparams(b[k])[1]
        for k in a
    )


# ------------------------------------------------------------------ the job's entry point


def analyze_layers(
    *,
    state: dict[str, Any],
    emit: Sink,
    stage: str,
    calibration: str,
    int8_path: str,
    out_dir: str,
    debug_samples: int = 32,
    sensitivity_k: int = 3,
    granularity: str = "per_channel",
    io_type: str = "int8",
    allow_float: bool = False,
) -> dict[str, Any]:
    """Per-layer error of ``int8_path`` in both modes, and mixed models for the K most
    suspect layers (written to ``out_dir``; evaluated by the orchestrator, without TF).

    Returns ``{"errors": {tensor: error entry}, "ranking": [tensor, ...],
    "candidates": [{"tensor", "kind", "float_ops", "path"}], "reproduced": bool, ...}``.
    """
    data = np.load(calibration, mmap_mode="r")
    n = min(int(debug_samples), len(data))
    x = np.asarray(data[:n], np.float32)
    # One progress bar: the calibration pass, then each debug item in both modes.
    total = len(data) + 2 * n
    done = [0]
    lock = threading.Lock()

    def tick(message: str = "") -> None:
        with lock:  # both modes tick, each from its own thread
            done[0] += 1
            emit(Progress(stage, done[0], total, message))

    def on_sample(_done: int, _of: int) -> None:
        tick("calibrating once for the analysis")

    kept = state.get("calibrated")
    made: bytes | None = None  # what quantizing ``calibrated`` gives, when known already
    if kept is not None and kept[0] == (state["saved_model"], calibration, granularity,
                                        allow_float):
        # The INT8 stage's own calibration: the analysis measures the model it shipped.
        calibrated = kept[1]
        done[0] += len(data)
        if kept[2][0] == io_type:
            made = kept[2][1]
    else:
        calibrated = calibrate(state["saved_model"], data, granularity=granularity,
                               allow_float=allow_float, on_sample=on_sample)
    int8_bytes = Path(int8_path).read_bytes()
    shipped = _interpreter(content=int8_bytes)
    int8 = _quantized_outputs(shipped)
    # The file as the INT8 stage wrote it: its calibration reproduces it by construction,
    # and quantizing again is not needed to say so. A file changed since (bias correction)
    # or calibrated here is compared by its ranges.
    reproduced = made is not None and int8_bytes == made
    if not reproduced:
        again = _quantized_outputs(_interpreter(content=made or quantize(
            calibrated, granularity=granularity, io_type=io_type)))
        reproduced = _same_ranges(int8, again)
    if not reproduced:
        emit(Log("the analysis' calibration did not reproduce int8.tflite's ranges exactly; "
                 "layer-mode figures describe a near twin of the shipped model", "warning"))

    # The two modes share nothing but the calibrated model: the model mode runs in a thread
    # while this one builds the debug model and runs the layer mode. Their interpreters and
    # numpy sums let go of the interpreter lock, so on two cores they overlap.
    with ThreadPoolExecutor(1, thread_name_prefix="model-mode") as pool:
        by_model = pool.submit(model_mode, calibrated, int8_path, x, tick)
        debug = quantize(calibrated, granularity=granularity, io_type="float32",
                         numeric_verify=True)
        layer = layer_mode(debug, x, int8, tick)
        model, ranges = by_model.result()

    diags: dict[str, Diagnosis] = {}
    errors: dict[str, dict[str, Any]] = {}
    for name, d in int8.items():
        if d["op"] in ("QUANTIZE",) and name not in layer and name not in model:
            continue
        diag = diagnose(layer.get(name), ranges.get(name))
        diags[name] = diag
        scale, zp = _qparams(d)
        errors[name] = error_entry(name, scale, zp, layer.get(name), model.get(name),
                                   ranges.get(name), diag, _int_range(d))
    order = rank(diags)

    ops = graph_ops(shipped)
    outputs = [d["name"] for d in shipped.get_output_details()]
    candidates = []
    out = Path(out_dir)
    if sensitivity_k > 0 and order:
        out.mkdir(parents=True, exist_ok=True)
    def mixed(cand: dict[str, Any], unit: list[str], file: str) -> dict[str, Any]:
        try:
            blob = quantize(calibrated, granularity=granularity, io_type=io_type, denylist=unit)
        except Exception as exc:  # noqa: BLE001 - reported per candidate, the run goes on
            cand["error"] = f"TFLite's quantizer could not keep it in float: {exc}"[:300]
            return cand
        floats = {d["name"] for d in _interpreter(content=blob).get_tensor_details()
                  if np.dtype(d["dtype"]) == np.float32}
        if not set(unit) & floats:
            cand["error"] = "TFLite's quantizer ignored the request to keep it in float"
        else:
            path = out / file
            path.write_bytes(blob)
            cand["path"] = str(path)
        return cand

    for k, name in enumerate(order[:sensitivity_k]):
        unit = float_unit(name, diags[name].kind, ops, outputs)
        candidates.append(mixed({"tensor": name, "kind": diags[name].kind, "float_ops": unit,
                                 "op": int8[name]["op"]}, unit, f"keep_float_{k + 1}.tflite"))
    # A loss spread over a chain of ops (a normalization computed at run time, say) is not
    # regained one op at a time: one more try keeps every suspect in float together.
    suspects = [n for n in order if diags[n].suspect]
    if sensitivity_k > 0 and len(suspects) > 1:
        union: list[str] = []
        for name in suspects:
            union += [t for t in float_unit(name, diags[name].kind, ops, outputs) if t not in union]
        candidates.append(mixed({"tensor": "", "group": suspects, "kind": "all_suspects",
                                 "float_ops": union, "op": ""}, union,
                                "keep_float_all_suspects.tflite"))
    return {
        "errors": errors,
        "ranking": order,
        "candidates": candidates,
        "reproduced": reproduced,
        "debug_samples": n,
        "raw": {name: {"layer": None if name not in layer else _raw(layer[name]),
                       "model": None if name not in model else _raw(model[name])}
                for name in errors},
    }


def _raw(s: ErrorStats) -> dict[str, float]:
    return {"mse": s.mse, "mean_error": s.mean_error, "channel_sqnr_db": s.channel_sqnr_db,
            "elements": s.elements}
