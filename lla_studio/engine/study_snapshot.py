"""What the study process tells the GUI after every step: a frozen snapshot of plain data.

:class:`StudySnapshot` is built in the study process (:mod:`lla_studio.engine.study_server`) and
read in the GUI process, which also builds one itself for a session nothing has run on yet
(:func:`snapshot_of_session`). Torch-free, so the GUI can unpickle it: its trials are plain dicts,
its numbers numpy arrays, its leave-one-out a :class:`~lla_studio.core.loo_result.LOOResult`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RECENT_PROPOSALS", "StudySnapshot", "snapshot_of_session", "trial_view", "trials_of_view"]


@dataclass(frozen=True)
class StudySnapshot:
    """Everything the views need after an engine step (plain data only).

    Attributes:
        trials: One dict per trial: ``id, status, config, value, message, source, seconds,
            boundary`` (the parameters at an end of their range, e.g. ``("x1 low",)``).
        best_value: Best value so far (NaN before the first completed trial).
        n_evaluated: Completed + failed trials.
        budget: The loop's budget.
        status: What the engine is doing (``idle``, ``starting``, ``fitting``, ``optimizing``,
            ``evaluating``, ``paused``, ``finished``, ``waiting``, ``error``).
        hyperparameters: Timeline: ``(n_train, {name: values})`` per fit.
        loo: Leave-one-out of the latest GP fit, or None.
        next_proposal: Encoding of the newest proposal, or None.
        message: A human-readable note (fit failures, errors).
        boundary: ``(on_boundary, proposals, recent_on_boundary, recent)``: model-based proposals
            touching the box boundary, overall and among the last :data:`RECENT_PROPOSALS`.
        load_id: The :class:`~lla_studio.engine.messages.Load` this study came from (0: a session
            nothing has run on); the GUI drops snapshots of an older load.
    """

    trials: tuple[dict[str, Any], ...]
    best_value: float
    n_evaluated: int
    budget: int
    status: str
    hyperparameters: tuple[tuple[int, dict[str, list[float]]], ...] = ()
    loo: Any = None
    next_proposal: np.ndarray | None = None
    message: str = ""
    boundary: tuple[int, int, int, int] = (0, 0, 0, 0)
    load_id: int = 0


RECENT_PROPOSALS = 10


def trial_view(trials: Any, session: Any) -> tuple[tuple[dict[str, Any], ...], tuple[int, int, int, int]]:
    """Plain trial dicts and the boundary counts of :attr:`StudySnapshot.boundary`. A pool-based
    study chooses among fixed candidates (there is no box to run off): no boundary is marked."""
    from lla_studio.core.objectives.pool_based import is_pool_based

    space = None if is_pool_based(session.objective) else session.search_space
    dicts = tuple(
        {
            "id": t.id, "status": t.status, "config": dict(t.config), "value": t.value, "message": t.message,
            "source": t.source, "seconds": t.seconds, "metrics": dict(t.metrics),
            "worker": t.worker, "started_at": t.started_at, "finished_at": t.finished_at,
            "completed_order": t.completed_order,
            "boundary": space.boundary_hits(t.config) if space is not None else (),
        }
        for t in trials
    )
    flags = [bool(t["boundary"]) for t in dicts if t["source"] == "model"]
    recent = flags[-RECENT_PROPOSALS:]
    return dicts, (sum(flags), len(flags), sum(recent), len(recent))


def trials_of_view(trials: Any) -> tuple[Any, ...]:
    """The :class:`~lla_studio.core.specs.Trial` objects of a snapshot's trial dicts."""
    from lla_studio.core.specs import Trial

    keys = ("id", "config", "status", "value", "message", "source", "seconds")
    extra = ("worker", "started_at", "finished_at", "completed_order")  # parallel runs only
    return tuple(
        Trial(**{k: t[k] for k in keys}, metrics=t.get("metrics", {}), **{k: t[k] for k in extra if t.get(k) is not None})
        for t in trials
    )


def snapshot_of_session(session: Any, status: str = "idle", budget: int | None = None) -> StudySnapshot:
    """The snapshot of a session that nothing has run on yet (the GUI shows it before the study
    process exists). Same numbers as :class:`~lla_studio.core.study.Study` would give."""
    trials = session.trials
    values = [t.value for t in trials if t.status == "completed"]
    if values:
        best = min(values) if session.objective.direction == "minimize" else max(values)
    else:
        best = math.nan
    dicts, boundary = trial_view(trials, session)
    return StudySnapshot(
        trials=dicts,
        best_value=float(best),
        n_evaluated=sum(t.status in ("completed", "failed") for t in trials),
        budget=budget or session.loop.budget,
        status=status,
        boundary=boundary,
    )
