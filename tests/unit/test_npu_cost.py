"""Cost model, targets, the JSON contract, headline and stedgeai commands."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from npu_models import Op, T, const, conv_model, craft, edited_target, single_op, write

from engine.errors import TargetError
from engine.npu import (
    SCHEMA,
    analyze,
    analyze_model,
    headline,
    headline_markdown,
    load_target,
    stedgeai_commands,
)
from engine.npu.targets import bundled_targets
from engine.tflite import read_model, read_model_bytes

TARGET = load_target("stm32n6570-dk")


def run(data: bytes, target=TARGET):  # noqa: ANN001, ANN201
    return analyze_model(read_model_bytes(data, "m.tflite"), target)


# ----------------------------------------------------------------------------- MACs


def test_conv_macs_and_time_by_hand() -> None:
    a = run(conv_model(in_shape=(1, 16, 16, 4), out_ch=8, kernel=3))
    (layer,) = a.layers
    assert layer.macs == 16 * 16 * 8 * 3 * 3 * 4 == 73728
    npu = TARGET.npu
    compute = 73728 / (npu.macs_per_cycle * npu.efficiency["conv"]) / npu.clock_mhz
    memory = (1024 + 2048) * 1.25 / (npu.bus_bytes_per_cycle * npu.clock_mhz)
    weights = (288 + 32) / TARGET.flash.read_mb_s
    assert layer.est_us == pytest.approx(npu.epoch_overhead_us + max(compute, memory, weights))
    assert layer.bound == "compute"
    assert layer.weight_bytes == layer.flash_bytes == 8 * 3 * 3 * 4 + 8 * 4
    assert a.latency_ms == pytest.approx(layer.est_us / 1000)
    assert layer.pct == pytest.approx(100.0)


def test_depthwise_macs_and_flash_layout() -> None:
    tensors = [
        T("x", (1, 8, 8, 16)),
        const("w", [1, 3, 3, 16], scales=[0.01] * 16, qdim=3),
        const("b", [16], "int32", value=0, scales=[1e-4] * 16),
        T("y", (1, 8, 8, 16)),
    ]
    opts = {"padding": 0, "strideH": 1, "strideW": 1, "depthMultiplier": 1}
    a = run(craft(tensors, [Op("DEPTHWISE_CONV_2D", [0, 1, 2], [3], opts)], [0], [3]))
    (layer,) = a.layers
    assert layer.macs == 8 * 8 * 16 * 9
    w = TARGET.weights
    extra = round((w.dw_channel_bytes - 9 * w.dw_tap_bytes) * 16)
    assert layer.weight_bytes == 144 + 64
    assert layer.flash_bytes == 144 + 64 + extra
    assert a.weights_flash_bytes == layer.flash_bytes


def test_fully_connected_and_pool_macs() -> None:
    fc = run(
        single_op("FULLY_CONNECTED", [(1, 32), (10, 32)], (1, 10), consts={1: const("w", [10, 32])})
    )
    assert fc.layers[0].macs == 320 and fc.layers[0].placement == "NPU"
    opts = {"filterHeight": 2, "filterWidth": 2, "strideH": 2, "strideW": 2, "padding": 1}
    pool = run(single_op("MAX_POOL_2D", [(1, 8, 8, 4)], (1, 4, 4, 4), opts))
    assert pool.layers[0].macs == 4 * 4 * 4 * 4


def test_cpu_layer_time_by_hand() -> None:
    a = run(single_op("SOFTMAX", [(1, 100)], (1, 100), {"beta": 1.0}))
    (layer,) = a.layers
    cpu = TARGET.cpu
    expect = 100 * cpu.cycles_per_element_int8["softmax"] / cpu.clock_mhz + cpu.sw_epoch_overhead_us
    assert layer.est_us == pytest.approx(expect)
    assert layer.bound == "cpu"
    assert a.time_split()["cpu"] == pytest.approx(expect)


def test_float_conv_costs_more_on_the_cpu_than_int8_on_the_npu(tmp_path: Path) -> None:
    fp = write(tmp_path, "fp32", conv_model(dtype="float32", in_shape=(1, 32, 32, 16), out_ch=32))
    q = write(tmp_path, "int8", conv_model(in_shape=(1, 32, 32, 16), out_ch=32))
    h = headline(fp, q, "stm32n6570-dk")
    macs = 32 * 32 * 32 * 9 * 16
    fp_us = (
        macs * TARGET.cpu.cycles_per_mac_float / TARGET.cpu.clock_mhz
        + TARGET.cpu.sw_epoch_overhead_us
    )
    assert h["fp32"]["est_ms"] == pytest.approx(fp_us / 1000, rel=1e-3)
    assert h["fp32"]["ops_cpu"] == 1 and h["int8"]["ops_npu"] == 1
    assert h["x_faster"] > 10
    assert h["fp32"]["activation_ram_bytes"] == 4 * h["int8"]["activation_ram_bytes"]
    assert h["ram_pct_smaller"] == pytest.approx(75.0)
    assert h["size_x_smaller"] == pytest.approx(fp.stat().st_size / q.stat().st_size, abs=0.01)
    assert 0 < h["size_pct_smaller"] < 100
    table = headline_markdown(h)
    assert "| estimated time |" in table and f"{h['x_faster']:.1f}".rstrip("0").rstrip(".") + "× faster" in table
    assert "75 % smaller" in table  # activation RAM: float32 is 4× int8


def test_parsed_model_and_int8_analysis_are_reused(tmp_path: Path) -> None:
    """A job parses the INT8 model once and loads the target once: analyze() takes the parsed
    model and the loaded target, headline() the INT8 analysis, with the same results as the
    path forms."""
    fp = write(tmp_path, "fp32", conv_model(dtype="float32", in_shape=(1, 16, 16, 8)))
    q = write(tmp_path, "int8", conv_model(in_shape=(1, 16, 16, 8)))
    by_path = analyze(q, "stm32n6570-dk")
    expected = headline(fp, q, "stm32n6570-dk")
    a = analyze(read_model(q), TARGET)
    assert a == by_path
    q.unlink()  # from here on the INT8 file cannot be read again
    assert headline(fp, a, TARGET) == expected
    assert headline(read_model(fp), a, TARGET) == expected


def test_headline_refuses_an_analysis_made_on_another_target(tmp_path: Path) -> None:
    q = write(tmp_path, "int8", conv_model())
    other = dataclasses.replace(TARGET, name="other-board")
    with pytest.raises(ValueError, match="other-board"):
        headline(q, analyze(q, TARGET), other)


def test_what_if_faster_npu() -> None:
    """Doubling the MAC rate halves the compute stream of a compute-bound layer."""
    data = conv_model(in_shape=(1, 32, 32, 16), out_ch=32)
    fast = dataclasses.replace(TARGET, npu=dataclasses.replace(TARGET.npu, macs_per_cycle=600))
    a, b = run(data).layers[0], run(data, fast).layers[0]
    o = TARGET.npu.epoch_overhead_us
    assert (b.est_us - o) == pytest.approx((a.est_us - o) / 2)


# ----------------------------------------------------------------------------- targets


def test_bundled_target() -> None:
    assert "stm32n6570-dk" in bundled_targets()
    t = TARGET
    assert t.npu.clock_mhz == 1000 and t.cpu.clock_mhz == 800
    assert [p.name for p in t.pools] == [
        "npuRAM3",
        "npuRAM4",
        "npuRAM5",
        "npuRAM6",
        "cpuRAM2",
        "hyperRAM",
    ]
    assert t.internal_bytes == (4 * 448 + 1024) * 1024
    assert t.pools[0].address == 0x34200000 and t.pools[-1].kind == "external"
    assert t.flash.size_bytes == 112 * 1024 * 1024


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("clock_mhz = 1000", 'clock_mhz = "fast"', r"t\.toml: npu\.clock_mhz: must be a number"),
        ("clock_mhz = 1000", "clock_mhz = -1", r"npu\.clock_mhz: must be > 0"),
        ("clock_mhz = 1000", "clock_mhz_typo = 1000", r"npu\.clock_mhz: missing"),
        ("\nconv = 0.147", "\nconv = 1.5", r"npu\.efficiency\.conv: is a fraction"),
        ('kind = "internal"', 'kind = "fast"', r"memory\.pools\[0\]\.kind: must be one of"),
        ("alignment_bytes = 64", "alignment_bytes = 64\nbogus = 1", r"memory\.bogus: unknown key"),
        ('schema = "artq.target/1"', 'schema = "artq.target/9"', r"schema: must be"),
    ],
)
def test_target_errors_name_file_and_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    p = edited_target(tmp_path, old, new)
    with pytest.raises(TargetError, match=message) as info:
        load_target(p)
    assert str(p) in str(info.value)
    assert info.value.hint


def test_target_not_found_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="unknown target 'stm32h7'") as info:
        load_target("stm32h7")
    assert "stm32n6570-dk" in info.value.hint
    with pytest.raises(TargetError, match="target file not found"):
        load_target(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[npu\nclock = ", encoding="utf-8")
    with pytest.raises(TargetError, match="not valid TOML"):
        load_target(bad)


# ----------------------------------------------------------------------------- contract


def test_json_contract(tmp_path: Path) -> None:
    p = write(tmp_path, "m", conv_model())
    d = json.loads(json.dumps(analyze(p).to_dict()))
    assert d["schema"] == SCHEMA == "artq.npu/1"
    s = d["summary"]
    for key in (
        "ops_total",
        "ops_npu",
        "ops_cpu",
        "epochs_hw",
        "epochs_sw",
        "weights_flash_bytes",
        "activations_ram_bytes",
        "external_ram_bytes",
        "latency_ms",
    ):
        assert key in s
    assert (s["ops_total"], s["ops_npu"], s["ops_cpu"]) == (1, 1, 0)
    (layer,) = d["layers"]
    for key in ("index", "op", "name", "output_shape", "placement", "reason", "macs", "est_us"):
        assert key in layer
    assert layer["output_shape"] == [1, 8, 8, 8] and layer["placement"] == "NPU"


def test_markdown_has_summary_table_and_advice(tmp_path: Path) -> None:
    p = write(tmp_path, "m", single_op("SOFTMAX", [(1, 10)], (1, 10), {"beta": 1.0}))
    md = analyze(p).to_markdown(commands=stedgeai_commands(p))
    assert "### Neural-ART placement on stm32n6570-dk" in md
    assert f"stedgeai generate --model {p} --target stm32n6" in md
    assert "| 0 | SOFTMAX |" in md and "| CPU |" in md
    assert "SOFTMAX runs on the CPU" in md  # the advice
    assert "How sure" in md


def test_stedgeai_commands() -> None:
    cmds = stedgeai_commands("runs/x/int8 model.tflite")
    assert [c.split()[1] for c in cmds] == ["analyze", "generate", "validate"]
    assert all("--target stm32n6" in c and "'runs/x/int8 model.tflite'" in c for c in cmds)
    assert "--optimization time --compression none --output ./generated" in cmds[1]
