"""The equalize stage inside a job: which INT8 model is kept, and the float-drift guard
(fake backend, crafted .tflite files, LiteRT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_backend import FLOAT_MODEL, INT8_MODEL, FakeBackend, FakeFactory, write_keras_stub

from engine.config import load_config
from engine.events import StageStarted
from engine.job import run_job
from engine.report import Report, render_markdown

JOB = """
name = "fake"
[model]
path = "{model}"
[data.calibration]
kind = "npz"
path = "{data}"
y = ""
[data.test]
kind = "npz"
path = "{test}"
y = ""
[calibration]
samples = 20
[quantization]
equalize = true
[evaluation]
task = "generic"
workers = 1
[analysis]
debug_samples = 0
sensitivity_k = 0
[output]
runs_dir = "{runs}"
"""

PAIRS = [{"first": "c1", "batch_norm": "bn", "second": "c2"}]


@pytest.fixture(autouse=True)
def no_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("tensorflow", "tf_keras", "keras"):
        monkeypatch.setitem(sys.modules, name, None)


class _Equalizing(FakeBackend):
    """Writes ``blob`` as the equalized INT8 model and says the float moved by ``drift``."""

    blob: bytes = INT8_MODEL
    drift: float = 1e-7
    adopted: str = ""

    def equalize(self, calibration: str, export_dir: str, out_path: str, granularity: str,
                 io_type: str, allow_float: bool, *, stage: str) -> dict[str, object]:
        assert Path(calibration).is_file() and granularity == "per_channel"
        Path(out_path).write_bytes(self.blob)
        return {"pairs": PAIRS, "skipped": [{"name": "fc", "why": "its output is a model output"}],
                "sweeps": 3, "float_diff": [self.drift], "size_bytes": len(self.blob)}

    def adopt(self, export_dir: str, *, stage: str) -> None:
        self.adopted = export_dir


class _Factory(FakeFactory):
    def __init__(self, blob: bytes, drift: float = 1e-7) -> None:
        super().__init__()
        self.blob, self.drift = blob, drift

    def __call__(self, fmt, options):  # noqa: ANN001, ANN204
        be = _Equalizing(options)
        be.blob, be.drift = self.blob, self.drift
        self.opened.append(be)
        return be


def _job(tmp: Path):  # noqa: ANN202
    rng = np.random.default_rng(0)
    np.savez(tmp / "cal.npz", x=rng.uniform(-1, 1, (20, 8, 8, 1)).astype(np.float32))
    np.savez(tmp / "test.npz", x=rng.uniform(-1, 1, (12, 8, 8, 1)).astype(np.float32))
    path = tmp / "job.toml"
    path.write_text(JOB.format(model=write_keras_stub(tmp / "model.keras"), data=tmp / "cal.npz",
                               test=tmp / "test.npz", runs=tmp / "runs"), encoding="utf-8")
    return load_config(path)


def test_an_equalized_model_closer_to_fp32_is_kept(tmp_path: Path) -> None:
    # The "equalized" INT8 model is the float one itself: exact on every item.
    factory = _Factory(FLOAT_MODEL)
    events: list = []
    res = run_job(_job(tmp_path), events.append, backend=factory)
    started = [e.stage for e in events if isinstance(e, StageStarted)]
    assert started.index("equalize") == started.index("convert_int8") + 1
    eq = res.report.equalization
    assert eq is not None and eq.kept == "equalized" and eq.other_path == "int8_plain.tflite"
    assert (eq.heldout_items, eq.test_items, eq.sweeps) == (4, 12, 3)
    (out,) = eq.outputs
    assert out.calibration is not None and out.calibration.before_db is not None
    assert out.calibration.after_db is None  # exact
    assert (res.run_dir / "int8.tflite").read_bytes() == FLOAT_MODEL
    assert (res.run_dir / "int8_plain.tflite").read_bytes() == INT8_MODEL
    assert factory.opened[0].adopted.endswith("saved_model_equalized")
    d = json.loads((res.run_dir / "report.json").read_text())
    assert Report.from_dict(d).to_dict() == d
    assert d["equalization"]["pairs"] == PAIRS and d["equalization"]["float_diff"] == [1e-7]
    md = render_markdown(res.report)
    assert "## Cross-layer equalization" in md and "kept the equalized model" in md


def test_no_better_keeps_the_plain_model(tmp_path: Path) -> None:
    res = run_job(_job(tmp_path), backend=_Factory(INT8_MODEL))
    eq = res.report.equalization
    assert eq is not None and eq.kept == "plain" and eq.other_path == "int8_equalized.tflite"
    assert (res.run_dir / "int8.tflite").read_bytes() == INT8_MODEL


def test_a_float_model_that_moved_is_never_used(tmp_path: Path) -> None:
    res = run_job(_job(tmp_path), backend=_Factory(FLOAT_MODEL, drift=2e-4))
    eq = res.report.equalization
    assert eq is not None and eq.kept == "plain" and eq.error and "moved by 2.00e-04" in eq.error
    assert eq.outputs == ()
    assert (res.run_dir / "int8.tflite").read_bytes() == INT8_MODEL
    assert not list(res.run_dir.glob("int8_*.tflite"))
