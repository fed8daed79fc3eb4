"""``artq samples export-onnx NAME``: a sample's Keras model as an FP32 ``.onnx``.

tf2onnx (the maintained Keras/TensorFlow → ONNX converter) traces the Keras model with a
fixed batch of 1 and a channels-first input (``inputs_as_nchw``), as a PyTorch export
has it, at opset 17. The file is then checked against the Keras model itself: both run the
sample's own test items, preprocessed by the sample config, and must agree to within float
rounding, or nothing is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import ConfigError, ConversionError
from ....samples import SAMPLES, WEIGHTS_DIR, generate
from .train import sample_config, write_notes

OPSET = 17
#: The largest |ONNX − Keras| output difference accepted (float rounding, not a bug).
TOLERANCE = 1e-4
CHECK_ITEMS = 500


def onnx_sample(name: str) -> str:
    """The ONNX sample for ``name`` (``digits`` or ``digits_onnx``)."""
    for key in (name, f"{name}_onnx"):
        if key in SAMPLES and SAMPLES[key].exported_from:
            return key
    known = sorted(k for k, s in SAMPLES.items() if s.exported_from)
    raise ConfigError(f"no ONNX sample for {name!r}", f"known: {', '.join(known)}")


def export_onnx(name: str, out_dir: str | os.PathLike[str] | None = None,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write ``<out_dir>/<weights>.onnx`` from the Keras sample it is exported from."""
    key = onnx_sample(name)  # a wrong name says so before TensorFlow loads
    try:
        import tf2onnx  # noqa: PLC0415
    except ImportError:
        raise ConfigError("exporting a sample to ONNX needs tf2onnx",
                          "pip install -e \".[samples]\" (or pip install tf2onnx)") from None
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    spec, source = SAMPLES[key], SAMPLES[SAMPLES[key].exported_from]
    folder = Path(out_dir) if out_dir is not None else WEIGHTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    out_path = folder / spec.weights
    t0 = time.time()
    model = keras.models.load_model(WEIGHTS_DIR / source.weights)
    shape = tuple(int(d) for d in model.input_shape[1:])
    log(f"exporting {source.weights} → {out_path} (tf2onnx {tf2onnx.__version__}, opset {OPSET})")
    sig = (tf.TensorSpec((1, *shape), tf.float32, name="input"),)
    tmp = out_path.with_suffix(".tmp.onnx")
    tf2onnx.convert.from_keras(model, input_signature=sig, opset=OPSET, output_path=str(tmp),
                               inputs_as_nchw=["input"])
    check = _compare(model, tmp, key, shape)
    if check["max_abs_diff"] > TOLERANCE:
        tmp.unlink(missing_ok=True)
        raise ConversionError(
            f"the exported model differs from the Keras model by {check['max_abs_diff']:.3g} "
            f"(more than {TOLERANCE}) on the sample's test items", "nothing was written")
    tmp.replace(out_path)
    result = {"sample": key, "path": str(out_path), "source": source.weights,
              "tf2onnx": tf2onnx.__version__, "wall_seconds": round(time.time() - t0, 1),
              **check}
    log(f"{key}: {check['items']} test items, max |ONNX − Keras| = {check['max_abs_diff']:.2e}, "
        f"argmax agreement {check['argmax_agreement']:.4f}")
    if folder.resolve() == WEIGHTS_DIR.resolve():
        write_notes({"sample": key}, section=_section(result))
    return result


def _compare(model: Any, path: Path, key: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """Both models on the sample's first test items (its config's data and preprocessing)."""
    from ....preprocess import preprocess  # noqa: PLC0415
    from ...onnx.run import run_onnx  # noqa: PLC0415 - the ONNX backend's own runner

    cfg, pp = sample_config(key, shape)
    src = cfg.data.test
    x = preprocess(generate(src.generator, src.split, min(src.count, CHECK_ITEMS),
                            src.seed).images, pp)
    ref = np.asarray(model.predict(x, batch_size=64, verbose=0))
    out = run_onnx(str(path), np.ascontiguousarray(x.transpose(0, 3, 1, 2))).outputs[0]
    return {"items": len(x), "max_abs_diff": float(np.abs(out - ref).max()),
            "argmax_agreement": float((out.argmax(-1) == ref.argmax(-1)).mean())}


def _section(r: dict[str, Any]) -> str:
    spec = SAMPLES[r["sample"]]
    size = Path(r["path"]).stat().st_size
    return "\n".join([
        f"## {r['sample']}", "", f"{spec.description}.", "",
        f"- command: `artq samples export-onnx {r['sample']}`",
        f"- from: `{r['source']}` by tf2onnx {r['tf2onnx']}, opset {OPSET}, batch 1, "
        "channels-first input (inputs_as_nchw)",
        f"- weights: `{spec.weights}` ({size / 1024:.0f} KiB)",
        f"- checked on the first {r['items']} test items against the Keras model: max |ONNX − "
        f"Keras| = {r['max_abs_diff']:.2e}, argmax agreement {r['argmax_agreement']:.4f}",
    ]) + "\n"
