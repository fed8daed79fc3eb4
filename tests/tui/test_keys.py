"""Keys that must act the same everywhere: q and Ctrl+Q on every tab, in every widget a tab
has, and in the dialogs.

The rule (README of the keys in tui/keys.py): Ctrl+Q quits from anywhere; q does the same
wherever letters are not text, and is a letter in a text field; in a dialog q closes it like
Esc. While a job runs, quitting asks first (the fake job here is held running).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeRunner, small_digits, until
from fakes import settle as settle_app
from textual import events
from textual.widgets import Input, OptionList, TabbedContent, TabPane
from textual.widgets._footer import FooterKey

from tui import keys
from tui.app import ArtqApp
from tui.jobs import ThreadChecker
from tui.newjob import ConfirmScreen
from tui.screens import HelpScreen, OpenScreen, SaveScreen


def no_diagnostics(cfg: object, shape: object = None) -> tuple[list[dict[str, str]], str]:
    return [], "diagnostics skipped in this test"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


async def settle(pilot) -> None:  # noqa: ANN001
    await settle_app(pilot)

async def start_held_job(pilot, app: ArtqApp, runner: FakeRunner) -> None:  # noqa: ANN001
    await settle(pilot)
    picker = app.query_one("#picker", OptionList)
    picker.highlighted = picker.get_option_index(f"cfg:{app.samples[0]}")
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("ctrl+r")
    await until(pilot, lambda: runner.running, "the job to start")


def binds(node: object) -> bool:
    """Whether ``node``'s class, or one it inherits from, declares key bindings."""
    return any(c.__dict__.get("BINDINGS") for c in type(node).__mro__)


def send(app: ArtqApp, key: str) -> None:
    """The Key event pilot.press sends for ``key`` ("q" with its character, "ctrl+q" with
    none), without its waits for the app to go idle (~0.1 s a key, 80 keys here): the
    caller waits for what the key must do."""
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    app.post_message(event)


async def q_asks(pilot, app: ArtqApp, key: str = "q") -> None:  # noqa: ANN001
    """``key`` asks before quitting (a job runs); n answers no and the job goes on."""
    send(app, key)
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), f"{key} to ask")
    send(app, "n")
    await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the question to close")
    assert app.is_running


async def test_q_and_ctrl_q_act_the_same_on_every_tab_and_every_widget(runs: Path) -> None:
    runner = FakeRunner(runs, hold=True)
    app = ArtqApp(runner=runner, runs_dir=runs, samples=[small_digits(runs.parent)],
                  clock=lambda: 0.0, checker=ThreadChecker(no_diagnostics))
    async with app.run_test(size=(80, 24)) as pilot:
        await start_held_job(pilot, app, runner)
        assert "Quit" in {k.description for k in app.screen.query(FooterKey)}  # the way out, shown
        walked: dict[str, list[str]] = {}
        tried: set[tuple[type, ...]] = set()
        for i, tab in enumerate(keys.TABS):
            await pilot.press(f"f{i + 2}")
            await pilot.pause()
            assert app.query_one(TabbedContent).active == tab
            # A tab never opens on a text field: q there would be typed, not obeyed.
            assert not isinstance(app.focused, Input), (tab, app.focused)
            pane = app.query_one(f"TabPane#{tab}", TabPane)
            seen: list[object] = []
            for _ in range(80):  # every focusable widget of the screen, in Tab's order
                w = app.focused
                if w in seen:
                    break
                seen.append(w)
                if w is None or pane not in w.ancestors:
                    app.screen.focus_next()  # what Tab does, without a pilot round per widget
                    continue
                walked.setdefault(tab, []).append(f"{type(w).__name__}#{w.id}")
                # What a key does depends on the focused widget's class and on the bindings
                # of its ancestors, which come with their classes: one widget of each such
                # chain answers for the others (a walk of every one took 30 s).
                chain = (type(w), *(type(n) for n in w.ancestors if binds(n)))
                if chain in tried:
                    app.screen.focus_next()
                    continue
                tried.add(chain)
                if isinstance(w, Input):
                    before = w.value
                    await pilot.press("q")  # a letter: typed (or refused by a number field)
                    assert not isinstance(app.screen, ConfirmScreen)
                    # Typed (over the selection Tab makes) or refused by a number field.
                    assert w.value in (before, before + "q", "q")
                    w.value = before
                    await q_asks(pilot, app, "ctrl+q")  # the way out of a field
                else:
                    await q_asks(pilot, app, "q")
                    await q_asks(pilot, app, "ctrl+q")
                assert app.focused is w  # answering no leaves the cursor where it was
                await pilot.press("tab")  # by the key where it was tried
                # The app idle again: no question came late (a key asking twice).
                assert not isinstance(app.screen, ConfirmScreen) and app.is_running
            else:
                raise AssertionError(f"Tab never came back round on {tab}")
        # Every tab was walked, through more than its first widget where it has several.
        assert set(walked) == set(keys.TABS), walked
        assert any(w.startswith("Input#") for w in walked["calibration"])
        assert any(w.startswith("Input#") for w in walked["layers"])  # the search field
        assert "DataTable#layer-table" in walked["layers"]
        assert "DataTable#cmp-table" in walked["compare"]
        # Dialogs: q closes them, unless their text field has the cursor.
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help to close")
        await pilot.press("ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, OpenScreen), "the file picker")
        await pilot.press("q")  # the tree has the cursor
        await until(pilot, lambda: not isinstance(app.screen, OpenScreen), "the picker to close")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, SaveScreen), "the save dialog")
        field = app.screen.query_one(Input)
        await pilot.press("end", "q")
        assert isinstance(app.screen, SaveScreen) and field.value.endswith("q")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SaveScreen), "the dialog to close")
        assert app.is_running and runner.running and not runner.cancelled
        # Saying yes cancels the job, then quits.
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "q to ask")
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, "the app to end")
        assert runner.cancelled and app.return_code == 0


async def test_q_quits_at_once_when_no_job_runs_whatever_the_tab(runs: Path) -> None:
    for tab in ("calibration", "layers"):
        app = ArtqApp(runner=FakeRunner(runs), runs_dir=runs, samples=[small_digits(runs.parent)],
                      clock=lambda: 0.0, checker=ThreadChecker(no_diagnostics))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press(str(keys.TABS.index(tab) + 1))
            await until(pilot, lambda: app.query_one(TabbedContent).active == tab,  # noqa: B023
                        f"the {tab} tab")
            await pilot.press("q")
            await until(pilot, lambda: not app.is_running, f"q to quit on {tab}")  # noqa: B023
        assert app.return_code == 0


async def test_help_covers_every_tab_and_the_palette_has_no_duplicates(runs: Path) -> None:
    from collections import Counter

    from rich.console import Console
    from textual.command import CommandList
    from textual.widgets import Static

    app = ArtqApp(runner=FakeRunner(runs), runs_dir=runs, samples=[small_digits(runs.parent)],
                  clock=lambda: 0.0, checker=ThreadChecker(no_diagnostics))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        import io

        console = Console(width=78, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#help-text", Static).content)
        lines = console.export_text().splitlines()
        for i, title in enumerate(keys.TAB_TITLES):
            at = lines.index(f"{i + 1} {title}")  # a section of its own, for every tab
            assert lines[at + 1].strip(), title  # with keys under it
        assert any("Ctrl+Q" in line and "anywhere" in line for line in lines)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: app.screen.query(CommandList)
                    and app.screen.query_one(CommandList).option_count > 30, "the palette")
        palette = app.screen.query_one(CommandList)
        titles = [str(palette.get_option_at_index(i).prompt).split("\n")[0]
                  for i in range(palette.option_count)]
        assert [t for t, n in Counter(titles).items() if n > 1] == []
        # One entry per meaning: Textual's partial key list is not a second "Help".
        assert "Help" in titles and "Keys" not in titles and titles.count("Quit") == 1
        assert {f"Show {t}" for t in keys.TAB_TITLES} <= set(titles)
        actions = [a for _, _, a in keys.commands()]
        assert len(actions) == len(set(actions))
