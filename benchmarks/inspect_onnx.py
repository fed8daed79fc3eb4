"""``artq inspect`` on an ONNX QDQ model: wall time in fresh interpreters, and what it loads.

    python benchmarks/inspect_onnx.py [--keep DIR]

Builds a MobileNet v1 0.5 at 128×128 in FP32 ONNX (onnx.helper, random weights; ~0.8 MB
at INT8), quantizes it as artq's ONNX path does (onnxruntime's quant_pre_process, then
quantize_static: QDQ, per-channel signed int8 weights and activations, MinMax), then times
``artq inspect int8.onnx`` (median of 5 fresh processes after a warm-up) beside the
interpreter's own start, and says whether onnxruntime, TensorFlow or the full ``onnx``
package (ml_dtypes, numpy) were imported. Only this script imports onnxruntime.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_CHECK = """
import runpy, sys
sys.argv = ["artq", "inspect", sys.argv[1], "--json"]
try:
    runpy.run_module("engine.cli", run_name="__main__")
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & {"onnxruntime", "tensorflow", "keras",
    "ml_dtypes", "numpy", "torch"} | ({"onnx (full package)"} if "onnx.helper" in sys.modules
    else set()))
print("LOADED", heavy, file=sys.stderr)
"""


def mobilenet(path: Path, alpha: float = 0.5, size: int = 128) -> None:
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def w(name: str, shape: tuple[int, ...]) -> str:
        inits.append(numpy_helper.from_array(
            (rng.normal(size=shape) * 0.1).astype(np.float32), name))
        return name

    def conv(x: str, cin: int, cout: int, k: int, s: int, group: int, i: int) -> str:
        y = f"c{i}"
        nodes.append(helper.make_node(
            "Conv", [x, w(f"w{i}", (cout, cin // group, k, k)), w(f"b{i}", (cout,))], [y],
            kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=group))
        nodes.append(helper.make_node("Relu", [y], [f"r{i}"]))
        return f"r{i}"

    ch = [int(c * alpha) for c in (32, 64, 128, 128, 256, 256, *[512] * 6, 1024, 1024)]
    strides = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
    x = conv("x", 3, ch[0], 3, strides[0], 1, 0)
    for i in range(1, len(ch)):
        x = conv(x, ch[i - 1], ch[i - 1], 3, strides[i], ch[i - 1], 2 * i - 1)  # depthwise
        x = conv(x, ch[i - 1], ch[i], 1, 1, 1, 2 * i)  # pointwise
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    nodes.append(helper.make_node("Gemm", ["flat", w("fc", (1000, ch[-1])), w("fcb", (1000,))],
                                  ["logits"], transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["y"]))
    g = helper.make_graph(nodes, "mobilenet", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 3, size, size])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["N", 1000])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(path))


def quantize(fp32: Path, out: Path, size: int = 128) -> None:
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"x": rng.normal(size=(1, 3, size, size)).astype(np.float32)}
                               for _ in range(8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    pre = out.with_name("pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)


def _wall(cmd: list[str], env: dict[str, str], runs: int = 5) -> tuple[float, float, float]:
    """(median wall, best wall, median CPU) seconds over ``runs`` fresh processes."""
    subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=True)
    walls, cpus = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", type=Path, help="write the models here instead of a temp dir")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="artq-onnx-"))
    work.mkdir(parents=True, exist_ok=True)
    fp32, int8 = work / "fp32.onnx", work / "int8.onnx"
    mobilenet(fp32)
    quantize(fp32, int8)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(os.environ.get("TMPDIR", "/tmp")) / "artq-pycache")
    env["PYTHONPATH"] = str(ROOT)
    py = sys.executable
    print(f"{int8} ({int8.stat().st_size / 1e6:.2f} MB), fresh interpreter, median of 5 "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    for label, cmd in (
        ("python -c pass (interpreter start)", [py, "-c", "pass"]),
        ("artq inspect int8.onnx --json", [py, "-m", "engine.cli", "inspect", str(int8),
                                           "--json"]),
        ("artq inspect int8.onnx (table)", [py, "-m", "engine.cli", "inspect", str(int8)]),
    ):
        med, best, cpu = _wall(cmd, env)
        print(f"  {label:40s} wall {med:6.3f} s (best {best:.3f} s)  CPU {cpu:6.3f} s")
    r = subprocess.run([py, "-c", _CHECK, str(int8)], env=env, cwd=ROOT, capture_output=True,
                       text=True, check=True)
    loaded = next((ln for ln in r.stderr.splitlines() if ln.startswith("LOADED")), "LOADED ?")
    print(f"  heavy modules imported by inspect: {loaded.removeprefix('LOADED ')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
