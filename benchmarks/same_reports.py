"""Are two sets of runs the same apart from timings and paths? Checks a refactor changed no result.

    python benchmarks/same_reports.py RUNS_A RUNS_B

Pairs the newest run of each job name in RUNS_A with the newest of the same name in RUNS_B,
then compares their report.json key by key — leaving out what is expected to move (`created`,
`timings`, each stage's `items_per_s`, run folders and checkout roots inside strings) — and
the bytes of every model file a stage wrote. Prints one line per pair and every difference;
exits 1 when any pair differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

#: Keys whose values measure time or place, not results.
VOLATILE = {"created", "timings", "items_per_s", "run_dir", "config_source"}


def newest_runs(folder: Path) -> dict[str, Path]:
    """Job name → its newest finished run folder (names are `<time>-<name>`, time sorts)."""
    runs: dict[str, Path] = {}
    for rep in sorted(folder.glob("*/report.json")):
        name = json.loads(rep.read_text(encoding="utf-8")).get("name", rep.parent.name)
        runs[name] = rep.parent
    return runs


def _roots(report: dict[str, Any], run: Path) -> list[str]:
    """Strings to blank: the run folder, and the checkout the model was read from."""
    roots = [str(run), str(run.parent)]
    model = str((report.get("model") or {}).get("path") or "")
    if "/engine/" in model:
        roots.append(model.split("/engine/")[0])
    return sorted(roots, key=len, reverse=True)  # a run folder before the folder holding it


def _normal(obj: Any, roots: list[str]) -> Any:
    if isinstance(obj, dict):
        return {k: _normal(v, roots) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_normal(v, roots) for v in obj]
    if isinstance(obj, str):
        for i, root in enumerate(roots):
            obj = obj.replace(root, f"<root{i}>")
    return obj


def diff(a: Any, b: Any, path: str = "", rtol: float = 0.0) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            where = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{where}: only in B")
            elif k not in b:
                out.append(f"{where}: only in A")
            else:
                out.extend(diff(a[k], b[k], where, rtol))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items in A, {len(b)} in B"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in diff(x, y, f"{path}[{i}]", rtol)]
    if isinstance(a, float) and isinstance(b, float) and a != b:
        # Multi-threaded kernels (the LSTM's) do not sum in a fixed order: such floats move in
        # their last digits from run to run of the same code. Counted, not hidden.
        close = abs(a - b) <= rtol * max(abs(a), abs(b))
        return [f"{path}: {a!r} vs {b!r}" + (" (noise)" if close else "")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:80]} (A) vs {json.dumps(b)[:80]} (B)"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


def compare(run_a: Path, run_b: Path, rtol: float) -> list[str]:
    ra = json.loads((run_a / "report.json").read_text(encoding="utf-8"))
    rb = json.loads((run_b / "report.json").read_text(encoding="utf-8"))
    problems = diff(_normal(ra, _roots(ra, run_a)), _normal(rb, _roots(rb, run_b)), rtol=rtol)
    for info in (ra.get("stages") or {}).values():
        name = (info or {}).get("path")
        if name and _digest(run_a / name) != _digest(run_b / name):
            problems.append(f"{name}: bytes differ")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs_a", type=Path)
    p.add_argument("runs_b", type=Path)
    p.add_argument("--rtol", type=float, default=1e-3,
                   help="floats this close (relative) count as noise, listed but not a failure")
    args = p.parse_args(argv)
    a, b = newest_runs(args.runs_a), newest_runs(args.runs_b)
    bad = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in {'A' if name in a else 'B'}")
            bad += 1
            continue
        problems = compare(a[name], b[name], args.rtol)
        real = [x for x in problems if not x.endswith("(noise)")]
        noise = len(problems) - len(real)
        verdict = "same" if not real else f"{len(real)} difference(s)"
        if noise:
            verdict += f"; {noise} float(s) moved within {args.rtol:g} relative"
        print(f"{name}: {verdict} ({a[name].name} vs {b[name].name})")
        for line in problems:
            print(f"  {line}")
        bad += bool(real)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
