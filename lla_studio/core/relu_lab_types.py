"""The ReLU extrapolation lab's settings, default problem and results: torch-free, picklable data.

`ReluLabSettings` travels to the lab process, `ReluLabResult` and `BoundaryRateResult` come back
(read-only numpy arrays and mappings that survive the pipe, see `lla_studio.core.readonly`). They
live apart from the numerics (:mod:`lla_studio.core.relu_lab`, which imports torch, gpytorch and
BoTorch) so that the GUI process can build settings and draw results without loading torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lla_studio.core.errors import ReluLabError
from lla_studio.core.readonly import ReadOnlyData
from lla_studio.core.surrogates.specs import ACTIVATION_NAMES

__all__ = [
    "ACQUISITIONS",
    "BOUNDARY_FRACTION",
    "DATA_HALF_WIDTH",
    "FRAMES",
    "GP",
    "MAX_BOX_SCALE",
    "MODEL_LABELS",
    "ZOOM_HALF_WIDTH",
    "BoundaryRateResult",
    "ModelCurves",
    "ReluLabResult",
    "ReluLabSettings",
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
        activations: Networks to compare (names from ``surrogates.specs.ACTIVATION_NAMES``), each fitted
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
            if a not in ACTIVATION_NAMES:
                raise ReluLabError(
                    f"activations[{i}]: unknown activation {a!r}, expected one of {sorted(ACTIVATION_NAMES)}"
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


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True, eq=False)
class ModelCurves(ReadOnlyData):
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
class ReluLabResult(ReadOnlyData):
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
class BoundaryRateResult(ReadOnlyData):
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
