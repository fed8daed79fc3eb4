"""The shared run cache: a damaged entry is rebuilt, never used; the least recently used
entries go first when it outgrows its bound; `artq cache` reports and empties it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.cache import StageCache, default_root, finish
from engine.cli import main


def _build(cache: StageCache, name: str, payload: bytes, calls: list[str]) -> bytes:
    entry = cache.entry("thing", name)
    with cache.building(entry) as tmp:
        if tmp is None:
            return entry.path("payload.bin").read_bytes()
        calls.append(name)
        (tmp / "sub").mkdir()
        (tmp / "payload.bin").write_bytes(payload)
        (tmp / "sub" / "more.bin").write_bytes(payload[::-1])
        finish(tmp, {"name": name})
        return payload


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "extra", "meta"])
def test_a_damaged_entry_is_rebuilt_not_used(tmp_path: Path, damage: str) -> None:
    cache = StageCache(tmp_path)
    calls: list[str] = []
    assert _build(cache, "a", b"good bytes", calls) == b"good bytes"
    assert _build(cache, "a", b"good bytes", calls) == b"good bytes"
    assert calls == ["a"] and cache.hits == ["thing-a"]  # the second came from the cache
    entry = cache.entry("thing", "a")
    target = entry.path("sub/more.bin")
    if damage == "flip":
        target.write_bytes(b"setyb doog"[:-1] + b"X")
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:3])
    elif damage == "delete":
        target.unlink()
    elif damage == "extra":
        entry.path("stray.tmp").write_bytes(b"half-copied")
    else:
        entry.path("meta.json").write_text('{"name": "a", "fil')
    assert not entry.complete
    assert _build(cache, "a", b"good bytes", calls) == b"good bytes"
    assert calls == ["a", "a"]  # rebuilt
    assert entry.complete and entry.path("sub/more.bin").read_bytes() == b"setyb doog"


def test_least_recently_used_entries_are_evicted_first(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    calls: list[str] = []
    for i, name in enumerate(["old", "mid", "new"]):
        _build(cache, name, bytes(1000), calls)
        meta = cache.entry("thing", name).path("meta.json")
        os.utime(meta, (1_000_000 + i, 1_000_000 + i))
    _build(cache, "old", bytes(1000), calls)  # read now: the most recently used
    assert calls == ["old", "mid", "new"]
    info = cache.info()
    assert info.entries == 3 and info.bytes > 6000
    freed = cache.trim(info.bytes - 1)
    assert freed > 0
    left = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert left == ["thing-new", "thing-old"]  # "mid" was least recently used
    assert cache.trim(10**9) == 0


def test_default_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.delenv("ARTQ_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "artq"
    monkeypatch.setenv("ARTQ_CACHE_DIR", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"


def test_cache_command_reports_and_clears(tmp_path: Path, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARTQ_CACHE_MAX_MB", raising=False)
    root = tmp_path / "c"
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    assert "no cache yet" in capsys.readouterr().out
    cache = StageCache(root)
    _build(cache, "a", bytes(2 << 20), [])
    _build(cache, "b", b"x", [])
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    assert "2 entries, 4.0 MiB of 2048.0 MiB" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert StageCache(root).info().entries == 0
