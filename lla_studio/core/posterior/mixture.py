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
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.optimize
import torch
from scipy import special
from scipy.stats import qmc

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.box import Box
from lla_studio.core.posterior.cancel import CancelCallback, check_cancel
from lla_studio.core.posterior.gaussian import gaussian_log_pdf, mixture_log_pdf
from lla_studio.core.posterior.laplace import LaplaceFit, fit_laplace
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
class LaplaceMixture:
    """A mixture of Laplace Gaussians fitted to an unnormalised density.

    Attributes:
        components: The distinct modes' `LaplaceFit`s, highest log density first.
        log_weights: A `K` array: ``log w_k`` of the NNLS fit (``-inf`` for a zero weight);
            ``sum_k w_k`` estimates the evidence.
        log_weights_laplace: A `K` array: ``log p(mu_k) + log |2 pi Sigma_k|^(1/2)``.
        starts: An `S x 2` array of start points.
        start_component: An `S` int array: the component each start ended in (-1: failed or
            dropped start).
        failures: Messages of starts whose optimisation failed (saddles, boundary maxima, ...).
        weights_source: ``"nnls"``, or ``"laplace"`` when NNLS returned all-zero weights.
    """

    components: tuple[LaplaceFit, ...]
    log_weights: np.ndarray
    log_weights_laplace: np.ndarray
    starts: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    start_component: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    failures: tuple[str, ...] = ()
    weights_source: str = "nnls"

    def __post_init__(self) -> None:
        k = len(self.components)
        if k == 0:
            raise PosteriorError("Laplace mixture: no components")
        for name in ("log_weights", "log_weights_laplace"):
            arr = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            if arr.shape != (k,):
                raise PosteriorError(f"Laplace mixture: '{name}' must have {k} entries, got {arr.shape[0]}")
            if not np.any(np.isfinite(arr)):
                raise PosteriorError(f"Laplace mixture: every entry of '{name}' is zero weight")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "starts", np.asarray(self.starts, dtype=float).reshape(-1, 2))
        object.__setattr__(self, "start_component", np.asarray(self.start_component, dtype=int).reshape(-1))

    @property
    def means(self) -> np.ndarray:
        """A `K x 2` array of modes."""
        return np.stack([c.mode for c in self.components])

    @property
    def covs(self) -> np.ndarray:
        """A `K x 2 x 2` array of covariances."""
        return np.stack([c.cov for c in self.components])

    @property
    def weights(self) -> np.ndarray:
        """Normalised NNLS weights (`K`)."""
        return np.exp(self.log_weights - special.logsumexp(self.log_weights))

    @property
    def laplace_weights(self) -> np.ndarray:
        """Normalised Laplace-evidence weights (`K`)."""
        return np.exp(self.log_weights_laplace - special.logsumexp(self.log_weights_laplace))

    @property
    def log_evidence(self) -> float:
        """``log sum_k w_k``: the NNLS estimate of the log evidence."""
        return float(special.logsumexp(self.log_weights))

    @property
    def laplace_log_evidence(self) -> float:
        """Log evidence from Laplace-evidence weights (sum over modes)."""
        return float(special.logsumexp(self.log_weights_laplace))

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
    """Multi-start Laplace mixture with NNLS weights (see the module docstring).

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
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise PosteriorError(f"Laplace mixture: 'starts' must be a positive integer, got {n_starts!r}")
    if not dedup_distance > 0:
        raise PosteriorError(f"Laplace mixture: 'dedup_distance' must be positive, got {dedup_distance!r}")
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

    # polish one representative per cluster of end points with exact Newton
    scale = region.width
    with torch.no_grad():
        lp_end = model.log_density(torch.tensor(np.nan_to_num(ends), dtype=DTYPE)).numpy()
    lp_end[~ok] = -np.inf
    order = np.argsort(-lp_end)
    reps: list[int] = []
    rep_of = np.full(n_starts, -1)
    for i in order:
        if not ok[i]:
            continue
        for r in reps:
            if np.all(np.abs(ends[i] - ends[r]) <= 1e-3 * scale):
                rep_of[i] = r
                break
        else:
            reps.append(i)
            rep_of[i] = i
    fits: dict[int, LaplaceFit] = {}
    for r in reps:
        check_cancel(cancel, "Newton polish of the multi-start modes")
        try:
            fits[r] = fit_laplace(model, ends[r])
        except PosteriorError as exc:
            failures.append(f"start {r}: {exc}")
    if not fits:
        raise PosteriorError("Laplace mixture: no start led to a valid mode:\n  " + "\n  ".join(failures))

    # de-duplicate modes in Mahalanobis units, best first
    components: list[LaplaceFit] = []
    comp_of_rep: dict[int, int] = {}
    for r in sorted(fits, key=lambda r: -fits[r].log_density):
        fit = fits[r]
        for j, c in enumerate(components):
            d = fit.mode - c.mode
            if math.sqrt(float(d @ np.linalg.solve(c.cov, d))) < dedup_distance:
                comp_of_rep[r] = j
                break
        else:
            comp_of_rep[r] = len(components)
            components.append(fit)
    start_component = np.array([comp_of_rep.get(int(rep_of[i]), -1) if rep_of[i] >= 0 else -1 for i in range(n_starts)])

    check_cancel(cancel, "NNLS weights")
    log_w_laplace = np.array([c.log_evidence for c in components])
    log_w, source = _nnls_log_weights(model, tuple(components), seed, n_samples, n_sobol)
    if source == "laplace":
        log_w = log_w_laplace.copy()
    return LaplaceMixture(
        components=tuple(components),
        log_weights=log_w,
        log_weights_laplace=log_w_laplace,
        starts=starts,
        start_component=start_component,
        failures=tuple(failures),
        weights_source=source,
    )


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
    x = np.concatenate(pts, 0)
    with torch.no_grad():
        lp = model.log_density(torch.tensor(x, dtype=DTYPE)).numpy()
    keep = np.isfinite(lp)
    x, lp = x[keep], lp[keep]
    lmax = lp.max()
    b = np.exp(lp - lmax)
    A = np.exp(np.stack([gaussian_log_pdf(x, c.mode, c.cov) for c in components], -1))
    s = A.max(axis=0)
    u, _ = scipy.optimize.nnls(A / s, b, maxiter=50 * len(components) + 100)
    if not np.any(u > 0):
        return np.full(len(components), -np.inf), "laplace"
    with np.errstate(divide="ignore"):
        log_w = np.log(u) - np.log(s) + lmax
    return log_w, "nnls"
