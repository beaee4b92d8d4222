"""Hand-written kernel texts: expected structures, precedence, flattening, error positions."""

from __future__ import annotations

import pytest

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import (
    Gamma,
    KernelGraph,
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


def test_readme_example_parses_to_expected_structure():
    g = parse_kernel("scale(matern52(log_lr, momentum) * matern52(log_epochs)) + scale(rbf(log_batch_size))")
    expected = KernelGraph(
        SumNode(
            (
                ScaleNode(ProductNode((MaternNode(("log_lr", "momentum")), MaternNode(("log_epochs",))))),
                ScaleNode(RBFNode(("log_batch_size",))),
            )
        )
    )
    assert g == expected
    assert g.ids() == ("n0", "n1", "n2", "n3", "n4", "n5", "n6")
    assert format_kernel(g) == (
        "scale(matern52(log_lr, momentum) * matern52(log_epochs)) + scale(rbf(log_batch_size))"
    )


def test_precedence_and_flattening():
    a, b, c, d = (RBFNode((x,)) for x in "abcd")
    assert parse_kernel("rbf(a) + rbf(b) * rbf(c) + rbf(d)") == KernelGraph(
        SumNode((a, ProductNode((b, c)), d))
    )
    assert parse_kernel("(rbf(a) + rbf(b)) * rbf(c)") == KernelGraph(ProductNode((SumNode((a, b)), c)))
    # a + b + c is ONE sum; (a + b) + c keeps a nested sum, and so does the printed form.
    assert parse_kernel("rbf(a)+rbf(b)+rbf(c)") == KernelGraph(SumNode((a, b, c)))
    nested = parse_kernel("(rbf(a) + rbf(b)) + rbf(c)")
    assert nested == KernelGraph(SumNode((SumNode((a, b)), c)))
    assert format_kernel(nested) == "(rbf(a) + rbf(b)) + rbf(c)"
    nested_product = parse_kernel("rbf(a) * (rbf(b) * rbf(c))")
    assert nested_product == KernelGraph(ProductNode((a, ProductNode((b, c)))))
    assert format_kernel(nested_product) == "rbf(a) * (rbf(b) * rbf(c))"
    # Redundant parentheses vanish; a single-child sum needs the call form.
    assert parse_kernel("((rbf(a)))") == KernelGraph(a)
    assert parse_kernel("sum(rbf(a))") == KernelGraph(SumNode((a,)))
    assert format_kernel(KernelGraph(SumNode((a,)))) == "sum(rbf(a))"
    assert parse_kernel("product(rbf(a) + rbf(b), rbf(c))") == KernelGraph(ProductNode((SumNode((a, b)), c)))


def test_every_attribute_parses():
    g = parse_kernel(
        'scale(matern32(x0, "opt=adam"; ard=false, lengthscale~gamma(3, 6), lengthscale=0.5, id=k1)'
        "  + rq(x1; alpha~lognormal(-1.5, 0.5), alpha=2, lengthscale~lognormal(0, 1))"
        "  + periodic(x2; period=1.25, period~gamma(2, 1e-1))"
        "  + linear(x0, x1; variance~gamma(1, 1), ard=true)"
        "  + matern12(x2) + product(rbf(x0); id=\"my prod\")"
        "; outputscale~gamma(2, 0.15), outputscale=3e0, id=top)"
    )
    expected = KernelGraph(
        ScaleNode(
            SumNode(
                (
                    MaternNode(
                        ("x0", "opt=adam"), nu=1.5, ard=False, lengthscale_prior=Gamma(3, 6), lengthscale=0.5, id="k1"
                    ),
                    RQNode(("x1",), alpha_prior=LogNormal(-1.5, 0.5), alpha=2.0, lengthscale_prior=LogNormal(0, 1)),
                    PeriodicNode(("x2",), period=1.25, period_prior=Gamma(2, 0.1)),
                    LinearNode(("x0", "x1"), variance_prior=Gamma(1, 1)),
                    MaternNode(("x2",), nu=0.5),
                    ProductNode((RBFNode(("x0",)),), id="my prod"),
                )
            ),
            outputscale_prior=Gamma(2, 0.15),
            outputscale=3.0,
            id="top",
        )
    )
    assert g == expected
    assert parse_kernel(format_kernel(g)) == g


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("matern52(a) + ", "col 15: expected a kernel or '(', got end of text"),
        ("scale(rbf(a)", "col 13: expected ';' or ')', got end of text"),
        ("rbf(a) rbf(b)", "col 8: expected '+', '*' or end of text, got 'rbf'"),
        ("matern(a)", "col 1: unknown kernel 'matern'"),
        ("rbf(a; ard=maybe)", "col 12: expected true or false, got 'maybe'"),
        ("rbf(a; alpha=2)", "col 8: rbf has no attribute 'alpha'"),
        ("scale(rbf(a); lengthscale~gamma(1, 1))", "col 15: scale has no hyperparameter 'lengthscale'"),
        ("rbf(a; lengthscale=1, lengthscale=2)", "col 23: attribute 'lengthscale' given twice"),
        ("rbf(a; lengthscale~beta(1, 2))", "col 20: unknown prior 'beta'"),
        ("rbf(a; lengthscale=abc)", "col 20: expected a number, got 'abc'"),
        ("rbf(a; lengthscale=0)", "col 1: rbf node: lengthscale (fixed value) must be a finite number > 0"),
        ("sum()", "col 5: expected a kernel or '(', got ')'"),
        ("rbf()", "col 5: expected a feature name, got ')'"),
        ('rbf("a)', "col 5: bad string literal"),
        ("rbf(a)\n  + rbf(b) +", "line 2, col 13: expected a kernel or '('"),
    ],
)
def test_syntax_errors_name_the_position(text, message):
    with pytest.raises(KernelGraphError) as info:
        parse_kernel(text)
    assert str(info.value).startswith(message)


def test_errors_from_text_name_the_node():
    with pytest.raises(KernelGraphError, match=r"^col 29: lengthscale prior: gamma prior: rate must be") as info:
        parse_kernel("rbf(b) + rbf(a; lengthscale~gamma(3, -6), id=k7)")
    assert info.value.node_id == "k7"
    with pytest.raises(KernelGraphError, match=r"^col 26: duplicate node id 'x' \(first at col 11\)") as info:
        parse_kernel("rbf(a; id=x) + rbf(b; id=x)")
    assert info.value.node_id == "x"
    with pytest.raises(KernelGraphError, match=r"^col 10: rbf node 'r': features names feature 'a' twice") as info:
        parse_kernel("rbf(b) + rbf(a, a; id=r)")
    assert info.value.node_id == "r"
