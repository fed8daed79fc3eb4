"""Choice: Select's values, keys, clicks and messages, one widget until it is opened."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Select
from textual.widgets._select import SelectOverlay

from tui.choice import Choice, ChoiceCurrent


class One(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[object] = []

    def compose(self) -> ComposeResult:
        yield Choice([("alpha", "a"), ("beta", "b"), ("gamma", "c")], allow_blank=False,
                     id="pick", compact=True)
        yield Choice([], prompt="(choose)", id="later", compact=True)

    def on_select_changed(self, event: Select.Changed) -> None:
        self.changes.append((event.control.id, event.value))


def shown(app: App[None], wid: str) -> str:
    """The text the choice's one line shows."""
    return str(app.query_one(f"#{wid} ChoiceCurrent", ChoiceCurrent).render().plain)


async def test_closed_it_is_two_widgets_and_says_its_value() -> None:
    app = One()
    async with app.run_test(size=(40, 6)) as pilot:
        await pilot.pause()
        pick = app.query_one("#pick", Choice)
        assert len(list(pick.walk_children(with_self=True))) == 2  # Select's is five
        assert not app.query(SelectOverlay)
        assert pick.value == "a" and shown(app, "pick").startswith("alpha")
        pick.value = "c"
        await pilot.pause()
        assert shown(app, "pick").startswith("gamma")
        assert shown(app, "later").startswith("(choose)")  # the prompt while blank
        assert ("pick", "c") in app.changes


async def test_keys_open_the_list_and_pick_from_it() -> None:
    app = One()
    async with app.run_test(size=(40, 8)) as pilot:
        app.query_one("#pick", Choice).focus()
        await pilot.press("enter")
        await pilot.pause()
        pick = app.query_one("#pick", Choice)
        assert pick.expanded and app.query(SelectOverlay)
        assert shown(app, "pick").endswith("▲")
        await pilot.press("down", "enter")
        await pilot.pause()
        assert pick.value == "b" and not pick.expanded
        assert app.focused is pick and shown(app, "pick").endswith("▼")
        assert app.changes[-1] == ("pick", "b")
        pick.value = "c"  # set while closed: the list opens on it
        await pilot.press("enter")
        await pilot.pause()
        assert pick.query_one(SelectOverlay).highlighted == 2


async def test_a_click_opens_it_and_options_set_while_closed_are_offered() -> None:
    app = One()
    async with app.run_test(size=(40, 8)) as pilot:
        later = app.query_one("#later", Choice)
        later.set_options([("one", 1), ("two", 2)])
        later.prompt = "(pick one)"  # before the list exists
        await pilot.pause()
        assert later.is_blank() and shown(app, "later").startswith("(pick one)")
        await pilot.click("#later")
        await pilot.pause()
        assert later.expanded
        overlay = later.query_one(SelectOverlay)
        assert [str(overlay.get_option_at_index(i).prompt) for i in range(overlay.option_count)] \
            == ["(pick one)", "one", "two"]
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert later.value == 2 and shown(app, "later").startswith("two")
