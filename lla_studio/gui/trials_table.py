"""The Trials table: a model/view pair that works at 100 trials x 19 parameters.

* :class:`TrialsModel` (a ``QAbstractTableModel``) holds the engine's trial dicts. Columns: the
  value, the objective's extra metrics, status, source, boundary, the parameters, the message; the
  row labels (vertical header) are the trial ids. An update rewrites only what changed: appended
  rows are inserted, changed rows announced with ``dataChanged``, a new set of columns resets.
* :class:`TrialsTable` (a ``QTableView``) shows it sortable (click a header; numbers sort as
  numbers, empty cells last), with the best completed trial highlighted, the value and metrics
  columns frozen on the left while the parameters scroll sideways (a second view over the same
  model, as in Qt's frozen-column example), and it follows new rows when it was showing the last.

The value cell of a proposed or running trial is editable (a human in the loop types the
measurement): a number goes to ``window.tell(trial_id, value)``; anything else stays in the cell,
in red, with the reason as its tooltip, until the next value is typed.
"""

from __future__ import annotations

import math
import time
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from lla_studio.core.space import BOUNDARY_TOL

__all__ = ["BEST_BRUSH", "BOUNDARY_BRUSH", "SORT_ROLE", "TrialsModel", "TrialsTable"]

BOUNDARY_BRUSH = QBrush(QColor(255, 214, 170))
BEST_BRUSH = QBrush(QColor(206, 240, 206))
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
"""The role the table sorts by: numbers as numbers, text as text, empty cells after both."""
_EDITABLE = ("proposed", "running")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _sort_key(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


class TrialsModel(QAbstractTableModel):
    """The engine's trial dicts as a table (see the module docstring for the columns)."""

    def __init__(self, window: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.window = window
        self.trials: list[dict[str, Any]] = []
        self.names: list[str] = []
        self.metric_names: list[str] = []
        self.headers: list[str] = ["value", "status", "source", "boundary", "message"]
        self.minimize = True
        self.best_id: int | None = None
        self.refused: dict[int, tuple[str, str]] = {}  # trial id -> (typed text, why it was refused)

    # -- columns -------------------------------------------------------------------------------
    @property
    def frozen_columns(self) -> int:
        """The value and the metrics: the columns that stay put while the rest scroll."""
        return 1 + len(self.metric_names)

    def column(self, name: str) -> int:
        return self.headers.index(name)

    def _values(self, t: dict[str, Any]) -> list[Any]:
        metrics = t.get("metrics", {}) or {}
        return [t["value"], *(metrics.get(m) for m in self.metric_names), _status(t), t["source"],
                ", ".join(t.get("boundary", ())), *(t["config"].get(n) for n in self.names), t["message"]]

    # -- updates -------------------------------------------------------------------------------
    def update_trials(self, trials: tuple[dict[str, Any], ...], names: list[str], minimize: bool = True) -> None:
        """Show ``trials``: appended rows are inserted and changed rows announced; the rest of the
        table is not touched (a new set of columns resets it)."""
        trials = list(trials)
        metrics = list(dict.fromkeys(m for t in trials for m in (t.get("metrics", {}) or {})))
        best = self._best(trials, minimize)
        if names != self.names or metrics != self.metric_names or minimize != self.minimize or len(trials) < len(self.trials):
            self.beginResetModel()
            self.names, self.metric_names, self.minimize = list(names), metrics, minimize
            self.headers = ["value", *metrics, "status", "source", "boundary", *names, "message"]
            self.trials, self.best_id = trials, best
            self.refused = {k: v for k, v in self.refused.items() if any(t["id"] == k for t in trials)}
            self.endResetModel()
            return
        changed = [r for r, t in enumerate(trials[: len(self.trials)]) if self.trials[r] != t]
        for r in changed:
            self.refused.pop(trials[r]["id"], None)  # the study holds a new state for it
        old_best, self.best_id = self.best_id, best
        if old_best != best:
            changed += [r for r, t in enumerate(self.trials) if t["id"] in (old_best, best)]  # highlights move
        if len(trials) > len(self.trials):
            self.beginInsertRows(QModelIndex(), len(self.trials), len(trials) - 1)
            self.trials = trials
            self.endInsertRows()
        else:
            self.trials = trials
        last = self.columnCount() - 1
        for r in sorted(set(changed)):
            self.dataChanged.emit(self.index(r, 0), self.index(r, last))
            self.headerDataChanged.emit(Qt.Orientation.Vertical, r, r)

    @staticmethod
    def _best(trials: list[dict[str, Any]], minimize: bool) -> int | None:
        done = [t for t in trials if t["status"] == "completed" and t["value"] is not None]
        if not done:
            return None
        pick = min if minimize else max
        return pick(done, key=lambda t: t["value"])["id"]

    # -- QAbstractTableModel -------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.trials)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.headers[section] if 0 <= section < len(self.headers) else None
        return str(self.trials[section]["id"]) if 0 <= section < len(self.trials) else None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        t = self.trials[index.row()]
        name = self.headers[index.column()]
        refused = self.refused.get(t["id"]) if name == "value" else None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if refused is not None:
                return refused[0]
            return _cell(self._values(t)[index.column()])
        if role == SORT_ROLE:
            return _sort_key(self._values(t)[index.column()])
        if role == Qt.ItemDataRole.ToolTipRole:
            if refused is not None:
                return refused[1]
            if name == "value" and t["status"] in _EDITABLE:
                return "type the measured value and press Enter"
            if name == "boundary" and t.get("boundary"):
                return f"within {BOUNDARY_TOL:.0%} of the range of an end of the box: {', '.join(t['boundary'])}"
            if name == "message" and t["message"]:
                return t["message"]
            if name == "status":
                return _status_tip(t)
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if refused is not None or (name == "status" and t["status"] == "failed"):
                return QBrush(QColor("#b00020"))
            return None
        if role == Qt.ItemDataRole.BackgroundRole:
            if name == "boundary" and t.get("boundary"):
                return BOUNDARY_BRUSH
            if t["id"] == self.best_id:
                return BEST_BRUSH
            return None
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
        if index.isValid() and self.headers[index.column()] == "value" and self.trials[index.row()]["status"] in _EDITABLE:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def setData(self, index: QModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or not (self.flags(index) & Qt.ItemFlag.ItemIsEditable):
            return False
        t = self.trials[index.row()]
        text = str(value).strip()
        if not text:
            return False
        try:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
        except ValueError:
            message = f"trial {t['id']}: {text!r} is not a finite number"
            self.refused[t["id"]] = (text, message)
            self.dataChanged.emit(index, index)
            self.window.show_error(message)
            return False
        self.refused.pop(t["id"], None)
        self.window.tell(int(t["id"]), number)
        return True


class _SortProxy(QSortFilterProxyModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802
        return bool(left.data(SORT_ROLE) < right.data(SORT_ROLE))


class TrialsTable(QTableView):
    """Sortable trials, value and metrics frozen on the left, the best trial highlighted."""

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.model_ = TrialsModel(window, self)
        self.proxy = _SortProxy(self)
        self.proxy.setSourceModel(self.model_)
        self.setModel(self.proxy)
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # trial order until a click
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalHeader().setDefaultSectionSize(22)
        self.frozen = QTableView(self)
        self._init_frozen()
        self.model_.modelReset.connect(self._columns_changed)
        self.model_.rowsInserted.connect(self._rows_inserted)
        self._follow = True

    # -- the frozen columns (Qt's frozen-column example) ----------------------------------------
    def _init_frozen(self) -> None:
        f = self.frozen
        f.setModel(self.proxy)
        f.setSelectionModel(self.selectionModel())
        f.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        f.verticalHeader().hide()
        f.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        f.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        f.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        f.horizontalHeader().setSectionsClickable(True)
        f.horizontalHeader().sectionClicked.connect(self._frozen_header_clicked)
        f.verticalHeader().setDefaultSectionSize(self.verticalHeader().defaultSectionSize())
        f.setStyleSheet("QTableView { border: none; border-right: 2px solid #9aa0a6; }")
        self.viewport().stackUnder(f)
        f.verticalScrollBar().valueChanged.connect(self.verticalScrollBar().setValue)
        self.verticalScrollBar().valueChanged.connect(f.verticalScrollBar().setValue)
        self.horizontalHeader().sectionResized.connect(self._section_resized)
        self._columns_changed()

    def _columns_changed(self) -> None:
        self._place_frozen()

    def frozen_count(self) -> int:
        """Columns frozen now: the value and as many metrics as fit in half the view (a narrow
        dock keeps the value frozen and lets the rest scroll)."""
        k = min(self.model_.frozen_columns, self.proxy.columnCount())
        room = 0.5 * max(self.viewport().width(), 1)
        width, n = 0, 0
        for c in range(k):
            width += self.columnWidth(c)
            if n >= 1 and width > room:
                break
            n += 1
        return n

    def _place_frozen(self) -> None:
        n = self.frozen_count()
        for c in range(self.proxy.columnCount()):
            self.frozen.setColumnHidden(c, c >= n)
            if c < n:
                self.frozen.setColumnWidth(c, self.columnWidth(c))
        width = sum(self.columnWidth(c) for c in range(n))
        self.frozen.setGeometry(self.verticalHeader().width() + self.frameWidth(), self.frameWidth(), width,
                                self.viewport().height() + self.horizontalHeader().height())

    def _frozen_header_clicked(self, column: int) -> None:
        """A click on a frozen header sorts like a click on the main one (same toggling)."""
        header = self.horizontalHeader()
        ascending = header.sortIndicatorSection() != column or header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
        order = Qt.SortOrder.AscendingOrder if ascending else Qt.SortOrder.DescendingOrder
        self.sortByColumn(column, order)
        self.frozen.horizontalHeader().setSortIndicatorShown(True)
        self.frozen.horizontalHeader().setSortIndicator(column, order)

    def _section_resized(self, column: int, _old: int, _new: int) -> None:
        if column < self.model_.frozen_columns:
            self._place_frozen()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place_frozen()

    def scrollTo(self, index: QModelIndex, hint: QAbstractItemView.ScrollHint = QAbstractItemView.ScrollHint.EnsureVisible) -> None:  # noqa: N802
        if index.column() >= self.frozen_count():  # frozen columns are always in view
            super().scrollTo(index, hint)

    # -- following new rows -------------------------------------------------------------------
    def _rows_inserted(self, *_: Any) -> None:
        if self._follow:
            self.scrollToBottom()

    def update_trials(self, trials: tuple[dict[str, Any], ...], names: list[str], minimize: bool = True) -> None:
        """Show ``trials`` (see :meth:`TrialsModel.update_trials`); follows new rows when the last
        row was in view."""
        bar = self.verticalScrollBar()
        self._follow = bar.value() >= bar.maximum()
        self.model_.update_trials(trials, names, minimize)
        if any(t["status"] == "running" for t in trials):  # "running 14:02:11" is wider than "completed"
            column = self.proxy.mapFromSource(self.model_.index(0, self.model_.column("status"))).column()
            if column >= 0 and self.sizeHintForColumn(column) > self.columnWidth(column):
                self.resizeColumnToContents(column)

    # -- for the window and tests -------------------------------------------------------------
    def rowCount(self) -> int:  # noqa: N802 - the QTableWidget name the window used
        return self.model_.rowCount()

    def columnCount(self) -> int:  # noqa: N802
        return self.model_.columnCount()

    @property
    def headers(self) -> list[str]:
        return list(self.model_.headers)

    @property
    def value_column(self) -> int:
        return self.model_.column("value")

    def text(self, row: int, column: str) -> str:
        """What the cell of trial row ``row`` (trial order, not the sorted order) shows."""
        return str(self.model_.data(self.model_.index(row, self.model_.column(column))) or "")

    def type_value(self, row: int, text: str) -> bool:
        """Type ``text`` into the value cell of trial row ``row``, as a person does (returns whether
        it was accepted)."""
        return self.model_.setData(self.model_.index(row, self.value_column), text)


def _status(t: dict[str, Any]) -> str:
    """The status cell: a running trial of a parallel run says since when (its worker: the tooltip)."""
    if t["status"] != "running" or t.get("started_at") is None:
        return t["status"]
    return f"running {time.strftime('%H:%M:%S', time.localtime(t['started_at']))}"


def _status_tip(t: dict[str, Any]) -> str | None:
    if t["status"] != "running" or t.get("started_at") is None:
        return None
    since = time.strftime("%H:%M:%S", time.localtime(t["started_at"]))
    worker = t.get("worker")
    return f"running since {since}" + (f" on worker {worker}" if worker else "")
