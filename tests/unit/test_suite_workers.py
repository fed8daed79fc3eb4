"""How many workers ``-n auto`` starts: one more than the cores when no slow test can run."""

from __future__ import annotations

import gc
import weakref
from types import SimpleNamespace

import pytest
from conftest import TESTS, _slow_may_run, pytest_xdist_auto_num_workers


def config(markexpr: str = "", *args: str) -> pytest.Config:
    return SimpleNamespace(option=SimpleNamespace(markexpr=markexpr), args=list(args))  # type: ignore[return-value]


@pytest.mark.parametrize(("markexpr", "args", "slow"), [
    ("not slow", [], False),
    ("unit or tui", [], False),
    ("", [str(TESTS / "tui")], False),
    ("", [str(TESTS / "unit" / "test_cli.py") + "::test_x", str(TESTS / "contract")], False),
    ("", [], True),
    ("", [str(TESTS)], True),
    ("", [str(TESTS / "slow" / "test_qat.py")], True),
    ("slow", [str(TESTS / "unit")], False),  # nothing in unit/ can be slow
    ("not unit", [], True),
])
def test_slow_may_run(markexpr: str, args: list[str], slow: bool) -> None:
    assert _slow_may_run(config(markexpr, *args)) is slow


def test_auto_gives_the_fast_suite_one_worker_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    assert pytest_xdist_auto_num_workers(config("not slow")) == 3
    assert pytest_xdist_auto_num_workers(config("")) == 2
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert pytest_xdist_auto_num_workers(config("not slow")) is None  # xdist's own override


def test_the_tests_run_with_the_garbage_collector_on_and_collecting_frozen() -> None:
    assert gc.isenabled()
    assert gc.get_freeze_count() > 10_000  # the modules collecting imported, not walked again

    class Cycle:
        pass

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None  # a test's own cyclic garbage is still collected
