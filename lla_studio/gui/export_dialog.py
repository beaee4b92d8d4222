"""The Export plots dialog: folder, format (PNG or SVG), size in pixels, DPI, one panel or all."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

__all__ = ["ExportPlotsDialog"]


class ExportPlotsDialog(QDialog):
    """Ask where and how to export; :meth:`options` are the arguments of ``MainWindow.export_plots``."""

    def __init__(self, panels: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export plots")
        form = QFormLayout(self)
        self.folder = QLineEdit(str(Path.cwd() / "plots"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("folder", row)
        self.format = QComboBox()
        self.format.addItems(["png", "svg"])
        form.addRow("format", self.format)
        self.panel = QComboBox()
        self.panel.addItem("all panels", None)
        for name in panels:
            self.panel.addItem(name.replace("_", " "), name)
        form.addRow("panels", self.panel)
        self.width_px = QSpinBox()
        self.width_px.setRange(200, 20000)
        self.width_px.setValue(1800)
        self.width_px.setSuffix(" px")
        form.addRow("width", self.width_px)
        self.dpi = QSpinBox()
        self.dpi.setRange(50, 1200)
        self.dpi.setValue(300)
        self.dpi.setSuffix(" dpi")
        form.addRow("resolution", self.dpi)
        self.inches = QLabel()
        form.addRow("prints at", self.inches)
        for box in (self.width_px, self.dpi):
            box.valueChanged.connect(self._update_inches)
        self._update_inches()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export plots to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _update_inches(self) -> None:
        inches = self.width_px.value() / self.dpi.value()
        self.inches.setText(f"{inches:.2f} in ({inches * 2.54:.1f} cm) wide")

    def options(self) -> dict[str, Any]:
        panel = self.panel.currentData()
        return {
            "folder": Path(self.folder.text()),
            "fmt": self.format.currentText(),
            "width": self.width_px.value(),
            "dpi": self.dpi.value(),
            "panels": None if panel is None else [panel],
        }
