"""``artq inspect``: the front-end, its outputs and its errors (as a real process, and its
import hygiene: tests/contract/test_inspect_cli_process.py)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest
from npu_models import Op, T, const, craft, write
from onnx_models import ONNX_TESTS

from engine.cli import inspect as cli

ROOT = Path(__file__).resolve().parents[2]


def classifier() -> bytes:
    """CONV_2D → RESHAPE → FULLY_CONNECTED → SOFTMAX, int8."""
    tensors = [
        T("input", (1, 8, 8, 3)),  # 0
        const("w", [4, 3, 3, 3], scales=[0.01] * 4),
        const("b", [4], "int32", value=0),  # 1, 2
        T("features", (1, 8, 8, 4)),  # 3
        T("shape", (2,), "int32", b"\x01\0\0\0\x00\x01\0\0", scales=None),  # 4: (1, 256)
        T("flat", (1, 256)),  # 5
        const("fw", [10, 256]),
        const("fb", [10], "int32", value=0),  # 6, 7
        T("logits", (1, 10)),  # 8
        T("probs", (1, 10)),  # 9
    ]
    ops = [
        Op("CONV_2D", [0, 1, 2], [3], {"padding": 0, "strideH": 1, "strideW": 1}),
        Op("RESHAPE", [3, 4], [5]),
        Op("FULLY_CONNECTED", [5, 6, 7], [8]),
        Op("SOFTMAX", [8], [9], {"beta": 1.0}),
    ]
    return craft(tensors, ops, [0], [9])


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("cli"), "classifier", classifier())


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="artq")
    sub = p.add_subparsers(dest="command")
    cli.add_parser(sub)
    return p.parse_args(["inspect", *argv])


def test_json_contract(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(str(model), "--json")) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["schema"] == "artq.npu/1" and d["target"] == "stm32n6570-dk"
    s = d["summary"]
    assert (s["ops_total"], s["ops_npu"], s["ops_cpu"]) == (4, 3, 1)
    assert (s["epochs_hw"], s["epochs_sw"]) == (2, 1)  # the RESHAPE joins the conv's epoch
    assert s["weights_flash_bytes"] == 108 + 16 + 2560 + 40 + 8
    assert s["latency_ms"] > 0
    ops = [(x["op"], x["placement"]) for x in d["layers"]]
    assert ops == [
        ("CONV_2D", "NPU"),
        ("RESHAPE", "NPU"),
        ("FULLY_CONNECTED", "NPU"),
        ("SOFTMAX", "CPU"),
    ]
    assert d["layers"][0]["macs"] == 8 * 8 * 4 * 27
    assert d["layers"][0]["output_shape"] == [1, 8, 8, 4]


def test_human_output(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(str(model))) == 0
    out = capsys.readouterr().out
    assert "Operators: 4 — NPU 3 (75 %), CPU 1 (25 %)" in out
    assert "Epochs: 3 — 2 HW, 1 SW" in out
    assert "Estimated time:" in out and "inferences/s" in out
    assert "npuRAM3" in out and "Layers" in out
    flat = " ".join(out.split())  # the reason column wraps in an 80-column console
    assert "SOFTMAX runs in software" in flat and "software epoch by default" in flat
    assert "Advice" in out and "apply it on the host" in flat


def test_csv(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "layers.csv"
    assert cli.run(parse(str(model), "--csv", str(out), "--json")) == 0
    capsys.readouterr()
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["op"] for r in rows] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert rows[0]["output_shape"] == "1x8x8x4" and rows[3]["placement"] == "CPU"
    assert set(cli.CSV_COLUMNS) == set(rows[0])


def test_errors_are_one_red_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse(str(tmp_path / "none.tflite"))) == 2
    err = capsys.readouterr()
    assert err.out == ""
    line = err.err.strip()
    assert line.startswith("error: ") and "none.tflite: no such file" in line
    assert "\n" not in line and "Traceback" not in line

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    assert cli.run(parse(str(junk))) == 2
    assert "not a TFLite flatbuffer" in capsys.readouterr().err


def test_bad_target_and_unwritable_csv(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(parse(str(model), "--target", "stm32h7")) == 2
    assert "unknown target 'stm32h7'" in capsys.readouterr().err
    assert cli.run(parse(str(model), "--csv", str(tmp_path / "no" / "dir" / "x.csv"))) == 2
    assert "cannot write the CSV" in capsys.readouterr().err


def test_non_finite_target_number_is_one_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "engine" / "targets" / "stm32n6570-dk.toml").read_text(encoding="utf-8")
    for old, new, key in (("size_kib = 448", "size_kib = 1e400", "memory.pools[0].size_kib"),
                          ("\nconv = 0.147", "\nconv = nan", "npu.efficiency.conv")):
        target = tmp_path / "edited.toml"
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        assert cli.run(parse(str(model), "--target", str(target), "--json")) == 2
        out = capsys.readouterr()
        assert out.out == ""  # no report with NaN in it
        line = out.err.strip()
        assert f"{target}: {key}: must be a finite number > 0" in line
        assert "\n" not in line and "Traceback" not in line


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from onnx_models import conv_qdq  # onnxruntime's quantizer, in this fixture only

    return conv_qdq(tmp_path_factory.mktemp("onnx"))


@ONNX_TESTS
def test_onnx_qdq_model(
    onnx_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model from onnxruntime's quantize_static: its convs on the NPU with their reasons,
    in the same JSON, CSV and table as a .tflite."""
    out = tmp_path / "layers.csv"
    assert cli.run(parse(str(onnx_model), "--json", "--csv", str(out))) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["schema"] == "artq.npu/1" and d["summary"]["precision"] == "int8"
    rows = [(x["source_op"], x["op"], x["placement"]) for x in d["layers"]]
    assert rows == [
        ("QuantizeLinear", "QUANTIZE", "CPU"),
        ("Conv", "CONV_2D", "NPU"),
        ("Conv", "DEPTHWISE_CONV_2D", "NPU"),
        ("GlobalAveragePool", "MEAN", "NPU"),
        ("Flatten", "RESHAPE", "NPU"),
        ("Gemm", "FULLY_CONNECTED", "NPU"),
        ("Softmax", "SOFTMAX", "CPU"),
        ("DequantizeLinear", "DEQUANTIZE", "CPU"),
    ]
    convs = [x for x in d["layers"] if x["source_op"] == "Conv"]
    assert all(x["reason"] == "runs on the NPU (the convolution accelerators)" for x in convs)
    assert convs[0]["output_shape"] == [1, 8, 16, 16]  # ONNX's channel-first shape
    assert convs[0]["macs"] == 16 * 16 * 8 * 27 and convs[1]["macs"] == 8 * 8 * 8 * 9
    csv_rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["source_op"] for r in csv_rows] == [r[0] for r in rows]
    assert csv_rows[1]["output_shape"] == "1x8x16x16"

    assert cli.run(parse(str(onnx_model))) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert "Operators: 8 — NPU 5 (62 %), CPU 3 (38 %)" in flat
    assert "Conv→DEPTHWISE_CONV_2D" in flat and 'quantization.io_type = "int8"' in flat


def test_onnx_errors_are_one_red_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model\n", encoding="utf-8")
    assert cli.run(parse(str(junk))) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: ") and "junk.onnx: not an ONNX model" in line
    assert "\n" not in line and "Traceback" not in line


def test_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    text = capsys.readouterr().out
    for needle in (
        "MODEL.tflite|MODEL.onnx",
        "ONNX QDQ",
        "--target NAME|FILE",
        "--json",
        "--csv FILE",
        "artq.npu/1",
        "stm32n6570-dk",
        "examples:",
    ):
        assert needle in text
