"""A TensorFlow child started with a spare forks it once its import is done, and the float
lane runs there (engine/backends/tf/process.py): one TensorFlow import per run, not two.
The spare converts what a child of its own converts; it is ended, and its end is told, as a
child of its own would be."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from commands import proc_state

from engine.backends import BackendOptions
from engine.backends.tf import TFBackend
from engine.cancel import CancelToken
from engine.errors import CancelledError, ConversionError
from engine.events import null_sink


def _opts(tmp: Path, name: str, cancel: CancelToken | None = None) -> BackendOptions:
    work = tmp / name
    work.mkdir(exist_ok=True)
    return BackendOptions(tmp / f"{name}.log", work, null_sink, cancel or CancelToken())


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _ended(pid: int, within: float = 15.0) -> bool:
    """The process is gone or a zombie within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc_state(pid) in (None, "Z"):
            return True
        time.sleep(0.05)
    return False


def _convert(be: TFBackend, stage: str, out: Path) -> bytes:
    be.convert(stage, str(out), None, "per_channel", "int8", False, stage=f"convert_{stage}")
    return out.read_bytes()


def test_the_spare_converts_the_same_bytes_and_a_crash_there_is_told(
        tiny_model: Path, tmp_path: Path) -> None:
    be = TFBackend(_opts(tmp_path, "main"), spare=True)
    lane = be.sibling(_opts(tmp_path, "lane"))
    try:
        assert lane is not None
        assert be.sibling(_opts(tmp_path, "third")) is None  # one spare per child
        export = tmp_path / "export"
        model = be.load(str(tiny_model), "keras", None, str(export), stage="load")
        lane.adopt_export(str(tiny_model), "keras", None, str(export), model, stage="load")
        assert _convert(lane, "fp16", tmp_path / "lane.tflite") == \
            _convert(be, "fp16", tmp_path / "main.tflite")
        # Forked by the first child (which had TensorFlow imported), not started by us.
        assert _parent_of(lane.pid) == be.pid
        with pytest.raises(ChildProcessError):
            os.waitpid(lane.pid, os.WNOHANG)
        os.kill(lane.pid, signal.SIGSEGV)
        with pytest.raises(ConversionError, match=r"TensorFlow crashed \(SIGSEGV\) while "
                                                  r"converting to FP32"):
            _convert(lane, "fp32", tmp_path / "after.tflite")
        assert not lane.alive()
        assert be.alive()  # the first child goes on
        assert len(_convert(be, "fp32", tmp_path / "fp32.tflite")) > 0
    finally:
        be.close()
        if lane is not None:
            lane.close()


def test_an_unused_spare_exits_with_its_child_and_a_cancelled_one_is_ended(
        tiny_model: Path, tmp_path: Path) -> None:
    unused = TFBackend(_opts(tmp_path, "unused"), spare=True)
    link = unused._proc._spare  # noqa: SLF001 - the spare's pid, before anyone takes it
    assert link is not None and link.forked.wait(120)
    assert link.pid is not None and not _ended(link.pid, within=0.5)
    unused.close()
    assert _ended(link.pid)

    token = CancelToken()
    be = TFBackend(_opts(tmp_path, "main"), spare=True)
    lane = be.sibling(_opts(tmp_path, "lane", token))
    try:
        assert lane is not None
        model = be.load(str(tiny_model), "keras", None, str(tmp_path / "export"),
                        stage="load")
        pid = lane.pid
        assert pid > 0 and lane.alive()
        token.cancel()
        with pytest.raises(CancelledError):
            lane.adopt_export(str(tiny_model), "keras", None, str(tmp_path / "export"),
                              model, stage="load")
        assert _ended(pid) and not lane.alive()
        assert be.alive()
    finally:
        be.close()
        if lane is not None:
            lane.close()
