"""Closed-form leave-one-out of the linearized Laplace surrogate.

References: (1) a linear network is Bayesian linear regression, whose LOO predictive is computed
here by n explicit posteriors without point i; (2) a nonlinear network at its MAP is the GP of its
linearization, whose LOO is Rasmussen & Williams' eq. 5.12, computed here from the Jacobian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lla_studio.core.diagnostics import loo_linearized
from lla_studio.core.surrogates.lla import LLASettings, fit_lla
from lla_studio.core.surrogates.networks import MLPSpec


def _data(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    Y = torch.sin(4 * X[:, :1]) + X[:, 1:2] - 0.5 * X[:, :1] * X[:, 1:2]
    return X, Y + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.float64)


def test_linear_network_loo_equals_explicit_bayesian_linear_regression_refits():
    X, Y = _data(14, 3, seed=3)
    delta, s = 0.7, 0.25
    settings = LLASettings(prior_precision=delta, noise_std=s, tuning="none", max_epochs=50, patience=2, rel_tol=1e-14)
    model, _ = fit_lla(X, Y, MLPSpec((), "identity"), settings)
    loo = loo_linearized(model)
    ym, ysd = Y.mean(), Y.std()
    ys = ((Y.squeeze(-1) - ym) / ysd)
    Phi = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    mean_ref, sd_ref = [], []
    for i in range(len(X)):
        keep = torch.arange(len(X)) != i
        P = Phi[keep]
        Sigma = torch.linalg.inv(P.T @ P / s**2 + delta * torch.eye(P.shape[1], dtype=X.dtype))
        w = Sigma @ P.T @ ys[keep] / s**2
        mean_ref.append(float(Phi[i] @ w) * float(ysd) + float(ym))
        sd_ref.append(float(torch.sqrt(Phi[i] @ Sigma @ Phi[i] + s**2)) * float(ysd))
    np.testing.assert_allclose(loo.mean, mean_ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(loo.sd, sd_ref, rtol=1e-7)
    np.testing.assert_allclose(loo.observed, Y.squeeze(-1).numpy())


@pytest.mark.parametrize("subset", ["all", "last_layer"])
def test_network_loo_equals_the_gp_closed_form_of_the_linearized_model(subset):
    """A tanh MLP trained to its MAP: the cavity form equals R&W eq. 5.12 for the GP of the
    linearized network, kernel J Jᵀ / δ + σ² I and prior mean f(x; θ*) − J(x) θ* (standardized units)."""
    X, Y = _data(20, 2, seed=4)
    settings = LLASettings(
        prior_precision=2.0, noise_std=0.2, tuning="none", subset_of_weights=subset,
        max_epochs=400, patience=20, rel_tol=1e-15,
    )
    model, _ = fit_lla(X, Y, MLPSpec((8,), "tanh"), settings)
    loo = loo_linearized(model)
    with torch.no_grad():
        f, J = model._f_and_jacobian(model.net, model._theta, X)
    theta = torch.cat([v.reshape(-1) for v in model._theta.values()])
    if subset == "last_layer":
        J, theta = J[:, -9:], theta[-9:]  # 8 weights and the bias of the output layer
    f = f.reshape(-1)
    ym, ysd = Y.mean(), Y.std()
    ys = (Y.squeeze(-1) - ym) / ysd
    K = J @ J.T / 2.0 + 0.2**2 * torch.eye(len(X), dtype=X.dtype)
    prior_mean = f - J @ theta
    Kinv = torch.linalg.inv(K)
    alpha = Kinv @ (ys - prior_mean)
    # at the MAP the linearized model's posterior mean is the network's prediction
    torch.testing.assert_close(prior_mean + (K - 0.2**2 * torch.eye(len(X), dtype=X.dtype)) @ alpha, f, rtol=0, atol=1e-6)
    mu = ys - alpha / torch.diagonal(Kinv)
    sd = torch.sqrt(1.0 / torch.diagonal(Kinv))
    np.testing.assert_allclose(loo.mean, (mu * ysd + ym).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loo.sd, (sd * ysd).numpy(), rtol=1e-8)
    assert 0.0 <= loo.coverage95 <= 1.0 and np.isfinite(loo.mlpd)
