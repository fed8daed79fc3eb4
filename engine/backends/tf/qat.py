"""Quantization-aware fine-tuning with tfmot, inside the TensorFlow child process.

The child runs with ``TF_USE_LEGACY_KERAS=1`` (tfmot 0.8 accepts only Keras 2): the Keras 3
model is loaded with Keras 3, rebuilt in tf-keras (:mod:`engine.backends.tf.keras_compat`), wrapped
with fake-quant layers, fine-tuned, and converted to a full-integer INT8 ``.tflite``.

Why the ranges are initialised from data: tfmot starts every activation range at [−6, 6]
and moves it with a fixed EMA decay of 0.999, so a short fine-tune keeps ranges far from the
real ones — a small detector collapsed to chance accuracy that way (measured). Here every
fake-quant range starts at the min/max the float model produces on the calibration data,
exactly what PTQ would use, and training moves on from there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelError
from ...events import EpochEnd, Log, Progress, StageFinished, StageStarted
from ...labels import load_labels
from ...rundir import atomic_write_json
from ...validation import hold_out, judged_figure

Emit = Callable[[Any], None]



def _tf():  # noqa: ANN202
    import tensorflow as tf  # noqa: PLC0415

    return tf


def _is_softmax_output(model: Any) -> bool:
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return True
    return getattr(getattr(last, "activation", None), "__name__", "") == "softmax"


def _targets_and_losses(
    task: str, labels: Any, float_model: Any, x: np.ndarray, evaluation: dict[str, Any]
) -> tuple[list[np.ndarray], list[Callable[[Any, Any], Any]]]:
    """Per-output training targets and losses for the job's task."""
    tf = _tf()
    if task == "classification":
        ce = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not _is_softmax_output(float_model))
        return [np.asarray(labels, np.int64)], [ce]
    if task == "ctc":
        from .samples.crnn import ctc_loss, encode_labels  # noqa: PLC0415

        charset = evaluation.get("ctc", {}).get("charset")
        max_len = max((len(s) for s in labels), default=1) or 1
        return [encode_labels(list(labels), charset, max_len)], [
            lambda y, p: tf.reduce_mean(ctc_loss(y, p))
        ]
    if task == "east":
        from .samples.east import geometry_loss, score_loss, targets  # noqa: PLC0415

        score, geo = targets(list(labels))
        chans = [int(o.shape[-1]) for o in float_model.outputs]
        order = [score if c == 1 else geo for c in chans]
        losses = [score_loss if c == 1 else geometry_loss for c in chans]
        return order, losses
    # generic: no labels, so learn to match the float model (distillation).
    outs = float_model.predict(x, batch_size=64, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    mse = tf.keras.losses.MeanSquaredError()
    return [np.asarray(o, np.float32) for o in outs], [mse] * len(outs)


def _quantize(fm: Any) -> Any:
    import tensorflow_model_optimization as tfmot  # noqa: PLC0415

    try:
        return tfmot.quantization.keras.quantize_model(fm)
    except (RuntimeError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0][:300]
        raise ModelError(
            f"tfmot cannot add fake-quant layers to this model: {text}",
            "QAT supports standard Keras layers (Conv, Dense, BatchNorm, pooling, ReLU, Add, "
            "Concatenate...); use PTQ for the rest",
        ) from None


def init_ranges(q: Any, fm: Any, x_cal: np.ndarray) -> int:
    """Set every fake-quant activation range to the float model's min/max on ``x_cal``."""
    tf = _tf()
    targets: list[tuple[Any, str]] = []  # (variable, float layer name or "" for the input)
    for layer in q.layers:
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            if short in ("quantize_layer_min", "quantize_layer_max"):
                targets.append((w, ""))
            elif short in ("output_min", "output_max", "post_activation_min", "post_activation_max"):
                inner = getattr(layer, "layer", None)
                if inner is not None:
                    targets.append((w, inner.name))
    names = sorted({n for _, n in targets if n})
    fm_names = {layer.name for layer in fm.layers}
    names = [n for n in names if n in fm_names]
    k = tf.keras
    probe = k.Model(fm.inputs, [fm.get_layer(n).output for n in names]) if names else None
    lo: dict[str, float] = {"": float(np.min(x_cal))}
    hi: dict[str, float] = {"": float(np.max(x_cal))}
    if probe is not None:
        outs = probe.predict(x_cal, batch_size=32, verbose=0)
        outs = outs if isinstance(outs, list) else [outs]
        for n, o in zip(names, outs, strict=True):
            lo[n], hi[n] = float(np.min(o)), float(np.max(o))
    done = 0
    for var, n in targets:
        if n not in lo:
            continue
        is_min = var.name.split(":")[0].endswith("_min")
        # The range must hold 0 so that zero is exactly representable.
        var.assign(min(lo[n], 0.0) if is_min else max(hi[n], 0.0))
        done += 1
    return done


def _predict(model: Any, x: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(x), batch):
        o = model(x[i : i + batch], training=False)
        o = o if isinstance(o, list | tuple) else [o]
        outs.append([np.asarray(t) for t in o])
    return [np.concatenate([b[j] for b in outs]) for j in range(len(outs[0]))]


def _val_metric(task_name: str, model: Any, x: np.ndarray, labels: Any, evaluation: dict[str, Any],
                reference: list[np.ndarray], names: list[str],
                output: str | None = None) -> tuple[str, float, str]:
    """engine.validation.judged_figure of the model's outputs on the validation data."""
    return judged_figure(task_name, _predict(model, x), reference, labels, evaluation, names,
                         output)


def _output_names(model: Any) -> list[str]:
    """The model's output names, as engine.backends.tf.convert reports them."""
    names = [str(n) for n in (getattr(model, "output_names", None) or [])]
    if len(names) != len(model.outputs) or len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return names


def qat_train(
    *,
    emit: Emit,
    train_stage: str,
    convert_stage: str,
    model_path: str,
    fmt: str,
    task: str,
    evaluation: dict[str, Any],
    qat: dict[str, Any],
    train: dict[str, str],
    validation: dict[str, str] | None,
    calibration: str,
    ckpt_dir: str,
    resume: bool,
    export_dir: str,
    out_path: str,
    io_type: str,
    custom_objects: str = "",
) -> dict[str, Any]:
    """Fine-tune with fake quantization, checkpoint every epoch, convert the best to INT8.
    ``custom_objects``: the ``model.custom_objects`` spec the model needs to load."""
    tf = _tf()
    import tf_keras  # noqa: PLC0415

    from . import convert  # noqa: PLC0415
    from .keras_compat import rebuild_in_tf_keras  # noqa: PLC0415

    seed = int(qat["seed"])
    tf_keras.utils.set_random_seed(seed)
    t_start = time.perf_counter()
    k3 = convert._load_keras(model_path, fmt, custom_objects)  # noqa: SLF001
    fm = rebuild_in_tf_keras(k3, tf_keras)
    del k3

    x_tr = np.load(train["x"])
    y_tr = load_labels(Path(train["labels"]))
    if validation is not None:
        x_va = np.load(validation["x"])
        y_va = load_labels(Path(validation["labels"]))
    else:
        x_tr, y_tr, x_va, y_va = hold_out(x_tr, y_tr, int(qat.get("seed", 0)))
    x_cal = np.load(calibration)

    tgt, losses = _targets_and_losses(task, y_tr, fm, x_tr, evaluation)
    # The float model's outputs: what every output but the task's is judged against.
    ref_val = _predict(fm, x_va)
    out_names = _output_names(fm)

    q = _quantize(fm)
    if qat.get("freeze_batch_norm", True):
        # A few epochs of fine-tuning should not re-estimate BatchNorm statistics from
        # small batches (the samples train BN with momentum 0.9): frozen BN runs in
        # inference mode, so only the weights adapt to the fake quantization.
        frozen = 0
        for layer in q.layers:
            inner = getattr(layer, "layer", layer)
            if type(inner).__name__ == "BatchNormalization":
                inner.trainable = False
                frozen += 1
        if frozen:
            emit(Log(f"BatchNorm frozen in {frozen} layer(s) for fine-tuning"))
    opt = tf_keras.optimizers.Adam(float(qat["learning_rate"]))
    ckpt = tf.train.Checkpoint(model=q, optimizer=opt)
    cdir = Path(ckpt_dir)
    cdir.mkdir(parents=True, exist_ok=True)
    state_path = cdir / "state.json"
    best_path = str(cdir / "best.weights.h5")
    st: dict[str, Any] = {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "bad_epochs": 0}
    if resume and state_path.is_file():
        st = json.loads(state_path.read_text())
        # Build the optimizer's slots before restoring them.
        opt.build(q.trainable_variables)
        ckpt.read(st["checkpoint"]).assert_existing_objects_matched()
        emit(Log(f"resumed QAT after epoch {st['epoch']} from {st['checkpoint']}"))
    else:
        if qat.get("init_ranges", True):
            n = init_ranges(q, fm, x_cal)
            emit(Log(f"fake-quant ranges set from {len(x_cal)} calibration items "
                     f"({n} min/max pairs)"))
        # Epoch 0 is the starting point (PTQ's ranges, float weights): fine-tuning is kept
        # only where it beats that on the validation data.
        metric0, val0, st["judged_output"] = _val_metric(task, q, x_va, y_va, evaluation,
                                                          ref_val, out_names)
        st["best"], st["best_epoch"] = val0, 0
        st["history"].append({"epoch": 0, "loss": None, "val_metric": val0, "seconds": 0.0})
        q.save_weights(best_path)
        emit(Log(f"before fine-tuning: validation {metric0} {val0:.4f}"))

    epochs, batch = int(qat["epochs"]), int(qat["batch_size"])
    patience = int(qat["patience"])
    n = len(x_tr)
    steps = (n + batch - 1) // batch

    @tf.function
    def step(xb: Any, *ys: Any) -> Any:
        with tf.GradientTape() as tape:
            out = q(xb, training=True)
            out = out if isinstance(out, list | tuple) else [out]
            loss = tf.add_n([fn(y, o) for fn, y, o in zip(losses, ys, out, strict=True)])
        grads = tape.gradient(loss, q.trainable_variables)
        opt.apply_gradients(zip(grads, q.trainable_variables, strict=True))
        return loss

    metric_name = "agreement"
    emit(StageStarted(train_stage, "QAT fine-tuning", (epochs - st["epoch"]) * steps))
    done_steps = 0
    epoch_times: list[float] = []
    stopped_early = False
    for epoch in range(st["epoch"], epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng([seed, epoch]).permutation(n)
        losses_seen = []
        for s in range(steps):
            idx = np.sort(order[s * batch : (s + 1) * batch])
            loss = float(step(tf.constant(x_tr[idx]), *[tf.constant(t[idx]) for t in tgt]))
            if not np.isfinite(loss):
                raise ModelError(
                    f"QAT diverged: the loss became {loss} in epoch {epoch + 1}",
                    "lower quantization.qat.learning_rate (the guide uses 1e-5)",
                )
            losses_seen.append(loss)
            done_steps += 1
            emit(Progress(train_stage, done_steps, (epochs - st["epoch"]) * steps,
                          f"epoch {epoch + 1}/{epochs} loss {np.mean(losses_seen):.4f}",
                          epoch=epoch + 1, epochs=epochs, batch=s + 1, batches=steps))
        metric_name, val, _ = _val_metric(task, q, x_va, y_va, evaluation, ref_val, out_names,
                                          st.get("judged_output"))
        epoch_times.append(time.perf_counter() - t0)
        eta = float(np.mean(epoch_times)) * (epochs - epoch - 1)
        mean_loss = float(np.mean(losses_seen))
        emit(EpochEnd(epoch + 1, epochs, mean_loss, val, metric_name,
                      float(qat["learning_rate"]), round(eta, 1)))
        st["history"].append({"epoch": epoch + 1, "loss": mean_loss, "val_metric": val,
                              "seconds": round(epoch_times[-1], 2)})
        if st["best"] is None or val > st["best"]:
            st["best"], st["best_epoch"], st["bad_epochs"] = val, epoch + 1, 0
            q.save_weights(best_path)
        else:
            st["bad_epochs"] += 1
        prefix = ckpt.write(str(cdir / f"epoch-{epoch + 1}"))
        previous = st.get("checkpoint")
        st["epoch"], st["checkpoint"] = epoch + 1, prefix
        atomic_write_json(state_path, st)
        if previous:  # keep the newest checkpoint only (and best.weights.h5)
            for f in Path(previous).parent.glob(Path(previous).name + ".*"):
                f.unlink(missing_ok=True)
        if patience and st["bad_epochs"] >= patience:
            stopped_early = True
            emit(Log(f"early stop after epoch {epoch + 1}: no better {metric_name} for "
                     f"{patience} epoch{'' if patience == 1 else 's'}"))
            break
    emit(StageFinished(train_stage, round(time.perf_counter() - t_start, 2),
                       {"best_epoch": st["best_epoch"], "best_val": st["best"]}))
    if Path(best_path).is_file():
        q.load_weights(best_path)

    # Export the fine-tuned model with batch 1 and convert it to full INT8.
    shape = tuple(int(d) for d in q.inputs[0].shape[1:])
    spec = tf.TensorSpec((1, *shape), tf.float32, name="input")
    fn = tf.function(lambda x: q(x, training=False), input_signature=[spec])
    tf.saved_model.save(q, export_dir, signatures=fn.get_concrete_function())
    emit(StageStarted(convert_stage, "Converting QAT model to INT8", len(x_cal)))

    def on_sample(done: int, total: int) -> None:
        emit(Progress(convert_stage, done, total))

    res = convert.convert(export_dir, "int8", out_path, calibration=calibration, io_type=io_type,
                          on_sample=on_sample)
    emit(StageFinished(convert_stage, round(res["seconds"], 2), {"size_bytes": res["size_bytes"]}))
    return {
        "size_bytes": res["size_bytes"],
        "history": st["history"],
        "best_epoch": st["best_epoch"],
        "best_val": st["best"],
        "metric": metric_name,
        "epochs_run": st["epoch"],
        "stopped_early": stopped_early,
        "train_items": int(len(x_tr)),
        "validation_items": int(len(x_va)),
    }
