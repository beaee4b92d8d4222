"""KernelGraph: JSON form, validation errors that name their culprit, ids, immutable edits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import (
    Gamma,
    KernelGraph,
    LinearNode,
    LogNormal,
    MaternNode,
    ProductNode,
    RBFNode,
    ScaleNode,
    SumNode,
    format_kernel,
    node_from_dict,
    parse_kernel,
    prior_from_dict,
)

FEATURES = ["log_lr", "momentum", "log_epochs", "log_batch_size"]


def session_kernel() -> dict:
    return {
        "kernel": "sum",
        "children": [
            {
                "kernel": "matern",
                "nu": 2.5,
                "features": ["log_lr", "momentum"],
                "ard": True,
                "id": "k0",
                "lengthscale_prior": {"prior": "gamma", "concentration": 3.0, "rate": 6.0},
            },
            {"kernel": "scale", "child": {"kernel": "rbf", "features": ["log_epochs"]}, "outputscale": 2.0},
            {"kernel": "linear", "features": ["log_batch_size"], "ard": False, "id": "lin"},
        ],
    }


# -- JSON ----------------------------------------------------------------------------------
def test_to_dict_has_stable_tags_and_ids():
    g = KernelGraph.from_dict(session_kernel())
    assert g.to_dict() == {
        "kernel": "sum",
        "id": "n0",
        "children": [
            {
                "kernel": "matern",
                "id": "k0",
                "nu": 2.5,
                "features": ["log_lr", "momentum"],
                "ard": True,
                "lengthscale_prior": {"prior": "gamma", "concentration": 3.0, "rate": 6.0},
            },
            {
                "kernel": "scale",
                "id": "n2",
                "child": {"kernel": "rbf", "id": "n3", "features": ["log_epochs"], "ard": True},
                "outputscale": 2.0,
            },
            {"kernel": "linear", "id": "lin", "features": ["log_batch_size"], "ard": False},
        ],
    }
    assert g.validate(FEATURES) is g
    assert g.features_used() == ("log_lr", "momentum", "log_epochs", "log_batch_size")
    assert [n.id for n in g.nodes()] == ["n0", "k0", "n2", "n3", "lin"]
    assert isinstance(g.find("n3"), RBFNode)
    assert g.parent("n3") == g.find("n2") and g.parent("n0") is None
    assert g.ref("lin").path == "kernel.children[2]" and g.ref("n3").path == "kernel.children[1].child"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["children"][0].update(kernel="matérn"), "kernel.children[0].kernel: unknown kernel 'matérn'"),
        (lambda d: d["children"][0].pop("kernel"), "kernel.children[0].kernel: missing type tag"),
        (lambda d: d["children"][0].update(dims=["x"]), "kernel.children[0].dims: unknown field of a matern kernel"),
        (lambda d: d["children"][1]["child"].pop("features"), "kernel.children[1].child.features: missing required"),
        (lambda d: d["children"][1]["child"].update(features="x"), "kernel.children[1].child.features: must be a list"),
        (lambda d: d["children"][2].update(ard="no"), "kernel.children[2].ard: must be true or false, got 'no'"),
        (lambda d: d["children"][1].update(outputscale="2"), "kernel.children[1].outputscale: must be a number"),
        (lambda d: d.update(children={}), "kernel.children: must be a list"),
        (lambda d: d["children"].append(3), "kernel.children[3]: expected a kernel object, got 3"),
        (
            lambda d: d["children"][0]["lengthscale_prior"].update(prior="beta"),
            "kernel.children[0].lengthscale_prior.prior: unknown prior 'beta'",
        ),
        (
            lambda d: d["children"][0]["lengthscale_prior"].pop("rate"),
            "kernel.children[0].lengthscale_prior.rate: missing required field",
        ),
    ],
)
def test_from_dict_errors_start_with_the_json_path(mutate, message):
    d = session_kernel()
    mutate(d)
    with pytest.raises(KernelGraphError) as info:
        KernelGraph.from_dict(d)
    assert str(info.value).startswith(message)


def test_from_dict_custom_path_prefix():
    d = session_kernel()
    d["children"][2]["id"] = "k0"
    with pytest.raises(KernelGraphError, match=r"^session\.kernel\.children\[2\]\.id: duplicate node id 'k0'"):
        KernelGraph.from_dict(d, path="session.kernel")


# -- validation: each error names its culprit ------------------------------------------------
def test_unknown_feature_is_named_with_path_and_node():
    d = session_kernel()
    d["children"].append({"kernel": "rbf", "features": ["lrate"], "id": "oops"})
    g = KernelGraph.from_dict(d)  # structure is fine; features are checked against a feature map
    with pytest.raises(KernelGraphError) as info:
        g.validate(FEATURES)
    assert str(info.value).startswith("kernel.children[3].features: unknown feature 'lrate' (node 'oops')")
    assert info.value.node_id == "oops"
    g2 = parse_kernel("rbf(log_lr) * rbf(lrate)")
    with pytest.raises(KernelGraphError, match=r"^kernel\.children\[1\]\.features: unknown feature 'lrate'") as info:
        g2.validate(FEATURES)
    assert info.value.node_id == "n2"


@pytest.mark.parametrize("cls", [SumNode, ProductNode])
def test_empty_sum_or_product_is_rejected(cls):
    with pytest.raises(KernelGraphError, match=rf"^{cls.KIND} node 'g': children must hold at least one") as info:
        cls((), id="g")
    assert info.value.node_id == "g"
    d = {"kernel": "scale", "child": {"kernel": cls.KIND, "children": [], "id": "e"}}
    pattern = r"^kernel\.child\.children: must hold at least one.*\(node 'e'\)"
    with pytest.raises(KernelGraphError, match=pattern) as info:
        KernelGraph.from_dict(d)
    assert info.value.node_id == "e"


def test_duplicate_ids_are_rejected():
    with pytest.raises(KernelGraphError, match=r"^kernel\.children\[1\]\.child\.id: duplicate node id 'k'") as info:
        KernelGraph(SumNode((RBFNode(("a",), id="k"), ScaleNode(RBFNode(("b",), id="k")))))
    assert info.value.node_id == "k"
    assert "also used at kernel.children[0]" in str(info.value)


def test_bad_nu_is_rejected():
    with pytest.raises(KernelGraphError, match=r"^matern node 'm': nu must be one of 0.5, 1.5, 2.5, got 2.0") as info:
        MaternNode(("a",), nu=2.0, id="m")
    assert info.value.node_id == "m"
    d = {"kernel": "sum", "children": [{"kernel": "matern", "nu": 3, "features": ["a"], "id": "m2"}]}
    with pytest.raises(KernelGraphError, match=r"^kernel\.children\[0\]\.nu: must be one of .* \(node 'm2'\)") as info:
        KernelGraph.from_dict(d)
    assert info.value.node_id == "m2"


def test_leaf_without_features_is_rejected():
    with pytest.raises(KernelGraphError, match=r"^rbf node 'r': features must name at least one feature") as info:
        RBFNode((), id="r")
    assert info.value.node_id == "r"
    with pytest.raises(KernelGraphError, match=r"^kernel\.features: must name at least one feature.*\(node 'l'\)"):
        KernelGraph.from_dict({"kernel": "linear", "features": [], "id": "l"})
    with pytest.raises(KernelGraphError, match=r"features must be a list of feature names, got 'ab'"):
        RBFNode("ab")  # a bare string is not a list of names


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Gamma(0.0, 6.0), "concentration"),
        (lambda: Gamma(3.0, -1.0), "rate"),
        (lambda: Gamma(float("nan"), 1.0), "concentration"),
        (lambda: LogNormal(0.0, 0.0), "scale"),
        (lambda: LogNormal(float("inf"), 1.0), "loc"),
    ],
)
def test_bad_prior_parameters_are_rejected(make, field):
    with pytest.raises(KernelGraphError, match=rf"prior: {field} must be a finite number"):
        make()


def test_bad_prior_parameters_name_the_node_and_path():
    d = session_kernel()
    d["children"][0]["lengthscale_prior"]["rate"] = 0
    with pytest.raises(KernelGraphError) as info:
        KernelGraph.from_dict(d)
    assert str(info.value) == (
        "kernel.children[0].lengthscale_prior.rate: must be a finite number > 0, got 0 (node 'k0')"
    )
    assert info.value.node_id == "k0"
    with pytest.raises(KernelGraphError, match=r"^p\.scale: must be a finite number > 0"):
        prior_from_dict({"prior": "lognormal", "loc": -3.0, "scale": -1.0}, "p")
    assert prior_from_dict({"prior": "lognormal", "loc": -3.0, "scale": 1.0}, "p") == LogNormal(-3.0, 1.0)


def test_bad_fixed_values_and_ids_are_rejected():
    with pytest.raises(KernelGraphError, match=r"^rbf node 'r': lengthscale \(fixed value\) must be") as info:
        RBFNode(("a",), lengthscale=0.0, id="r")
    assert info.value.node_id == "r"
    with pytest.raises(KernelGraphError, match=r"^scale node 's': outputscale must be a number"):
        ScaleNode(RBFNode(("a",)), outputscale="1", id="s")
    with pytest.raises(KernelGraphError, match=r"id must be a non-empty string, got ''"):
        RBFNode(("a",), id="")
    with pytest.raises(KernelGraphError, match=r"lengthscale_prior must be a Gamma or LogNormal prior spec"):
        RBFNode(("a",), lengthscale_prior=(3.0, 6.0))


def test_validate_rejects_bad_feature_lists():
    g = parse_kernel("rbf(a)")
    with pytest.raises(KernelGraphError, match="feature names list 'a' twice"):
        g.validate(["a", "a"])
    with pytest.raises(KernelGraphError, match="must be a list of names"):
        g.validate("a")


# -- ids and edits --------------------------------------------------------------------------
def test_edits_return_new_graphs_and_keep_ids():
    g = parse_kernel("scale(matern52(log_lr) + matern52(momentum)) + rbf(log_epochs)")
    assert g.ids() == ("n0", "n1", "n2", "n3", "n4", "n5")

    # replace keeps the replaced node's id unless the new node brings one
    g1 = g.replace("n4", RBFNode(("momentum",), ard=False))
    assert g1.find("n4") == RBFNode(("momentum",), ard=False, id="n4")
    assert g.find("n4") == MaternNode(("momentum",), id="n4")  # the original is untouched
    g1b = g.replace("n5", SumNode((LinearNode(("log_epochs",)), RBFNode(("log_epochs",), id="mine"))))
    assert g1b.ids() == ("n0", "n1", "n2", "n3", "n4", "n5", "n6", "mine")

    # with_child appends (or inserts) under a sum; fresh ids never clash with existing ones
    g2 = g.with_child("n2", MaternNode(("log_batch_size",), nu=0.5), index=0)
    assert [c.id for c in g2.find("n2").children] == ["n6", "n3", "n4"]
    assert g2.ids() == ("n0", "n1", "n2", "n6", "n3", "n4", "n5")
    assert parse_kernel(format_kernel(g2)) == g2
    with pytest.raises(KernelGraphError, match="a scale node holds exactly one child") as info:
        g.with_child("n1", RBFNode(("a",)))
    assert info.value.node_id == "n1"
    with pytest.raises(KernelGraphError, match="a rbf leaf has no children"):
        g.with_child("n5", RBFNode(("a",)))
    with pytest.raises(KernelGraphError, match=r"^kernel\.children\[2\]\.id: duplicate node id 'n3'"):
        g.with_child("n0", RBFNode(("a",), id="n3"))

    # remove: a parent left empty goes too; the last node cannot go
    g3 = g.remove("n3")
    assert format_kernel(g3) == "scale(sum(matern52(momentum; id=n4))) + rbf(log_epochs; id=n5)"
    assert g3.ids() == ("n0", "n1", "n2", "n4", "n5")
    g4 = g3.remove("n4")  # empties sum n2, which empties scale n1
    assert format_kernel(g4) == "sum(rbf(log_epochs; id=n5))"
    with pytest.raises(KernelGraphError, match="would be empty"):
        g4.remove("n5")
    with pytest.raises(KernelGraphError, match="no node with id 'zz'") as info:
        g.find("zz")
    assert info.value.node_id == "zz"


def test_spec_modules_do_not_import_torch():
    code = "import sys, lla_studio.core.kernels as k; k.parse_kernel('rbf(a)'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_node_from_dict_leaves_missing_ids_unassigned():
    node = node_from_dict({"kernel": "rbf", "features": ["a"]}, "x")
    assert node == RBFNode(("a",)) and node.id is None
