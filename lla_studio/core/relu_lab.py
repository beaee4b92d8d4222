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

Everything returned is numpy (no torch tensors), so results can cross threads and be drawn by
the GUI as they are.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
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
from lla_studio.core.space import RealParameter, SearchSpace
from lla_studio.core.surrogates.gp import fit_gp
from lla_studio.core.surrogates.lla import LinearizedLaplaceModel, LLASettings, fit_lla
from lla_studio.core.surrogates.networks import ACTIVATIONS, MLPSpec
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

GP = "gp"
ACQUISITIONS = ("logei", "ucb")
FRAMES = ("fixed", "box")
MAX_BOX_SCALE = 1000.0
DATA_HALF_WIDTH = 1.0  # the data region (and the ×1 box) is [-1, 1]^d
BOUNDARY_FRACTION = 0.01  # "on the boundary": within 1 % of the box width of an edge
ZOOM_HALF_WIDTH = 3.0 * DATA_HALF_WIDTH  # the 1-D grid is dense on [-3, 3] (a zoom on the data)
MODEL_LABELS = {
    "relu": "ReLU LLA",
    "tanh": "tanh LLA",
    "gelu": "GELU LLA",
    "softplus": "softplus LLA",
    "identity": "linear LLA",
    GP: "GP (Matérn-5/2)",
}
_DEFAULT_N_DATA = {1: 12, 2: 20}
_DEFAULT_GRID = {1: 601, 2: 60}
_FIXED_FRAME_SCALE = math.sqrt(3.0)  # uniform on [-1, 1] -> unit variance
_NUM_RESTARTS = 8
_TIE_RTOL = 1e-9  # acquisition values this close count as a tie (a flat, saturated plateau)


# ------------------------------------------------------------------------------ settings
def _int_in(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ReluLabError(f"{name}: must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _float_in(name: str, value: Any, low: float, high: float, *, open_low: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value > low if open_low else value >= low) and value <= high
    if not ok:
        left = "(" if open_low else "["
        raise ReluLabError(f"{name}: must be a number in {left}{low:g}, {high:g}], got {value!r}")
    return value


@dataclass(frozen=True)
class ReluLabSettings:
    """What to compute (frozen, validated).

    Attributes:
        dim: 1 or 2 input dimensions.
        box_scale: The search box is ``[-box_scale, box_scale]^d`` (``×1`` is the data region
            ``[-1, 1]^d``), in ``[1, 1000]``.
        activations: Networks to compare (names from ``networks.ACTIVATIONS``), each fitted
            as a full LLA; 0 to 3 distinct names.
        include_gp: Also fit the GP baseline.
        width: Hidden units per layer.
        depth: Hidden layers.
        prior_precision: A fixed ``delta`` (standardized-target scale), or None to tune it on
            the Laplace evidence (the noise is always tuned).
        n_data: Number of observations (None: 12 in 1-D, 20 in 2-D).
        noise_std: Standard deviation of the observation noise.
        seed: Seeds the data, the network initializations and the optimizer.
        acquisition: ``"logei"`` (BoTorch's LogEI) or ``"ucb"`` (``mu + sqrt(beta) sigma``).
        beta: UCB's ``beta``.
        frame: ``"fixed"`` or ``"box"``, the input frame of the models (module docstring).
        grid_size: Grid points over the box (None: 601 in 1-D, plus a dense patch around the
            data; 60 per axis in 2-D).
        max_epochs: L-BFGS epoch budget of the MAP training (None: the LLA default).
    """

    dim: int = 1
    box_scale: float = 100.0
    activations: tuple[str, ...] = ("relu", "tanh")
    include_gp: bool = True
    width: int = 50
    depth: int = 2
    prior_precision: float | None = None
    n_data: int | None = None
    noise_std: float = 0.05
    seed: int = 0
    acquisition: str = "logei"
    beta: float = 2.0
    frame: str = "fixed"
    grid_size: int | None = None
    max_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.dim not in (1, 2) or isinstance(self.dim, bool):
            raise ReluLabError(f"dim: must be 1 or 2, got {self.dim!r}")
        object.__setattr__(self, "box_scale", _float_in("box_scale", self.box_scale, 1.0, MAX_BOX_SCALE))
        acts = self.activations
        if isinstance(acts, str) or not isinstance(acts, (tuple, list)):
            raise ReluLabError(f"activations: expected a list of activation names, got {acts!r}")
        acts = tuple(acts)
        for i, a in enumerate(acts):
            if a not in ACTIVATIONS:
                raise ReluLabError(
                    f"activations[{i}]: unknown activation {a!r}, expected one of {sorted(ACTIVATIONS)}"
                )
            if a in acts[:i]:
                raise ReluLabError(f"activations[{i}]: {a!r} is listed twice")
        if len(acts) > 3:
            raise ReluLabError(f"activations: at most 3 networks, got {len(acts)}")
        object.__setattr__(self, "activations", acts)
        if not isinstance(self.include_gp, bool):
            raise ReluLabError(f"include_gp: must be true or false, got {self.include_gp!r}")
        if not acts and not self.include_gp:
            raise ReluLabError("activations: pick at least one network or include the GP")
        _int_in("width", self.width, 1, 1024)
        _int_in("depth", self.depth, 1, 8)
        if self.prior_precision is not None:
            object.__setattr__(
                self, "prior_precision", _float_in("prior_precision", self.prior_precision, 0.0, 1e6, open_low=True)
            )
        if self.n_data is not None:
            _int_in("n_data", self.n_data, 2, 500)
        object.__setattr__(self, "noise_std", _float_in("noise_std", self.noise_std, 0.0, 10.0))
        _int_in("seed", self.seed, 0, 2**31 - 1)
        if self.acquisition not in ACQUISITIONS:
            raise ReluLabError(f"acquisition: expected one of {ACQUISITIONS}, got {self.acquisition!r}")
        object.__setattr__(self, "beta", _float_in("beta", self.beta, 0.0, 1e4, open_low=True))
        if self.frame not in FRAMES:
            raise ReluLabError(f"frame: expected one of {FRAMES}, got {self.frame!r}")
        if self.grid_size is not None:
            _int_in("grid_size", self.grid_size, 11, 4001 if self.dim == 1 else 201)
        if self.max_epochs is not None:
            _int_in("max_epochs", self.max_epochs, 1, 10_000)

    @property
    def models(self) -> tuple[str, ...]:
        """Model keys in display order: the activations, then ``"gp"``."""
        return self.activations + ((GP,) if self.include_gp else ())

    @property
    def resolved_n_data(self) -> int:
        return self.n_data if self.n_data is not None else _DEFAULT_N_DATA[self.dim]

    @property
    def resolved_grid_size(self) -> int:
        return self.grid_size if self.grid_size is not None else _DEFAULT_GRID[self.dim]

    def box(self) -> np.ndarray:
        """``2 x d`` array: lower and upper corners of the search box."""
        s = self.box_scale * DATA_HALF_WIDTH
        return np.array([[-s] * self.dim, [s] * self.dim], dtype=float)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["activations"] = list(self.activations)
        return out


# ------------------------------------------------------------------------------ problem
def default_objective(X: np.ndarray) -> np.ndarray:
    """The lab's true function: a main bump and a smaller one inside the data region, decaying to 0.

    Args:
        X: A ``n x d`` array (``d`` = 1 or 2).

    Returns:
        A ``n`` array. The global maximum (about 1.0) is at ``x = 0.3`` (1-D) or
        ``(0.3, -0.2)`` (2-D), inside the data region; far from it the function is 0.
    """
    X = np.atleast_2d(np.asarray(X, dtype=float))
    if X.shape[1] == 1:
        x = X[:, 0]
        return np.exp(-0.5 * ((x - 0.3) / 0.3) ** 2) + 0.35 * np.exp(-0.5 * ((x + 0.55) / 0.2) ** 2)
    c1, c2 = np.array([0.3, -0.2]), np.array([-0.5, 0.5])
    r1 = ((X - c1) ** 2).sum(-1) / 0.4**2
    r2 = ((X - c2) ** 2).sum(-1) / 0.3**2
    return np.exp(-0.5 * r1) + 0.35 * np.exp(-0.5 * r2)


def make_data(settings: ReluLabSettings) -> tuple[np.ndarray, np.ndarray]:
    """The default problem's observations: uniform in the data region, plus Gaussian noise.

    Returns:
        ``X`` (``n x d``, sorted by the first coordinate) and ``y`` (``n``).
    """
    rng = np.random.default_rng(settings.seed)
    n, d = settings.resolved_n_data, settings.dim
    X = rng.uniform(-DATA_HALF_WIDTH, DATA_HALF_WIDTH, size=(n, d))
    X = X[np.argsort(X[:, 0], kind="stable")]
    y = default_objective(X) + settings.noise_std * rng.standard_normal(n)
    return X, y


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


# ------------------------------------------------------------------------------ results
def _ro(a: Any, dtype: Any = float) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class ModelCurves:
    """One model on the widened box (read-only numpy arrays).

    Attributes:
        name: Model key (an activation name or ``"gp"``).
        label: Display name.
        mean: Predictive mean on the grid: ``m`` (1-D) or ``r x r`` ``[iy, ix]`` (2-D).
        std: Predictive standard deviation (no observation noise), same shape.
        acquisition: Acquisition values on the grid (LogEI: log values), same shape.
        acquisition_relative: The acquisition rescaled to ``[0, 1]`` for display
            (LogEI: ``EI / max EI``; UCB: min-max), same shape.
        maximizer: ``d`` array, where BoTorch's ``optimize_acqf`` (restarted from the best grid
            points) puts the maximum.
        maximizer_value: Acquisition value there.
        std_at_maximizer: Predictive standard deviation there.
        grid_max_value: Best acquisition value on the grid (``maximizer_value`` is not smaller,
            up to optimizer tolerance).
        edge_distance: Distance from the maximizer to the nearest box edge, as a fraction of
            the box width.
        on_boundary: ``edge_distance <= BOUNDARY_FRACTION``: the acquisition is strictly
            larger at the edge than anywhere else (ties go to the point nearest the data).
        edge_value: Best acquisition value on the grid within ``BOUNDARY_FRACTION`` of an edge.
        flat_to_edge: Not on the boundary, but the edge ties with the maximum (the acquisition
            is flat from the maximizer out to the edge: a saturated network or a GP at its
            prior has no preference there).
        hyperparameters: Fitted values (LLA: ``prior_precision``, ``noise_std``; GP:
            ``lengthscale``, ``noise_std``), on the standardized-target scale for the LLA.
        seconds: Fit time (0 when the fit came from a cache) plus evaluation time.
    """

    name: str
    label: str
    mean: np.ndarray
    std: np.ndarray
    acquisition: np.ndarray
    acquisition_relative: np.ndarray
    maximizer: np.ndarray
    maximizer_value: float
    std_at_maximizer: float
    grid_max_value: float
    edge_distance: float
    on_boundary: bool
    edge_value: float
    flat_to_edge: bool
    hyperparameters: Mapping[str, float]
    seconds: float


@dataclass(frozen=True, eq=False)
class ReluLabResult:
    """Everything the panel draws (read-only numpy arrays; no torch).

    Attributes:
        settings: The settings computed.
        box: ``2 x d`` search-box corners.
        data_region: ``2 x d`` corners of the region the data were drawn from.
        X: ``n x d`` observed inputs.
        y: ``n`` observed values.
        grid: 1-D: the ``m`` grid points (sorted; uniform over the box plus a dense patch on
            ``[-ZOOM_HALF_WIDTH, ZOOM_HALF_WIDTH]`` around the data). 2-D: the ``r`` grid values
            of each axis (the box is a square).
        truth: The true function on the grid (``m`` or ``r x r``).
        models: Model key -> :class:`ModelCurves`, in ``settings.models`` order.
        seconds: Wall time of the computation.
    """

    settings: ReluLabSettings
    box: np.ndarray
    data_region: np.ndarray
    X: np.ndarray
    y: np.ndarray
    grid: np.ndarray
    truth: np.ndarray
    models: Mapping[str, ModelCurves]
    seconds: float

    def maximizers(self) -> dict[str, np.ndarray]:
        """Model key -> maximizer (``d``)."""
        return {k: m.maximizer for k, m in self.models.items()}

    def on_boundary(self) -> dict[str, bool]:
        """Model key -> whether its acquisition maximizer lies on the box boundary."""
        return {k: m.on_boundary for k, m in self.models.items()}


@dataclass(frozen=True, eq=False)
class BoundaryRateResult:
    """A short BO loop per model: how often the proposal lands on the box boundary.

    Attributes:
        settings: The settings (box, models, acquisition) of the loop.
        steps: BO steps per model.
        rates: Model key -> fraction of proposals on the boundary.
        proposals: Model key -> ``steps x d`` proposed points, in order.
        on_boundary: Model key -> ``steps`` booleans.
        values: Model key -> ``steps`` observed values at the proposals.
        seconds: Wall time.
    """

    settings: ReluLabSettings
    steps: int
    rates: Mapping[str, float]
    proposals: Mapping[str, np.ndarray]
    on_boundary: Mapping[str, np.ndarray]
    values: Mapping[str, np.ndarray]
    seconds: float


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

