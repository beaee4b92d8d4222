"""Posterior-lab models: densities against independent numpy/scipy code, specs, registry, parser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import stats
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import (
    MODEL_NAMES,
    BananaSpec,
    BioassaySpec,
    ExpressionSpec,
    MixtureSpec,
    ShearFrameSpec,
    compile_expression,
    default_spec,
    make_model,
    spec_from_dict,
)
from lla_studio.core.posterior.shear_frame import shear_frame_response, shear_frame_state_matrix

X = np.array([-0.86, -0.30, -0.05, 0.73])
N = np.array([5, 5, 5, 5])
Y = np.array([0, 1, 3, 5])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # 2 shared cores: BLAS/OpenMP threads spinning on tiny problems cost 10-100x; results are unaffected
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def test_bioassay_density_matches_scipy_binomial():
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(-3, 5, 20), rng.uniform(0.1, 30, 20)])
    ref = np.array([stats.binom.logpmf(Y, N, 1 / (1 + np.exp(-(a + b * X)))).sum() for a, b in pts])
    got = make_model("bioassay").log_density(torch.tensor(pts)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-10)
    # log-beta parametrisation: the same density times the Jacobian beta
    got_log = (
        make_model("bioassay-logbeta")
        .log_density(torch.tensor(np.column_stack([pts[:, 0], np.log(pts[:, 1])])))
        .numpy()
    )
    np.testing.assert_allclose(got_log, ref + np.log(pts[:, 1]), rtol=1e-12, atol=1e-10)
    # support beta > 0 and LD50
    model = make_model("bioassay")
    assert model.log_density(torch.tensor([0.0, -1.0])).item() == -math.inf
    assert model.derived["LD50"](torch.tensor([1.0, 4.0])).item() == pytest.approx(-0.25)


def test_bioassay_normal_priors_add_log_pdfs():
    spec = BioassaySpec(prior_alpha=(0.0, 2.0), prior_beta=(10.0, 10.0))
    pt = np.array([0.7, 6.0])
    flat = make_model("bioassay").log_density(torch.tensor(pt)).item()
    got = spec.build().log_density(torch.tensor(pt)).item()
    assert got == pytest.approx(flat + stats.norm.logpdf(0.7, 0, 2) + stats.norm.logpdf(6.0, 10, 10), abs=1e-12)


def test_banana_and_mixture_densities_are_normalised_closed_forms():
    spec = BananaSpec(mu=0.3, s1=0.8, c=1.5, d=-1.0, s2=0.4)
    pts = np.array([[0.1, -0.5], [1.0, 2.0], [-2.0, 5.0]])
    ref = stats.norm.logpdf(pts[:, 0], 0.3, 0.8) + stats.norm.logpdf(pts[:, 1], 1.5 * pts[:, 0] ** 2 - 1.0, 0.4)
    np.testing.assert_allclose(spec.build().log_density(torch.tensor(pts)).numpy(), ref, rtol=1e-12)

    mspec = MixtureSpec(separation=3.0, sd=0.7, correlation=0.4, weight=0.3)
    s2 = 0.49
    c1 = np.array([[s2, 0.4 * s2], [0.4 * s2, s2]])
    c2 = np.array([[s2, -0.4 * s2], [-0.4 * s2, s2]])
    ref = np.log(
        0.3 * stats.multivariate_normal([-1.5, 0], c1).pdf(pts) + 0.7 * stats.multivariate_normal([1.5, 0], c2).pdf(pts)
    )
    np.testing.assert_allclose(mspec.build().log_density(torch.tensor(pts)).numpy(), ref, rtol=1e-10)


def test_batched_matrix_exponential_matches_scipy_per_point():
    rng = np.random.default_rng(0)
    c = np.column_stack([rng.uniform(0, 1.4, 5), rng.uniform(0, 0.7, 5)])
    A = shear_frame_state_matrix(torch.tensor(c)).numpy()
    for ci, Ai in zip(c, A):
        M = np.eye(2)
        K = np.array([[3.0, -1.0], [-1.0, 1.0]])
        C = np.array([[ci[0] + ci[1], -ci[1]], [-ci[1], ci[1]]])
        ref_A = np.block([[np.zeros((2, 2)), np.eye(2)], [-np.linalg.solve(M, K), -np.linalg.solve(M, C)]])
        np.testing.assert_array_equal(Ai, ref_A)
    E = torch.linalg.matrix_exp(torch.tensor(A) * 0.5).numpy()
    for Ai, Ei in zip(A, E):
        np.testing.assert_allclose(Ei, scipy.linalg.expm(Ai * 0.5), rtol=1e-12, atol=1e-13)
    # the response (expm once + repeated batched mat-vecs) against expm(A t_k) applied to x(0) per time
    y = shear_frame_response(torch.tensor(c), chunk=2).numpy()  # chunk=2 exercises the chunking
    s0 = np.array([0.0, 1.0, 0.0, 0.0])
    for Ai, yi in zip(A, y):
        ref = np.array([(scipy.linalg.expm(Ai * 0.5 * k) @ s0)[0] for k in range(1, 41)])
        np.testing.assert_allclose(yi, ref, rtol=1e-9, atol=1e-12)


def test_shear_frame_likelihood_is_bimodal_with_an_exact_mirror():
    model = make_model("shear-frame")
    lp = lambda c: model.log_density(torch.tensor(c, dtype=torch.float64)).item()  # noqa: E731
    truth, mirror = lp([1.0, 0.1]), lp([0.2, 0.5])
    const = -40 * (math.log(0.015) + 0.5 * math.log(2 * math.pi)) - math.log(1.4 * 0.7)
    assert truth == pytest.approx(const, abs=1e-9)  # noise-free data: zero residual at the truth
    assert mirror == pytest.approx(const, abs=1e-9)  # the mirror reproduces the data exactly
    # both are strict local maxima, with a deep valley between them
    for centre in ([1.0, 0.1], [0.2, 0.5]):
        for d in ([0.01, 0], [-0.01, 0], [0, 0.01], [0, -0.01]):
            assert lp(np.add(centre, d)) < truth
    assert lp([0.6, 0.3]) < truth - 5
    assert lp([1.5, 0.1]) == -math.inf and lp([0.5, -0.01]) == -math.inf
    # seeded noise: reproducible and different from the clean data
    a = ShearFrameSpec(noise_seed=3).build().observations.numpy()
    b = ShearFrameSpec(noise_seed=3).build().observations.numpy()
    np.testing.assert_array_equal(a, b)
    assert 0.005 < np.std(a - model.observations.numpy()) < 0.03


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_registry_specs_round_trip_and_models_are_consistent(name):
    spec = default_spec(name)
    data = spec.to_dict()
    assert spec_from_dict(data) == spec
    model = make_model(name)
    assert len(model.param_names) == 2 and model.box.is_finite
    pts = torch.tensor(np.stack([model.box.low, model.box.high]) * 0.5 + model.box.center * 0.5)
    val = model.log_density(pts)
    assert val.shape == (2,) and val.dtype == torch.float64
    # vectorised over arbitrary leading dims
    assert model.log_density(pts.reshape(1, 2, 2)).shape == (1, 2)


def test_spec_round_trip_with_non_default_values():
    for spec in (
        BioassaySpec(log_beta=True, prior_alpha=(0.0, 5.0)),
        ShearFrameSpec(noise_seed=7, sigma=0.02),
        BananaSpec(mu=1.0, c=-0.5),
        MixtureSpec(separation=6.0, weight=0.2),
        ExpressionSpec("-(a**2 + b**2)/2", (-3, -2), (3, 2)),
    ):
        assert spec_from_dict(spec.to_dict()) == spec


def test_unknown_names_and_bad_specs_raise_naming_the_culprit():
    with pytest.raises(PosteriorError, match="unknown posterior model 'rosenbrock'.*bioassay.*shear-frame"):
        make_model("rosenbrock")
    with pytest.raises(PosteriorError, match="unknown key.*'sigmaa'"):
        spec_from_dict({"type": "shear-frame", "sigmaa": 0.1})
    with pytest.raises(PosteriorError, match="unknown model spec type 'nope'"):
        spec_from_dict({"type": "nope"})
    with pytest.raises(PosteriorError, match="'s2' must be a positive"):
        BananaSpec(s2=0.0)
    with pytest.raises(PosteriorError, match="'correlation' must lie in"):
        MixtureSpec(correlation=1.0)
    with pytest.raises(PosteriorError, match="'sigma' must be positive"):
        ShearFrameSpec(sigma=-1)
    with pytest.raises(PosteriorError, match="prior_beta sd"):
        BioassaySpec(prior_beta=(1.0, 0.0))
    with pytest.raises(PosteriorError, match="parameter 'b' needs low < high"):
        ExpressionSpec("a", (0, 1), (1, 1))


def test_expression_matches_closed_form_and_gradients():
    model = ExpressionSpec("-(a**2 + b**2)/2", (-4, -4), (4, 4)).build()
    rng = np.random.default_rng(2)
    pts = rng.uniform(-4, 4, size=(50, 2))
    np.testing.assert_allclose(model.log_density(torch.tensor(pts)).numpy(), -(pts**2).sum(1) / 2, rtol=1e-15)
    t = torch.tensor([1.5, -0.5], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(model.log_density(t), t)
    np.testing.assert_allclose(g.numpy(), [-1.5, 0.5])
    assert model.log_density(torch.tensor([5.0, 0.0])).item() == -math.inf  # outside the box


def test_expression_whitelisted_functions_match_numpy():
    expr = (
        "where(a < b, log1p(abs(a)) + sqrt(b**2 + 1), np.exp(-a) * cos(b))"
        " + maximum(a, b) - minimum(a, 0.5) + tanh(a)*sin(b) + tan(0.1*a) + pi - e"
    )
    fn = compile_expression(expr)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=100), rng.normal(size=100)
    ref = (
        np.where(a < b, np.log1p(np.abs(a)) + np.sqrt(b**2 + 1), np.exp(-a) * np.cos(b))
        + np.maximum(a, b)
        - np.minimum(a, 0.5)
        + np.tanh(a) * np.sin(b)
        + np.tan(0.1 * a)
        + np.pi
        - np.e
    )
    np.testing.assert_allclose(fn(torch.tensor(a), torch.tensor(b)).numpy(), ref, rtol=1e-13)
    # chained comparison
    got = compile_expression("where(-1 < a < 1, 0, -10)")(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.0]))
    np.testing.assert_array_equal(got.numpy(), [0.0, -10.0])


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("__import__('os')", "function '__import__' is not allowed"),
        ("a.__class__", r"attribute access '\.__class__' is not allowed"),
        ("open(a)", "function 'open' is not allowed"),
        ("os", "name 'os' is not allowed"),
        ("exp(a)(b)", "only calls of whitelisted functions"),
        ("[a, b]", "List is not allowed"),
        ("a[0]", "Subscript is not allowed"),
        ("lambda: a", "Lambda is not allowed"),
        ("'abc'", "constant 'abc' is not allowed"),
        ("a // b", "operator '//' is not allowed"),
        ("exp(a, b)", "function 'exp' takes 1 argument"),
        ("exp(x=a)", "keyword arguments are not allowed"),
        ("np.random.rand()", "only calls of whitelisted functions"),
        ("(lambda: 0).__globals__", "attribute access"),
    ],
)
def test_expression_rejects_forbidden_constructs(expr, message):
    with pytest.raises(PosteriorError, match=message):
        compile_expression(expr)


def test_expression_syntax_error_reports_position():
    with pytest.raises(PosteriorError, match=r"syntax error at line 1, column \d+") as info:
        compile_expression("a + * b")
    assert "^" in str(info.value)
    with pytest.raises(PosteriorError, match="empty"):
        compile_expression("   ")


def test_expression_nan_or_zero_everywhere_is_rejected():
    with pytest.raises(PosteriorError, match="NaN everywhere on the box"):
        ExpressionSpec("log(-1 - a**2)", (-1, -1), (1, 1)).build()
    with pytest.raises(PosteriorError, match="no finite value"):
        ExpressionSpec("log(0*a)", (-1, -1), (1, 1)).build()
    with pytest.raises(PosteriorError, match=r"\+inf at"):
        ExpressionSpec("where(a > 0.5, exp(1000), -a**2)", (-1, -1), (1, 1)).build()
    # NaN on part of the box is zero density there, not an error
    model = ExpressionSpec("log(a)", (-1, -1), (1, 1)).build()
    assert model.log_density(torch.tensor([-0.5, 0.0])).item() == -math.inf
    assert model.log_density(torch.tensor([0.5, 0.0])).item() == pytest.approx(math.log(0.5))


# ------------------------------------------------------------------------ property-based parser check
import ast  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_LEAVES = st.sampled_from(["a", "b", "pi", "e", "0.5", "2", "3.25"])
_UNARY = ["exp", "log", "log1p", "sqrt", "sin", "cos", "tan", "tanh", "abs"]


def _extend(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(_UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
        children.map(lambda c: f"(-{c})"),
        st.tuples(st.sampled_from(["minimum", "maximum"]), children, children).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(children, st.sampled_from(["<", ">="]), children, children, children).map(
            lambda t: f"where({t[0]} {t[1]} {t[2]}, {t[3]}, {t[4]})"
        ),
    )


class _Float64Constants(ast.NodeTransformer):
    def visit_Constant(self, node):
        return ast.Call(func=ast.Name("f64", ast.Load()), args=[node], keywords=[])


@settings(max_examples=60, deadline=None)
@given(st.recursive(_LEAVES, _extend, max_leaves=8))
def test_expression_compiler_agrees_with_numpy(expr):
    ns = {name: getattr(np, name) for name in _UNARY + ["minimum", "maximum", "where"]}
    ns.update(pi=np.float64(np.pi), e=np.float64(np.e))
    a = np.array([-1.3, -0.2, 0.0, 0.7, 2.1])
    b = np.array([0.4, -2.0, 1.1, 0.3, -0.6])
    tree = _Float64Constants().visit(ast.parse(expr, mode="eval"))  # numpy, not Python-float, semantics
    code = compile(ast.fix_missing_locations(tree), "<oracle>", "eval")
    with np.errstate(all="ignore"):
        ref = np.broadcast_to(
            eval(code, {"__builtins__": {}}, {**ns, "f64": np.float64, "a": a, "b": b}), a.shape
        )  # oracle
    got = compile_expression(expr)(torch.tensor(a), torch.tensor(b))
    got = np.broadcast_to(got.numpy(), a.shape)
    finite = np.isfinite(ref) & (np.abs(ref) < 1e12)
    np.testing.assert_allclose(got[finite], ref[finite], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(np.isnan(got[~finite & np.isnan(ref)]), True)
