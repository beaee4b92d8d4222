"""Search-space editor: a table of parameters with inline validation, and the resulting features.

Each row is one parameter: name, type, low, high, log, choices (JSON list), default, condition
(``optimizer == "sgd"``, ``optimizer in ["sgd", "rmsprop"]``, several joined by ``and``). Every edit
re-validates the whole space with the core's reader; a bad row is painted red with the error as
tooltip and the editor reports itself invalid (the window disables Run) until it is fixed. A valid
space is emitted with :attr:`space_changed`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lla_studio.core.errors import LLAStudioError, SessionError
from lla_studio.core.space import SearchSpace
from lla_studio.core.space_reader import search_space_from_dict

__all__ = ["SearchSpaceEditor", "format_conditions", "parse_conditions"]

COLUMNS = ["name", "type", "low", "high", "log", "choices", "default", "condition"]
_COND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(==|in)\s*(.+?)\s*$")


def format_conditions(conditions: list[dict[str, Any]]) -> str:
    parts = []
    for c in conditions:
        values = c["values"]
        parts.append(f"{c['parent']} == {json.dumps(values[0])}" if len(values) == 1 else f"{c['parent']} in {json.dumps(values)}")
    return " and ".join(parts)


def parse_conditions(text: str) -> list[dict[str, Any]]:
    """``a == "x" and b in [1, 2]`` -> condition dicts; raises ValueError with the bad part."""
    out = []
    for part in [p for p in re.split(r"\s+and\s+", text.strip()) if p]:
        m = _COND.match(part)
        if not m:
            raise ValueError(f"cannot read condition {part!r}; write name == value or name in [v1, v2]")
        name, op, rhs = m.groups()
        try:
            value = json.loads(rhs)
        except json.JSONDecodeError:
            raise ValueError(f"condition {part!r}: {rhs!r} is not a JSON value (quote strings)") from None
        values = value if op == "in" else [value]
        if op == "in" and not isinstance(value, list):
            raise ValueError(f"condition {part!r}: 'in' needs a list")
        out.append({"parent": name, "values": values})
    return out


def _num(text: str) -> Any:
    try:
        v = json.loads(text)
    except json.JSONDecodeError:
        return text  # left for the core to reject with its own message
    return v


TableState = tuple[tuple[str, ...], ...]


class _TableEdit(QUndoCommand):
    """One user edit of the table (cell, add, remove, move): the table's text before and after."""

    def __init__(self, editor: SearchSpaceEditor, before: TableState, after: TableState) -> None:
        super().__init__("edit search space")
        self.editor, self.before, self.after = editor, before, after
        self.first = True

    def redo(self) -> None:
        if self.first:  # pushed after the edit happened
            self.first = False
            return
        self.editor._restore(self.after)

    def undo(self) -> None:
        self.editor._restore(self.before)


def report_validity(editor: Any, message: str) -> None:
    """Show an editor's validation ``message`` ("" = valid) in its status label, set its
    ``valid``/``error`` attributes and emit ``validity_changed`` when validity flipped."""
    was = editor.valid
    editor.valid = not message
    editor.error = message
    editor.status.setText(message)
    editor.status.setStyleSheet("color: #b00020;" if message else "")
    if was != editor.valid:
        editor.validity_changed.emit(editor.valid)


class SearchSpaceEditor(QWidget):
    """Editable parameter table; emits ``space_changed(SearchSpace)`` for every valid state."""

    space_changed = Signal(object)
    validity_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None, undo_stack: QUndoStack | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.itemChanged.connect(lambda _item: self._revalidate())
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        # the window's one command stack when given (its owner clears it and holds the shortcuts)
        self._owns_stack = undo_stack is None
        self.undo_stack = undo_stack if undo_stack is not None else QUndoStack(self)
        for text, slot in (
            ("Add", self.add_row), ("Remove", self.remove_selected), ("Up", lambda: self.move_selected(-1)),
            ("Down", lambda: self.move_selected(1)), ("Undo", self.undo_stack.undo), ("Redo", self.undo_stack.redo),
        ):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
            if text in ("Undo", "Redo"):
                b.setEnabled(False)
                (self.undo_stack.canUndoChanged if text == "Undo" else self.undo_stack.canRedoChanged).connect(b.setEnabled)
        for keys, slot in ((QKeySequence.StandardKey.Undo, self.undo_stack.undo), (QKeySequence.StandardKey.Redo, self.undo_stack.redo)):
            if not self._owns_stack:
                break
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("features the surrogate sees (after the transforms):"))
        self.features = QListWidget()
        self.features.setMaximumHeight(140)
        layout.addWidget(self.features)
        self._loading = False
        self.valid = True
        self.error = ""
        self.row_errors: dict[int, str] = {}
        self._state: TableState = ()

    # ------------------------------------------------------------------ load / read
    def set_space(self, space: SearchSpace, feature_names: list[str] | tuple[str, ...] = ()) -> None:
        self._loading = True
        self.table.setRowCount(0)
        for p in space.to_dict()["parameters"]:
            self._append(p)
        self._loading = False
        self.set_features(feature_names)
        self._paint({}, "")
        self._state = self.table_state()
        if self._owns_stack:
            self.undo_stack.clear()  # a new session: nothing to undo (a shared stack: its owner clears)

    def table_state(self) -> TableState:
        """The table's text, row by row (what undo/redo restore)."""
        return tuple(tuple(self.cell(r, c) for c in COLUMNS) for r in range(self.table.rowCount()))

    def _restore(self, state: TableState) -> None:
        self._loading = True
        self.table.setRowCount(0)
        for row in state:
            r = self.table.rowCount()
            self.table.insertRow(r)
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self._loading = False
        self._state = state
        self._revalidate()

    def set_features(self, names: list[str] | tuple[str, ...], error: str = "") -> None:
        self.features.clear()
        self.features.addItems(list(names))
        if error:
            self.features.addItem(f"⚠ {error}")

    def _append(self, p: dict[str, Any]) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        cells = {
            "name": p.get("name", ""),
            "type": p.get("type", "real"),
            "low": "" if "low" not in p else json.dumps(p["low"]),
            "high": "" if "high" not in p else json.dumps(p["high"]),
            "log": "true" if p.get("log") else "",
            "choices": "" if "choices" not in p else json.dumps(p["choices"]),
            "default": "" if p.get("default") is None else json.dumps(p["default"]),
            "condition": format_conditions(p.get("conditions", [])),
        }
        for c, key in enumerate(COLUMNS):
            self.table.setItem(r, c, QTableWidgetItem(str(cells[key])))

    def cell(self, row: int, column: str) -> str:
        item = self.table.item(row, COLUMNS.index(column))
        return item.text().strip() if item is not None else ""

    def set_cell(self, row: int, column: str, text: str) -> None:
        self.table.item(row, COLUMNS.index(column)).setText(text)

    def row_dict(self, r: int) -> dict[str, Any]:
        kind = self.cell(r, "type") or "real"
        d: dict[str, Any] = {"name": self.cell(r, "name"), "type": kind}
        if kind == "choice":
            try:
                d["choices"] = json.loads(self.cell(r, "choices") or "[]")
            except json.JSONDecodeError:
                raise SessionError(f"choices must be a JSON list like [\"a\", \"b\"], got {self.cell(r, 'choices')!r}", f"parameter row {r + 1}") from None
        else:
            d["low"] = _num(self.cell(r, "low"))
            d["high"] = _num(self.cell(r, "high"))
            if self.cell(r, "log").lower() in ("true", "yes", "1", "log"):
                d["log"] = True
        if self.cell(r, "default"):
            d["default"] = _num(self.cell(r, "default"))
        if self.cell(r, "condition"):
            try:
                d["conditions"] = parse_conditions(self.cell(r, "condition"))
            except ValueError as err:
                raise SessionError(str(err), f"parameter row {r + 1}") from None
        return d

    def space(self) -> SearchSpace | None:
        """The table as a valid search space, or None (see :attr:`error`)."""
        rows = []
        for r in range(self.table.rowCount()):
            rows.append(self.row_dict(r))
        return search_space_from_dict({"parameters": rows})

    # ------------------------------------------------------------------ edits
    def add_row(self) -> None:
        names = {self.cell(r, "name") for r in range(self.table.rowCount())}
        i = 1
        while f"p{i}" in names:
            i += 1
        self._loading = True  # the new row's cells arrive one by one: one command for the row, not one per cell
        try:
            self._append({"name": f"p{i}", "type": "real", "low": 0.0, "high": 1.0})
        finally:
            self._loading = False
        self._revalidate()

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for r in rows:
            self.table.removeRow(r)
        self._revalidate()

    def remove_row(self, row: int) -> None:
        self.table.removeRow(row)
        self._revalidate()

    def move_selected(self, delta: int) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        if len(rows) != 1:
            return
        r, t = rows[0], rows[0] + delta
        if not 0 <= t < self.table.rowCount():
            return
        self._loading = True
        a = [self.table.takeItem(r, c) for c in range(len(COLUMNS))]
        b = [self.table.takeItem(t, c) for c in range(len(COLUMNS))]
        for c in range(len(COLUMNS)):
            self.table.setItem(r, c, b[c])
            self.table.setItem(t, c, a[c])
        self._loading = False
        self.table.selectRow(t)
        self._revalidate()

    # ------------------------------------------------------------------ validation
    def _revalidate(self) -> None:
        if self._loading:
            return
        state = self.table_state()
        if state != self._state:  # a user edit: undoable (undo/redo themselves set _state first)
            self.undo_stack.push(_TableEdit(self, self._state, state))
            self._state = state
        try:
            space = self.space()
        except LLAStudioError as err:
            msg = str(err)
            row = self._culprit_row(msg)
            self._paint({row: msg} if row is not None else {}, msg)
            return
        self._paint({}, "")
        if space is not None:
            self.space_changed.emit(space)

    def _culprit_row(self, message: str) -> int | None:
        m = re.search(r"parameters\[(\d+)\]", message) or re.search(r"parameter row (\d+)", message)
        if m:
            i = int(m.group(1))
            return i - 1 if "row" in m.group(0) else i
        for r in range(self.table.rowCount()):
            if f"parameter {self.cell(r, 'name')!r}" in message:
                return r
        return None

    def _paint(self, errors: dict[int, str], message: str) -> None:
        self._loading = True
        self.row_errors = errors
        for r in range(self.table.rowCount()):
            bad = r in errors
            for c in range(len(COLUMNS)):
                item = self.table.item(r, c)
                if item is None:
                    continue
                item.setBackground(QColor(255, 205, 205) if bad else QColor(Qt.GlobalColor.white))
                item.setToolTip(errors.get(r, ""))
        self._loading = False
        report_validity(self, message)
