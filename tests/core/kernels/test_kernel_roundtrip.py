"""Round trips over random graphs: text (format/parse) and JSON (to_dict/from_dict)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lla_studio.core.kernels import (
    NU_VALUES,
    Gamma,
    KernelGraph,
    KernelNode,
    LinearNode,
    LogNormal,
    MaternNode,
    PeriodicNode,
    ProductNode,
    RBFNode,
    RQNode,
    ScaleNode,
    SumNode,
    format_kernel,
    parse_kernel,
)

FEATURES = ["a", "b", "x0", "log_lr", "opt.adam", "with space", 'q"uote', "rbf"]
IDS = st.none() | st.sampled_from(["n0", "n1", "n2", "n3", "n5", "k1", "joint", "my id", "sum"])
POSITIVE = st.floats(min_value=0.0, exclude_min=True, allow_infinity=False, allow_nan=False)
FINITE = st.floats(allow_infinity=False, allow_nan=False)
PRIORS = st.none() | st.builds(Gamma, POSITIVE, POSITIVE) | st.builds(LogNormal, FINITE, POSITIVE)
FIXED = st.none() | POSITIVE
FEATS = st.lists(st.sampled_from(FEATURES), min_size=1, max_size=3, unique=True).map(tuple)

LEAVES = st.one_of(
    st.builds(RBFNode, FEATS, ard=st.booleans(), lengthscale_prior=PRIORS, lengthscale=FIXED, id=IDS),
    st.builds(
        MaternNode,
        FEATS,
        nu=st.sampled_from(NU_VALUES),
        ard=st.booleans(),
        lengthscale_prior=PRIORS,
        lengthscale=FIXED,
        id=IDS,
    ),
    st.builds(
        RQNode,
        FEATS,
        ard=st.booleans(),
        lengthscale_prior=PRIORS,
        lengthscale=FIXED,
        alpha_prior=PRIORS,
        alpha=FIXED,
        id=IDS,
    ),
    st.builds(
        PeriodicNode,
        FEATS,
        ard=st.booleans(),
        lengthscale_prior=PRIORS,
        lengthscale=FIXED,
        period_prior=PRIORS,
        period=FIXED,
        id=IDS,
    ),
    st.builds(LinearNode, FEATS, ard=st.booleans(), variance_prior=PRIORS, variance=FIXED, id=IDS),
)


def _inner(kids: st.SearchStrategy[KernelNode]) -> st.SearchStrategy[KernelNode]:
    children = st.lists(kids, min_size=1, max_size=4).map(tuple)
    return st.one_of(
        st.builds(SumNode, children, id=IDS),
        st.builds(ProductNode, children, id=IDS),
        st.builds(ScaleNode, kids, outputscale_prior=PRIORS, outputscale=FIXED, id=IDS),
    )


def _dedupe(node: KernelNode, seen: set[str]) -> KernelNode:
    """Drop repeated ids (first use wins) so the random tree is a valid graph."""
    nid = node.id
    if nid in seen:
        nid = None
    elif nid is not None:
        seen.add(nid)
    kids = tuple(_dedupe(k, seen) for k in node.child_nodes())
    if kids:
        node = node.with_child_nodes(kids)
    return node.with_id(nid)


GRAPHS = st.recursive(LEAVES, _inner, max_leaves=10).map(lambda n: KernelGraph(_dedupe(n, set())))
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(GRAPHS)
def test_text_round_trip(graph):
    text = format_kernel(graph)
    back = parse_kernel(text)
    assert back == graph
    assert format_kernel(back) == text  # canonical
    check_ids(graph)


@SETTINGS
@given(GRAPHS)
def test_dict_round_trip_through_json(graph):
    d = graph.to_dict()
    back = KernelGraph.from_dict(json.loads(json.dumps(d)))
    assert back == graph
    assert back.to_dict() == d


def check_ids(graph):
    ids = graph.ids()
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids)
    assert KernelGraph(graph.root) == graph  # rebuilding assigns nothing new
    for node_id in ids:
        assert graph.find(node_id).id == node_id


def test_text_round_trip_of_edge_values():
    graph = KernelGraph(
        SumNode(
            (
                SumNode((RBFNode(("a",), lengthscale=5e-324), RBFNode(("b",), lengthscale=1e300))),
                ProductNode((ProductNode((LinearNode(("a",), variance=0.1),), id="n5"),)),
                ScaleNode(
                    MaternNode(("x", "y"), nu=0.5, lengthscale_prior=LogNormal(-0.0, 1e-7)),
                    outputscale_prior=Gamma(1.0, 3.0),
                    id="n7",  # its pre-order position: not printed
                ),
            )
        )
    )
    text = format_kernel(graph)
    assert text == (
        "(rbf(a; lengthscale=5e-324) + rbf(b; lengthscale=1e+300))"
        " + product(product(linear(a; variance=0.1)))"
        " + scale(matern12(x, y; lengthscale~lognormal(-0, 1e-07)); outputscale~gamma(1, 3))"
    )
    assert parse_kernel(text) == graph


def test_explicit_ids_that_take_an_auto_id_push_it_to_the_smallest_free_one():
    # Pre-order positions: sum 0, rbf(a) 1, rbf(b) 2. rbf(b) claims "n1", so rbf(a) falls back to
    # the smallest free "n<k>": n0 is the root's, n1 is taken, so n2.
    graph = KernelGraph(SumNode((RBFNode(("a",)), RBFNode(("b",), id="n1"))))
    assert graph.ids() == ("n0", "n2", "n1")
    text = format_kernel(graph)
    assert text == "rbf(a; id=n2) + rbf(b; id=n1)"
    assert parse_kernel(text) == graph
