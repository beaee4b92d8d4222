"""d-dimensional targets: exact log densities against scipy.stats and quadrature, exact sampling, the generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.gaussian_nd import dice_overlap, gaussian_log_pdf_nd, mixture_log_pdf_nd
from lla_studio.core.posterior.gmm_targets import (
    GaussianMixtureTarget,
    GMMTargetSpec,
    SinhArcsinhMixtureTarget,
    paper_15d_target,
    sinh_arcsinh_mixture,
)
from lla_studio.core.posterior.models import MixtureSpec


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def _scipy_mixture_logpdf(x, weights, means, covs):
    parts = [np.log(w) + stats.multivariate_normal(m, c).logpdf(x) for w, m, c in zip(weights, means, covs)]
    return np.logaddexp.reduce(np.stack(parts, 0), axis=0)


def test_gmm_log_density_matches_scipy_and_the_2d_model():
    target = GMMTargetSpec(dim=4, components=3, separation=2.5, correlation=0.6, seed=3).build()
    x = np.random.default_rng(0).normal(0, 3, (50, 4))
    ref = _scipy_mixture_logpdf(x, target.weights, target.means, target.covs)
    np.testing.assert_allclose(target.log_pdf(x), ref, rtol=0, atol=1e-10)
    mix = mixture_log_pdf_nd(x, np.log(target.weights), target.means, target.covs)
    np.testing.assert_allclose(mix, ref, atol=1e-10)
    np.testing.assert_allclose(gaussian_log_pdf_nd(x, target.means[0], target.covs[0]),
                               stats.multivariate_normal(target.means[0], target.covs[0]).logpdf(x), atol=1e-10)
    # the 2-D lab's mixture model is the d = 2 case
    spec = MixtureSpec(separation=3.0, sd=0.8, correlation=0.4, weight=0.3)
    model = spec.build()
    gmm = GaussianMixtureTarget(*spec.components())
    pts = np.random.default_rng(1).normal(0, 2, (30, 2))
    with torch.no_grad():
        ref2 = model.log_density(torch.tensor(pts)).numpy()
    np.testing.assert_allclose(gmm.log_pdf(pts), ref2, atol=1e-12)


def test_gmm_sampling_matches_the_mixture_moments():
    target = GMMTargetSpec(dim=3, components=3, separation=3.0, weight_decay=2.0, seed=1).build()
    n = 40_000
    x = target.sample(n, np.random.default_rng(2))
    w, mu, cov = target.weights, target.means, target.covs
    mean = w @ mu
    total = np.einsum("k,kij->ij", w, cov) + np.einsum("k,ki,kj->ij", w, mu - mean, mu - mean)
    se = np.sqrt(np.diag(total) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * se)
    np.testing.assert_allclose(np.cov(x.T), total, atol=0.05 * np.abs(total).max())
    assert x.shape == (n, 3)


def test_generator_settings_are_what_they_say():
    spec = GMMTargetSpec(dim=6, components=4, separation=5.0, correlation=0.5, weight_decay=1.7, seed=11)
    a, b = spec.build(), spec.build()
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_allclose(a.weights[:-1] / a.weights[1:], 1.7, rtol=1e-12)
    assert a.min_separation == pytest.approx(5.0, rel=1e-10)
    for cov in a.covs:  # s^2 ((1 - c) I + c v v^T): every correlation is +-c
        sd = np.sqrt(np.diag(cov))
        corr = cov / np.outer(sd, sd)
        off = np.abs(corr[~np.eye(6, dtype=bool)])
        np.testing.assert_allclose(off, 0.5, atol=1e-12)
        assert 1 / 1.5 - 1e-12 <= sd[0] <= 1.5 + 1e-12
    lam = GMMTargetSpec(dim=6, components=4, separation=None, overlap=1e-3, seed=11).build()
    assert lam.max_overlap == pytest.approx(1e-3, rel=1e-6)
    c = GMMTargetSpec(dim=6, components=4, separation=5.0, correlation=0.5, weight_decay=1.7, seed=12).build()
    assert not np.allclose(a.means, c.means)
    # the box holds the 0.1 %..99.9 % marginal range of every component
    lo = a.means - stats.norm.isf(1e-3) * np.sqrt(np.diagonal(a.covs, axis1=1, axis2=2))
    np.testing.assert_allclose(a.box_low, lo.min(0))


def test_dice_overlap_against_quadrature():
    m1, c1 = np.array([0.0, 0.0]), np.array([[1.0, 0.3], [0.3, 0.5]])
    m2, c2 = np.array([1.2, -0.4]), np.array([[0.7, -0.2], [-0.2, 1.1]])
    p = stats.multivariate_normal(m1, c1)
    q = stats.multivariate_normal(m2, c2)
    g = np.linspace(-7, 8, 601)
    A, B = np.meshgrid(g, g)
    pts = np.stack([A, B], -1)
    fp, fq = p.pdf(pts), q.pdf(pts)
    h = (g[1] - g[0]) ** 2
    ref = 2 * (fp * fq).sum() * h / (((fp**2).sum() + (fq**2).sum()) * h)
    assert dice_overlap(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-6)
    assert dice_overlap(m1, c1, m1, c1) == pytest.approx(1.0, rel=1e-12)


def test_sinh_arcsinh_reduces_to_a_gaussian_and_is_normalised():
    corr = np.array([[[1.0, 0.6], [0.6, 1.0]]])
    loc, scale = np.array([[0.5, -1.0]]), np.array([[2.0, 0.7]])
    gauss = SinhArcsinhMixtureTarget([1.0], loc, scale, np.zeros((1, 2)), np.ones((1, 2)), corr)
    x = np.random.default_rng(0).normal(0, 2, (40, 2))
    cov = corr[0] * np.outer(scale[0], scale[0])
    np.testing.assert_allclose(gauss.log_pdf(x), stats.multivariate_normal(loc[0], cov).logpdf(x), atol=1e-10)
    # skewed, heavy- and light-tailed components: the density integrates to one (2-D quadrature)
    sas = SinhArcsinhMixtureTarget(
        [0.6, 0.4],
        np.array([[0.0, 0.0], [3.0, 1.0]]),
        np.array([[1.0, 0.5], [0.8, 1.2]]),
        np.array([[0.5, -0.3], [-0.4, 0.2]]),
        np.array([[0.8, 1.2], [1.1, 0.9]]),
        np.array([[[1.0, 0.4], [0.4, 1.0]], [[1.0, -0.5], [-0.5, 1.0]]]),
    )
    g = np.linspace(-25, 30, 1101)
    A, B = np.meshgrid(g, g)
    dens = np.exp(sas.log_pdf(np.stack([A, B], -1)))
    assert dens.sum() * (g[1] - g[0]) ** 2 == pytest.approx(1.0, abs=2e-4)


def test_sinh_arcsinh_marginal_density_cdf_and_sampling_agree():
    target = sinh_arcsinh_mixture(3, 2, 4.0, 0.3, 1.5, 0.6, (0.7, 1.3), seed=4)
    # marginal density of each coordinate at one point: quadrature of the joint density over the
    # other two coordinates vs the derivative of the exact marginal cdf
    lo, hi = target.box_low - 6, target.box_high + 6
    for i in range(3):
        xi = target.loc[0, i] + 0.3
        eps = 1e-5
        cdf_slope = (target.marginal_cdf(xi + eps, i) - target.marginal_cdf(xi - eps, i)) / (2 * eps)
        o = [j for j in range(3) if j != i]
        u = np.linspace(lo[o[0]], hi[o[0]], 801)
        v = np.linspace(lo[o[1]], hi[o[1]], 801)
        U, V = np.meshgrid(u, v)
        pts = np.empty(U.shape + (3,))
        pts[..., i], pts[..., o[0]], pts[..., o[1]] = xi, U, V
        val = integrate.trapezoid(integrate.trapezoid(np.exp(target.log_pdf(pts)), u, axis=1), v)
        assert val == pytest.approx(float(cdf_slope), rel=1e-3)
    # exact sampling: Kolmogorov-Smirnov against the exact marginal cdf (fixed seed)
    s = target.sample(4000, np.random.default_rng(6))
    for i in range(3):
        res = stats.kstest(s[:, i], lambda v, i=i: target.marginal_cdf(v, i))
        assert res.pvalue > 1e-3


def test_paper_15d_target_is_fixed_and_finite():
    t = paper_15d_target()
    assert (t.dim, t.n_components) == (15, 3)
    np.testing.assert_allclose(t.weights, np.array([1, 1 / 1.5, 1 / 2.25]) / (1 + 1 / 1.5 + 1 / 2.25))
    assert np.all(np.abs(t.skew) <= 0.5) and np.all((t.tail >= 0.75) & (t.tail <= 1.25))
    s = t.sample(2000, np.random.default_rng(0))
    lp = t.log_pdf(s)
    assert np.all(np.isfinite(lp))
    assert np.mean(np.all((s >= t.box_low) & (s <= t.box_high), axis=1)) > 0.95
    np.testing.assert_array_equal(paper_15d_target().loc, t.loc)


def test_target_errors_name_the_culprit():
    with pytest.raises(PosteriorError, match="exactly one of 'separation' and 'overlap'"):
        GMMTargetSpec(separation=None)
    with pytest.raises(PosteriorError, match="'dim' must be an integer >= 1"):
        GMMTargetSpec(dim=0)
    with pytest.raises(PosteriorError, match="'correlation' must lie in"):
        GMMTargetSpec(correlation=1.0)
    with pytest.raises(PosteriorError, match="'weight_decay' must lie in"):
        GMMTargetSpec(weight_decay=0.5)
    with pytest.raises(PosteriorError, match="not positive definite"):
        GaussianMixtureTarget([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]])
    t = GMMTargetSpec(dim=3).build()
    with pytest.raises(PosteriorError, match="trailing dimension of 3"):
        t.log_pdf(np.zeros((4, 2)))
