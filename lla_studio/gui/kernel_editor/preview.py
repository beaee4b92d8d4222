"""Prior samples of the kernel being edited (numpy arrays from the preview worker; no torch here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from lla_studio.core.kernels import KernelGraph
from lla_studio.engine.preview_worker import PriorPreviewController, PriorPreviewFailed, PriorPreviewResult
from lla_studio.gui.kernel_editor.common import Blocked, heading


_SAMPLE_COLORS = ("#4c9be8", "#e8774c", "#5cc46b", "#c45cc4", "#e8c44c", "#4ce8d9", "#e84c7a", "#9b8cf0")


class PriorPreviewPanel(QWidget):
    """GP prior samples of the current graph on a 1-D slice (curves) or a 2-D slice (heatmap).

    Features that are not sliced stay at 0.5 of the unit cube. Recomputed in the background
    (:class:`PriorPreviewController`: debounced, newest request wins).
    """

    def __init__(self, parent: QWidget | None = None, n_samples: int = 5) -> None:
        super().__init__(parent)
        self.n_samples = n_samples
        self.controller = PriorPreviewController(self)
        self.controller.sampled.connect(self._on_sampled)
        self.controller.failed.connect(self._on_failed)
        self.controller.busy_changed.connect(self._on_busy)
        self._graph: KernelGraph | None = None
        self._features: list[str] = []
        self._seed = 0
        self.last_result: PriorPreviewResult | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.mode = QComboBox()
        self.mode.addItems(["1-D", "2-D"])
        self.mode.setToolTip("1-D: curves along one feature; 2-D: heatmap of one sample over two")
        self.x = QComboBox()
        self.y = QComboBox()
        self.resample = QPushButton("Resample")
        self.resample.setToolTip("draw new samples (new seed)")
        top.addWidget(heading("Prior samples"))
        top.addStretch(1)
        top.addWidget(self.mode)
        top.addWidget(self.resample)
        layout.addLayout(top)
        axes = QHBoxLayout()
        axes.addWidget(QLabel("x"))
        axes.addWidget(self.x, 1)
        self.y_label = QLabel("y")
        axes.addWidget(self.y_label)
        axes.addWidget(self.y, 1)
        layout.addLayout(axes)

        self.stack = QStackedWidget()
        self.plot = pg.PlotWidget(background="#1f2125")
        self.plot.setMinimumHeight(140)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("left", "f(x)")
        self.plot.setXRange(0.0, 1.0, padding=0.02)
        self.curves = [
            self.plot.plot([], [], pen=pg.mkPen(_SAMPLE_COLORS[i % len(_SAMPLE_COLORS)], width=1.8))
            for i in range(n_samples)
        ]
        self.image_plot = pg.PlotWidget(background="#1f2125")
        self.image_plot.setMinimumHeight(140)
        self.image = pg.ImageItem(axisOrder="row-major")
        try:
            self.image.setColorMap(pg.colormap.get("CET-D1"))
        except (FileNotFoundError, KeyError, ValueError):  # pragma: no cover - colormap data missing
            self.image.setColorMap(pg.colormap.get("viridis"))
        self.image_plot.addItem(self.image)
        self.image_plot.setXRange(0, 1, padding=0)
        self.image_plot.setYRange(0, 1, padding=0)
        self.stack.addWidget(self.plot)
        self.stack.addWidget(self.image_plot)
        layout.addWidget(self.stack, 1)
        self.status = QLabel("")
        self.status.setStyleSheet("color: #888;")
        layout.addWidget(self.status)

        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.x.currentIndexChanged.connect(lambda _: self._request())
        self.y.currentIndexChanged.connect(lambda _: self._request())
        self.resample.clicked.connect(self._new_seed)
        self._mode_changed(0)

    # -- API ---------------------------------------------------------------------------------
    def set_features(self, names: Sequence[str]) -> None:
        names = list(names)
        if names == self._features:
            return
        self._features = names
        with Blocked(self.x, self.y):
            old_x, old_y = self.x.currentText(), self.y.currentText()
            for combo in (self.x, self.y):
                combo.clear()
                combo.addItems(names)
            if old_x in names:
                self.x.setCurrentText(old_x)
            if old_y in names and old_y != self.x.currentText():
                self.y.setCurrentText(old_y)
            elif len(names) > 1:
                self.y.setCurrentIndex(1 if self.x.currentIndex() == 0 else 0)
        self._request()

    def set_graph(self, graph: KernelGraph | None) -> None:
        self._graph = graph
        if graph is None:
            self.status.setText("graph incomplete — showing the last valid kernel")
            return
        used = graph.features_used()
        if self.x.currentText() not in used and used and self.x.findText(used[0]) >= 0:
            with Blocked(self.x):
                self.x.setCurrentText(used[0])
        self._request()

    def set_slice(self, x: str, y: str | None = None) -> None:
        """Slice along ``x`` (and ``y`` for a 2-D heatmap)."""
        with Blocked(self.mode, self.x, self.y):
            self.mode.setCurrentIndex(0 if y is None else 1)
            self.x.setCurrentText(x)
            if y is not None:
                self.y.setCurrentText(y)
        self._mode_changed(self.mode.currentIndex())

    def shutdown(self) -> None:
        self.controller.shutdown()

    # -- internals ---------------------------------------------------------------------------
    def _mode_changed(self, index: int) -> None:
        two_d = index == 1
        self.y.setVisible(two_d)
        self.y_label.setVisible(two_d)
        self.stack.setCurrentIndex(1 if two_d else 0)
        self._request()

    def _new_seed(self) -> None:
        self._seed += 1
        self._request()

    def _request(self) -> None:
        if self._graph is None or not self._features:
            return
        x = self.x.currentText()
        y = self.y.currentText() if self.mode.currentIndex() == 1 else None
        if not x or (y is not None and (not y or y == x)):
            self.status.setText("choose two different features for a 2-D slice")
            return
        missing = [f for f in self._graph.features_used() if f not in self._features]
        if missing:
            return
        self.controller.request(
            self._graph, self._features, x, y, n_samples=self.n_samples if y is None else 1, seed=self._seed
        )

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self.status.setText("sampling…")

    def _on_sampled(self, result: PriorPreviewResult) -> None:
        self.last_result = result
        req = result.request
        others = [f for f in req.feature_names if f not in (req.x, req.y)]
        fixed = f" · others at 0.5 ({len(others)})" if others else ""
        if result.y is None:
            for i, curve in enumerate(self.curves):
                if i < len(result.samples):
                    curve.setData(result.x, result.samples[i])
                else:  # pragma: no cover - n_samples is fixed per panel
                    curve.setData([], [])
            self.plot.setLabel("bottom", req.x)
            self.status.setText(f"{len(result.samples)} samples along {req.x}{fixed} · {result.seconds * 1000:.0f} ms")
        else:
            img = np.ascontiguousarray(np.nan_to_num(result.samples[0]), dtype=np.float32)
            lim = float(np.max(np.abs(img))) or 1.0
            self.image.setImage(img, levels=(-lim, lim), autoLevels=False)
            self.image.setRect(QRectF(0.0, 0.0, 1.0, 1.0))
            self.image_plot.setLabel("bottom", req.x)
            self.image_plot.setLabel("left", req.y)
            self.status.setText(f"one sample over {req.x} × {req.y}{fixed} · {result.seconds * 1000:.0f} ms")

    def _on_failed(self, failure: PriorPreviewFailed) -> None:
        self.status.setText(f"preview failed: {failure.message}")


