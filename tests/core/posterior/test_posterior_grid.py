"""Grid posteriors, divergences and Gaussian tail masses against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.spatial.distance import jensenshannon
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import (
    BananaSpec,
    Box,
    MixtureSpec,
    fit_laplace,
    grid_posterior,
    js_divergence,
    kl_divergence,
    make_model,
)
from lla_studio.core.posterior.gaussian import gaussian_log_pdf, gaussian_mass_outside
from lla_studio.core.posterior.grid import MAX_GRID_POINTS, GridPosterior, weighted_quantiles

LEVELS = np.array([0.025, 0.25, 0.5, 0.75, 0.975])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def test_banana_grid_moments_quantiles_and_evidence_match_closed_forms():
    mu, s1, c, d, s2 = 0.5, 1.0, 1.0, 0.0, 0.5
    model = BananaSpec(mu=mu, s1=s1, c=c, d=d, s2=s2).build()
    fit = fit_laplace(model, [0.0, 0.0])
    g = grid_posterior(model, 401, components=[fit])
    # the automatic box had to grow far beyond the Laplace +/- 6 sd box along the banana's arms
    assert g.box.high[1] > fit.mode[1] + 10 * fit.sd[1]
    assert g.log_evidence == pytest.approx(0.0, abs=2e-4)  # normalised density
    np.testing.assert_allclose(g.quantiles["x1"], stats.norm.ppf(LEVELS, mu, s1), atol=3e-3)
    # E[x2] = c (mu^2 + s1^2) + d; Var[x2] = s2^2 + c^2 Var(x1^2) = s2^2 + c^2 (4 mu^2 s1^2 + 2 s1^4)
    assert g.mean == pytest.approx([mu, c * (mu**2 + s1**2) + d], abs=2e-3)
    var2 = s2**2 + c**2 * (4 * mu**2 * s1**2 + 2 * s1**4)
    # Cov(x1, x2) = c Cov(x1, x1^2) = 2 c mu s1^2
    np.testing.assert_allclose(g.cov, [[s1**2, 2 * c * mu * s1**2], [2 * c * mu * s1**2, var2]], rtol=5e-3)
    # marginal of x1 is N(mu, s1^2)
    np.testing.assert_allclose(g.marginal_a, stats.norm.pdf(g.a, mu, s1), atol=2e-3)
    assert g.edge_mass() < 1e-6


def test_mixture_grid_matches_closed_form():
    spec = MixtureSpec(separation=3.0, sd=0.8, correlation=0.5, weight=0.3)
    g = grid_posterior(spec.build(), 301, box=Box((-7, -5), (7, 5)))
    w, means, covs = spec.components()
    mean = w @ means
    second = sum(wi * (ci + np.outer(mi, mi)) for wi, mi, ci in zip(w, means, covs))
    np.testing.assert_allclose(g.mean, mean, atol=1e-6)
    np.testing.assert_allclose(g.cov, second - np.outer(mean, mean), atol=1e-4)
    assert g.log_evidence == pytest.approx(0.0, abs=1e-6)
    # marginal median of x1: solve the mixture cdf independently
    cdf = lambda x: sum(wi * stats.norm.cdf(x, mi[0], math.sqrt(ci[0, 0])) for wi, mi, ci in zip(w, means, covs))  # noqa: E731
    from scipy.optimize import brentq

    med = brentq(lambda x: cdf(x) - 0.5, -5, 5)
    assert g.quantiles["x1"][2] == pytest.approx(med, abs=2e-3)


def test_bioassay_grid_quantiles_converge_as_n_doubles():
    model = make_model("bioassay")
    box = Box((-4.0, 0.0), (10.0, 60.0), model.param_names)
    q = {n: grid_posterior(model, n, box=box).quantiles for n in (100, 200, 400, 800)}
    for name in ("alpha", "beta", "LD50"):
        d1 = np.abs(q[200][name] - q[100][name]).max()
        d2 = np.abs(q[400][name] - q[200][name]).max()
        d3 = np.abs(q[800][name] - q[400][name]).max()
        assert d3 < d2 < d1, (name, d1, d2, d3)
    # posterior summaries agree with BDA3 (Fig. 3.3/§3.7): median LD50 about -0.11, beta median about 10.6
    assert q[800]["LD50"][2] == pytest.approx(-0.11, abs=0.01)
    assert q[800]["beta"][2] == pytest.approx(10.6, abs=0.2)


def test_grid_bad_inputs_raise_with_the_problem_named():
    model = make_model("bioassay")
    with pytest.raises(PosteriorError, match="too coarse: need at least 16"):
        grid_posterior(model, 8)
    with pytest.raises(PosteriorError, match=f"too large: the limit is {MAX_GRID_POINTS} points"):
        grid_posterior(model, 5000)
    with pytest.raises(PosteriorError, match="parameter 'beta' needs low < high, got low=3, high=3"):
        Box((0.0, 3.0), (1.0, 3.0), ("alpha", "beta"))
    with pytest.raises(PosteriorError, match="needs a finite box; parameter 'beta'"):
        grid_posterior(model, 32, box=Box((0, 0), (1, math.inf), ("alpha", "beta")))
    with pytest.raises(PosteriorError, match="density is zero on every point of box"):
        grid_posterior(model, 32, box=Box((0, -5), (1, -1)))
    with pytest.raises(PosteriorError, match="grid size must be"):
        grid_posterior(model, "big")


def test_weighted_quantiles_against_sorted_samples():
    rng = np.random.default_rng(0)
    v = rng.normal(size=100_001)
    q = weighted_quantiles(v, np.ones_like(v), LEVELS)
    np.testing.assert_allclose(q, np.quantile(v, LEVELS), atol=1e-3)


def test_gaussian_mass_outside_support_half_plane_and_box():
    mean, cov = np.array([0.8, 7.7]), np.array([[1.0, 3.5], [3.5, 24.0]])
    half = Box((-math.inf, 0.0), (math.inf, math.inf))
    assert gaussian_mass_outside(mean, cov, half) == pytest.approx(stats.norm.cdf(-7.7 / math.sqrt(24.0)), rel=1e-12)
    assert gaussian_mass_outside(mean, cov, Box((-math.inf,) * 2, (math.inf,) * 2)) == 0.0
    # two-sided box with correlation: 1-D quadrature of the conditional normal as the reference
    mean, cov = np.array([0.9, 0.15]), np.array([[0.01, -0.003], [-0.003, 0.002]])
    lo, hi = (0.0, 0.0), (1.0, 0.2)
    s_cond = math.sqrt(cov[1, 1] - cov[0, 1] ** 2 / cov[0, 0])

    def integrand(x):
        m = mean[1] + cov[0, 1] / cov[0, 0] * (x - mean[0])
        return stats.norm.pdf(x, mean[0], math.sqrt(cov[0, 0])) * (
            stats.norm.cdf((hi[1] - m) / s_cond) - stats.norm.cdf((lo[1] - m) / s_cond)
        )

    inside, _ = integrate.quad(integrand, lo[0], hi[0], epsabs=1e-13)
    assert gaussian_mass_outside(mean, cov, Box(lo, hi)) == pytest.approx(1 - inside, abs=1e-7)


def test_divergences_against_closed_form_and_scipy():
    x = np.linspace(-12, 12, 701)
    X1, X2 = np.meshgrid(x, x)
    pts = np.stack([X1, X2], -1)
    c1, c2 = np.diag([1.0, 0.5]), np.array([[2.0, 0.3], [0.3, 1.0]])
    m1, m2 = np.array([0.0, 0.0]), np.array([1.0, -0.5])
    lp, lq = gaussian_log_pdf(pts, m1, c1), gaussian_log_pdf(pts, m2, c2)
    kl_ref = 0.5 * (
        np.trace(np.linalg.solve(c2, c1))
        + (m2 - m1) @ np.linalg.solve(c2, m2 - m1)
        - 2
        + np.log(np.linalg.det(c2) / np.linalg.det(c1))
    )
    assert kl_divergence(lp, lq) == pytest.approx(kl_ref, rel=1e-6)
    p, q = np.exp(lp).ravel(), np.exp(lq).ravel()
    jsd_ref = jensenshannon(p, q) ** 2  # scipy returns the distance (sqrt), natural log by default
    assert js_divergence(lp, lq) == pytest.approx(jsd_ref, rel=1e-8)
    assert js_divergence(lq, lp) == pytest.approx(jsd_ref, rel=1e-8)
    # underflow: shifting by -5000 leaves everything unchanged (exp would underflow to 0)
    assert js_divergence(lp - 5000, lq + 3000) == pytest.approx(jsd_ref, rel=1e-8)
    assert kl_divergence(lp - 5000, lq - 7000) == pytest.approx(kl_ref, rel=1e-6)
    # disjoint supports: JSD = log 2, KL = inf
    a = np.array([0.0, -np.inf])
    b = np.array([-np.inf, 0.0])
    assert js_divergence(a, b) == pytest.approx(math.log(2))
    assert kl_divergence(a, b) == math.inf
    with pytest.raises(PosteriorError, match="shapes differ"):
        js_divergence(a, np.zeros(3))
    with pytest.raises(PosteriorError, match="'q' is zero on every grid cell"):
        js_divergence(a, np.full(2, -np.inf))


def test_grid_posterior_rejects_bad_arrays():
    box = Box((0, 0), (1, 1))
    with pytest.raises(PosteriorError, match=r"\+inf at"):
        GridPosterior(("a", "b"), box, np.array([[0.0, np.inf], [0.0, 0.0]]))
    with pytest.raises(PosteriorError, match="derived quantity 'x' has shape"):
        GridPosterior(("a", "b"), box, np.zeros((2, 2)), {"x": np.zeros(3)})
