"""A TUI relaunch on a warm worker against a one-shot one (the worker the TUI starts per job).

    python benchmarks/warm_relaunch.py [--config sample_configs/ocr_crnn_conv.toml] [--rounds 1]
                                       [--relaunches 1]

With an empty cache, in one warm worker (``python -m engine.worker serve``): (1) the cold
job, (2) a relaunch with only ``calibration.samples`` changed; then (3) the same kind of
relaunch (another count, so nothing of (2)'s is reused) in a one-shot worker
(``python -m engine.worker run``), as the TUI did before. Prints each wall time (from the
request to the worker's end-of-job event; for the one-shot, from its start to its exit),
the ratios to the cold job, and whether the warm relaunch reused the TensorFlow child.
``--relaunches N`` sends N warm relaunches (each another count) and prints each one's time
and the resident memory of the idle TensorFlow children after it: it must not grow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _until_done(proc: subprocess.Popen[str]) -> dict:
    """Read events until the end-of-job one; the run's verdict status and the event."""
    assert proc.stdout is not None
    status = ""
    for line in proc.stdout:
        ev = json.loads(line)
        if ev["kind"] in ("run_finished", "run_failed"):
            status = ev["status"]
        if ev["kind"] == "job_done":
            return {**ev, "status": status}
    sys.exit(f"the serve worker ended early (code {proc.wait()})")


def _rss_mb(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            out.append("gone")
            continue
        kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmRSS:"))
        out.append(f"{kb / 1024:.0f}")
    return "/".join(out) + " MB"


def run_round(config: Path, work: Path, relaunches: int = 1) -> tuple[float, float, float]:
    from engine.config import load_config

    samples = load_config(config).calibration.samples
    n2, n3 = max(10, samples // 2), max(11, samples // 2 + 7)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cache, runs = str(work / "cache"), json.dumps(str(work / "runs"))
    serve = subprocess.Popen([sys.executable, "-m", "engine.worker", "serve"], cwd=ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert serve.stdin is not None

    def warm(count: int) -> tuple[float, dict]:
        req = {"cmd": "run", "config": str(config), "cache": cache,
               "overrides": [f"output.runs_dir={runs}", f"calibration.samples={count}"]}
        t0 = time.perf_counter()
        serve.stdin.write(json.dumps(req) + "\n")  # type: ignore[union-attr]
        serve.stdin.flush()  # type: ignore[union-attr]
        done = _until_done(serve)
        return time.perf_counter() - t0, done

    cold, d1 = warm(samples)
    relaunch, d2 = warm(n2)
    if relaunches > 1:
        print(f"  relaunch 1: {relaunch:.1f} s, idle TF children {_rss_mb(d2['pool']['idle_pids'])}")
        for i in range(2, relaunches + 1):
            t, d = warm(n2 + i)
            print(f"  relaunch {i}: {t:.1f} s, idle TF children {_rss_mb(d['pool']['idle_pids'])}"
                  f" (pool {d['pool']['opened']} opened, {d['pool']['reused']} reused)")
    serve.stdin.close()
    serve.wait(30)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "engine.worker", "run", str(config), "--cache",
                        cache, "--set", f"output.runs_dir={runs}", "--set",
                        f"calibration.samples={n3}"], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    one_shot = time.perf_counter() - t0
    if p.returncode != 0 or d1["exit_code"] or d2["exit_code"]:
        sys.exit(f"a job failed: codes {d1['exit_code']}, {d2['exit_code']}, {p.returncode}")
    reused = d2["pool"]["reused"] > 0 and d2["pool"]["opened"] == d1["pool"]["opened"]
    print(f"{config.name}: cold {cold:.1f} s · warm relaunch (samples {samples}→{n2}) "
          f"{relaunch:.1f} s · one-shot relaunch (samples {samples}→{n3}) {one_shot:.1f} s")
    print(f"  warm/cold = {relaunch / cold:.2f}   one-shot/cold = {one_shot / cold:.2f}   "
          f"warm/one-shot = {relaunch / one_shot:.2f}   TensorFlow child reused: "
          f"{'yes' if reused else 'no'} (pool {d2['pool']})")
    return cold, relaunch, one_shot


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "sample_configs/ocr_crnn_conv.toml"))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--relaunches", type=int, default=1)
    args = ap.parse_args()
    for r in range(args.rounds):
        if args.rounds > 1:
            print(f"round {r + 1}")
        with tempfile.TemporaryDirectory(prefix="warm-relaunch-") as tmp:
            run_round(Path(args.config).resolve(), Path(tmp), args.relaunches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
