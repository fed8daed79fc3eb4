"""Every output judged, by name, by a rule that means something for it: output kinds,
SQNR, name/shape matching, the worst-output verdict, ``evaluation.outputs``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine import present as say
from engine.config import load_config
from engine.errors import ConfigError, OutputMatchError
from engine.metrics import agreement
from engine.outputs import (
    FIDELITY_BARS_DB,
    check_output_names,
    is_class_distribution,
    judge_output,
    match_outputs,
    output_specs,
    score_outputs,
    signature_order,
)
from engine.report import Report, render_markdown
from engine.verdict import Judgement, Verdict, judge_outputs

rng = np.random.default_rng(0)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------ output kinds


def test_a_softmax_is_a_class_distribution_and_nothing_else_is() -> None:
    logits = rng.normal(0, 3, (50, 10)).astype(np.float32)
    assert is_class_distribution(_softmax(logits))
    assert is_class_distribution(_softmax(rng.normal(0, 1, (4, 6, 6, 3))))  # per position
    assert not is_class_distribution(logits)  # negative values
    sigmoid = 1 / (1 + np.exp(-rng.normal(0, 2, (50, 1))))
    assert not is_class_distribution(sigmoid)  # one value: no argmax to agree on
    assert not is_class_distribution(np.abs(logits))  # non-negative, rows do not sum to 1
    grid = np.concatenate([rng.uniform(0, 192, (8, 12, 12, 4)),
                           _softmax(rng.normal(0, 1, (8, 12, 12, 2)))], axis=-1)
    assert not is_class_distribution(grid)  # box coordinates beside scores
    assert not is_class_distribution(_softmax(logits)[:, 0])  # no class axis
    assert not is_class_distribution(np.full((50, 4), 0.25))  # the same for every item


def test_specs_give_each_output_its_rule() -> None:
    probs = _softmax(rng.normal(0, 1, (20, 5)))
    logits = rng.normal(0, 1, (20, 5))
    value = rng.normal(0, 1, (20, 1))
    names = ["probs", "logits", "value"]
    generic = output_specs(names, [probs, logits, value], task_outputs=(), task_classes=False)
    assert [(s.kind, s.rule, s.judged) for s in generic] == [
        ("classes", "argmax", True), ("values", "sqnr", True), ("values", "sqnr", True)]
    # Declared class outputs are class outputs; a declared one-value output is not.
    declared = output_specs(names, [probs, logits, value], task_outputs=(), task_classes=False,
                            class_outputs=["logits", "value"], judged=["logits"])
    assert [(s.kind, s.rule, s.judged) for s in declared] == [
        ("classes", "argmax", False), ("classes", "argmax", True), ("values", "sqnr", False)]
    # A labelled task keeps its metric for its output; the others are judged on fidelity.
    labelled = output_specs(["logits", "value"], [logits, value], task_outputs=(0,),
                            task_classes=True)
    assert [(s.kind, s.rule) for s in labelled] == [("classes", "task"), ("values", "sqnr")]


# ------------------------------------------------------------------ SQNR


def test_sqnr_by_hand_and_its_nse() -> None:
    ref = np.array([[1.0], [2.0], [3.0], [4.0]])
    pred = ref + np.array([[0.1], [-0.1], [0.1], [-0.1]])
    m = agreement(pred, ref, classes=False)
    # Σ(ref − 2.5)² = 5, Σe² = 0.04: 10·log10(125) dB, and nse = 1 − 10^(−dB/10).
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(125.0))
    assert m["nse"] == pytest.approx(1 - 10 ** (-m["sqnr_db"] / 10))
    assert m["acc"] is None and m["exact"] is False


def test_sqnr_centres_each_channel_so_a_packed_output_is_not_flattered() -> None:
    # Box-like values near 0 beside objectness logits near −50, each with noise 0.1.
    ref = np.c_[rng.normal(0, 1, 200), rng.normal(-50, 1, 200)]
    noise = rng.normal(0, 0.1, ref.shape)
    m = agreement(ref + noise, ref, classes=False)
    per_channel = np.sum((ref - ref.mean(axis=0)) ** 2) / np.sum(noise**2)
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(per_channel))  # ≈ 20 dB
    global_db = 10 * math.log10(np.sum((ref - ref.mean()) ** 2) / np.sum(noise**2))
    assert global_db - m["sqnr_db"] > 25  # the −50 level would have counted as signal
    assert m["nse"] == pytest.approx(1 - 10 ** (-global_db / 10))  # ST's nse: global mean


def test_sqnr_edges_are_json_without_infinity() -> None:
    ref = rng.normal(0, 1, (8, 3))
    same = agreement(ref, ref)
    assert same["exact"] is True and same["sqnr_db"] is None and same["nse"] == 1.0
    # A constant output (anchors): its own power stands in for the variation it lacks.
    const = np.full((8, 4), 0.5)
    m = agreement(const + 0.001, const, classes=False)
    assert m["sqnr_db"] == pytest.approx(20 * math.log10(0.5 / 0.001))
    assert m["nse"] is None  # no variation to compare with
    # An all-zero reference with an error: no signal at all, not exact.
    z = agreement(np.full((4, 2), 0.1), np.zeros((4, 2)), classes=False)
    assert z["sqnr_db"] is None and z["exact"] is False and z["l2r"] is None
    for d in (same, m, z):
        json.dumps(d, allow_nan=False)  # raises on inf or nan


def test_sqnr_judgement_and_exact_match() -> None:
    (spec,) = output_specs(["y"], [rng.normal(0, 1, (30, 4))], task_outputs=(),
                           task_classes=False)
    out = {"name": "y", "kind": "values", "sqnr_db": 23.5, "exact": False}
    j = judge_output(spec, out, "general")
    assert (j.rule, j.unit, j.value, j.bar, j.passed) == ("sqnr", "dB", 23.5, 26.0, False)
    assert judge_output(spec, out, "prototype").passed  # 23.5 ≥ 20
    exact = judge_output(spec, {"sqnr_db": None, "exact": True}, "production")
    assert exact.passed and exact.exact and exact.value is None and exact.used == 0
    nothing = judge_output(spec, {"sqnr_db": None, "exact": False}, "prototype")
    assert not nothing.passed and nothing.used == math.inf
    assert sorted(FIDELITY_BARS_DB.values()) == [20.0, 26.0, 30.0, 34.0]


# ------------------------------------------------------------------ matching


def test_outputs_are_matched_by_name_not_by_the_converters_order() -> None:
    expected = [{"name": "scores", "signature": "output_0", "shape": [1, 3]},
                {"name": "boxes", "signature": "output_1", "shape": [1, 5]}]
    # The converter put output_1 first (as TF's does).
    assert match_outputs(expected, ["output_1", "output_0"], [(1, 5), (1, 3)], "m") == [1, 0]
    # Same shapes: only names can tell them apart.
    same = [{"name": "a", "signature": "output_0", "shape": [1, 4]},
            {"name": "b", "signature": "output_1", "shape": [1, 4]}]
    assert match_outputs(same, ["output_1", "output_0"], [(1, 4), (1, 4)], "m") == [1, 0]
    # No signature: tensor names do not match, distinct shapes do.
    assert match_outputs(expected, ["Identity_1", "Identity"], [(1, 5), (1, 3)], "m") == [1, 0]
    assert signature_order(["output_10", "output_2", "output_1"]) == [
        "output_1", "output_2", "output_10"]


@pytest.mark.parametrize(("names", "shapes", "words"), [
    (["Identity_1", "Identity"], [(1, 4), (1, 4)], "matches no output of the converted model by name"),
    (["output_0", "output_1"], [(1, 4), (1, 7)], "has shape [1, 4] in the model but [1, 7]"),
    (["output_0"], [(1, 4)], "2 outputs but the converted model has 1"),
])
def test_outputs_that_cannot_be_matched_are_refused(names: list[str], shapes: list[tuple],
                                                    words: str) -> None:
    expected = [{"name": "a", "signature": "output_0", "shape": [1, 4]},
                {"name": "b", "signature": "output_1", "shape": [1, 4]}]
    with pytest.raises(OutputMatchError) as info:
        match_outputs(expected, names, shapes, "int8.tflite")
    assert words in info.value.message and info.value.message.startswith("int8.tflite: ")
    assert info.value.hint


# ------------------------------------------------------------------ the verdict


def _j(name: str, value: float | None, *, unit: str = "dB", bar: float = 26.0,
       judged: bool = True, exact: bool = False) -> Judgement:
    ok = exact or (value is not None and (value >= bar if unit == "dB" else value <= bar))
    return Judgement(name, "sqnr" if unit == "dB" else "argmax",
                     "sqnr_db" if unit == "dB" else "agreement", unit, value, bar, ok,
                     judged=judged, exact=exact, stage=value)


def test_the_verdict_fails_on_the_worst_output_by_name_in_its_unit() -> None:
    # The SSD case: a constant anchor output is exact, the boxes are damaged.
    v = judge_outputs([_j("anchors", None, exact=True), _j("boxes", 12.3), _j("scores", 31.0)],
                      "general", cpu_ops=0)
    assert not v.passed and v.output == "boxes" and v.unit == "dB"
    assert (v.metric, v.threshold, v.int8, v.drop) == ("sqnr_db", 26.0, 12.3, None)
    assert "boxes" in v.advice and "12.3 dB" in v.advice and "points" not in v.advice
    assert "calibration data does not match" not in v.advice
    rep = Report(name="n", verdict=v)
    word, text = say.verdict(rep)
    assert word == "FAIL" and text == ("INT8 output 'boxes': SQNR 12.3 dB against FP32 "
                                       "(profile general: ≥ 26 dB; worst of 3 judged outputs)")
    assert Verdict.from_dict(v.to_dict()) == v


def test_the_worst_passing_output_is_the_one_nearest_its_bar_across_units() -> None:
    # 1.5 points of 2 allowed (75 %) against 28 dB over a 26 dB bar (63 % of the noise).
    v = judge_outputs([_j("probs", 1.5, unit="points", bar=2.0), _j("value", 28.0)], "general")
    assert v.passed and v.output == "probs" and v.unit == "points" and v.drop == 1.5
    assert v.advice.startswith("Output 'probs': INT8 loses 1.50 points")
    v = judge_outputs([_j("probs", 0.5, unit="points", bar=2.0), _j("value", 26.5)], "general")
    assert v.output == "value" and "26.5 dB SQNR" in v.advice


def test_unjudged_outputs_are_shown_not_judged() -> None:
    v = judge_outputs([_j("kept", 30.0), _j("ignored", 3.0, judged=False)], "general")
    assert v.passed and v.output == "kept" and [j.name for j in v.judged] == ["kept"]
    assert say.verdict(Report(name="n", verdict=v))[1].endswith("; 1 output not judged)")
    nothing = judge_outputs([_j("ignored", 3.0, judged=False)], "general")
    assert not nothing.passed and nothing.output is None


def test_the_tables_show_every_output_with_its_rule() -> None:
    ref = [_softmax(rng.normal(0, 2, (40, 4))), rng.normal(0, 1, (40, 6, 6, 2))]
    int8 = [ref[0] + rng.normal(0, 1e-3, ref[0].shape), ref[1] * 0.5]
    specs = output_specs(["probs", "grid"], ref, task_outputs=(), task_classes=False)
    m8 = score_outputs(int8, ref, specs)
    m32 = score_outputs(ref, ref, specs)
    js = [judge_output(s, o, "general") for s, o in zip(specs, m8, strict=True)]
    v = judge_outputs(js, "general")
    rep = Report.from_dict({
        "schema": "artq.report/1", "name": "two", "status": "ok",
        "stages": {"fp32": {"metrics": {"outputs": m32}}, "int8": {"metrics": {"outputs": m8}}},
        "verdict": v.to_dict()})
    assert rep.to_dict()["verdict"] == json.loads(json.dumps(v.to_dict(), allow_nan=False))
    t = say.output_table(rep)
    assert t.heads == ("output", "stage", "agree", "cos", "SQNR dB", "nse", "rmse", "rule",
                       "result")
    probs, grid = t.rows
    assert probs[0] == "probs" and probs[2] == "100.00 %" and probs[7] == "argmax drop ≤ 2"
    assert probs[8] == "PASS (+0.00)"
    # ×0.5: the error is half the signal, 6.0 dB.
    assert grid[0] == "grid" and grid[2] == "—" and grid[4] == "6.0"
    assert grid[7] == "SQNR ≥ 26 dB" and grid[8] == "FAIL"
    assert not v.passed and v.output == "grid"
    md = render_markdown(rep)
    assert "### Outputs against FP32" in md and "| grid | INT8 |" in md


# ------------------------------------------------------------------ evaluation.outputs


def test_evaluation_outputs_names_unknown_outputs(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        check_output_names(["boxes", "nope"], ["scores", "boxes"], "evaluation.outputs",
                           "job.toml")
    msg = str(info.value)
    assert msg.startswith("job.toml: evaluation.outputs: names no output of this model: 'nope'")
    assert "'scores', 'boxes'" in msg
    check_output_names(["boxes"], ["scores", "boxes"], "evaluation.outputs", "job.toml")
    cfg = tmp_path / "job.toml"
    cfg.write_text('[model]\npath = "m.keras"\n[data.calibration]\nkind = "synthetic"\n'
                   'generator = "digits"\ncount = 10\n[data.test]\nkind = "synthetic"\n'
                   'generator = "digits"\ncount = 10\n'
                   '[evaluation]\noutputs = ["a", "a"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="evaluation.outputs: lists an output twice"):
        load_config(cfg)
    ok = load_config(cfg, ['evaluation.outputs=["a", "b"]', 'evaluation.class_outputs=["b"]'])
    assert ok.evaluation.outputs == ("a", "b") and ok.evaluation.class_outputs == ("b",)


def test_qat_validates_on_the_worst_judged_output_and_keeps_it() -> None:
    """QAT's validation figure is the verdict's: the worst judged output in its unit, chosen
    at epoch 0 and kept, so epochs compare like with like (numpy stand-in for the model)."""
    from engine.backends.tf.qat import _val_metric  # noqa: PLC0415 - no TensorFlow imported

    x = rng.uniform(-1, 1, (40, 3)).astype(np.float32)
    ref = [np.full((40, 2), 0.5, np.float32), x * 2.0]

    def model(noise: float):  # noqa: ANN202
        def call(xb: np.ndarray, training: bool = False) -> list[np.ndarray]:
            return [np.full((len(xb), 2), 0.5, np.float32), xb * 2.0 + noise]
        return call

    ev = {"task": "generic", "profile": "general"}
    metric, value, out = _val_metric("generic", model(0.1), x, None, ev, ref, ["anchors", "xy"])
    # anchors is exact; xy carries the error: 0.1 against each channel's own spread.
    sst = float(np.sum((ref[1] - ref[1].mean(axis=0)) ** 2))
    assert out == "xy" and metric == "sqnr_db of xy"
    assert value == pytest.approx(10 * math.log10(sst / (0.1**2 * ref[1].size)), rel=1e-4)
    # Later epochs score the output chosen at epoch 0, by name.
    metric, later, _ = _val_metric("generic", model(0.0), x, None, ev, ref, ["anchors", "xy"],
                                   "xy")
    assert metric == "sqnr_db of xy" and later == 999.0  # exact, capped: JSON has no inf


def test_fidelity_sentences_read_right_at_the_edges() -> None:
    from engine.report import Agreement, Stage, StageMetrics  # noqa: PLC0415
    from engine.verdict import db_text  # noqa: PLC0415

    assert db_text(-0.004) == "0.0" and db_text(21.26) == "21.3"
    v = judge_outputs([_j("small", -0.004, bar=20.0)], "prototype")
    assert "0.0 dB SQNR" in v.advice and "-0.0" not in v.advice

    def stage(a: Agreement) -> Stage:
        return Stage(metrics=StageMetrics(outputs=(a,)))

    rep = Report(name="n", verdict=v, stages={
        "fp32": stage(Agreement(name="small", exact=True)),
        "fp16": stage(Agreement(name="small", exact=True)),
        "int8": stage(Agreement(name="small", sqnr_db=-0.004))})
    assert say.precision_story(rep) == ("FP16 reproduces output 'small' exactly, INT8 keeps it "
                                        "at 0.0 dB SQNR: the loss comes from 8-bit quantization.")
    assert say.verdict(rep)[1] == "INT8: SQNR 0.0 dB against FP32 (profile prototype: ≥ 20 dB)"


def test_per_tensor_advice_comes_with_the_configs_spelling() -> None:
    # The config says "per_tensor"; the advice once only knew "per-tensor" and never fired.
    v = judge_outputs([_j("grid", 12.0)], "general", granularity="per_tensor")
    assert "try per-channel weights first" in v.advice
    pts = judge_outputs([_j("probs", 3.0, unit="points", bar=2.0)], "general",
                        granularity="per_tensor")
    assert "Try per-channel weights first" in pts.advice
