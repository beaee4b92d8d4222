"""The Trials table: every trial with its status, parameters, value, message and extra metrics.

The value cell of a pending trial is editable (a human in the loop types the measurement); the
window passed in receives ``tell(trial_id, value)`` and ``show_error(message)``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from lla_studio.core.space import BOUNDARY_TOL

__all__ = ["BOUNDARY_BRUSH", "BOUNDARY_COLUMN", "TrialsTable"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


BOUNDARY_BRUSH = QBrush(QColor(255, 214, 170))
BOUNDARY_COLUMN = 3  # trial, status, source, boundary, parameters..., value, message


class TrialsTable(QTableWidget):
    """Every trial with its status; the value cell of a pending trial is editable (human in the loop)."""

    def __init__(self, window: Any) -> None:
        super().__init__(0, 0)
        self.window = window
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.itemChanged.connect(self._edited)
        self._updating = False
        self.names: list[str] = []
        self.metric_names: list[str] = []
        self.value_column = 4
        self._drawn: list[dict[str, Any]] = []  # the trial each row shows

    def update_trials(self, trials: tuple[dict[str, Any], ...], names: list[str]) -> None:
        """Show ``trials``; only rows whose trial changed are rewritten (a 64-parameter study
        with 100 trials has 7 000 cells)."""
        self._updating = True
        metrics = list(dict.fromkeys(m for t in trials for m in t.get("metrics", {})))  # the objective's extra metrics
        headers = ["trial", "status", "source", "boundary", *names, "value", "message", *metrics]
        if self.columnCount() != len(headers) or names != self.names or metrics != self.metric_names:
            self.setColumnCount(len(headers))
            self.setHorizontalHeaderLabels(headers)
            self._drawn = []
        self.names = names
        self.metric_names = metrics
        self.value_column = value_column = 4 + len(names)
        self.setRowCount(len(trials))
        del self._drawn[len(trials):]
        for r, t in enumerate(trials):
            if r < len(self._drawn) and self._drawn[r] == t:
                continue
            if r < len(self._drawn):
                self._drawn[r] = t
            else:
                self._drawn.append(t)
            boundary = ", ".join(t.get("boundary", ()))
            cells = [t["id"], t["status"], t["source"], boundary, *(t["config"].get(n) for n in names), t["value"], t["message"],
                     *(t.get("metrics", {}).get(m) for m in metrics)]
            for c, value in enumerate(cells):
                item = self.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.setItem(r, c, item)
                item.setText(_cell(value))
                editable = c == value_column and t["status"] in ("proposed", "running")
                flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                if editable:
                    flags |= Qt.ItemFlag.ItemIsEditable
                    item.setToolTip("type the measured value and press Enter")
                item.setFlags(flags)
                if c == 1:
                    item.setForeground(Qt.GlobalColor.red if t["status"] == "failed" else Qt.GlobalColor.black)
                if c == BOUNDARY_COLUMN:
                    item.setBackground(BOUNDARY_BRUSH if boundary else QBrush())
                    item.setToolTip(
                        f"within {BOUNDARY_TOL:.0%} of the range of an end of the box: {boundary}" if boundary else ""
                    )
                if c == value_column + 1 and t["message"]:
                    item.setToolTip(t["message"])
        self._updating = False

    def _edited(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != self.value_column:
            return
        trial_id = int(self.item(item.row(), 0).text())
        try:
            value = float(item.text())
        except ValueError:
            self.window.show_error(f"trial {trial_id}: {item.text()!r} is not a number")
            self._updating = True
            item.setText("")  # the cell shows what the study holds, not the refused text
            self._updating = False
            return
        self.window.tell(trial_id, value)
