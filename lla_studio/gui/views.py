"""Live pyqtgraph views. Items are created once and updated in place with ``setData``/``setImage``."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

__all__ = ["ConvergenceView", "HyperparameterView", "LOOView", "MapsView", "SliceView"]

pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")

AXIS_WIDTH = 56  # px
# log EI is shown down to this many nats below its maximum (EI below e^-12 of the best is "nothing"):
# next to an observation it drops to -600, and a full-range colour scale would paint everything else
# the same colour.
LOG_ACQ_SPAN = 12.0


def acquisition_range(values: np.ndarray, log: bool = True) -> tuple[float, float] | None:
    """``(lo, hi)`` of the finite acquisition values; on a log scale ``lo`` is floored at
    ``hi - LOG_ACQ_SPAN``."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if not len(a):
        return None
    hi = float(a.max())
    lo = max(float(a.min()), hi - LOG_ACQ_SPAN) if log else float(a.min())
    return lo, (hi if hi > lo else lo + (1.0 if log else max(abs(lo) * 1e-6, 1e-12)))


def fixed_axis_width(plot: Any, width: int = AXIS_WIDTH) -> None:
    """Give a plot's left axis a fixed width: otherwise every change of the tick labels' width
    re-lays out the plot and repaints it twice (a measurable stall during a run)."""
    item = plot.getPlotItem() if hasattr(plot, "getPlotItem") else plot
    item.getAxis("left").setWidth(width)


def to_axis(u: Any, axis: np.ndarray) -> np.ndarray:
    """Unit-cube coordinates -> axis units (the axis is monotone in u on [0, 1]: interpolate)."""
    return np.interp(np.asarray(u, dtype=float), np.linspace(0, 1, len(axis)), axis)


def choice_ticks(space: Any, name: str) -> list[list[tuple[float, str]]] | None:
    """Tick labels of a choice parameter's axis (its values sit at 0, 1, ..., k-1), else None."""
    if space is None or name not in space:
        return None
    p = space[name]
    choices = getattr(p, "choices", None)
    if choices is None:
        return None
    return [[(float(i), str(c)) for i, c in enumerate(choices)]]


def inactive_note(space: Any, names: tuple[str, ...], base_u: np.ndarray) -> str:
    """Why a slice/map through ``base_u`` is meaningless: a swept parameter is inactive there."""
    if space is None or not len(base_u) or not space.is_conditional:
        return ""
    config = space.decode(base_u)
    for name in names:
        if not space.is_active(name, config):
            needs = " and ".join(c.describe() for c in space[name].conditions)
            return f"{name} is inactive at these values (active when {needs})"
    return ""


class IntegerAxis(pg.AxisItem):
    """An axis of counts (trials, training points): never a tick between two integers."""

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:  # noqa: N802 - pyqtgraph API
        levels = [(spacing, offset) for spacing, offset in super().tickSpacing(minVal, maxVal, size) if spacing >= 1.0]
        return levels or [(1.0, 0.0)]


class ConvergenceView(pg.PlotWidget):
    """Value per trial and best-so-far; failed trials marked on the axis, model proposals on the
    box boundary ringed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"bottom": IntegerAxis("bottom")})
        self.setLabel("bottom", "trial")
        self.setLabel("left", "value")
        fixed_axis_width(self)
        # the key sits in the title row: a legend inside the plot hid points (the design's high values)
        self.setTitle(
            '<span style="color:#5082c8">&#9679; value</span>&nbsp;&nbsp;'
            '<span style="color:#dc5a28">&#8212; best</span>&nbsp;&nbsp;'
            '<span style="color:#c80000">&#10005; failed</span>&nbsp;&nbsp;'
            '<span style="color:#f59628">&#9711; on the boundary</span>',
            size="8pt",
        )
        self.values = pg.ScatterPlotItem(size=7, brush=pg.mkBrush(80, 130, 200, 200), name="value")
        self.best = pg.PlotDataItem(pen=pg.mkPen((220, 90, 40), width=2), stepMode=None, name="best so far")
        self.failed = pg.ScatterPlotItem(size=10, symbol="x", pen=pg.mkPen((200, 0, 0), width=2), name="failed")
        self.boundary = pg.ScatterPlotItem(
            size=14, symbol="o", brush=None, pen=pg.mkPen((245, 150, 40), width=2), name="on the boundary"
        )
        for item in (self.values, self.best, self.failed, self.boundary):
            self.addItem(item)
        self.best_curve = np.zeros(0)

    def reset(self) -> None:
        """Nothing drawn (another session)."""
        for item in (self.values, self.failed, self.boundary):
            item.setData([], [])
        self.best.setData([], [])
        self.best_curve = np.zeros(0)

    def update_trials(self, trials: tuple[dict[str, Any], ...], minimize: bool) -> None:
        done = [(i, t["value"]) for i, t in enumerate(t for t in trials if t["status"] in ("completed", "failed")) if t["value"] is not None]
        edge = [(i, t["value"]) for i, t in enumerate(t for t in trials if t["status"] in ("completed", "failed"))
                if t["value"] is not None and t["source"] == "model" and t.get("boundary")]
        self.boundary.setData([float(i) for i, _ in edge], [float(v) for _, v in edge])
        evaluated = [t for t in trials if t["status"] in ("completed", "failed")]
        xs = np.array([i for i, _ in done], dtype=float)
        ys = np.array([v for _, v in done], dtype=float)
        self.values.setData(xs, ys)
        if len(ys):
            acc = np.minimum.accumulate(ys) if minimize else np.maximum.accumulate(ys)
        else:
            acc = np.zeros(0)
        self.best_curve = acc
        self.best.setData(xs, acc)
        fx = np.array([i for i, t in enumerate(evaluated) if t["status"] == "failed"], dtype=float)
        y0 = float(np.nanmin(ys)) if len(ys) else 0.0
        self.failed.setData(fx, np.full(len(fx), y0))


class _FocusWheel:
    """Widgets the mouse wheel does not change unless they have the keyboard focus (a click gives
    it): wheeling over the fixed-values panel scrolls the panel. (A virtual override rather than
    an event filter: a Python event filter can be called while Qt tears widgets down.)"""

    def wheelEvent(self, event: Any) -> None:  # noqa: N802
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            event.ignore()


class _Slider(_FocusWheel, QSlider):
    pass


class _Combo(_FocusWheel, QComboBox):
    pass


class _ReflowingScroll(QScrollArea):
    """A scroll area that calls ``on_resize`` after it changed size (the slice view reflows the
    fixed-values columns to the width)."""

    def __init__(self, on_resize: Any) -> None:
        super().__init__()
        self._on_resize = on_resize

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._on_resize()


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)


class FixedValues(QWidget):
    """The other parameters of a slice: a slider with its value for numbers, a combo box for a
    choice, in two columns; default: the incumbent. Values are unit-cube coordinates."""

    changed = Signal()
    COLUMN_WIDTH = 280
    """Pixels one column of (label, editor, value) needs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = 2
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(2, 0, 2, 0)
        self.grid.setVerticalSpacing(2)
        self.follow = QCheckBox("at the incumbent")
        self.follow.setChecked(True)
        self.follow.toggled.connect(self._toggled)
        self.grid.addWidget(self.follow, 0, 0, 1, 3 * self.columns)
        self.sliders: dict[str, QSlider] = {}
        self.combos: dict[str, QComboBox] = {}
        self.labels: dict[str, QLabel] = {}
        self.value_labels: dict[str, QLabel] = {}
        self._params: dict[str, Any] = {}
        self._rows: dict[str, list[QWidget]] = {}

    def set_parameters(self, names: list[str], space: Any = None) -> None:
        """One editor per parameter (with the search space: combo boxes for choices and values
        in the parameters' own units next to the sliders)."""
        for widgets in self._rows.values():
            for w in widgets:
                self.grid.removeWidget(w)
                w.deleteLater()
        self.sliders, self.combos, self.labels, self.value_labels, self._rows = {}, {}, {}, {}, {}
        self._params = {n: space[n] for n in names} if space is not None else {}
        for name in names:
            label = QLabel(name)
            label.setToolTip(name)
            param = self._params.get(name)
            if param is not None and param.kind == "choice":
                combo = _Combo()
                editor: QWidget = combo
                for choice in param.choices:
                    combo.addItem(_fmt_value(choice))
                combo.currentIndexChanged.connect(lambda _i: self.changed.emit())
                self.combos[name] = combo
                value = QLabel("")
            else:
                slider = _Slider(Qt.Orientation.Horizontal)
                editor = slider
                slider.setRange(0, 1000)
                slider.setValue(500)
                slider.valueChanged.connect(lambda _v, n=name: self._moved(n))
                self.sliders[name] = slider
                value = QLabel("")
                value.setMinimumWidth(68)
            editor.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            editor.setEnabled(not self.follow.isChecked())
            self.labels[name], self.value_labels[name] = label, value
            self._rows[name] = [label, editor, value]
            self._show_value(name)
        self._place()

    def set_columns(self, columns: int) -> None:
        """Lay the parameters out in ``columns`` columns (the slice view picks it from its width)."""
        columns = max(1, int(columns))
        if columns != self.columns:
            self.columns = columns
            self._place()

    def _place(self) -> None:
        for w in (w for row in self._rows.values() for w in row):
            self.grid.removeWidget(w)
        self.grid.removeWidget(self.follow)
        self.grid.addWidget(self.follow, 0, 0, 1, 3 * self.columns)
        for i, widgets in enumerate(self._rows.values()):
            row, col = 1 + i // self.columns, 3 * (i % self.columns)
            for k, w in enumerate(widgets):
                self.grid.addWidget(w, row, col + k)

    def rows_for(self, count: int) -> int:
        """Grid rows that ``count`` parameters take in the current columns."""
        return -(-count // self.columns)

    @property
    def names(self) -> list[str]:
        """The parameters, in the space's order."""
        return list(self._rows)

    def editor(self, name: str) -> QWidget:
        return self.combos.get(name) or self.sliders[name]

    def set_row_visible(self, name: str, visible: bool) -> None:
        for w in self._rows.get(name, ()):
            w.setVisible(visible)

    def is_row_visible(self, name: str) -> bool:
        return not self.editor(name).isHidden()

    def _moved(self, name: str) -> None:
        self._show_value(name)
        self.changed.emit()

    def _show_value(self, name: str) -> None:
        param = self._params.get(name)
        if param is not None and name in self.sliders:
            self.value_labels[name].setText(_fmt_value(param.from_unit(self.unit(name))))

    def _toggled(self, follow: bool) -> None:
        for name in self._rows:
            self.editor(name).setEnabled(not follow)
        self.changed.emit()

    def unit(self, name: str) -> float:
        """The unit-cube coordinate an editor shows."""
        if name in self.combos:
            combo = self.combos[name]
            k = combo.count()
            return 0.0 if k <= 1 else combo.currentIndex() / (k - 1)
        return self.sliders[name].value() / 1000.0

    def set_unit(self, name: str, u: float) -> None:
        """Move one editor (e.g. to the incumbent) without emitting."""
        u = min(max(float(u), 0.0), 1.0)
        if name in self.combos:
            combo = self.combos[name]
            combo.blockSignals(True)
            combo.setCurrentIndex(int(round(u * max(combo.count() - 1, 0))))
            combo.blockSignals(False)
            return
        slider = self.sliders[name]
        slider.blockSignals(True)
        slider.setValue(int(round(1000 * u)))
        slider.blockSignals(False)
        self._show_value(name)

    def values(self) -> dict[str, float]:
        """Unit-cube values of the parameters the user fixed ({} while following the incumbent)."""
        if self.follow.isChecked():
            return {}
        return {name: self.unit(name) for name in self._rows}


class SliceView(QWidget):
    """Surrogate mean ± 2σ along one parameter, observations by distance, and the acquisition."""

    param_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("parameter"))
        self.combo = QComboBox()
        self.combo.currentTextChanged.connect(self.param_changed)
        row.addWidget(self.combo, 1)
        layout.addLayout(row)
        self.fixed = FixedValues()
        self.fixed.changed.connect(lambda: self.param_changed.emit(self.combo.currentText()))
        # many parameters (64 pixels, a 19-parameter CNN space): the sliders scroll, the plots keep their room
        self.fixed_scroll = _ReflowingScroll(lambda: self._fit_fixed_area())  # reflow the columns to its width
        self.fixed_scroll.setWidget(self.fixed)
        self.fixed_scroll.setWidgetResizable(True)
        self.fixed_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.fixed_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._fit_fixed_area()
        layout.addWidget(self.fixed_scroll)
        self.plot = pg.PlotWidget()
        self.acq_plot = pg.PlotWidget()
        self.acq_plot.setMaximumHeight(160)
        self.acq_plot.setXLink(self.plot)
        self.plot.setLabel("left", "surrogate")
        self.acq_plot.setLabel("left", "log EI")
        fixed_axis_width(self.plot)
        fixed_axis_width(self.acq_plot)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.acq_plot, 1)
        self.mean = pg.PlotDataItem(pen=pg.mkPen((30, 90, 180), width=2))
        self.upper = pg.PlotDataItem(pen=pg.mkPen((30, 90, 180, 80)))
        self.lower = pg.PlotDataItem(pen=pg.mkPen((30, 90, 180, 80)))
        self.band = pg.FillBetweenItem(self.upper, self.lower, brush=pg.mkBrush(30, 90, 180, 50))
        self.obs = pg.ScatterPlotItem(size=8)
        self.acq = pg.PlotDataItem(pen=pg.mkPen((40, 150, 60), width=2))
        self.argmax = pg.InfiniteLine(angle=90, pen=pg.mkPen((40, 150, 60), style=Qt.PenStyle.DashLine))
        for item in (self.band, self.upper, self.lower, self.mean, self.obs):
            self.plot.addItem(item)
        self.acq_plot.addItem(self.acq)
        self.acq_plot.addItem(self.argmax)
        self.note = pg.TextItem(color=(150, 30, 30), anchor=(0.5, 0.5))
        self.note.setVisible(False)
        self.plot.addItem(self.note)
        self.note_text = ""
        self._ticks: Any = None
        self.snapshot: Any = None
        # The ranges follow the data until the user pans or zooms (pyqtgraph's "A" button hands them
        # back). Set explicitly, not by pyqtgraph's auto-range: that re-lays out and paints each plot
        # twice per update (~15 ms instead of ~3 ms).
        self.follow_data = True
        for p in (self.plot, self.acq_plot):
            vb = p.getViewBox()
            vb.sigRangeChangedManually.connect(self._user_moved)
            vb.sigStateChanged.connect(self._auto_requested)

    def _user_moved(self, *_: Any) -> None:
        self.follow_data = False

    def _auto_requested(self, vb: Any) -> None:
        if all(vb.autoRangeEnabled()):
            self.follow_data = True

    @staticmethod
    def _needs(view: tuple[float, float], lo: float, hi: float) -> bool:
        """Whether a range must change to show [lo, hi]: data outside it, or using < 60 % of it
        (hysteresis: a range change regenerates the axes, most updates need none)."""
        v0, v1 = view
        return lo < v0 or hi > v1 or (hi - lo) < 0.6 * (v1 - v0)

    def _fit_ranges(
        self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, observed: np.ndarray, acq: np.ndarray, log_acq: bool = True
    ) -> None:
        ys = np.concatenate([lo, hi, observed])
        ys = ys[np.isfinite(ys)]
        if not len(x) or not len(ys):
            return
        (vx0, vx1), (vy0, vy1) = self.plot.viewRange()
        x0, x1 = float(x[0]), float(x[-1])
        y0, y1 = float(ys.min()), float(ys.max())
        y1 = y1 if y1 > y0 else y0 + 1.0
        pad = 0.04 * (x1 - x0)
        if abs(vx0 - (x0 - pad)) > 1e-9 * max(1.0, abs(x1 - x0)) or abs(vx1 - (x1 + pad)) > 1e-9 * max(1.0, abs(x1 - x0)):
            self.plot.setXRange(x0 - pad, x1 + pad, padding=0)
        if self._needs((vy0, vy1), y0, y1):
            pad = 0.06 * (y1 - y0)
            self.plot.setYRange(y0 - pad, y1 + pad, padding=0)
        span = acquisition_range(acq, log_acq)
        if span is not None:
            a0, a1 = span
            if self._needs(tuple(self.acq_plot.viewRange()[1]), a0, a1):
                pad = 0.08 * (a1 - a0)
                self.acq_plot.setYRange(a0 - pad, a1 + pad, padding=0)

    VISIBLE_PARAMETERS = 8
    """The fixed-values area shows at least this many parameters without scrolling."""

    def _fit_fixed_area(self) -> None:
        """As many columns as the width allows (1-3), and the height of 8 parameters' rows."""
        if not self.isVisible() and self.fixed_scroll.width() <= 0:
            return
        width = self.fixed_scroll.viewport().width()
        self.fixed.set_columns(max(1, min(3, width // FixedValues.COLUMN_WIDTH)))
        rows = self.fixed.rows_for(min(self.VISIBLE_PARAMETERS, max(len(self.fixed.names), 1)))
        row_height = max(self.fixed.follow.sizeHint().height(), 22) + self.fixed.grid.verticalSpacing()
        self.fixed_scroll.setFixedHeight((rows + 1) * row_height + 4)

    def reset(self) -> None:
        """Nothing drawn (another session or surrogate): curves, band, observations, notes."""
        for item in (self.mean, self.upper, self.lower, self.acq):
            item.setData([], [])
        self.obs.setData([], [])
        self.argmax.setVisible(False)
        self.note.setVisible(False)
        self.note_text = ""
        self.snapshot = None
        self.follow_data = True

    def set_parameters(self, names: list[str], space: Any = None) -> None:
        current = self.combo.currentText()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(names)
        if current in names:
            self.combo.setCurrentText(current)
        self.combo.blockSignals(False)
        self.fixed.set_parameters(names, space)
        self._fit_fixed_area()

    def update_surface(self, snap: Any, column: int, space: Any = None) -> None:
        """Draw a slice; with the search space, choice parameters get categorical ticks, sliders of
        parameters inactive at the slice's values are hidden, and a slice along a parameter that is
        inactive there is blanked with a note saying when it is active."""
        self.snapshot = snap
        if len(snap.incumbent_u) and not self.fixed.values():
            for j, name in enumerate(self.fixed.names):
                self.fixed.set_unit(name, float(snap.incumbent_u[j]))
        if space is not None and space.is_conditional and len(snap.incumbent_u):
            active = space.active_names(space.decode(snap.incumbent_u))
            for name in self.fixed.names:
                self.fixed.set_row_visible(name, name in active)
        self.note_text = inactive_note(space, snap.params, snap.incumbent_u)
        self.note.setText(self.note_text)
        self.note.setVisible(bool(self.note_text))
        x = snap.axes[0]
        if self.note_text:
            (x0, x1), (y0, y1) = self.plot.viewRange()
            self.note.setPos((x0 + x1) / 2, (y0 + y1) / 2)
            x = x[:0]
            snap = replace(snap, mean=snap.mean[:0], sd=snap.sd[:0], acquisition=snap.acquisition[:0], observed_y=snap.observed_y[:0])
        self.mean.setData(x, snap.mean)
        self.upper.setData(x, snap.mean + 2 * snap.sd)
        self.lower.setData(x, snap.mean - 2 * snap.sd)
        self.acq.setData(x, snap.acquisition)
        if len(x):
            self.argmax.setValue(float(x[int(np.argmax(snap.acquisition))]))
        ticks = choice_ticks(space, snap.params[0])
        if ticks != self._ticks:
            for plot in (self.plot, self.acq_plot):
                plot.getAxis("bottom").setTicks(ticks)
            self._ticks = ticks
        if self.plot.getAxis("bottom").labelText != snap.params[0]:  # a new label re-lays out the plot
            self.plot.setLabel("bottom", snap.params[0])
        label = snap.acquisition_label
        if self.acq_plot.getAxis("left").labelText != label:
            self.acq_plot.setLabel("left", label)
        if not len(snap.observed_y):
            self.obs.setData([], [])
        if len(snap.observed_y):
            scale = max(float(np.max(snap.distance)), 1e-9)
            alpha = (255 * (1 - 0.85 * snap.distance / scale)).astype(int)
            brushes = [pg.mkBrush(200, 60, 40, int(a)) for a in alpha]
            ox = to_axis(snap.observed_u[:, column], x)
            self.obs.setData(ox, snap.observed_y, brush=brushes, pen=None)
        if self.follow_data:
            self._fit_ranges(
                x, snap.mean - 2 * snap.sd, snap.mean + 2 * snap.sd, snap.observed_y, snap.acquisition,
                snap.log_acquisition,
            )


class MapsView(QWidget):
    """Side-by-side heatmaps of mean, sd and acquisition over two parameters."""

    params_changed = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.combo_a = QComboBox()
        self.combo_b = QComboBox()
        row.addWidget(QLabel("x"))
        row.addWidget(self.combo_a, 1)
        row.addWidget(QLabel("y"))
        row.addWidget(self.combo_b, 1)
        layout.addLayout(row)
        self.combo_a.currentTextChanged.connect(lambda _: self.params_changed.emit(self.combo_a.currentText(), self.combo_b.currentText()))
        self.combo_b.currentTextChanged.connect(lambda _: self.params_changed.emit(self.combo_a.currentText(), self.combo_b.currentText()))
        self.glw = pg.GraphicsLayoutWidget()
        layout.addWidget(self.glw, 1)
        self.images: dict[str, pg.ImageItem] = {}
        self.bars: dict[str, pg.ColorBarItem] = {}
        self.obs: dict[str, pg.ScatterPlotItem] = {}
        self.incumbent: dict[str, pg.ScatterPlotItem] = {}
        self.proposal: dict[str, pg.ScatterPlotItem] = {}
        self.plots: dict[str, pg.PlotItem] = {}
        self.notes: dict[str, pg.TextItem] = {}
        self.note_text = ""
        self._ticks: dict[str, Any] = {}
        self._titles: dict[str, str] = {"acquisition": "log EI"}
        for col, (key, title, cmap) in enumerate(
            (("mean", "mean", "viridis"), ("sd", "standard deviation", "magma"), ("acquisition", "log EI", "cividis"))
        ):
            plot = self.glw.addPlot(row=0, col=2 * col, title=title)
            fixed_axis_width(plot, 44)
            self.plots[key] = plot
            note = pg.TextItem(color=(150, 30, 30), anchor=(0.5, 0.5))
            note.setVisible(False)
            plot.addItem(note)
            self.notes[key] = note
            img = pg.ImageItem(axisOrder="row-major")
            plot.addItem(img)
            bar = pg.ColorBarItem(colorMap=pg.colormap.get(cmap), interactive=False, width=12)
            bar.setImageItem(img, insert_in=None)
            bar.getAxis("right").setWidth(46)  # new levels must not re-lay out the row of maps
            self.glw.addItem(bar, row=0, col=2 * col + 1)
            obs = pg.ScatterPlotItem(size=6, brush=pg.mkBrush(255, 255, 255, 200), pen=pg.mkPen("k"))
            inc = pg.ScatterPlotItem(size=14, symbol="star", brush=pg.mkBrush(255, 200, 0), pen=pg.mkPen("k"))
            prop = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen((255, 40, 40), width=3))
            for item in (obs, inc, prop):
                plot.addItem(item)
            self.images[key], self.bars[key] = img, bar
            self.obs[key], self.incumbent[key], self.proposal[key] = obs, inc, prop
        self.snapshot: Any = None

    def reset(self) -> None:
        """Nothing drawn (another session or surrogate): images and markers cleared."""
        for key in self.images:
            self.images[key].clear()
            for items in (self.obs, self.incumbent, self.proposal):
                items[key].setData([], [])
            self.notes[key].setVisible(False)
        self.note_text = ""
        self.snapshot = None

    def set_parameters(self, names: list[str]) -> None:
        for combo, default in ((self.combo_a, 0), (self.combo_b, 1)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.setCurrentIndex(min(default, len(names) - 1) if current not in names else names.index(current))
            combo.blockSignals(False)

    MAPS = ("mean", "sd", "acquisition")

    def update_surface(
        self, snap: Any, columns: tuple[int, int], proposal: np.ndarray | None, keys: tuple[str, ...] = MAPS, space: Any = None
    ) -> None:
        """Draw the maps ``keys`` of ``snap`` (the window draws one map per tick to keep repaints short).

        With the search space, choice parameters get categorical ticks, and a map over a parameter
        that is inactive at the other values is blanked with a note saying when it is active."""
        self.snapshot = snap
        xa, xb = snap.axes
        self.note_text = inactive_note(space, snap.params, snap.incumbent_u)
        for key in keys:
            ticks = (choice_ticks(space, snap.params[0]), choice_ticks(space, snap.params[1]))
            if self._ticks.get(key) != ticks:
                self.plots[key].getAxis("bottom").setTicks(ticks[0])
                self.plots[key].getAxis("left").setTicks(ticks[1])
                self._ticks[key] = ticks
            note = self.notes[key]
            note.setText(self.note_text)
            note.setVisible(bool(self.note_text))
            note.setPos(float(xa[0] + xa[-1]) / 2, float(xb[0] + xb[-1]) / 2)
            data = np.ascontiguousarray(getattr(snap, key), dtype=np.float32)
            data = np.nan_to_num(data)
            if self.note_text:
                data = np.zeros_like(data)
            lo, hi = float(data.min()), float(data.max())
            if key == "acquisition" and not self.note_text:
                lo, hi = acquisition_range(data, snap.log_acquisition) or (lo, hi)
                label = snap.acquisition_label
                if self._titles.get(key) != label:
                    self.plots[key].setTitle(label)
                    self._titles[key] = label
            if hi <= lo:
                hi = lo + 1e-9
            self.images[key].setImage(data, levels=(lo, hi))
            self.bars[key].setLevels((lo, hi))
            self.images[key].setRect(float(xa[0]), float(xb[0]), float(xa[-1] - xa[0]) or 1.0, float(xb[-1] - xb[0]) or 1.0)
            if len(snap.observed_y):
                ox = to_axis(snap.observed_u[:, columns[0]], xa)
                oy = to_axis(snap.observed_u[:, columns[1]], xb)
                self.obs[key].setData(ox, oy)
            if len(snap.incumbent_u):
                ix = to_axis([snap.incumbent_u[columns[0]]], xa)
                iy = to_axis([snap.incumbent_u[columns[1]]], xb)
                self.incumbent[key].setData(ix, iy)
            if proposal is not None:
                px = to_axis([proposal[columns[0]]], xa)
                py = to_axis([proposal[columns[1]]], xb)
                self.proposal[key].setData(px, py)


class HyperparameterView(pg.PlotWidget):
    """Lengthscales, output scales and noise per fit (log scale)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"bottom": IntegerAxis("bottom")})
        self.setLabel("bottom", "training points")
        self.setLabel("left", "value")
        self.setLabel("left", "log₁₀ value")  # log10 of the values on a linear axis: clean labels on a short plot
        self.legend = self.addLegend(offset=(-10, 10))
        self.curves: dict[str, pg.PlotDataItem] = {}

    def reset(self) -> None:
        """No curves and no legend entries (another session or surrogate: the GP's lengthscales
        and the LLA's prior precision never share the plot)."""
        for curve in self.curves.values():
            self.removeItem(curve)
        self.legend.clear()
        self.curves.clear()

    def update_timeline(self, timeline: tuple[tuple[int, dict[str, list[float]]], ...]) -> None:
        series: dict[str, tuple[list[float], list[float]]] = {}
        for n, hp in timeline:
            for name, values in hp.items():
                if name.endswith("constant"):
                    continue
                for j, v in enumerate(values):
                    key = name.replace("covar_module.", "").replace("likelihood.noise_covar.", "") + (f"[{j}]" if len(values) > 1 else "")
                    xs, ys = series.setdefault(key, ([], []))
                    xs.append(float(n))
                    ys.append(float(np.log10(max(float(v), 1e-12))))
        for i, (key, (xs, ys)) in enumerate(sorted(series.items())):
            if key not in self.curves:
                self.curves[key] = self.plot(pen=pg.mkPen(pg.intColor(i, hues=max(len(series), 3)), width=2), symbol="o", symbolSize=4, name=key)
            self.curves[key].setData(xs, ys)


class LOOView(QWidget):
    """Leave-one-out predicted vs observed with 95 % bars, and its scores."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.label = QLabel("no surrogate yet")
        # text of changing length must not change the dock's minimum size: that re-lays out and
        # repaints every dock of the window (hundreds of ms)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        layout.addWidget(self.label)
        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "observed")
        self.plot.setLabel("left", "LOO predicted")
        fixed_axis_width(self.plot)
        layout.addWidget(self.plot, 1)
        self.points = pg.ScatterPlotItem(size=7, brush=pg.mkBrush(80, 130, 200, 220))
        self.bars = pg.ErrorBarItem(pen=pg.mkPen((80, 130, 200, 160)))
        self.diagonal = pg.PlotDataItem(pen=pg.mkPen((120, 120, 120), style=Qt.PenStyle.DashLine))
        for item in (self.diagonal, self.bars, self.points):
            self.plot.addItem(item)
        self.data: Any = None

    def reset(self) -> None:
        """No data and no scores (another session or surrogate)."""
        self.points.setData([], [])
        self.bars.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
        self.diagonal.setData([], [])
        self.label.setText("no surrogate yet")
        self.data = None

    def update_loo(self, loo: Any) -> None:
        if loo is None:
            return
        self.data = loo
        self.points.setData(loo.observed, loo.mean)
        self.bars.setData(x=loo.observed, y=loo.mean, height=2 * 1.96 * loo.sd)
        lo = float(min(loo.observed.min(), loo.mean.min()))
        hi = float(max(loo.observed.max(), loo.mean.max()))
        self.diagonal.setData([lo, hi], [lo, hi])
        self.label.setText(f"MLPD {loo.mlpd:.3f}   RMSE {loo.rmse:.4g}   95% coverage {loo.coverage95:.0%}   (n = {len(loo.observed)})")
