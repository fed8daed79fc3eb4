"""Where the warm worker's socket goes, and the folders and paths refused before any worker
starts (the worker itself: tests/contract/test_warm_worker.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import warm
from engine.errors import InputFileError


def test_the_socket_path_follows_the_variable_then_the_runtime_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(warm.SOCKET_ENV, str(tmp_path / "mine.sock"))
    assert warm.socket_path() == tmp_path / "mine.sock"
    monkeypatch.delenv(warm.SOCKET_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert warm.socket_path() == tmp_path / "artq" / "worker.sock"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "absent"))
    assert warm.socket_path().parent.name == f"artq-{os.getuid()}"


def test_a_folder_others_may_enter_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(InputFileError) as info:
        warm.start(path=shared / "w.sock")
    assert "open to other users" in info.value.message and "chmod 700" in info.value.hint
    assert not (shared / "worker.pid").exists()  # nothing was started


def test_a_socket_path_too_long_is_refused_before_anything_starts(tmp_path: Path) -> None:
    long = tmp_path / ("d" * 120) / "w.sock"
    with pytest.raises(InputFileError) as info:
        warm.start(path=long)
    assert "too long for a socket's path" in info.value.message
    assert warm.SOCKET_ENV in info.value.hint
    assert not long.parent.exists()


def test_no_socket_means_no_worker_and_nothing_to_say(tmp_path: Path) -> None:
    assert warm.connect(tmp_path / "none.sock") == (None, "")
    assert warm.stop(tmp_path / "none.sock") is None
