"""Shared look of the lab panels (Posterior lab, ReLU lab): pens, axes, the scrolling control column."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QScrollArea, QWidget

__all__ = ["cosmetic_pen", "control_column", "style_axes"]


def cosmetic_pen(color: tuple[int, ...], width: float = 1.5, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> Any:
    """A pen whose width is in pixels whatever the zoom."""
    pen = pg.mkPen(color=color, width=width)
    pen.setStyle(style)
    pen.setCosmetic(True)
    return pen


def style_axes(plot: pg.PlotItem, names: tuple[str, ...] = ("left", "bottom", "right", "top")) -> None:
    """Grey axes with dark labels on a white plot, no SI prefixes."""
    for name in names:
        axis = plot.getAxis(name)
        axis.enableAutoSIPrefix(False)
        axis.setPen(pg.mkPen(90, 90, 90))
        axis.setTextPen(pg.mkPen(30, 30, 30))


def control_column(box: QWidget, min_width: int = 300) -> QScrollArea:
    """The panel's controls in a vertically scrolling column."""
    scroll = QScrollArea()
    scroll.setWidget(box)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setMinimumWidth(min_width)
    return scroll
