"""Shared fixtures, and the folders that say what a test may cost.

tests/unit (no TensorFlow, no subprocess) · tests/tui (Textual pilot and snapshots) ·
tests/contract (real processes, no TensorFlow in this process) · tests/slow (real TensorFlow).
The folder sets the marker, so ``-m "not slow"`` cannot miss a test that is slow by where it
lives, and a unit test that loads TensorFlow or starts a process fails. One conftest only:
pytest imports every folder-less conftest.py as ``conftest``, so a second one would shadow
the ``from conftest import ROOT`` the tests use.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # pytest's own -m parser; private, so a pytest without it just collects every folder
    from _pytest.mark.expression import Expression
except ImportError:  # pragma: no cover
    Expression = None  # type: ignore[assignment,misc]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One BLAS thread per test process: the suite runs a process per core and more (xdist's
# workers, the processes the tests start), and OpenBLAS's own threads, spinning after each
# call, only took cores from them (measured: 3-5 of the fast suite's ~70 CPU-s). Set before
# numpy loads, here and in every process the tests start.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Runs the tests start (the CLI, the worker, the TUI's) share a cache of this session only:
# never the user's, and never one a previous session's code filled.
if "ARTQ_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["ARTQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="artq-test-cache-")
# Never the user's warm worker (`artq worker start`): a run the tests start runs in its own
# process unless a test starts a worker of its own.
os.environ["ARTQ_WORKER_SOCKET"] = os.path.join(os.environ["ARTQ_CACHE_DIR"], "no-worker.sock")
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# ROOT for the engine and tui packages; TESTS for the helpers (models, fakes, npu_models)
# that test modules in every folder import.
for _p in (TESTS, ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

# Folder → marker, in the order the tests run. Unit first, so a full run reports a broken
# unit test in seconds; contract before tui, as its tests wait on the processes they start:
# last, those waits left cores idle at the end (measured: the fast suite's median 40.6 s
# against 39.6 s over five alternating runs); slow last, so TensorFlow is not yet loaded
# when the no-TensorFlow checks run.
FOLDERS = ("unit", "contract", "tui", "slow")
FRAMEWORKS = ("tensorflow", "tf_keras", "tensorflow_model_optimization")
SAMPLE_CONFIGS = ROOT / "sample_configs"


def _folder(path: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(TESTS)
    except ValueError:
        return None
    return rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in FOLDERS else None


def _can_match(markexpr: str, marker: str) -> bool:
    """Whether ``-m markexpr`` can select a test in the folder of ``marker``: one that
    carries that marker, no other folder's, and any other markers."""
    if Expression is None:
        return True
    expr = Expression.compile(markexpr)
    names = {marker}
    while True:  # try every truth assignment over the names the expression asks about
        asked: set[str] = set()
        others = sorted(names - set(FOLDERS))
        for values in itertools.product((False, True), repeat=len(others)):
            on = {marker, *(n for n, v in zip(others, values, strict=True) if v)}
            if expr.evaluate(_Recorder(on, asked)):
                return True
        if asked <= names:
            return False
        names |= asked


class _Recorder:
    """A marker matcher that says which names are on and notes every name asked."""

    def __init__(self, on: set[str], asked: set[str]) -> None:
        self.on, self.asked = on, asked

    def __call__(self, name: str, /, **_: object) -> bool:
        self.asked.add(name)
        return name in self.on


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Skip importing a folder no test of which ``-m`` can select: ``-m "not slow"`` then
    never imports the slow modules, nor the TensorFlow some of them load at import."""
    if collection_path.parent == TESTS and collection_path.name in FOLDERS:
        markexpr = config.option.markexpr
        if markexpr and not _can_match(markexpr, collection_path.name):
            return True
    return None


def _slow_may_run(config: pytest.Config) -> bool:
    markexpr = config.option.markexpr
    if markexpr and not _can_match(markexpr, "slow"):
        return False
    paths = [Path(a.split("::")[0]).resolve() for a in config.args] or [TESTS]
    # The folder of a path inside each one asked for: a file's or a folder's own.
    return any(_folder(p / "_") in (None, "slow") for p in paths)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: a worker per core, and one more when no slow test can run. A fast test
    spends a fifth of its time waiting (the pilot's idle checks, the processes a contract
    test starts): measured on 2 cores, `-m "not slow"` took 83 s with 3 workers and 96 s
    with 2. A slow test keeps a core busy with TensorFlow and holds ~1 GiB: one per core."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own override
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + (0 if _slow_may_run(config) else 1)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session: pytest.Session) -> Iterator[object]:
    """Collect with the cyclic garbage collector off, then freeze what collecting built.

    Collecting imports Textual, numpy, the engine and every test module (asserts rewritten):
    it only builds, and each of the collector's full passes walked that growing heap again,
    a third of each xdist worker's start (measured: 1.1-1.3 of 3.3 CPU-s, eleven passes).
    Frozen, the heap every test shares is left out of later passes too; the tests' own
    garbage is collected as before (tests/unit/test_suite_workers.py checks it is)."""
    gc.disable()
    try:
        return (yield)
    finally:
        gc.freeze()
        gc.enable()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = _folder(item.path)
        if folder is None:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live in tests/{{{','.join(FOLDERS)}}}/ by what they cost")
        wrong = {m.name for m in item.iter_markers() if m.name in FOLDERS} - {folder}
        if wrong:
            raise pytest.UsageError(f"{item.nodeid}: marked {', '.join(sorted(wrong))} but lives "
                                    f"in tests/{folder}/; move the test instead")
        item.add_marker(folder)
    items.sort(key=lambda item: FOLDERS.index(_folder(item.path) or "slow"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """A framework loaded while collecting would hide every later test's import of it."""
    loaded = [m for m in FRAMEWORKS if sys.modules.get(m) is not None]
    if loaded and any(_folder(item.path) != "slow" for item in session.items):
        raise pytest.UsageError(f"{', '.join(loaded)} was imported while collecting the tests; "
                                f"import it inside the tests/slow/ tests that use it")


# The platform module runs `uname -p` the first time it is asked (h5py asks on import) and
# caches the answer: ask here, before the unit tests' no-process guard is up.
platform.processor()


def _no_process(*_: object, **__: object) -> None:
    raise AssertionError("a unit test starts no process: move it to tests/contract/ "
                         "(or tests/slow/ when the process runs TensorFlow)")


@pytest.fixture(autouse=True)
def _cost_of_the_folder(request: pytest.FixtureRequest,
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Unit tests start no process; no test outside tests/slow loads a framework here."""
    folder = _folder(request.node.path)
    if folder == "slow":
        yield
        return
    if folder == "unit":
        for owner, name in ((subprocess, "Popen"), (asyncio, "create_subprocess_exec"),
                            (asyncio, "create_subprocess_shell"), (os, "fork"),
                            (os, "system"), (os, "posix_spawn"), (os, "posix_spawnp")):
            monkeypatch.setattr(owner, name, _no_process)
    before = {m for m in FRAMEWORKS if sys.modules.get(m) is not None}
    yield
    # None is an import a test blocked (tests/unit/test_orchestrator.py), not a loaded module.
    loaded = sorted(m for m in FRAMEWORKS if sys.modules.get(m) is not None and m not in before)
    assert not loaded, (f"{', '.join(loaded)} loaded by a test in tests/{folder}/: "
                        f"move it to tests/slow/")


@pytest.fixture(autouse=True)
def _textual_for_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """TUI tests run Textual without what only a person at a terminal sees (tests/textual_harness.py
    says what and why): no animations, no frames the headless driver discards, and pilot
    waits on the widgets that have work pending only."""
    if _folder(request.node.path) == "tui":
        import textual_harness  # noqa: PLC0415 - only the TUI tests load Textual

        textual_harness.patch(monkeypatch)


class _Noted(list):
    """Internal errors the workbench survived in a test; ``expected`` once a test asks."""

    expected = False


@pytest.fixture(autouse=True)
def _internal_errors_fail_the_test(request: pytest.FixtureRequest,
                                   monkeypatch: pytest.MonkeyPatch) -> Iterator[_Noted]:
    """The workbench survives an internal error with a dialog, so Textual's pilot no longer
    raises it: a TUI test fails on any, unless it takes ``internal_errors`` to check them."""
    seen = _Noted()
    if _folder(request.node.path) != "tui":
        yield seen
        return
    from tui.guard import GuardedApp  # noqa: PLC0415 - only the TUI tests load the app

    survive = GuardedApp.internal_error

    def noted(app: GuardedApp, error: BaseException) -> None:
        seen.append(error)
        survive(app, error)

    monkeypatch.setattr(GuardedApp, "internal_error", noted)
    yield seen
    assert seen.expected or not seen, f"the app met internal errors: {seen!r}"


@pytest.fixture
def internal_errors(_internal_errors_fail_the_test: _Noted) -> _Noted:
    """The internal errors a TUI test provokes on purpose, in order."""
    _internal_errors_fail_the_test.expected = True
    return _internal_errors_fail_the_test


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a job TOML into tmp_path and return its path."""

    def write(text: str, name: str = "job.toml") -> Path:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return p

    return write


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small digits CNN trained here in ~15 s (real TensorFlow)."""
    from models import tiny_digits_classifier

    return tiny_digits_classifier(tmp_path_factory.mktemp("model") / "tiny.keras")


def unreadable_files(tmp: Path, name: str, data: bytes = b"x\n") -> list[tuple[Path, str]]:
    """Real files named ``name`` (in fresh folders under ``tmp``) whose reads fail.

    Each comes with the error text expected. chmod 000 stops only a process without
    CAP_DAC_OVERRIDE, so as root a link to /proc/self/mem stands in: its first page is never
    mapped, so reading from offset 0 fails with EIO. Skips when neither works here.
    """
    found: list[tuple[Path, str]] = []
    locked = tmp / "locked" / name
    locked.parent.mkdir(parents=True, exist_ok=True)
    locked.write_bytes(data)
    locked.chmod(0)
    try:
        locked.read_bytes()
        locked.unlink()  # readable after all (root): leave nothing behind
    except PermissionError:
        found.append((locked, "Permission denied"))
    mem = tmp / "mem" / name
    mem.parent.mkdir(parents=True, exist_ok=True)
    mem.symlink_to("/proc/self/mem")
    try:
        mem.read_bytes()
        mem.unlink()
    except OSError:
        found.append((mem, "Input/output error"))
    if not found:
        pytest.skip("no unreadable file can be made here")
    return found
