"""Laplace mixtures: multi-start mode finding, de-duplication, NNLS weights, evidence.

`fit_laplace_mixture` optimises ``-log p`` from a scrambled Sobol set of starts in the model's
default box (one `scipy.optimize.minimize` L-BFGS-B call on the sum over starts, so every
function/gradient evaluation is a single batched torch call, as BoTorch does for acquisition
functions), polishes each distinct end point with `fit_laplace` (exact Newton), merges modes closer
than ``dedup_distance`` in Mahalanobis units, and puts a Laplace Gaussian at each mode.

Weights come from non-negative least squares (`scipy.optimize.nnls`): the mixture
``sum_k w_k N(x; mu_k, Sigma_k)`` is fitted to the *unnormalised* density at sample points drawn
from the components plus Sobol points around them (points inside the support only). Hence
``sum_k w_k`` estimates the evidence ``Z``. Laplace-evidence weights ``p(mu_k) |2 pi Sigma_k|^(1/2)``
are kept for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.optimize
import torch
from scipy import special
from scipy.stats import qmc

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.box import Box
from lla_studio.core.posterior.cancel import CancelCallback, check_cancel
from lla_studio.core.posterior.gaussian import mixture_log_pdf
from lla_studio.core.posterior.laplace import LaplaceFit, fit_laplace
from lla_studio.core.posterior.mixture_nd import (
    MixtureOfLaplaceFits,
    check_mixture_settings,
    modes_of_starts,
    nnls_log_weights_at,
)
from lla_studio.core.posterior.models import DTYPE, PosteriorModel

__all__ = ["LaplaceMixture", "fit_laplace_mixture", "sobol_points", "components_box"]


def sobol_points(box: Box, n: int, seed: int) -> np.ndarray:
    """The first ``n`` points of a scrambled, seeded Sobol sequence in a finite box (`n x 2`)."""
    box.require_finite("Sobol points")
    m = max(0, math.ceil(math.log2(max(n, 1))))
    u = qmc.Sobol(d=2, scramble=True, seed=seed).random_base2(m)[:n]
    return np.asarray(box.low) + u * box.width


def components_box(components: tuple[LaplaceFit, ...], support: Box, k: float) -> Box:
    """Union of ``mode +/- k sd`` boxes, intersected with the support."""
    low = np.min([c.mode - k * c.sd for c in components], axis=0)
    high = np.max([c.mode + k * c.sd for c in components], axis=0)
    return Box(tuple(low), tuple(high), support.names).intersect(support)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LaplaceMixture(MixtureOfLaplaceFits):
    """A mixture of Laplace Gaussians (`LaplaceFit` components, starts `S x 2`) fitted to an
    unnormalised density on the plane."""

    def __post_init__(self) -> None:
        k = len(self.components)
        if k == 0:
            raise PosteriorError("Laplace mixture: no components")
        self._check_fields(2)

    def log_pdf(self, points: np.ndarray, weights: Literal["nnls", "laplace"] = "nnls") -> np.ndarray:
        """Normalised mixture log density at a `... x 2` array of points."""
        lw = self.log_weights if weights == "nnls" else self.log_weights_laplace
        lw = lw - special.logsumexp(lw)
        return mixture_log_pdf(points, lw, self.means, self.covs)

    def component_dicts(self) -> list[dict]:
        """``[{"weight", "mean", "cov"}, ...]`` with normalised NNLS weights (JSON-able)."""
        return [c.to_dict(w) for c, w in zip(self.components, self.weights)]


def _batched_local_optimum(
    model: PosteriorModel, starts: np.ndarray, bounds: Box, max_iter: int, cancel: CancelCallback = None
) -> np.ndarray:
    """L-BFGS-B on ``-sum_s log p(x_s)``: independent local optimisations sharing each torch call."""
    n = starts.shape[0]

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        check_cancel(cancel, "multi-start optimisation")
        t = torch.tensor(z.reshape(n, 2), dtype=DTYPE, requires_grad=True)
        lp = model.log_density(t)
        if not torch.isfinite(lp).all():
            return math.inf, np.zeros_like(z)
        (g,) = torch.autograd.grad(lp.sum(), t)
        return -float(lp.sum().detach()), -g.numpy().reshape(-1)

    lb = np.tile(bounds.low, n)
    ub = np.tile(bounds.high, n)
    res = scipy.optimize.minimize(
        fun,
        starts.reshape(-1),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lb, ub)),
        options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-9},
    )
    x = np.asarray(res.x, dtype=float).reshape(n, 2)
    return x if np.isfinite(res.fun) else starts


def fit_laplace_mixture(
    model: PosteriorModel,
    n_starts: int = 16,
    seed: int = 0,
    *,
    box: Box | None = None,
    dedup_distance: float = 0.5,
    n_samples: int = 256,
    n_sobol: int = 512,
    max_iter: int = 300,
    cancel: CancelCallback = None,
) -> LaplaceMixture:
    """The posterior lab's Laplace mixture of a 2-D model: multi-start, NNLS weights on samples and
    Sobol points (see the module docstring).

    Args:
        model: The posterior model.
        n_starts: Number of Sobol starts ``K``.
        seed: Seeds the Sobol scrambling and the NNLS sample points.
        box: Where the starts lie; defaults to the model's default box within its support.
        dedup_distance: Modes closer than this (Mahalanobis distance under the higher mode's
            covariance) are merged.
        n_samples: Sample points drawn from each component for the NNLS fit.
        n_sobol: Sobol points in the components' 4-sd box for the NNLS fit.
        max_iter: L-BFGS-B iteration limit.
        cancel: Checked at every L-BFGS-B evaluation and Newton polish; returning True raises
            `Cancelled`.

    Returns:
        The `LaplaceMixture`.

    Raises:
        PosteriorError: for ``n_starts < 1`` or when no start leads to a valid mode (the message
            lists the failures).
    """
    check_mixture_settings("starts", n_starts, dedup_distance)
    region = (box if box is not None else model.box).intersect(model.support)
    starts = sobol_points(region, n_starts, seed)
    with torch.no_grad():
        lp0 = model.log_density(torch.tensor(starts, dtype=DTYPE)).numpy()
    ok = np.isfinite(lp0)
    failures: list[str] = [f"start {i} at {tuple(np.round(starts[i], 6))}: zero density" for i in np.flatnonzero(~ok)]
    if not ok.any():
        raise PosteriorError(
            f"Laplace mixture: the log density is not finite at any of the {n_starts} starts in box "
            f"{region.low}..{region.high}"
        )
    check_cancel(cancel, "multi-start optimisation")
    ends = np.full_like(starts, np.nan)
    ends[ok] = _batched_local_optimum(model, starts[ok], region, max_iter, cancel)
    check_cancel(cancel, "multi-start optimisation")

    components, start_component = modes_of_starts(
        model.log_density, ends, ok, np.asarray(region.width), lambda x: fit_laplace(model, x), dedup_distance,
        cancel, failures,
    )

    check_cancel(cancel, "NNLS weights")
    nnls = _nnls_log_weights(model, tuple(components), seed, n_samples, n_sobol)
    return LaplaceMixture.weighted(components, nnls, starts, start_component, failures)


def _nnls_log_weights(
    model: PosteriorModel, components: tuple[LaplaceFit, ...], seed: int, n_samples: int, n_sobol: int
) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    pts = [rng.multivariate_normal(c.mode, c.cov, size=n_samples) for c in components]
    try:
        region = components_box(components, model.support, 4.0)
        pts.append(sobol_points(region, n_sobol, seed + 1))
    except PosteriorError:
        pass
    pts.extend(c.mode[None, :] for c in components)
    return nnls_log_weights_at(model.log_density, components, np.concatenate(pts, 0))
