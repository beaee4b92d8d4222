"""A linear network (no hidden layer, identity activation) is Bayesian linear regression.

For ``f(x) = w^T x + b`` the linearization is exact, so the LLA must reproduce the closed-form
weight posterior ``N(Sigma Phi^T y / s^2, Sigma)``, ``Sigma = (Phi^T Phi / s^2 + delta I)^-1``,
and the Laplace evidence is the exact ``log N(y | 0, Phi Phi^T / delta + s^2 I)``.
"""

from __future__ import annotations

import math

import pytest
import torch

from lla_studio.core.surrogates.lla import LLASettings, fit_lla
from lla_studio.core.surrogates.networks import MLPSpec




def _blr(Phi, y, delta, s):
    p = Phi.shape[1]
    Sigma = torch.linalg.inv(Phi.T @ Phi / s**2 + delta * torch.eye(p, dtype=Phi.dtype))
    mu = Sigma @ Phi.T @ y / s**2
    K = Phi @ Phi.T / delta + s**2 * torch.eye(len(y), dtype=Phi.dtype)
    evidence = torch.distributions.MultivariateNormal(torch.zeros_like(y), K).log_prob(y)
    return mu, Sigma, evidence


@pytest.mark.parametrize("n", [12, 3])  # n > p (weight-space factor) and n < p (function space)
def test_linear_network_is_bayesian_linear_regression(n):
    g = torch.Generator().manual_seed(1)
    d = 4
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    Y = (X @ torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64) + 0.7).unsqueeze(-1)
    Y = Y + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    delta, s = 0.8, 0.3
    settings = LLASettings(
        prior_precision=delta,
        noise_std=s,
        tuning="none",
        optimizer="lbfgs",
        max_epochs=50,
        patience=2,
        rel_tol=1e-14,
    )
    model, report = fit_lla(X, Y, MLPSpec((), "identity"), settings)
    # closed form on the standardized targets the model uses (weights ordered [w, b])
    ys = (Y.squeeze(-1) - Y.mean()) / Y.std()
    Phi = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], dim=1)
    mu, Sigma, evidence = _blr(Phi, ys, delta, s)
    theta = torch.cat([model.net[0].weight.reshape(-1), model.net[0].bias])
    torch.testing.assert_close(theta, mu, rtol=1e-7, atol=1e-9)

    Xt = torch.rand(6, d, generator=g, dtype=torch.float64)
    Phit = torch.cat([Xt, torch.ones(6, 1, dtype=X.dtype)], dim=1)
    post = model.posterior(Xt)
    mean_ref = Phit @ mu * Y.std() + Y.mean()
    cov_ref = Phit @ Sigma @ Phit.T * Y.var()
    torch.testing.assert_close(post.mean.squeeze(-1), mean_ref, rtol=1e-7, atol=1e-9)
    nugget = 1e-10 * Y.var() * torch.eye(6, dtype=X.dtype)
    torch.testing.assert_close(post.covariance_matrix - nugget, cov_ref, rtol=1e-8, atol=1e-14)
    torch.testing.assert_close(model.marginal_variance(Xt), torch.diagonal(cov_ref), rtol=1e-8, atol=0)

    assert report.log_marginal_likelihood == pytest.approx(evidence.item(), rel=1e-9)
    assert report.log_marginal_likelihood_original == pytest.approx(
        evidence.item() - n * math.log(Y.std().item()), rel=1e-9
    )
    # observation noise on the original scale
    noisy = model.posterior(Xt.unsqueeze(-2), observation_noise=True).variance.reshape(-1)
    torch.testing.assert_close(noisy, torch.diagonal(cov_ref) + (s * Y.std()) ** 2, rtol=1e-8, atol=0)
    assert report.noise_std_original == pytest.approx(s * Y.std().item())


def test_tuned_hyperparameters_maximize_the_evidence():
    """Post-hoc tuning: a stationary point of the Laplace evidence at fixed MAP weights."""
    g = torch.Generator().manual_seed(2)
    X = torch.rand(40, 3, generator=g, dtype=torch.float64)
    Y = (X.sum(-1) + 0.2 * torch.randn(40, generator=g, dtype=torch.float64)).unsqueeze(-1)
    model, report = fit_lla(X, Y, MLPSpec((), "identity"), LLASettings(max_epochs=20))
    assert report.warnings == ()
    z = torch.tensor([math.log(report.prior_precision), math.log(report.noise_std)], requires_grad=True)
    lml = model.log_marginal_likelihood(z[0].exp(), z[1].exp())
    (grad,) = torch.autograd.grad(lml, z)
    assert grad.abs().max() < 1e-4
    for dz in ([0.05, 0], [-0.05, 0], [0, 0.05], [0, -0.05]):
        other = model.log_marginal_likelihood(*(z.detach() + torch.tensor(dz)).exp())
        assert other < lml
