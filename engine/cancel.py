"""Cancellation: a token the engine checks between samples and stages."""

from __future__ import annotations

import threading

from .errors import CancelledError


class CancelToken:
    """Set from any thread (or a signal handler); checked by the running job."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`CancelledError` if the job was cancelled."""
        if self._event.is_set():
            raise CancelledError()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)
