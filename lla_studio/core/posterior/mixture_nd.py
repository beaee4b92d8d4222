"""Laplace mixtures in ``d`` dimensions: multi-start mode finding, de-duplication, NNLS weights.

The d-dimensional version of `lla_studio.core.posterior.mixture` (same algorithm, no support box):

1. scrambled, seeded Sobol starts in the target's box;
2. one `scipy.optimize.minimize` L-BFGS-B call on ``-sum_s log p(x_s)`` (independent local
   optimisations whose function/gradient evaluations share one batched torch call);
3. end points closer than ``1e-3`` box widths share one exact-Newton polish (`fit_laplace_nd`);
4. modes closer than ``dedup_distance`` in Mahalanobis units merge; a Laplace Gaussian at each;
5. weights by non-negative least squares (`scipy.optimize.nnls`): ``sum_k w_k N(x; mu_k, Sigma_k)``
   fitted to the unnormalised density at points sampled from the components plus the modes, so
   ``sum_k w_k`` estimates the evidence. (The 2-D version also adds Sobol points in the components'
   4-sd box; in 10 dimensions nearly all of those land where the density is zero, so we leave them
   out.)

The 2-D `fit_laplace_mixture`, `sobol_points`, `_batched_local_optimum` and `_nnls_log_weights` are
``d = 2`` cases of `fit_laplace_mixture_nd`, `sobol_points_nd` and the helpers here, plus the
support handling.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import scipy.optimize
import torch
from scipy import special
from scipy.stats import qmc
from torch import Tensor

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.cancel import CancelCallback, check_cancel
from lla_studio.core.posterior.gaussian_nd import gaussian_log_pdf_nd, mixture_log_pdf_nd, sample_mixture_nd
from lla_studio.core.posterior.laplace_nd import LaplaceFitND, LogDensity, fit_laplace_nd
from lla_studio.core.posterior.models import DTYPE

__all__ = ["BoxedDensity", "LaplaceMixtureND", "fit_laplace_mixture_nd", "sobol_points_nd"]


class BoxedDensity(Protocol):
    """What the d-dimensional pipeline needs of a target (every `TargetND` is one)."""

    dim: int
    box_low: np.ndarray
    box_high: np.ndarray

    def log_density(self, x: Tensor) -> Tensor:
        """``... x d -> ...`` (unnormalised is fine; differentiable)."""
        ...


def sobol_points_nd(low: np.ndarray, high: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The first ``n`` points of a scrambled, seeded Sobol sequence in the box ``[low, high]`` (`n x d`)."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise PosteriorError(f"Sobol points need a finite box with low < high, got {low.tolist()}..{high.tolist()}")
    m = max(0, math.ceil(math.log2(max(n, 1))))
    u = qmc.Sobol(d=low.size, scramble=True, seed=seed).random_base2(m)[:n]
    return low + u * (high - low)


@dataclass(frozen=True)
class MixtureOfLaplaceFits:
    """A mixture of Laplace Gaussians fitted to an unnormalised density, in any dimension (the 2-D
    lab's :class:`~lla_studio.core.posterior.mixture.LaplaceMixture` and :class:`LaplaceMixtureND`).

    Attributes:
        components: The distinct modes' Laplace fits, highest log density first.
        log_weights: A `K` array: ``log w_k`` of the NNLS fit (``-inf`` for a zero weight);
            ``sum_k w_k`` estimates the evidence.
        log_weights_laplace: A `K` array: ``log p(mu_k) + log |2 pi Sigma_k|^(1/2)``.
        starts: An `S x d` array of start points.
        start_component: An `S` int array: the component each start ended in (-1: failed or
            dropped start).
        failures: Messages of starts whose optimisation failed (saddles, boundary maxima, ...).
        weights_source: ``"nnls"``, or ``"laplace"`` when NNLS returned all-zero weights.
    """

    components: tuple[Any, ...]
    log_weights: np.ndarray
    log_weights_laplace: np.ndarray
    starts: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))
    start_component: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    failures: tuple[str, ...] = ()
    weights_source: str = "nnls"

    @classmethod
    def weighted(
        cls,
        components: list[Any],
        nnls: tuple[np.ndarray, str],
        starts: np.ndarray,
        start_component: np.ndarray,
        failures: list[str],
        **extra: Any,
    ) -> Any:
        """The mixture with NNLS log weights ``nnls = (log_w, source)``; when NNLS gave all-zero
        weights (``source == "laplace"``) the Laplace evidences stand in for them."""
        comps = tuple(components)
        log_w_laplace = np.array([c.log_evidence for c in comps])
        log_w, source = nnls
        return cls(
            components=comps, log_weights=log_w_laplace.copy() if source == "laplace" else log_w,
            log_weights_laplace=log_w_laplace, starts=starts, start_component=start_component,
            failures=tuple(failures), weights_source=source, **extra,
        )

    def _check_fields(self, dim: int) -> None:
        """Validate and freeze the weights, components, starts and start components (frozen dataclass)."""
        k = len(self.components)
        for name in ("log_weights", "log_weights_laplace"):
            arr = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            if arr.shape != (k,):
                raise PosteriorError(f"Laplace mixture: '{name}' must have {k} entries, got {arr.shape[0]}")
            if not np.any(np.isfinite(arr)):
                raise PosteriorError(f"Laplace mixture: every entry of '{name}' is zero weight")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "starts", np.asarray(self.starts, dtype=float).reshape(-1, dim))
        object.__setattr__(self, "start_component", np.asarray(self.start_component, dtype=int).reshape(-1))

    @property
    def means(self) -> np.ndarray:
        """A `K x d` array of modes."""
        return np.stack([c.mode for c in self.components])

    @property
    def covs(self) -> np.ndarray:
        """A `K x d x d` array of covariances."""
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


@dataclass(frozen=True)
class LaplaceMixtureND(MixtureOfLaplaceFits):
    """A mixture of Laplace Gaussians (`LaplaceFitND` components) on ``R^d``; ``seconds``: wall-clock
    seconds of the whole fit."""

    seconds: float = 0.0

    def __post_init__(self) -> None:
        k = len(self.components)
        if k == 0:
            raise PosteriorError("Laplace mixture: no components")
        dims = {c.dim for c in self.components}
        if len(dims) != 1:
            raise PosteriorError(f"Laplace mixture: components of different dimensions {sorted(dims)}")
        self._check_fields(dims.pop())

    @property
    def dim(self) -> int:
        """``d``."""
        return self.components[0].dim

    def log_pdf(self, points: np.ndarray) -> np.ndarray:
        """Normalised mixture log density (NNLS weights) at a `... x d` array of points."""
        lw = self.log_weights - special.logsumexp(self.log_weights)
        return mixture_log_pdf_nd(points, lw, self.means, self.covs)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` exact samples of the normalised mixture (`n x d`)."""
        return sample_mixture_nd(rng, self.weights, self.means, self.covs, n)


def _batched_local_optimum(
    log_density: LogDensity,
    starts: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    max_iter: int,
    cancel: CancelCallback,
) -> np.ndarray:
    """L-BFGS-B on ``-sum_s log p(x_s)`` within the box: independent optimisations sharing each torch call."""
    n, d = starts.shape

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        check_cancel(cancel, "multi-start optimisation")
        t = torch.tensor(z.reshape(n, d), dtype=DTYPE, requires_grad=True)
        lp = log_density(t)
        if not torch.isfinite(lp).all():
            return math.inf, np.zeros_like(z)
        (g,) = torch.autograd.grad(lp.sum(), t)
        return -float(lp.sum().detach()), -g.numpy().reshape(-1)

    res = scipy.optimize.minimize(
        fun,
        starts.reshape(-1),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(np.tile(low, n), np.tile(high, n))),
        options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-9},
    )
    x = np.asarray(res.x, dtype=float).reshape(n, d)
    return x if np.isfinite(res.fun) else starts


def fit_laplace_mixture_nd(
    target: BoxedDensity,
    n_starts: int = 32,
    seed: int = 0,
    *,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    dedup_distance: float = 0.5,
    n_samples: int = 256,
    max_iter: int = 1000,
    cancel: CancelCallback = None,
) -> LaplaceMixtureND:
    """Multi-start Laplace mixture with NNLS weights (see the module docstring).

    Args:
        target: Anything with ``dim``, ``box_low``, ``box_high`` and a torch ``log_density``.
        n_starts: Number of Sobol starts.
        seed: Seeds the Sobol scrambling and the NNLS sample points.
        low: Lower corner of the start box (default ``target.box_low``); the local searches stay in it.
        high: Upper corner (default ``target.box_high``).
        dedup_distance: Modes closer than this (Mahalanobis distance under the higher mode's
            covariance) are merged.
        n_samples: Points sampled from each component for the NNLS fit.
        max_iter: L-BFGS-B iteration limit.
        cancel: Checked at every L-BFGS-B evaluation, Newton polish and before NNLS; returning True
            raises `Cancelled`.

    Returns:
        The `LaplaceMixtureND`.

    Raises:
        PosteriorError: for bad settings or when no start leads to a valid mode (the message lists
            the failures).
    """
    t_start = time.perf_counter()
    check_mixture_settings("n_starts", n_starts, dedup_distance)
    lo = np.asarray(target.box_low if low is None else low, dtype=float)
    hi = np.asarray(target.box_high if high is None else high, dtype=float)
    if lo.shape != (target.dim,) or hi.shape != (target.dim,):
        raise PosteriorError(f"Laplace mixture: the box must have {target.dim} entries per corner")
    log_density = target.log_density
    starts = sobol_points_nd(lo, hi, n_starts, seed)
    with torch.no_grad():
        lp0 = log_density(torch.tensor(starts, dtype=DTYPE)).numpy()
    ok = np.isfinite(lp0)
    failures = [f"start {i}: zero density" for i in np.flatnonzero(~ok)]
    if not ok.any():
        raise PosteriorError(f"Laplace mixture: the log density is not finite at any of the {n_starts} starts")
    check_cancel(cancel, "multi-start optimisation")
    ends = np.full_like(starts, np.nan)
    ends[ok] = _batched_local_optimum(log_density, starts[ok], lo, hi, max_iter, cancel)

    components, start_component = modes_of_starts(
        log_density, ends, ok, hi - lo, lambda x: fit_laplace_nd(log_density, x), dedup_distance, cancel, failures,
    )

    check_cancel(cancel, "NNLS weights")
    nnls = _nnls_log_weights(log_density, tuple(components), seed, n_samples)
    return LaplaceMixtureND.weighted(
        components, nnls, starts, start_component, failures, seconds=time.perf_counter() - t_start,
    )


def _nnls_log_weights(
    log_density: LogDensity, components: tuple[LaplaceFitND, ...], seed: int, n_samples: int
) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    pts = [rng.multivariate_normal(c.mode, c.cov, size=n_samples) for c in components]
    pts.extend(c.mode[None, :] for c in components)
    return nnls_log_weights_at(log_density, components, np.concatenate(pts, 0))


def nnls_log_weights_at(log_density: LogDensity, components: tuple[Any, ...], x: np.ndarray) -> tuple[np.ndarray, str]:
    """Mixture weights ``w_k >= 0`` with ``sum_k w_k N(x; mu_k, Sigma_k) ~ p(x)`` at the points ``x``
    (non-negative least squares on the unnormalised density, where it is finite), as logs; all-zero
    NNLS weights give ``-inf`` and ``"laplace"`` (the caller falls back to the Laplace evidences)."""
    with torch.no_grad():
        lp = log_density(torch.tensor(x, dtype=DTYPE)).numpy()
    keep = np.isfinite(lp)
    x, lp = x[keep], lp[keep]
    lmax = lp.max()
    b = np.exp(lp - lmax)
    A = np.exp(np.stack([gaussian_log_pdf_nd(x, c.mode, c.cov) for c in components], -1) - lmax)
    s = A.max(axis=0)
    u, _ = scipy.optimize.nnls(A / s, b, maxiter=50 * len(components) + 100)
    if not np.any(u > 0):
        return np.full(len(components), -np.inf), "laplace"
    with np.errstate(divide="ignore"):
        log_w = np.log(u) - np.log(s)
    return log_w, "nnls"


def check_mixture_settings(starts_name: str, n_starts: Any, dedup_distance: Any) -> None:
    """A positive integer number of starts (named ``starts_name`` in the message) and a positive
    merge distance, or a :class:`PosteriorError` naming the setting."""
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise PosteriorError(f"Laplace mixture: '{starts_name}' must be a positive integer, got {n_starts!r}")
    if not dedup_distance > 0:
        raise PosteriorError(f"Laplace mixture: 'dedup_distance' must be positive, got {dedup_distance!r}")


def modes_of_starts(
    log_density: LogDensity,
    ends: np.ndarray,
    ok: np.ndarray,
    scale: np.ndarray,
    fit: Callable[[np.ndarray], Any],
    dedup_distance: float,
    cancel: CancelCallback,
    failures: list[str],
) -> tuple[list[Any], np.ndarray]:
    """Multi-start end points -> distinct modes, in any dimension (the 2-D lab's mixture uses it too).

    One representative per cluster of end points (within 1e-3 of the box ``scale`` in every
    coordinate, the highest density first) is polished by ``fit`` (exact Newton, a Laplace fit with
    ``mode``, ``cov`` and ``log_density``); fits whose modes lie within ``dedup_distance``
    Mahalanobis units of a better one are merged into it. Failed fits are appended to ``failures``.

    Returns:
        The components, best first, and each start's component index (-1: none).

    Raises:
        PosteriorError: no start led to a valid mode (the message lists ``failures``).
    """
    n_starts = ends.shape[0]
    with torch.no_grad():
        lp_end = log_density(torch.tensor(np.nan_to_num(ends), dtype=DTYPE)).numpy()
    lp_end[~ok] = -np.inf
    reps: list[int] = []
    rep_of = np.full(n_starts, -1)
    for i in np.argsort(-lp_end):
        if not ok[i]:
            continue
        for r in reps:
            if np.all(np.abs(ends[i] - ends[r]) <= 1e-3 * scale):
                rep_of[i] = r
                break
        else:
            reps.append(int(i))
            rep_of[i] = i
    fits: dict[int, Any] = {}
    for r in reps:
        check_cancel(cancel, "Newton polish of the multi-start modes")
        try:
            fits[r] = fit(ends[r])
        except PosteriorError as exc:
            failures.append(f"start {r}: {exc}")
    if not fits:
        raise PosteriorError("Laplace mixture: no start led to a valid mode:\n  " + "\n  ".join(failures))
    components: list[Any] = []
    comp_of_rep: dict[int, int] = {}
    for r in sorted(fits, key=lambda r: -fits[r].log_density):
        fitted = fits[r]
        for j, c in enumerate(components):
            dlt = fitted.mode - c.mode
            if math.sqrt(float(dlt @ np.linalg.solve(c.cov, dlt))) < dedup_distance:
                comp_of_rep[r] = j
                break
        else:
            comp_of_rep[r] = len(components)
            components.append(fitted)
    start_component = np.array([comp_of_rep.get(int(rep_of[i]), -1) if rep_of[i] >= 0 else -1 for i in range(n_starts)])
    return components, start_component
