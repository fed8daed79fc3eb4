"""How long the fast suite takes now against an older commit, measured side by side.

    python benchmarks/suite_time.py [--old 80ab7ff] [--new HEAD] [--rounds 3] [-- PYTEST ARGS]

Checks out both commits as temporary git worktrees, then runs
``python -m pytest -m "not slow" -q -p no:cacheprovider`` in each, with PYTHONPATH set to that
tree (so an editable install elsewhere does not win), alternating which goes first in each
round: on a shared machine the load drifts, and the two trees see the same drift. Prints each
run's test count and wall time, then the median of each and the ratio new/old. Exits 1 if a
run fails, or if the new commit runs fewer tests than the old.

Commits only: uncommitted changes in the checkout are not measured.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider"]
SUMMARY = re.compile(r"(\d+) (passed|failed|error|errors|skipped|xfailed|xpassed)")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def counts(output: str) -> dict[str, int]:
    """The numbers in pytest's last summary line: {"passed": 461, "skipped": 2, ...}."""
    for line in reversed(output.splitlines()):
        found = SUMMARY.findall(line)
        if found and " in " in line:
            return {word.rstrip("s") if word == "errors" else word: int(n) for n, word in found}
    return {}


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_suite(tree: Path, extra: list[str]) -> tuple[float, float, dict[str, int], int, str]:
    """(wall s, CPU s, counts, exit code, output) of one run of the fast suite in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, *COMMAND, *extra], cwd=tree, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    # Waited-for descendants only: xdist's workers and the tests' own processes are.
    return wall, _children_cpu() - cpu, counts(out), proc.returncode, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="80ab7ff", help="the commit to compare against")
    parser.add_argument("--new", default="HEAD", help="the commit measured (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3, help="A/B pairs to run (default 3)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the git checkout holding both commits")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    args = parser.parse_args(argv)

    shas = {k: git(args.repo, "rev-parse", "--short", getattr(args, k)) for k in ("old", "new")}
    results: dict[str, list[tuple[float, float, dict[str, int]]]] = {"old": [], "new": []}
    failed = False
    with tempfile.TemporaryDirectory(prefix="suite-time-") as tmp:
        trees = {k: Path(tmp) / k for k in shas}
        try:
            for k, tree in trees.items():
                git(args.repo, "worktree", "add", "--detach", str(tree), shas[k])
            print(f"old {shas['old']}  new {shas['new']}  "
                  f"command: python {' '.join(COMMAND)} {' '.join(args.pytest_args)}".rstrip())
            for r in range(args.rounds):
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                for k in order:
                    wall, cpu, n, code, out = run_suite(trees[k], args.pytest_args)
                    results[k].append((wall, cpu, n))
                    said = ", ".join(f"{v} {w}" for w, v in n.items()) or "no summary"
                    print(f"round {r + 1} {k} {shas[k]}: {wall:6.1f} s wall  {cpu:6.1f} s CPU  "
                          f"{said}", flush=True)
                    if code != 0:
                        failed = True
                        print("\n".join(out.splitlines()[-30:]), file=sys.stderr)
        finally:
            for tree in trees.values():
                if tree.exists():
                    git(args.repo, "worktree", "remove", "--force", str(tree))

    med = {k: statistics.median(w for w, _, _ in v) for k, v in results.items()}
    cpu = {k: statistics.median(c for _, c, _ in v) for k, v in results.items()}
    tests = {k: v[-1][2].get("passed", 0) + v[-1][2].get("failed", 0) for k, v in results.items()}
    print(f"tests   old {tests['old']}  new {tests['new']}")
    print(f"median  old {med['old']:.1f} s  new {med['new']:.1f} s  "
          f"ratio new/old {med['new'] / med['old']:.2f}")
    print(f"CPU     old {cpu['old']:.1f} s  new {cpu['new']:.1f} s  "
          f"ratio new/old {cpu['new'] / cpu['old']:.2f}")
    if tests["new"] < tests["old"]:
        print("the new commit runs fewer tests than the old one", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
