"""Canvas items of the kernel editor (nodes, ports, wires) and the geometry the layout shares with them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject, QGraphicsPathItem, QMenu

from lla_studio.core.kernels import Gamma, LogNormal
from lla_studio.core.kernels.draft import DESCRIPTIONS, EditorDoc, EditorNode
from lla_studio.gui.kernel_editor.common import html_escape


def _is_editor_scene(scene: Any) -> bool:
    """Whether an item's scene is the editor's :class:`~.canvas.KernelScene` (imported here, not at
    the top: the canvas module imports the items)."""
    from lla_studio.gui.kernel_editor.canvas import KernelScene

    return isinstance(scene, KernelScene)


_PARAM_SYMBOL = {"lengthscale": "ℓ", "alpha": "α", "period": "p", "variance": "v", "outputscale": "σ²"}
MIME_KIND = "application/x-lla-kernel-kind"
"""Drag-and-drop MIME type of a palette kind."""
MIME_FEATURE = "application/x-lla-feature"
"""Drag-and-drop MIME type of feature names (one per line)."""


NODE_WIDTH = 196.0
TITLE_H = 26.0
PORT_R = 6.5
_CHIP_H = 20.0
_CHIP_GAP = 5.0
_PAD = 9.0


def _fonts() -> tuple[QFont, QFont, QFont, QFont]:
    title = QFont()
    title.setPointSizeF(10.0)
    title.setBold(True)
    chip = QFont()
    chip.setPointSizeF(9.0)
    small = QFont()
    small.setPointSizeF(8.5)
    symbol = QFont()
    symbol.setPointSizeF(17.0)
    symbol.setBold(True)
    return title, chip, small, symbol


def _chip_rects(features: Sequence[str]) -> tuple[list[QRectF], float]:
    """Chip rectangles (relative to the body's top-left) and the height they need."""
    _, chip_font, _, _ = _fonts()
    fm = QFontMetricsF(chip_font)
    rects: list[QRectF] = []
    x, y = _PAD, _PAD
    max_w = NODE_WIDTH - 2 * _PAD
    for name in features:
        w = min(max_w, fm.horizontalAdvance(name) + 16.0)
        if x > _PAD and x + w > NODE_WIDTH - _PAD:
            x, y = _PAD, y + _CHIP_H + _CHIP_GAP
        rects.append(QRectF(x, y, w, _CHIP_H))
        x += w + _CHIP_GAP
    height = (y + _CHIP_H - _PAD) if rects else _CHIP_H
    return rects, height


def node_size(node: EditorNode) -> tuple[float, float]:
    """Width and height of a node item."""
    if node.is_leaf:
        _, chips_h = _chip_rects(node.features)
        return NODE_WIDTH, TITLE_H + _PAD + chips_h + 6 + 16 + _PAD
    return NODE_WIDTH, TITLE_H + 52.0


def layout_doc(doc: EditorDoc, dx: float = 250.0, gap: float = 22.0) -> EditorDoc:
    """Tree layout, leaves on the left and each root on the right; parts stacked top to bottom."""
    pos: dict[str, tuple[float, float]] = {}
    y_cursor = 0.0
    roots = doc.roots()

    def depth_of(key: str) -> int:
        kids = doc.children(key)
        return 1 + max((depth_of(k) for k in kids), default=0)

    def place(key: str, depth: int, max_depth: int) -> float:
        """Place the subtree; return the centre y of ``key``."""
        nonlocal y_cursor
        w, h = node_size(doc.nodes[key])
        x = (max_depth - 1 - depth) * dx
        kids = doc.children(key)
        if kids:
            centres = [place(k, depth + 1, max_depth) for k in kids]
            cy = 0.5 * (centres[0] + centres[-1])
        else:
            cy = y_cursor + h / 2
            y_cursor += h + gap
        pos[key] = (x, cy - h / 2)
        return cy

    # biggest part first, so the main kernel is on top
    for root in sorted(roots, key=lambda r: -len(doc.subtree(r))):
        place(root, 0, depth_of(root))
        y_cursor += 2 * gap
    nodes = {k: replace(n, pos=pos.get(k, n.pos)) for k, n in doc.nodes.items()}
    return EditorDoc(nodes, dict(doc.edges))




_COLORS = {
    "leaf": QColor("#2f6690"),
    "sum": QColor("#b5651d"),
    "product": QColor("#8e44ad"),
    "scale": QColor("#2e8b57"),
}
_BODY = QColor("#393c43")
_TEXT = QColor("#eceff4")
_MUTED = QColor("#a7adba")
_ERROR = QColor("#ff5c5c")
_SELECT = QColor("#ffd166")
_WIRE = QColor("#c0c6d0")


class _Hovered:
    """Items that light up under the mouse: ``_hover`` is true while it is over them."""

    _hover = False

    def hoverEnterEvent(self, event: Any) -> None:  # noqa: N802
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event: Any) -> None:  # noqa: N802
        self._hover = False
        self.update()


class PortItem(_Hovered, QGraphicsObject):
    """An input (left, operators) or output (right) port; drag from it to draw a wire."""

    def __init__(self, node: NodeItem, role: str) -> None:
        super().__init__(node)
        self.node = node
        self.role = role
        self._hover = False
        self._temp: QGraphicsPathItem | None = None
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("output: drag to an operator's input" if role == "out" else "input: drag from a kernel's output")
        self.setZValue(2)

    def boundingRect(self) -> QRectF:  # noqa: N802
        r = PORT_R + 3
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option: Any, widget: Any = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = QColor("#8fd3ff") if self.role == "out" else QColor("#ffc46b")
        r = PORT_R + (2 if self._hover else 0)
        painter.setPen(QPen(QColor("#15171b"), 1.5))
        painter.setBrush(color.lighter(125) if self._hover else color)
        painter.drawEllipse(QPointF(0, 0), r, r)

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            event.ignore()
            return
        self._temp = QGraphicsPathItem()
        pen = QPen(_SELECT, 2.0, Qt.PenStyle.DashLine)
        self._temp.setPen(pen)
        self._temp.setZValue(-0.5)
        self.scene().addItem(self._temp)
        event.accept()

    def mouseMoveEvent(self, event: Any) -> None:  # noqa: N802
        if self._temp is None:
            return
        a, b = self.scenePos(), event.scenePos()
        if self.role == "in":
            a, b = b, a
        self._temp.setPath(_wire_path(a, b))

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802
        if self._temp is None:
            return
        scene = self.scene()
        scene.removeItem(self._temp)
        self._temp = None
        target = None
        for item in scene.items(event.scenePos()):
            if isinstance(item, PortItem) and item.node is not self.node:
                target = item.node
                break
            if isinstance(item, NodeItem) and item is not self.node:
                target = item
                break
        if target is not None and _is_editor_scene(scene):
            if self.role == "out":
                scene.wire_requested.emit(self.node.key, target.key)
            else:
                scene.wire_requested.emit(target.key, self.node.key)


def _wire_path(a: QPointF, b: QPointF) -> QPainterPath:
    dx = max(40.0, abs(b.x() - a.x()) * 0.5)
    path = QPainterPath(a)
    path.cubicTo(QPointF(a.x() + dx, a.y()), QPointF(b.x() - dx, b.y()), b)
    return path


class NodeItem(QGraphicsObject):
    """A kernel node: coloured title, feature chips (leaves) or operator symbol, ports."""

    def __init__(self, node: EditorNode) -> None:
        super().__init__()
        self.key = node.key
        self.node = node
        self.error: str | None = None
        self.detached = False
        self.is_root = False
        self.graph_id: str | None = None
        self.drop_hover = False
        self._size = node_size(node)
        self.setFlags(
            QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
        )
        self.setAcceptHoverEvents(True)
        self.xChanged.connect(self._moved)
        self.yChanged.connect(self._moved)
        self.out_port = PortItem(self, "out")
        self.in_port: PortItem | None = None if node.is_leaf else PortItem(self, "in")
        self._place_ports()

    # -- state -------------------------------------------------------------------------------
    def set_state(self, node: EditorNode, error: str | None, detached: bool, is_root: bool, graph_id: str | None) -> None:
        leaf_changed = node.is_leaf != self.node.is_leaf
        if (node, error, detached, is_root, graph_id) == (self.node, self.error, self.detached, self.is_root, self.graph_id):
            return
        self.prepareGeometryChange()
        self.node, self.error, self.detached, self.is_root, self.graph_id = node, error, detached, is_root, graph_id
        self._size = node_size(node)
        if leaf_changed:  # pragma: no cover - kinds only change within leaves / operators
            if node.is_leaf and self.in_port is not None:
                self.in_port.setParentItem(None)
                self.in_port = None
            elif not node.is_leaf and self.in_port is None:
                self.in_port = PortItem(self, "in")
        self._place_ports()
        tip = f"<b>{node.label}</b> ({DESCRIPTIONS.get(node.label, node.kind)})"
        if graph_id:
            tip += f"<br>graph id: {graph_id}"
        if error:
            tip += f"<br><span style='color:#c0392b'><b>Problem:</b> {html_escape(error)}</span>"
        elif detached:
            tip += "<br><i>not connected to the main kernel</i>"
        self.setToolTip(tip)
        self.update()

    def _place_ports(self) -> None:
        w, h = self._size
        self.out_port.setPos(w, h / 2)
        if self.in_port is not None:
            self.in_port.setPos(0, h / 2)

    def out_pos(self) -> QPointF:
        return self.out_port.scenePos()

    def in_pos(self) -> QPointF:
        return self.in_port.scenePos() if self.in_port is not None else self.scenePos()

    # -- painting ----------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:  # noqa: N802
        w, h = self._size
        extra = 70.0 if self.is_root else 4.0
        return QRectF(-4, -4, w + 4 + extra, h + 8)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        w, h = self._size
        path.addRoundedRect(QRectF(0, 0, w, h), 8, 8)
        return path

    def paint(self, painter: QPainter, option: Any, widget: Any = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        node = self.node
        w, h = self._size
        title_font, chip_font, small_font, symbol_font = _fonts()
        rect = QRectF(0, 0, w, h)
        # shadow + body
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 70))
        painter.drawRoundedRect(rect.translated(3, 4), 8, 8)
        painter.setBrush(_BODY)
        painter.drawRoundedRect(rect, 8, 8)
        # title bar
        color = _COLORS["leaf"] if node.is_leaf else _COLORS[node.kind]
        title = QPainterPath()
        title.addRoundedRect(QRectF(0, 0, w, TITLE_H), 8, 8)
        title.addRect(QRectF(0, TITLE_H / 2, w, TITLE_H / 2))
        painter.fillPath(title.simplified(), color)
        painter.setPen(_TEXT)
        painter.setFont(title_font)
        painter.drawText(QRectF(10, 0, w - 20, TITLE_H), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, node.label)
        if self.graph_id:
            painter.setFont(small_font)
            painter.setPen(QColor(255, 255, 255, 160))
            painter.drawText(QRectF(10, 0, w - 20, TITLE_H), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, self.graph_id)
        body = QRectF(0, TITLE_H, w, h - TITLE_H)
        if node.is_leaf:
            self._paint_leaf(painter, body, chip_font, small_font)
        else:
            self._paint_operator(painter, body, symbol_font, small_font)
        # outline
        if self.drop_hover:
            pen = QPen(QColor("#8fd3ff"), 2.5)
        elif self.isSelected():
            pen = QPen(_SELECT, 2.5)
        elif self.error:
            pen = QPen(_ERROR, 2.5)
        elif self.detached:
            pen = QPen(_MUTED, 1.5, Qt.PenStyle.DashLine)
        else:
            pen = QPen(QColor("#17191d"), 1.0)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect, 8, 8)
        if self.error and self.isSelected():  # keep the error visible while selected
            painter.setPen(QPen(_ERROR, 1.5))
            painter.drawRoundedRect(rect.adjusted(3, 3, -3, -3), 6, 6)
        if self.error:  # badge
            c = QPointF(w - 2, 0)
            painter.setPen(QPen(QColor("#1b1b1b"), 1))
            painter.setBrush(_ERROR)
            painter.drawEllipse(c, 8, 8)
            painter.setPen(QColor("white"))
            painter.setFont(title_font)
            painter.drawText(QRectF(c.x() - 8, c.y() - 8, 16, 16), Qt.AlignmentFlag.AlignCenter, "!")
        if self.is_root:
            painter.setFont(small_font)
            painter.setPen(_MUTED)
            painter.drawText(QRectF(w + 12, h / 2 - 9, 64, 18), Qt.AlignmentFlag.AlignVCenter, "k(x, x′)")

    def _paint_leaf(self, painter: QPainter, body: QRectF, chip_font: QFont, small_font: QFont) -> None:
        node = self.node
        rects, chips_h = _chip_rects(node.features)
        unknown = set()
        scene = self.scene()
        if _is_editor_scene(scene) and scene.features is not None:
            unknown = {f for f in node.features if f not in scene.features}
        fm = QFontMetricsF(chip_font)
        painter.setFont(chip_font)
        for r, name in zip(rects, node.features):
            r = r.translated(0, body.top())
            bad = name in unknown
            painter.setPen(QPen(_ERROR if bad else QColor("#5d8fb8"), 1.2, Qt.PenStyle.DashLine if bad else Qt.PenStyle.SolidLine))
            painter.setBrush(QColor("#5a2a2a") if bad else QColor("#24425a"))
            painter.drawRoundedRect(r, _CHIP_H / 2, _CHIP_H / 2)
            painter.setPen(QColor("#ffb3b3") if bad else _TEXT)
            text = fm.elidedText(name, Qt.TextElideMode.ElideRight, r.width() - 12)
            painter.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
        if not node.features:
            painter.setPen(QPen(_MUTED, 1.0, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            r = QRectF(_PAD, body.top() + _PAD, NODE_WIDTH - 2 * _PAD, _CHIP_H)
            painter.drawRoundedRect(r, _CHIP_H / 2, _CHIP_H / 2)
            painter.setFont(small_font)
            painter.drawText(r, Qt.AlignmentFlag.AlignCenter, "drop features here")
        painter.setFont(small_font)
        painter.setPen(_MUTED)
        y = body.top() + _PAD + chips_h + 6
        painter.drawText(QRectF(_PAD, y, NODE_WIDTH - 2 * _PAD, 16), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, _summary(node))

    def _paint_operator(self, painter: QPainter, body: QRectF, symbol_font: QFont, small_font: QFont) -> None:
        node = self.node
        symbol = {"sum": "+", "product": "×", "scale": "σ²·"}[node.kind]
        painter.setFont(symbol_font)
        painter.setPen(_TEXT)
        painter.drawText(QRectF(14, body.top() + 2, 60, body.height() - 4), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, symbol)
        painter.setFont(small_font)
        painter.setPen(_MUTED)
        scene = self.scene()
        n = len(scene.doc.children(self.key)) if _is_editor_scene(scene) else 0
        lines = [f"{n} input{'s' if n != 1 else ''}" if node.kind != "scale" else ("1 input" if n == 1 else f"{n} inputs (needs 1)")]
        summary = _summary(node)
        if summary:
            lines.append(summary)
        painter.drawText(
            QRectF(70, body.top() + 4, NODE_WIDTH - 80, body.height() - 8),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            "\n".join(lines),
        )

    # -- interaction -------------------------------------------------------------------------
    def _moved(self) -> None:
        # QGraphicsObject's xChanged/yChanged instead of an itemChange override: PySide converts
        # every change's QVariant (child items, scenes) for an override, which is slow and fragile.
        scene = self.scene()
        if _is_editor_scene(scene):
            scene.update_wires(self.key)

    def mouseDoubleClickEvent(self, event: Any) -> None:  # noqa: N802
        scene = self.scene()
        if _is_editor_scene(scene):
            scene.clearSelection()
            self.setSelected(True)
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event: Any) -> None:  # noqa: N802
        scene = self.scene()
        if not _is_editor_scene(scene):
            return
        menu = QMenu()
        disconnect = menu.addAction("Disconnect from parent")
        disconnect.setEnabled(scene.doc.parent(self.key) is not None)
        wrap = menu.addAction("Wrap in scale")
        menu.addSeparator()
        delete = menu.addAction("Delete")
        chosen = menu.exec(event.screenPos())
        if chosen is disconnect:
            scene.disconnect_requested.emit(self.key)
        elif chosen is wrap:
            scene.wrap_requested.emit(self.key)
        elif chosen is delete:
            scene.clearSelection()
            self.setSelected(True)
            scene.delete_requested.emit()


def _fmt_num(x: float) -> str:
    return f"{x:.3g}"


def _summary(node: EditorNode) -> str:
    parts = []
    if node.is_leaf and len(node.features) > 1:
        parts.append("ARD" if node.ard else "shared ℓ")
    for p in node.params:
        sym = _PARAM_SYMBOL.get(p, p)
        v = node.value(p)
        if v is not None:
            parts.append(f"{sym}={_fmt_num(v)}")
            continue
        pr = node.prior(p)
        if isinstance(pr, Gamma):
            parts.append(f"{sym}~Γ({_fmt_num(pr.concentration)},{_fmt_num(pr.rate)})")
        elif isinstance(pr, LogNormal):
            parts.append(f"{sym}~LN({_fmt_num(pr.loc)},{_fmt_num(pr.scale)})")
    return " · ".join(parts)


class WireItem(_Hovered, QGraphicsPathItem):
    """A wire from a child's output port to its parent's input port."""

    def __init__(self, child: str, parent: str) -> None:
        super().__init__()
        self.child = child
        self.parent_key = parent
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(-1)
        self.setAcceptHoverEvents(True)
        self._hover = False
        self.setToolTip("wire: select and press Del (or right-click) to disconnect")

    def update_path(self, a: QPointF, b: QPointF) -> None:
        self.setPath(_wire_path(a, b))

    def shape(self) -> QPainterPath:
        from PySide6.QtGui import QPainterPathStroker

        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def paint(self, painter: QPainter, option: Any, widget: Any = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = _SELECT if self.isSelected() else (_WIRE.lighter(120) if self._hover else _WIRE)
        painter.setPen(QPen(color, 3.0 if self.isSelected() or self._hover else 2.2, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())

    def contextMenuEvent(self, event: Any) -> None:  # noqa: N802
        scene = self.scene()
        if not _is_editor_scene(scene):
            return
        menu = QMenu()
        act = menu.addAction("Disconnect")
        if menu.exec(event.screenPos()) is act:
            scene.disconnect_requested.emit(self.child)


