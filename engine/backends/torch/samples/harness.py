"""``artq samples train`` for a PyTorch sample: the Keras samples' harness (output folder
checks, NOTES.md section), with PyTorch's training and seeding instead of Keras's."""

from __future__ import annotations

import importlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import ConfigError
from ....samples import SAMPLES, WEIGHTS_DIR
from ...tf.samples.train import CONFIG_DIR, _check_out_dir, write_notes


def train_sample(name: str, out_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                 epochs: int | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train PyTorch sample ``name``; save ``<out_dir>/<weights>`` (a state_dict)."""
    spec = SAMPLES[name]
    if epochs is not None and epochs < 1:
        raise ConfigError(f"epochs must be ≥ 1, got {epochs}", "give --epochs 1 or more")
    folder = Path(out_dir) if out_dir is not None else WEIGHTS_DIR
    out_path = folder / spec.weights
    _check_out_dir(folder, out_path)
    module = importlib.import_module(f"{__package__}.train")
    random.seed(seed)
    np.random.seed(seed)
    log(f"training {name} (seed {seed}) → {out_path}")
    t0 = time.time()
    result = module.train(out_path, seed, epochs, log, CONFIG_DIR / spec.config)
    wall = time.time() - t0
    out = {
        "sample": name, "path": str(out_path), "seed": seed, "wall_seconds": round(wall, 1),
        "metrics": dict(result["fp32_metrics"]),
        "facts": {k: v for k, v in result.items() if k not in ("fp32_metrics", "seed")},
    }
    log(f"{name}: done in {wall:.0f} s; FP32 test metrics: "
        + ", ".join(f"{k} {v:.4f}" for k, v in out["metrics"].items()))
    if folder.resolve() == WEIGHTS_DIR.resolve():
        write_notes(out)
    return out
