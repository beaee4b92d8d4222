"""The events the study loop yields (frozen; the CLI, the study process, tests and benchmarks
all read the same generator's events)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lla_studio.core.specs import Trial

__all__ = [
    "AcquisitionOptimized",
    "Event",
    "StudyFinished",
    "SurrogateFitFailed",
    "SurrogateFitted",
    "TrialCompleted",
    "TrialFailed",
    "TrialProposed",
    "TrialStarted",
]


@dataclass(frozen=True)
class Event:
    """Base of all study events."""


@dataclass(frozen=True)
class TrialProposed(Event):
    trial: Trial


@dataclass(frozen=True)
class TrialStarted(Event):
    """A trial was sent to a worker (parallel runs only).

    Attributes:
        trial: The trial, now ``running``.
        worker: The Dask worker's address.
        started_at: When it was sent (seconds since the epoch).
    """

    trial: Trial
    worker: str
    started_at: float


@dataclass(frozen=True)
class TrialCompleted(Event):
    trial: Trial
    best_value: float


@dataclass(frozen=True)
class TrialFailed(Event):
    trial: Trial


@dataclass(frozen=True)
class SurrogateFitted(Event):
    """A surrogate was fitted on ``n_train`` completed trials.

    Attributes:
        iteration: Number of trials when the fit started.
        kind: ``"gp"`` or ``"lla"``.
        n_train: Training points.
        hyperparameters: Named hyperparameter values.
        mll: Marginal log likelihood (per point for GPs; the Laplace evidence for LLA).
        seconds: Fit time.
        model: The fitted BoTorch model (read-only by convention; the engine samples it).
        warnings: Notes of the fit (e.g. a hyperparameter at its bound).
    """

    iteration: int
    kind: str
    n_train: int
    hyperparameters: Mapping[str, Sequence[float]]
    mll: float
    seconds: float
    model: Any = field(default=None, repr=False, compare=False)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SurrogateFitFailed(Event):
    iteration: int
    reason: str


@dataclass(frozen=True)
class AcquisitionOptimized(Event):
    iteration: int
    kind: str
    candidates: np.ndarray = field(compare=False)
    value: float
    seconds: float


@dataclass(frozen=True)
class StudyFinished(Event):
    """The loop stopped.

    Attributes:
        reason: ``"budget"`` (spent), ``"cancelled"``, or ``"waiting"`` (a manual objective waits for
            the user's values of the proposed trials).
        best: The best completed trial, if any.
        n_completed: Completed trials.
        n_failed: Failed trials.
    """

    reason: str
    best: Trial | None
    n_completed: int
    n_failed: int
