"""`artq sweep`: planning variants and the shared cache (a real sweep: tests/slow/test_sweep_tf.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from commands import artq

from engine.cache import StageCache, finish
from engine.errors import ConfigError
from engine.sweep import drop_chart, parse_sets, plan, render_markdown, split_values


def test_sets_parse_into_a_cartesian_product() -> None:
    assert split_values("25,50, 100") == ["25", "50", "100"]
    assert split_values('[1, 2],[3, 4],"a,b"') == ["[1, 2]", "[3, 4]", '"a,b"']
    sets = parse_sets(["calibration.samples=25,50,100", "quantization.granularity=per_channel,per_tensor"])
    assert sets == [("calibration.samples", [25, 50, 100]),
                    ("quantization.granularity", ["per_channel", "per_tensor"])]
    variants = plan(sets)
    assert len(variants) == 6
    assert variants[1].values == {"calibration.samples": 25, "quantization.granularity": "per_tensor"}
    assert variants[1].overrides == ["calibration.samples=25", 'quantization.granularity="per_tensor"']
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_sets(["calibration.samples"])
    with pytest.raises(ConfigError, match="swept twice"):
        parse_sets(["a.b=1", "a.b=2"])


def test_chart_and_table_show_every_variant() -> None:
    data = {
        "name": "x", "config": "x.toml", "status": "ok", "sets": {"calibration.samples": [10, 20]},
        "jobs": 2, "wall_s": 10.0, "sum_s": 18.0, "parallel_ratio": 0.56, "metric": "top1",
        "variants": [
            {"set": {"calibration.samples": 10}, "status": "ok", "drop": 4.0,
             "metrics": {"top1": 0.9}, "run_dir": "/r/a", "sizes": {"int8": 2048}},
            {"set": {"calibration.samples": 20}, "status": "ok", "drop": 1.0,
             "metrics": {"top1": 0.93}, "run_dir": "/r/b"},
        ],
    }
    chart = drop_chart(data, width=20)
    assert chart[0].endswith("████████████████████ 4.00 pts")
    assert chart[1].endswith("█████ 1.00 pts")
    md = render_markdown(data)
    assert "| samples=10 | ok | 90.00 % | 4.00 |" in md and "ratio 0.56" in md


def test_cache_entry_is_built_once_by_racing_processes(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    entry = cache.entry("thing", "abc")
    built: list[int] = []

    def worker(i: int) -> None:
        with cache.building(entry) as tmp:
            if tmp is None:
                return
            time.sleep(0.2)  # the other thread arrives meanwhile and must wait
            built.append(i)
            (tmp / "payload").write_text("x")
            finish(tmp, {"by": i})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert entry.complete and entry.meta["by"] == built[0]
    assert (entry.root / "payload").read_text() == "x"
    assert not list(tmp_path.glob(".*tmp*"))  # no scratch folder left


def test_the_terminal_table_fits_80_columns_without_cutting_a_figure() -> None:
    from rich.console import Console

    from engine.cli.sweep import summary_table

    variants = [
        {"set": {"calibration.samples": n}, "status": "ok", "drop": -0.5, "run_dir": "/r",
         "metrics": {"sequence_accuracy": 0.927, "agreement_acc": 0.998},
         "stage_drops": {"fp16": 0.0}, "sizes": {"int8": 173_568}, "npu_ms": 0.743,
         "convert_s": 3.0, "total_s": 15.7}
        for n in (10, 500)
    ]
    data = {"name": "ocr_crnn_conv", "status": "ok", "metric": "sequence_accuracy",
            "variants": variants}
    con = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    con.print(summary_table(data))
    text = con.export_text()
    assert "…" not in text
    assert "samples=500 92.70 -0.50 +0.00 99.80 169.5 0.743 3.0 15.7" in " ".join(text.split())
    variants[0]["status"] = "cancelled"
    con.print(summary_table(data))
    text = con.export_text()
    assert "…" not in text and "samples=10 cancelled" in " ".join(text.split())


def test_jobs_option_refuses_a_negative_count() -> None:
    import argparse

    from engine.cli.sweep import _jobs

    assert _jobs("0") == 0 and _jobs("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="needs 0 \\(one per core\\) or more, got -1"):
        _jobs("-1")
    with pytest.raises(argparse.ArgumentTypeError, match="whole number"):
        _jobs("x")


def test_a_variant_that_would_fail_preflight_stops_the_sweep_before_it_starts(tmp_path: Path) -> None:
    from commands import DIGITS, job_file

    job = job_file(tmp_path, model=DIGITS)
    p = artq("sweep", str(job), "--set", "analysis.target=stm32n6570-dk,stm32n6570dk",
             "--runs-dir", str(tmp_path / "out"))
    assert p.returncode == 2, p.stderr
    assert "analysis.target: unknown target 'stm32n6570dk'" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()  # no sweep folder, no variant ran


def test_labels_name_only_the_keys_that_change() -> None:
    from engine.sweep import variant_labels

    sets = parse_sets(["calibration.seed=3", "calibration.samples=50,100"])
    labels = variant_labels([v.values for v in plan(sets)])
    assert labels == ["samples=50", "samples=100"]  # seed=3 is the same in both
    assert variant_labels([{"calibration.samples": 50}]) == ["samples=50"]  # one variant: all


def test_the_table_keeps_its_columns_when_stdout_is_not_a_terminal() -> None:
    import io

    from engine.cli.console import Console
    from engine.cli.sweep import print_table, summary_table

    variants = [
        {"set": {"calibration.samples": n, "quantization.granularity": g}, "status": "ok",
         "drop": 0.25, "metrics": {"top1": 0.9712, "agreement_acc": 0.998},
         "stage_drops": {"fp16": 0.0}, "sizes": {"int8": 84_480}, "npu_ms": 0.455,
         "convert_s": 1.1, "total_s": 10.7}
        for n in (10, 500) for g in ("per-channel", "per-tensor")
    ]
    data = {"name": "digits", "status": "ok", "metric": "top1", "variants": variants}
    piped = io.StringIO()  # not a terminal: rich would squeeze the table into 80 columns
    print_table(Console(file=piped, width=80), summary_table(data))
    text = piped.getvalue()
    assert "…" not in text
    assert "samples=500 granularity=per-tensor 97.12 +0.25 +0.00 99.80 82.5 0.455 1.1 10.7" in " ".join(
        text.split())
