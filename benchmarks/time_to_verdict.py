"""Time to a verdict: artq against a plain converter script, and a what-if relaunch.

    python benchmarks/time_to_verdict.py [--cases mobilenet,crnn_conv] [--rounds 1]

For each case, side by side in one run:
  (a) a plain guide-style script in a fresh Python: import TensorFlow, load the model,
      full-INT8 conversion with the same calibration items, evaluate INT8 on the test items;
  (b) a cold ``artq run`` with its default stages and analyses (an empty cache);
  (c) a relaunch with only ``calibration.samples`` changed (the cache (b) filled), as a
      new ``artq run`` process: it imports TensorFlow again;
  (d) the same pair the way the TUI launches it, in one warm worker (``python -m
      engine.worker serve``, an empty cache of its own): the cold job (d1), then the
      relaunch with ``calibration.samples`` changed (d2), served by the TensorFlow child
      the cold job left;
  (e) the same relaunch as a new ``artq run`` with a warm worker started (``artq worker
      start``): a first run through it (e1, the cache (b) filled), then the relaunch with
      ``calibration.samples`` changed (e2), each timed as the whole ``artq run`` command.
(a)-(d) run with no warm worker. Prints each wall time, (b)'s, (c)'s and (d2)'s stage times,
and the ratios b/a, c/b, d2/d1 and e2/b.

artq's modules are compiled to bytecode first, as pip compiles every package it installs
(TensorFlow's included, which the plain script imports): where PYTHONDONTWRITEBYTECODE is
set, an editable checkout would otherwise compile them anew in every process (~0.35 s each,
measured), which no installed artq does.

The mobilenet case needs ../shared/real_models next to the checkout (ST's model zoo
MobileNet v2 person classifier; never copied into the repository).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CASES = {
    # name: (config, model input H×W×C, legacy .h5 loaded with tf-keras)
    "mobilenet": (ROOT / "benchmarks/real_models/mobilenet_v2_person.toml", (128, 128, 3), True),
    "crnn_conv": (ROOT / "sample_configs/ocr_crnn_conv.toml", (32, 128, 1), False),
}

PLAIN = r'''
import os, sys, time
t0 = time.perf_counter()
legacy = sys.argv[4] == "1"
if legacy:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np
import tensorflow as tf
if legacy:
    import tf_keras
    model = tf_keras.models.load_model(sys.argv[1], compile=False)
else:
    import keras
    model = keras.models.load_model(sys.argv[1], compile=False)
cal = np.load(sys.argv[2]); test = np.load(sys.argv[3])
def rep():
    for x in cal:
        yield [x[None].astype(np.float32)]
conv = tf.lite.TFLiteConverter.from_keras_model(model)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = rep
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = tf.int8
conv.inference_output_type = tf.int8
blob = conv.convert()
it = tf.lite.Interpreter(model_content=blob)
it.allocate_tensors()
i, o = it.get_input_details()[0], it.get_output_details()[0]
s, z = i["quantization"]
outs = []
for x in test:
    q = np.clip(np.round(x / s + z), -128, 127).astype(np.int8)
    it.set_tensor(i["index"], q[None]); it.invoke()
    os_, oz = o["quantization"]
    outs.append((it.get_tensor(o["index"]).astype(np.float32) - oz) * os_)
print(f"plain wall {time.perf_counter() - t0:.1f} s, {len(outs)} items")
'''


def model_ready(config: Path, shape: tuple[int, ...], out: Path) -> tuple[Path, Path, Path, int]:
    """The calibration and test items as artq feeds them (same draw, same preprocessing)."""
    from engine.config import load_config
    from engine.data import load_source, prepare, select_calibration
    from engine.preprocess import PreprocessSpec

    cfg = load_config(config)
    cal_raw = load_source(cfg.data.calibration, "data.calibration")
    test_raw = load_source(cfg.data.test, "data.test")
    spec = (PreprocessSpec.resolve(cfg.preprocessing, shape)
            if cal_raw.images is not None else None)
    idx = select_calibration(len(cal_raw), cfg.calibration.samples, cfg.calibration.seed)
    cal = prepare(cal_raw.subset(idx), spec, shape, "data.calibration")
    test = prepare(test_raw, spec, shape, "data.test")
    np.save(out / "cal.npy", cal.x)
    np.save(out / "test.npy", test.x)
    return Path(cfg.model.path), out / "cal.npy", out / "test.npy", cfg.calibration.samples


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 4):
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return wall, p.stdout


def stages(report: dict) -> str:
    t = report["timings"]
    parts = [f"{k[:-2]} {v:.1f}" for k, v in t.items() if k != "total_s" and v >= 0.2]
    reused = report.get("cache", {}).get("reused", [])
    return ", ".join(parts) + (f"  [cached: {', '.join(reused)}]" if reused else "")


def warm_pair(config: Path, samples: int, other: int, work: Path,
              env: dict[str, str]) -> tuple[float, float, bool]:
    """(d): the cold job and the relaunch in one serve worker, as the TUI sends them; their
    wall times (request to end of job) and whether the relaunch reused the TF child."""
    from warm_relaunch import _until_done  # noqa: PLC0415 - the same reading of the events

    serve = subprocess.Popen([sys.executable, "-m", "engine.worker", "serve"], cwd=ROOT,
                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             bufsize=1)
    assert serve.stdin is not None
    times, done = [], []
    for count in (samples, other):
        req = {"cmd": "run", "config": str(config), "cache": str(work / "cache-warm"),
               "overrides": [f"output.runs_dir={json.dumps(str(work / 'runs-warm'))}",
                             f"calibration.samples={count}"]}
        t0 = time.perf_counter()
        serve.stdin.write(json.dumps(req) + "\n")
        serve.stdin.flush()
        done.append(_until_done(serve))
        times.append(time.perf_counter() - t0)
    serve.stdin.close()
    serve.wait(30)
    if any(d["exit_code"] not in (0, 4) for d in done):
        sys.exit(f"a warm job failed: {[d['exit_code'] for d in done]}")
    reused = done[1]["pool"]["reused"] > 0 and done[1]["pool"]["opened"] == done[0]["pool"]["opened"]
    return times[0], times[1], reused


def cli_warm_pair(artq: list[str], samples: int, other: int, work: Path,
                  env: dict[str, str]) -> tuple[float, float, str]:
    """(e): ``artq run`` twice with a warm worker started; their wall times and what the
    relaunch said about where it ran."""
    env = {**env, "ARTQ_WORKER_SOCKET": str(work / "w.sock")}
    cli = [sys.executable, "-m", "engine.cli"]
    subprocess.run([*cli, "worker", "start"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    try:
        times, said = [], ""
        for count in (samples, other):
            t0 = time.perf_counter()
            p = subprocess.run([*artq, "--set", f"calibration.samples={count}"], env=env,
                               cwd=ROOT, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if p.returncode not in (0, 4):
                sys.exit(f"a run on the warm worker failed ({p.returncode}):\n{p.stderr[-3000:]}")
            said = next((ln for ln in p.stderr.splitlines() if "warm worker" in ln), "not on it")
    finally:
        subprocess.run([*cli, "worker", "stop"], env=env, cwd=ROOT, capture_output=True)
    return times[0], times[1], said


def run_case(name: str, work: Path) -> tuple[float, float, float]:
    from engine.cache import sources_digest  # noqa: PLC0415 - after sys.path has ROOT

    config, shape, legacy = CASES[name]
    # The cache keys include a digest of artq's sources: an edit during the case gives its
    # relaunches other keys, so they would find nothing cached.
    before = sources_digest()
    model, cal, test, samples = model_ready(config, shape, work)
    # No warm worker for (a)-(d), even if the user has one running.
    env = {**os.environ, "ARTQ_CACHE_DIR": str(work / "cache"), "PYTHONPATH": str(ROOT),
           "ARTQ_WORKER_SOCKET": str(work / "none.sock")}
    a, out = timed([sys.executable, "-c", PLAIN, str(model), str(cal), str(test),
                    "1" if legacy else "0"], env)
    artq = [sys.executable, "-m", "engine.cli", "run", str(config), "--json",
            "--runs-dir", str(work / "runs")]
    b, out_b = timed(artq, env)
    other = max(10, samples // 2)
    c, out_c = timed([*artq, "--set", f"calibration.samples={other}"], env)
    d1, d2, reused = warm_pair(config, samples, other, work, env)
    e1, e2, said = cli_warm_pair(artq, samples, other, work, env)
    rb, rc = json.loads(out_b), json.loads(out_c)
    print(f"{name}: (a) plain script {a:.1f} s · (b) artq cold {b:.1f} s · "
          f"(c) relaunch, calibration.samples {samples}→{other}: {c:.1f} s")
    print(f"  (b) stages: {stages(rb)}")
    print(f"  (c) stages: {stages(rc)}")
    print(f"  (d) as the TUI launches, one warm worker: cold {d1:.1f} s · relaunch {d2:.1f} s"
          f" (TensorFlow child reused: {'yes' if reused else 'no'})")
    relaunched = max((work / "runs-warm").glob("*/report.json"), default=None,
                     key=lambda p: p.stat().st_mtime)
    if relaunched is not None:
        print(f"  (d2) stages: {stages(json.loads(relaunched.read_text()))}")
    print(f"  (e) artq run with a warm worker started: first {e1:.1f} s · relaunch {e2:.1f} s"
          f" ({said.strip()})")
    print(f"  b/a = {b / a:.2f}   c/b = {c / b:.2f}   d2/d1 = {d2 / d1:.2f}   d2/b = {d2 / b:.2f}"
          f"   e2/b = {e2 / b:.2f}")
    if sources_digest() != before:
        print(f"  NOT COMPARABLE: artq's sources under {ROOT / 'engine'} changed during this "
              "case, and with them the cache keys; run the benchmark from a tree no one edits "
              "(git worktree add ../bench HEAD)")
    return a, b, c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    compileall.compile_dir(ROOT / "engine", quiet=1)
    for r in range(args.rounds):
        for name in args.cases.split(","):
            if not CASES[name][0].exists():
                print(f"{name}: skipped, {CASES[name][0]} is missing")
                continue
            with tempfile.TemporaryDirectory(prefix=f"ttv-{name}-") as tmp:
                if args.rounds > 1:
                    print(f"round {r + 1}")
                run_case(name, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
