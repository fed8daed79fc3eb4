"""Saving the workbench's tuned settings as a job config (Ctrl+S)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .settings import SettingError, default_save_path, save_config, toml_value


def save_tuned(app: Any) -> None:
    """Ctrl+S: the tuned settings (or a copy) to a config file the user picks."""
    if app.session is None:
        app.notify("Nothing to save: pick a job config first.", severity="warning")
        return
    ov = app.tuned("save again")
    if ov is None:
        return
    session = app.session
    summary = ("Changes: " + ", ".join(f"{k} = {toml_value(v)}" for k, v in ov.items())
               if ov else f"No changes from {session.config_path.name}: it will be copied.")

    def chosen(dest: Path | None) -> None:
        if dest is None:
            return
        try:
            out = save_config(session.config_path, dest, ov)
        except (OSError, SettingError) as exc:
            app.show_error("The config was not saved", str(exc), "Choose another path.")
            return
        app.notify(f"Saved {out}\nRun it: artq run {out}", title="Saved", timeout=8)

    from .screens import SaveScreen  # noqa: PLC0415 - opened on demand

    app.push_screen(SaveScreen(default_save_path(session), summary), chosen)
