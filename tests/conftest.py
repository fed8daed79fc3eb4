"""Shared fixtures. TensorFlow is imported only by tests that need it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE_CONFIGS = ROOT / "sample_configs"


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
