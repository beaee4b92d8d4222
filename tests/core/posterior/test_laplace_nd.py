"""d-dimensional Laplace fits and multi-start Laplace mixtures: closed forms and the 2-D pipeline as references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import BananaSpec, Cancelled, MixtureSpec, fit_laplace, fit_laplace_mixture
from lla_studio.core.posterior.gmm_targets import GaussianMixtureTarget, GMMTargetSpec
from lla_studio.core.posterior.laplace_nd import fit_laplace_nd, value_grad_hessian_nd
from lla_studio.core.posterior.mixture_nd import fit_laplace_mixture_nd, sobol_points_nd


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def test_laplace_of_a_gaussian_is_exact():
    target = GMMTargetSpec(dim=5, components=1, correlation=0.6, seed=2).build()
    fit = fit_laplace_nd(target.log_density, target.means[0] + 1.5)
    np.testing.assert_allclose(fit.mode, target.means[0], atol=1e-9)
    np.testing.assert_allclose(fit.cov, target.covs[0], rtol=1e-9, atol=1e-12)
    assert fit.log_evidence == pytest.approx(0.0, abs=1e-10)  # normalised density, Gaussian: exact


def test_banana_mode_and_covariance_match_the_closed_form_and_the_2d_fit():
    spec = BananaSpec(mu=0.7, s1=1.2, c=0.8, d=-0.3, s2=0.4)
    model = spec.build()
    fit = fit_laplace_nd(model.log_density, np.array([2.0, 3.0]))
    mode = np.array([spec.mu, spec.c * spec.mu**2 + spec.d])
    v = 2 * spec.c * spec.mu * spec.s1**2
    cov = np.array([[spec.s1**2, v], [v, spec.s2**2 + 4 * spec.c**2 * spec.mu**2 * spec.s1**2]])
    np.testing.assert_allclose(fit.mode, mode, atol=1e-9)
    np.testing.assert_allclose(fit.cov, cov, rtol=1e-8)
    two_d = fit_laplace(model, np.array([2.0, 3.0]))
    np.testing.assert_allclose(fit.hessian, two_d.hessian, rtol=1e-10)
    f, g, H = value_grad_hessian_nd(model.log_density, mode)
    assert np.abs(g).max() < 1e-12 and f == pytest.approx(two_d.log_density, abs=1e-12)


def test_saddle_and_non_finite_starts_raise():
    def saddle(x):
        return -(x[..., 0] ** 2) + x[..., 1] ** 2 - 0.1 * x[..., 2] ** 2

    with pytest.raises(PosteriorError, match="not negative definite"):
        fit_laplace_nd(saddle, np.zeros(3))
    with pytest.raises(PosteriorError, match="log density at the start point"):
        fit_laplace_nd(lambda x: torch.log(x[..., 0]) - x[..., 1] ** 2, np.array([-1.0, 0.0]))


def test_multistart_finds_every_separated_mode_with_nnls_weights_and_evidence():
    target = GMMTargetSpec(dim=4, components=3, separation=7.0, weight_decay=2.0, seed=5).build()
    mix = fit_laplace_mixture_nd(target, 32, seed=0)
    assert len(mix.components) == 3
    order = [int(np.argmin(np.linalg.norm(target.means - m, axis=1))) for m in mix.means]
    assert sorted(order) == [0, 1, 2]
    # at 7 sd the other components move a mode by ~exp(-24): Laplace is the component itself
    np.testing.assert_allclose(mix.means, target.means[order], atol=1e-6)
    np.testing.assert_allclose(mix.covs, target.covs[order], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(mix.weights, target.weights[order], atol=1e-4)
    assert mix.log_evidence == pytest.approx(0.0, abs=1e-4)
    assert np.all(mix.start_component >= 0) and mix.starts.shape == (32, 4)
    assert mix.failures == ()


def test_nd_mixture_agrees_with_the_2d_pipeline_on_a_2d_mixture():
    spec = MixtureSpec(separation=5.0, sd=1.0, correlation=0.3, weight=0.3)
    model = spec.build()
    two_d = fit_laplace_mixture(model, 16, seed=1)
    target = GaussianMixtureTarget(*spec.components())
    nd = fit_laplace_mixture_nd(target, 16, seed=1, low=np.array(model.box.low), high=np.array(model.box.high))
    a, b = np.argsort(two_d.means[:, 0]), np.argsort(nd.means[:, 0])
    np.testing.assert_allclose(nd.means[b], two_d.means[a], atol=1e-9)
    np.testing.assert_allclose(nd.covs[b], two_d.covs[a], rtol=1e-8)
    np.testing.assert_allclose(nd.weights[b], two_d.weights[a], atol=5e-3)
    np.testing.assert_array_equal(nd.starts, sobol_points_nd(np.array(model.box.low), np.array(model.box.high), 16, 1))


def test_multistart_cancel_and_bad_inputs():
    target = GMMTargetSpec(dim=3, components=2, seed=0).build()
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled, match="multi-start"):
        fit_laplace_mixture_nd(target, 8, cancel=cancel)
    with pytest.raises(PosteriorError, match="'n_starts' must be a positive integer"):
        fit_laplace_mixture_nd(target, 0)
    with pytest.raises(PosteriorError, match="'dedup_distance' must be positive"):
        fit_laplace_mixture_nd(target, 4, dedup_distance=0.0)
    with pytest.raises(PosteriorError, match="3 entries per corner"):
        fit_laplace_mixture_nd(target, 4, low=np.zeros(2))
