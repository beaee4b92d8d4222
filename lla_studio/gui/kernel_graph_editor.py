"""``KernelGraphEditor``: a node editor for kernel graphs, with its text form and a prior preview.

Layout::

    [toolbar: undo redo delete | auto-layout fit | hands-on wizard]
    [palette  ] [ canvas (QGraphicsView)                    ] [ properties of the selected node ]
    [features ] [   leaves --wire--> operators --> root     ] [ prior samples (pyqtgraph)       ]
    [text: scale(matern52(x1) * rbf(x2)) + ...                                                 ]
    [status line                                                                                ]

The editor keeps its own document, an immutable :class:`EditorDoc` of :class:`EditorNode` s and
parent -> children edges, so that partial graphs (an operator with no inputs yet, unconnected
nodes, a leaf without features or over a feature that no longer exists) can live on the canvas.
:func:`analyze` turns a document into a :class:`~lla_studio.core.kernels.KernelGraph` when it is
complete and valid, or into per-node errors (red outline and tooltip on the canvas) and a status
line when it is not; only valid graphs are emitted (:attr:`KernelGraphEditor.graph_changed`).

Every edit (canvas, property panel, text box, wizard) replaces the document through a
``QUndoCommand`` holding the documents before and after, so undo/redo restore everything,
including node positions. Consecutive edits of one field (a spin box, typing in the text box) merge
into one command.

The text box and the canvas stay in sync: a valid canvas is printed with
:func:`~lla_studio.core.kernels.format_kernel`; typing in the text box is parsed after a short
debounce (or on Enter, which also rewrites the text in canonical form) and rebuilds the canvas.

No torch here: prior samples come from :mod:`lla_studio.engine.preview_worker` as numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QMimeData, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QDrag,
    QFont,
    QFontMetricsF,
    QKeySequence,
    QPainter,
    QPainterPath,
    QPen,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import (
    NODE_TYPES,
    Gamma,
    KernelGraph,
    KernelNode,
    LeafNode,
    LogNormal,
    MaternNode,
    ProductNode,
    ScaleNode,
    SumNode,
    format_kernel,
    hands_on_kernel,
    parse_kernel,
)
from lla_studio.engine.preview_worker import PriorPreviewController, PriorPreviewFailed, PriorPreviewResult

__all__ = [
    "LEAF_KINDS",
    "OPERATOR_KINDS",
    "Analysis",
    "EditorDoc",
    "EditorNode",
    "HandsOnWizard",
    "KernelGraphEditor",
    "PriorPreviewPanel",
    "analyze",
    "doc_from_graph",
]

LEAF_KINDS: tuple[str, ...] = ("rbf", "matern12", "matern32", "matern52", "rq", "periodic", "linear")
"""Palette names of the base kernels (the text form's leaf names)."""
OPERATOR_KINDS: tuple[str, ...] = ("sum", "product", "scale")
"""Palette names of the operators."""

_MATERN = {"matern12": 0.5, "matern32": 1.5, "matern52": 2.5}
_MATERN_NAME = {v: k for k, v in _MATERN.items()}
_DESCRIPTIONS = {
    "rbf": "squared exponential",
    "matern12": "Matérn ν=1/2 (rough)",
    "matern32": "Matérn ν=3/2",
    "matern52": "Matérn ν=5/2",
    "rq": "rational quadratic",
    "periodic": "periodic",
    "linear": "linear (dot product)",
    "sum": "k₁ + k₂ + …",
    "product": "k₁ · k₂ · …",
    "scale": "σ² · k",
}
_PARAM_SYMBOL = {"lengthscale": "ℓ", "alpha": "α", "period": "p", "variance": "v", "outputscale": "σ²"}
MIME_KIND = "application/x-lla-kernel-kind"
MIME_FEATURE = "application/x-lla-feature"


def _core_kind(kind: str) -> tuple[str, float | None]:
    """Palette/text kind -> (node KIND, nu)."""
    if kind in _MATERN:
        return "matern", _MATERN[kind]
    if kind in NODE_TYPES:
        return kind, None
    raise KernelGraphError(f"unknown kernel kind {kind!r}; expected one of {', '.join(LEAF_KINDS + OPERATOR_KINDS)}")


# ================================================================================================
# Document model (no Qt)
# ================================================================================================
@dataclass(frozen=True)
class EditorNode:
    """One node on the canvas (possibly incomplete).

    Attributes:
        key: Editor key (``"k1"``, ...), stable across edits; not the graph's node id.
        kind: Node KIND (``rbf``, ``matern``, ``rq``, ``periodic``, ``linear``, ``sum``,
            ``product``, ``scale``).
        nu: Matérn smoothness (Matérn leaves only).
        features: Feature names of a leaf (may be empty or name unknown features while editing).
        ard: One lengthscale per feature (leaves).
        priors: ``(param, prior spec)`` pairs.
        fixed: ``(param, value)`` pairs.
        node_id: Explicit graph id (``None``: the graph's automatic ``n<i>``).
        pos: Top-left corner on the canvas.
    """

    key: str
    kind: str
    nu: float = 2.5
    features: tuple[str, ...] = ()
    ard: bool = True
    priors: tuple[tuple[str, Gamma | LogNormal], ...] = ()
    fixed: tuple[tuple[str, float], ...] = ()
    node_id: str | None = None
    pos: tuple[float, float] = (0.0, 0.0)

    @property
    def is_leaf(self) -> bool:
        return issubclass(NODE_TYPES[self.kind], LeafNode)

    @property
    def params(self) -> tuple[str, ...]:
        return NODE_TYPES[self.kind].PARAMS

    @property
    def label(self) -> str:
        """Palette name: ``matern52``, ``rbf``, ``sum``..."""
        return _MATERN_NAME.get(self.nu, "matern") if self.kind == "matern" else self.kind

    def prior(self, param: str) -> Gamma | LogNormal | None:
        return dict(self.priors).get(param)

    def value(self, param: str) -> float | None:
        return dict(self.fixed).get(param)


@dataclass(frozen=True)
class EditorDoc:
    """The editor's document: nodes (in creation order) and ``parent key -> child keys`` edges.

    Treat as immutable: edits build new documents (``dict`` fields are never mutated).
    """

    nodes: dict[str, EditorNode] = field(default_factory=dict)
    edges: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def children(self, key: str) -> tuple[str, ...]:
        return self.edges.get(key, ())

    def parent(self, key: str) -> str | None:
        for p, kids in self.edges.items():
            if key in kids:
                return p
        return None

    def roots(self) -> list[str]:
        has_parent = {k for kids in self.edges.values() for k in kids}
        return [k for k in self.nodes if k not in has_parent]

    def subtree(self, key: str) -> list[str]:
        out = [key]
        for kid in self.children(key):
            out.extend(self.subtree(kid))
        return out

    def with_node(self, node: EditorNode) -> EditorDoc:
        nodes = dict(self.nodes)
        nodes[node.key] = node
        return EditorDoc(nodes, dict(self.edges))

    def without_edge_to(self, child: str) -> EditorDoc:
        edges = {p: tuple(k for k in kids if k != child) for p, kids in self.edges.items()}
        return EditorDoc(dict(self.nodes), {p: kids for p, kids in edges.items() if kids})

    def with_edge(self, child: str, parent: str, index: int | None = None) -> EditorDoc:
        doc = self.without_edge_to(child)
        kids = list(doc.edges.get(parent, ()))
        kids.insert(len(kids) if index is None else index, child)
        edges = dict(doc.edges)
        edges[parent] = tuple(kids)
        return EditorDoc(dict(doc.nodes), edges)

    def without_node(self, key: str) -> EditorDoc:
        doc = self.without_edge_to(key)
        nodes = {k: n for k, n in doc.nodes.items() if k != key}
        edges = {p: kids for p, kids in doc.edges.items() if p != key}
        return EditorDoc(nodes, edges)


@dataclass(frozen=True)
class Analysis:
    """What a document means.

    Attributes:
        graph: The kernel graph when the document is complete and valid, else ``None``.
        errors: Editor key -> message for every node with a problem.
        status: One line for the status bar.
        root: Key of the main root (the largest tree), ``None`` for an empty canvas.
        detached: Keys of the other roots (unconnected parts).
        key_to_id: Editor key -> graph node id (only when ``graph`` is set).
    """

    graph: KernelGraph | None
    errors: dict[str, str]
    status: str
    root: str | None = None
    detached: frozenset[str] = frozenset()
    key_to_id: dict[str, str] = field(default_factory=dict)

    @property
    def id_to_key(self) -> dict[str, str]:
        return {v: k for k, v in self.key_to_id.items()}


def _node_error(node: EditorNode, doc: EditorDoc, features: Sequence[str] | None) -> str | None:
    n_kids = len(doc.children(node.key))
    if node.is_leaf:
        if not node.features:
            return f"{node.label} has no features: drop a feature chip on it or tick features in the panel"
        if features is not None:
            missing = [f for f in node.features if f not in features]
            if missing:
                names = ", ".join(repr(f) for f in missing)
                return (
                    f"{node.label} uses unknown feature{'s' if len(missing) > 1 else ''} {names}; "
                    f"known: {', '.join(features) or '(none)'}"
                )
        return None
    if n_kids == 0:
        if node.kind == "scale":
            return "scale has no input: wire one kernel into its input port"
        return f"empty {node.kind}: wire at least one kernel into its input port"
    if node.kind == "scale" and n_kids > 1:
        return f"scale takes exactly one input, got {n_kids}"
    return None


def _to_core(doc: EditorDoc, key: str) -> KernelNode:
    node = doc.nodes[key]
    kw: dict[str, Any] = {"id": node.node_id}
    for p in node.params:
        kw[f"{p}_prior"] = node.prior(p)
        kw[p] = node.value(p)
    if node.kind == "scale":
        return ScaleNode(_to_core(doc, doc.children(key)[0]), **kw)
    if node.kind in ("sum", "product"):
        cls = SumNode if node.kind == "sum" else ProductNode
        return cls(tuple(_to_core(doc, k) for k in doc.children(key)), id=node.node_id)
    if node.kind == "matern":
        kw["nu"] = node.nu
    return NODE_TYPES[node.kind](node.features, ard=node.ard, **kw)  # type: ignore[call-arg]


def analyze(doc: EditorDoc, features: Sequence[str] | None) -> Analysis:
    """Check a document and build its kernel graph when it is complete and valid.

    Args:
        doc: The editor document.
        features: The model's feature names (``None``: do not check leaf features).
    """
    if not doc.nodes:
        return Analysis(None, {}, "Empty canvas: drag a kernel from the palette (or double-click it).")
    errors: dict[str, str] = {}
    for node in doc.nodes.values():
        msg = _node_error(node, doc, features)
        if msg:
            errors[node.key] = msg
    roots = doc.roots()
    if not roots:  # pragma: no cover - edges never form cycles (connect refuses them)
        return Analysis(None, errors, "The graph has a cycle.")
    main = max(roots, key=lambda k: (len(doc.subtree(k)), -roots.index(k)))
    detached = frozenset(r for r in roots if r != main)
    problems = []
    if errors:
        first = next(iter(errors.values()))
        problems.append(f"{len(errors)} node{'s' if len(errors) > 1 else ''} with problems (first: {first})")
    if detached:
        n = len(detached)
        problems.append(f"{n} unconnected part{'s' if n > 1 else ''}: wire {'them' if n > 1 else 'it'} into an operator")
    if problems:
        return Analysis(None, errors, "Incomplete: " + "; ".join(problems), main, detached)
    try:
        graph = KernelGraph(_to_core(doc, main))
        if features is not None:
            graph.validate(features)
    except KernelGraphError as err:
        key = None
        if err.node_id is not None:
            key = next((n.key for n in doc.nodes.values() if n.node_id == err.node_id), None)
        if key is not None:
            errors[key] = str(err)
        return Analysis(None, errors, f"Invalid: {err}", main, detached)
    order = doc.subtree(main)
    key_to_id = {k: ref.node.id for k, ref in zip(order, graph.refs())}
    n_leaves = len(graph.leaves())
    used = graph.features_used()
    status = f"Valid kernel: {n_leaves} lea{'ves' if n_leaves != 1 else 'f'} over {len(used)} feature{'s' if len(used) != 1 else ''}"
    return Analysis(graph, errors, status, main, detached, key_to_id)  # type: ignore[arg-type]


def _node_from_core(node: KernelNode, key: str, index: int) -> EditorNode:
    auto = f"n{index}"
    kw: dict[str, Any] = {
        "key": key,
        "kind": node.KIND,
        "node_id": node.id if node.id != auto else None,
        "priors": tuple((p, getattr(node, f"{p}_prior")) for p in node.PARAMS if getattr(node, f"{p}_prior") is not None),
        "fixed": tuple((p, getattr(node, p)) for p in node.PARAMS if getattr(node, p) is not None),
    }
    if isinstance(node, LeafNode):
        kw["features"] = tuple(node.features)
        kw["ard"] = node.ard
    if isinstance(node, MaternNode):
        kw["nu"] = node.nu
    return EditorNode(**kw)


def doc_from_graph(graph: KernelGraph, new_key: Any) -> EditorDoc:
    """A document holding ``graph`` (positions all zero); ``new_key()`` gives fresh editor keys.

    Ids equal to the automatic ``n<i>`` are not stored, so edits renumber them as the graph does;
    other ids (e.g. the hands-on kernel's group names) are kept.
    """
    nodes: dict[str, EditorNode] = {}
    edges: dict[str, tuple[str, ...]] = {}
    keys: dict[str, str] = {}
    for i, ref in enumerate(graph.refs()):
        key = new_key()
        keys[ref.node.id] = key  # type: ignore[index]
        nodes[key] = _node_from_core(ref.node, key, i)
        if ref.parent_id is not None:
            parent = keys[ref.parent_id]
            edges[parent] = edges.get(parent, ()) + (key,)
    return EditorDoc(nodes, edges)


# ================================================================================================
# Geometry shared by the layout and the node items
# ================================================================================================
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


# ================================================================================================
# Undo
# ================================================================================================
class _DocCommand(QUndoCommand):
    """Replace the editor's document; consecutive commands with the same ``merge_key`` merge."""

    def __init__(self, editor: KernelGraphEditor, before: EditorDoc, after: EditorDoc, text: str, merge_key: Any = None):
        super().__init__(text)
        self._editor = editor
        self.before = before
        self.after = after
        self.merge_key = merge_key

    def id(self) -> int:  # noqa: A003 - Qt's name
        return 1 if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if isinstance(other, _DocCommand) and other.merge_key == self.merge_key and self.merge_key is not None:
            self.after = other.after
            return True
        return False

    def redo(self) -> None:
        self._editor._set_doc(self.after)

    def undo(self) -> None:
        self._editor._set_doc(self.before)


# ================================================================================================
# Canvas items
# ================================================================================================
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


class PortItem(QGraphicsObject):
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

    def hoverEnterEvent(self, event: Any) -> None:  # noqa: N802
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event: Any) -> None:  # noqa: N802
        self._hover = False
        self.update()

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
        if target is not None and isinstance(scene, KernelScene):
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
        tip = f"<b>{node.label}</b> ({_DESCRIPTIONS.get(node.label, node.kind)})"
        if graph_id:
            tip += f"<br>graph id: {graph_id}"
        if error:
            tip += f"<br><span style='color:#c0392b'><b>Problem:</b> {_html(error)}</span>"
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
        if isinstance(scene, KernelScene) and scene.features is not None:
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
        n = len(scene.doc.children(self.key)) if isinstance(scene, KernelScene) else 0
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
        if isinstance(scene, KernelScene):
            scene.update_wires(self.key)

    def mouseDoubleClickEvent(self, event: Any) -> None:  # noqa: N802
        scene = self.scene()
        if isinstance(scene, KernelScene):
            scene.clearSelection()
            self.setSelected(True)
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event: Any) -> None:  # noqa: N802
        scene = self.scene()
        if not isinstance(scene, KernelScene):
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


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WireItem(QGraphicsPathItem):
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

    def hoverEnterEvent(self, event: Any) -> None:  # noqa: N802
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event: Any) -> None:  # noqa: N802
        self._hover = False
        self.update()

    def contextMenuEvent(self, event: Any) -> None:  # noqa: N802
        scene = self.scene()
        if not isinstance(scene, KernelScene):
            return
        menu = QMenu()
        act = menu.addAction("Disconnect")
        if menu.exec(event.screenPos()) is act:
            scene.disconnect_requested.emit(self.child)


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


class _DragList(QListWidget):
    """A list whose items drag as ``mime`` (the item's ``UserRole`` data)."""

    def __init__(self, mime: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._mime = mime
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if mime == MIME_FEATURE else QAbstractItemView.SelectionMode.SingleSelection)

    def mime_for(self, items: Sequence[QListWidgetItem]) -> QMimeData:
        """The drag payload of ``items``: their names, one a line, under this list's mime type."""
        data = QMimeData()
        names = [i.data(Qt.ItemDataRole.UserRole) for i in items if i.data(Qt.ItemDataRole.UserRole)]
        data.setData(self._mime, "\n".join(names).encode())
        data.setText(", ".join(names))
        return data

    def startDrag(self, supported: Qt.DropAction) -> None:  # noqa: N802
        # Our own QDrag rather than a mimeData() override: QDrag.setMimeData takes ownership
        # explicitly, where a Python-made QMimeData returned from a virtual could be collected early.
        items = [i for i in self.selectedItems() if i.data(Qt.ItemDataRole.UserRole)]
        if not items:
            return
        drag = QDrag(self)
        drag.setMimeData(self.mime_for(items))
        drag.exec(Qt.DropAction.CopyAction)


# ================================================================================================
# Property panel
# ================================================================================================
class _ParamRow(QWidget):
    """Prior (none / gamma / lognormal with two numbers) and fixed value of one hyperparameter."""

    changed = Signal(str, object, object)  # param, prior | None, fixed | None

    def __init__(self, param: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 2)
        grid.setHorizontalSpacing(4)
        title = QLabel(f"<b>{param}</b> {_PARAM_SYMBOL.get(param, '')}")
        self.prior = QComboBox()
        self.prior.addItems(["no prior", "gamma", "lognormal"])
        self.a = QDoubleSpinBox()
        self.b = QDoubleSpinBox()
        for s in (self.a, self.b):
            s.setDecimals(3)
            s.setRange(1e-3, 1e4)
            s.setKeyboardTracking(False)
        self.fix = QCheckBox("fixed")
        self.value = QDoubleSpinBox()
        self.value.setDecimals(4)
        self.value.setRange(1e-4, 1e4)
        self.value.setValue(1.0)
        self.value.setKeyboardTracking(False)
        grid.addWidget(title, 0, 0, 1, 3)
        grid.addWidget(self.prior, 1, 0)
        grid.addWidget(self.a, 1, 1)
        grid.addWidget(self.b, 1, 2)
        grid.addWidget(self.fix, 2, 0)
        grid.addWidget(self.value, 2, 1)
        self.prior.currentIndexChanged.connect(self._prior_kind_changed)
        self.a.valueChanged.connect(self._emit)
        self.b.valueChanged.connect(self._emit)
        self.fix.toggled.connect(self._emit)
        self.value.valueChanged.connect(self._emit)

    def _prior_kind_changed(self, index: int) -> None:
        # sensible defaults per family
        with _Blocked(self.a, self.b):
            if index == 1:
                self.a.setRange(1e-3, 1e4)
                self.a.setValue(3.0 if self.param != "outputscale" else 2.0)
                self.b.setValue(6.0 if self.param != "outputscale" else 0.15)
            elif index == 2:
                self.a.setRange(-20.0, 20.0)
                self.a.setValue(0.0)
                self.b.setValue(1.0)
        self._emit()

    def _emit(self, *_: Any) -> None:
        self._sync_enabled()
        idx = self.prior.currentIndex()
        prior = None
        if idx == 1:
            prior = Gamma(self.a.value(), self.b.value())
        elif idx == 2:
            prior = LogNormal(self.a.value(), self.b.value())
        fixed = self.value.value() if self.fix.isChecked() else None
        self.changed.emit(self.param, prior, fixed)

    def _sync_enabled(self) -> None:
        on = self.prior.currentIndex() != 0
        self.a.setEnabled(on)
        self.b.setEnabled(on)
        self.a.setToolTip("concentration" if self.prior.currentIndex() == 1 else "loc (mean of log)")
        self.b.setToolTip("rate" if self.prior.currentIndex() == 1 else "scale (sd of log)")
        self.value.setEnabled(self.fix.isChecked())

    def set_values(self, prior: Gamma | LogNormal | None, fixed: float | None) -> None:
        with _Blocked(self.prior, self.a, self.b, self.fix, self.value):
            idx = 0 if prior is None else (1 if isinstance(prior, Gamma) else 2)
            if self.prior.currentIndex() != idx:
                self.prior.setCurrentIndex(idx)
            if idx == 2:
                self.a.setRange(-20.0, 20.0)
            else:
                self.a.setRange(1e-3, 1e4)
            if isinstance(prior, Gamma):
                vals = (prior.concentration, prior.rate)
            elif isinstance(prior, LogNormal):
                vals = (prior.loc, prior.scale)
            else:
                vals = None
            if vals is not None:
                if self.a.value() != vals[0]:
                    self.a.setValue(vals[0])
                if self.b.value() != vals[1]:
                    self.b.setValue(vals[1])
            self.fix.setChecked(fixed is not None)
            if fixed is not None and self.value.value() != fixed:
                self.value.setValue(fixed)
        self._sync_enabled()


class _Blocked:
    def __init__(self, *widgets: Any) -> None:
        self._w = widgets

    def __enter__(self) -> None:
        self._old = [w.blockSignals(True) for w in self._w]

    def __exit__(self, *exc: Any) -> None:
        for w, old in zip(self._w, self._old):
            w.blockSignals(old)


class NodePropertyPanel(QWidget):
    """Properties of the selected node: kind, ν, ARD, features, priors and fixed values."""

    edited = Signal(str, object)  # key, {attr: value}
    features_edited = Signal(str, object)  # key, tuple of names

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._key: str | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        self.header = QLabel("<i>Select a node to edit it.</i>")
        self.header.setWordWrap(True)
        outer.addWidget(self.header)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c0392b;")
        self.error.hide()
        outer.addWidget(self.error)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.kind = QComboBox()
        self.ard = QCheckBox("one lengthscale per feature (ARD)")
        form.addRow("kind", self.kind)
        form.addRow("", self.ard)
        outer.addLayout(form)
        self.features_label = QLabel("features (tick, or drop chips on the node)")
        self.features = QListWidget()
        self.features.setMaximumHeight(110)
        outer.addWidget(self.features_label)
        outer.addWidget(self.features)
        self.rows: dict[str, _ParamRow] = {}
        for p in ("lengthscale", "alpha", "period", "variance", "outputscale"):
            row = _ParamRow(p)
            row.changed.connect(self._param_changed)
            self.rows[p] = row
            outer.addWidget(row)
        self.children_label = QLabel()
        self.children_label.setWordWrap(True)
        outer.addWidget(self.children_label)
        outer.addStretch(1)
        self.kind.currentTextChanged.connect(self._kind_changed)
        self.ard.toggled.connect(lambda on: self._edit(ard=bool(on)))
        self.features.itemChanged.connect(self._features_changed)
        self.show_node(None, None, None, [])

    @property
    def key(self) -> str | None:
        return self._key

    def show_node(self, node: EditorNode | None, error: str | None, features: list[str] | None, kids: Sequence[str]) -> None:
        self._key = node.key if node is not None else None
        widgets = [self.kind, self.ard, self.features_label, self.features, self.children_label, *self.rows.values()]
        if node is None:
            self.header.setText("<i>Select a node to edit its properties.</i>")
            self.error.hide()
            for w in widgets:
                w.hide()
            return
        self.header.setText(f"<b>{node.label}</b> — {_DESCRIPTIONS.get(node.label, '')}<br><small>editor key {node.key}</small>")
        self.error.setVisible(bool(error))
        self.error.setText(f"⚠ {error}" if error else "")
        with _Blocked(self.kind, self.ard, self.features):
            self.kind.clear()
            if node.is_leaf:
                self.kind.addItems(list(LEAF_KINDS))
            elif node.kind in ("sum", "product"):
                self.kind.addItems(["sum", "product"])
            else:
                self.kind.addItems(["scale"])
            self.kind.setCurrentText(node.label)
            self.kind.setEnabled(self.kind.count() > 1)
            self.ard.setChecked(node.ard)
            self.features.clear()
            names = list(features) if features is not None else []
            names += [f for f in node.features if f not in names]
            for name in names:
                item = QListWidgetItem(name)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if name in node.features else Qt.CheckState.Unchecked)
                item.setData(Qt.ItemDataRole.UserRole, name)
                if features is not None and name not in features:
                    item.setText(f"{name}  (unknown feature)")
                    item.setForeground(QBrush(QColor("#c0392b")))
                self.features.addItem(item)
        self.kind.show()
        for w in (self.ard, self.features_label, self.features):
            w.setVisible(node.is_leaf)
        self.children_label.setVisible(not node.is_leaf)
        if not node.is_leaf:
            self.children_label.setText(
                f"inputs ({len(kids)}): " + (", ".join(kids) if kids else "<i>none — wire kernels into the input port</i>")
            )
        for p, row in self.rows.items():
            row.setVisible(p in node.params)
            if p in node.params:
                row.set_values(node.prior(p), node.value(p))

    def _edit(self, **attrs: Any) -> None:
        if self._key is not None:
            self.edited.emit(self._key, attrs)

    def _kind_changed(self, text: str) -> None:
        if text:
            self._edit(kind=text)

    def _param_changed(self, param: str, prior: Any, fixed: Any) -> None:
        self._edit(**{f"{param}_prior": prior, param: fixed})

    def _features_changed(self, _item: QListWidgetItem) -> None:
        if self._key is None:
            return
        names = tuple(
            self.features.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.features.count())
            if self.features.item(i).checkState() == Qt.CheckState.Checked
        )
        self.features_edited.emit(self._key, names)


# ================================================================================================
# Hands-on wizard
# ================================================================================================
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
            with _Blocked(combo):
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
            self.preview.setText(_html(text))
            ok = True
        except KernelGraphError as err:
            self.preview.setText(f"<span style='color:#c0392b'>{_html(str(err))}</span>")
            ok = False
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)


# ================================================================================================
# Prior preview
# ================================================================================================
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
        top.addWidget(_heading("Prior samples"))
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
        with _Blocked(self.x, self.y):
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
            with _Blocked(self.x):
                self.x.setCurrentText(used[0])
        self._request()

    def set_slice(self, x: str, y: str | None = None) -> None:
        """Slice along ``x`` (and ``y`` for a 2-D heatmap)."""
        with _Blocked(self.mode, self.x, self.y):
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


# ================================================================================================
# The editor
# ================================================================================================
class KernelGraphEditor(QWidget):
    """Visual kernel-graph editor: canvas, palette, features, properties, text form, preview.

    Signals:
        graph_changed: A valid :class:`KernelGraph`, whenever an edit in the editor (canvas, panel,
            text, wizard, undo/redo, :meth:`set_text`) changes the valid graph. :meth:`set_graph`
            loads a graph without emitting (the caller knows it).

    Programmatic construction (used by tests and the main window) goes through the same undoable
    commands as the mouse: :meth:`add_node`, :meth:`connect_nodes`, :meth:`set_leaf_features`,
    :meth:`set_node_attrs`, :meth:`delete_node`, :meth:`undo`, :meth:`redo`, :meth:`auto_layout`.
    """

    graph_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None, *, features: Sequence[str] | None = None, preview: bool = True) -> None:
        super().__init__(parent)
        self._doc = EditorDoc()
        self._features: list[str] | None = None
        self._analysis = analyze(self._doc, None)
        self._next_key = 0
        self._last_emitted: KernelGraph | None = None
        self._text_error: str | None = None
        self._typing = False
        self._selected: str | None = None
        self._message: str | None = None
        self.undo_stack = QUndoStack(self)

        self.scene = KernelScene(self)
        self.view = KernelView(self.scene)
        self.panel = NodePropertyPanel()
        self.preview = PriorPreviewPanel() if preview else None
        self._build_ui()

        self.scene.wire_requested.connect(self._ui_connect)
        self.scene.disconnect_requested.connect(self._ui_disconnect)
        self.scene.wrap_requested.connect(self.wrap_in_scale)
        self.scene.delete_requested.connect(self.delete_selected)
        self.scene.moved.connect(self._ui_moved)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.view.add_requested.connect(self._ui_add)
        self.view.feature_dropped.connect(self._ui_feature_dropped)
        self.view.delete_pressed.connect(self.delete_selected)
        self.panel.edited.connect(self._ui_edit_attrs)
        self.panel.features_edited.connect(self._ui_edit_features)

        self._text_timer = QTimer(self)
        self._text_timer.setSingleShot(True)
        self._text_timer.setInterval(600)
        self._text_timer.timeout.connect(lambda: self._apply_text(canonical=False))
        self.text_edit.textEdited.connect(self._text_edited)
        self.text_edit.returnPressed.connect(lambda: self._apply_text(canonical=True))

        if features is not None:
            self.set_features(features)
        self._set_doc(self._doc)

    # -- UI construction ---------------------------------------------------------------------
    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.setSpacing(4)

        self.toolbar = QToolBar()
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.toolbar.setIconSize(QSize(16, 16))
        self.undo_action = self.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.redo_action = self.undo_stack.createRedoAction(self, "Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)])
        self.delete_action = QAction("Delete", self)
        self.delete_action.setToolTip("Delete the selected nodes and wires (Del)")
        self.delete_action.triggered.connect(self.delete_selected)
        self.layout_action = QAction("Auto layout", self)
        self.layout_action.triggered.connect(self.auto_layout)
        self.fit_action = QAction("Fit", self)
        self.fit_action.setShortcut(QKeySequence("Ctrl+0"))
        self.fit_action.triggered.connect(self.fit_view)
        self.zoom_in_action = QAction("Zoom +", self)
        self.zoom_in_action.setShortcut(QKeySequence(QKeySequence.StandardKey.ZoomIn))
        self.zoom_in_action.triggered.connect(lambda: self.view.zoom(1.25))
        self.zoom_out_action = QAction("Zoom −", self)
        self.zoom_out_action.setShortcut(QKeySequence(QKeySequence.StandardKey.ZoomOut))
        self.zoom_out_action.triggered.connect(lambda: self.view.zoom(0.8))
        self.wizard_action = QAction("Hands-on kernel…", self)
        self.wizard_action.setToolTip("Build a weighted sum of products of sums from feature groups")
        self.wizard_action.triggered.connect(self._run_wizard)
        for act in (self.undo_action, self.redo_action, self.fit_action, self.zoom_in_action, self.zoom_out_action):
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(act)
        for act in (self.undo_action, self.redo_action, self.delete_action):
            self.toolbar.addAction(act)
        self.toolbar.addSeparator()
        for act in (self.layout_action, self.fit_action, self.zoom_in_action, self.zoom_out_action):
            self.toolbar.addAction(act)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.wizard_action)
        root.addWidget(self.toolbar)

        # left column: palette + features
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(_heading("Kernels"))
        self.palette = _DragList(MIME_KIND)
        self.palette.setToolTip("Drag onto the canvas, or double-click to add")
        for section, kinds in (("base kernels", LEAF_KINDS), ("operators", OPERATOR_KINDS)):
            head = QListWidgetItem(section)
            head.setFlags(Qt.ItemFlag.NoItemFlags)
            f = head.font()
            f.setItalic(True)
            head.setFont(f)
            head.setForeground(QBrush(QColor("#888")))
            self.palette.addItem(head)
            for kind in kinds:
                item = QListWidgetItem(f"  {kind}")
                item.setData(Qt.ItemDataRole.UserRole, kind)
                item.setToolTip(_DESCRIPTIONS[kind])
                color = _COLORS["leaf"] if kind in LEAF_KINDS else _COLORS[kind]
                item.setForeground(QBrush(color.lighter(110)))
                self.palette.addItem(item)
        self.palette.itemDoubleClicked.connect(lambda it: self._palette_add(it))
        lv.addWidget(self.palette, 3)
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add the selected palette kernel to the canvas")
        self.add_button.clicked.connect(lambda: self._palette_add(self.palette.currentItem()))
        lv.addWidget(self.add_button)
        lv.addWidget(_heading("Features"))
        self.feature_list = _DragList(MIME_FEATURE)
        self.feature_list.setToolTip("Drag a feature chip onto a leaf")
        lv.addWidget(self.feature_list, 2)
        left.setMinimumWidth(130)
        left.setMaximumWidth(190)

        # right column: properties + preview
        right = QSplitter(Qt.Orientation.Vertical)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        panel_box = QWidget()
        pv = QVBoxLayout(panel_box)
        pv.setContentsMargins(0, 0, 0, 0)
        pv.addWidget(_heading("Properties"))
        pv.addWidget(self.panel)
        scroll.setWidget(panel_box)
        right.addWidget(scroll)
        if self.preview is not None:
            right.addWidget(self.preview)
            right.setStretchFactor(0, 1)
            right.setStretchFactor(1, 1)
            right.setSizes([360, 330])
        right.setMinimumWidth(270)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.view)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([160, 640, 330])
        root.addWidget(split, 1)

        text_row = QHBoxLayout()
        text_row.addWidget(QLabel("Text:"))
        self.text_edit = QLineEdit()
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.text_edit.setFont(mono)
        self.text_edit.setPlaceholderText("kernel text, e.g. scale(matern52(x1) * rbf(x2)) — Enter to apply")
        text_row.addWidget(self.text_edit, 1)
        root.addLayout(text_row)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        root.addWidget(self.status_label)
        self.resize(1200, 760)

    # -- public API --------------------------------------------------------------------------
    def set_features(self, names: Sequence[str]) -> None:
        """Set the model's feature names; leaves over missing features are flagged, not changed."""
        if isinstance(names, str):
            raise KernelGraphError(f"feature names must be a list, got the string {names!r}")
        self._features = list(names)
        self.feature_list.clear()
        for name in self._features:
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.feature_list.addItem(item)
        if self.preview is not None:
            self.preview.set_features(self._features)
        self._refresh()

    def features(self) -> list[str] | None:
        """The model's feature names (``None`` until :meth:`set_features`)."""
        return None if self._features is None else list(self._features)

    def set_graph(self, graph: KernelGraph | None) -> None:
        """Load a graph (auto-laid out); clears the undo history and does not emit."""
        if graph is None:
            doc = EditorDoc()
        else:
            if not isinstance(graph, KernelGraph):
                raise KernelGraphError(f"set_graph expects a KernelGraph, got {type(graph).__name__}")
            doc = layout_doc(doc_from_graph(graph, self._new_key))
        self.undo_stack.clear()
        self._set_doc(doc, emit=False)
        self._last_emitted = self._analysis.graph
        self.fit_view()

    def graph(self) -> KernelGraph | None:
        """The current kernel graph, or ``None`` while the canvas is incomplete or invalid."""
        return self._analysis.graph

    def text(self) -> str:
        """The text box's content."""
        return self.text_edit.text()

    def set_text(self, text: str) -> bool:
        """Parse ``text`` and rebuild the canvas from it (one undoable step).

        Returns:
            ``True`` if it parsed; otherwise the canvas is unchanged and the status line and
            :meth:`text_error` say why.
        """
        self.text_edit.setText(text)
        return self._apply_text(canonical=True)

    def text_error(self) -> str | None:
        """The last parse error of the text box (``None`` when it parsed)."""
        return self._text_error

    def status(self) -> str:
        """The status line's text."""
        return self.status_label.text()

    def errors(self) -> dict[str, str]:
        """Node key -> message for every node with a problem."""
        return dict(self._analysis.errors)

    def node_keys(self) -> list[str]:
        return list(self._doc.nodes)

    def node(self, key: str) -> EditorNode:
        return self._doc.nodes[key]

    def children(self, key: str) -> tuple[str, ...]:
        return self._doc.children(key)

    def parent_key(self, key: str) -> str | None:
        return self._doc.parent(key)

    def document(self) -> EditorDoc:
        return self._doc

    def key_of_id(self, node_id: str) -> str | None:
        """Editor key of a graph node id (valid graphs only)."""
        return self._analysis.id_to_key.get(node_id)

    def add_node(self, kind: str, **attrs: Any) -> str:
        """Add an unconnected node; returns its key.

        Args:
            kind: ``rbf``, ``matern12/32/52`` (or ``matern`` with ``nu=``), ``rq``, ``periodic``,
                ``linear``, ``sum``, ``product`` or ``scale``.
            **attrs: ``features``, ``ard``, ``nu``, ``id``, ``pos=(x, y)``, ``<param>=value``,
                ``<param>_prior=Gamma(..)/LogNormal(..)``.
        """
        core, nu = _core_kind(kind)
        key = self._new_key()
        node = EditorNode(key, core, nu=nu if nu is not None else 2.5)
        pos = attrs.pop("pos", None)
        node = self._with_attrs(node, attrs)
        node = replace(node, pos=tuple(pos) if pos is not None else self._free_pos())
        self._push(self._doc.with_node(node), f"Add {node.label}")
        return key

    def connect_nodes(self, child_key: str, parent_key: str, index: int | None = None) -> None:
        """Wire ``child_key``'s output into ``parent_key``'s input (moving it from an old parent).

        A scale holds one input: connecting another replaces (disconnects) the old one.

        Raises:
            KernelGraphError: Unknown keys, a leaf as parent, or a cycle.
        """
        doc = self._doc
        for k in (child_key, parent_key):
            if k not in doc.nodes:
                raise KernelGraphError(f"no node with key {k!r} on the canvas")
        parent = doc.nodes[parent_key]
        if child_key == parent_key:
            raise KernelGraphError("cannot wire a node into itself", node_id=None)
        if parent.is_leaf:
            raise KernelGraphError(f"{parent.label} is a base kernel and has no input; wire into sum, product or scale")
        if parent_key in doc.subtree(child_key):
            raise KernelGraphError(f"wiring {doc.nodes[child_key].label} into {parent.label} would make a cycle")
        if doc.parent(child_key) == parent_key and index is None:
            return
        if parent.kind == "scale":
            for old in doc.children(parent_key):
                if old != child_key:
                    doc = doc.without_edge_to(old)
        doc = doc.with_edge(child_key, parent_key, index)
        self._push(doc, f"Connect {doc.nodes[child_key].label} → {parent.label}")

    def disconnect_node(self, child_key: str) -> None:
        """Remove the wire from ``child_key`` to its parent."""
        if self._doc.parent(child_key) is None:
            return
        self._push(self._doc.without_edge_to(child_key), "Disconnect")

    def set_leaf_features(self, key: str, names: Sequence[str]) -> None:
        """Set a leaf's features (names not in the feature list are allowed, and flagged)."""
        node = self._doc.nodes[key]
        if not node.is_leaf:
            raise KernelGraphError(f"{node.label} is an operator; features go on base kernels")
        if isinstance(names, str):
            names = [names]
        feats = tuple(dict.fromkeys(names))
        if feats != node.features:
            self._push(self._doc.with_node(replace(node, features=feats)), f"Features of {node.label}")

    def set_node_attrs(self, key: str, **attrs: Any) -> None:
        """Change attributes of a node: ``kind``, ``nu``, ``ard``, ``id``, ``features``,
        ``<param>``, ``<param>_prior``. Validated like the core nodes.

        Raises:
            KernelGraphError: A bad value (e.g. ``lengthscale=-1``) or an attribute the kind lacks.
        """
        node = self._doc.nodes[key]
        new = self._with_attrs(node, attrs)
        if new != node:
            merge = (key, tuple(sorted(attrs)))
            self._push(self._doc.with_node(new), f"Edit {new.label}", merge_key=merge)

    def delete_node(self, key: str) -> None:
        """Delete a node; its inputs stay on the canvas, unconnected."""
        self.delete_nodes([key])

    def delete_nodes(self, keys: Iterable[str]) -> None:
        doc = self._doc
        keys = [k for k in keys if k in doc.nodes]
        if not keys:
            return
        for k in keys:
            doc = doc.without_node(k)
        self._push(doc, "Delete" if len(keys) > 1 else f"Delete {self._doc.nodes[keys[0]].label}")

    def delete_selected(self) -> None:
        """Delete the selected nodes and disconnect the selected wires (one undo step)."""
        doc = self._doc
        nodes = self.scene.selected_keys()
        wires = [i.child for i in self.scene.selectedItems() if isinstance(i, WireItem)]
        if not nodes and not wires:
            return
        for child in wires:
            doc = doc.without_edge_to(child)
        for k in nodes:
            doc = doc.without_node(k)
        self._push(doc, "Delete")

    def wrap_in_scale(self, key: str) -> str:
        """Put a scale between ``key`` and its parent; returns the scale's key."""
        doc = self._doc
        node = doc.nodes[key]
        parent = doc.parent(key)
        skey = self._new_key()
        x, y = node.pos
        scale = EditorNode(skey, "scale", pos=(x + 60, y + 30))
        doc = doc.with_node(scale)
        if parent is not None:
            idx = doc.children(parent).index(key)
            doc = doc.without_edge_to(key).with_edge(skey, parent, idx)
        doc = doc.with_edge(key, skey)
        self._push(layout_doc(doc), f"Wrap {node.label} in scale")
        return skey

    def apply_graph(self, graph: KernelGraph, label: str = "Replace kernel") -> None:
        """Replace the canvas by ``graph`` as one undoable edit (emits ``graph_changed``)."""
        doc = layout_doc(doc_from_graph(graph, self._new_key))
        self._push(doc, label)
        self.fit_view()

    def apply_hands_on(self, groups: Sequence[Sequence[str]], joint: bool = True, nu: float = 2.5) -> None:
        """Replace the canvas by :func:`hands_on_kernel` of these feature groups (undoable)."""
        self.apply_graph(hands_on_kernel(groups, joint=joint, nu=nu), "Hands-on kernel")

    def make_wizard(self) -> HandsOnWizard:
        """The hands-on wizard dialog; accepting it applies its kernel to the canvas."""
        feats = self._features if self._features is not None else list(self._used_features())
        dlg = HandsOnWizard(feats, self)
        dlg.accepted.connect(lambda: self.apply_graph(dlg.graph(), "Hands-on kernel"))
        return dlg

    def undo(self) -> None:
        self.undo_stack.undo()

    def redo(self) -> None:
        self.undo_stack.redo()

    def auto_layout(self) -> None:
        """Tree layout (one undoable step) and fit to view."""
        doc = layout_doc(self._doc)
        if doc != self._doc:
            self._push(doc, "Auto layout")
        self.fit_view()

    def fit_view(self) -> None:
        self.view.fit()

    def select_node(self, key: str | None) -> None:
        self.scene.clearSelection()
        if key is not None and key in self.scene.node_items:
            self.scene.node_items[key].setSelected(True)

    def selected_node(self) -> str | None:
        return self._selected

    @property
    def preview_controller(self) -> PriorPreviewController | None:
        return None if self.preview is None else self.preview.controller

    def shutdown(self) -> None:
        """Stop the preview thread (also done on close and when the application quits)."""
        if self.preview is not None:
            self.preview.shutdown()

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    # -- internals: document -----------------------------------------------------------------
    def _new_key(self) -> str:
        self._next_key += 1
        return f"k{self._next_key}"

    def _free_pos(self) -> tuple[float, float]:
        c = self.view.mapToScene(self.view.viewport().rect().center())
        x, y = c.x() - NODE_WIDTH / 2, c.y() - 40
        taken = {n.pos for n in self._doc.nodes.values()}
        while (x, y) in taken or any(abs(x - a) < 30 and abs(y - b) < 30 for a, b in taken):
            x, y = x + 36, y + 36
        return (x, y)

    def _with_attrs(self, node: EditorNode, attrs: Mapping[str, Any]) -> EditorNode:
        attrs = dict(attrs)
        if "kind" in attrs:
            core, nu = _core_kind(attrs.pop("kind"))
            to_leaf = issubclass(NODE_TYPES[core], LeafNode)
            if core != node.kind and (to_leaf != node.is_leaf or "scale" in (core, node.kind)):
                raise KernelGraphError(f"cannot turn a {node.label} into a {core}")
            params = NODE_TYPES[core].PARAMS
            node = replace(
                node,
                kind=core,
                nu=nu if nu is not None else node.nu,
                priors=tuple((p, v) for p, v in node.priors if p in params),
                fixed=tuple((p, v) for p, v in node.fixed if p in params),
            )
        priors = dict(node.priors)
        fixed = dict(node.fixed)
        for name, value in attrs.items():
            if name == "features":
                if not node.is_leaf:
                    raise KernelGraphError(f"{node.label} is an operator; features go on base kernels")
                value = [value] if isinstance(value, str) else value
                node = replace(node, features=tuple(dict.fromkeys(value)))
            elif name == "ard":
                node = replace(node, ard=bool(value))
            elif name == "nu":
                if node.kind != "matern":
                    raise KernelGraphError(f"{node.label} has no nu")
                node = replace(node, nu=float(value))
            elif name == "id":
                node = replace(node, node_id=value or None)
            elif name.endswith("_prior") and name[: -len("_prior")] in node.params:
                p = name[: -len("_prior")]
                if value is None:
                    priors.pop(p, None)
                else:
                    priors[p] = value
            elif name in node.params:
                if value is None:
                    fixed.pop(name, None)
                else:
                    fixed[name] = value
            else:
                raise KernelGraphError(f"{node.label} has no attribute {name!r}")
        order = node.params
        node = replace(
            node,
            priors=tuple((p, priors[p]) for p in order if p in priors),
            fixed=tuple((p, float(fixed[p])) for p in order if p in fixed),
        )
        _probe(node)
        return node

    def _push(self, doc: EditorDoc, label: str, merge_key: Any = None) -> None:
        if doc == self._doc:
            return
        self.undo_stack.push(_DocCommand(self, self._doc, doc, label, merge_key))

    def _set_doc(self, doc: EditorDoc, emit: bool = True) -> None:
        self._doc = doc
        self._refresh(emit=emit)

    def _refresh(self, emit: bool = True) -> None:
        self._analysis = analyze(self._doc, self._features)
        self.scene.sync(self._doc, self._analysis, self._features)
        graph = self._analysis.graph
        if graph is not None and not self._typing:
            text = format_kernel(graph)
            if text != self.text_edit.text():
                self.text_edit.setText(text)
            self._set_text_error(None)
        self._show_panel()
        self._update_status()
        if graph is not None and emit and graph != self._last_emitted:
            self._last_emitted = graph
            self.graph_changed.emit(graph)
        if self.preview is not None:
            if self._features is None:
                self.preview.set_features(self._used_features())
            self.preview.set_graph(graph)

    def _used_features(self) -> list[str]:
        out: dict[str, None] = {}
        for n in self._doc.nodes.values():
            out.update(dict.fromkeys(n.features))
        return list(out)

    def _update_status(self) -> None:
        a = self._analysis
        if self._text_error:
            msg, color = f"Text: {self._text_error}", "#c0392b"
        elif self._message:
            msg, color = self._message, "#b9770e"
        elif a.graph is not None:
            msg, color = "✓ " + a.status, "#1e8449"
        else:
            msg, color = a.status, "#c0392b" if a.errors else "#b9770e"
        self.status_label.setText(msg)
        self.status_label.setStyleSheet(f"color: {color};")
        self._message = None

    def _show_panel(self) -> None:
        key = self._selected if self._selected in self._doc.nodes else None
        node = self._doc.nodes.get(key) if key else None
        kids = []
        if node is not None:
            kids = [self._doc.nodes[k].label for k in self._doc.children(key)]  # type: ignore[arg-type]
        self.panel.show_node(node, self._analysis.errors.get(key) if key else None, self._features, kids)

    # -- internals: text ---------------------------------------------------------------------
    def _set_text_error(self, err: str | None) -> None:
        self._text_error = err
        self.text_edit.setStyleSheet("QLineEdit { border: 2px solid #c0392b; }" if err else "")
        self.text_edit.setToolTip(err or "")

    def _text_edited(self, _text: str) -> None:
        self._text_timer.start()

    def _apply_text(self, canonical: bool) -> bool:
        self._text_timer.stop()
        text = self.text_edit.text()
        try:
            graph = parse_kernel(text)
        except KernelGraphError as err:
            self._set_text_error(str(err))
            self._update_status()
            return False
        self._set_text_error(None)
        if graph != self._analysis.graph:
            doc = layout_doc(doc_from_graph(graph, self._new_key))
            self._typing = not canonical
            try:
                self._push(doc, "Edit text", merge_key=None if canonical else "text")
            finally:
                self._typing = False
            self.fit_view()
        if canonical and self._analysis.graph is not None:
            self.text_edit.setText(format_kernel(self._analysis.graph))
        self._update_status()
        return True

    # -- internals: UI callbacks -------------------------------------------------------------
    def _report(self, err: Exception) -> None:
        self._message = str(err)
        self._update_status()

    def _ui_connect(self, child: str, parent: str) -> None:
        try:
            self.connect_nodes(child, parent)
        except KernelGraphError as err:
            self._report(err)

    def _ui_disconnect(self, child: str) -> None:
        self.disconnect_node(child)

    def _ui_moved(self, moved: dict[str, tuple[float, float]]) -> None:
        doc = self._doc
        for k, p in moved.items():
            if k in doc.nodes:
                doc = doc.with_node(replace(doc.nodes[k], pos=p))
        self._push(doc, "Move")

    def _ui_add(self, kind: str, pos: QPointF) -> None:
        self.add_node(kind, pos=(pos.x() - NODE_WIDTH / 2, pos.y() - TITLE_H / 2))

    def _palette_add(self, item: QListWidgetItem | None) -> None:
        kind = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if kind:
            key = self.add_node(kind)
            self.select_node(key)

    def _ui_feature_dropped(self, key: str, name: str) -> None:
        node = self._doc.nodes.get(key)
        if node is not None and node.is_leaf and name not in node.features:
            self.set_leaf_features(key, node.features + (name,))

    def _ui_edit_attrs(self, key: str, attrs: dict[str, Any]) -> None:
        try:
            self.set_node_attrs(key, **attrs)
        except KernelGraphError as err:
            self._report(err)

    def _ui_edit_features(self, key: str, names: tuple[str, ...]) -> None:
        self.set_leaf_features(key, names)

    def _selection_changed(self) -> None:
        keys = self.scene.selected_keys()
        self._selected = keys[0] if keys else None
        self._show_panel()

    def _run_wizard(self) -> None:
        self.make_wizard().open()


def _probe(node: EditorNode) -> None:
    """Validate a node's attributes with the core's rules (features/children stubbed)."""
    kw: dict[str, Any] = {"id": node.node_id}
    for p in node.params:
        kw[f"{p}_prior"] = node.prior(p)
        kw[p] = node.value(p)
    cls = NODE_TYPES[node.kind]
    if node.is_leaf:
        if node.kind == "matern":
            kw["nu"] = node.nu
        cls(node.features or ("_",), ard=node.ard, **kw)  # type: ignore[call-arg]
    elif node.kind == "scale":
        ScaleNode(MaternNode(("_",)), **kw)


def _heading(text: str) -> QLabel:
    label = QLabel(f"<b>{text}</b>")
    label.setContentsMargins(2, 4, 2, 0)
    return label
