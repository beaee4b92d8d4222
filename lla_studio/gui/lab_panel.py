"""Shared behaviour of the lab panels (Posterior lab, ReLU lab): status line and request bookkeeping.

A lab panel owns a ``controller`` (a :class:`lla_studio.engine.background.NewestRequestController`),
a ``status_label`` and two attributes this mixin keeps: ``_shown_id`` (request id of what is on
screen) and ``_error`` (the error text shown, or ``""``).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

__all__ = ["STATUS_LINES", "LabPanelMixin"]

STATUS_LINES = 6  # longer messages are cut in the status line (the full text is in its tooltip)


class LabPanelMixin:
    """Status line, busy state and shutdown of a panel driven by a newest-request-wins controller."""

    controller: Any
    status_label: Any
    _shown_id: int = 0
    _error: str = ""

    def _assemble(self, controls: QWidget, views: QWidget, sizes: tuple[int, int]) -> None:
        """The panel's layout: the control column left of the views, the views taking new width.
        (Cancelling the work when the application quits is the controller's job.)"""
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(controls)
        splitter.addWidget(views)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes(list(sizes))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    def _set_status(self, text: str, error: bool = False) -> None:
        self._error = text if error else ""
        lines = text.splitlines()
        if len(lines) > STATUS_LINES:
            text = "\n".join(lines[:STATUS_LINES] + [f"… ({len(lines) - STATUS_LINES} more lines in the tooltip)"])
        self.status_label.setText(text)
        self.status_label.setToolTip("\n".join(lines) if error else "")
        self.status_label.setStyleSheet("color: #c00000; font-weight: bold;" if error else "color: #444;")

    def displayed_request_id(self) -> int:
        """Request id of what is on screen (0 before the first answer)."""
        return self._shown_id

    def is_busy(self) -> bool:
        """Whether a request is scheduled or running."""
        return bool(self.controller.busy or self.controller.has_pending)

    def status_text(self) -> str:
        """The status line (errors start with ``"Error:"``)."""
        return self.status_label.text()

    def status_is_error(self) -> bool:
        """Whether the status line shows an error."""
        return bool(self._error)

    def shutdown(self) -> bool:
        """Cancel running work and let go of the lab process (idempotent). Returns whether the work
        stopped (the lab process confirms it)."""
        return self.controller.shutdown()
