"""Internal errors: logged with their traceback, said in a dialog, survived.

Textual ends the app on any exception a handler lets out, and the message loop of the widget
whose handler raised stops for good. :class:`Guarded` catches the exception in that loop
instead, one message at a time, and hands it to the app (``ArtqApp.internal_error``), which
writes the traceback to its error log and shows a dialog naming it. The app, the panes and
the dialogs are guarded; workers and timers end on their own and reach the app through
``App._handle_exception``, which the app overrides the same way.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from textual.message import Message

#: Internal errors shown one by one before the app gives up and exits (status 1): an error
#: that recurs on every refresh would otherwise stack dialogs for ever.
MAX_INTERNAL_ERRORS = 20


class Guarded:
    """Mixin for a Textual message pump (app, screen, widget) of this package: an exception
    in one of its handlers is an internal error of the app, not the end of it."""

    async def _dispatch_message(self, message: Message) -> None:
        try:
            await super()._dispatch_message(message)  # type: ignore[misc]
        except Exception as error:  # noqa: BLE001 - every escape is logged and shown
            app: Any = self.app  # type: ignore[attr-defined]
            if hasattr(app, "internal_error"):
                app.internal_error(error)
            else:  # not under the workbench (a pane in a test's own App): Textual's way
                raise


class GuardedApp(Guarded):
    """Mixin for the workbench's App: where :class:`Guarded` pumps hand their errors."""

    error_log: Path
    internal_errors = 0

    def internal_error(self, error: BaseException) -> None:
        """An exception no handler expected: its traceback to the error log, its message in
        a dialog, and the app goes on."""
        from textual.worker import WorkerFailed  # noqa: PLC0415

        if isinstance(error, WorkerFailed):
            error = error.error
        self.internal_errors += 1
        try:
            log = write_traceback(self.error_log, error)
        except OSError:  # the runs folder is not writable: a temporary file still keeps it
            log = write_traceback(Path(tempfile.gettempdir()) / "artq-tui-errors.log", error)
        app: Any = self
        if self.internal_errors > MAX_INTERNAL_ERRORS or not app.is_running:
            super()._handle_exception(error)  # type: ignore[misc] - Textual's: exit, status 1
            return
        app.call_later(app.show_error, "Internal error (a bug in artq)",
                       f"{type(error).__name__}: {error}",
                       f"the app goes on; the traceback is in {log}: please report it with "
                       f"what you did just before.")

    def _handle_exception(self, error: Exception) -> None:
        # Workers, timers and Textual's own widgets end here: said, not fatal.
        self.internal_error(error)


def write_traceback(log: Path, error: BaseException) -> Path:
    """Append ``error``'s traceback, with the time, to ``log``; return the path written."""
    log.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    text = "".join(traceback.format_exception(error))
    with log.open("a", encoding="utf-8") as out:
        out.write(f"--- {stamp} internal error in the artq workbench\n{text}\n")
    return log
