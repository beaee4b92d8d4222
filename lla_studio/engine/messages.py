"""The messages between the GUI and its child processes: small frozen types holding plain data.

Nothing live crosses the pipe: a session travels as its versioned JSON document
(:func:`~lla_studio.core.session.session_to_dict`), trials as trial dicts, numbers as numpy arrays,
requests and answers as frozen dataclasses of those. A compiled feature map, a fitted model or a
closure never does (they do not pickle, and a session pickled today would not load tomorrow).
Both ends dispatch with ``match`` on the message type.

To the study process: :class:`Load`, :class:`Run`, :class:`Step`, :class:`Pause`, :class:`Tell`,
:class:`Reject`, :class:`Add`, :class:`RequestSurface`, :class:`Exit`.

From it: :class:`SnapshotReady` (a :class:`~lla_studio.engine.study_snapshot.StudySnapshot`),
:class:`SurfaceReady` (a :class:`~lla_studio.core.surface_types.SurfaceSnapshot`), :class:`Failed`
(one line for the status bar), :class:`Finished` (the status a run ended in).

To the lab process (:mod:`lla_studio.engine.lab_server`; the posterior lab, the ReLU lab and the
kernel editor's prior preview): :class:`Compute`, :class:`Cancel`, :class:`Exit`. Work runs in
*lanes*: one stream of requests per lane where only the newest matters (a controller's kind of
request, e.g. the ReLU lab's ``lab`` and ``rate``), one thread per lane in the child. The job a
:class:`Compute` carries is a frozen request of a torch-free module
(:class:`~lla_studio.core.posterior.snapshot.PosteriorRequest`,
:class:`~lla_studio.engine.lab_jobs.ReluLabRequest`,
:class:`~lla_studio.engine.lab_jobs.PriorPreviewRequest`), and the child dispatches on its type.

From it: :class:`LabStarted` (a lane began the request), :class:`LabAnswer` (one or more per
request: the posterior lab answers in stages), :class:`LabProgress`, :class:`LabFailed`,
:class:`LabEnded` (exactly one per :class:`Compute`, however it ended), and :class:`Failed` for what concerns no request. Every answer
is of a class defined in a torch-free module: unpickling an object imports its class's module, and
the GUI process must never import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Add",
    "Cancel",
    "Compute",
    "Exit",
    "Failed",
    "Finished",
    "LabAnswer",
    "LabEnded",
    "LabFailed",
    "LabProgress",
    "LabStarted",
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
    """End the study process (or the lab process: running work is cancelled first)."""


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


# ----------------------------------------------------------------------- GUI -> lab process
@dataclass(frozen=True)
class Compute:
    """Compute ``job`` on ``lane``: a newer :class:`Compute` on the same lane cancels this one.

    Attributes:
        lane: Which stream of requests (one thread in the lab process per lane).
        request_id: Growing id (the job carries it too); every message about the job names it.
        job: A frozen request of a torch-free module, plain data only.
    """

    lane: str
    request_id: int
    job: Any


@dataclass(frozen=True)
class Cancel:
    """Stop ``request_id`` on ``lane`` (running: its cancel flag is set; waiting: it is dropped)."""

    lane: str
    request_id: int


# ----------------------------------------------------------------------- lab process -> GUI
@dataclass(frozen=True)
class LabStarted:
    """A lane began computing ``request_id`` (until then it waited for the process to start or for
    the lane's previous request to stop)."""

    lane: str
    request_id: int


@dataclass(frozen=True)
class LabAnswer:
    """An answer to a request (a numpy-only snapshot); a request may answer more than once."""

    lane: str
    request_id: int
    answer: Any


@dataclass(frozen=True)
class LabProgress:
    """Progress of a running request (e.g. a BO step of the ReLU lab's boundary rate)."""

    lane: str
    request_id: int
    progress: Any


@dataclass(frozen=True)
class LabFailed:
    """A request failed: ``message`` is one line naming the culprit, ``detail`` (a traceback of an
    unexpected error) is for the log only.

    Attributes:
        stage: Where it failed (the posterior lab's ``"model"``, ``"laplace"``, ``"vi-warm"``,
            ``"vi"``; otherwise the lane's kind).
        error_type: The exception's class name.
    """

    lane: str
    request_id: int
    message: str
    error_type: str
    stage: str = ""
    detail: str = ""


@dataclass(frozen=True)
class LabEnded:
    """The last word on a request: ``outcome`` is ``"completed"``, ``"cancelled"``, ``"failed"``
    or ``"skipped"`` (superseded or cancelled before it started)."""

    lane: str
    request_id: int
    outcome: str
