"""The CLI's rich console: a closed stdout is left to :func:`engine.cli.main` to handle."""

from __future__ import annotations

import errno
import os

from rich.console import Console as RichConsole


class Console(RichConsole):
    def on_broken_pipe(self) -> None:
        # rich's default exits with 1, artq's "internal error"; raising lets main() end every
        # command the same way, whichever writer met the closed pipe.
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
