"""Cooperative cancellation of long posterior-lab computations."""

from __future__ import annotations

from collections.abc import Callable

from lla_studio.core.errors import Cancelled

__all__ = ["Cancelled", "CancelCallback", "check_cancel"]

CancelCallback = Callable[[], bool] | None


def check_cancel(cancel: CancelCallback, where: str) -> None:
    """Raise `Cancelled` (naming ``where``) if ``cancel`` is given and returns True."""
    if cancel is not None and cancel():
        raise Cancelled(f"cancelled during {where}")
