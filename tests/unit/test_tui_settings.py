"""The TUI's settings turned into overrides: a cleared field is a message naming it, never a
value the TOML writer cannot take (that ended the app with a traceback)."""

from __future__ import annotations

import pytest

from tui.settings import SettingError, changes, set_args


def test_a_cleared_samples_field_is_named_not_a_crash() -> None:
    base = {"calibration.samples": 200}
    with pytest.raises(SettingError) as info:
        changes(base, {**base, "calibration.samples": None})
    assert str(info.value) == "calibration.samples: is empty: type a value (the config has 200)"


def test_unchanged_and_unused_empty_fields_give_plain_overrides() -> None:
    base = {"calibration.samples": 200, "preprocessing.color": None}
    ov = changes(base, {**base, "calibration.samples": 50})
    assert ov == {"calibration.samples": 50}
    assert set_args(ov) == ["calibration.samples=50"]


def test_help_has_a_section_for_every_tab() -> None:
    from tui.keys import HELP_SECTIONS, TAB_TITLES

    titles = [t for t, _ in HELP_SECTIONS]
    for i, tab in enumerate(TAB_TITLES):
        assert f"{i + 1} {tab}" in titles, tab  # Results had none
