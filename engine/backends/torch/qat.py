"""QAT fine-tuning of a PyTorch model, with the knobs and events of the Keras QAT
(:mod:`engine.backends.tf.qat`): epochs, learning rate, batch size, patience, the best epoch
kept, per-epoch loss and validation metric, cancel, and resume from the last epoch.

Epoch 0 is the starting point (PTQ's ranges, float weights): fine-tuning is kept only where
it beats that on the validation data. Each epoch's shuffle and random state come from
``(seed, epoch)``, so a run resumed from an epoch checkpoint trains as the uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...cancel import CancelToken
from ...errors import ModelError
from ...events import EpochEnd, Log, Progress, StageFinished, StageStarted
from ...labels import load_labels
from ...rundir import atomic_write_json
from ...validation import hold_out, judged_figure
from . import quant
from .lib import require_torch

Emit = Callable[[Any], None]
TASKS = ("classification", "generic")


def _predict(model: Any, x: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    from .export import torch_outputs  # noqa: PLC0415

    return torch_outputs(model, x, batch)


def _val_metric(task_name: str, model: Any, x: np.ndarray, labels: Any,
                evaluation: dict[str, Any], reference: list[np.ndarray],
                output: str | None = None) -> tuple[str, float, str]:
    """The verdict's figure on the validation data (engine.validation.judged_figure)."""
    quant.for_inference(model)
    names = [f"output_{i}" for i in range(len(reference))]
    return judged_figure(task_name, _predict(model, x), reference, labels, evaluation, names,
                         output)


def _loss_fn(task: str, float_model: Any, x: np.ndarray) -> tuple[Callable[..., Any], bool]:
    """(loss(outputs, target), distil): cross-entropy on the labels, or for ``generic``
    (no labels) the float model's outputs matched by mean squared error."""
    torch = require_torch()
    if task == "generic":
        return (lambda out, t: sum(torch.nn.functional.mse_loss(o, ti)
                                   for o, ti in zip(out, t, strict=True))), True
    probe = _predict(float_model, x[:64])[0]
    probs = bool(np.all(probe >= 0) and np.allclose(probe.sum(axis=-1), 1.0, atol=1e-3))
    if probs:  # the model ends in softmax: cross-entropy on its log
        return (lambda out, t: torch.nn.functional.nll_loss(
            torch.log(out[0].clamp_min(1e-12)), t[0])), False
    return (lambda out, t: torch.nn.functional.cross_entropy(out[0], t[0])), False


def qat_train(
    *,
    float_model: Any,
    input_shape: Sequence[int],
    emit: Emit,
    cancel: CancelToken,
    train_stage: str,
    convert_stage: str,
    task: str,
    evaluation: dict[str, Any],
    qat: dict[str, Any],
    train: dict[str, str],
    validation: dict[str, str] | None,
    calibration: str,
    ckpt_dir: str,
    resume: bool,
    out_path: str,
) -> dict[str, Any]:
    """Fine-tune with fake quantization, checkpoint every epoch, export the best as QDQ ONNX."""
    torch = require_torch()
    if task not in TASKS:
        raise ModelError(f"QAT of a PyTorch model covers the {' and '.join(TASKS)} tasks, "
                         f"not {task}", "use PTQ (quantization.method = \"ptq\") for this model")
    if not qat.get("freeze_batch_norm", True):
        raise ModelError("quantization.qat.freeze_batch_norm = false is not available for "
                         "PyTorch models: BatchNorm is folded into the convolutions before QAT",
                         "remove the key (folded BatchNorm is frozen BatchNorm)")
    seed = int(qat["seed"])
    t_start = time.perf_counter()
    x_tr = np.load(train["x"])
    y_tr = load_labels(Path(train["labels"]))
    if validation is not None:
        x_va, y_va = np.load(validation["x"]), load_labels(Path(validation["labels"]))
    else:
        x_tr, y_tr, x_va, y_va = hold_out(x_tr, y_tr, seed)
    x_cal = np.load(calibration)

    loss_fn, distil = _loss_fn(task, float_model, x_tr)
    targets = _predict(float_model, x_tr) if distil or y_tr is None else [np.asarray(y_tr, np.int64)]
    # The float model's validation outputs: what the judged figure compares with.
    ref_val = _predict(float_model, x_va)

    torch.manual_seed(seed)
    q = quant.prepare(float_model, input_shape)
    opt = torch.optim.Adam(q.parameters(), lr=float(qat["learning_rate"]))
    cdir = Path(ckpt_dir)
    cdir.mkdir(parents=True, exist_ok=True)
    state_path, last_path, best_path = cdir / "state.json", cdir / "last.pt", cdir / "best.pt"
    st: dict[str, Any] = {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "bad_epochs": 0}
    if resume and state_path.is_file() and last_path.is_file():
        st = json.loads(state_path.read_text())
        ck = torch.load(last_path, map_location="cpu", weights_only=True)
        q.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        emit(Log(f"resumed QAT after epoch {st['epoch']} from {last_path}"))
    else:
        if qat.get("init_ranges", True):
            n = quant.init_ranges(q, x_cal)
            emit(Log(f"fake-quant ranges set from {len(x_cal)} calibration items ({n} ranges)"))
        metric0, val0, st["judged_output"] = _val_metric(task, q, x_va, y_va, evaluation,
                                                         ref_val)
        st["best"], st["best_epoch"], st["metric"] = val0, 0, metric0
        st["history"].append({"epoch": 0, "loss": None, "val_metric": val0, "seconds": 0.0})
        torch.save(q.state_dict(), best_path)
        emit(Log(f"before fine-tuning: validation {metric0} {val0:.4f}"))

    epochs, batch, patience = int(qat["epochs"]), int(qat["batch_size"]), int(qat["patience"])
    n = len(x_tr)
    steps = (n + batch - 1) // batch
    total = (epochs - st["epoch"]) * steps
    metric_name = str(st.get("metric", ""))
    emit(StageStarted(train_stage, "QAT fine-tuning", total))
    done_steps, epoch_times, stopped_early = 0, [], False
    for epoch in range(st["epoch"], epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng([seed, epoch]).permutation(n)
        torch.manual_seed(seed * 100_003 + epoch)
        quant.for_training(q)
        seen: list[float] = []
        for s in range(steps):
            cancel.check()
            idx = np.sort(order[s * batch:(s + 1) * batch])
            xb = torch.from_numpy(np.ascontiguousarray(x_tr[idx], np.float32))
            tb = [torch.from_numpy(np.ascontiguousarray(t[idx])) for t in targets]
            out = q(xb)
            out = list(out) if isinstance(out, list | tuple) else [out]
            loss = loss_fn(out, tb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            value = float(loss.detach())
            if not np.isfinite(value):
                raise ModelError(f"QAT diverged: the loss became {value} in epoch {epoch + 1}",
                                 "lower quantization.qat.learning_rate (the guide uses 1e-5)")
            seen.append(value)
            done_steps += 1
            emit(Progress(train_stage, done_steps, total,
                          f"epoch {epoch + 1}/{epochs} loss {np.mean(seen):.4f}",
                          epoch=epoch + 1, epochs=epochs, batch=s + 1, batches=steps))
        metric_name, val, _ = _val_metric(task, q, x_va, y_va, evaluation, ref_val,
                                          st.get("judged_output"))
        epoch_times.append(time.perf_counter() - t0)
        eta = float(np.mean(epoch_times)) * (epochs - epoch - 1)
        mean_loss = float(np.mean(seen))
        emit(EpochEnd(epoch + 1, epochs, mean_loss, val, metric_name,
                      float(qat["learning_rate"]), round(eta, 1)))
        st["history"].append({"epoch": epoch + 1, "loss": mean_loss, "val_metric": val,
                              "seconds": round(epoch_times[-1], 2)})
        if st["best"] is None or val > st["best"]:
            st["best"], st["best_epoch"], st["bad_epochs"] = val, epoch + 1, 0
            torch.save(q.state_dict(), best_path)
        else:
            st["bad_epochs"] += 1
        # The newest epoch only (and best.pt): model and optimizer, tensors only.
        torch.save({"model": q.state_dict(), "optimizer": opt.state_dict()}, last_path)
        st["epoch"], st["checkpoint"] = epoch + 1, str(last_path)
        atomic_write_json(state_path, st)
        if patience and st["bad_epochs"] >= patience:
            stopped_early = True
            emit(Log(f"early stop after epoch {epoch + 1}: no better {metric_name} for "
                     f"{patience} epoch{'' if patience == 1 else 's'}"))
            break
    emit(StageFinished(train_stage, round(time.perf_counter() - t_start, 2),
                       {"best_epoch": st["best_epoch"], "best_val": st["best"]}))
    q.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))

    emit(StageStarted(convert_stage, "Exporting the QAT model to ONNX QDQ", None))
    t0 = time.perf_counter()
    quant.export_qdq(q, input_shape, out_path)
    size = Path(out_path).stat().st_size
    emit(StageFinished(convert_stage, round(time.perf_counter() - t0, 2), {"size_bytes": size}))
    return {
        "size_bytes": size,
        "history": st["history"],
        "best_epoch": st["best_epoch"],
        "best_val": st["best"],
        "metric": metric_name,
        "epochs_run": st["epoch"],
        "stopped_early": stopped_early,
        "train_items": int(len(x_tr)),
        "validation_items": int(len(x_va)),
    }
