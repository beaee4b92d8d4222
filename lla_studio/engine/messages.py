"""The messages between the GUI and the study process: small frozen types holding plain data.

Nothing live crosses the pipe: a session travels as its versioned JSON document
(:func:`~lla_studio.core.session.session_to_dict`), trials as trial dicts, numbers as numpy arrays,
requests and answers as frozen dataclasses of those. A compiled feature map, a fitted model or a
closure never does (they do not pickle, and a session pickled today would not load tomorrow).
Both ends dispatch with ``match`` on the message type.

To the study process: :class:`Load`, :class:`Run`, :class:`Step`, :class:`Pause`, :class:`Tell`,
:class:`Reject`, :class:`Add`, :class:`RequestSurface`, :class:`Exit`.

From it: :class:`SnapshotReady` (a :class:`~lla_studio.engine.study_server.StudySnapshot`),
:class:`SurfaceReady` (a :class:`~lla_studio.core.surface.SurfaceSnapshot`), :class:`Failed` (one
line for the status bar), :class:`Finished` (the status a run ended in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Add",
    "Exit",
    "Failed",
    "Finished",
    "Load",
    "Pause",
    "Reject",
    "RequestSurface",
    "Run",
    "SnapshotReady",
    "Step",
    "SurfaceReady",
    "Tell",
]


# ----------------------------------------------------------------------- GUI -> study process
@dataclass(frozen=True)
class Load:
    """Start a study on a session.

    Attributes:
        document: The session as its JSON document (``session_to_dict``).
        load_id: Growing id of the load; snapshots carry it, so the GUI drops those of an older load.
    """

    document: Mapping[str, Any]
    load_id: int


@dataclass(frozen=True)
class Run:
    """Run until ``budget`` evaluations (0: the session's budget)."""

    budget: int = 0


@dataclass(frozen=True)
class Step:
    """One round: ask (fit + acquisition) and evaluate."""


@dataclass(frozen=True)
class Pause:
    """Stop the run; a fit in progress is cancelled."""


@dataclass(frozen=True)
class Tell:
    """The measured value of a pending trial."""

    trial_id: int
    value: float


@dataclass(frozen=True)
class Reject:
    """Drop a pending trial."""

    trial_id: int
    reason: str = "rejected by the user"


@dataclass(frozen=True)
class Add:
    """A configuration chosen by the user, with its value or as a pending proposal."""

    config: Mapping[str, Any]
    value: float | None = None


@dataclass(frozen=True)
class RequestSurface:
    """A slice or map of the newest model (a :class:`~lla_studio.core.surface.SurfaceRequest`)."""

    request: Any


@dataclass(frozen=True)
class Exit:
    """End the study process."""


# ----------------------------------------------------------------------- study process -> GUI
@dataclass(frozen=True)
class SnapshotReady:
    snapshot: Any


@dataclass(frozen=True)
class SurfaceReady:
    surface: Any


@dataclass(frozen=True)
class Failed:
    """Something went wrong; ``reason`` is one line for the status bar, ``detail`` for the log."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Finished:
    status: str
