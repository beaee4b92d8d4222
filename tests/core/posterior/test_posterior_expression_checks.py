"""User expressions of the posterior lab: numbers out of range and +inf on the box are refused when the
expression is checked, with a PosteriorError naming the expression (issue 12)."""

from __future__ import annotations

import math

import pytest
import torch

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import ExpressionSpec, compile_expression


@pytest.mark.parametrize(
    "expr, literal",
    [
        ("a + 1" + "0" * 400, "an integer of 401 digits"),
        ("-(a**2 + b**2) / 2 * 1e400", "1e400"),
        ("a * " + "9" * 310 + ".0", "9" * 10),
    ],
)
def test_numbers_beyond_float64_are_refused_naming_the_expression(expr, literal):
    with pytest.raises(PosteriorError) as info:
        compile_expression(expr)
    message = str(info.value)
    assert message.startswith(f"expression {expr[:20]!r}"[:-1]), message
    assert "out of range" in message and literal in message, message
    assert "\n" not in message
    with pytest.raises(PosteriorError, match="out of range"):
        ExpressionSpec(expr)


@pytest.mark.parametrize(
    "expr, low, high, point",
    [
        ("-log(a**2+b**2)", (-4.0, -4.0), (4.0, 4.0), "(0, 0)"),  # 0 is not a point of the 41 x 41 grid
        ("-log(a**2+b**2)", (-1.0, -1.0), (2.0, 2.0), "(0, 0)"),
        ("-log(abs(a - 1)) - b**2", (-3.0, -3.0), (3.3, 3.0), "(1, "),
        ("-log(abs(a*b))", (-2.5, 0.5), (2.5, 1.7), "(0, "),
    ],
)
def test_plus_inf_at_a_special_point_of_the_box_is_refused_naming_it(expr, low, high, point):
    with pytest.raises(PosteriorError) as info:
        ExpressionSpec(expr, low, high).build()
    message = str(info.value)
    assert message.startswith(f"expression {expr!r} is +inf at (a, b) = {point}"), message
    assert "cannot be normalised" in message


def test_finite_expressions_still_build():
    model = ExpressionSpec("-log1p(a**2 + b**2)", (-4.0, -4.0), (4.0, 4.0)).build()
    assert model.log_density(torch.tensor([0.0, 0.0])).item() == 0.0
    model = ExpressionSpec("-(a**2 + b**2)/2 + 1e300 * 0", (-1.0, -1.0), (1.0, 1.0)).build()
    assert model.log_density(torch.tensor([1.0, 0.0])).item() == pytest.approx(-0.5)
    # -inf (zero density) at the origin is allowed
    model = ExpressionSpec("log(a**2 + b**2)", (-1.0, -1.0), (1.0, 1.0)).build()
    assert model.log_density(torch.tensor([0.0, 0.0])).item() == -math.inf
