"""Laplace fits against independent Newton iterations and closed forms; failure modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import BananaSpec, ExpressionSpec, fit_laplace, make_model
from lla_studio.core.posterior.laplace import LaplaceFit

X = np.array([-0.86, -0.30, -0.05, 0.73])
N = np.array([5.0, 5.0, 5.0, 5.0])
Y = np.array([0.0, 1.0, 3.0, 5.0])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def _logistic_grad_hess(alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic gradient/Hessian of the bioassay log likelihood in (alpha, beta), and the L_beta terms."""
    p = 1 / (1 + np.exp(-(alpha + beta * X)))
    r = Y - N * p
    w = N * p * (1 - p)
    g = np.array([r.sum(), (r * X).sum()])
    H = -np.array([[w.sum(), (w * X).sum()], [(w * X).sum(), (w * X * X).sum()]])
    return g, H, p


def _numpy_newton(grad_hess, x0, iters=100):
    x = np.asarray(x0, dtype=float)
    for _ in range(iters):
        g, H = grad_hess(x)
        step = np.linalg.solve(-H, g)
        x = x + step
        if np.abs(step).max() < 1e-14:
            break
    return x, np.linalg.inv(-grad_hess(x)[1])


def test_bioassay_laplace_matches_independent_newton():
    mode_ref, cov_ref = _numpy_newton(lambda x: _logistic_grad_hess(*x)[:2], [0.0, 1.0])
    assert mode_ref == pytest.approx([0.8466, 7.7488], abs=1e-3)  # BDA3 §3.7 / §4.1
    fit = fit_laplace(make_model("bioassay"), [3.0, 20.0])
    np.testing.assert_allclose(fit.mode, mode_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fit.cov, cov_ref, rtol=1e-8, atol=1e-10)
    assert fit.sd == pytest.approx(np.sqrt(np.diag(cov_ref)), rel=1e-8)


def test_bioassay_log_beta_laplace_matches_independent_newton():
    def grad_hess(z):
        alpha, u = z
        beta = math.exp(u)
        g, H, _ = _logistic_grad_hess(alpha, beta)
        # chain rule for beta = exp(u), plus the Jacobian term +u
        gz = np.array([g[0], beta * g[1] + 1.0])
        Hz = np.array([[H[0, 0], beta * H[0, 1]], [beta * H[0, 1], beta**2 * H[1, 1] + beta * g[1]]])
        return gz, Hz

    mode_ref, cov_ref = _numpy_newton(grad_hess, [0.8, 2.0])
    fit = fit_laplace(make_model("bioassay-logbeta"))  # default start: the box centre
    np.testing.assert_allclose(fit.mode, mode_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fit.cov, cov_ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("mu", "s1", "c", "d", "s2"), [(0.7, 1.0, 1.0, 0.0, 0.5), (-1.2, 0.6, -0.8, 2.0, 0.3)])
def test_banana_laplace_equals_closed_form(mu, s1, c, d, s2):
    fit = fit_laplace(BananaSpec(mu=mu, s1=s1, c=c, d=d, s2=s2).build(), [mu + 0.5, d])
    # mode (mu, c mu^2 + d); -H = [[1/s1^2 + 4c^2mu^2/s2^2, -2c mu/s2^2], [-2c mu/s2^2, 1/s2^2]]
    np.testing.assert_allclose(fit.mode, [mu, c * mu**2 + d], atol=1e-10)
    cov = np.array([[s1**2, 2 * c * mu * s1**2], [2 * c * mu * s1**2, s2**2 + 4 * c**2 * mu**2 * s1**2]])
    np.testing.assert_allclose(fit.cov, cov, rtol=1e-10)
    # p(mode) |2 pi Sigma|^(1/2) = 1/(2 pi s1 s2) * 2 pi s1 s2 = 1
    assert fit.log_evidence == pytest.approx(0.0, abs=1e-10)


def test_shear_frame_laplace_at_truth_and_mirror():
    model = make_model("shear-frame")
    a = fit_laplace(model, [0.9, 0.15])
    b = fit_laplace(model, [0.25, 0.45])
    np.testing.assert_allclose(a.mode, [1.0, 0.1], atol=1e-8)
    np.testing.assert_allclose(b.mode, [0.2, 0.5], atol=1e-8)
    # the mirror map preserves the likelihood and its curvature volume: equal Laplace evidences
    assert a.log_evidence == pytest.approx(b.log_evidence, abs=1e-6)


def test_saddle_is_reported_with_point_and_eigenvalues():
    model = ExpressionSpec("a**2 - b**2", (-2, -2), (2, 2)).build()
    with pytest.raises(PosteriorError, match=r"Hessian at \(0, 0\) is not negative definite \(eigenvalues \(-2, 2\)\)"):
        fit_laplace(model, [0.0, 0.0])
    # the mixture's midpoint is a saddle too
    with pytest.raises(PosteriorError, match="not negative definite"):
        fit_laplace(make_model("mixture"), [0.0, 0.0])


def test_boundary_maximum_is_reported():
    model = ExpressionSpec("a + b", (0, 0), (1, 1)).build()
    with pytest.raises(PosteriorError, match="support boundary"):
        fit_laplace(model, [0.5, 0.5])


def test_non_convergence_and_bad_start_raise():
    model = make_model("bioassay")
    with pytest.raises(PosteriorError, match="did not converge in 2 iterations from"):
        fit_laplace(model, [8.0, 35.0], max_iter=2)
    with pytest.raises(PosteriorError, match=r"start point \(0, -1\)"):
        fit_laplace(model, [0.0, -1.0])
    with pytest.raises(PosteriorError, match="covariance is not positive definite"):
        LaplaceFit(mode=np.zeros(2), cov=-np.eye(2), hessian=np.eye(2), log_density=0.0)
