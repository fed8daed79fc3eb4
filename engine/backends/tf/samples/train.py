"""Training harness for the bundled samples (``artq samples train NAME``).

Each sample module provides ``train(out_path, seed, epochs, log) -> {"metrics": ...,
"facts": ...}`` (and may take ``sample=NAME`` when one module serves several samples). The
harness seeds everything, times the run, saves nothing itself but records how the weights
were made in ``engine/samples/weights/NOTES.md``, one section per sample.

Training reads its preprocessing from the sample's config under ``sample_configs/`` via
:func:`sample_config`, so training, calibration and evaluation share one preprocessing.
"""

from __future__ import annotations

import importlib
import inspect
import os
import platform
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ....config import JobConfig, load_config
from ....errors import ConfigError, InputFileError
from ....preprocess import PreprocessSpec
from ....samples import SAMPLES, WEIGHTS_DIR

REPO_ROOT = Path(__file__).resolve().parents[4]
CONFIG_DIR = REPO_ROOT / "sample_configs"
NOTES = WEIGHTS_DIR / "NOTES.md"


def sample_config(name: str, input_shape: Sequence[int]) -> tuple[JobConfig, PreprocessSpec]:
    """The sample's job config and its preprocessing resolved for ``input_shape`` (H, W, C)."""
    spec = _spec(name)
    path = CONFIG_DIR / spec.config
    if not path.is_file():
        raise ConfigError(
            "the sample's config is missing; training takes its preprocessing from it",
            f"restore {spec.config} under sample_configs/",
            file=str(path),
        )
    cfg = load_config(path)
    return cfg, PreprocessSpec.resolve(cfg.preprocessing, input_shape)


def _spec(name: str) -> Any:
    if name not in SAMPLES:
        raise ConfigError(
            f"unknown sample {name!r}", f"known samples: {', '.join(sorted(SAMPLES))}"
        )
    return SAMPLES[name]


def fit(
    model: Any,
    batches: Iterator[tuple[Any, Any]],
    loss: Callable[[Any, Any], Any],
    epochs: int,
    steps: int,
    learning_rate: float,
    on_epoch: Callable[[int, float], None] | None = None,
) -> None:
    """Train ``model`` for ``epochs`` × ``steps`` batches: Adam with a cosine-decayed rate.

    A plain compiled train step rather than ``model.fit``: measured here it trains about
    1.5× faster on 2 cores, and the next batch is generated on a thread meanwhile (OpenCV
    and NumPy release the GIL). ``loss(y, outputs)`` returns a scalar; ``outputs`` is the
    model's output (a list for several outputs).
    """
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps, alpha=0.02)
    opt = keras.optimizers.Adam(schedule)
    variables = model.trainable_variables

    @tf.function
    def step(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        opt.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))
        return value

    todo: queue.Queue[Any] = queue.Queue(maxsize=3)
    stop = threading.Event()

    def produce() -> None:
        try:
            for _ in range(epochs * steps):
                item = next(batches)
                while not stop.is_set():
                    try:
                        todo.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the training thread, which re-raises it
            todo.put(exc)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        for epoch in range(epochs):
            total = 0.0
            for _ in range(steps):
                item = todo.get()
                if isinstance(item, BaseException):
                    raise item
                total += float(step(*item))
            if on_epoch is not None:
                on_epoch(epoch, total / steps)
    finally:
        stop.set()
        worker.join(timeout=5)


def _seed_everything(seed: int) -> None:
    import keras  # noqa: PLC0415

    os.environ["PYTHONHASHSEED"] = str(seed)
    # Seeds Python's random, NumPy's global RNG and the backend (TensorFlow).
    keras.utils.set_random_seed(seed)


def _check_out_dir(folder: Path, out_path: Path) -> None:
    """Make sure the weights can be saved (creating ``folder``) before minutes of training."""
    hint = "give --out a folder you can write to; a missing one is created"
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            what = "is a file, not a folder" if part == folder else f"lies under {part}, a file"
            raise InputFileError(str(folder), what, hint)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass  # the mode bits say little (root, read-only mounts): try a write
    except OSError as exc:
        raise InputFileError(str(folder), f"cannot write here ({exc.strerror or exc})", hint) from None
    if out_path.is_dir():
        raise InputFileError(str(out_path), "is a folder, so the weights cannot be saved there",
                             "move it away or give another --out")


def train_sample(
    name: str,
    out_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    epochs: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train sample ``name``; save ``<out_dir>/<weights>`` (default engine/samples/weights).

    Returns ``{"sample", "path", "seed", "wall_seconds", "metrics", "facts"}``. The NOTES.md
    section is rewritten only when the weights go to the bundled folder, so experiments in
    another folder leave the committed notes alone.
    """
    spec = _spec(name)
    if spec.exported_from:
        raise ConfigError(f"{name} is exported from the {spec.exported_from} sample, not trained",
                          f"artq samples export-onnx {name}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"epochs must be ≥ 1, got {epochs}", "give --epochs 1 or more")
    folder = Path(out_dir) if out_dir is not None else WEIGHTS_DIR
    out_path = folder / spec.weights
    _check_out_dir(folder, out_path)
    module = importlib.import_module(f"{__package__}.{spec.module}")
    kwargs: dict[str, Any] = {}
    if "sample" in inspect.signature(module.train).parameters:
        kwargs["sample"] = name
    _seed_everything(seed)
    log(f"training {name} (seed {seed}) → {out_path}")
    t0 = time.time()
    result = module.train(out_path, seed, epochs, log, **kwargs)
    wall = time.time() - t0
    out = {
        "sample": name,
        "path": str(out_path),
        "seed": seed,
        "wall_seconds": round(wall, 1),
        # {"metrics", "facts"}, or a flat dict with "fp32_metrics" and the facts beside it.
        "metrics": dict(result.get("metrics", result.get("fp32_metrics", {}))),
        "facts": dict(
            result.get("facts")
            or {k: v for k, v in result.items() if k not in ("metrics", "fp32_metrics", "seed")}
        ),
    }
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in out["metrics"].items())
    log(f"{name}: done in {wall:.0f} s; FP32 test metrics: {metrics}")
    if folder.resolve() == WEIGHTS_DIR.resolve():
        write_notes(out)
    return out


def _section(result: dict[str, Any]) -> str:
    spec = SAMPLES[result["sample"]]
    size = Path(result["path"]).stat().st_size if Path(result["path"]).exists() else 0
    lines = [
        f"## {result['sample']}",
        "",
        f"{spec.description}.",
        "",
        f"- command: `artq samples train {result['sample']} --seed {result['seed']}`",
        f"- seed: {result['seed']}",
        f"- weights: `{spec.weights}` ({size / 1024:.0f} KiB)",
        f"- wall time: {result['wall_seconds']:.0f} s on {os.cpu_count()} CPU core(s) "
        f"({platform.machine()}, Python {platform.python_version()})",
    ]
    facts = dict(result["facts"])
    framework = facts.pop("framework", "Keras")
    for key, value in facts.items():
        lines.append(f"- {key.replace('_', ' ')}: {value}")
    lines.append(f"- FP32 metrics on the test split ({framework} model): " + ", ".join(
        f"{k} = {v:.4f}" for k, v in result["metrics"].items()
    ))
    return "\n".join(lines) + "\n"


def write_notes(result: dict[str, Any], path: Path = NOTES, section: str | None = None) -> None:
    """Rewrite ``result``'s sample section of NOTES.md (``section``, or the training one),
    leaving the other sections as they are."""
    text = path.read_text(encoding="utf-8") if path.exists() else (
        "# How the bundled weights were made\n\n"
        "Each section is written by `artq samples train NAME`; rerun it to reproduce.\n"
    )
    section = section or _section(result)
    pattern = re.compile(rf"^## {re.escape(result['sample'])}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    text = text.rstrip("\n") + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
