"""engine.backends.prewarm: the TensorFlow child ``artq run`` starts before it reads the job,
handed to the job's first Keras backend, or ended unused (a fake stands in for the child)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_backend import FakeFactory
from test_backend_pool import WarmFake, _opts

from engine.backends import BackendOptions
from engine.backends.prewarm import Prewarmed, worth_starting


class EarlyFake(WarmFake):
    """The early child: writes to the log it was started with, as TensorFlow's import does."""

    waited: list[bool]

    def rebind(self, options: BackendOptions, wait: bool = True) -> None:  # type: ignore[override]
        self.waited.append(wait)
        super().rebind(options)


def _start(made: list[EarlyFake]):  # noqa: ANN202
    def start(options: BackendOptions) -> EarlyFake:
        Path(options.log_path).write_text("importing TensorFlow\n")
        be = EarlyFake(options)
        be.waited = []
        made.append(be)
        return be
    return start


def test_the_first_keras_backend_is_the_early_child_rebound_without_waiting(
        tmp_path: Path) -> None:
    made: list[EarlyFake] = []
    opener = FakeFactory()
    pre = Prewarmed(start=_start(made), opener=opener)
    first = pre("keras", _opts(tmp_path, "run"))
    assert first is made[0] and made[0].waited == [False]  # its import is not waited for
    assert first.options.log_path == tmp_path / "run.log"
    second = pre("keras", _opts(tmp_path, "lane"))  # the float lane's: no spare, a fresh one
    assert second is opener.opened[0]
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "log.txt").write_text("the run's own log\n")
    pre.close(run)
    assert not made[0].closed  # the job closes what it took
    log = (run / "log.txt").read_text()
    assert log.startswith("the run's own log\n") and log.endswith("importing TensorFlow\n")


class ForkingFake(EarlyFake):
    """An early child with a spare: :meth:`sibling` hands it out once, for a Keras 3 job."""

    spare: EarlyFake | None = None

    def sibling(self, options: BackendOptions) -> EarlyFake | None:
        spare, self.spare = self.spare, None
        if spare is None or options.legacy_keras:
            return None
        spare.rebind(options)
        return spare


def test_the_second_keras_backend_is_the_early_childs_spare_and_a_third_is_fresh(
        tmp_path: Path) -> None:
    made: list[EarlyFake] = []

    def start(options: BackendOptions) -> ForkingFake:
        be = ForkingFake(options)
        be.waited = []
        be.spare = EarlyFake(BackendOptions.ahead(tmp_path / "spare.log"))
        be.spare.waited = []
        made.append(be)
        return be

    opener = FakeFactory()
    pre = Prewarmed(start=start, opener=opener)
    spare = made[0].spare
    first = pre("keras", _opts(tmp_path, "run"))
    assert first is made[0]
    # Another framework's backend is opened as usual: the spare stays for a Keras one.
    assert pre("onnx", _opts(tmp_path, "onnx")) is opener.opened[0]
    lane = pre("keras", _opts(tmp_path, "lane"))  # the float lane: no TensorFlow import
    assert lane is spare and lane.options.log_path == tmp_path / "lane.log"
    assert len(opener.opened) == 1
    third = pre("keras", _opts(tmp_path, "more"))  # one spare only
    assert third is opener.opened[1]


@pytest.mark.parametrize("why", ["onnx", "qat", "dead"])
def test_a_job_that_cannot_use_it_gets_its_own_and_the_early_child_ends(
        tmp_path: Path, why: str) -> None:
    made: list[EarlyFake] = []
    opener = FakeFactory()
    pre = Prewarmed(start=_start(made), opener=opener)
    if why == "dead":
        made[0].dead = True
    be = pre("onnx" if why == "onnx" else "keras", _opts(tmp_path, legacy=why == "qat"))
    assert be is opener.opened[0] and made[0].closed and made[0].waited == []
    run = tmp_path / "run"
    run.mkdir()
    pre.close(run)
    assert not (run / "log.txt").exists()  # nothing of an unused child lands in the run


def test_an_unused_child_is_ended_and_its_log_removed(tmp_path: Path) -> None:
    made: list[EarlyFake] = []
    pre = Prewarmed(start=_start(made), opener=FakeFactory())
    early = Path(made[0].options.log_path)
    assert early.is_file()
    pre.close(None)  # the config did not load: no run folder
    assert made[0].closed and not early.exists()


def test_worth_starting_reads_the_model_and_method_from_the_raw_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "saved").mkdir()
    for name in ("m.keras", "m.h5", "m.onnx"):
        (tmp_path / name).write_bytes(b"")
    cases = {
        'path = "m.keras"': True, 'path = "m.h5"': True, 'path = "saved"': True,
        'path = "m.onnx"': False, 'path = "net.py:build"': False,
        # Not there: the preflight refuses it at once, no TensorFlow needed.
        'path = "gone.keras"': False, 'path = "gone"': False,
    }
    for model, expected in cases.items():
        cfg = tmp_path / "job.toml"
        cfg.write_text(f"[model]\n{model}\n")
        assert worth_starting(cfg) is expected, model
    # The --set overrides apply as load_config applies them: a path typed there is relative
    # to the current directory, and a bare word is a string.
    cfg.write_text('[model]\npath = "gone.keras"\n')
    keras = str(tmp_path / "m.keras")
    assert worth_starting(cfg, [f"model.path={json.dumps(keras)}"]) is True
    assert worth_starting(cfg, [f"model.path={keras}"]) is True
    monkeypatch.chdir(tmp_path)
    assert worth_starting(cfg, ["model.path=m.keras"]) is True
    assert worth_starting(cfg, ['model.path="elsewhere.keras"']) is False
    assert worth_starting(cfg, ["model.input_shape=[1, 8, 8]"]) is False  # still gone
    cfg.write_text('[model]\npath = "m.keras"\n')
    assert worth_starting(cfg, ['model.torch="net.py:build"']) is False
    assert worth_starting(cfg, ["model.path"]) is False  # not KEY=VALUE: the load says so
    cfg.write_text('[model]\npath = "m.keras"\n[quantization]\nmethod = "qat"\n')
    assert worth_starting(cfg) is False  # QAT's child needs Keras 2 from its start
    cfg.write_text("[model\n")
    assert worth_starting(cfg) is False  # the real load says what is wrong
    assert worth_starting(tmp_path / "missing.toml") is False
