"""Activation memory: lifetimes and the offset allocator against hand-worked examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from npu_models import Op, T, conv_model, craft, edited_target, ints, reference_model

from engine.errors import TargetError
from engine.npu import analyze, analyze_model, load_target
from engine.npu.memory import Buffer, PoolSpec, allocate, lifetimes, peak_live, placement_order
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


def test_buffer_spans_touching_pools_of_its_speed_class() -> None:
    """Two fast 500-byte pools that touch (addresses 0..500, 500..1000), a slow 2000-byte one.

    Largest first. big (800, steps 0-1) fits neither fast pool alone, so it spans both at
    address 0, before the slow pool is tried. a (300, steps 1-2) overlaps big in time:
    fast0 is full, fast1 has 200 free above big's 300, the span has 200 → slow at 0.
    b (200, steps 2-3) overlaps only a → fast0 at 0. Use: fast0 500 (big's first 500, b),
    fast1 300 (the rest of big), slow 300.
    """
    pools = [
        PoolSpec("fast0", 500, address=0, freq_ratio=1.0),
        PoolSpec("fast1", 500, address=500, freq_ratio=1.0),
        PoolSpec("slow", 2000, address=5000, freq_ratio=2.0),
    ]
    bufs = [Buffer(1, "big", 800, 0, 1), Buffer(2, "a", 300, 1, 2), Buffer(3, "b", 200, 2, 3)]
    plan = allocate(bufs, pools)
    where = {a.buffer.name: (a.pool, a.offset, a.pools) for a in plan.allocations}
    assert where["big"] == ("fast0", 0, ("fast0", "fast1"))
    assert where["a"] == ("slow", 0, ("slow",))
    assert where["b"] == ("fast0", 0, ("fast0",))
    used = {p.name: (p.used, p.buffers) for p in plan.pools}
    assert used == {"fast0": (500, 2), "fast1": (300, 1), "slow": (300, 1)}
    assert plan.internal_bytes == 1100


def test_pools_that_do_not_touch_never_span() -> None:
    pools = [PoolSpec("p0", 500, address=0), PoolSpec("p1", 500, address=600)]
    plan = allocate([Buffer(1, "big", 800, 0, 0)], pools)
    (a,) = plan.allocations
    assert (a.pool, a.pools) == ("p1", ("p1",)) and plan.pools[1].over_budget
    # Without addresses pools never touch either.
    plan = allocate([Buffer(1, "big", 800, 0, 0)], [PoolSpec("p0", 500), PoolSpec("p1", 500)])
    assert plan.pools[1].used == 800 and plan.pools[0].used == 0


def test_placement_order_on_the_dk() -> None:
    """npuRAM3..6 alone, then spans of NPU RAMs, then cpuRAM2, then spans that include
    cpuRAM2 (AXISRAM2 ends where AXISRAM3 starts), then the PSRAM."""
    target = load_target("stm32n6570-dk")
    pools = [
        PoolSpec(p.name, p.size_bytes, p.internal, p.address, p.freq_ratio) for p in target.pools
    ]
    order = [tuple(pools[i].name for i in c) for c in placement_order(pools)]
    npu = ["npuRAM3", "npuRAM4", "npuRAM5", "npuRAM6"]
    assert order == [
        *((n,) for n in npu),
        ("npuRAM3", "npuRAM4"),
        ("npuRAM4", "npuRAM5"),
        ("npuRAM5", "npuRAM6"),
        ("npuRAM3", "npuRAM4", "npuRAM5"),
        ("npuRAM4", "npuRAM5", "npuRAM6"),
        tuple(npu),
        ("cpuRAM2",),
        *(("cpuRAM2", *npu[:k]) for k in range(1, 5)),
        ("hyperRAM",),
    ]


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


def test_buffer_larger_than_an_npu_ram_spans_two() -> None:
    """A 512 KiB input fits no 448 KiB NPU RAM: it spans npuRAM3 and npuRAM4 (contiguous)
    rather than going to the slower AXISRAM2; the 64 KiB output goes above it in npuRAM4."""
    a = analyze_model(
        read_model_bytes(conv_model(in_shape=(1, 256, 256, 8), out_ch=1)),
        load_target("stm32n6570-dk"),
    )
    used = {p.name: p.used_bytes for p in a.pools}
    assert used["npuRAM3"] == 448 * 1024
    assert used["npuRAM4"] == (512 - 448 + 64) * 1024
    assert used["cpuRAM2"] == 0
    assert a.activations_ram_bytes == (512 + 64) * 1024


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


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        # TOML reads 1e400 as inf; it used to overflow round() into a traceback.
        ("size_kib = 448", "size_kib = 1e400",
         "memory.pools[0].size_kib: must be a finite number > 0, got inf"),
        # nan passed every bound and came out as 'nan ms' and bare NaN in the JSON.
        ("\nconv = 0.147", "\nconv = nan",
         "npu.efficiency.conv: must be a finite number > 0, got nan"),
        ("clock_mhz = 1000", "clock_mhz = inf", "npu.clock_mhz: must be a finite number > 0"),
        ("epoch_overhead_us = 16.5", "epoch_overhead_us = -inf",
         "npu.epoch_overhead_us: must be a finite number ≥ 0"),
        ("clock_mhz = 1000", "clock_mhz = " + "9" * 400, "npu.clock_mhz: must be a finite number"),
        ("size_kib = 448", "size_kib = 1e306",
         "memory.pools[0].size_kib: must be ≤ 4194304 (4 GiB, the 32-bit address space)"),
    ],
)
def test_target_numbers_must_be_finite(tmp_path: Path, old: str, new: str, says: str) -> None:
    path = edited_target(tmp_path, old, new)
    with pytest.raises(TargetError) as info:
        load_target(path)
    assert str(info.value).startswith(f"{path}: {says}")
    assert info.value.exit_code == 2


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
    # The conversions run in place: the int8 input (16 KiB) lives inside its float32 copy
    # (64 KiB) and the int8 output (4 B) inside the float32 result (16 B).
    assert a.peak_live_bytes == 65536 + 16
    assert a.activations_ram_bytes == 65536 + 16
    cpu = load_target("stm32n6570-dk").cpu
    convert = (16384 + 4) * cpu.cycles_per_element_float["convert"] / cpu.clock_mhz
    assert layer.convert_us == pytest.approx(convert)


def test_lifetimes_in_place_conversion_splits_the_tensor() -> None:
    """x → A → t; t → B (software float, in place) → s; (t, s) → C → y.

    t is expanded into B's float32 copy f at step 1, so t has no buffer of its own there;
    C reads t re-quantized in place after B: a second buffer of t's size from step 2.
    """
    steps = [([0], [1]), ([1], [2, 9]), ([1, 2], [3])]
    sizes = {0: 100, 1: 100, 2: 4, 3: 100, 9: 400}
    bufs = lifetimes(steps, sizes, graph_inputs=[0], graph_outputs=[3], in_place=[(1, 1)])
    spans = {b.id: (b.start, b.end, b.size) for b in bufs}
    assert spans[1] == (0, 0, 100)  # t as A writes it
    assert spans[9] == (1, 1, 400)  # the float32 copy that holds it at step 1
    (requant,) = [b for b in bufs if b.id > 9]
    assert (requant.start, requant.end, requant.size) == (2, 2, 100)
    assert requant.name.endswith("(re-quantized)")
    # Step 1 holds f + s only (404), not t + f + s (504); step 2 holds t' + s + y (204).
    assert peak_live(bufs) == 404
    # Without a later reader nothing is re-created.
    bufs = lifetimes(steps[:2], sizes, graph_inputs=[0], graph_outputs=[2], in_place=[(1, 1)])
    assert sorted(b.id for b in bufs) == [0, 1, 2, 9]


def test_software_float_pool_feeding_a_multiply() -> None:
    """A squeeze-and-excite shape: x → MEAN (software float) → m; MUL(x, m) on the NPU.

    MEAN holds only the float32 copy of x (64 KiB) and its 16 B result; x comes back,
    re-quantized in place, for the MUL: 16 KiB + 4 B + 16 KiB. The re-quantization is one
    more conversion pass over x.
    """
    tensors = [T("x", (1, 64, 64, 4)), ints("axes", (1, 2)), T("m", (1, 4)), T("y", (1, 64, 64, 4))]
    ops = [Op("MEAN", [0, 1], [2], {"keepDims": False}), Op("MUL", [0, 2], [3])]
    target = load_target("stm32n6570-dk")
    a = analyze_model(read_model_bytes(craft(tensors, ops, [0], [3])), target)
    mean, mul = a.layers
    assert (mean.tier, mul.placement) == ("SW_FLOAT", "NPU")
    assert a.peak_live_bytes == 65536 + 16
    assert a.activations_ram_bytes == 65536 + 16
    cpu = target.cpu
    convert = (16384 + 4 + 16384) * cpu.cycles_per_element_float["convert"] / cpu.clock_mhz
    assert mean.convert_us == pytest.approx(convert)


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
    path = reference_model(name)
    a = analyze(path)
    assert a.activations_ram_bytes / 1024 == pytest.approx(kib, abs=0.1)
