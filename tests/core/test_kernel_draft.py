"""The kernel editor's draft document (model layer): connect rules, attribute rules, analysis."""

from __future__ import annotations

import itertools

import pytest

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import Gamma, format_kernel, hands_on_kernel, parse_kernel
from lla_studio.core.kernels.draft import EditorDoc, EditorNode, analyze, connect, doc_from_graph, edit_node


def _doc(*nodes: EditorNode) -> EditorDoc:
    doc = EditorDoc()
    for node in nodes:
        doc = doc.with_node(node)
    return doc


def test_connect_builds_a_valid_product_and_refuses_cycles_leaf_parents_and_self_loops():
    doc = _doc(
        EditorNode("a", "rbf", features=("x1",)),
        EditorNode("b", "matern", nu=1.5, features=("x2",)),
        EditorNode("p", "product"),
        EditorNode("s", "scale"),
    )
    doc = connect(connect(doc, "a", "p"), "b", "p")
    doc = connect(doc, "p", "s")
    result = analyze(doc, ["x1", "x2"])
    assert result.graph is not None and not result.errors
    assert format_kernel(result.graph) == "scale(rbf(x1) * matern32(x2))"
    with pytest.raises(KernelGraphError, match="cycle"):
        connect(doc, "s", "p")
    with pytest.raises(KernelGraphError, match="base kernel and has no input"):
        connect(doc, "b", "a")
    with pytest.raises(KernelGraphError, match="into itself"):
        connect(doc, "p", "p")
    with pytest.raises(KernelGraphError, match="no node with key 'zz'"):
        connect(doc, "zz", "p")
    assert connect(doc, "a", "p") is doc  # already wired there: nothing changes


def test_a_scale_holds_one_input_connecting_another_replaces_it():
    doc = _doc(EditorNode("a", "rbf", features=("x",)), EditorNode("b", "linear", features=("x",)), EditorNode("s", "scale"))
    doc = connect(connect(doc, "a", "s"), "b", "s")
    assert doc.children("s") == ("b",)
    assert doc.parent("a") is None and set(doc.roots()) == {"a", "s"}
    result = analyze(doc, ["x"])
    assert result.graph is None and result.detached == frozenset({"a"}) and "unconnected" in result.status


def test_analysis_names_each_incomplete_node():
    doc = _doc(EditorNode("a", "rbf"), EditorNode("u", "sum"), EditorNode("c", "rbf", features=("gone",)))
    result = analyze(doc, ["x"])
    assert result.graph is None
    assert "no features" in result.errors["a"]
    assert "empty sum" in result.errors["u"]
    assert "unknown feature 'gone'" in result.errors["c"]
    assert analyze(EditorDoc(), ["x"]).status.startswith("Empty canvas")


def test_edit_node_applies_the_core_rules():
    leaf = EditorNode("a", "matern", features=("x",))
    prior = Gamma(3.0, 6.0)
    edited = edit_node(leaf, {"kind": "rbf", "lengthscale": 0.4, "lengthscale_prior": prior, "ard": False})
    assert (edited.kind, edited.value("lengthscale"), edited.prior("lengthscale"), edited.ard) == ("rbf", 0.4, prior, False)
    with pytest.raises(KernelGraphError):
        edit_node(leaf, {"lengthscale": -1.0})
    with pytest.raises(KernelGraphError, match="cannot turn"):
        edit_node(leaf, {"kind": "sum"})
    with pytest.raises(KernelGraphError, match="no attribute"):
        edit_node(leaf, {"period": 1.0})
    with pytest.raises(KernelGraphError, match="features go on base kernels"):
        edit_node(EditorNode("p", "product"), {"features": ["x"]})


@pytest.mark.parametrize(
    "text",
    [
        "scale(matern52(x1) * rbf(x2; lengthscale=0.3)) + scale(linear(x1, x2))",
        "rq(x1, x2; ard=false)",
        format_kernel(hands_on_kernel([["a", "b"], ["c"]], joint=True)),
    ],
)
def test_a_graph_round_trips_through_the_draft_document(text):
    graph = parse_kernel(text)
    keys = (f"k{i}" for i in itertools.count())
    doc = doc_from_graph(graph, lambda: next(keys))
    result = analyze(doc, sorted(graph.features_used()))
    assert result.graph == graph
    assert format_kernel(result.graph) == format_kernel(graph)
