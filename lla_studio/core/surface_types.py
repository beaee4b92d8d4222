"""The live views' request and answer: a slice or map of the surrogate, as plain numpy data.

:class:`SurfaceRequest` goes to the study process and :class:`SurfaceSnapshot` comes back through
the pipe. They live apart from the numerics (:mod:`lla_studio.core.surface`, which imports torch
and BoTorch) because unpickling an object imports the module that defines its class: the GUI
process must be able to read a snapshot without loading torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lla_studio.core.specs import AcquisitionSpec

__all__ = ["SHOWN_ACQUISITION", "SurfaceRequest", "SurfaceSnapshot", "acquisition_label"]

# What the views draw for each acquisition type (the study's own function, q = 1, analytic).
# Thompson sampling has no acquisition surface (it maximizes one posterior draw), and q > 1
# proposals use qLogNEI, whose one-point analytic counterpart is LogEI: both show log EI.
SHOWN_ACQUISITION = {"logei": "logei", "ei": "ei", "pi": "pi", "ucb": "ucb", "thompson": "logei", "qlognei": "logei"}
_LABELS = {"logei": "log EI", "ei": "EI", "pi": "PI", "ucb": "UCB"}


def acquisition_label(spec: AcquisitionSpec | None) -> str:
    """The label of what :func:`~lla_studio.core.surface.compute_surface` draws for ``spec``
    (``None``: LogEI)."""
    return _LABELS[SHOWN_ACQUISITION[(spec or AcquisitionSpec()).type]]


@dataclass(frozen=True)
class SurfaceRequest:
    """A slice (one parameter) or map (two parameters) through the unit cube.

    Attributes:
        request_id: Growing id; answers to older requests are dropped by the GUI.
        params: One or two parameter names.
        fixed: Unit-cube values of the other parameters (missing ones: the incumbent's).
        n: Points per axis (choices use one point per choice).
    """

    request_id: int
    params: tuple[str, ...]
    fixed: Mapping[str, float] = field(default_factory=dict)
    n: int = 100


@dataclass(frozen=True)
class SurfaceSnapshot:
    """Surrogate on a slice or map, as numpy arrays.

    Attributes:
        request_id: Id of the request this answers.
        params: The swept parameters.
        axes: Per swept parameter, the axis in parameter units (``n`` or ``k`` values).
        mean: Posterior mean, shape ``(n,)`` or ``(n_b, n_a)`` (rows follow the second parameter).
        sd: Posterior standard deviation, same shape.
        acquisition: The study's acquisition function (see :attr:`acquisition_label`) for one
            point, same shape: LogEI, EI or PI with respect to the incumbent, or UCB.
        observed_u: ``m x d`` encodings of the completed trials.
        observed_y: ``m`` values.
        distance: ``m`` distances of each observation to the slice (unit cube, other coordinates).
        incumbent_u: ``d`` encoding of the best trial (or empty).
        acquisition_label: ``"log EI"``, ``"EI"``, ``"PI"`` or ``"UCB"``.
    """

    request_id: int
    params: tuple[str, ...]
    axes: tuple[np.ndarray, ...]
    mean: np.ndarray
    sd: np.ndarray
    acquisition: np.ndarray
    observed_u: np.ndarray
    observed_y: np.ndarray
    distance: np.ndarray
    incumbent_u: np.ndarray
    acquisition_label: str = "log EI"

    @property
    def log_acquisition(self) -> bool:
        """Whether :attr:`acquisition` is on a log scale (its far tails go to about -600)."""
        return self.acquisition_label == "log EI"
