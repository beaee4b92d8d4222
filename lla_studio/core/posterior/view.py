"""Posterior-view numerics: from a `PosteriorAnalysis` to what the posterior lab draws.

The lab process runs `compute_posterior` for every request of the panel and sends each stage's
`PosteriorSnapshot` (`lla_studio.core.posterior.snapshot`, numpy only) to the GUI. The pieces:

* `hpd_levels`: the density level ``t_m`` whose super-level set ``{p >= t_m}`` holds mass ``m``,
  from the grid's cells sorted by density (mass ``p_i * cell_area`` each, accumulated from the top).
  For a 2-D standard normal ``t_m = exp(-r^2 / 2) / (2 pi)`` with ``r^2 = -2 log(1 - m)``.
* `contours`: the level sets of a gridded density at those levels (contourpy's marching squares),
  one NaN-separated `N x 2` polyline per level.
* `quantiles_from_density`: quantiles of a 1-D density tabulated at cell centres, the density
  constant per cell (the CDF is piecewise linear between cell edges).
* `mixture_quantiles`: quantiles of a 1-D Gaussian mixture ``sum_k w_k N(mu_k, sd_k^2)``, the roots
  of ``F(x) = q`` by Brent's method on ``[min(mu - 12 sd), max(mu + 12 sd)]``.
* `marginals_from_log_density`: both marginal densities of a gridded (unnormalised) log density.
* `sample_gaussians`: samples of a Gaussian mixture (multinomial counts, then Cholesky factors).
* `make_snapshot` and `compute_posterior`: the stages ``"laplace"``, ``"vi-warm"``, ``"vi"``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import contourpy
import numpy as np
import torch
from scipy import optimize, stats

from lla_studio.core.errors import Cancelled
from lla_studio.core.posterior.analysis import PosteriorAnalysis, analyze
from lla_studio.core.posterior.cancel import CancelCallback
from lla_studio.core.posterior.divergence import js_divergence, kl_divergence
from lla_studio.core.posterior.gaussian import covariance_ellipse
from lla_studio.core.posterior.models import PosteriorModel
from lla_studio.core.posterior.registry import spec_from_dict
from lla_studio.core.posterior.snapshot import (
    ELLIPSE_POINTS,
    HPD_MASSES,
    QUANTILE_METHODS,
    PosteriorRequest,
    PosteriorSnapshot,
)
from lla_studio.core.posterior.vi import SupportTransform, VIResult, refine_vi
from lla_studio.core.readonly import freeze, readonly_array

__all__ = [
    "compute_posterior",
    "contours",
    "hpd_levels",
    "join_curves",
    "make_snapshot",
    "marginals_from_log_density",
    "mixture_quantiles",
    "quantiles_from_density",
    "sample_gaussians",
]


def join_curves(curves: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate `n x 2` curves with a NaN row between them (for pyqtgraph's ``connect="finite"``)."""
    if not curves:
        return readonly_array(np.zeros((0, 2)))
    gap = np.full((1, 2), np.nan)
    parts: list[np.ndarray] = []
    for c in curves:
        if parts:
            parts.append(gap)
        parts.append(np.asarray(c, dtype=float).reshape(-1, 2))
    return readonly_array(np.concatenate(parts, 0))


def hpd_levels(density: np.ndarray, cell_area: float, masses: Sequence[float]) -> tuple[float, ...]:
    """Density levels bounding the highest-density regions of the given masses.

    Args:
        density: A gridded density (any shape; need not be normalised), finite and >= 0.
        cell_area: Area of one grid cell.
        masses: Masses in ``(0, 1)``.

    Returns:
        One level per mass: the density of the cell at which the mass accumulated from the densest
        cell down first reaches ``m`` (0 for a density without mass).
    """
    p = np.sort(np.asarray(density, dtype=float).ravel())[::-1] * cell_area
    total = p.sum()
    if not (total > 0):
        return tuple(0.0 for _ in masses)
    c = np.cumsum(p) / total
    return tuple(float(p[min(int(np.searchsorted(c, m)), p.size - 1)] / cell_area) for m in masses)


def contours(a: np.ndarray, b: np.ndarray, density: np.ndarray, levels: Sequence[float]) -> tuple[np.ndarray, ...]:
    """Level sets of ``density`` (`n_b x n_a`, rows follow ``b``) at each level: NaN-separated
    `N x 2` polylines in ``(a, b)`` coordinates (empty for a level <= 0)."""
    gen = contourpy.contour_generator(a, b, density, line_type="Separate")
    out = []
    for level in levels:
        lines = gen.lines(level) if level > 0 else []
        out.append(join_curves([np.asarray(x) for x in lines]))
    return tuple(out)


def _edges(x: np.ndarray) -> np.ndarray:
    h = x[1] - x[0]
    return np.concatenate([[x[0] - h / 2], x + h / 2])


def quantiles_from_density(x: np.ndarray, dens: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Quantiles of a density tabulated at uniformly spaced cell centres ``x`` (constant per cell).

    Returns:
        One quantile per level (NaN for a density without mass).
    """
    masses = np.clip(np.nan_to_num(np.asarray(dens, dtype=float), nan=0.0, posinf=0.0), 0.0, None)
    if not masses.sum() > 0:
        return np.full(len(levels), np.nan)
    cdf = np.concatenate([[0.0], np.cumsum(masses)])
    cdf /= cdf[-1]
    keep = np.concatenate([[True], np.diff(cdf) > 0])  # flat stretches: np.interp needs increasing x
    return np.interp(levels, cdf[keep], _edges(np.asarray(x, dtype=float))[keep])


def mixture_quantiles(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Quantiles of the 1-D Gaussian mixture ``sum_k w_k N(mu_k, sd_k^2)`` (``w`` normalised)."""
    w, mu, sd = (np.asarray(v, dtype=float) for v in (w, mu, sd))
    lo, hi = float(np.min(mu - 12 * sd)), float(np.max(mu + 12 * sd))
    out = []
    for q in levels:
        out.append(optimize.brentq(lambda x: float(w @ stats.norm.cdf((x - mu) / sd)) - q, lo, hi, xtol=1e-10))
    return np.asarray(out)


def marginals_from_log_density(log_density: np.ndarray, da: float, db: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Marginal densities of a gridded log density (`n_b x n_a`, unnormalised) on its two axes.

    Returns:
        ``(p_a, p_b)`` (`n_a` and `n_b`, each integrating to 1 on its axis), or ``None`` when the
        density is zero (or not finite) everywhere.
    """
    ld = np.where(np.isfinite(log_density), log_density, -np.inf)
    top = np.max(ld)
    if not np.isfinite(top):
        return None
    p = np.exp(ld - top)
    p /= p.sum()
    return p.sum(0) / da, p.sum(1) / db


def sample_gaussians(
    rng: np.random.Generator, weights: np.ndarray, means: np.ndarray, covs: np.ndarray, n: int
) -> np.ndarray:
    """``n`` samples (`n x 2`) of the mixture ``sum_k w_k N(means[k], covs[k])``."""
    counts = rng.multinomial(n, np.asarray(weights) / np.sum(weights))
    parts = []
    for k, m in enumerate(counts):
        if m:
            chol = np.linalg.cholesky(covs[k])
            parts.append(means[k] + rng.standard_normal((m, 2)) @ chol.T)
    return np.concatenate(parts, 0) if parts else np.zeros((0, 2))


def _to_model_coordinates(vi: VIResult, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x, _ = SupportTransform(vi.support).forward(torch.as_tensor(np.asarray(z, dtype=float)))
    return x.numpy()


def make_snapshot(
    analysis: PosteriorAnalysis, request: PosteriorRequest, stage: str, final: bool, seconds: float = 0.0
) -> PosteriorSnapshot:
    """Turn a `PosteriorAnalysis` into display-ready, read-only arrays."""
    grid = analysis.grid
    names = tuple(analysis.param_names)
    density = np.nan_to_num(grid.density, nan=0.0, posinf=0.0, neginf=0.0)
    levels = hpd_levels(density, grid.cell_area, HPD_MASSES)
    lines = contours(grid.a, grid.b, density, levels)

    mix = analysis.mixture
    weights = mix.weights
    ellipses = tuple(
        tuple(readonly_array(covariance_ellipse(c.mode, c.cov, k, ELLIPSE_POINTS)) for k in (1.0, 2.0))
        for c in mix.components
    )

    lap = analysis.laplace
    levels_q = tuple(analysis.quantile_levels)
    quant = np.full((2, len(levels_q), len(QUANTILE_METHODS)), np.nan)
    vi_marg = None
    if analysis.vi_log_density is not None:
        vi_marg = marginals_from_log_density(analysis.vi_log_density, grid.a[1] - grid.a[0], grid.b[1] - grid.b[0])
    marginals: dict[str, dict[str, np.ndarray | None]] = {}
    comp_means, comp_covs = mix.means, mix.covs
    for i, (name, x, gm) in enumerate(zip(names, (grid.a, grid.b), (grid.marginal_a, grid.marginal_b))):
        comp_sd = np.sqrt(comp_covs[:, i, i])
        lap_m = stats.norm.pdf(x, lap.mode[i], lap.sd[i])
        mix_m = (weights[:, None] * stats.norm.pdf(x[None, :], comp_means[:, i, None], comp_sd[:, None])).sum(0)
        vi_m = None if vi_marg is None else vi_marg[i]
        marginals[name] = {
            "x": readonly_array(x),
            "grid": readonly_array(gm),
            "laplace": readonly_array(lap_m),
            "mixture": readonly_array(mix_m),
            "vi": None if vi_m is None else readonly_array(vi_m),
        }
        quant[i, :, 0] = analysis.quantiles[name]
        quant[i, :, 1] = stats.norm.ppf(levels_q, lap.mode[i], lap.sd[i])
        quant[i, :, 2] = mixture_quantiles(weights, comp_means[:, i], comp_sd, levels_q)
        if vi_m is not None:
            quant[i, :, 3] = quantiles_from_density(x, vi_m, levels_q)

    rng = np.random.default_rng(request.seed)
    n = int(request.n_samples)
    samples: dict[str, np.ndarray] = {
        "laplace": readonly_array(sample_gaussians(rng, np.ones(1), lap.mode[None], lap.cov[None], n)),
        "mixture": readonly_array(sample_gaussians(rng, weights, comp_means, comp_covs, n)),
    }
    vi_curves = None
    traces: dict[str, np.ndarray] = {}
    vi = analysis.vi_warm
    if vi is not None:
        z = sample_gaussians(rng, vi.weights, vi.means, vi.covs, n)
        samples["vi"] = readonly_array(_to_model_coordinates(vi, z))
        curves = []
        for k_sd in (1.0, 2.0):
            parts = [
                _to_model_coordinates(vi, covariance_ellipse(m, c, k_sd, ELLIPSE_POINTS))
                for m, c in zip(vi.means, vi.covs)
            ]
            curves.append(join_curves(parts))
        vi_curves = (curves[0], curves[1])
        traces["warm"] = readonly_array(vi.trace)
    if analysis.vi_cold is not None:
        traces["cold"] = readonly_array(analysis.vi_cold.trace)

    return PosteriorSnapshot(
        request_id=request.request_id,
        stage=stage,
        final=final,
        model_name=str(analysis.model_name),
        spec=freeze(dict(analysis.spec)),
        param_names=names,  # type: ignore[arg-type]
        box_low=tuple(float(v) for v in grid.box.low),  # type: ignore[arg-type]
        box_high=tuple(float(v) for v in grid.box.high),  # type: ignore[arg-type]
        grid_shape=tuple(int(v) for v in density.shape),  # type: ignore[arg-type]
        density=readonly_array(density, np.float32),
        hpd_levels=levels,
        contours=lines,
        ellipses=ellipses,
        component_weights=readonly_array(weights),
        modes=readonly_array(comp_means),
        vi_curves=vi_curves,
        marginals=freeze(marginals),
        quantile_levels=levels_q,
        quantiles=readonly_array(quant),
        samples=freeze(samples),
        traces=freeze(traces),
        jsd=freeze({k: None if v is None else float(v) for k, v in analysis.jsd.items()}),
        kl=freeze({k: None if v is None else float(v) for k, v in analysis.kl.items()}),
        log_evidence=freeze({k: float(v) for k, v in analysis.log_evidence.items()}),
        laplace_mass_outside_support=float(analysis.laplace_mass_outside_support),
        mixture_mass_outside_support=float(analysis.mixture_mass_outside_support),
        notes=tuple(str(n) for n in analysis.notes),
        seconds=float(seconds),
    )


def _with_vi(fast: PosteriorAnalysis, warm: VIResult, cold: VIResult | None) -> PosteriorAnalysis:
    """``fast`` plus VI results: the same quantities `analyze(vi=True)` adds."""
    grid = fast.grid
    pts = grid.points
    vi_ld = warm.log_pdf(pts)
    jsd = dict(fast.jsd)
    kl = dict(fast.kl)
    jsd["vi"] = js_divergence(grid.log_density, vi_ld)
    kl["vi"] = kl_divergence(grid.log_density, vi_ld)
    seconds = dict(fast.seconds)
    seconds["vi_warm"] = warm.seconds
    if cold is not None:
        cold_ld = cold.log_pdf(pts)
        jsd["vi_cold"] = js_divergence(grid.log_density, cold_ld)
        kl["vi_cold"] = kl_divergence(grid.log_density, cold_ld)
        seconds["vi_cold"] = cold.seconds
    return dataclasses.replace(
        fast, vi_warm=warm, vi_cold=cold, vi_log_density=vi_ld, jsd=jsd, kl=kl, seconds=seconds
    )


def compute_posterior(
    request: PosteriorRequest,
    emit: Callable[[PosteriorSnapshot], None],
    stage_hook: Callable[[str], None] | None = None,
    cancel: CancelCallback = None,
) -> None:
    """Run one request, calling ``emit`` after each stage.

    Stages: ``"laplace"`` (Laplace, Laplace mixture, grid; fast) and, with ``request.vi``,
    ``"vi-warm"`` and ``"vi"`` (warm- then cold-started VI on the same model, mixture and grid, so
    the fast part is not recomputed). ``stage_hook`` is called with the name of each stage as it
    starts (``"model"`` first), so a failure can be attributed to its stage.

    Raises:
        PosteriorError: bad spec or settings, failed fit (the message names the culprit).
        Cancelled: when ``cancel`` returns True (checked inside the core's long loops).
    """
    t0 = time.perf_counter()

    def stage(name: str) -> None:
        if stage_hook is not None:
            stage_hook(name)

    stage("model")
    model = spec_from_dict(dict(request.spec)).build()
    stage("laplace")
    fast = analyze(model, grid_n=request.grid_n, starts=request.starts, vi=False, seed=request.seed, cancel=cancel)
    emit(make_snapshot(fast, request, "laplace", not request.vi, time.perf_counter() - t0))
    if not request.vi:
        return
    stage("vi-warm")
    warm = _refine(model, fast, "warm", request, cancel)
    if cancel is not None and cancel():
        raise Cancelled("cancelled after the warm VI run")
    emit(make_snapshot(_with_vi(fast, warm, None), request, "vi-warm", False, time.perf_counter() - t0))
    stage("vi")
    cold = _refine(model, fast, "cold", request, cancel)
    emit(make_snapshot(_with_vi(fast, warm, cold), request, "vi", True, time.perf_counter() - t0))


def _refine(
    model: PosteriorModel, fast: PosteriorAnalysis, start: str, request: PosteriorRequest, cancel: CancelCallback
) -> VIResult:
    """One VI run (``start``: ``"warm"`` or ``"cold"``) on the fast stage's mixture and grid."""
    return refine_vi(
        model, fast.mixture, grid=fast.grid, start=start, steps=request.vi_steps, seed=request.seed, cancel=cancel
    )
