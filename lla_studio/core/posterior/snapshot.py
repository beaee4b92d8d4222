"""The posterior lab's request and its display-ready answer: plain, picklable, torch-free data.

`PosteriorRequest` travels from the GUI process to the lab process; `PosteriorSnapshot` comes back
(one per stage, see `lla_studio.core.posterior.view.compute_posterior`). Both hold only numbers,
strings, tuples, read-only numpy arrays and read-only mappings (`lla_studio.core.readonly`), so
the GUI unpickles them without importing torch: a snapshot deliberately does not carry the core's
`PosteriorAnalysis` (its fits and grids are classes of torch-importing modules); it carries the
numbers the panel shows instead.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from lla_studio.core.readonly import ReadOnlyData

__all__ = [
    "ELLIPSE_POINTS",
    "HPD_MASSES",
    "QUANTILE_METHODS",
    "STAGES",
    "PosteriorRequest",
    "PosteriorSnapshot",
]

QUANTILE_METHODS: tuple[str, ...] = ("grid", "laplace", "mixture", "vi")
# Mass inside the 1- and 2-sigma ellipses of a bivariate Gaussian: 1 - exp(-k^2 / 2).
HPD_MASSES: tuple[float, float] = (1.0 - math.exp(-0.5), 1.0 - math.exp(-2.0))
ELLIPSE_POINTS = 121
STAGES: tuple[str, ...] = ("laplace", "vi-warm", "vi")
"""The answers of one request, in order (the VI stages only with ``vi=True``)."""


def _freeze_value(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_freeze_value(x) for x in v)
    return v


@dataclass(frozen=True)
class PosteriorRequest(ReadOnlyData):
    """One computation the GUI asks for.

    Attributes:
        request_id: Grows with every request of a controller; answers carry it back.
        spec: Model spec as a plain dict with a ``"type"`` tag (``ModelSpec.to_dict`` form), frozen.
        grid_n: Grid points per axis.
        starts: Multi-start count of the Laplace mixture.
        seed: Seeds the starts, VI and the displayed samples.
        vi: Also run warm- and cold-started VI (two more answers).
        vi_steps: Adam steps per VI run.
        n_samples: Samples drawn from each approximation for the scatter overlay.
    """

    request_id: int
    spec: Mapping[str, Any]
    grid_n: int = 101
    starts: int = 16
    seed: int = 0
    vi: bool = False
    vi_steps: int = 400
    n_samples: int = 300

    def __post_init__(self) -> None:
        frozen = MappingProxyType({str(k): _freeze_value(copy.deepcopy(v)) for k, v in dict(self.spec).items()})
        object.__setattr__(self, "spec", frozen)


@dataclass(frozen=True, eq=False)
class PosteriorSnapshot(ReadOnlyData):
    """One answer, ready to draw: every array is a read-only numpy copy.

    Attributes:
        request_id: The request it answers.
        stage: ``"laplace"`` (no VI yet), ``"vi-warm"`` (warm VI done) or ``"vi"`` (both VI runs done).
        final: No further answer for this request follows.
        model_name: Human-readable model name.
        spec: The model spec as built (``ModelSpec.to_dict``: pairs as lists).
        param_names: The two parameter names.
        box_low, box_high: Grid box corners ``(a, b)``.
        grid_shape: ``(n_b, n_a)``, the shape of `density`.
        density: `n_b x n_a` float32 normalised grid density (rows follow the 2nd parameter), finite.
        hpd_levels: Density values bounding the highest-density regions of `HPD_MASSES` mass.
        contours: One `N x 2` array per HPD level (segments separated by NaN rows).
        ellipses: Per Laplace-mixture component, ``(1 sigma, 2 sigma)`` closed curves (`n x 2` each).
        component_weights: `K` normalised weights of the Laplace mixture.
        modes: `K x 2` modes of the Laplace mixture.
        vi_curves: ``(1 sigma, 2 sigma)`` curves of the warm VI components mapped to the model's
            coordinates (NaN-separated), or ``None`` without VI.
        marginals: ``param -> {"x", "grid", "laplace", "mixture", "vi"}`` densities on the grid axes
            (``"vi"`` is ``None`` without VI).
        quantile_levels: The quantile levels (2.5, 25, 50, 75, 97.5 %).
        quantiles: A `2 x 5 x 4` array ``[param, level, method]`` for methods `QUANTILE_METHODS`
            (NaN where missing).
        samples: ``"laplace" | "mixture" | "vi" -> n x 2`` samples (``"vi"`` absent without VI).
        traces: ``"warm" | "cold" -> T x 2`` (seconds, JSD to the grid) of the VI runs done so far.
        jsd: Jensen-Shannon divergences to the grid posterior (nats), ``None`` where not computed.
        kl: ``KL(grid || approximation)`` for the same keys.
        log_evidence: ``{"grid", "laplace", "mixture", "mixture_laplace_weights"}``.
        laplace_mass_outside_support: Mass of the single Laplace Gaussian outside the support.
        mixture_mass_outside_support: Same for the Laplace mixture.
        notes: Messages from the core (failed starts, fallbacks).
        seconds: Wall-clock seconds since the request started computing.
    """

    request_id: int
    stage: str
    final: bool
    model_name: str
    spec: Mapping[str, Any]
    param_names: tuple[str, str]
    box_low: tuple[float, float]
    box_high: tuple[float, float]
    grid_shape: tuple[int, int]
    density: np.ndarray
    hpd_levels: tuple[float, ...]
    contours: tuple[np.ndarray, ...]
    ellipses: tuple[tuple[np.ndarray, np.ndarray], ...]
    component_weights: np.ndarray
    modes: np.ndarray
    vi_curves: tuple[np.ndarray, np.ndarray] | None
    marginals: Mapping[str, Mapping[str, np.ndarray | None]]
    quantile_levels: tuple[float, ...]
    quantiles: np.ndarray
    samples: Mapping[str, np.ndarray]
    traces: Mapping[str, np.ndarray]
    jsd: Mapping[str, float | None]
    kl: Mapping[str, float | None]
    log_evidence: Mapping[str, float]
    laplace_mass_outside_support: float
    mixture_mass_outside_support: float
    notes: tuple[str, ...]
    seconds: float
