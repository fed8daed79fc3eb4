"""engine.backends.pool: a warm worker's idle backends, with the fake backend standing in
for a TensorFlow child (alive until closed, cancelled or "crashed")."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from fake_backend import FakeBackend, FakeFactory, write_keras_stub
from test_orchestrator import JOB

from engine.backends import BackendOptions
from engine.backends.pool import MAX_IDLE, BackendPool
from engine.cancel import CancelToken
from engine.config import load_config
from engine.errors import CancelledError, ConversionError
from engine.events import null_sink
from engine.job import run_job

_pids = itertools.count(1000)


@dataclass
class WarmFake(FakeBackend):
    """A FakeBackend that can be pooled: a "process" that lives until closed or killed."""

    pid: int = field(default_factory=lambda: next(_pids))
    dead: bool = False
    rebinds: int = 0
    resets: int = 0

    def alive(self) -> bool:
        return not (self.closed or self.dead)

    def rebind(self, options: BackendOptions) -> None:
        self.options = options
        self.rebinds += 1

    def reset(self) -> None:
        self.options.cancel.check()  # as TFProcess.call: a cancelled job's child is ended
        self.resets += 1


class WarmFactory(FakeFactory):
    def __call__(self, fmt: str, options: BackendOptions) -> WarmFake:  # type: ignore[override]
        be = WarmFake(options, self.fail_in, own_process=self.own_process,
                      block_in=self.block_in)
        self.opened.append(be)
        return be


def _opts(tmp_path: Path, name: str = "a", *, legacy: bool = False,
          cancel: CancelToken | None = None) -> BackendOptions:
    return BackendOptions(tmp_path / f"{name}.log", tmp_path / name, null_sink,
                          cancel or CancelToken(), legacy_keras=legacy)


def test_a_closed_backend_serves_the_next_job_rebound_to_it(tmp_path: Path) -> None:
    opener = WarmFactory()
    pool = BackendPool(opener)
    first = pool("keras", _opts(tmp_path, "a"))
    first.close()
    first.close()  # a job closes its backends twice: the second close is nothing
    assert pool.idle == 1 and opener.opened[0].resets == 1 and not opener.opened[0].closed
    second_opts = _opts(tmp_path, "b")
    second = pool("h5", second_opts)
    assert len(opener.opened) == 1  # no new process
    be = opener.opened[0]
    assert be.rebinds == 1 and be.options is second_opts  # the new job's log, sink, cancel
    assert (pool.opened, pool.reused) == (1, 1)
    assert pool.stats() == {"opened": 1, "reused": 1, "idle_pids": []}
    second.close()
    assert pool.idle_pids() == [be.pid]
    pool.close()
    assert be.closed and pool.idle == 0


def test_a_dead_or_cancelled_backend_is_never_reused(tmp_path: Path) -> None:
    opener = WarmFactory()
    pool = BackendPool(opener)
    crashed = pool("keras", _opts(tmp_path))
    opener.opened[0].dead = True  # its process crashed during the job
    crashed.close()
    assert pool.idle == 0 and opener.opened[0].closed
    # Cancelled: the reset on giving it back fails as the child's call does.
    token = CancelToken()
    cancelled = pool("keras", _opts(tmp_path, cancel=token))
    token.cancel()
    cancelled.close()
    assert pool.idle == 0 and opener.opened[1].closed
    # Died while idle: dropped when a job asks, and a fresh one opened.
    idle = pool("keras", _opts(tmp_path))
    idle.close()
    assert pool.idle == 1
    opener.opened[2].dead = True
    pool("keras", _opts(tmp_path))
    assert len(opener.opened) == 4 and pool.reused == 0 and opener.opened[2].closed


def test_one_that_dies_as_it_is_rebound_is_skipped_for_the_next_idle(tmp_path: Path) -> None:
    opener = WarmFactory()
    pool = BackendPool(opener)
    a, b = pool("keras", _opts(tmp_path, "a")), pool("keras", _opts(tmp_path, "b"))
    a.close()
    b.close()
    doomed = opener.opened[1]  # handed out first (the last given back)

    def crash(options: BackendOptions) -> None:
        doomed.dead = True
        raise ConversionError("the TensorFlow process exited", "")

    doomed.rebind = crash  # type: ignore[method-assign]
    pool("keras", _opts(tmp_path, "c"))
    assert len(opener.opened) == 2 and pool.reused == 1 and opener.opened[0].rebinds == 1
    assert doomed.closed and pool.idle == 0


@pytest.mark.parametrize(("fmt", "legacy"), [("keras", True), ("onnx", False),
                                             ("torch", False)])
def test_qat_and_other_formats_are_never_pooled(tmp_path: Path, fmt: str, legacy: bool) -> None:
    opener = WarmFactory()
    pool = BackendPool(opener)
    be = pool(fmt, _opts(tmp_path, legacy=legacy))
    assert be is opener.opened[0]  # not wrapped: its close() really closes
    be.close()
    assert opener.opened[0].closed and pool.idle == 0
    pool(fmt, _opts(tmp_path, legacy=legacy))
    assert len(opener.opened) == 2 and (pool.opened, pool.reused) == (0, 0)


def test_at_most_two_idle(tmp_path: Path) -> None:
    opener = WarmFactory()
    pool = BackendPool(opener)
    lent = [pool("keras", _opts(tmp_path, str(i))) for i in range(3)]
    for be in lent:
        be.close()
    assert MAX_IDLE == 2 and pool.idle == 2
    assert [b.closed for b in opener.opened] == [False, False, True]


def test_a_job_through_the_pool_reuses_its_backends(tmp_path: Path) -> None:
    """Two whole jobs on one pool: the second opens nothing, and gives the same report."""
    model = write_keras_stub(tmp_path / "m.keras")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.random.default_rng(0).uniform(-1, 1, (24, 8, 8, 1)).astype(np.float32))
    (tmp_path / "job.toml").write_text(JOB.format(model=model, data=data, extra="",
                                                  runs=tmp_path / "runs"), encoding="utf-8")
    opener = WarmFactory(own_process=True)
    pool = BackendPool(opener)
    cfg = load_config(tmp_path / "job.toml")
    first = run_job(cfg, backend=pool)
    assert first.status == "ok"
    opened = len(opener.opened)
    assert pool.idle == opened and all(b.resets == 1 for b in opener.opened)
    second = run_job(load_config(tmp_path / "job.toml", ["calibration.samples=10"]),
                     backend=pool)
    assert second.status == "ok" and len(opener.opened) == opened
    assert pool.reused >= 1
    # Rebound: the second job's calls went to its own run's log.
    assert str(second.run_dir) in str(opener.opened[0].options.log_path)
    # A backend cancelled in the middle of a call is not given back.
    token = CancelToken()
    blocking = WarmFactory(own_process=True, block_in="convert_int8")
    pool2 = BackendPool(blocking)
    threading.Timer(0.5, token.cancel).start()
    with pytest.raises(CancelledError):
        run_job(cfg, cancel=token, backend=pool2)
    # The one cancelled in its conversion is ended; the float lane's, done before the
    # cancel, went back healthy.
    cancelled = [b for b in blocking.opened if "convert_int8" in b.calls]
    assert len(cancelled) == 1 and cancelled[0].closed
    assert pool2.idle == sum(not b.closed for b in blocking.opened)


def test_prestart_leaves_idle_backends_for_the_next_job_and_its_lane(tmp_path: Path) -> None:
    opener = WarmFactory()
    pool = BackendPool(opener)
    assert pool.prestart("keras") and pool.idle == MAX_IDLE == pool.opened == 2
    assert not pool.prestart("keras")  # they wait already
    assert not pool.prestart("onnx") and len(opener.opened) == 2  # not pooled: none started
    first, second = pool("keras", _opts(tmp_path, "job")), pool("keras", _opts(tmp_path, "lane"))
    assert sorted([first.inner.pid, second.inner.pid]) == sorted(b.pid for b in opener.opened)
    assert pool.reused == 2
    assert first.inner.options.log_path == tmp_path / "job.log"  # rebound to the job


def test_the_tui_warms_up_for_keras_and_savedmodel_ptq_jobs_only() -> None:
    from tui.jobs import warm_format

    ptq, qat = {"quantization": {"method": "ptq"}}, {"quantization": {"method": "qat"}}
    assert warm_format({"format": "keras"}, ptq) == "keras"
    assert warm_format({"format": "saved_model"}, {}) == "saved_model"  # PTQ by default
    assert warm_format({"format": "keras"}, qat) is None  # Keras 2, chosen at its start
    assert warm_format({"format": "onnx"}, ptq) is None  # runs in the worker itself
    assert warm_format({}, ptq) is None  # no model read yet
