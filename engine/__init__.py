"""artq's headless engine: quantize FP32 models to INT8 for the STM32N6 Neural-ART NPU.

``import engine`` is light: no TensorFlow, no UI. TensorFlow runs only inside the child
process that converts models (:mod:`engine.backends.tf.process`).

    from engine import load_config, run_job
    cfg = load_config("sample_configs/digits_ptq.toml", {"calibration.samples": 50})
    result = run_job(cfg, sink=print)
    print(result.report.verdict)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "CancelToken": ".cancel",
    "JobConfig": ".config",
    "load_config": ".config",
    "CancelledError": ".errors",
    "ConfigError": ".errors",
    "ConversionError": ".errors",
    "DataError": ".errors",
    "EngineError": ".errors",
    "InputFileError": ".errors",
    "ModelError": ".errors",
}

if TYPE_CHECKING:
    from .cancel import CancelToken
    from .config import JobConfig, load_config
    from .errors import (
        CancelledError,
        ConfigError,
        ConversionError,
        DataError,
        EngineError,
        InputFileError,
        ModelError,
    )
    from .job import JobResult


def __getattr__(name: str) -> Any:
    # Lazy: `artq inspect` must not pay for pydantic (config) it never uses.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_job(cfg: JobConfig, sink: Any = None, cancel: CancelToken | None = None) -> JobResult:
    """Run one job (see :func:`engine.job.run_job`)."""
    from .events import null_sink
    from .job import run_job as _run

    return _run(cfg, sink or null_sink, cancel)


__all__ = [
    "CancelToken",
    "CancelledError",
    "ConfigError",
    "ConversionError",
    "DataError",
    "EngineError",
    "InputFileError",
    "JobConfig",
    "ModelError",
    "__version__",
    "load_config",
    "run_job",
]
