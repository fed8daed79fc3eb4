"""Every output counts, on a real job: a two-output Keras model whose first output is a
constant (bit-identical in INT8, as an SSD's anchors) and whose second INT8 destroys.
Judged on output 0 alone it would PASS; the verdict must FAIL on the damaged one, by name,
in dB."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import load_config, run_job
from engine.report import Report


def _model(path: Path) -> Path:
    import keras  # noqa: PLC0415

    inp = keras.Input((8,), name="x")
    # A constant output: zero weights, fixed bias, whatever the input.
    anchors = keras.layers.Dense(4, name="anchors", kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(0.25))(inp)
    # h = (1000·x0, x1): one INT8 scale for h spans ±1000, so x1 (±1) rounds to 0 there and
    # the output that reads only x1 is lost.
    mix = keras.layers.Dense(2, use_bias=False, name="mix")
    h = mix(inp)
    small = keras.layers.Dense(1, use_bias=False, name="small")
    out = small(h)
    model = keras.Model(inp, [anchors, out])
    w = np.zeros((8, 2), np.float32)
    w[0, 0], w[1, 1] = 1000.0, 1.0
    mix.set_weights([w])
    small.set_weights([np.array([[0.0], [1.0]], np.float32)])
    model.save(path)
    return path


@pytest.fixture(scope="module")
def two_output_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("outputs")
    model = _model(tmp / "two.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp / "data.npz", x=rng.uniform(-1, 1, (96, 8)).astype(np.float32))
    (tmp / "job.toml").write_text(f"""
name = "two_outputs"
[model]
path = "{model}"
[data.calibration]
kind = "npz"
path = "{tmp / 'data.npz'}"
y = ""
[data.test]
kind = "npz"
path = "{tmp / 'data.npz'}"
y = ""
[calibration]
samples = 64
[evaluation]
task = "generic"
profile = "prototype"
[analysis]
debug_samples = 0
[output]
runs_dir = "{tmp / 'runs'}"
""", encoding="utf-8")
    return tmp, run_job(load_config(tmp / "job.toml"))


def test_the_verdict_fails_on_the_damaged_output_by_name(two_output_run) -> None:
    _, result = two_output_run
    rep = json.loads((result.run_dir / "report.json").read_text())
    assert Report.from_dict(rep).to_dict() == rep
    assert [o["name"] for o in rep["model"]["outputs"]] == ["anchors", "small"]
    int8 = {o["name"]: o for o in rep["stages"]["int8"]["metrics"]["outputs"]}
    # The constant output survives INT8 (its own power against the error: far over 20 dB).
    anchors, small = int8["anchors"], int8["small"]
    assert anchors["kind"] == small["kind"] == "values" and anchors["acc"] is None
    assert anchors["exact"] or anchors["sqnr_db"] > 40
    # The other is gone: almost no signal left (x1 rounded to 0 in h).
    assert small["sqnr_db"] is not None and small["sqnr_db"] < 3.0, small
    v = rep["verdict"]
    assert v["pass"] is False and v["output"] == "small" and v["unit"] == "dB"
    assert v["metric"] == "sqnr_db" and v["threshold"] == 20.0 and v["drop"] is None
    assert v["int8"] == small["sqnr_db"]
    by_name = {j["name"]: j for j in v["outputs"]}
    assert by_name["anchors"]["pass"] is True and by_name["small"]["pass"] is False
    assert {j["rule"] for j in v["outputs"]} == {"sqnr"}
    assert "points" not in v["advice"] and "'small'" in v["advice"]
    md = (result.run_dir / "report.md").read_text()
    assert "verdict: **FAIL** — INT8 output 'small': SQNR" in md
    rows = md.split("### Outputs against FP32")[1].splitlines()
    small_at = next(i for i, r in enumerate(rows) if r.startswith("| small | FP16 |"))
    assert rows[small_at + 1].startswith("|  | INT8 |") and rows[small_at + 1].endswith("| FAIL |")


def test_evaluation_outputs_leaves_the_damaged_output_unjudged(two_output_run) -> None:
    tmp, _ = two_output_run
    cfg = load_config(tmp / "job.toml", ['evaluation.outputs=["anchors"]', "name=anchors_only"])
    rep = run_job(cfg).report
    assert rep.verdict is not None and rep.verdict.passed and rep.verdict.output == "anchors"
    small = next(j for j in rep.verdict.outputs if j.name == "small")
    assert not small.judged and not small.passed  # shown, not judged
