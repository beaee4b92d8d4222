"""The kernel editor's scene and view: selection, wiring gestures, drops from the palette, zoom."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from lla_studio.core.kernels.draft import Analysis, EditorDoc
from lla_studio.gui.kernel_editor.items import MIME_FEATURE, MIME_KIND, NodeItem, PortItem, WireItem


class KernelScene(QGraphicsScene):
    """The canvas: node and wire items mirroring the editor's document."""

    wire_requested = Signal(str, str)  # child key, parent key
    disconnect_requested = Signal(str)  # child key
    wrap_requested = Signal(str)  # key
    delete_requested = Signal()
    moved = Signal(object)  # {key: (x, y)}

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.doc = EditorDoc()
        self.features: list[str] | None = None
        self.node_items: dict[str, NodeItem] = {}
        self.wire_items: dict[tuple[str, str], WireItem] = {}
        self._press_pos: dict[str, QPointF] = {}
        self.setSceneRect(QRectF(-2000, -2000, 4000, 4000))

    def sync(self, doc: EditorDoc, analysis: Analysis, features: list[str] | None) -> None:
        self.doc = doc
        self.features = features
        for key in [k for k in self.node_items if k not in doc.nodes]:
            self.removeItem(self.node_items.pop(key))
        for key, node in doc.nodes.items():
            item = self.node_items.get(key)
            if item is None:
                item = NodeItem(node)
                self.node_items[key] = item
                self.addItem(item)
            item.set_state(
                node,
                analysis.errors.get(key),
                key in analysis.detached,
                key == analysis.root and analysis.graph is not None,
                analysis.key_to_id.get(key),
            )
            item.update()
            if (item.pos().x(), item.pos().y()) != node.pos:
                item.setPos(QPointF(*node.pos))
        wanted = {(c, p) for p, kids in doc.edges.items() for c in kids}
        for pair in [w for w in self.wire_items if w not in wanted]:
            self.removeItem(self.wire_items.pop(pair))
        for pair in wanted:
            if pair not in self.wire_items:
                wire = WireItem(*pair)
                self.wire_items[pair] = wire
                self.addItem(wire)
        for pair, wire in self.wire_items.items():
            wire.update_path(self.node_items[pair[0]].out_pos(), self.node_items[pair[1]].in_pos())

    def update_wires(self, key: str) -> None:
        for (c, p), wire in self.wire_items.items():
            if key in (c, p) and c in self.node_items and p in self.node_items:
                wire.update_path(self.node_items[c].out_pos(), self.node_items[p].in_pos())

    def selected_keys(self) -> list[str]:
        return [i.key for i in self.selectedItems() if isinstance(i, NodeItem)]

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802
        self._press_pos = {k: i.pos() for k, i in self.node_items.items()}
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        moved = {
            k: (i.pos().x(), i.pos().y())
            for k, i in self.node_items.items()
            if k in self._press_pos and i.pos() != self._press_pos[k]
        }
        self._press_pos = {}
        if moved:
            self.moved.emit(moved)


class KernelView(QGraphicsView):
    """The canvas view: wheel zoom, rubber-band selection, drops from the palette and feature list."""

    add_requested = Signal(str, QPointF)  # kind, scene position
    feature_dropped = Signal(str, str)  # node key, feature
    delete_pressed = Signal()

    def __init__(self, scene: KernelScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setAcceptDrops(True)
        self.setBackgroundBrush(QColor("#25272c"))
        self.setMinimumSize(320, 240)
        self._hover: NodeItem | None = None

    # -- zoom --------------------------------------------------------------------------------
    def zoom(self, factor: float) -> None:
        current = self.transform().m11()
        factor = min(max(factor, 0.15 / current), 3.0 / current)
        self.scale(factor, factor)

    def wheelEvent(self, event: Any) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(1.15**steps)
        event.accept()

    def fit(self) -> None:
        scene = self.scene()
        items = [i for i in scene.items() if isinstance(i, NodeItem)]
        if not items:
            return
        rect = items[0].sceneBoundingRect()
        for i in items[1:]:
            rect = rect.united(i.sceneBoundingRect())
        self.fitInView(rect.adjusted(-30, -30, 30, 30), Qt.AspectRatioMode.KeepAspectRatio)
        if self.transform().m11() > 1.2:
            self.resetTransform()
            self.scale(1.2, 1.2)
            self.centerOn(rect.center())

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        super().drawBackground(painter, rect)
        step = 24.0
        left = math.floor(rect.left() / step) * step
        top = math.floor(rect.top() / step) * step
        fine = QPen(QColor("#2c2f35"), 0)
        coarse = QPen(QColor("#33363d"), 0)
        x = left
        while x < rect.right():
            painter.setPen(coarse if round(x / step) % 5 == 0 else fine)
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
            x += step
        y = top
        while y < rect.bottom():
            painter.setPen(coarse if round(y / step) % 5 == 0 else fine)
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            y += step

    # -- keys --------------------------------------------------------------------------------
    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_pressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    # -- drops -------------------------------------------------------------------------------
    def _node_at(self, pos: Any) -> NodeItem | None:
        for item in self.items(pos):
            if isinstance(item, PortItem):
                return item.node
            if isinstance(item, NodeItem):
                return item
        return None

    def _set_hover(self, item: NodeItem | None) -> None:
        if item is self._hover:
            return
        if self._hover is not None:
            self._hover.drop_hover = False
            self._hover.update()
        self._hover = item
        if item is not None:
            item.drop_hover = True
            item.update()

    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasFormat(MIME_KIND) or mime.hasFormat(MIME_FEATURE):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasFormat(MIME_KIND):
            event.acceptProposedAction()
        elif mime.hasFormat(MIME_FEATURE):
            item = self._node_at(event.position().toPoint())
            leaf = item if item is not None and item.node.is_leaf else None
            self._set_hover(leaf)
            if leaf is not None:
                event.acceptProposedAction()
            else:
                event.ignore()
        else:
            event.ignore()

    def dragLeaveEvent(self, event: Any) -> None:  # noqa: N802
        self._set_hover(None)
        super().dragLeaveEvent(event)

    def dropEvent(self, event: Any) -> None:  # noqa: N802
        self._set_hover(None)
        mime = event.mimeData()
        pos = event.position().toPoint()
        if mime.hasFormat(MIME_KIND):
            kind = bytes(mime.data(MIME_KIND).data()).decode()
            self.add_requested.emit(kind, self.mapToScene(pos))
            event.acceptProposedAction()
        elif mime.hasFormat(MIME_FEATURE):
            item = self._node_at(pos)
            if item is not None and item.node.is_leaf:
                for name in bytes(mime.data(MIME_FEATURE).data()).decode().split("\n"):
                    if name:
                        self.feature_dropped.emit(item.key, name)
                event.acceptProposedAction()
            else:
                event.ignore()
        else:
            event.ignore()


