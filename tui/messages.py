"""Messages from the worker processes to the app (posted by :mod:`tui.jobs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from engine.events import Event


class JobEvent(Message):
    """One engine event from the running job."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # A newer progress of the same stage makes an unprocessed older one pointless.
        from engine.events import Progress  # noqa: PLC0415 - imported after the first paint

        return (
            isinstance(message, JobEvent)
            and isinstance(self.event, Progress)
            and isinstance(message.event, Progress)
            and message.event.stage == self.event.stage
        )


class JobExited(Message):
    """The worker process ended (``returncode`` as the CLI's exit codes; <0 by signal)."""

    def __init__(self, returncode: int, stderr: str = "") -> None:
        super().__init__()
        self.returncode = returncode
        self.stderr = stderr


class SweepProgress(Message):
    """The sweep started (``SweepStarted``) or one variant's run moved on (``VariantEvent``)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # A newer progress of the same variant's stage replaces an unprocessed older one.
        from engine.events import Progress  # noqa: PLC0415
        from engine.protocol import VariantEvent  # noqa: PLC0415

        if not (isinstance(message, SweepProgress) and isinstance(self.event, VariantEvent)
                and isinstance(message.event, VariantEvent)):
            return False
        mine, theirs = self.event.inner, message.event.inner
        return (message.event.index == self.event.index and isinstance(mine, Progress)
                and isinstance(theirs, Progress) and mine.stage == theirs.stage)


class SweepDone(Message):
    """The sweep ended: its sweep.json data (None when there is none) and its exit code."""

    def __init__(self, returncode: int, data: dict[str, Any] | None, stderr: str = "") -> None:
        super().__init__()
        self.returncode = returncode
        self.data = data
        self.stderr = stderr
