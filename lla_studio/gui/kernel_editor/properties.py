"""The kernel editor's property panel: the selected node's kind, features, priors and fixed values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lla_studio.core.kernels import Gamma, LogNormal
from lla_studio.core.kernels.draft import DESCRIPTIONS, LEAF_KINDS, EditorNode
from lla_studio.gui.kernel_editor.common import Blocked
from lla_studio.gui.kernel_editor.items import _PARAM_SYMBOL


class _ParamRow(QWidget):
    """Prior (none / gamma / lognormal with two numbers) and fixed value of one hyperparameter."""

    changed = Signal(str, object, object)  # param, prior | None, fixed | None

    def __init__(self, param: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 2)
        grid.setHorizontalSpacing(4)
        title = QLabel(f"<b>{param}</b> {_PARAM_SYMBOL.get(param, '')}")
        self.prior = QComboBox()
        self.prior.addItems(["no prior", "gamma", "lognormal"])
        self.a = QDoubleSpinBox()
        self.b = QDoubleSpinBox()
        for s in (self.a, self.b):
            s.setDecimals(3)
            s.setRange(1e-3, 1e4)
            s.setKeyboardTracking(False)
        self.fix = QCheckBox("fixed")
        self.value = QDoubleSpinBox()
        self.value.setDecimals(4)
        self.value.setRange(1e-4, 1e4)
        self.value.setValue(1.0)
        self.value.setKeyboardTracking(False)
        grid.addWidget(title, 0, 0, 1, 3)
        grid.addWidget(self.prior, 1, 0)
        grid.addWidget(self.a, 1, 1)
        grid.addWidget(self.b, 1, 2)
        grid.addWidget(self.fix, 2, 0)
        grid.addWidget(self.value, 2, 1)
        self.prior.currentIndexChanged.connect(self._prior_kind_changed)
        self.a.valueChanged.connect(self._emit)
        self.b.valueChanged.connect(self._emit)
        self.fix.toggled.connect(self._emit)
        self.value.valueChanged.connect(self._emit)

    def _prior_kind_changed(self, index: int) -> None:
        # sensible defaults per family
        with Blocked(self.a, self.b):
            if index == 1:
                self.a.setRange(1e-3, 1e4)
                self.a.setValue(3.0 if self.param != "outputscale" else 2.0)
                self.b.setValue(6.0 if self.param != "outputscale" else 0.15)
            elif index == 2:
                self.a.setRange(-20.0, 20.0)
                self.a.setValue(0.0)
                self.b.setValue(1.0)
        self._emit()

    def _emit(self, *_: Any) -> None:
        self._sync_enabled()
        idx = self.prior.currentIndex()
        prior = None
        if idx == 1:
            prior = Gamma(self.a.value(), self.b.value())
        elif idx == 2:
            prior = LogNormal(self.a.value(), self.b.value())
        fixed = self.value.value() if self.fix.isChecked() else None
        self.changed.emit(self.param, prior, fixed)

    def _sync_enabled(self) -> None:
        on = self.prior.currentIndex() != 0
        self.a.setEnabled(on)
        self.b.setEnabled(on)
        self.a.setToolTip("concentration" if self.prior.currentIndex() == 1 else "loc (mean of log)")
        self.b.setToolTip("rate" if self.prior.currentIndex() == 1 else "scale (sd of log)")
        self.value.setEnabled(self.fix.isChecked())

    def set_values(self, prior: Gamma | LogNormal | None, fixed: float | None) -> None:
        with Blocked(self.prior, self.a, self.b, self.fix, self.value):
            idx = 0 if prior is None else (1 if isinstance(prior, Gamma) else 2)
            if self.prior.currentIndex() != idx:
                self.prior.setCurrentIndex(idx)
            if idx == 2:
                self.a.setRange(-20.0, 20.0)
            else:
                self.a.setRange(1e-3, 1e4)
            if isinstance(prior, Gamma):
                vals = (prior.concentration, prior.rate)
            elif isinstance(prior, LogNormal):
                vals = (prior.loc, prior.scale)
            else:
                vals = None
            if vals is not None:
                if self.a.value() != vals[0]:
                    self.a.setValue(vals[0])
                if self.b.value() != vals[1]:
                    self.b.setValue(vals[1])
            self.fix.setChecked(fixed is not None)
            if fixed is not None and self.value.value() != fixed:
                self.value.setValue(fixed)
        self._sync_enabled()


class NodePropertyPanel(QWidget):
    """Properties of the selected node: kind, ν, ARD, features, priors and fixed values."""

    edited = Signal(str, object)  # key, {attr: value}
    features_edited = Signal(str, object)  # key, tuple of names

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._key: str | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        self.header = QLabel("<i>Select a node to edit it.</i>")
        self.header.setWordWrap(True)
        outer.addWidget(self.header)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c0392b;")
        self.error.hide()
        outer.addWidget(self.error)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.kind = QComboBox()
        self.ard = QCheckBox("one lengthscale per feature (ARD)")
        form.addRow("kind", self.kind)
        form.addRow("", self.ard)
        outer.addLayout(form)
        self.features_label = QLabel("features (tick, or drop chips on the node)")
        self.features = QListWidget()
        self.features.setMaximumHeight(110)
        outer.addWidget(self.features_label)
        outer.addWidget(self.features)
        self.rows: dict[str, _ParamRow] = {}
        for p in ("lengthscale", "alpha", "period", "variance", "outputscale"):
            row = _ParamRow(p)
            row.changed.connect(self._param_changed)
            self.rows[p] = row
            outer.addWidget(row)
        self.children_label = QLabel()
        self.children_label.setWordWrap(True)
        outer.addWidget(self.children_label)
        outer.addStretch(1)
        self.kind.currentTextChanged.connect(self._kind_changed)
        self.ard.toggled.connect(lambda on: self._edit(ard=bool(on)))
        self.features.itemChanged.connect(self._features_changed)
        self.show_node(None, None, None, [])

    @property
    def key(self) -> str | None:
        return self._key

    def show_node(self, node: EditorNode | None, error: str | None, features: list[str] | None, kids: Sequence[str]) -> None:
        self._key = node.key if node is not None else None
        widgets = [self.kind, self.ard, self.features_label, self.features, self.children_label, *self.rows.values()]
        if node is None:
            self.header.setText("<i>Select a node to edit its properties.</i>")
            self.error.hide()
            for w in widgets:
                w.hide()
            return
        self.header.setText(f"<b>{node.label}</b> — {DESCRIPTIONS.get(node.label, '')}<br><small>editor key {node.key}</small>")
        self.error.setVisible(bool(error))
        self.error.setText(f"⚠ {error}" if error else "")
        with Blocked(self.kind, self.ard, self.features):
            self.kind.clear()
            if node.is_leaf:
                self.kind.addItems(list(LEAF_KINDS))
            elif node.kind in ("sum", "product"):
                self.kind.addItems(["sum", "product"])
            else:
                self.kind.addItems(["scale"])
            self.kind.setCurrentText(node.label)
            self.kind.setEnabled(self.kind.count() > 1)
            self.ard.setChecked(node.ard)
            self.features.clear()
            names = list(features) if features is not None else []
            names += [f for f in node.features if f not in names]
            for name in names:
                item = QListWidgetItem(name)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if name in node.features else Qt.CheckState.Unchecked)
                item.setData(Qt.ItemDataRole.UserRole, name)
                if features is not None and name not in features:
                    item.setText(f"{name}  (unknown feature)")
                    item.setForeground(QBrush(QColor("#c0392b")))
                self.features.addItem(item)
        self.kind.show()
        for w in (self.ard, self.features_label, self.features):
            w.setVisible(node.is_leaf)
        self.children_label.setVisible(not node.is_leaf)
        if not node.is_leaf:
            self.children_label.setText(
                f"inputs ({len(kids)}): " + (", ".join(kids) if kids else "<i>none — wire kernels into the input port</i>")
            )
        for p, row in self.rows.items():
            row.setVisible(p in node.params)
            if p in node.params:
                row.set_values(node.prior(p), node.value(p))

    def _edit(self, **attrs: Any) -> None:
        if self._key is not None:
            self.edited.emit(self._key, attrs)

    def _kind_changed(self, text: str) -> None:
        if text:
            self._edit(kind=text)

    def _param_changed(self, param: str, prior: Any, fixed: Any) -> None:
        self._edit(**{f"{param}_prior": prior, param: fixed})

    def _features_changed(self, _item: QListWidgetItem) -> None:
        if self._key is None:
            return
        names = tuple(
            self.features.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.features.count())
            if self.features.item(i).checkState() == Qt.CheckState.Checked
        )
        self.features_edited.emit(self._key, names)


