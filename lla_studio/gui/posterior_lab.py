"""The posterior lab panel: pick a 2-D model, edit it, and compare grid, Laplace, Laplace mixture and VI.

`PosteriorLab` is self-contained (a main window docks it as one widget). Every edit is debounced and
sent to the lab process (`lla_studio.engine.posterior_worker.PosteriorController`); answers are
frozen numpy snapshots, newest request wins. The panel never imports torch.

Views (all pyqtgraph items are created once and updated with ``setData``/``setImage``):

* joint plot: grid density heatmap (with colour bar), grid highest-density contours holding 39.3 % and
  86.5 % of the mass (what a Gaussian's 1 and 2 sigma ellipses hold), Laplace 1/2 sigma ellipses at every
  mode of the Laplace mixture, VI 1/2 sigma curves (pushed through the support transform), optional
  samples of each approximation;
* marginal plots of both parameters (grid vs Laplace vs Laplace mixture vs VI), in a corner layout;
* a table of quantiles, parameter x level x method;
* the Jensen-Shannon divergence to the grid posterior against VI time (warm and cold start), with the
  Laplace and mixture values as reference lines.

Errors (bad box, expression syntax, NaN everywhere, a Hessian that is not negative definite, ...) are
shown in red in the status line; the previous plot stays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lla_studio.engine.posterior_worker import (
    HPD_MASSES,
    MODEL_LABELS,
    PANEL_MODELS,
    QUANTILE_METHODS,
    PosteriorController,
    PosteriorFailure,
    PosteriorSnapshot,
    default_spec_dict,
    model_fields,
)
from lla_studio.gui.lab_panel import LabPanelMixin
from lla_studio.gui.posterior_form import _Editor, _make_editor
from lla_studio.gui.plot_style import control_column, cosmetic_pen, style_axes

__all__ = ["PosteriorLab"]

# Colours: grid black, single Laplace orange, Laplace mixture red, VI purple (Okabe-Ito-like, print-safe).
GRID_COLOR = (20, 20, 20)
LAPLACE_COLOR = (230, 120, 0)
MIXTURE_COLOR = (200, 30, 40)
VI_COLOR = (150, 40, 170)
VI_COLD_COLOR = (60, 140, 60)
CONTOUR_COLOR = (255, 255, 255)
METHOD_LABELS = {"grid": "grid", "laplace": "Laplace", "mixture": "Laplace mixture", "vi": "VI (warm)"}
JSD_FLOOR = 1e-9  # log axis: divergences below this are drawn at the floor


def _density_colormap() -> pg.ColorMap:
    """White (zero density) to deep blue: overlays in orange/red/purple stay readable everywhere."""
    return pg.ColorMap(
        [0.0, 0.15, 0.45, 0.75, 1.0],
        [(255, 255, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)],
    )




def _fmt(x: float | None, scale: float = 1.0) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if abs(x) < 1e-9 * max(scale, 1e-300):
        x = 0.0  # round-off around a symmetric centre: show 0, not 1.3e-14
    return f"{x:.4g}"


# ---------------------------------------------------------------------------- field editors
class PosteriorLab(QWidget, LabPanelMixin):
    """Posterior lab panel: model + prior editor, overlay plot, marginals, quantile table, VI JSD traces.

    Args:
        parent: Parent widget.
        model: Initial model (one of ``PANEL_MODELS``).
        grid_n: Initial grid points per axis.
        starts: Initial multi-start count.
        debounce_ms: Quiet time after an edit before the request is sent.

    Signals:
        result_displayed(int): a snapshot of this request id is now on screen.
        error_displayed(str): an error message is now in the status line.
    """

    result_displayed = Signal(int)
    error_displayed = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        model: str = "bioassay",
        grid_n: int = 101,
        starts: int = 16,
        debounce_ms: int = 150,
    ) -> None:
        super().__init__(parent)
        if model not in PANEL_MODELS:  # before the controller takes hold of the lab process
            raise ValueError(f"unknown posterior model {model!r}; valid: {', '.join(PANEL_MODELS)}")
        self.setObjectName("PosteriorLab")
        self._editors: dict[str, _Editor] = {}
        self._edited: dict[str, dict[str, Any]] = {}  # model -> last spec dict edited in this panel
        self._model = model
        self._building = False
        self._snapshot: PosteriorSnapshot | None = None
        self._shown_id = 0
        self._error = ""
        self._last_box: tuple | None = None
        self._ellipse_count = 0
        self.controller = PosteriorController(self, debounce_ms=debounce_ms)
        self.controller.result_ready.connect(self._on_result)
        self.controller.failed.connect(self._on_failed)
        self.controller.busy_changed.connect(self._on_busy)
        self._build_controls(grid_n, starts)
        self._build_plots()
        self._assemble(self._controls_scroll, self._views, (370, 1100))

        self.model_combo.blockSignals(True)
        self.model_combo.setCurrentIndex(self.model_combo.findData(model))
        self.model_combo.blockSignals(False)
        self._rebuild_form()
        self._request()

    # ------------------------------------------------------------------------ construction
    def _build_controls(self, grid_n: int, starts: int) -> None:
        box = QWidget()
        col = QVBoxLayout(box)
        col.setContentsMargins(4, 4, 4, 4)

        model_group = QGroupBox("Model")
        model_layout = QVBoxLayout(model_group)
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("model_combo")
        for name in PANEL_MODELS:
            self.model_combo.addItem(MODEL_LABELS.get(name, name), name)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        model_layout.addWidget(self.model_combo)
        self._form_host = QWidget()
        self._form = QFormLayout(self._form_host)
        self._form.setContentsMargins(0, 4, 0, 0)
        self._form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        model_layout.addWidget(self._form_host)
        col.addWidget(model_group)

        settings = QGroupBox("Analysis")
        form = QFormLayout(settings)
        self.grid_spin = QSpinBox()
        self.grid_spin.setObjectName("grid_spin")
        self.grid_spin.setRange(16, 801)
        self.grid_spin.setSingleStep(10)
        self.grid_spin.setValue(int(grid_n))
        self.grid_spin.setToolTip("Grid points per axis of the reference grid posterior.")
        self.starts_spin = QSpinBox()
        self.starts_spin.setObjectName("starts_spin")
        self.starts_spin.setRange(1, 256)
        self.starts_spin.setValue(int(starts))
        self.starts_spin.setToolTip("Multi-start optimisations for the Laplace mixture.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("seed_spin")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Seeds the starts, VI and the displayed samples.")
        self.vi_check = QCheckBox("run VI (warm and cold start)")
        self.vi_check.setObjectName("vi_check")
        self.vi_steps_spin = QSpinBox()
        self.vi_steps_spin.setObjectName("vi_steps_spin")
        self.vi_steps_spin.setRange(10, 20_000)
        self.vi_steps_spin.setSingleStep(50)
        self.vi_steps_spin.setValue(400)
        self.samples_check = QCheckBox("show samples of the approximations")
        self.samples_check.setObjectName("samples_check")
        form.addRow("grid size", self.grid_spin)
        form.addRow("starts", self.starts_spin)
        form.addRow("seed", self.seed_spin)
        form.addRow(self.vi_check)
        form.addRow("VI steps", self.vi_steps_spin)
        form.addRow(self.samples_check)
        for w in (self.grid_spin, self.starts_spin, self.seed_spin, self.vi_steps_spin):
            w.valueChanged.connect(lambda _v: self._request())
        self.vi_check.toggled.connect(lambda _v: self._request())
        self.samples_check.toggled.connect(self._on_samples_toggled)
        col.addWidget(settings)

        self.status_label = QLabel()
        self.status_label.setObjectName("status_label")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setMinimumHeight(40)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("summary_label")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.status_label)
        col.addWidget(self.summary_label)
        col.addStretch(1)

        self._controls_scroll = control_column(box)

    def _build_plots(self) -> None:
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        self.plots.setMinimumHeight(360)
        glw = self.plots
        self.marginal_a_plot = glw.addPlot(row=0, col=0)
        self.joint_plot = glw.addPlot(row=1, col=0)
        self.marginal_b_plot = glw.addPlot(row=1, col=1)
        for plot in (self.marginal_a_plot, self.joint_plot, self.marginal_b_plot):
            style_axes(plot)
            plot.setMenuEnabled(False)
        self.marginal_a_plot.setXLink(self.joint_plot)
        self.marginal_b_plot.setYLink(self.joint_plot)
        self.marginal_a_plot.setLabel("left", "density")
        self.marginal_b_plot.setLabel("bottom", "density")
        self.marginal_b_plot.getAxis("bottom").setTickDensity(0.5)
        self.marginal_a_plot.getAxis("bottom").setStyle(showValues=False)
        self.marginal_b_plot.getAxis("left").setStyle(showValues=False)
        self.marginal_a_plot.setMouseEnabled(x=True, y=False)
        self.marginal_b_plot.setMouseEnabled(x=False, y=True)

        # joint: heatmap + contours + ellipses + VI curves + modes + samples (created once)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setZValue(-10)
        self.joint_plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=_density_colormap(), label="grid density", interactive=False, width=14
        )
        self.colorbar.setImageItem(self.image)
        style_axes(self.colorbar)
        glw.addItem(self.colorbar, row=1, col=2)
        self.contour_items = [
            pg.PlotDataItem(pen=cosmetic_pen(GRID_COLOR, 1.6), connect="finite"),
            pg.PlotDataItem(pen=cosmetic_pen(GRID_COLOR, 1.2, Qt.PenStyle.DotLine), connect="finite"),
        ]
        self.ellipse_items = [
            pg.PlotDataItem(pen=cosmetic_pen(LAPLACE_COLOR, 2.0), connect="finite"),
            pg.PlotDataItem(pen=cosmetic_pen(LAPLACE_COLOR, 1.6, Qt.PenStyle.DashLine), connect="finite"),
        ]
        self.vi_curve_items = [
            pg.PlotDataItem(pen=cosmetic_pen(VI_COLOR, 2.0), connect="finite"),
            pg.PlotDataItem(pen=cosmetic_pen(VI_COLOR, 1.6, Qt.PenStyle.DashLine), connect="finite"),
        ]
        for item in self.contour_items + self.ellipse_items + self.vi_curve_items:
            self.joint_plot.addItem(item)
        self.mode_item = pg.ScatterPlotItem(symbol="x", size=11, pen=cosmetic_pen(MIXTURE_COLOR, 2.0), brush=None)
        self.joint_plot.addItem(self.mode_item)
        self.sample_items: dict[str, pg.ScatterPlotItem] = {}
        for key, color in (("laplace", LAPLACE_COLOR), ("mixture", MIXTURE_COLOR), ("vi", VI_COLOR)):
            item = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(*color, 150))
            item.setVisible(False)
            item.setZValue(5)
            self.joint_plot.addItem(item)
            self.sample_items[key] = item
        self.joint_plot.disableAutoRange()

        # marginals (created once): grid, Laplace, Laplace mixture, VI
        styles = {
            "grid": cosmetic_pen(GRID_COLOR, 2.2),
            "laplace": cosmetic_pen(LAPLACE_COLOR, 2.0, Qt.PenStyle.DashLine),
            "mixture": cosmetic_pen(MIXTURE_COLOR, 1.6),
            "vi": cosmetic_pen(VI_COLOR, 1.8, Qt.PenStyle.DashDotLine),
        }
        self.marginal_items: dict[int, dict[str, pg.PlotDataItem]] = {0: {}, 1: {}}
        for i, plot in ((0, self.marginal_a_plot), (1, self.marginal_b_plot)):
            for key, pen in styles.items():
                item = pg.PlotDataItem(pen=pen)
                plot.addItem(item)
                self.marginal_items[i][key] = item
        self.marginal_a_plot.enableAutoRange(axis="y")
        self.marginal_b_plot.enableAutoRange(axis="x")

        # legend in the empty corner cell
        self.legend = pg.LegendItem(labelTextColor=(30, 30, 30), labelTextSize="8pt", verSpacing=-6)
        glw.addItem(self.legend, row=0, col=1, colspan=2)
        pct = [f"{100 * m:.0f}" for m in HPD_MASSES]
        self.legend.addItem(self.marginal_items[0]["grid"], "grid")
        self.legend.addItem(self.contour_items[0], f"grid HPD {pct[0]} %")
        self.legend.addItem(self.contour_items[1], f"grid HPD {pct[1]} %")
        self.legend.addItem(self.marginal_items[0]["laplace"], "Laplace (single)")
        self.legend.addItem(self.ellipse_items[0], "Laplace 1σ per mode")
        self.legend.addItem(self.ellipse_items[1], "Laplace 2σ per mode")
        self.legend.addItem(self.marginal_items[0]["mixture"], "Laplace mixture")
        self.legend.addItem(self.vi_curve_items[0], "VI 1σ / 2σ")

        ci = glw.ci.layout
        ci.setColumnStretchFactor(0, 5)
        ci.setColumnStretchFactor(1, 2)
        ci.setColumnStretchFactor(2, 0)
        ci.setRowStretchFactor(0, 2)
        ci.setRowStretchFactor(1, 5)

        # quantile table: rows (param, level), columns methods
        self.table = QTableWidget(10, len(QUANTILE_METHODS))
        self.table.setObjectName("quantile_table")
        self.table.setHorizontalHeaderLabels([METHOD_LABELS[m] for m in QUANTILE_METHODS])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setToolTip(
            "Marginal quantiles. Grid: reference. Laplace: normal quantiles at the single Laplace fit. "
            "Laplace mixture: exact mixture marginals. VI: push-forward of the warm VI fit tabulated on the grid."
        )
        for r in range(self.table.rowCount()):
            for c in range(self.table.columnCount()):
                item = QTableWidgetItem("—")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self._quantiles = np.full((2, 5, len(QUANTILE_METHODS)), np.nan)

        # JSD vs VI time
        self.jsd_widget = pg.PlotWidget(background="w")
        self.jsd_plot = self.jsd_widget.getPlotItem()
        style_axes(self.jsd_plot)
        self.jsd_plot.setTitle("Jensen-Shannon divergence to the grid", color=(30, 30, 30), size="9pt")
        self.jsd_plot.setLabel("bottom", "VI optimisation time (s)")
        self.jsd_plot.setLabel("left", "JSD (nats)")
        self.jsd_plot.setLogMode(x=False, y=True)
        self.jsd_plot.showGrid(x=True, y=True, alpha=0.25)
        self.jsd_legend = self.jsd_plot.addLegend(
            offset=(-5, 5), labelTextColor=(30, 30, 30), labelTextSize="8pt", brush=pg.mkBrush(255, 255, 255, 200)
        )
        self.jsd_items = {
            "warm": pg.PlotDataItem(
                pen=cosmetic_pen(VI_COLOR, 2.0), symbol="o", symbolSize=5, symbolBrush=VI_COLOR, symbolPen=None,
                name="VI warm start",
            ),
            "cold": pg.PlotDataItem(
                pen=cosmetic_pen(VI_COLD_COLOR, 2.0), symbol="t", symbolSize=5, symbolBrush=VI_COLD_COLOR, symbolPen=None,
                name="VI cold start",
            ),
            "laplace": pg.PlotDataItem(pen=cosmetic_pen(LAPLACE_COLOR, 1.6, Qt.PenStyle.DashLine), name="Laplace"),
            "mixture": pg.PlotDataItem(pen=cosmetic_pen(MIXTURE_COLOR, 1.6, Qt.PenStyle.DashLine), name="Laplace mixture"),
        }
        for item in self.jsd_items.values():
            self.jsd_plot.addItem(item)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.table)
        bottom.addWidget(self.jsd_widget)
        bottom.setSizes([520, 480])
        self._views = QSplitter(Qt.Orientation.Vertical)
        self._views.addWidget(self.plots)
        self._views.addWidget(bottom)
        self._views.setStretchFactor(0, 3)
        self._views.setStretchFactor(1, 2)
        self._views.setSizes([600, 300])

    # ------------------------------------------------------------------------ model editing
    def _on_model_changed(self, _index: int) -> None:
        name = self.model_combo.currentData()
        if name is None or (name == self._model and self._editors):
            return
        self._edited[self._model] = self._spec_dict()  # switching back restores these edits
        self._model = name
        self._rebuild_form()
        self._request()

    def _rebuild_form(self) -> None:
        self._building = True
        try:
            while self._form.rowCount():
                self._form.removeRow(0)
            self._editors = {}
            edited = self._edited.get(self._model, {})
            for info in model_fields(self._model):
                if info.name in edited:
                    value = edited[info.name]
                    value = tuple(value) if isinstance(value, list) else value
                    info = dataclasses.replace(
                        info, value=value, enabled_value=info.enabled_value if value is None else value
                    )
                editor = _make_editor(info, self._on_edit)
                self._editors[info.name] = editor
                label = QLabel(info.label)
                label.setToolTip(info.hint)
                if info.kind == "str":
                    self._form.addRow(label)
                    self._form.addRow(editor.widget)
                else:
                    self._form.addRow(label, editor.widget)
        finally:
            self._building = False

    def _on_edit(self) -> None:
        if not self._building:
            self._request()

    def _spec_dict(self) -> dict[str, Any]:
        spec = default_spec_dict(self._model)
        for name, editor in self._editors.items():
            spec[name] = editor.get()
        return spec

    def _settings(self) -> dict[str, Any]:
        return {
            "grid_n": int(self.grid_spin.value()),
            "starts": int(self.starts_spin.value()),
            "seed": int(self.seed_spin.value()),
            "vi": bool(self.vi_check.isChecked()),
            "vi_steps": int(self.vi_steps_spin.value()),
        }

    def _request(self) -> None:
        if self._building or not hasattr(self, "grid_spin"):
            return
        self.controller.schedule(self._spec_dict(), **self._settings())
        self._set_status("computing…")

    # ------------------------------------------------------------------------ results
    def _on_busy(self, busy: bool) -> None:
        if busy and not self._error:
            self._set_status(f"computing… (request #{self.controller.latest_request_id})")

    def _on_result(self, snap: PosteriorSnapshot) -> None:
        if snap.request_id != self.controller.latest_request_id or snap.request_id < self._shown_id:
            return  # stale: a newer request exists (the controller drops these already)
        self._snapshot = snap
        self._shown_id = snap.request_id
        self._show_overlay(snap)
        self._show_marginals(snap)
        self._show_quantiles(snap)
        self._show_jsd(snap)
        self._show_summary(snap)
        if snap.final:
            self._set_status(f"ready · request #{snap.request_id} · {snap.seconds:.2f} s")
        else:
            self._set_status(
                f"Laplace and grid ready ({snap.seconds:.2f} s); VI running… (request #{snap.request_id})"
            )
        self.result_displayed.emit(snap.request_id)

    def _on_failed(self, failure: PosteriorFailure) -> None:
        if failure.request_id != self.controller.latest_request_id:
            return
        if failure.stage in ("vi-warm", "vi"):
            text = f"VI failed: {failure.message}\n(the Laplace and grid results are shown)"
        else:
            text = f"Error: {failure.message}"
            if self._snapshot is not None:
                text += "\n(showing the previous result)"
        self._set_status(text, error=True)
        self.error_displayed.emit(failure.message)

    def _show_overlay(self, snap: PosteriorSnapshot) -> None:
        img = np.ascontiguousarray(np.nan_to_num(snap.density, nan=0.0, posinf=0.0, neginf=0.0), dtype=np.float32)
        top = float(img.max()) if img.size else 1.0
        top = top if top > 0 and math.isfinite(top) else 1.0
        self.image.setImage(img, autoLevels=False, levels=(0.0, top))
        (a0, b0), (a1, b1) = snap.box_low, snap.box_high
        self.image.setRect(QRectF(a0, b0, a1 - a0, b1 - b0))
        self.colorbar.setLevels((0.0, top))
        for item, path in zip(self.contour_items, snap.contours):
            item.setData(path[:, 0], path[:, 1], connect="finite")
        one, two = [], []
        for e1, e2 in snap.ellipses:
            one.append(e1)
            two.append(e2)
        self._ellipse_count = len(snap.ellipses)
        for item, curves in zip(self.ellipse_items, (one, two)):
            xy = _join(curves)
            item.setData(xy[:, 0], xy[:, 1], connect="finite")
        for k, item in enumerate(self.vi_curve_items):
            xy = snap.vi_curves[k] if snap.vi_curves is not None else np.zeros((0, 2))
            item.setData(xy[:, 0], xy[:, 1], connect="finite")
        self.mode_item.setData(pos=np.asarray(snap.modes, dtype=float))
        for key, item in self.sample_items.items():
            pts = snap.samples.get(key)
            item.setData(pos=np.zeros((0, 2)) if pts is None else np.asarray(pts, dtype=float))
        self._on_samples_toggled(self.samples_check.isChecked())
        names = snap.param_names
        self.joint_plot.setLabel("bottom", names[0])
        self.joint_plot.setLabel("left", names[1])
        self.marginal_b_plot.setLabel("left", "")
        box = (snap.box_low, snap.box_high)
        if box != self._last_box:
            self._last_box = box
            self.joint_plot.setXRange(a0, a1, padding=0)
            self.joint_plot.setYRange(b0, b1, padding=0)

    def _show_marginals(self, snap: PosteriorSnapshot) -> None:
        for i, name in enumerate(snap.param_names):
            curves = snap.marginals[name]
            x = np.asarray(curves["x"], dtype=float)
            for key, item in self.marginal_items[i].items():
                y = curves.get(key)
                if y is None:
                    item.setData([], [])
                elif i == 0:
                    item.setData(x, np.asarray(y, dtype=float))
                else:
                    item.setData(np.asarray(y, dtype=float), x)
        self.marginal_a_plot.enableAutoRange(axis="y")
        self.marginal_b_plot.enableAutoRange(axis="x")

    def _show_quantiles(self, snap: PosteriorSnapshot) -> None:
        q = np.asarray(snap.quantiles, dtype=float)
        self._quantiles = q.copy()
        labels = []
        scale = []
        for rows in q:
            finite = rows[np.isfinite(rows)]
            spread = float(finite.max() - finite.min()) if finite.size else 0.0
            scale.append(spread if spread > 0 else 1.0)
        for i, name in enumerate(snap.param_names):
            for j, level in enumerate(snap.quantile_levels):
                labels.append(f"{name}  {100 * level:g} %")
                for m in range(len(QUANTILE_METHODS)):
                    self.table.item(i * len(snap.quantile_levels) + j, m).setText(_fmt(q[i, j, m], scale[i]))
        self.table.setVerticalHeaderLabels(labels)

    def _show_jsd(self, snap: PosteriorSnapshot) -> None:
        t_max = 0.0
        for key in ("warm", "cold"):
            trace = snap.traces.get(key)
            item = self.jsd_items[key]
            if trace is None or trace.size == 0:
                item.setData([], [])
                continue
            t = np.asarray(trace[:, 0], dtype=float)
            y = np.clip(np.nan_to_num(trace[:, 1], nan=JSD_FLOOR), JSD_FLOOR, None)
            item.setData(t, y)
            t_max = max(t_max, float(t.max()))
        has_vi = t_max > 0
        self.jsd_plot.setTitle(
            "Jensen-Shannon divergence to the grid" + ("" if has_vi else " (tick 'run VI' for the VI traces)"),
            color=(30, 30, 30),
            size="9pt",
        )
        t_max = t_max if has_vi else 1.0
        for key in ("laplace", "mixture"):
            value = snap.jsd.get(key)
            item = self.jsd_items[key]
            if value is None or not math.isfinite(value):
                item.setData([], [])
            else:
                v = max(float(value), JSD_FLOOR)
                item.setData([0.0, t_max], [v, v])
        self.jsd_plot.enableAutoRange()

    def _show_summary(self, snap: PosteriorSnapshot) -> None:
        jsd = snap.jsd
        n_b, n_a = snap.grid_shape
        parts = [f"<b>{snap.model_name}</b> · {len(snap.ellipses)} mode(s) · grid {n_b}×{n_a}"]
        rows = []
        for key, label in (("laplace", "Laplace"), ("mixture", "mixture"), ("vi", "VI warm"), ("vi_cold", "VI cold")):
            v = jsd.get(key)
            if v is not None:
                rows.append(f"{label} {v:.3g}")
        parts.append("JSD to grid (nats): " + ", ".join(rows))
        ev = snap.log_evidence
        parts.append(
            "log evidence: grid {} · Laplace {} · mixture {}".format(
                _fmt(ev.get("grid", math.nan)), _fmt(ev.get("laplace", math.nan)), _fmt(ev.get("mixture", math.nan))
            )
        )
        if snap.laplace_mass_outside_support > 1e-4:
            parts.append(f"Laplace mass outside the support: {snap.laplace_mass_outside_support:.2%}")
        if snap.notes:
            more = f" (+{len(snap.notes) - 2} more)" if len(snap.notes) > 2 else ""
            parts.append("<span style='color:#8a6d00'>notes: " + "; ".join(snap.notes[:2]) + more + "</span>")
        self.summary_label.setText("<br>".join(parts))

    def _on_samples_toggled(self, on: bool) -> None:
        for key, item in self.sample_items.items():
            has = self._snapshot is not None and key in self._snapshot.samples
            item.setVisible(bool(on) and has)

    # ------------------------------------------------------------------------ public API
    def model_name(self) -> str:
        """The selected model (one of ``PANEL_MODELS``)."""
        return self._model

    def set_model(self, name: str) -> None:
        """Select a model through the combo box (same path as the user)."""
        index = self.model_combo.findData(name)
        if index < 0:
            raise ValueError(f"unknown posterior model {name!r}; valid: {', '.join(PANEL_MODELS)}")
        self.model_combo.setCurrentIndex(index)

    def parameter_names(self) -> tuple[str, ...]:
        """Editable spec fields of the current model."""
        return tuple(self._editors)

    def parameter(self, name: str) -> Any:
        """Current value of a spec field, as the widgets hold it."""
        return self._editor(name).get()

    def set_parameter(self, name: str, value: Any) -> None:
        """Edit a spec field through its widget (``None`` switches an optional prior/seed off)."""
        self._editor(name).set(value)

    def set_settings(self, **settings: Any) -> None:
        """Set analysis settings through their widgets: ``grid_n``, ``starts``, ``seed``, ``vi``,
        ``vi_steps``, ``show_samples``."""
        widgets = {
            "grid_n": self.grid_spin,
            "starts": self.starts_spin,
            "seed": self.seed_spin,
            "vi_steps": self.vi_steps_spin,
        }
        for key, value in settings.items():
            if key in widgets:
                widgets[key].setValue(int(value))
            elif key == "vi":
                self.vi_check.setChecked(bool(value))
            elif key == "show_samples":
                self.samples_check.setChecked(bool(value))
            else:
                raise ValueError(f"unknown setting {key!r}; valid: {', '.join([*widgets, 'vi', 'show_samples'])}")

    def _editor(self, name: str) -> _Editor:
        try:
            return self._editors[name]
        except KeyError:
            raise ValueError(
                f"model '{self._model}' has no parameter {name!r}; valid: {', '.join(self._editors)}"
            ) from None

    def snapshot(self) -> PosteriorSnapshot | None:
        """The snapshot on screen (frozen; ``None`` before the first result)."""
        return self._snapshot

    def overlay_image(self) -> np.ndarray | None:
        """A copy of the array in the heatmap (`n_b x n_a`, rows follow the 2nd parameter)."""
        img = self.image.image
        return None if img is None else np.array(img, copy=True)

    def ellipse_count(self) -> int:
        """Number of Laplace components drawn (each with a 1σ and a 2σ ellipse)."""
        return self._ellipse_count

    def ellipse_curves(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the (1σ, 2σ) ellipse paths drawn (`N x 2`, components separated by NaN rows)."""
        out = []
        for item in self.ellipse_items:
            x, y = item.xData, item.yData
            out.append(np.zeros((0, 2)) if x is None else np.stack([np.array(x), np.array(y)], -1))
        return out[0], out[1]

    def quantile_table(self) -> np.ndarray:
        """A copy of the quantiles shown: `2 x 5 x 4` ``[param, level, method]`` (methods: grid,
        Laplace, Laplace mixture, VI; NaN where not available)."""
        return self._quantiles.copy()

    def quantile_table_text(self) -> list[list[str]]:
        """The table cells as displayed (rows: param x level; columns: methods)."""
        rows, cols = self.table.rowCount(), self.table.columnCount()
        return [[self.table.item(r, c).text() for c in range(cols)] for r in range(rows)]

    def marginal_curves(self) -> dict[str, dict[str, np.ndarray]]:
        """``param -> {"x", "grid", "laplace", "mixture", "vi"}`` copies of the drawn marginals
        (a curve not drawn is absent)."""
        if self._snapshot is None:
            return {}
        out: dict[str, dict[str, np.ndarray]] = {}
        for i, name in enumerate(self._snapshot.param_names):
            curves: dict[str, np.ndarray] = {}
            for key, item in self.marginal_items[i].items():
                x, y = item.xData, item.yData
                if x is None or len(x) == 0:
                    continue
                axis, dens = (x, y) if i == 0 else (y, x)
                curves.setdefault("x", np.array(axis, dtype=float))
                curves[key] = np.array(dens, dtype=float)
            out[name] = curves
        return out

    def jsd_traces(self) -> dict[str, np.ndarray]:
        """``"warm" | "cold" -> T x 2`` (seconds, JSD) copies of the VI traces drawn."""
        out = {}
        for key in ("warm", "cold"):
            x, y = self.jsd_items[key].xData, self.jsd_items[key].yData
            if x is not None and len(x):
                out[key] = np.stack([np.array(x, dtype=float), np.array(y, dtype=float)], -1)
        return out


def _join(curves: list[np.ndarray]) -> np.ndarray:
    if not curves:
        return np.zeros((0, 2))
    gap = np.full((1, 2), np.nan)
    parts: list[np.ndarray] = []
    for c in curves:
        if parts:
            parts.append(gap)
        parts.append(np.asarray(c, dtype=float))
    return np.concatenate(parts, 0)
