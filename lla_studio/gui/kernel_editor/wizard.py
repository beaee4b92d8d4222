"""The hands-on kernel wizard: group features, get the write-up's weighted sum of products of sums."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import KernelGraph, format_kernel, hands_on_kernel
from lla_studio.gui.kernel_editor.common import Blocked, html_escape


class HandsOnWizard(QDialog):
    """Build a weighted sum of products of sums (:func:`hands_on_kernel`): features -> groups."""

    def __init__(self, features: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hands-on kernel: weighted sum of products of sums")
        self._features = list(features)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Put features that act together in one group. Each group becomes a scaled sum of 1-D Matérn "
            "kernels; the joint term multiplies all groups so they can interact."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        top = QHBoxLayout()
        top.addWidget(QLabel("groups"))
        self.n_groups = QSpinBox()
        self.n_groups.setRange(1, max(1, min(8, len(self._features))))
        self.n_groups.setValue(max(1, min(3, len(self._features))))
        top.addWidget(self.n_groups)
        self.joint = QCheckBox("joint term")
        self.joint.setChecked(True)
        top.addWidget(self.joint)
        top.addWidget(QLabel("ν"))
        self.nu = QComboBox()
        self.nu.addItems(["0.5", "1.5", "2.5"])
        self.nu.setCurrentText("2.5")
        top.addWidget(self.nu)
        top.addStretch(1)
        layout.addLayout(top)
        self.table = QTableWidget(len(self._features), 2)
        self.table.setHorizontalHeaderLabels(["feature", "group"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self._combos: list[QComboBox] = []
        for i, name in enumerate(self._features):
            self.table.setCellWidget(i, 0, QLabel(f"  {name}"))
            combo = QComboBox()
            self._combos.append(combo)
            self.table.setCellWidget(i, 1, combo)
            combo.currentIndexChanged.connect(self._update_preview)
        layout.addWidget(self.table)
        self.preview = QLabel()
        self.preview.setWordWrap(True)
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview.setStyleSheet("font-family: monospace;")
        layout.addWidget(self.preview)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.n_groups.valueChanged.connect(self._refill)
        self.joint.toggled.connect(self._update_preview)
        self.nu.currentIndexChanged.connect(self._update_preview)
        self._refill()
        for i in range(len(self._features)):
            self.set_group(self._features[i], min(i, self.n_groups.value() - 1))
        self.resize(520, 420)

    def _refill(self, *_: Any) -> None:
        n = self.n_groups.value()
        for combo in self._combos:
            old = combo.currentIndex()
            with Blocked(combo):
                combo.clear()
                combo.addItem("— (leave out)")
                combo.addItems([f"group {g + 1}" for g in range(n)])
                combo.setCurrentIndex(min(old, n) if old >= 0 else 1)
        self._update_preview()

    def set_group(self, feature: str, group: int | None) -> None:
        """Put ``feature`` into group ``group`` (0-based; ``None``: leave it out)."""
        i = self._features.index(feature)
        if group is not None and group >= self.n_groups.value():
            self.n_groups.setValue(group + 1)
        self._combos[i].setCurrentIndex(0 if group is None else group + 1)

    def groups(self) -> list[list[str]]:
        """Non-empty groups, in group order."""
        out: list[list[str]] = [[] for _ in range(self.n_groups.value())]
        for name, combo in zip(self._features, self._combos):
            idx = combo.currentIndex()
            if idx > 0:
                out[idx - 1].append(name)
        return [g for g in out if g]

    def graph(self) -> KernelGraph:
        """The hands-on kernel for the current choices.

        Raises:
            KernelGraphError: No feature in any group.
        """
        return hands_on_kernel(self.groups(), joint=self.joint.isChecked(), nu=float(self.nu.currentText()))

    def _update_preview(self, *_: Any) -> None:
        try:
            text = format_kernel(self.graph())
            self.preview.setText(html_escape(text))
            ok = True
        except KernelGraphError as err:
            self.preview.setText(f"<span style='color:#c0392b'>{html_escape(str(err))}</span>")
            ok = False
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)


