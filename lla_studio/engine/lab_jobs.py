"""The lab process's requests and answers that are not the core's own types: frozen plain data.

No Qt and no torch here: the GUI process builds the requests and reads the answers, the lab process
(:mod:`lla_studio.engine.lab_server`) does the opposite, and both import this module. The posterior
lab's request and snapshot are the core's (:mod:`lla_studio.core.posterior.snapshot`), the ReLU
lab's settings and results too (:mod:`lla_studio.core.relu_lab_types`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lla_studio.core.readonly import ReadOnlyData

if TYPE_CHECKING:
    from lla_studio.core.kernels.graph import KernelGraph
    from lla_studio.core.relu_lab_types import BoundaryRateResult, ReluLabResult, ReluLabSettings

__all__ = [
    "LAB",
    "RATE",
    "BoundaryRateAnswer",
    "BoundaryRateProgress",
    "PriorPreviewFailed",
    "PriorPreviewRequest",
    "PriorPreviewResult",
    "ReluLabAnswer",
    "ReluLabRequest",
]

LAB = "lab"
RATE = "rate"


# ------------------------------------------------------------------------------ ReLU lab
@dataclass(frozen=True)
class ReluLabRequest:
    """One computation of the ReLU lab.

    Attributes:
        request_id: Grows with every request of a controller (both kinds share the counter).
        kind: ``LAB`` (curves and maximizers) or ``RATE`` (the boundary-rate BO loop).
        settings: What to compute.
        steps: BO steps per model (``RATE`` only).
    """

    request_id: int
    kind: str
    settings: ReluLabSettings
    steps: int = 8


@dataclass(frozen=True)
class ReluLabAnswer:
    """The lab for one request: ``result`` holds read-only numpy arrays only."""

    request_id: int
    result: ReluLabResult
    fits_reused: int  # models whose fit came from the lab process's cache
    seconds: float


@dataclass(frozen=True)
class BoundaryRateAnswer:
    """The boundary-rate BO loop for one request."""

    request_id: int
    result: BoundaryRateResult


@dataclass(frozen=True)
class BoundaryRateProgress:
    """``model`` finished BO step ``step`` of ``steps`` (model ``index`` of ``n_models``)."""

    request_id: int
    model: str
    step: int
    steps: int
    index: int
    n_models: int


# ------------------------------------------------------------------------------ prior preview
@dataclass(frozen=True)
class PriorPreviewRequest:
    """What to sample.

    Attributes:
        request_id: Grows with every request; answers carry it.
        graph: A valid kernel graph.
        feature_names: Model features in column order.
        x: Feature along the horizontal axis.
        y: Feature along the vertical axis (``None``: a 1-D slice).
        n_samples: Number of prior samples.
        seed: Seed of the draws.
        resolution: Grid points per axis (``None``: the core's default).
    """

    request_id: int
    graph: KernelGraph
    feature_names: tuple[str, ...]
    x: str
    y: str | None = None
    n_samples: int = 5
    seed: int = 0
    resolution: int | None = None


@dataclass(frozen=True, eq=False)
class PriorPreviewResult(ReadOnlyData):
    """Samples for one request (read-only numpy arrays).

    Attributes:
        request_id: The request answered.
        request: The request itself.
        x: Grid of the ``x`` feature (unit cube), shape ``r``.
        y: Grid of the ``y`` feature for a 2-D slice, else ``None``.
        samples: ``n_samples x r`` (1-D) or ``n_samples x r x r`` (2-D, ``[sample, iy, ix]``).
        seconds: Compute time.
    """

    request_id: int
    request: PriorPreviewRequest
    x: np.ndarray
    y: np.ndarray | None
    samples: np.ndarray
    seconds: float


@dataclass(frozen=True)
class PriorPreviewFailed:
    """A request that could not be sampled; ``message`` names the culprit."""

    request_id: int
    request: PriorPreviewRequest
    message: str
