"""Activation memory: lifetimes and the offset allocator against hand-worked examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from npu_models import REFERENCE_DIR, Op, T, conv_model, craft, ints

from engine.npu import analyze, analyze_model, load_target
from engine.npu.memory import Buffer, PoolSpec, allocate, lifetimes, peak_live
from engine.tflite import read_model_bytes


def test_lifetimes_of_a_chain_with_a_skip() -> None:
    """x → A → a → B → b → C(a, b) → y: ``a`` lives until C reads it."""
    steps = [([0], [1]), ([1], [2]), ([1, 2], [3])]
    sizes = {0: 100, 1: 200, 2: 50, 3: 10}
    bufs = {b.id: b for b in lifetimes(steps, sizes, graph_inputs=[0], graph_outputs=[3])}
    assert (bufs[0].start, bufs[0].end) == (0, 0)
    assert (bufs[1].start, bufs[1].end) == (0, 2)
    assert (bufs[2].start, bufs[2].end) == (1, 2)
    assert (bufs[3].start, bufs[3].end) == (2, 2)
    assert peak_live(list(bufs.values())) == 300  # step 0: x + a; step 2: a + b + y = 260


def test_graph_output_lives_to_the_end_and_input_from_the_start() -> None:
    steps = [([1], [2]), ([2], [3])]  # tensor 0 is an output written by nobody here
    bufs = {
        b.id: b
        for b in lifetimes(steps, {0: 4, 1: 4, 2: 4, 3: 4}, graph_inputs=[1], graph_outputs=[0, 3])
    }
    assert (bufs[0].start, bufs[0].end) == (1, 1)
    assert (bufs[1].start, bufs[1].end) == (0, 0)


def test_alias_shares_the_buffer() -> None:
    """A view's output shares its input's buffer: one buffer, the union of the lifetimes."""
    steps = [([0], [1]), ([1], [2]), ([2], [3])]
    bufs = lifetimes(
        steps, {0: 64, 1: 64, 2: 64, 3: 8}, graph_inputs=[0], graph_outputs=[3], aliases={2: 1}
    )
    ids = sorted(b.id for b in bufs)
    assert ids == [0, 1, 3]
    b1 = next(b for b in bufs if b.id == 1)
    assert (b1.start, b1.end) == (0, 2)


def test_allocator_hand_worked() -> None:
    """Five buffers, one pool of 1000 bytes, alignment 1.

    Largest first: A(400, 0-1) at 0; B(300, 1-2) overlaps A → 400; C(300, 2-3) overlaps B
    only → 0 (fits below B at 0..300); D(200, 3-4) overlaps C → 300; E(100, 0-4) overlaps
    everyone: A 0..400, B 400..700 → 700.
    """
    bufs = [
        Buffer(1, "A", 400, 0, 1),
        Buffer(2, "B", 300, 1, 2),
        Buffer(3, "C", 300, 2, 3),
        Buffer(4, "D", 200, 3, 4),
        Buffer(5, "E", 100, 0, 4),
    ]
    plan = allocate(bufs, [PoolSpec("ram", 1000)])
    offsets = {a.buffer.name: a.offset for a in plan.allocations}
    assert offsets == {"A": 0, "B": 400, "C": 0, "D": 300, "E": 700}
    assert plan.pools[0].used == 800
    assert plan.peak_live == 800  # step 1: A + B + E
    # No two buffers alive together overlap in memory.
    allocs = plan.allocations
    for i, a in enumerate(allocs):
        for b in allocs[i + 1 :]:
            if a.buffer.overlaps(b.buffer):
                assert a.end_offset <= b.offset or b.end_offset <= a.offset


def test_allocator_alignment() -> None:
    bufs = [Buffer(1, "a", 10, 0, 1), Buffer(2, "b", 10, 0, 1), Buffer(3, "c", 5, 1, 1)]
    plan = allocate(bufs, [PoolSpec("ram", 1000)], alignment=64)
    offsets = sorted(a.offset for a in plan.allocations)
    assert offsets == [0, 64, 128]
    assert plan.pools[0].used == 133


def test_pools_fill_in_order_and_spill() -> None:
    """A buffer too big for the first pool goes to the next; what fits nowhere internal
    spills to the external pool."""
    bufs = [Buffer(1, "big", 600, 0, 1), Buffer(2, "mid", 300, 0, 1), Buffer(3, "huge", 5000, 1, 2)]
    pools = [PoolSpec("npu", 500), PoolSpec("axi", 1000), PoolSpec("psram", 10_000, internal=False)]
    plan = allocate(bufs, pools)
    where = {a.buffer.name: (a.pool, a.offset) for a in plan.allocations}
    assert where == {"big": ("axi", 0), "mid": ("npu", 0), "huge": ("psram", 0)}
    assert plan.internal_bytes == 900 and plan.external_bytes == 5000
    assert not any(p.over_budget for p in plan.pools)


def test_over_budget_goes_to_last_pool() -> None:
    plan = allocate([Buffer(1, "x", 50, 0, 0)], [PoolSpec("tiny", 10), PoolSpec("small", 20)])
    assert plan.allocations[0].pool == "small"
    assert plan.pools[1].over_budget and plan.pools[1].pct == 250.0


# ----------------------------------------------------------------------------- on models


def test_conv_counts_input_and_output() -> None:
    a = analyze_model(
        read_model_bytes(conv_model(in_shape=(1, 16, 16, 4), out_ch=8)),
        load_target("stm32n6570-dk"),
    )
    # 16*16*4 input + 16*16*8 output, both alive during the conv, 64-byte aligned.
    assert a.activations_ram_bytes == 1024 + 2048
    assert a.peak_live_bytes == 3072 and a.external_ram_bytes == 0


def test_reshape_is_a_view_in_memory() -> None:
    tensors = [T("x", (1, 4, 4, 8)), ints("s", (1, 128)), T("y", (1, 128)), T("z", (1, 128))]
    ops = [Op("RESHAPE", [0, 1], [2]), Op("RELU", [2], [3])]
    a = analyze_model(read_model_bytes(craft(tensors, ops, [0], [3])), load_target("stm32n6570-dk"))
    assert a.activations_ram_bytes == 128 + 128  # x/y share one buffer; z is the other


def test_spill_to_psram_and_advice(tmp_path) -> None:  # noqa: ANN001
    """A target with tiny pools spills to PSRAM and says so."""
    src = load_target("stm32n6570-dk").path
    text = Path(src).read_text(encoding="utf-8")
    text = text.replace("size_kib = 448", "size_kib = 1").replace(
        "size_kib = 1024\n", "size_kib = 2\n"
    )
    small = tmp_path / "small.toml"
    small.write_text(text, encoding="utf-8")
    a = analyze_model(
        read_model_bytes(conv_model(in_shape=(1, 32, 32, 8), out_ch=8)), load_target(small)
    )
    # Neither the 8 KiB input nor the 8 KiB output fits a 1-2 KiB pool: both spill.
    assert a.activations_ram_bytes == 0 and a.external_ram_bytes == 16384
    assert any("spill to external PSRAM" in s for s in a.advice)


def test_float_copy_for_software_float_layer() -> None:
    """A software-float layer on int8 tensors works on float32 copies held in the pools."""
    from npu_models import single_op

    data = single_op(
        "MEAN",
        [(1, 64, 64, 4), (2,)],
        (1, 4),
        {"keepDims": False},
        consts={1: ints("axes", (1, 2))},
    )
    a = analyze_model(read_model_bytes(data), load_target("stm32n6570-dk"))
    (layer,) = a.layers
    assert layer.tier == "SW_FLOAT"
    # int8 input 16 KiB + int8 output + float32 copies (64 KiB of input, 16 B of output)
    assert a.peak_live_bytes == 16384 + 4 + 65536 + 16
    assert layer.convert_us > 0


@pytest.mark.parametrize(
    ("name", "kib"),
    [
        ("fdmobilenet_0.25_128_tfs_int8.tflite", 96.0),  # uint8 input + int8 copy: 48 + 48
        ("fdmobilenet_0.25_224_tfs_int8.tflite", 294.0),  # 147 + 147
        ("st_yolo_lc_v1_192_int8.tflite", 252.0),  # first conv: 108 in + 144 out
        ("yamnet_256_64x96_tl_int8.tflite", 144.0),  # third conv: 48 in + 96 out
    ],
)
def test_reference_peaks_hand_worked(name: str, kib: float) -> None:
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip("shared/reference_models not present")
    a = analyze(path)
    assert a.activations_ram_bytes / 1024 == pytest.approx(kib, abs=0.1)
