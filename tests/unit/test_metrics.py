"""The validate metrics and the verdict against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.config import EvaluationConfig
from engine.metrics import agreement
from engine.tasks import get_task
from engine.verdict import judge


def test_agreement_by_hand() -> None:
    ref = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    pred = np.array([[1.0, 2.0, 2.5], [0.0, 1.5, 0.0]])
    m = agreement(pred, ref)
    # e = [0, 0, -0.5, 0, 0.5, 0]
    assert m["acc"] == 1.0  # argmax 2 and 1 in both
    assert m["rmse"] == pytest.approx(math.sqrt(0.5 / 6))
    assert m["mae"] == pytest.approx(1.0 / 6)
    assert m["l2r"] == pytest.approx(math.sqrt(0.5) / math.sqrt(15))
    assert m["mean"] == pytest.approx(0.0)
    assert m["std"] == pytest.approx(math.sqrt(0.5 / 6))
    ref_mean = 7 / 6
    sst = sum((v - ref_mean) ** 2 for v in [1, 2, 3, 0, 1, 0])
    assert m["nse"] == pytest.approx(1 - 0.5 / sst)
    dot = 1 + 4 + 7.5 + 1.5
    assert m["cos"] == pytest.approx(dot / (math.sqrt(15) * math.sqrt(1 + 4 + 6.25 + 2.25)))


def test_agreement_argmax_disagreement_and_identity() -> None:
    ref = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    pred = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    assert agreement(pred, ref)["acc"] == 0.5
    same = agreement(ref, ref)
    assert same["rmse"] == 0 and same["nse"] == 1 and same["cos"] == pytest.approx(1)


def test_agreement_single_channel_has_no_argmax() -> None:
    ref = np.random.default_rng(0).random((4, 8, 8, 1))
    assert agreement(ref * 0.5, ref)["acc"] is None


def test_top1() -> None:
    task = get_task("classification")
    probs = np.array([[0.1, 0.9, 0.0], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.4, 0.5, 0.1]])
    assert task.score([probs], np.array([1, 0, 2, 0]), EvaluationConfig())["top1"] == 0.75


def test_verdict_thresholds_and_advice() -> None:
    v = judge("top1", 0.972, 0.968, "general")
    assert v.drop == pytest.approx(0.4) and v.passed and v.threshold == 2.0
    v = judge("top1", 0.972, 0.968, "production")  # 0.4 ≤ 0.5
    assert v.passed
    v = judge("top1", 0.97, 0.955, "high")  # 1.5 > 1
    assert not v.passed and "QAT" in v.advice
    v = judge("top1", 0.97, 0.80, "prototype")
    assert not v.passed and "preprocessing" in v.advice
    v = judge("top1", 0.97, 0.94, "general")  # 3 > 2
    assert not v.passed and "calibration" in v.advice
    assert v.to_dict()["pass"] is False
    v = judge("top1", 0.996, 0.996, "high")
    assert v.passed and v.advice.endswith("the high bar (at most 1 point of drop).")
    assert judge("top1", 0.9, 0.91, "production").advice.endswith("(at most 0.5 points of drop).")


@pytest.mark.parametrize(
    ("d16", "d8", "says"),
    [
        (0.0, 0.3, "the loss comes from 8-bit quantization (FP16 keeps FP32's accuracy)."),
        (0.4, 0.5, "the loss comes from 16-bit already."),
        (-0.1, -0.2, "Neither FP16 (-0.10) nor INT8 (-0.20) loses anything against FP32."),
        # EAST, measured: INT8 scored above FP32 while FP16 lost a little.
        (0.16, -1.27, "INT8 loses nothing against FP32 (-1.27 points; FP16 +0.16)."),
    ],
)
def test_precision_story_names_where_the_loss_is(d16: float, d8: float, says: str) -> None:
    from engine.present import precision_story
    from engine.report import Report, Stage

    report = Report(stages={"fp16": Stage(drop=d16), "int8": Stage(drop=d8)})
    assert (precision_story(report) or "").endswith(says)


def test_size_change_says_larger_when_int8_grows() -> None:
    from engine.present import size_change

    assert size_change(294_810, 84_480) == "71.3 % smaller than FP32"
    assert size_change(10_000, 11_190) == "11.9 % larger than FP32"
    assert size_change(10_000, 10_001) == "the same size as FP32"


def test_qat_note_says_when_fine_tuning_kept_the_starting_point() -> None:
    from dataclasses import replace

    from engine.present import qat_note
    from engine.report import Qat, Report

    rep = Report(qat=Qat(epochs_run=3, metric="top1", best_val=0.9912, best_epoch=2))
    assert qat_note(rep) == "QAT: 3 epochs, best validation top1 0.9912 at epoch 2"
    rep = replace(rep, qat=replace(rep.qat, best_epoch=0, stopped_early=True))
    assert qat_note(rep).startswith("QAT: 3 epochs, best validation top1 0.9912 at epoch 0 (stopped early). "
                                    "No epoch beat the starting point")
    assert qat_note(Report()) == ""


def test_qat_holds_out_a_random_tenth_not_the_last_class() -> None:
    from engine.validation import hold_out

    # An image folder is read class by class: the last tenth is all class 2.
    x = np.arange(300, dtype=np.float32).reshape(300, 1)
    y = np.repeat([0, 1, 2], 100)
    x_tr, y_tr, x_va, y_va = hold_out(x, y)
    assert len(x_va) == 30 and len(x_tr) == 270
    assert set(y_va.tolist()) == {0, 1, 2}
    assert sorted(np.concatenate([x_tr, x_va]).ravel().tolist()) == x.ravel().tolist()  # a partition
    assert (y_va == x_va.ravel() // 100).all()  # labels follow their items
    words = [f"w{i}" for i in range(300)]
    _, w_tr, _, w_va = hold_out(x, words)
    assert w_va == [f"w{int(v)}" for v in x_va.ravel()] and len(w_tr) == 270


def test_passing_advice_points_at_cpu_fallbacks_only_where_there_are_some() -> None:
    # 12 of 12 ops on the NPU used to be told to "check which layers fall back to the CPU".
    assert judge("top1", 0.972, 0.968, "general", cpu_ops=0).advice.endswith(
        "Every op runs on the NPU.")
    assert judge("top1", 0.972, 0.968, "general", cpu_ops=1).advice.endswith(
        "1 op falls back to the CPU: see the placement before flashing.")
    assert "4 ops fall back to the CPU" in judge("top1", 0.972, 0.968, "general", cpu_ops=4).advice
    # Not analysed: said as such, not as an invitation to look for fallbacks.
    unplaced = judge("top1", 0.972, 0.968, "general").advice
    assert unplaced.endswith("This run has no NPU placement: artq inspect on the INT8 model "
                             "says which layers would run on the CPU.")
    assert "fall back" not in unplaced


def test_a_slower_int8_reads_slower_not_a_fraction_faster() -> None:
    from engine.npu.headline import headline_markdown
    from engine.present import speed

    assert speed(53.2249) == "53.22× faster"
    assert speed(0.66) == "1.52× slower"  # was "×0.66 faster"
    h = {"target": "n6", "size_pct_smaller": 70.0, "size_x_smaller": 3.3, "x_faster": 0.5,
         "ram_pct_smaller": 10.0,
         "fp32": {"size_bytes": 4096, "est_ms": 1.0, "activation_ram_bytes": 2048},
         "int8": {"size_bytes": 1024, "est_ms": 2.0, "activation_ram_bytes": 1024}}
    assert "| 2× slower |" in headline_markdown(h)


def test_a_failing_per_tensor_run_is_told_to_try_per_channel_first() -> None:
    advice = judge("top1", 0.97, 0.94, "general", granularity="per-tensor").advice
    assert "Try per-channel weights first" in advice and 'granularity = "per-channel"' in advice
    assert "per-channel" not in judge("top1", 0.97, 0.94, "general").advice.split("keep")[0]


def test_advice_on_sensor_data_speaks_of_ranges_not_light() -> None:
    far = judge("top1", 0.97, 0.80, "prototype", images=False).advice
    assert "colour" not in far and "images" not in far and "recordings" in far
    more = judge("top1", 0.97, 0.94, "general", images=False).advice
    assert "brightness" not in more and "the range and variety of the inputs" in more
    assert "brightness, contrast and size" in judge("top1", 0.97, 0.94, "general").advice


def test_the_advice_shown_counts_the_cpu_ops_the_report_has() -> None:
    """A report whose advice was written without the placement (or by an older artq) is
    shown with the count its N6 estimate has: never 'check which layers fall back to the
    CPU' when none does."""
    from dataclasses import replace

    from engine.present import advice
    from engine.report import Npu, NpuSummary, Report
    from engine.verdict import UNPLACED_BEFORE

    v = judge("top1", 0.972, 0.968, "general")
    old = replace(v, advice=v.advice.replace(v.advice.split(". ", 1)[1], UNPLACED_BEFORE))
    for verdict in (v, old):
        rep = Report(verdict=verdict, npu=Npu(summary=NpuSummary(ops_total=12, ops_npu=12,
                                                                 ops_cpu=0)))
        said = advice(rep)
        assert said.endswith("Every op runs on the NPU.") and "fall back" not in said
        rep = replace(rep, npu=Npu(summary=NpuSummary(ops_total=12, ops_npu=10, ops_cpu=2)))
        assert advice(rep).endswith("2 ops fall back to the CPU: see the placement before "
                                    "flashing.")
    # No estimate in the report: the advice as written, saying the placement is unknown.
    assert advice(Report(verdict=v)) == v.advice
