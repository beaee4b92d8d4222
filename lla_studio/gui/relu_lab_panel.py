"""The ReLU extrapolation lab: widen the search box and watch a ReLU network's LLA send BO to the edge.

`ReluLabPanel` is self-contained (a main window docks it as one widget). Every edit is debounced
(150 ms) and sent to the lab process (`lla_studio.engine.relu_lab_worker.ReluLabController`);
answers are frozen numpy results, newest request wins. The panel never imports torch and does no
numerical work: it only draws what the core computed.

Views (pyqtgraph items are created once and updated with ``setData``/``setImage``):

* 1-D: predictive mean ± 2σ of each model with the data region shaded, the true function and the
  data; the predictive σ on a log axis (ReLU: a straight rise, σ ∝ |x|; tanh and GP: flat); the
  acquisition of each model (rescaled to [0, 1]) with its maximizer marked;
* 2-D: per model, maps of the mean, log₁₀ σ and the acquisition, with the data region outlined
  and the maximizer starred;
* a table: where each maximizer landed (on the boundary / inside) and, on demand, the
  boundary-proposal rate of a short BO loop.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lla_studio.core.errors import ReluLabError
from lla_studio.core.relu_lab_types import (
    BOUNDARY_FRACTION,
    GP,
    MAX_BOX_SCALE,
    MODEL_LABELS,
    ZOOM_HALF_WIDTH,
    BoundaryRateResult,
    ReluLabResult,
    ReluLabSettings,
)
from lla_studio.engine.relu_lab_worker import (
    BoundaryRateAnswer,
    BoundaryRateProgress,
    ReluLabAnswer,
    ReluLabController,
    ReluLabFailure,
)
from lla_studio.gui.lab_panel import LabPanelMixin
from lla_studio.gui.relu_lab_plots import COLORS, _Curves1D, _fmt_x, _Maps2D, _title
from lla_studio.gui.plot_style import control_column, cosmetic_pen, style_axes

__all__ = ["CAPTION", "ReluLabPanel"]

NETWORK_CHOICES = ("relu", "tanh", "gelu", "softplus", "identity")
NONE = "none"
SLIDER_STEPS_PER_DECADE = 100
TRUTH_COLOR = (110, 110, 110)
REGION_BRUSH = (120, 120, 120, 38)
BOUNDARY_COLOR = "#b00020"
INSIDE_COLOR = "#1b7a3a"
FLAT_COLOR = "#8a6d00"
SLOTS = ("net_a", "net_b", GP)
_LANDING_HINTS = {
    "on the boundary": "The acquisition is strictly largest at the box edge: widen the box and the proposal moves with it.",
    "inside": "The acquisition has its maximum away from the box edges.",
    "inside (flat out to the edge)": (
        "The acquisition is flat (to 1e-9) from x* out to the box edge: a saturated network or a GP back at its\n"
        "prior has no preference for the edge. x* is the point of that plateau nearest the data."
    ),
}

CAPTION = (
    "<b>Why ReLU runs to the edge.</b> A ReLU network is piecewise linear: far from the data it is "
    "exactly linear in <i>x</i>, and so is its Jacobian with respect to the weights. The MAP mean "
    "therefore grows linearly and the LLA variance <i>J</i>&nbsp;Σ&nbsp;<i>J</i><sup>T</sup> "
    "quadratically with the distance to the data (σ ∝ |<i>x</i>|). EI and UCB grow without bound "
    "with σ, so in a wide enough box their maximizer sits on the box edge, and the wider the box, the "
    "surer. A tanh network saturates and a stationary GP reverts to its prior: their σ is bounded, "
    "their acquisition flattens out far away and never prefers the edge (it may still prefer a "
    "far plateau to the data when that plateau is uncertain enough). In 2-D a tanh unit stays "
    "linear along its own line <i>w</i>·<i>x</i> + <i>b</i> = 0, so along those rays the tanh "
    "LLA's σ grows too: look for the streaks in the 2-D maps."
)




class ReluLabPanel(QWidget, LabPanelMixin):
    """ReLU extrapolation lab: LLA mean ± 2σ and acquisition for ReLU vs tanh vs a GP on a widened box.

    Args:
        parent: Parent widget.
        box_scale: Initial box width factor (×1 … ×1000).
        debounce_ms: Quiet time after an edit before the request is sent.

    Signals:
        resultShown(object): a `ReluLabResult` is now on screen (also in :attr:`result`).
        rateShown(object): a `BoundaryRateResult` is now in the table (also in :attr:`rate_result`).
        errorShown(str): an error message is now in the status line.
    """

    resultShown = Signal(object)
    rateShown = Signal(object)
    errorShown = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, box_scale: float = 10.0, debounce_ms: int = 150) -> None:
        super().__init__(parent)
        self.setObjectName("ReluLabPanel")
        self._result: ReluLabResult | None = None
        self._rate: BoundaryRateResult | None = None
        self._rate_settings: ReluLabSettings | None = None
        self._error = ""
        self._shown_id = 0
        self._last_frame: tuple | None = None
        self.controller = ReluLabController(self, debounce_ms=debounce_ms)
        self.controller.result_ready.connect(self._on_result)
        self.controller.rate_ready.connect(self._on_rate)
        self.controller.rate_progress.connect(self._on_rate_progress)
        self.controller.failed.connect(self._on_failed)
        self.controller.busy_changed.connect(self._on_busy)
        self.controller.rate_busy_changed.connect(self._on_rate_busy)
        self._build_controls(box_scale)
        self._build_views()
        self._assemble(self._controls_scroll, self._views, (330, 1150))
        self._request()

    # ------------------------------------------------------------------------ construction
    def _build_controls(self, box_scale: float) -> None:
        box = QWidget()
        col = QVBoxLayout(box)
        col.setContentsMargins(4, 4, 4, 4)

        search = QGroupBox("Search box")
        sform = QVBoxLayout(search)
        row = QHBoxLayout()
        self.box_slider = QSlider(Qt.Orientation.Horizontal)
        self.box_slider.setObjectName("box_slider")
        self.box_slider.setRange(0, int(round(math.log10(MAX_BOX_SCALE) * SLIDER_STEPS_PER_DECADE)))
        self.box_slider.setPageStep(SLIDER_STEPS_PER_DECADE // 4)
        self.box_slider.setTickInterval(SLIDER_STEPS_PER_DECADE)
        self.box_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.box_slider.setToolTip("Width of the search box relative to the data region (log scale, ×1 … ×1000).")
        self.box_label = QLabel()
        self.box_label.setObjectName("box_label")
        self.box_label.setMinimumWidth(56)
        self.box_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.box_slider, 1)
        row.addWidget(self.box_label)
        sform.addLayout(row)
        self.box_text = QLabel()
        self.box_text.setStyleSheet("color: #555;")
        sform.addWidget(self.box_text)
        self.box_slider.setValue(self._slider_value(box_scale))
        self._update_box_label()
        self.box_slider.valueChanged.connect(self._on_slider)
        col.addWidget(search)

        models = QGroupBox("Models")
        mform = QFormLayout(models)
        self.net_a_combo = QComboBox()
        self.net_a_combo.setObjectName("net_a_combo")
        self.net_b_combo = QComboBox()
        self.net_b_combo.setObjectName("net_b_combo")
        for combo, default in ((self.net_a_combo, "relu"), (self.net_b_combo, "tanh")):
            for name in NETWORK_CHOICES:
                combo.addItem(MODEL_LABELS.get(name, name), name)
            combo.addItem("(none)", NONE)
            combo.setCurrentIndex(combo.findData(default))
            combo.currentIndexChanged.connect(lambda _i: self._request())
        self.gp_check = QCheckBox("GP baseline (Matérn-5/2)")
        self.gp_check.setObjectName("gp_check")
        self.gp_check.setChecked(True)
        self.gp_check.toggled.connect(lambda _v: self._request())
        self.width_spin = QSpinBox()
        self.width_spin.setObjectName("width_spin")
        self.width_spin.setRange(2, 512)
        self.width_spin.setValue(50)
        self.depth_spin = QSpinBox()
        self.depth_spin.setObjectName("depth_spin")
        self.depth_spin.setRange(1, 6)
        self.depth_spin.setValue(2)
        self.tune_check = QCheckBox("tune δ on the evidence")
        self.tune_check.setObjectName("tune_check")
        self.tune_check.setChecked(True)
        self.delta_spin = QDoubleSpinBox()
        self.delta_spin.setObjectName("delta_spin")
        self.delta_spin.setDecimals(4)
        self.delta_spin.setRange(1e-4, 1e4)
        self.delta_spin.setValue(1.0)
        self.delta_spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.delta_spin.setEnabled(False)
        self.delta_spin.setToolTip("Prior precision δ of the weights (standardized targets).")
        self.tune_check.toggled.connect(self._on_tune_toggled)
        for w in (self.width_spin, self.depth_spin):
            w.valueChanged.connect(lambda _v: self._request())
        self.delta_spin.valueChanged.connect(lambda _v: self._request())
        mform.addRow("network A", self.net_a_combo)
        mform.addRow("network B", self.net_b_combo)
        mform.addRow(self.gp_check)
        mform.addRow("width", self.width_spin)
        mform.addRow("depth", self.depth_spin)
        mform.addRow(self.tune_check)
        mform.addRow("δ (fixed)", self.delta_spin)
        col.addWidget(models)

        problem = QGroupBox("Problem and acquisition")
        pform = QFormLayout(problem)
        self.dim_combo = QComboBox()
        self.dim_combo.setObjectName("dim_combo")
        self.dim_combo.addItem("1-D", 1)
        self.dim_combo.addItem("2-D", 2)
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("seed_spin")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Seeds the data, the network initializations and the optimizer.")
        self.acq_combo = QComboBox()
        self.acq_combo.setObjectName("acq_combo")
        self.acq_combo.addItem("LogEI", "logei")
        self.acq_combo.addItem("UCB", "ucb")
        self.beta_spin = QDoubleSpinBox()
        self.beta_spin.setObjectName("beta_spin")
        self.beta_spin.setRange(0.01, 100.0)
        self.beta_spin.setValue(2.0)
        self.beta_spin.setEnabled(False)
        self.beta_spin.setToolTip("UCB = mean + sqrt(β) σ")
        self.frame_combo = QComboBox()
        self.frame_combo.setObjectName("frame_combo")
        self.frame_combo.addItem("fixed (data box standardized)", "fixed")
        self.frame_combo.addItem("widened box → unit cube", "box")
        self.frame_combo.setToolTip(
            "What the models see. Fixed: inputs standardized by the ×1 box; the widened box reaches\n"
            "further out (an unbounded search space). Box: the widened box mapped to the unit cube,\n"
            "as BoTorch's Normalize would; at ×100 the data then fill a 1 % sliver and the fits collapse\n"
            "(the networks to a constant, the GP to 'all noise'): a different failure that hides this one."
        )
        self.dim_combo.currentIndexChanged.connect(lambda _i: self._request())
        self.seed_spin.valueChanged.connect(lambda _v: self._request())
        self.acq_combo.currentIndexChanged.connect(self._on_acq_changed)
        self.beta_spin.valueChanged.connect(lambda _v: self._request())
        self.frame_combo.currentIndexChanged.connect(lambda _i: self._request())
        pform.addRow("dimension", self.dim_combo)
        pform.addRow("seed", self.seed_spin)
        pform.addRow("acquisition", self.acq_combo)
        pform.addRow("β (UCB)", self.beta_spin)
        pform.addRow("input frame", self.frame_combo)
        col.addWidget(problem)

        self.status_label = QLabel()
        self.status_label.setObjectName("status_label")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setMinimumHeight(34)
        col.addWidget(self.status_label)
        self.caption = QLabel(CAPTION)
        self.caption.setObjectName("caption")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setStyleSheet(
            "QLabel { background: #f6f4ee; border: 1px solid #ddd6c4; border-radius: 4px; padding: 6px; color: #222; }"
        )
        col.addWidget(self.caption)
        col.addStretch(1)

        self._controls_scroll = control_column(box)

    def _build_views(self) -> None:
        # ---- 1-D: rows mean ± 2σ, σ (log), acquisition; columns the whole box and a zoom on the data
        self.plots_1d = pg.GraphicsLayoutWidget()
        self.plots_1d.setBackground("w")
        glw = self.plots_1d
        self.legend = pg.LegendItem(
            labelTextColor=(30, 30, 30), labelTextSize="9pt", colCount=5, horSpacing=18,
            brush=pg.mkBrush(255, 255, 255, 0), pen=None,
        )
        glw.addItem(self.legend, row=0, col=0, colspan=2)
        self.mean_plot = glw.addPlot(row=1, col=0)
        self.std_plot = glw.addPlot(row=2, col=0)
        self.acq_plot = glw.addPlot(row=3, col=0)
        self.zoom_mean_plot = glw.addPlot(row=1, col=1)
        self.zoom_std_plot = glw.addPlot(row=2, col=1)
        self.zoom_acq_plot = glw.addPlot(row=3, col=1)
        wide = (self.mean_plot, self.std_plot, self.acq_plot)
        zoom = (self.zoom_mean_plot, self.zoom_std_plot, self.zoom_acq_plot)
        for plot in wide + zoom:
            style_axes(plot, ("left", "bottom"))
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.15)
        for plots in (wide, zoom):
            plots[1].setXLink(plots[0])
            plots[2].setXLink(plots[0])
            plots[1].setLogMode(x=False, y=True)
            plots[2].setYRange(-0.03, 1.12, padding=0)
            plots[0].disableAutoRange()
            plots[2].disableAutoRange()
            plots[2].setLabel("bottom", "x")
        self.zoom_mean_plot.setYLink(self.mean_plot)  # same f scale; σ and acquisition zooms range themselves
        _title(self.mean_plot, "posterior mean ± 2σ on the whole box (data region shaded)")
        _title(self.std_plot, "predictive σ, log scale: ReLU grows ∝ |x|, tanh and GP level off")
        _title(self.acq_plot, "acquisition, rescaled to [0, 1] per model; ★ = maximizer")
        _title(self.zoom_mean_plot, "zoom on the data")
        self.mean_plot.setLabel("left", "f(x)")
        self.std_plot.setLabel("left", "σ(x)")
        self.acq_plot.setLabel("left", "relative")
        self.regions_1d = []
        self.edge_lines = []
        for plot in wide + zoom:
            region = pg.LinearRegionItem(values=(-1, 1), movable=False, brush=pg.mkBrush(*REGION_BRUSH))
            region.setZValue(-20)
            for line in region.lines:
                line.setPen(pg.mkPen(150, 150, 150, 120))
            plot.addItem(region)
            self.regions_1d.append(region)
        for plot in wide:
            for _ in range(2):
                line = pg.InfiniteLine(angle=90, movable=False, pen=cosmetic_pen((60, 60, 60), 1.4))
                plot.addItem(line)
                self.edge_lines.append(line)
        self.truth_items = [pg.PlotDataItem(pen=cosmetic_pen(TRUTH_COLOR, 1.6, Qt.PenStyle.DashLine)) for _ in range(2)]
        self.data_items = [
            pg.ScatterPlotItem(size=7, pen=pg.mkPen(255, 255, 255, width=1), brush=pg.mkBrush(20, 20, 20))
            for _ in range(2)
        ]
        for plot, truth, data in zip((self.mean_plot, self.zoom_mean_plot), self.truth_items, self.data_items):
            data.setZValue(30)
            plot.addItem(truth)
            plot.addItem(data)
        self.truth_item, self.data_item = self.truth_items[0], self.data_items[0]
        self.curves: dict[str, _Curves1D] = {s: _Curves1D([wide, zoom]) for s in SLOTS}
        self._legend_keys: tuple = ()
        ci = glw.ci.layout
        ci.setRowStretchFactor(0, 0)
        ci.setRowStretchFactor(1, 5)
        ci.setRowStretchFactor(2, 3)
        ci.setRowStretchFactor(3, 3)
        ci.setColumnStretchFactor(0, 3)
        ci.setColumnStretchFactor(1, 1)

        # ---- 2-D maps: rows = model slots, columns = mean, log10 σ, acquisition
        self.plots_2d = pg.GraphicsLayoutWidget()
        self.plots_2d.setBackground("w")
        self.maps: dict[str, _Maps2D] = {s: _Maps2D(self.plots_2d, r) for r, s in enumerate(SLOTS)}

        self.stack = QStackedWidget()
        self.stack.addWidget(self.plots_1d)
        self.stack.addWidget(self.plots_2d)
        self.stack.setMinimumHeight(380)

        # ---- table: where each maximizer landed, and the boundary-proposal rate
        bottom = QWidget()
        blay = QVBoxLayout(bottom)
        blay.setContentsMargins(0, 2, 0, 0)
        head = QHBoxLayout()
        title = QLabel("<b>Acquisition maximizer</b> (on the boundary: within "
                       f"{BOUNDARY_FRACTION:.0%} of the box width of an edge)")
        head.addWidget(title, 1)
        head.addWidget(QLabel("BO steps"))
        self.steps_spin = QSpinBox()
        self.steps_spin.setObjectName("steps_spin")
        self.steps_spin.setRange(1, 40)
        self.steps_spin.setValue(8)
        self.steps_spin.setToolTip("BO steps per model for the boundary-proposal rate.")
        head.addWidget(self.steps_spin)
        self.rate_button = QPushButton("Run BO steps")
        self.rate_button.setObjectName("rate_button")
        self.rate_button.setToolTip(
            "Run a short BO loop per model on this box (fit, maximize the acquisition, evaluate the\n"
            "true function, repeat) in the background and count proposals on the box boundary."
        )
        self.rate_button.clicked.connect(self.run_boundary_rate)
        head.addWidget(self.rate_button)
        self.rate_progress = QProgressBar()
        self.rate_progress.setObjectName("rate_progress")
        self.rate_progress.setMaximumWidth(140)
        self.rate_progress.setTextVisible(True)
        self.rate_progress.setVisible(False)
        head.addWidget(self.rate_progress)
        blay.addLayout(head)
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("maximizer_table")
        self.table.setHorizontalHeaderLabels(
            ["model", "maximizer x*", "where it landed", "σ at x*", "boundary-proposal rate (BO)"]
        )
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        blay.addWidget(self.table)

        self._views = QSplitter(Qt.Orientation.Vertical)
        self._views.addWidget(self.stack)
        self._views.addWidget(bottom)
        self._views.setStretchFactor(0, 5)
        self._views.setStretchFactor(1, 1)
        self._views.setSizes([760, 120])

    # ------------------------------------------------------------------------ settings
    @staticmethod
    def _slider_value(scale: float) -> int:
        scale = min(max(float(scale), 1.0), MAX_BOX_SCALE)
        return int(round(math.log10(scale) * SLIDER_STEPS_PER_DECADE))

    def box_scale(self) -> float:
        """The box width factor the slider shows (×1 … ×1000, 3 significant digits)."""
        raw = 10 ** (self.box_slider.value() / SLIDER_STEPS_PER_DECADE)
        return float(f"{raw:.3g}")

    def set_box_scale(self, scale: float) -> None:
        """Move the box slider (as a user would) to the position nearest ``scale``."""
        self.box_slider.setValue(self._slider_value(scale))

    def _update_box_label(self) -> None:
        s = self.box_scale()
        self.box_label.setText(f"×{s:g}")
        self.box_text.setText(f"box [−{s:g}, {s:g}]" + ("²" if self._dim() == 2 else "") + " · data in [−1, 1]")

    def _on_slider(self, _value: int) -> None:
        self._update_box_label()
        self._request()

    def _on_tune_toggled(self, on: bool) -> None:
        self.delta_spin.setEnabled(not on)
        self._request()

    def _on_acq_changed(self, _index: int) -> None:
        self.beta_spin.setEnabled(self.acq_combo.currentData() == "ucb")
        self._request()

    def _dim(self) -> int:
        return int(self.dim_combo.currentData()) if hasattr(self, "dim_combo") else 1

    def settings(self) -> ReluLabSettings:
        """The settings the widgets describe (raises `ReluLabError` for an invalid combination)."""
        acts = [c.currentData() for c in (self.net_a_combo, self.net_b_combo) if c.currentData() != NONE]
        return ReluLabSettings(
            dim=self._dim(),
            box_scale=self.box_scale(),
            activations=tuple(acts),
            include_gp=self.gp_check.isChecked(),
            width=int(self.width_spin.value()),
            depth=int(self.depth_spin.value()),
            prior_precision=None if self.tune_check.isChecked() else float(self.delta_spin.value()),
            seed=int(self.seed_spin.value()),
            acquisition=str(self.acq_combo.currentData()),
            beta=float(self.beta_spin.value()),
            frame=str(self.frame_combo.currentData()),
        )

    def _request(self) -> None:
        if not hasattr(self, "table"):
            return  # still building
        self._update_box_label()
        try:
            settings = self.settings()
        except ReluLabError as err:
            self.controller.cancel()
            self._set_status(f"Error: {err}", error=True)
            self.errorShown.emit(str(err))
            return
        self.controller.schedule(settings)
        self._set_status("computing…")
        self._mark_rate_stale(settings)

    # ------------------------------------------------------------------------ answers
    def _on_busy(self, busy: bool) -> None:
        if busy and not self._error:
            self._set_status(f"computing… (request #{self.controller.latest_request_id()})")

    def _on_result(self, answer: ReluLabAnswer) -> None:
        if answer.request_id != self.controller.latest_request_id() or answer.request_id < self._shown_id:
            return
        self._shown_id = answer.request_id
        result = answer.result
        self._result = result
        if result.settings.dim == 1:
            self.stack.setCurrentWidget(self.plots_1d)
            self._show_1d(result)
        else:
            self.stack.setCurrentWidget(self.plots_2d)
            self._show_2d(result)
        self._show_table(result)
        reused = f" · fits reused: {answer.fits_reused}" if answer.fits_reused else ""
        self._set_status(f"ready · request #{answer.request_id} · {answer.seconds:.2f} s{reused}")
        self.resultShown.emit(result)

    def _on_failed(self, failure: ReluLabFailure) -> None:
        if failure.kind == "rate":
            self.rate_progress.setVisible(False)
            text = f"BO loop failed: {failure.message}"
        else:
            text = f"Error: {failure.message}" + ("\n(showing the previous result)" if self._result is not None else "")
        self._set_status(text, error=True)
        self.errorShown.emit(failure.message)

    def _slot_of(self, result: ReluLabResult, key: str) -> str:
        if key == GP:
            return GP
        return SLOTS[result.settings.activations.index(key)]

    def _show_1d(self, result: ReluLabResult) -> None:
        x = np.asarray(result.grid, dtype=float)
        lo, hi = (float(v) for v in result.box[:, 0])
        used = set()
        for key, curves in result.models.items():
            slot = self._slot_of(result, key)
            used.add(slot)
            item = self.curves[slot]
            item.restyle(key)
            item.set_data(
                x,
                np.asarray(curves.mean, dtype=float),
                np.asarray(curves.std, dtype=float),
                np.asarray(curves.acquisition_relative, dtype=float),
                float(curves.maximizer[0]),
            )
            item.set_visible(True)
        for slot, item in self.curves.items():
            if slot not in used:
                item.set_visible(False)
        truth = np.asarray(result.truth, dtype=float)
        for item in self.truth_items:
            item.setData(x, truth)
        for item in self.data_items:
            item.setData(np.asarray(result.X[:, 0], dtype=float), np.asarray(result.y, dtype=float))
        r0, r1 = (float(v) for v in result.data_region[:, 0])
        for region in self.regions_1d:
            region.setRegion((r0, r1))
        for k, line in enumerate(self.edge_lines):
            line.setValue(lo if k % 2 == 0 else hi)
        frame = (lo, hi, float(result.y.min()), float(result.y.max()))
        if frame != self._last_frame:
            self._last_frame = frame
            self.mean_plot.setXRange(lo, hi, padding=0.02)
            z = min(ZOOM_HALF_WIDTH, hi)
            self.zoom_mean_plot.setXRange(-z, z, padding=0.02)
            span = max(frame[3] - frame[2], 1e-6)
            self.mean_plot.setYRange(frame[2] - 1.6 * span, frame[3] + 1.6 * span, padding=0)
        self.std_plot.enableAutoRange(axis="y")
        self.zoom_std_plot.enableAutoRange(axis="y")
        keys = tuple(result.models)
        if keys != self._legend_keys:
            self._legend_keys = keys
            self.legend.clear()
            for key in keys:
                self.legend.addItem(self.curves[self._slot_of(result, key)].mean, MODEL_LABELS.get(key, key) + " ± 2σ")
            self.legend.addItem(self.truth_item, "true function")
            self.legend.addItem(self.data_item, "data")

    def _show_2d(self, result: ReluLabResult) -> None:
        axis = np.asarray(result.grid, dtype=float)
        lo, hi = float(result.box[0, 0]), float(result.box[1, 0])
        r0, r1 = float(result.data_region[0, 0]), float(result.data_region[1, 0])
        square = np.array([[r0, r0], [r1, r0], [r1, r1], [r0, r1], [r0, r0]])
        step = (hi - lo) / (axis.size - 1) if axis.size > 1 else 1.0
        rect = QRectF(lo - step / 2, lo - step / 2, hi - lo + step, hi - lo + step)
        used = set()
        for key, curves in result.models.items():
            slot = self._slot_of(result, key)
            used.add(slot)
            maps = self.maps[slot]
            label = MODEL_LABELS.get(key, key)
            layers = (
                np.asarray(curves.mean, dtype=float),
                np.log10(np.clip(np.asarray(curves.std, dtype=float), 1e-12, None)),
                np.asarray(curves.acquisition_relative, dtype=float),
            )
            for c, (plot, img, layer) in enumerate(zip(maps.plots, maps.images, layers)):
                data = np.ascontiguousarray(np.nan_to_num(layer, nan=0.0, posinf=0.0, neginf=0.0), dtype=np.float32)
                top, bottom = float(data.max()), float(data.min())
                if c == 2:
                    bottom, top = 0.0, 1.0
                elif top <= bottom:
                    top = bottom + 1.0
                img.setImage(data, autoLevels=False, levels=(bottom, top))
                img.setRect(rect)
                span = "" if c == 2 else f"  [{bottom:.3g}, {top:.3g}]"
                _title(plot, f"{label}: {_Maps2D.COLUMNS[c]}{span}")
                maps.outlines[c].setData(square[:, 0], square[:, 1])
                maps.data[c].setData(pos=np.asarray(result.X, dtype=float))
                maps.stars[c].setData(pos=np.asarray(curves.maximizer, dtype=float)[None, :])
                plot.setXRange(lo, hi, padding=0.02)
                plot.setYRange(lo, hi, padding=0.02)
            maps.set_visible(True)
        for slot, maps in self.maps.items():
            if slot not in used:
                maps.set_visible(False)

    def _landing(self, curves: Any) -> tuple[str, str]:
        if curves.on_boundary:
            return "on the boundary", BOUNDARY_COLOR
        if curves.flat_to_edge:
            return "inside (flat out to the edge)", FLAT_COLOR
        return "inside", INSIDE_COLOR

    def _show_table(self, result: ReluLabResult) -> None:
        self.table.setRowCount(len(result.models))
        for r, (key, curves) in enumerate(result.models.items()):
            text, color = self._landing(curves)
            sigma = curves.std_at_maximizer
            cells = [
                MODEL_LABELS.get(key, key),
                _fmt_x(curves.maximizer),
                text,
                f"{sigma:.3g}" if math.isfinite(sigma) else "—",
                self._rate_text(key),
            ]
            for c, value in enumerate(cells):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                item.setText(value)
                item.setData(Qt.ItemDataRole.UserRole, key)
                if c == 0:
                    item.setForeground(pg.mkColor(*COLORS.get(key, (30, 30, 30))))
                    hp = ", ".join(f"{k} = {v:.3g}" for k, v in curves.hyperparameters.items())
                    item.setToolTip(f"fitted: {hp}")
                elif c == 2:
                    item.setForeground(pg.mkColor(color))
                    item.setToolTip(_LANDING_HINTS.get(text, ""))
                else:
                    item.setForeground(pg.mkColor(30, 30, 30))

    # ------------------------------------------------------------------------ boundary rate
    def run_boundary_rate(self) -> int | None:
        """Start the boundary-rate BO loop for the current settings in the background; returns its id."""
        try:
            settings = self.settings()
        except ReluLabError as err:
            self._set_status(f"Error: {err}", error=True)
            return None
        self._rate_settings = settings
        self._rate = None
        steps = int(self.steps_spin.value())
        self.rate_progress.setRange(0, steps * len(settings.models))
        self.rate_progress.setValue(0)
        self.rate_progress.setVisible(True)
        rid = self.controller.submit_rate(settings, steps)
        if self._result is not None:
            self._show_table(self._result)
        return rid

    def _on_rate_progress(self, progress: BoundaryRateProgress) -> None:
        self.rate_progress.setValue(progress.index * progress.steps + progress.step)
        self.rate_progress.setFormat(f"{MODEL_LABELS.get(progress.model, progress.model)} {progress.step}/{progress.steps}")

    def _on_rate_busy(self, busy: bool) -> None:
        self.rate_button.setText("Restart BO steps" if busy else "Run BO steps")
        if not busy:
            self.rate_progress.setVisible(False)

    def _on_rate(self, answer: BoundaryRateAnswer) -> None:
        if answer.request_id != self.controller.latest_request_id("rate"):
            return
        self._rate = answer.result
        self.rate_progress.setVisible(False)
        if self._result is not None:
            self._show_table(self._result)
        self.rateShown.emit(answer.result)

    def _mark_rate_stale(self, settings: ReluLabSettings) -> None:
        if self._rate_settings is not None and settings != self._rate_settings:
            if self.controller.rate_busy:
                self.controller.cancel_rate()
            self._rate_settings = None
            self._rate = None

    def _rate_text(self, key: str) -> str:
        if self._rate is not None and key in self._rate.rates:
            rate = self._rate.rates[key]
            n = int(np.sum(self._rate.on_boundary[key]))
            return f"{rate:.0%}  ({n} of {self._rate.steps} proposals on the boundary)"
        if self._rate_settings is not None and self.controller.rate_busy:
            return "running…"
        return "— (press Run BO steps)"

    # ------------------------------------------------------------------------ public API
    @property
    def result(self) -> ReluLabResult | None:
        """The result on screen (frozen; ``None`` before the first)."""
        return self._result

    @property
    def rate_result(self) -> BoundaryRateResult | None:
        """The boundary-rate result in the table (``None`` before one, or after an edit)."""
        return self._rate

    def curve_items(self, model: str) -> dict[str, Any]:
        """The 1-D plot items drawing ``model`` (``mean``, ``upper``, ``lower``, ``std``, ``acq``,
        ``marker``, ``line``), for tests and exports."""
        if self._result is None or model not in self._result.models:
            raise ValueError(f"no model {model!r} on screen")
        item = self.curves[self._slot_of(self._result, model)]
        return {
            "mean": item.mean, "upper": item.upper, "lower": item.lower, "std": item.std,
            "acq": item.acq, "marker": item.marker, "line": item.line_acq,
        }

    def map_images(self, model: str) -> list[np.ndarray]:
        """Copies of the 2-D maps drawn for ``model`` (mean, log10 σ, relative acquisition)."""
        if self._result is None or model not in self._result.models:
            raise ValueError(f"no model {model!r} on screen")
        maps = self.maps[self._slot_of(self._result, model)]
        return [np.array(img.image, copy=True) for img in maps.images]

    def table_text(self) -> list[list[str]]:
        """The maximizer table as displayed (rows: models)."""
        return [
            [self.table.item(r, c).text() for c in range(self.table.columnCount())]
            for r in range(self.table.rowCount())
        ]
