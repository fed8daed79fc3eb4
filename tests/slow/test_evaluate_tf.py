"""Parallel runs of a real INT8 model from a job give the sequential outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.evaluate import run_model


def test_parallel_equals_sequential(tiny_model: Path, tmp_path: Path) -> None:
    from models import tiny_job

    from engine import load_config, run_job

    result = run_job(load_config(tiny_job(tmp_path, tiny_model, test_count=20),
                                 ["quantization.stages=['fp32','int8']"]))
    x = np.random.default_rng(0).random((37, 32, 32, 1), dtype=np.float32)
    one = run_model(str(result.run_dir / "int8.tflite"), x, workers=1)
    two = run_model(str(result.run_dir / "int8.tflite"), x, workers=2)
    assert two.workers == 2
    np.testing.assert_array_equal(one.outputs[0], two.outputs[0])
