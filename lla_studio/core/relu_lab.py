"""The ReLU extrapolation lab: why a ReLU network's LLA sends BO to the edge of a wide search box.

A ReLU network is piecewise linear: far from the data it is linear in ``x``, its Jacobian
``J(x) = d f / d theta`` grows linearly in ``|x|``, so the MAP mean grows linearly and the
linearized-Laplace variance ``J(x) Sigma J(x)^T`` quadratically (Hein et al., 2019; Kristiadi et
al., 2020). Expected improvement then grows without bound away from the data (``EI = sigma *
h((mu - best) / sigma)`` and the ratio tends to a constant), so in a wide enough box its
maximizer sits on the box edge (Kristiadi et al., 2023, "Promises and pitfalls of the linearized
Laplace in Bayesian optimization": the unbounded-search-space pitfall). A tanh network saturates
and a stationary GP reverts to its prior: in 1-D both have bounded variance, their acquisition
levels off far from the data, and once the box is wider than the saturation range it never
prefers the edge (it may still prefer that far plateau to the data, when the plateau is uncertain
enough; see :func:`_maximize` for how a flat plateau is reported). In 2-D a tanh unit stays linear
along its own line ``w . x + b = 0``, so along those rays the tanh LLA's variance grows as a
ReLU's does, and its acquisition can reach the edge too.

The lab fits the real surrogates of the studio (:func:`~lla_studio.core.surrogates.lla.fit_lla`:
full LLA, ``(delta, sigma)`` tuned on the Laplace evidence; :func:`~lla_studio.core.surrogates.gp.fit_gp`:
Matérn-5/2 with BoTorch's priors) to a fixed default problem and evaluates them on a box widened
``box_scale`` times.

Input frame (what the models see). ``frame="fixed"`` (default): inputs are standardized by the
×1 box (the data region ``[-1, 1]^d``), ``z = sqrt(3) x``, so a point drawn uniformly from it has
zero mean and unit variance per coordinate: the usual "standardize the inputs" of network
training, and the unit scale BoTorch's GP priors assume. The frame does not move when the box is
widened: the widened box reaches further out in it, as an unbounded or carelessly large search
space does, and the fitted models do not depend on ``box_scale`` at all (only where the acquisition
is maximized does). ``frame="box"`` maps the widened box to the unit cube, as BoTorch's
``Normalize(bounds=box)`` would: at ×100 the data then sit in a 1 % sliver of the inputs; with the
networks' initialization and weight decay unchanged, the evidence drives ``delta`` to its upper
bound and the ReLU fit collapses to a constant, and the GP's lengthscale prior (set for the unit
cube) keeps its lengthscale near a sixth of the box, so it explains the data as noise. That is a
different failure, and it hides the extrapolation pathology, which is why it is not the default.

Everything returned is numpy (no torch tensors). The settings, the default problem and the result
types live in :mod:`lla_studio.core.relu_lab_types` (torch-free, re-exported here), so results can
cross to the GUI process and be drawn there as they are.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction, LogExpectedImprovement, UpperConfidenceBound
from botorch.exceptions.warnings import OptimizationWarning
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.utils.sampling import manual_seed

from lla_studio.core.errors import ReluLabCancelled, ReluLabError
from lla_studio.core.features import FeatureMap
from lla_studio.core.readonly import readonly_array as _ro
from lla_studio.core.relu_lab_types import (
    ACQUISITIONS,
    BOUNDARY_FRACTION,
    DATA_HALF_WIDTH,
    FRAMES,
    GP,
    MAX_BOX_SCALE,
    MODEL_LABELS,
    ZOOM_HALF_WIDTH,
    BoundaryRateResult,
    ModelCurves,
    ReluLabResult,
    ReluLabSettings,
    _int_in,  # the settings' integer check, also for ``steps``
    default_objective,
    make_data,
)
from lla_studio.core.space import RealParameter, SearchSpace
from lla_studio.core.surrogates.gp import fit_gp
from lla_studio.core.surrogates.lla import LinearizedLaplaceModel, LLASettings, fit_lla
from lla_studio.core.surrogates.networks import MLPSpec
from lla_studio.core.transforms import TransformChain

__all__ = [
    "ACQUISITIONS",
    "BOUNDARY_FRACTION",
    "DATA_HALF_WIDTH",
    "ZOOM_HALF_WIDTH",
    "FRAMES",
    "GP",
    "MAX_BOX_SCALE",
    "MODEL_LABELS",
    "BoundaryRateResult",
    "FitCache",
    "ModelCurves",
    "ReluLabCancelled",
    "ReluLabError",
    "ReluLabResult",
    "ReluLabSettings",
    "boundary_rate",
    "compute_relu_lab",
    "default_objective",
    "make_data",
]

_FIXED_FRAME_SCALE = math.sqrt(3.0)  # uniform on [-1, 1] -> unit variance
_NUM_RESTARTS = 8
_TIE_RTOL = 1e-9  # acquisition values this close count as a tie (a flat, saturated plateau)


# ------------------------------------------------------------------------------ frames
class _Frame:
    """Affine map between search coordinates ``x`` and model inputs ``z`` (per coordinate)."""

    def __init__(self, settings: ReluLabSettings) -> None:
        if settings.frame == "fixed":
            self.offset = 0.0
            self.scale = _FIXED_FRAME_SCALE / DATA_HALF_WIDTH
        else:
            lo, hi = settings.box()[:, 0]
            self.offset = lo
            self.scale = 1.0 / (hi - lo)

    def to_z(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=float) - self.offset) * self.scale

    def to_x(self, Z: np.ndarray) -> np.ndarray:
        return np.asarray(Z, dtype=float) / self.scale + self.offset


# ------------------------------------------------------------------------------ fitting
def _check(cancel: Callable[[], bool] | None, where: str) -> None:
    if cancel is not None and cancel():
        raise ReluLabCancelled(f"ReLU lab: cancelled {where}")


def _fit_key(settings: ReluLabSettings, name: str) -> tuple:
    """What a fitted model depends on (``box_scale`` only in the ``"box"`` frame)."""
    common = (name, settings.dim, settings.resolved_n_data, settings.noise_std, settings.seed, settings.frame)
    if settings.frame == "box":
        common += (settings.box_scale,)
    if name == GP:
        return common
    return common + (settings.width, settings.depth, settings.prior_precision, settings.max_epochs)


class FitCache:
    """A small LRU cache of fitted models keyed by what the fit depends on.

    In the fixed frame a fit does not depend on ``box_scale``, so moving the box slider reuses
    the fits and only re-optimizes the acquisition. Holds torch models: keep it on the thread
    that computes (the engine worker owns one).
    """

    def __init__(self, capacity: int = 12) -> None:
        self.capacity = int(capacity)
        self._items: OrderedDict[tuple, tuple[Model, dict[str, float]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> tuple[Model, dict[str, float]] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return item

    def put(self, key: tuple, value: tuple[Model, dict[str, float]]) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _gp_feature_map(d: int):
    space = SearchSpace([RealParameter(f"z{i + 1}", 0.0, 1.0) for i in range(d)])
    return FeatureMap(space, TransformChain(()))  # identity: the GP sees z as given


def _fit_model(
    settings: ReluLabSettings,
    name: str,
    Z: torch.Tensor,
    Y: torch.Tensor,
    cancel: Callable[[], bool] | None,
    previous: Model | None = None,
) -> tuple[Model, dict[str, float]]:
    """Fit one model on model-frame inputs ``Z`` (``n x d``) and values ``Y`` (``n x 1``)."""
    if name == GP:
        with manual_seed(settings.seed):
            fit = fit_gp(Z, Y, _gp_feature_map(settings.dim), cancel=cancel)
        hp = fit.hyperparameters
        ls = hp.get("covar_module.lengthscale", [math.nan])
        noise = hp.get("likelihood.noise_covar.noise", [math.nan])[0]
        # the GP sees standardized outcomes (BoTorch's Standardize): report its noise in y units
        y_std = float(Y.std()) if Y.shape[0] > 1 else 1.0
        out = {f"lengthscale_{i + 1}": float(v / _frame_scale(settings)) for i, v in enumerate(ls)}
        out["noise_std"] = math.sqrt(max(noise, 0.0)) * y_std
        return fit.model, out
    lla_kwargs: dict[str, Any] = {"seed": settings.seed, "max_epochs": settings.max_epochs}
    if settings.prior_precision is not None:
        lla_kwargs.update(prior_precision=settings.prior_precision, tune_prior_precision=False)
    model, report = fit_lla(
        Z,
        Y,
        MLPSpec.uniform(settings.width, settings.depth, name),
        LLASettings(**lla_kwargs),
        previous=previous if isinstance(previous, LinearizedLaplaceModel) else None,
        cancel=cancel,
    )
    return model, {"prior_precision": report.prior_precision, "noise_std": report.noise_std_original}


def _frame_scale(settings: ReluLabSettings) -> float:
    return _Frame(settings).scale


# ------------------------------------------------------------------------------ acquisition
def _acquisition(settings: ReluLabSettings, model: Model, best_f: float) -> AcquisitionFunction:
    if settings.acquisition == "logei":
        return LogExpectedImprovement(model, best_f=best_f, maximize=True)
    return UpperConfidenceBound(model, beta=settings.beta, maximize=True)


@torch.no_grad()
def _evaluate(model: Model, acq: AcquisitionFunction, Z: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, ...]:
    """Mean, std and acquisition at ``m x d`` model-frame points (marginal, no noise)."""
    means, stds, acqs = [], [], []
    Zt = torch.as_tensor(np.ascontiguousarray(Z), dtype=torch.float64)
    for start in range(0, Zt.shape[0], chunk):
        batch = Zt[start : start + chunk].unsqueeze(-2)  # b x 1 x d
        post = model.posterior(batch)
        means.append(post.mean.reshape(-1))
        stds.append(post.variance.clamp_min(0).sqrt().reshape(-1))
        acqs.append(acq(batch).reshape(-1))
    return tuple(torch.cat(v).cpu().numpy() for v in (means, stds, acqs))


def _relative(acq: np.ndarray, kind: str) -> np.ndarray:
    a = np.asarray(acq, dtype=float)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros_like(a)
    top = a[finite].max()
    if kind == "logei":
        out = np.exp(np.where(finite, a - top, -np.inf))
    else:
        low = a[finite].min()
        out = (a - low) / (top - low) if top > low else np.ones_like(a)
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _top_distinct(values: np.ndarray, points: np.ndarray, k: int, min_sep: float) -> np.ndarray:
    """Indices of the ``k`` best points, skipping points closer than ``min_sep`` to one already taken."""
    order = np.argsort(-np.where(np.isfinite(values), values, -np.inf), kind="stable")
    taken: list[int] = []
    for i in order:
        if all(np.max(np.abs(points[i] - points[j])) >= min_sep for j in taken):
            taken.append(int(i))
            if len(taken) == k:
                break
    return np.asarray(taken, dtype=int)


def _maximize(
    acq: AcquisitionFunction,
    frame: _Frame,
    box: np.ndarray,
    cand_x: np.ndarray,
    cand_acq: np.ndarray,
    data_center: np.ndarray,
    seed: int,
    cancel: Callable[[], bool] | None,
) -> tuple[np.ndarray, float]:
    """Maximize ``acq`` over the box with ``optimize_acqf``, restarted from the best candidates.

    The restarts start from the ``_NUM_RESTARTS`` best (mutually distinct) candidate points, so
    the result is never worse than the grid. Ties (values within ``_TIE_RTOL`` of the best: a
    flat far-field plateau of a saturated network, or of a GP back at its prior) are broken
    toward the data: the reported maximizer is the tied point nearest the data. A flat plateau
    that reaches the edge therefore does not count as "on the boundary": the acquisition has no
    preference for the edge there, and a point on the boundary is reported only when the
    acquisition is strictly larger there than everywhere else.

    Returns:
        The maximizer (``d``, search coordinates) and its acquisition value.
    """
    d = box.shape[1]
    width = float(box[1, 0] - box[0, 0])
    idx = _top_distinct(cand_acq, cand_x, _NUM_RESTARTS, min_sep=0.002 * width)
    ic = torch.as_tensor(frame.to_z(cand_x[idx]), dtype=torch.float64).reshape(len(idx), 1, d)
    zb = torch.as_tensor(frame.to_z(box), dtype=torch.float64)

    def callback(*_: Any) -> None:
        _check(cancel, "while optimizing the acquisition")

    with manual_seed(seed), warnings.catch_warnings():
        # a restart that starts on a flat plateau stops at once ("ABNORMAL" line search); the
        # other restarts still count, and the grid's best is kept as a candidate below
        warnings.simplefilter("ignore", OptimizationWarning)
        X, values = optimize_acqf(
            acq,
            bounds=zb,
            q=1,
            num_restarts=len(idx),
            batch_initial_conditions=ic,
            return_best_only=False,
            retry_on_optimization_warning=False,
            options={"callback": callback, "maxiter": 200},
        )
    xs = np.clip(frame.to_x(X.detach().reshape(-1, d).cpu().numpy()), box[0], box[1])
    vals = values.detach().reshape(-1).cpu().numpy()
    xs = np.concatenate([xs, cand_x], 0)
    vals = np.concatenate([vals, cand_acq])
    finite = np.isfinite(vals)
    if not finite.any():
        return cand_x[idx[0]] if len(idx) else cand_x[0], float("nan")
    best = vals[finite].max()
    tied = np.nonzero(finite & (vals >= best - _TIE_RTOL * max(1.0, abs(best))))[0]
    pick = tied[np.argmin(np.abs(xs[tied] - data_center).max(axis=1))]
    return xs[pick], float(vals[pick])


def _edge_distance(x: np.ndarray, box: np.ndarray) -> float:
    width = box[1] - box[0]
    return float(np.min(np.minimum(x - box[0], box[1] - x) / width))


# ------------------------------------------------------------------------------ grids
def _grid_1d(settings: ReluLabSettings) -> np.ndarray:
    lo, hi = settings.box()[:, 0]
    uniform = np.linspace(lo, hi, settings.resolved_grid_size)
    near_lo, near_hi = max(lo, -ZOOM_HALF_WIDTH), min(hi, ZOOM_HALF_WIDTH)
    dense = np.linspace(near_lo, near_hi, 361)
    g = np.unique(np.concatenate([uniform, dense]))
    # drop near-duplicates (from the two linspaces) that would make zero-length segments
    keep = np.concatenate([[True], np.diff(g) > 1e-9 * (hi - lo)])
    return g[keep]


def _candidates_2d(settings: ReluLabSettings, axis: np.ndarray, X: np.ndarray) -> np.ndarray:
    lo, hi = settings.box()[:, 0]
    gx, gy = np.meshgrid(axis, axis)
    pts = [np.stack([gx.ravel(), gy.ravel()], -1)]
    near = np.linspace(max(lo, -1.5 * DATA_HALF_WIDTH), min(hi, 1.5 * DATA_HALF_WIDTH), 25)
    nx, ny = np.meshgrid(near, near)
    pts.append(np.stack([nx.ravel(), ny.ravel()], -1))
    pts.append(X)
    return np.concatenate(pts, 0)


# ------------------------------------------------------------------------------ main entry
def _model_curves(
    settings: ReluLabSettings,
    name: str,
    model: Model,
    hyper: Mapping[str, float],
    fit_seconds: float,
    frame: _Frame,
    X: np.ndarray,
    y: np.ndarray,
    cand_x: np.ndarray,
    n_grid: int,
    grid_shape: tuple[int, ...],
    cancel: Callable[[], bool] | None,
) -> ModelCurves:
    t0 = time.perf_counter()
    box = settings.box()
    acq = _acquisition(settings, model, float(y.max()))
    mean, std, values = _evaluate(model, acq, frame.to_z(cand_x))
    _check(cancel, "after evaluating the grid")
    center = X.mean(0)
    x_star, v_star = _maximize(acq, frame, box, cand_x, values, center, settings.seed, cancel)
    dist = _edge_distance(x_star, box)
    std_star = float(_evaluate(model, acq, frame.to_z(x_star[None]))[1][0])
    grid_vals = values[:n_grid]
    grid_x = cand_x[:n_grid]
    band = np.min(np.minimum(grid_x - box[0], box[1] - grid_x) / (box[1] - box[0]), axis=1) <= BOUNDARY_FRACTION
    band_vals = grid_vals[band & np.isfinite(grid_vals)]
    edge_value = float(band_vals.max()) if band_vals.size else float("nan")
    on_boundary = bool(dist <= BOUNDARY_FRACTION)
    flat = (not on_boundary) and math.isfinite(edge_value) and edge_value >= v_star - _TIE_RTOL * max(1.0, abs(v_star))
    return ModelCurves(
        name=name,
        label=MODEL_LABELS.get(name, f"{name} LLA"),
        mean=_ro(mean[:n_grid].reshape(grid_shape)),
        std=_ro(std[:n_grid].reshape(grid_shape)),
        acquisition=_ro(grid_vals.reshape(grid_shape)),
        acquisition_relative=_ro(_relative(grid_vals, settings.acquisition).reshape(grid_shape)),
        maximizer=_ro(x_star),
        maximizer_value=v_star,
        std_at_maximizer=std_star,
        grid_max_value=float(np.nanmax(grid_vals)) if np.isfinite(grid_vals).any() else float("nan"),
        edge_distance=dist,
        on_boundary=on_boundary,
        edge_value=edge_value,
        flat_to_edge=bool(flat),
        hyperparameters=MappingProxyType(dict(hyper)),
        seconds=fit_seconds + time.perf_counter() - t0,
    )


def _fitted(
    settings: ReluLabSettings,
    name: str,
    Z: torch.Tensor,
    Y: torch.Tensor,
    cache: FitCache | None,
    cancel: Callable[[], bool] | None,
) -> tuple[Model, dict[str, float], float]:
    key = _fit_key(settings, name)
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        return hit[0], hit[1], 0.0
    t0 = time.perf_counter()
    model, hyper = _fit_model(settings, name, Z, Y, cancel)
    if cache is not None:
        cache.put(key, (model, hyper))
    return model, hyper, time.perf_counter() - t0


def compute_relu_lab(
    settings: ReluLabSettings,
    cancel: Callable[[], bool] | None = None,
    cache: FitCache | None = None,
) -> ReluLabResult:
    """Fit every model on the default problem and evaluate it on the widened box.

    Args:
        settings: What to compute.
        cancel: Checked between steps and inside fits and optimizations; returning True raises
            :class:`ReluLabCancelled` (fits raise their own ``Cancelled`` subclasses).
        cache: Optional :class:`FitCache` to reuse fits between calls.

    Returns:
        A :class:`ReluLabResult` of read-only numpy arrays.
    """
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        X, y = make_data(settings)
        frame = _Frame(settings)
        Z = torch.as_tensor(frame.to_z(X), dtype=torch.float64)
        Y = torch.as_tensor(y, dtype=torch.float64).unsqueeze(-1)
        if settings.dim == 1:
            grid = _grid_1d(settings)
            cand_x = np.concatenate([grid[:, None], X], 0)
            n_grid, shape = grid.shape[0], (grid.shape[0],)
            truth = default_objective(grid[:, None])
        else:
            lo, hi = settings.box()[:, 0]
            grid = np.linspace(lo, hi, settings.resolved_grid_size)
            cand_x = _candidates_2d(settings, grid, X)
            n_grid, shape = grid.size**2, (grid.size, grid.size)
            truth = default_objective(cand_x[:n_grid]).reshape(shape)
        models: dict[str, ModelCurves] = {}
        for name in settings.models:
            _check(cancel, f"before fitting {name}")
            model, hyper, seconds = _fitted(settings, name, Z, Y, cache, cancel)
            models[name] = _model_curves(
                settings, name, model, hyper, seconds, frame, X, y, cand_x, n_grid, shape, cancel
            )
    region = np.array([[-DATA_HALF_WIDTH] * settings.dim, [DATA_HALF_WIDTH] * settings.dim])
    return ReluLabResult(
        settings=settings,
        box=_ro(settings.box()),
        data_region=_ro(region),
        X=_ro(X),
        y=_ro(y),
        grid=_ro(grid),
        truth=_ro(truth),
        models=MappingProxyType(models),
        seconds=time.perf_counter() - t0,
    )


def boundary_rate(
    settings: ReluLabSettings,
    steps: int = 8,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> BoundaryRateResult:
    """Run a short BO loop per model and count proposals on the box boundary.

    Each step fits the model to the data so far (LLAs warm-started from the previous step),
    maximizes the acquisition over the box (as :func:`compute_relu_lab` does), evaluates the
    true function with noise at the proposal and adds it to the data. Every model starts from
    the same initial data and sees the same noise sequence.

    Args:
        settings: Problem, models and box.
        steps: BO steps per model (1 to 100).
        cancel: Checked between steps and inside fits and optimizations.
        progress: Called with ``(model key, steps done)`` after every step.

    Returns:
        A :class:`BoundaryRateResult`.
    """
    steps = _int_in("steps", steps, 1, 100)
    t0 = time.perf_counter()
    box = settings.box()
    frame = _Frame(settings)
    X0, y0 = make_data(settings)
    rates: dict[str, float] = {}
    proposals: dict[str, np.ndarray] = {}
    flags: dict[str, np.ndarray] = {}
    observed: dict[str, np.ndarray] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        for name in settings.models:
            rng = np.random.default_rng([settings.seed, 1])
            X, y = X0.copy(), y0.copy()
            previous: Model | None = None
            xs, fl, vs = [], [], []
            for step in range(steps):
                _check(cancel, f"at BO step {step + 1} of {name}")
                Z = torch.as_tensor(frame.to_z(X), dtype=torch.float64)
                Y = torch.as_tensor(y, dtype=torch.float64).unsqueeze(-1)
                model, _ = _fit_model(settings, name, Z, Y, cancel, previous=previous)
                previous = model
                acq = _acquisition(settings, model, float(y.max()))
                if settings.dim == 1:
                    lo, hi = box[:, 0]
                    cand = np.concatenate(
                        [np.linspace(lo, hi, 401)[:, None], np.linspace(max(lo, -1.5), min(hi, 1.5), 121)[:, None], X], 0
                    )
                else:
                    axis = np.linspace(box[0, 0], box[1, 0], 41)
                    cand = _candidates_2d(settings, axis, X)
                _, _, values = _evaluate(model, acq, frame.to_z(cand))
                x_star, _ = _maximize(acq, frame, box, cand, values, X0.mean(0), settings.seed + step, cancel)
                y_new = float(default_objective(x_star[None])[0] + settings.noise_std * rng.standard_normal())
                xs.append(x_star)
                fl.append(_edge_distance(x_star, box) <= BOUNDARY_FRACTION)
                vs.append(y_new)
                X = np.concatenate([X, x_star[None]], 0)
                y = np.append(y, y_new)
                if progress is not None:
                    progress(name, step + 1)
            proposals[name] = _ro(np.asarray(xs))
            flags[name] = _ro(np.asarray(fl), bool)
            observed[name] = _ro(np.asarray(vs))
            rates[name] = float(np.mean(fl))
    return BoundaryRateResult(
        settings=settings,
        steps=steps,
        rates=MappingProxyType(rates),
        proposals=MappingProxyType(proposals),
        on_boundary=MappingProxyType(flags),
        values=MappingProxyType(observed),
        seconds=time.perf_counter() - t0,
    )
