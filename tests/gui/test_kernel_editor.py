"""KernelGraphEditor: build graphs through the API and the canvas, text sync, undo, flags, preview."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QDialog

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import Gamma, KernelGraph, ProductNode, ScaleNode, SumNode, format_kernel, hands_on_kernel, parse_kernel
from lla_studio.gui.kernel_editor import KernelGraphEditor
from lla_studio.gui.kernel_editor.items import MIME_FEATURE, MIME_KIND, NodeItem, WireItem

FEATURES = ["x1", "x2", "x3"]


@pytest.fixture
def editor(qtbot):
    ed = KernelGraphEditor(features=FEATURES, preview=False)
    qtbot.addWidget(ed)
    return ed


def _canvas_nodes(ed: KernelGraphEditor) -> list[NodeItem]:
    return [i for i in ed.scene.items() if isinstance(i, NodeItem)]


def _build_product(ed: KernelGraphEditor) -> tuple[str, str, str]:
    prod = ed.add_node("product")
    m = ed.add_node("matern52")
    r = ed.add_node("rbf")
    ed.connect_nodes(m, prod)
    ed.connect_nodes(r, prod)
    ed.set_leaf_features(m, ["x1"])
    ed.set_leaf_features(r, ["x2"])
    return prod, m, r


def test_build_two_leaf_product_through_the_api(editor, qtbot):
    emitted: list[KernelGraph] = []
    editor.graph_changed.connect(emitted.append)
    prod = editor.add_node("product")
    assert editor.graph() is None
    assert "empty product" in editor.errors()[prod]
    m = editor.add_node("matern52")
    r = editor.add_node("rbf")
    editor.connect_nodes(m, prod)
    editor.connect_nodes(r, prod)
    editor.set_leaf_features(m, ["x1"])
    assert set(editor.errors()) == {r}  # the rbf still has no features
    assert emitted == []
    with qtbot.waitSignal(editor.graph_changed, timeout=1000) as blocker:
        editor.set_leaf_features(r, ["x2"])
    graph = blocker.args[0]
    assert isinstance(graph, KernelGraph)
    assert format_kernel(graph) == "matern52(x1) * rbf(x2)"
    assert editor.text() == "matern52(x1) * rbf(x2)"
    assert editor.graph() == graph and editor.errors() == {}
    assert len(emitted) == 1
    assert editor.status().startswith("✓")
    assert len(_canvas_nodes(editor)) == 3
    assert len([i for i in editor.scene.items() if isinstance(i, WireItem)]) == 2
    # the canvas knows which node is which graph node
    assert editor.key_of_id(graph.root.id) == prod


def test_text_box_edits_rebuild_the_canvas(editor, qtbot):
    _build_product(editor)
    assert len(_canvas_nodes(editor)) == 3
    editor.text_edit.clear()
    with qtbot.waitSignal(editor.graph_changed, timeout=1000) as blocker:
        qtbot.keyClicks(editor.text_edit, "scale(matern32(x1)*rbf(x2))+linear(x3)")
        qtbot.keyClick(editor.text_edit, Qt.Key.Key_Return)
    assert format_kernel(blocker.args[0]) == "scale(matern32(x1) * rbf(x2)) + linear(x3)"
    assert len(_canvas_nodes(editor)) == 6
    assert editor.text() == "scale(matern32(x1) * rbf(x2)) + linear(x3)"  # canonical after Enter
    # typing without Enter applies after the debounce
    editor.text_edit.clear()
    with qtbot.waitSignal(editor.graph_changed, timeout=3000):
        qtbot.keyClicks(editor.text_edit, "rbf(x1, x2)")
    assert len(_canvas_nodes(editor)) == 1
    # a syntax error leaves the canvas alone and says where
    assert editor.set_text("rbf(x1 +") is False
    assert editor.text_error().startswith("col ")
    assert "Text: col" in editor.status()
    assert len(_canvas_nodes(editor)) == 1
    assert editor.graph() == parse_kernel("rbf(x1, x2)")


def test_undo_redo_restore_canvas_and_text(editor, qtbot):
    prod, m, r = _build_product(editor)
    full = editor.graph()
    editor.set_text("rbf(x3)")
    assert len(_canvas_nodes(editor)) == 1
    with qtbot.waitSignal(editor.graph_changed, timeout=1000) as blocker:
        editor.undo()
    assert blocker.args[0] == full
    assert len(_canvas_nodes(editor)) == 3
    assert editor.text() == "matern52(x1) * rbf(x2)"
    editor.undo()  # the rbf's features
    assert editor.graph() is None and r in editor.errors()
    editor.redo()
    assert editor.graph() == full
    editor.redo()
    assert format_kernel(editor.graph()) == "rbf(x3)"
    # delete + undo, and the keyboard shortcuts
    editor.undo()
    editor.delete_node(m)
    assert m not in editor.node_keys() and editor.children(prod) == (r,)
    assert format_kernel(editor.graph()) == "product(rbf(x2))"
    with qtbot.waitActive(editor):
        editor.show()
        editor.activateWindow()
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert editor.graph() == full
    qtbot.keyClick(editor.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert m not in editor.node_keys()
    editor.undo()
    editor.select_node(r)
    qtbot.keyClick(editor.view, Qt.Key.Key_Delete)
    assert r not in editor.node_keys()
    assert format_kernel(editor.graph()) == "product(matern52(x1))"
    editor.undo()
    assert editor.graph() == full


def test_removing_a_feature_flags_the_leaf_instead_of_dropping_it(editor):
    _prod, m, r = _build_product(editor)
    editor.set_features(["x1", "x3"])
    errors = editor.errors()
    assert set(errors) == {r}
    assert "unknown feature 'x2'" in errors[r]
    assert editor.node(r).features == ("x2",)  # kept, flagged
    assert editor.graph() is None
    item = editor.scene.node_items[r]
    assert item.error == errors[r] and "unknown feature" in item.toolTip()
    assert "Incomplete" in editor.status()
    editor.set_features(FEATURES)
    assert editor.errors() == {} and format_kernel(editor.graph()) == "matern52(x1) * rbf(x2)"


def test_partial_graphs_live_on_the_canvas(editor):
    leaf = editor.add_node("rbf", features=["x1"])
    assert format_kernel(editor.graph()) == "rbf(x1)"
    lonely = editor.add_node("sum")
    assert editor.graph() is None
    assert "empty sum" in editor.errors()[lonely]
    other = editor.add_node("linear", features=["x3"])
    assert "unconnected part" in editor.status()
    with pytest.raises(KernelGraphError, match="no input"):
        editor.connect_nodes(leaf, other)
    editor.connect_nodes(leaf, lonely)
    editor.connect_nodes(other, lonely)
    with pytest.raises(KernelGraphError, match="into itself"):
        editor.connect_nodes(lonely, lonely)
    inner = editor.add_node("product")
    editor.connect_nodes(inner, lonely)
    with pytest.raises(KernelGraphError, match="cycle"):
        editor.connect_nodes(lonely, inner)
    editor.delete_node(inner)
    # a scale holds one input: wiring another replaces it
    s = editor.wrap_in_scale(other)
    assert editor.children(s) == (other,)
    assert format_kernel(editor.graph()) == "rbf(x1) + scale(linear(x3))"
    editor.connect_nodes(leaf, s)
    assert editor.children(s) == (leaf,) and editor.parent_key(other) is None
    assert editor.graph() is None  # the linear leaf is now unconnected
    editor.undo()
    assert format_kernel(editor.graph()) == "rbf(x1) + scale(linear(x3))"


def test_property_edits_are_undoable_commands(editor):
    editor.set_text("matern52(x1, x2)")
    (key,) = editor.node_keys()
    editor.select_node(key)
    panel = editor.panel
    assert panel.key == key
    panel.kind.setCurrentText("matern32")
    assert editor.text() == "matern32(x1, x2)"
    panel.ard.setChecked(False)
    assert editor.text() == "matern32(x1, x2; ard=false)"
    row = panel.rows["lengthscale"]
    row.prior.setCurrentIndex(1)  # gamma(3, 6) by default
    assert editor.text() == "matern32(x1, x2; ard=false, lengthscale~gamma(3, 6))"
    row.a.setValue(2.0)
    row.b.setValue(4.0)
    assert editor.node(key).prior("lengthscale") == Gamma(2.0, 4.0)
    # feature check boxes
    panel.features.item(2).setCheckState(Qt.CheckState.Checked)
    assert editor.node(key).features == ("x1", "x2", "x3")
    editor.undo()  # features
    editor.undo()  # the whole prior edit (merged)
    assert editor.text() == "matern32(x1, x2; ard=false)"
    with pytest.raises(KernelGraphError, match="lengthscale"):
        editor.set_node_attrs(key, lengthscale=-1.0)
    editor.set_node_attrs(key, lengthscale=0.3)
    assert editor.text() == "matern32(x1, x2; ard=false, lengthscale=0.3)"


def _drop(view, mime: str, payload: str, scene_pos: QPointF) -> None:
    data = QMimeData()
    data.setData(mime, payload.encode())
    pos = view.mapFromScene(scene_pos)
    event = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    view.dropEvent(event)


def test_drops_from_palette_and_feature_list(editor, qtbot):
    with qtbot.waitExposed(editor):
        editor.show()
    _drop(editor.view, MIME_KIND, "periodic", editor.view.mapToScene(QPoint(150, 120)))
    (key,) = editor.node_keys()
    assert editor.node(key).kind == "periodic"
    item = editor.scene.node_items[key]
    _drop(editor.view, MIME_FEATURE, "x2\nx3", item.sceneBoundingRect().center())
    assert editor.node(key).features == ("x2", "x3")
    assert format_kernel(editor.graph()) == "periodic(x2, x3)"
    # the palette and feature lists export those mime types
    kinds = [editor.palette.item(i) for i in range(editor.palette.count())]
    rq = next(i for i in kinds if i.data(Qt.ItemDataRole.UserRole) == "rq")
    assert bytes(editor.palette.mime_for([rq]).data(MIME_KIND).data()) == b"rq"
    feat = editor.feature_list.item(0)
    assert bytes(editor.feature_list.mime_for([feat]).data(MIME_FEATURE).data()) == b"x1"


def test_wiring_by_dragging_between_ports(editor, qtbot):
    with qtbot.waitExposed(editor):
        editor.show()
    prod = editor.add_node("product", pos=(200, 0))
    leaf = editor.add_node("rbf", features=["x1"], pos=(-150, 0))
    editor.view.resetTransform()
    editor.view.centerOn(QPointF(100, 40))
    nodes = editor.scene.node_items
    start = editor.view.mapFromScene(nodes[leaf].out_port.scenePos())
    end = editor.view.mapFromScene(nodes[prod].in_port.scenePos())
    vp = editor.view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(vp, pos=(start + end) / 2)
    qtbot.mouseMove(vp, pos=end)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=end)
    assert editor.children(prod) == (leaf,)
    assert format_kernel(editor.graph()) == "product(rbf(x1))"


def test_auto_layout_is_undoable_and_flows_left_to_right(editor):
    editor.set_text("scale(matern52(x1) * rbf(x2)) + linear(x3)")
    keys = editor.node_keys()
    for i, k in enumerate(keys):
        editor._ui_moved({k: (i * 7.0, -i * 11.0)})
    scrambled = {k: editor.node(k).pos for k in keys}
    editor.auto_layout()
    root = editor.key_of_id("n0")
    for k in keys:
        p = editor.parent_key(k)
        if p is not None:
            assert editor.node(k).pos[0] < editor.node(p).pos[0]  # inputs sit left of their operator
    assert editor.node(root).pos != scrambled[root]
    for (child, parent), wire in editor.scene.wire_items.items():  # wires follow their nodes
        assert wire.path().pointAtPercent(0) == editor.scene.node_items[child].out_port.scenePos()
        assert wire.path().pointAtPercent(1) == editor.scene.node_items[parent].in_port.scenePos()
    editor.undo()
    assert {k: editor.node(k).pos for k in keys} == scrambled


def test_wizard_builds_the_hands_on_structure(editor, qtbot):
    _build_product(editor)
    dlg = editor.make_wizard()
    dlg.set_group("x1", 0)
    dlg.set_group("x2", 0)
    dlg.set_group("x3", 1)
    assert dlg.groups() == [["x1", "x2"], ["x3"]]
    with qtbot.waitSignal(editor.graph_changed, timeout=1000) as blocker:
        dlg.accept()
    assert dlg.result() == QDialog.DialogCode.Accepted
    graph = blocker.args[0]
    assert graph == hands_on_kernel([["x1", "x2"], ["x3"]], joint=True)
    root = graph.root
    assert isinstance(root, SumNode) and len(root.children) == 3
    assert all(isinstance(c, ScaleNode) for c in root.children)
    assert isinstance(root.children[2].child, ProductNode)
    assert len(_canvas_nodes(editor)) == len(list(graph.nodes()))
    dlg.deleteLater()
    editor.undo()
    assert format_kernel(editor.graph()) == "matern52(x1) * rbf(x2)"
    editor.apply_hands_on([["x1"], ["x2", "x3"]], joint=False)
    assert format_kernel(editor.graph()).count("scale(") == 2


def test_set_graph_loads_without_emitting_and_keeps_explicit_ids(editor, qtbot):
    graph = hands_on_kernel({"opt": ["x1", "x2"], "arch": ["x3"]})
    with qtbot.assertNotEmitted(editor.graph_changed):
        editor.set_graph(graph)
    assert editor.graph() == graph
    assert not editor.undo_stack.canUndo()
    joint = editor.key_of_id("joint")
    assert editor.node(joint).node_id == "joint"


def test_render_offscreen(editor, qtbot, tmp_path):
    editor.set_text("scale(matern52(x1, x2) * rbf(x3)) + linear(x3)")
    editor.add_node("sum")
    with qtbot.waitExposed(editor):
        editor.show()
    editor.fit_view()
    path = tmp_path / "editor.png"
    assert editor.grab().save(str(path))
    assert path.stat().st_size > 10_000


def test_preview_worker_delivers_samples_and_stops(qtbot):
    ed = KernelGraphEditor(features=FEATURES)
    qtbot.addWidget(ed)
    ctl = ed.preview_controller
    assert not ctl.is_running()  # the thread starts on the first request
    with qtbot.waitSignal(ctl.sampled, timeout=20_000) as blocker:
        ed.set_text("rbf(x2; lengthscale=0.2) + linear(x3)")
    result = blocker.args[0]
    assert result.request_id == ctl.latest_id
    assert result.samples.shape == (5, 100)
    assert result.request.x == "x2"  # x1 is unused: the slice moves to a feature the graph uses
    xs, ys = ed.preview.curves[0].getData()
    assert xs.shape == (100,) and ys.shape == (100,)
    # newest request wins: rapid edits give one answer, for the last one
    answers = []
    ctl.sampled.connect(answers.append)
    with qtbot.waitSignal(ctl.sampled, timeout=20_000):
        ed.set_text("rbf(x1)")
        ed.set_text("matern12(x1)")
        ed.preview.set_slice("x1", "x3")
    assert len(answers) == 1 and answers[0].request_id == ctl.latest_id
    assert answers[0].samples.shape == (1, 32, 32)
    assert ed.preview.image.image.shape == (32, 32)
    assert ctl.is_running()
    ed.close()
    assert not ctl.is_running()
