"""``torch`` itself, imported here for the package's modules (never by its ``__init__``)."""

from __future__ import annotations

from types import ModuleType

from . import missing_torch, torch_available


def require_torch() -> ModuleType:
    """``torch``, or a one-line :class:`ModelError` saying how to install it."""
    if not torch_available():
        raise missing_torch()
    import torch  # noqa: PLC0415

    return torch
