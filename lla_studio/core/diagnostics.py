"""Leave-one-out cross-validation of a surrogate on its training data.

With hyperparameters fixed, a GP's leave-one-out predictive distribution has a closed form
(Rasmussen & Williams 2006, eq. 5.12): with ``K = k(X, X) + σ²I`` and ``α = K⁻¹(y − m)``,

    μ₋ᵢ = yᵢ − αᵢ / [K⁻¹]ᵢᵢ,    σ²₋ᵢ = 1 / [K⁻¹]ᵢᵢ,

which is the predictive distribution of the *observation* yᵢ (noise included) given the other n − 1
points. :func:`loo_closed_form` computes it from one Cholesky factorization in the model's
standardized outcome space and maps it back to the user's units; :func:`loo_refit` refits the
hyperparameters for every fold (n fits) for comparison.

A linearized Laplace surrogate is a Gaussian linear model in its weights (the GP view, with the
network's MAP prediction as its mean), so its leave-one-out predictive also has a closed form:
removing the Gaussian likelihood term of point i from the posterior marginal ``N(mᵢ, vᵢ)`` of the
latent ``fᵢ`` leaves the cavity

    1/v₋ᵢ = 1/vᵢ − 1/σ²,    μ₋ᵢ = v₋ᵢ (mᵢ/vᵢ − yᵢ/σ²),

and the observation's LOO predictive is ``N(μ₋ᵢ, v₋ᵢ + σ²)`` (:func:`loo_linearized`). The MAP
weights and (δ, σ) stay those fitted on all n points, as for the GP's fixed hyperparameters. With the
mean ``mᵢ = f(xᵢ; θ*)`` this is the LOO of the LLA as it predicts; at an exact MAP it equals eq. 5.12
for the GP of the linearized network (prior mean ``f(x; θ*) − J(x)θ*``). After post-hoc tuning the
MAP was trained under other (δ, σ), and the two differ slightly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from botorch.models import SingleTaskGP

from lla_studio.core.loo_result import LOOResult, loo_scores

__all__ = ["LOOResult", "loo_closed_form", "loo_linearized", "loo_refit", "loo_scores"]


def loo_closed_form(model: SingleTaskGP) -> LOOResult:
    """Closed-form LOO of a fitted ``SingleTaskGP`` (hyperparameters fixed).

    Works in the model's transformed space (features, standardized outcomes) and maps means and
    standard deviations back through the outcome transform.
    """
    model.eval()
    with torch.no_grad():
        X = model.train_inputs[0]
        y = model.train_targets
        m = model.mean_module(X)
        K = model.covar_module(X).to_dense()
        noise = model.likelihood.noise.reshape(-1)
        K = K + torch.diag_embed(noise.expand(X.shape[-2]))
        L = torch.linalg.cholesky(K)
        Kinv = torch.cholesky_inverse(L)
        alpha = Kinv @ (y - m)
        diag = torch.diagonal(Kinv)
        mu_t = y - alpha / diag
        sd_t = torch.sqrt(1.0 / diag)
        y_obs, mu, sd = y, mu_t, sd_t
        tf = getattr(model, "outcome_transform", None)
        if tf is not None:
            stdv = tf.stdvs.reshape(())
            mean = tf.means.reshape(())
            y_obs, mu, sd = y * stdv + mean, mu_t * stdv + mean, sd_t * stdv
    return loo_scores(y_obs.cpu().numpy(), mu.cpu().numpy(), sd.cpu().numpy())


def loo_linearized(model: Any) -> LOOResult:
    """Closed-form LOO of a fitted :class:`~lla_studio.core.surrogates.lla.LinearizedLaplaceModel`
    (weights, δ and σ fixed; full network or last layer), in the user's units."""
    with torch.no_grad():
        X, y = model.train_X, model.train_Y.reshape(-1)
        m, v = model.predict(X)
        noise = torch.as_tensor(model.noise_std_original, dtype=v.dtype) ** 2
        # 1/v >= 1/noise in exact arithmetic (the site only adds precision); keep the cavity proper
        cavity_precision = (1.0 / v - 1.0 / noise).clamp_min(1e-12 / noise)
        v_cav = 1.0 / cavity_precision
        mu = v_cav * (m / v - y / noise)
        sd = torch.sqrt(v_cav + noise)
    return loo_scores(y.cpu().numpy(), mu.cpu().numpy(), sd.cpu().numpy())


def loo_refit(
    fit: Callable[[torch.Tensor, torch.Tensor], SingleTaskGP],
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    cancel: Callable[[], bool] | None = None,
) -> LOOResult:
    """LOO with hyperparameters refitted for every fold (``n`` fits).

    Args:
        fit: ``fit(U, Y) -> fitted model`` (e.g. a closure over :func:`~lla_studio.core.surrogates.gp.fit_gp`).
        train_U: ``n x d`` encodings.
        train_Y: ``n x 1`` values.
        cancel: Polled between folds.
    """
    n = train_U.shape[0]
    mean, sd = np.empty(n), np.empty(n)
    for i in range(n):
        if cancel is not None and cancel():
            from lla_studio.core.errors import Cancelled

            raise Cancelled("leave-one-out refits cancelled")
        keep = torch.arange(n) != i
        model = fit(train_U[keep], train_Y[keep])
        with torch.no_grad():
            post = model.posterior(train_U[i : i + 1], observation_noise=True)
        mean[i] = float(post.mean.detach().reshape(()))
        sd[i] = float(post.variance.detach().reshape(()).sqrt())
    return loo_scores(train_Y.reshape(-1).numpy(), mean, sd)
