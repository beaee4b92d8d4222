"""``KernelGraphEditor``: a node editor for kernel graphs, with its text form and a prior preview.

Layout::

    [toolbar: undo redo delete | auto-layout fit | hands-on wizard]
    [palette  ] [ canvas (QGraphicsView)                    ] [ properties of the selected node ]
    [features ] [   leaves --wire--> operators --> root     ] [ prior samples (pyqtgraph)       ]
    [text: scale(matern52(x1) * rbf(x2)) + ...                                                 ]
    [status line                                                                                ]

The editor keeps its own document, an immutable :class:`~lla_studio.core.kernels.draft.EditorDoc`
of nodes and parent -> children edges (the draft document, its analysis and its connect rules live
in the model layer, :mod:`lla_studio.core.kernels.draft`), so that partial graphs (an operator with no inputs yet, unconnected
nodes, a leaf without features or over a feature that no longer exists) can live on the canvas.
:func:`~lla_studio.core.kernels.draft.analyze` turns a document into a :class:`~lla_studio.core.kernels.KernelGraph` when it is
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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QMimeData, QPointF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QDrag, QFont, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import KernelGraph, format_kernel, hands_on_kernel, parse_kernel
from lla_studio.engine.preview_worker import PriorPreviewController
from lla_studio.core.kernels.draft import (
    DESCRIPTIONS,
    LEAF_KINDS,
    OPERATOR_KINDS,
    EditorDoc,
    EditorNode,
    analyze,
    connect,
    core_kind,
    doc_from_graph,
    edit_node,
)
from lla_studio.gui.kernel_editor.common import heading
from lla_studio.gui.kernel_editor.items import (
    _COLORS,
    MIME_FEATURE,
    MIME_KIND,
    NODE_WIDTH,
    TITLE_H,
    WireItem,
    layout_doc,
)
from lla_studio.gui.kernel_editor.canvas import KernelScene, KernelView
from lla_studio.gui.kernel_editor.properties import NodePropertyPanel
from lla_studio.gui.kernel_editor.wizard import HandsOnWizard
from lla_studio.gui.kernel_editor.preview import PriorPreviewPanel


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

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        features: Sequence[str] | None = None,
        preview: bool = True,
        undo_stack: QUndoStack | None = None,
    ) -> None:
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
        # the window's one command stack when given (its owner clears it and holds the shortcuts)
        self._owns_stack = undo_stack is None
        self.undo_stack = undo_stack if undo_stack is not None else QUndoStack(self)

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
        self.redo_action = self.undo_stack.createRedoAction(self, "Redo")
        if self._owns_stack:  # else the window's Edit menu holds the shortcuts (one stack, no ambiguity)
            self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
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
        lv.addWidget(heading("Kernels"))
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
                item.setToolTip(DESCRIPTIONS[kind])
                color = _COLORS["leaf"] if kind in LEAF_KINDS else _COLORS[kind]
                item.setForeground(QBrush(color.lighter(110)))
                self.palette.addItem(item)
        self.palette.itemDoubleClicked.connect(lambda it: self._palette_add(it))
        lv.addWidget(self.palette, 3)
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add the selected palette kernel to the canvas")
        self.add_button.clicked.connect(lambda: self._palette_add(self.palette.currentItem()))
        lv.addWidget(self.add_button)
        lv.addWidget(heading("Features"))
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
        pv.addWidget(heading("Properties"))
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
        """Load a graph (auto-laid out) without emitting; clears the undo history when the editor
        owns its stack (a shared stack is cleared by its owner)."""
        if graph is None:
            doc = EditorDoc()
        else:
            if not isinstance(graph, KernelGraph):
                raise KernelGraphError(f"set_graph expects a KernelGraph, got {type(graph).__name__}")
            doc = layout_doc(doc_from_graph(graph, self._new_key))
        if self._owns_stack:
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
        core, nu = core_kind(kind)
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
            KernelGraphError: Unknown keys, a leaf as parent, or a cycle (:func:`~lla_studio.core.kernels.draft.connect`).
        """
        doc = connect(self._doc, child_key, parent_key, index)
        self._push(doc, f"Connect {doc.nodes[child_key].label} → {doc.nodes[parent_key].label}")

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
        return edit_node(node, attrs)

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
