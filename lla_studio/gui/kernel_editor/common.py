"""Small widget helpers the kernel editor's parts share."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QLabel

__all__ = ["Blocked", "heading", "html_escape"]


class Blocked:
    """``with Blocked(w1, w2): ...`` sets widgets without their signals firing (restored after)."""

    def __init__(self, *widgets: Any) -> None:
        self._w = widgets

    def __enter__(self) -> None:
        self._old = [w.blockSignals(True) for w in self._w]

    def __exit__(self, *exc: Any) -> None:
        for w, old in zip(self._w, self._old):
            w.blockSignals(old)



def html_escape(s: str) -> str:
    """Text for a rich-text label."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def heading(text: str) -> QLabel:
    """A bold section title."""
    label = QLabel(f"<b>{text}</b>")
    label.setContentsMargins(2, 4, 2, 0)
    return label
