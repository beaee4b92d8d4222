"""The ReLU lab's plots: the 1-D curves (mean, bands, acquisition, proposals) and the 2-D maps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from lla_studio.core.relu_lab_types import GP
from lla_studio.gui.plot_style import cosmetic_pen, style_axes

__all__ = ["COLORS"]

# Okabe-Ito colours (colour-blind safe); the true function grey, data black.
COLORS: dict[str, tuple[int, int, int]] = {
    "relu": (213, 94, 0),
    "tanh": (0, 114, 178),
    GP: (0, 158, 115),
    "gelu": (204, 121, 167),
    "softplus": (230, 159, 0),
    "identity": (86, 180, 233),
}


def _title(plot: pg.PlotItem, text: str) -> None:
    plot.setTitle(text, color=(30, 30, 30), size="9pt")


def _fmt_x(x: np.ndarray) -> str:
    vals = ", ".join(f"{v:.3g}" if abs(v) >= 0.01 else f"{v:.2g}" for v in np.asarray(x, dtype=float))
    return f"({vals})" if len(x) > 1 else vals


def _sequential_colormap() -> pg.ColorMap:
    return pg.colormap.get("viridis")


class _Curves1D:
    """The pyqtgraph items of one model slot in the 1-D plots (created once).

    ``rows`` holds one ``(mean plot, σ plot, acquisition plot)`` triple per column (the whole
    box, and the zoom on the data); every column gets its own items.
    """

    def __init__(self, rows: list[tuple[pg.PlotItem, pg.PlotItem, pg.PlotItem]]) -> None:
        self.means, self.uppers, self.lowers, self.bands = [], [], [], []
        self.stds, self.acqs, self.markers, self.lines = [], [], [], []
        for mean_plot, std_plot, acq_plot in rows:
            mean, upper, lower = pg.PlotDataItem(), pg.PlotCurveItem(), pg.PlotCurveItem()
            band = pg.FillBetweenItem(upper, lower)
            band.setZValue(-5)
            mean.setZValue(5)
            std, acq = pg.PlotDataItem(), pg.PlotDataItem()
            marker = pg.ScatterPlotItem(symbol="star", size=16)
            marker.setZValue(20)
            line_mean = pg.InfiniteLine(angle=90, movable=False)
            line_acq = pg.InfiniteLine(angle=90, movable=False)
            for item in (band, upper, lower, mean, line_mean):
                mean_plot.addItem(item)
            std_plot.addItem(std)
            for item in (acq, line_acq, marker):
                acq_plot.addItem(item)
            self.means.append(mean)
            self.uppers.append(upper)
            self.lowers.append(lower)
            self.bands.append(band)
            self.stds.append(std)
            self.acqs.append(acq)
            self.markers.append(marker)
            self.lines += [line_mean, line_acq]
        self.mean, self.upper, self.lower = self.means[0], self.uppers[0], self.lowers[0]
        self.std, self.acq, self.marker, self.line_acq = self.stds[0], self.acqs[0], self.markers[0], self.lines[1]
        self.key: str | None = None
        self.set_visible(False)

    def _all(self) -> list[Any]:
        return [*self.means, *self.uppers, *self.lowers, *self.bands, *self.stds, *self.acqs,
                *self.markers, *self.lines]

    def restyle(self, key: str) -> None:
        if key == self.key:
            return
        self.key = key
        c = COLORS.get(key, (60, 60, 60))
        width = 2.4 if key == "relu" else 2.0
        edge = cosmetic_pen((*c, 150), 0.9)
        for mean, upper, lower, band, std, acq, marker in zip(
            self.means, self.uppers, self.lowers, self.bands, self.stds, self.acqs, self.markers
        ):
            mean.setPen(cosmetic_pen(c, width))
            upper.setPen(edge)
            lower.setPen(edge)
            band.setBrush(pg.mkBrush(*c, 28))
            std.setPen(cosmetic_pen(c, width))
            acq.setPen(cosmetic_pen(c, width))
            marker.setPen(pg.mkPen(30, 30, 30, width=1))
            marker.setBrush(pg.mkBrush(*c))
        for line in self.lines:
            line.setPen(cosmetic_pen(c, 1.3, Qt.PenStyle.DashLine))

    def set_data(self, x: np.ndarray, mean: np.ndarray, std: np.ndarray, rel: np.ndarray, x_star: float) -> None:
        rel_star = float(np.interp(x_star, x, rel))
        for k in range(len(self.means)):
            self.means[k].setData(x, mean)
            self.uppers[k].setData(x, mean + 2 * std)
            self.lowers[k].setData(x, mean - 2 * std)
            self.stds[k].setData(x, np.clip(std, 1e-12, None))
            self.acqs[k].setData(x, rel)
            self.markers[k].setData([x_star], [rel_star])
        for line in self.lines:
            line.setValue(x_star)

    def set_visible(self, on: bool) -> None:
        for item in self._all():
            item.setVisible(on)


class _Maps2D:
    """Mean, log10 σ and acquisition maps of one model slot (created once)."""

    COLUMNS = ("mean", "log₁₀ σ", "acquisition (relative)")

    def __init__(self, glw: pg.GraphicsLayoutWidget, row: int) -> None:
        self.plots: list[pg.PlotItem] = []
        self.images: list[pg.ImageItem] = []
        self.outlines: list[pg.PlotDataItem] = []
        self.data: list[pg.ScatterPlotItem] = []
        self.stars: list[pg.ScatterPlotItem] = []
        cmap = _sequential_colormap()
        for col in range(3):
            plot = glw.addPlot(row=row, col=col)
            style_axes(plot, ("left", "bottom"))
            plot.setMenuEnabled(False)
            plot.setAspectLocked(True)
            img = pg.ImageItem(axisOrder="row-major")
            img.setColorMap(cmap)
            img.setZValue(-10)
            plot.addItem(img)
            outline = pg.PlotDataItem(pen=cosmetic_pen((255, 255, 255), 1.4, Qt.PenStyle.DashLine))
            dots = pg.ScatterPlotItem(size=4, pen=pg.mkPen(255, 255, 255, 200), brush=pg.mkBrush(0, 0, 0))
            star = pg.ScatterPlotItem(symbol="star", size=18, pen=pg.mkPen(0, 0, 0, width=1.2), brush=pg.mkBrush(255, 60, 60))
            for item in (outline, dots, star):
                plot.addItem(item)
            self.plots.append(plot)
            self.images.append(img)
            self.outlines.append(outline)
            self.data.append(dots)
            self.stars.append(star)

    def set_visible(self, on: bool) -> None:
        for plot in self.plots:
            plot.setVisible(on)
