"""Error types of the core. Every message names its culprit (a parameter, a JSON path, a node)."""

from __future__ import annotations


class LLAStudioError(Exception):
    """Base class of every error the core raises on purpose."""


class SearchSpaceError(LLAStudioError, ValueError):
    """An impossible search space or an invalid configuration."""


class TransformError(LLAStudioError, ValueError):
    """A feature transform chain that does not fit its search space."""


class KernelGraphError(LLAStudioError, ValueError):
    """An invalid kernel graph; the message names the offending node."""

    def __init__(self, message: str, node_id: str | None = None) -> None:
        super().__init__(message)
        self.node_id = node_id


class SessionError(LLAStudioError, ValueError):
    """A malformed session document; the message starts with the JSON path of the culprit."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


class SurrogateFitError(LLAStudioError, RuntimeError):
    """A surrogate fit that failed numerically (non-PD matrix, NaN loss, ...)."""


class ObjectiveError(LLAStudioError, RuntimeError):
    """An objective that cannot be imported, raised, or returned a non-finite value."""


class BenchmarkOptionError(ObjectiveError):
    """A benchmark name or option a session cannot run; ``field`` is its path below the objective
    (``"name"``, ``"options"``, ``"options.dim"``), ``reason`` the message without it."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(f"objective.{field}: {reason}")
        self.reason = reason
        self.field = field


class NetworkSpecError(LLAStudioError, ValueError):
    """An invalid network specification of an LLA surrogate; the message names the offending field."""


class LLASettingsError(LLAStudioError, ValueError):
    """Invalid LLA fit settings; the message names the field."""


class ReluLabError(LLAStudioError, ValueError):
    """Invalid ReLU-lab settings; the message names the field."""


class StudyError(LLAStudioError, ValueError):
    """An invalid study operation (a tell for an unknown trial, budget < initial design, ...)."""


class ExecutorError(LLAStudioError, RuntimeError):
    """Parallel evaluation that cannot start or go on: a Dask scheduler address that does not
    answer, or answers as something else; a cluster without workers; an objective that cannot be
    sent to the workers or imported there. The message names the address or the worker."""


class PosteriorError(LLAStudioError, ValueError):
    """A posterior-lab problem: bad box, bad expression, a Hessian that is not negative definite."""


class LabProcessError(LLAStudioError, RuntimeError):
    """The lab process (where the labs and the prior preview compute) failed as a whole: it exited,
    or a request could not be sent to it or an answer read from it. The message is one line."""


class Cancelled(LLAStudioError):
    """A long computation (fit, acquisition optimization, VI) stopped because its cancel token fired."""


class FitCancelled(Cancelled, RuntimeError):
    """A surrogate fit (GP hyperparameters, MAP training, LLA tuning) was cancelled; the model was
    left unfitted."""


class AcquisitionCancelled(Cancelled):
    """Acquisition optimization (or pool scoring) was cancelled."""


class ReluLabCancelled(Cancelled):
    """A ReLU-lab computation was cancelled."""
