"""One call for the whole posterior lab: Laplace, Laplace mixture, grid, divergences, optional VI.

`analyze` is what the GUI worker and the CLI report call. It returns a frozen `PosteriorAnalysis`
holding only numpy arrays, floats, dicts and the core's frozen numpy result objects, so a GUI never
touches torch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.box import Box
from lla_studio.core.posterior.cancel import CancelCallback, check_cancel
from lla_studio.core.posterior.divergence import js_divergence, kl_divergence
from lla_studio.core.posterior.gaussian import gaussian_mass_outside
from lla_studio.core.posterior.grid import QUANTILE_LEVELS, GridPosterior, grid_posterior, grid_shape
from lla_studio.core.posterior.laplace import LaplaceFit, fit_laplace
from lla_studio.core.posterior.mixture import LaplaceMixture, fit_laplace_mixture, sobol_points
from lla_studio.core.posterior.models import DTYPE, ModelSpec, PosteriorModel
from lla_studio.core.posterior.registry import resolve_model
from lla_studio.core.posterior.vi import VIResult, refine_vi

__all__ = ["PosteriorAnalysis", "analyze"]


@dataclass(frozen=True)
class PosteriorAnalysis:
    """Everything the posterior lab shows, as plain numpy.

    Attributes:
        model_name: Human-readable model name.
        spec: The model spec as a plain dict (``ModelSpec.to_dict``).
        param_names: The two parameter names.
        grid: The `GridPosterior` (axes ``grid.a``/``grid.b``, log density `n_b x n_a` row-major,
            marginals, moments, quantiles).
        laplace: Single Laplace fit (Newton from the best Sobol start).
        mixture: The `LaplaceMixture` (multi-start, NNLS weights).
        laplace_log_density: `n_b x n_a` normalised log density of the single Laplace Gaussian.
        mixture_log_density: `n_b x n_a` normalised log density of the Laplace mixture.
        vi_warm: VI from the Laplace mixture (or ``None``).
        vi_cold: VI from a random start (or ``None``).
        vi_log_density: `n_b x n_a` log density of the warm VI fit (or ``None``).
        jsd: ``{"laplace", "mixture", "vi", "vi_cold"}`` Jensen-Shannon divergence to the grid (nats).
        kl: ``KL(grid || approximation)`` for the same keys.
        log_evidence: ``{"grid", "laplace", "mixture", "mixture_laplace_weights"}``.
        laplace_mass_outside_support: Mass of the single Laplace Gaussian outside the support.
        mixture_mass_outside_support: Same for the Laplace mixture.
        quantile_levels: The levels of ``quantiles`` (2.5, 25, 50, 75, 97.5 %).
        quantiles: ``name -> 5 quantiles`` for both parameters and the derived quantities.
        seconds: Wall-clock seconds per stage.
        notes: Messages worth showing (failed starts, a fallback for the single Laplace).
    """

    model_name: str
    spec: dict[str, Any]
    param_names: tuple[str, str]
    grid: GridPosterior
    laplace: LaplaceFit
    mixture: LaplaceMixture
    laplace_log_density: np.ndarray
    mixture_log_density: np.ndarray
    vi_warm: VIResult | None
    vi_cold: VIResult | None
    vi_log_density: np.ndarray | None
    jsd: dict[str, float | None]
    kl: dict[str, float | None]
    log_evidence: dict[str, float]
    laplace_mass_outside_support: float
    mixture_mass_outside_support: float
    quantile_levels: tuple[float, ...]
    quantiles: dict[str, np.ndarray]
    seconds: dict[str, float]
    notes: tuple[str, ...] = field(default=())


def analyze(
    spec: str | ModelSpec | PosteriorModel,
    grid_n: int = 201,
    starts: int = 16,
    vi: bool = False,
    seed: int = 0,
    cancel: CancelCallback = None,
    *,
    box: Box | None = None,
    vi_steps: int = 400,
    vi_samples: int = 64,
) -> PosteriorAnalysis:
    """Run the posterior lab on one model.

    Stages (each timed in ``seconds``): ``laplace`` (Newton from the highest-density Sobol start),
    ``mixture`` (multi-start Laplace mixture with NNLS weights), ``grid`` (automatic box from the
    mixture components unless ``box`` is given), ``divergences``, and with ``vi`` ``vi_warm`` and
    ``vi_cold`` (VI in unconstrained coordinates, see `refine_vi`).

    Args:
        spec: A CLI model name, a `ModelSpec` or a built `PosteriorModel`.
        grid_n: Grid points per axis (or ``(n_a, n_b)``).
        starts: Multi-start count.
        vi: Also run warm- and cold-started VI.
        seed: Seeds Sobol starts, NNLS points and VI.
        cancel: A callable checked between stages and inside the long loops (every L-BFGS-B
            evaluation, Newton polish, grid chunk of 65536 points and VI step); when it returns
            True, `Cancelled` is raised within about one such step (well under a second).
        box: Grid box (default: automatic).
        vi_steps: Adam steps per VI run.
        vi_samples: Samples per component and VI step.

    Returns:
        The `PosteriorAnalysis`.

    Raises:
        PosteriorError: for bad inputs or a failed fit (the message names the culprit).
        Cancelled: when ``cancel`` asked to stop.
    """
    model = resolve_model(spec)
    grid_shape(grid_n)  # fail fast on a bad grid size, before any optimisation
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise PosteriorError(f"analysis: 'starts' must be a positive integer, got {starts!r}")
    seconds: dict[str, float] = {}
    notes: list[str] = []
    check_cancel(cancel, "the start of the analysis")

    t0 = time.perf_counter()
    region = model.box.intersect(model.support)
    candidates = sobol_points(region, starts, seed)
    with torch.no_grad():
        lp = model.log_density(torch.tensor(candidates, dtype=DTYPE)).numpy()
    laplace: LaplaceFit | None = None
    laplace_error: str | None = None
    if np.any(np.isfinite(lp)):
        try:
            laplace = fit_laplace(model, candidates[int(np.nanargmax(np.where(np.isfinite(lp), lp, -np.inf)))])
        except PosteriorError as exc:
            laplace_error = str(exc)
    seconds["laplace"] = time.perf_counter() - t0

    check_cancel(cancel, "the Laplace mixture")
    t0 = time.perf_counter()
    mixture = fit_laplace_mixture(model, starts, seed, cancel=cancel)
    seconds["mixture"] = time.perf_counter() - t0
    notes.extend(mixture.failures)
    if laplace is None:
        laplace = mixture.components[0]
        notes.append(f"single Laplace from the best start failed ({laplace_error}); using the highest mixture mode")

    check_cancel(cancel, "the grid")
    t0 = time.perf_counter()
    grid = grid_posterior(model, grid_n, box=box, components=mixture.components + (laplace,), cancel=cancel)
    seconds["grid"] = time.perf_counter() - t0

    check_cancel(cancel, "the divergences")
    t0 = time.perf_counter()
    pts = grid.points
    lap_ld = laplace.log_pdf(pts)
    mix_ld = mixture.log_pdf(pts)
    jsd: dict[str, float | None] = {
        "laplace": js_divergence(grid.log_density, lap_ld),
        "mixture": js_divergence(grid.log_density, mix_ld),
        "vi": None,
        "vi_cold": None,
    }
    kl: dict[str, float | None] = {
        "laplace": kl_divergence(grid.log_density, lap_ld),
        "mixture": kl_divergence(grid.log_density, mix_ld),
        "vi": None,
        "vi_cold": None,
    }
    lap_out = gaussian_mass_outside(laplace.mode, laplace.cov, model.support)
    mix_out = float(
        sum(
            w * gaussian_mass_outside(c.mode, c.cov, model.support) for w, c in zip(mixture.weights, mixture.components)
        )
    )
    seconds["divergences"] = time.perf_counter() - t0

    vi_warm = vi_cold = None
    vi_ld = None
    if vi:
        t0 = time.perf_counter()
        vi_warm = refine_vi(
            model, mixture, grid=grid, start="warm", steps=vi_steps, samples=vi_samples, seed=seed, cancel=cancel
        )
        seconds["vi_warm"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        vi_cold = refine_vi(
            model, mixture, grid=grid, start="cold", steps=vi_steps, samples=vi_samples, seed=seed, cancel=cancel
        )
        seconds["vi_cold"] = time.perf_counter() - t0
        vi_ld = vi_warm.log_pdf(pts)
        jsd["vi"] = js_divergence(grid.log_density, vi_ld)
        jsd["vi_cold"] = js_divergence(grid.log_density, vi_cold.log_pdf(pts))
        kl["vi"] = kl_divergence(grid.log_density, vi_ld)
        kl["vi_cold"] = kl_divergence(grid.log_density, vi_cold.log_pdf(pts))

    return PosteriorAnalysis(
        model_name=model.name,
        spec=model.spec.to_dict(),
        param_names=model.param_names,  # type: ignore[arg-type]
        grid=grid,
        laplace=laplace,
        mixture=mixture,
        laplace_log_density=lap_ld,
        mixture_log_density=mix_ld,
        vi_warm=vi_warm,
        vi_cold=vi_cold,
        vi_log_density=vi_ld,
        jsd=jsd,
        kl=kl,
        log_evidence={
            "grid": grid.log_evidence,
            "laplace": laplace.log_evidence,
            "mixture": mixture.log_evidence,
            "mixture_laplace_weights": mixture.laplace_log_evidence,
        },
        laplace_mass_outside_support=lap_out,
        mixture_mass_outside_support=mix_out,
        quantile_levels=QUANTILE_LEVELS,
        quantiles={k: np.asarray(v) for k, v in grid.quantiles.items()},
        seconds=seconds,
        notes=tuple(notes),
    )


def finite_or_none(x: float | None) -> float | None:
    """JSON helper: ``None`` for missing or non-finite numbers."""
    if x is None or not math.isfinite(float(x)):
        return None
    return float(x)
