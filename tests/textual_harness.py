"""How the TUI tests run Textual: the app's behaviour whole, without the work that only a
person at a terminal would see. Each patch is measured and has a test of what it keeps
(tests/tui/test_harness.py). Applied per TUI test by tests/conftest.py."""

from __future__ import annotations

import asyncio

import pytest
import textual._wait
import textual.constants
from textual._compositor import Compositor
from textual.app import App
from textual.css.model import RuleSet
from textual.css.stylesheet import Stylesheet
from textual.message_pump import MessagePump
from textual.pilot import Pilot, WaitForScreenTimeout


def patch(monkeypatch: pytest.MonkeyPatch) -> None:
    # Animations off (as under TEXTUAL_ANIMATIONS=none): the pilot waits for every animation
    # after each key, so each tab switch cost the 0.3 s slide of the tab underline. The
    # screens end the same (snapshots). The workbench has them off by default too; this
    # covers the small apps the tests build.
    monkeypatch.setattr(textual.constants, "TEXTUAL_ANIMATIONS", "none")
    # Frames: composing each one for a driver that throws it away unread was an eighth of
    # the TUI tests' CPU. A test reads the screen from the widgets, or from a snapshot,
    # which renders the whole screen itself; the last screen is still rendered as the app
    # closes, so a widget whose render raises fails its test.
    monkeypatch.setattr(Compositor, "render_update", _no_frame)
    monkeypatch.setattr(App, "_shutdown", _last_frame)
    # Pilot waits: a fifth of the TUI tests' CPU was the pilot asking each of the app's
    # ~200 widgets to answer a callback after every key and pause, though nearly all had
    # nothing queued.
    monkeypatch.setattr(Pilot, "_wait_for_screen", _wait_for_busy_widgets)
    # Idle checks: the pilot sleeps until the process looks idle (its CPU time all but
    # still over a step), in steps of 20 ms, twice a key: most of the TUI tests' wall
    # time. Steps of 5 ms keep the same test of idleness; what a test waits for it waits
    # for by condition (fakes.settle and fakes.until), not by the length of a step.
    monkeypatch.setattr(textual._wait, "SLEEP_GRANULARITY", 0.005)
    monkeypatch.setattr(textual._wait, "SLEEP_IDLE", 0.005 / 20)
    # CSS: each app parses every stylesheet its widgets bring (its own cache lives and dies
    # with it), a sixth of an app's start; a test process starts ~80 apps from the same
    # sources. Parsed once per process here, by everything the parse depends on.
    monkeypatch.setattr(Stylesheet, "_parse_rules", _parse_rules_once)


_render_update = Compositor.render_update
_parse_rules = Stylesheet._parse_rules
_parsed: dict[tuple[object, ...], list[RuleSet]] = {}
_shutdown = App._shutdown


def _no_frame(compositor: Compositor, full: bool = False, **kwargs: object) -> object:
    if full:  # a snapshot, or the last screen below
        return _render_update(compositor, full, **kwargs)  # type: ignore[arg-type]
    compositor._dirty_regions.clear()  # as if drawn: the next frame starts from here
    return None


async def _last_frame(app: App) -> None:
    failed: Exception | None = None
    if app._screen_stack:
        try:
            app._screen_stack[-1]._compositor.render_update(full=True)
        except Exception as exc:  # noqa: BLE001 - raised once the app is shut down
            failed = exc
    await _shutdown(app)
    if failed is not None:
        raise failed


def _parse_rules_once(sheet: Stylesheet, css: str, read_from: object,
                      is_default_rules: bool = False, tie_breaker: int = 0,
                      scope: str = "") -> list[RuleSet]:
    """Textual's parse, kept for every app of the process: the rules depend on the text, its
    origin and place, and the variables (the theme) it is parsed with; nothing mutates them
    after the parse. A parse that fails is not kept, so it fails again as in Textual."""
    variables = getattr(sheet, "_harness_variables", None)
    if variables is None or variables[0] is not sheet._variables:
        variables = (sheet._variables, tuple(sorted(sheet._variables.items())))
        sheet._harness_variables = variables  # type: ignore[attr-defined]
    key = (variables[1], css, read_from, is_default_rules, tie_breaker, scope)
    rules = _parsed.get(key)
    if rules is None:
        rules = _parse_rules(sheet, css, read_from, is_default_rules,  # type: ignore[arg-type]
                             tie_breaker, scope)
        _parsed[key] = rules
    return rules


def quiet(app: App) -> bool:
    """Whether ``app`` has nothing left to do that a test could see land: every widget of
    its screen waits on an empty queue, and no resize, layout or repaint is pending."""
    if getattr(app, "_resize_timer", None) is not None:  # a resize lands 1/120 s later
        return False
    try:
        screen = app.screen
    except Exception:  # noqa: BLE001 - no screen yet or any more
        return True
    if (screen._layout_required or screen._scroll_required or screen._repaint_required
            or screen._recompose_required or screen._dirty_widgets or screen._callbacks):
        return False
    return all(_parked(pump) for pump in (app, *screen.walk_children(with_self=True)))


def _parked(pump: MessagePump) -> bool:
    """Whether ``pump`` waits for a message with none queued and nothing left to call: a
    callback posted to it would run at once and prove nothing. Anything this cannot tell
    (a newer Textual) counts as busy, so the wait is only ever longer, never shorter."""
    queue = pump._message_queue
    waiters = getattr(getattr(queue, "ready_event", None), "_waiters", None)
    return bool(waiters) and queue.empty() and not pump._next_callbacks


async def _wait_for_busy_widgets(pilot: Pilot, timeout: float = 30.0) -> bool:
    """Textual's own wait (every message queued before it is handled), asked of the widgets
    that have one to handle: each gets a callback behind its queue, and the wait ends when
    all have run it, the app fails, or ``timeout`` passes."""
    app = pilot.app
    try:
        screen = app.screen
    except Exception:  # noqa: BLE001 - no screen: nothing to wait for, as in Textual's
        return False
    pending = 0
    done = asyncio.Event()

    def answered() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0:
            done.set()

    for pump in (app, *screen.walk_children(with_self=True)):
        if not _parked(pump) and pump.call_later(answered):
            pending += 1
    if not pending:
        return True
    waits = [asyncio.create_task(done.wait()), asyncio.create_task(app._exception_event.wait())]
    finished, unfinished = await asyncio.wait(waits, timeout=timeout,
                                              return_when=asyncio.FIRST_COMPLETED)
    for task in unfinished:
        task.cancel()
    if not finished:
        raise WaitForScreenTimeout("Timed out while waiting for widgets to process pending messages.")
    return pending == 0
