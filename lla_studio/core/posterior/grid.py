"""Grid posteriors: the normalised density on an ``n_a x n_b`` grid of cell centres over a box.

The box is either given or found automatically (`auto_grid_box`): the union of ``mode +/- k sd``
boxes of the Laplace components, intersected with the support, then widened on every side whose
outermost strip still holds non-negligible probability on a coarse check grid (a Laplace box
truncates skewed or curved posteriors such as the banana). Integrals use the midpoint rule: cell masses are
``exp(log p) * da * db`` normalised by their log-sum-exp, which also gives the log evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import special

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.box import Box
from lla_studio.core.posterior.cancel import CancelCallback, check_cancel
from lla_studio.core.posterior.gaussian import CovarianceSummary
from lla_studio.core.posterior.laplace import LaplaceFit
from lla_studio.core.posterior.models import DTYPE, PosteriorModel

__all__ = [
    "GridPosterior",
    "grid_posterior",
    "auto_grid_box",
    "grid_shape",
    "cell_centers",
    "QUANTILE_LEVELS",
    "MIN_GRID_POINTS",
    "MAX_GRID_POINTS",
]

QUANTILE_LEVELS = (0.025, 0.25, 0.5, 0.75, 0.975)
MIN_GRID_POINTS = 16  # per axis
MAX_GRID_POINTS = 4_000_000  # in total; one float64 array is then 32 MB
EVAL_CHUNK = 1 << 16  # points per torch call; cancel is checked between chunks


def grid_shape(n: int | Sequence[int]) -> tuple[int, int]:
    """Validate a grid size (``n`` or ``(n_a, n_b)``) and return ``(n_a, n_b)``.

    Raises:
        PosteriorError: below `MIN_GRID_POINTS` per axis or above `MAX_GRID_POINTS` in total.
    """
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
        shape = (int(n), int(n))
    else:
        try:
            shape = tuple(int(v) for v in n)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise PosteriorError(f"grid size must be an integer or a pair of integers, got {n!r}") from None
        if len(shape) != 2:
            raise PosteriorError(f"grid size must be an integer or a pair of integers, got {n!r}")
    if min(shape) < MIN_GRID_POINTS:
        raise PosteriorError(
            f"grid {shape[0]} x {shape[1]} is too coarse: need at least {MIN_GRID_POINTS} points per axis"
        )
    total = shape[0] * shape[1]
    if total > MAX_GRID_POINTS:
        raise PosteriorError(
            f"grid {shape[0]} x {shape[1]} = {total} points is too large: the limit is {MAX_GRID_POINTS} points "
            f"({MAX_GRID_POINTS * 8 // 2**20} MiB per float64 array)"
        )
    return shape  # type: ignore[return-value]


def cell_centers(box: Box, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``(a, b)`` of an ``n_a x n_b`` midpoint grid over a finite box."""
    box.require_finite("grid")
    out = []
    for i in range(2):
        h = (box.high[i] - box.low[i]) / shape[i]
        out.append(box.low[i] + h * (np.arange(shape[i]) + 0.5))
    return out[0], out[1]


def _evaluate(model: PosteriorModel, points: np.ndarray, cancel: CancelCallback = None) -> np.ndarray:
    flat = points.reshape(-1, 2)
    out = np.empty(flat.shape[0])
    with torch.no_grad():
        for s in range(0, flat.shape[0], EVAL_CHUNK):
            check_cancel(cancel, "the grid evaluation")
            out[s : s + EVAL_CHUNK] = model.log_density(torch.from_numpy(flat[s : s + EVAL_CHUNK]).to(DTYPE)).numpy()
    out[np.isnan(out)] = -np.inf
    return out.reshape(points.shape[:-1])


def _derived(model: PosteriorModel, points: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    with torch.no_grad():
        t = torch.from_numpy(points).to(DTYPE)
        for name, fn in model.derived.items():
            out[name] = fn(t).numpy()
    return out


def _quantiles_from_cells(edges: np.ndarray, masses: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Quantiles of a density that is constant on each cell (piecewise-linear CDF)."""
    cdf = np.concatenate([[0.0], np.cumsum(masses)])
    cdf /= cdf[-1]
    keep = np.concatenate([[True], np.diff(cdf) > 0])  # strictly increasing abscissae for interp
    return np.interp(levels, cdf[keep], edges[keep])


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Quantiles of a discrete distribution (``values`` with ``weights``), midpoint-interpolated."""
    v, w = np.ravel(values), np.ravel(weights)
    keep = (w > 0) & np.isfinite(v)
    v, w = v[keep], w[keep]
    if v.size == 0:
        return np.full(len(levels), np.nan)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order] / w.sum()
    cw = np.cumsum(w) - 0.5 * w
    return np.interp(levels, cw, v)


@dataclass(frozen=True)
class GridPosterior(CovarianceSummary):
    """A posterior tabulated on a midpoint grid; all summaries are computed on construction.

    Attributes:
        param_names: The two parameter names.
        box: The finite grid box.
        log_density: An `n_b x n_a` array (row-major image: rows follow the second parameter) of the
            unnormalised log density at the cell centres (``-inf`` allowed).
        derived_values: Optional derived quantities on the same cells (`n_b x n_a` each).
        a: `n_a` cell centres of the first parameter (computed).
        b: `n_b` cell centres of the second parameter (computed).
        log_evidence: ``log integral p`` over the box (computed).
        probabilities: `n_b x n_a` cell masses summing to one (computed).
        marginal_a, marginal_b: Marginal densities at the cell centres (computed).
        mean: `2` posterior mean; cov: `2 x 2` covariance (computed).
        quantiles: ``param -> [q2.5, q25, q50, q75, q97.5]`` (computed; derived quantities included).
    """

    param_names: tuple[str, str]
    box: Box
    log_density: np.ndarray
    derived_values: Mapping[str, np.ndarray] = field(default_factory=dict)
    a: np.ndarray = field(init=False)
    b: np.ndarray = field(init=False)
    log_evidence: float = field(init=False)
    probabilities: np.ndarray = field(init=False)
    marginal_a: np.ndarray = field(init=False)
    marginal_b: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    cov: np.ndarray = field(init=False)
    quantiles: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        logd = np.asarray(self.log_density, dtype=float)
        if logd.ndim != 2:
            raise PosteriorError(f"grid log density must be a 2-D array, got shape {logd.shape}")
        nb, na = logd.shape
        a, b = cell_centers(self.box, (na, nb))
        logd = np.where(np.isnan(logd), -np.inf, logd)
        if np.any(np.isposinf(logd)):
            j, i = np.argwhere(np.isposinf(logd))[0]
            names = ", ".join(self.param_names)
            raise PosteriorError(f"grid: the log density is +inf at ({names}) = ({a[i]:g}, {b[j]:g})")
        if not np.any(np.isfinite(logd)):
            raise PosteriorError(
                f"grid: the density is zero on every point of box {self.param_names[0]} in "
                f"[{self.box.low[0]:g}, {self.box.high[0]:g}], {self.param_names[1]} in "
                f"[{self.box.low[1]:g}, {self.box.high[1]:g}]"
            )
        da, db = (a[1] - a[0]), (b[1] - b[0])
        lse = float(special.logsumexp(logd))
        probs = np.exp(logd - lse)
        marg_a, marg_b = probs.sum(0), probs.sum(1)
        mean = np.array([marg_a @ a, marg_b @ b])
        ua, ub = a - mean[0], b - mean[1]
        cov = np.array([[marg_a @ ua**2, float(ub @ probs @ ua)], [float(ub @ probs @ ua), marg_b @ ub**2]])
        edges_a = self.box.low[0] + da * np.arange(na + 1)
        edges_b = self.box.low[1] + db * np.arange(nb + 1)
        quantiles = {
            self.param_names[0]: _quantiles_from_cells(edges_a, marg_a, QUANTILE_LEVELS),
            self.param_names[1]: _quantiles_from_cells(edges_b, marg_b, QUANTILE_LEVELS),
        }
        derived = {}
        for name, values in dict(self.derived_values).items():
            values = np.asarray(values, dtype=float)
            if values.shape != logd.shape:
                raise PosteriorError(f"grid: derived quantity '{name}' has shape {values.shape}, expected {logd.shape}")
            derived[name] = values
            quantiles[name] = weighted_quantiles(values, probs, QUANTILE_LEVELS)
        for name, value in (
            ("log_density", logd),
            ("derived_values", derived),
            ("a", a),
            ("b", b),
            ("log_evidence", lse + math.log(da * db)),
            ("probabilities", probs),
            ("marginal_a", marg_a / da),
            ("marginal_b", marg_b / db),
            ("mean", mean),
            ("cov", cov),
            ("quantiles", quantiles),
            ("param_names", tuple(self.param_names)),
        ):
            object.__setattr__(self, name, value)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_a, n_b)``."""
        return (self.a.size, self.b.size)

    @property
    def cell_area(self) -> float:
        """``da * db``."""
        return float((self.a[1] - self.a[0]) * (self.b[1] - self.b[0]))

    @property
    def points(self) -> np.ndarray:
        """An `n_b x n_a x 2` array of cell centres."""
        A, B = np.meshgrid(self.a, self.b, indexing="xy")
        return np.stack([A, B], -1)

    @property
    def density(self) -> np.ndarray:
        """Normalised density at the cell centres (`n_b x n_a`)."""
        return self.probabilities / self.cell_area

    def edge_mass(self) -> float:
        """Probability mass in the outermost ring of cells (a check that the box is wide enough)."""
        p = self.probabilities
        inner = p[1:-1, 1:-1].sum()
        return float(1.0 - inner)


def auto_grid_box(
    model: PosteriorModel,
    components: Sequence[LaplaceFit],
    k: float = 6.0,
    edge_mass: float = 1e-6,
    max_expansions: int = 10,
    n_check: int = 64,
) -> Box:
    """Grid box from Laplace components, widened until little mass sits at its edges.

    Args:
        model: The posterior model (its support clips the box).
        components: Laplace fits (at least one).
        k: Half-width of each component's box in standard deviations.
        edge_mass: On an ``n_check x n_check`` check grid, a side whose outermost row/column of
            cells holds more than this probability is moved out by half the box width, unless it
            already lies on the support boundary.
        max_expansions: Limit on widening rounds.
        n_check: Check-grid points per axis.

    Returns:
        A finite `Box` inside the support.
    """
    if not components:
        raise PosteriorError("auto grid box: need at least one Laplace component")
    low = np.min([c.mode - k * c.sd for c in components], axis=0)
    high = np.max([c.mode + k * c.sd for c in components], axis=0)
    slo, shi = np.asarray(model.support.low), np.asarray(model.support.high)
    low, high = np.maximum(low, slo), np.minimum(high, shi)
    for _ in range(max_expansions):
        box = Box(tuple(low), tuple(high), model.param_names)  # type: ignore[arg-type]
        a, b = cell_centers(box, (n_check, n_check))
        A, B = np.meshgrid(a, b, indexing="xy")
        lp = _evaluate(model, np.stack([A, B], -1))
        if not np.any(np.isfinite(lp)):
            break
        p = np.exp(lp - special.logsumexp(lp))
        side_mass = {(0, 0): p[:, 0].sum(), (0, 1): p[:, -1].sum(), (1, 0): p[0, :].sum(), (1, 1): p[-1, :].sum()}
        width = high - low
        grow = False
        for (dim, side), mass in side_mass.items():
            at_support = low[dim] <= slo[dim] if side == 0 else high[dim] >= shi[dim]
            if mass > edge_mass and not at_support:
                if side == 0:
                    low[dim] = max(low[dim] - 0.5 * width[dim], slo[dim])
                else:
                    high[dim] = min(high[dim] + 0.5 * width[dim], shi[dim])
                grow = True
        if not grow:
            break
    return Box(tuple(low), tuple(high), model.param_names)  # type: ignore[arg-type]


def grid_posterior(
    model: PosteriorModel,
    n: int | Sequence[int] = 201,
    box: Box | None = None,
    components: Sequence[LaplaceFit] | None = None,
    cancel: CancelCallback = None,
) -> GridPosterior:
    """Tabulate the posterior on a grid.

    Args:
        model: The posterior model.
        n: Points per axis, or ``(n_a, n_b)``.
        box: The grid box; when ``None`` it comes from `auto_grid_box` (needs ``components``) or,
            without components, the model's default box within its support.
        components: Laplace fits for the automatic box.
        cancel: Checked between chunks of 65536 points; returning True raises `Cancelled`.

    Returns:
        The `GridPosterior` (derived quantities of the model included).

    Raises:
        PosteriorError: for a bad grid size or box, or a density that is zero on the whole grid.
    """
    shape = grid_shape(n)
    if box is None:
        box = auto_grid_box(model, components) if components else model.box.intersect(model.support)
    if not isinstance(box, Box):
        raise PosteriorError(f"grid box must be a Box, got {type(box).__name__}")
    box.require_finite("grid")
    box = Box(box.low, box.high, model.param_names)
    a, b = cell_centers(box, shape)
    A, B = np.meshgrid(a, b, indexing="xy")
    pts = np.stack([A, B], -1)
    return GridPosterior(model.param_names, box, _evaluate(model, pts, cancel), _derived(model, pts))
