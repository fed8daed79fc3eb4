"""The workbench never dies on an edit or a bug: internal errors are a dialog naming the log
that holds their traceback, the app goes on; if it ever ends on an error its exit status says
so; and random keys and values on every pane leave it up with no traceback written.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeRunner, seed_runs, small_digits
from fakes import settle as settle_app
from textual.widgets import Input, Select, TabbedContent

from engine.events import Log, RunStarted
from tui.app import ArtqApp, run
from tui.guard import MAX_INTERNAL_ERRORS
from tui.jobs import ThreadChecker
from tui.messages import JobEvent
from tui.screens import ErrorDialog


def no_findings(cfg: Any, shape: Any = None) -> tuple[list[dict[str, str]], str]:
    return [], ""


def make_app(runs: Path, runner: FakeRunner) -> ArtqApp:
    return ArtqApp(runner=runner, runs_dir=runs, samples=[small_digits(runs.parent)],
                   clock=lambda: 0.0, checker=ThreadChecker(no_findings))


async def settle(pilot) -> None:  # noqa: ANN001
    await settle_app(pilot)

async def open_sample(pilot: Any) -> None:
    await settle(pilot)
    await pilot.press("enter")  # the first sample is highlighted at start
    await settle(pilot)
    assert pilot.app.session is not None


class BuggyRunner(FakeRunner):
    """A worker front that breaks: in the launch worker itself, or by sending an event the
    job monitor's handler cannot take (a run folder of None)."""

    def __init__(self, runs: Path, where: str) -> None:
        super().__init__(runs)
        self.where = where

    async def start(self, config: str, overrides: list[str], post: Any, resume: bool = False) -> None:
        self.started.append((config, list(overrides)))
        if self.where == "worker":
            raise ValueError("the launch worker broke")
        post(JobEvent(RunStarted(None, "fake", ["fp32"])))  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["worker", "handler"])
async def test_an_internal_error_is_a_dialog_and_the_app_goes_on(
        tmp_path: Path, where: str, internal_errors: list[BaseException]) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    app = make_app(runs, BuggyRunner(runs, where))
    async with app.run_test(size=(100, 30)) as pilot:
        await open_sample(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.is_running and app.return_code is None and app._exception is None
        assert isinstance(app.screen, ErrorDialog)
        message = str(app.screen.query_one("#error-message").render())
        hint = str(app.screen.query_one(".hint").render())
        expected = ValueError if where == "worker" else TypeError
        assert message.startswith(f"{expected.__name__}: ")
        assert str(app.error_log) in hint.replace("\n", "")
        log = app.error_log.read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" in log and expected.__name__ in log
        # A worker's error comes wrapped in Textual's WorkerFailed.
        assert [type(getattr(e, "error", e)) for e in internal_errors] == [expected]
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorDialog)
        # Still answering: keys switch tabs, and the pane whose handler raised handles the
        # next message (Textual stops a widget's message loop on an error it lets through).
        await pilot.press("f7")
        assert app.query_one(TabbedContent).active == "compare"
        monitor = app.pane("quantize")
        monitor.post_message(JobEvent(Log("info", "still listening")))
        await settle(pilot)
        assert "still listening" in "\n".join(str(line.text) for line in app.query_one("#log").lines)


class RecurringError(ArtqApp):
    """A bug that strikes on every tick: the app may not stack dialogs for ever."""

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(0.01, self._tick)
        self.set_timer(20, self.exit)  # a bound, should the app never give up

    def _tick(self) -> None:
        raise RuntimeError("broken on every tick")


def test_an_app_that_ends_on_an_error_says_so_in_its_exit_status(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        internal_errors: list[BaseException]) -> None:
    runs = tmp_path / "runs"
    app = RecurringError(runner=FakeRunner(runs), runs_dir=runs, samples=[], clock=lambda: 0.0,
                         checker=ThreadChecker(no_findings))
    code = run(app, headless=True, size=(80, 24))
    assert code == 1
    err = capsys.readouterr().err
    assert "artq: the workbench stopped on an internal error (exit status 1)" in err
    assert str(app.error_log) in err.replace("\n", "")
    # Given up after the limit (ticks may still come while the app closes: logged too).
    assert len(internal_errors) > MAX_INTERNAL_ERRORS
    logged = app.error_log.read_text(encoding="utf-8").count("RuntimeError: broken on every tick")
    assert logged == len(internal_errors)


# --- random keys and values on every pane ----------------------------------------------------

SEED = int(os.environ.get("ARTQ_FUZZ_SEED", "20261203"))
STEPS_PER_TAB = 6
KEYS = ["tab", "shift+tab", "enter", "escape", "up", "down", "left", "right", "space",
        "backspace", "home", "end", "pageup", "pagedown", "a", "5", "0", "minus", "t", "u", "x",
        "s", "r", "slash", "question_mark", "f1", "ctrl+r", "ctrl+t", "ctrl+s", "ctrl+o",
        *(str(i) for i in range(1, 7)), *(f"f{i}" for i in range(2, 8))]  # never q: it quits


def values(tmp: Path) -> list[str]:
    missing = tmp / "no" / "such"  # paths that do not exist, none outside the test's folder
    return ["", " ", "0", "-1", "-200", "9" * 400, "1e309", "nan", "-0.0", "3.5", "[1, 2",
            "π数据🙂", "\u200b", "x" * 2000, str(missing / "cal.npz"), str(missing / "m.keras"),
            str(missing), "../../no/such/folder", "true", "calibration.samples=-5"]


async def test_random_keys_and_values_on_every_pane_leave_the_app_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        internal_errors: list[BaseException]) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path typed into Save lands here
    rng = random.Random(SEED)
    runs = tmp_path / "runs"
    seed_runs(runs)
    app = make_app(runs, FakeRunner(runs))
    vals, done = values(tmp_path), []

    def check(what: str) -> None:
        assert app.is_running and app.return_code is None and app._exception is None \
            and not internal_errors and not app.error_log.exists(), (
                f"seed {SEED} (ARTQ_FUZZ_SEED={SEED} to replay), after {what}; "
                f"last steps {done[-8:]}; internal errors {internal_errors!r}")

    async with app.run_test(size=(100, 30)) as pilot:
        await open_sample(pilot)
        for tab in ("models", "calibration", "quantize", "results", "layers", "compare"):
            if not isinstance(app.screen, ErrorDialog) and app.screen is app.screen_stack[0]:
                app.action_show_tab(tab)
            for _ in range(STEPS_PER_TAB):
                roll = rng.random()
                screen = app.screen
                here = (screen if screen is not app.screen_stack[0]
                        else app.query_one(TabbedContent).active_pane or screen)
                inputs = [w for w in here.query(Input) if w.display and not w.disabled]
                selects = [w for w in here.query(Select) if w.display and not w.disabled]
                if roll < 0.4 and inputs:
                    field, value = rng.choice(inputs), rng.choice(vals)
                    step = f"{tab}: {field.id} = {value[:40]!r} + enter"
                    done.append(step)
                    field.value = value
                    field.focus()
                    await pilot.press("enter")
                elif roll < 0.55 and selects:
                    box = rng.choice(selects)
                    options = [v for _, v in box._options if v is not Select.BLANK]
                    if not options:
                        continue
                    value = rng.choice(options)
                    step = f"{tab}: {box.id} = {value!r}"
                    done.append(step)
                    box.value = value
                    await pilot.pause()
                else:
                    keys = [rng.choice(KEYS) for _ in range(rng.randint(1, 2))]
                    step = f"{tab}: keys {keys}"
                    done.append(step)
                    await pilot.press(*keys)
                check(step)
        await settle(pilot)
        check("the last step settled")
    assert len(done) >= 5 * STEPS_PER_TAB
