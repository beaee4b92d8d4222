"""The study engine: a worker on a QThread runs the study loop; a second one serves surfaces.

The GUI talks to :class:`StudyEngine` only. It forwards commands to :class:`StudyWorker` through
queued signals and re-emits what the worker sends: frozen :class:`StudySnapshot` objects with numpy
arrays and plain dicts, never a torch tensor. The loop runs one round (ask + evaluate) per slot call
and schedules the next with a zero-delay timer, so commands (pause, tell, reject, add) are handled
between rounds; a pause also sets the study's cancel token, which fits and acquisition optimization
poll, so it answers within about a second even in the middle of a fit.

:class:`SurfaceWorker` computes slices and maps of the latest fitted model on its own thread,
newest request wins.
"""

from __future__ import annotations

import math
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from lla_studio.core.diagnostics import LOOResult, loo_closed_form
from lla_studio.core.errors import LLAStudioError
from lla_studio.core.session import Session, save_session
from lla_studio.core.study import (
    AcquisitionOptimized,
    CancelToken,
    Study,
    StudyFinished,
    SurrogateFitFailed,
    SurrogateFitted,
    TrialCompleted,
    TrialFailed,
    TrialProposed,
)
from lla_studio.core.surface import SurfaceRequest, SurfaceSnapshot, compute_surface
from lla_studio.engine.gui_gc import _acquire_gui_thread_gc, _release_gui_thread_gc

__all__ = ["StudyEngine", "StudySnapshot", "SurfaceWorker", "StudyWorker"]

_threads_set = False


def _init_threads() -> None:
    """Leave the GUI a core (once per process)."""
    global _threads_set
    if not _threads_set:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        _threads_set = True


@dataclass(frozen=True)
class StudySnapshot:
    """Everything the views need after an engine step (plain data only).

    Attributes:
        trials: One dict per trial: ``id, status, config, value, message, source``.
        best_value: Best value so far (NaN before the first completed trial).
        n_evaluated: Completed + failed trials.
        budget: The loop's budget.
        status: What the engine is doing (``idle``, ``fitting``, ``optimizing``, ``evaluating``,
            ``paused``, ``finished``, ``waiting``).
        hyperparameters: Timeline: ``(n_train, {name: values})`` per fit.
        loo: Leave-one-out of the latest GP fit, or None.
        next_proposal: Encoding of the newest proposal, or None.
        message: A human-readable note (fit failures, errors).
        session: The session with the current trials (frozen; safe to save from any thread).
    """

    trials: tuple[dict[str, Any], ...]
    best_value: float
    n_evaluated: int
    budget: int
    status: str
    hyperparameters: tuple[tuple[int, dict[str, list[float]]], ...] = ()
    loo: LOOResult | None = None
    next_proposal: np.ndarray | None = None
    message: str = ""
    session: Session | None = field(default=None, repr=False, compare=False)


class StudyWorker(QObject):
    """Owns the :class:`Study`; lives on the engine thread."""

    snapshot = Signal(object)
    model_ready = Signal(object)  # (model, train_U, train_Y, minimize) for the surface worker
    failed = Signal(str)
    finished = Signal(str)

    def __init__(self, recovery_path: Path | None = None) -> None:
        super().__init__()
        self.study: Study | None = None
        self.token = CancelToken()
        self.running = False
        self.rounds_left: int | None = None
        self.budget: int | None = None
        self.recovery_path = recovery_path
        self.timeline: list[tuple[int, dict[str, list[float]]]] = []
        self.loo: LOOResult | None = None
        self.next_proposal: np.ndarray | None = None
        self.status = "idle"
        self.message = ""
        self._handed_model: Any = None

    # ------------------------------------------------------------------ commands (queued slots)
    @Slot(object)
    def load(self, session: Session) -> None:
        _init_threads()
        self.running = False
        self.token.cancel()
        try:
            self.study = Study(session)
        except LLAStudioError as err:
            self.study = None
            self.failed.emit(str(err))
            return
        self.token = CancelToken()
        self.timeline = []
        self.loo = None
        self.next_proposal = None
        self.status = "idle"
        self._emit()

    @Slot(int)
    def run(self, budget: int) -> None:
        if self.study is None or self.running:
            return
        self.token = CancelToken()
        self.budget = budget if budget > 0 else None
        self.rounds_left = None
        self.running = True
        QTimer.singleShot(0, self._tick)

    @Slot()
    def step(self) -> None:
        if self.study is None or self.running:
            return
        self.token = CancelToken()
        self.rounds_left = 1
        self.running = True
        QTimer.singleShot(0, self._tick)

    def request_pause(self) -> None:
        """Called directly from the GUI thread: only sets thread-safe flags."""
        self.token.cancel()

    @Slot()
    def pause(self) -> None:
        self.running = False
        self.status = "paused"
        self._emit()

    @Slot(int, float)
    def tell(self, trial_id: int, value: float) -> None:
        self._command(lambda s: s.tell(trial_id, value))

    @Slot(int, str)
    def reject(self, trial_id: int, reason: str) -> None:
        self._command(lambda s: s.reject(trial_id, reason))

    @Slot(object, object)
    def add(self, config: dict[str, Any], value: float | None) -> None:
        self._command(lambda s: s.add(config, value))

    def _command(self, fn: Any) -> None:
        if self.study is None:
            return
        try:
            fn(self.study)
        except LLAStudioError as err:
            self.failed.emit(str(err))
        self._autosave()
        self._emit()

    # ------------------------------------------------------------------ the loop
    def _tick(self) -> None:
        study = self.study
        if study is None or not self.running:
            return
        budget = self.budget or study.budget
        try:
            reason = None
            for event in study.run(cancel=self.token, budget=budget, max_iterations=1):
                reason = self._handle(event)
        except Exception as err:  # shown to the user; the study and its trials stay intact
            self.running = False
            self.status = "error"
            self.message = f"{type(err).__name__}: {err}"
            self.failed.emit(self.message + "\n" + traceback.format_exc(limit=4))
            self._emit()
            return
        if self.rounds_left is not None:
            self.rounds_left -= 1
        if reason in ("budget", "cancelled", "waiting") or (self.rounds_left is not None and self.rounds_left <= 0):
            self.running = False
            self._hand_out_model()  # e.g. paused between the fit and the acquisition
            self.status = {"budget": "finished", "cancelled": "paused", "waiting": "waiting"}.get(reason or "", "idle")
            self._emit()
            self.finished.emit(self.status)
            return
        QTimer.singleShot(0, self._tick)

    def _handle(self, event: Any) -> str | None:
        study = self.study
        assert study is not None
        if isinstance(event, SurrogateFitted):
            self.status = "optimizing"
            self.timeline.append((event.n_train, {k: list(v) for k, v in event.hyperparameters.items()}))
            self.loo = self._loo(event.model)
            self._emit()
        elif isinstance(event, SurrogateFitFailed):
            self.message = f"surrogate fit failed: {event.reason}; space-filling proposal instead"
        elif isinstance(event, AcquisitionOptimized):
            self.next_proposal = np.asarray(event.candidates[0]).copy()
            self._hand_out_model()
        elif isinstance(event, TrialProposed):
            self.status = "evaluating"
            self._emit()
        elif isinstance(event, (TrialCompleted, TrialFailed)):
            self.status = "fitting"
            self._autosave()
            self._emit()
        elif isinstance(event, StudyFinished):
            return event.reason
        return None

    def _hand_out_model(self) -> None:
        """Give the newest fitted model to the surface worker once this thread is done with it."""
        study = self.study
        if study is None or study.last_fit is None or study.last_fit.model is None:
            return
        if study.last_fit.model is self._handed_model:
            return
        self._handed_model = study.last_fit.model
        U, Y = study.training_data()
        self.model_ready.emit((study.last_fit.model, U, Y, study.minimize))

    def _loo(self, model: Any) -> LOOResult | None:
        try:
            return loo_closed_form(model)
        except Exception:  # LOO is a diagnostic (GP only): never stop the loop for it
            return None

    def _autosave(self) -> None:
        if self.recovery_path is not None and self.study is not None:
            try:
                self.recovery_path.parent.mkdir(parents=True, exist_ok=True)
                save_session(self.study.session, self.recovery_path)
            except (OSError, LLAStudioError):
                pass  # autosave is best effort; the user's own file is untouched

    def _emit(self) -> None:
        study = self.study
        if study is None:
            return
        trials = tuple(
            {"id": t.id, "status": t.status, "config": dict(t.config), "value": t.value, "message": t.message, "source": t.source}
            for t in study.trials
        )
        self.snapshot.emit(
            StudySnapshot(
                trials=trials,
                best_value=study.best_value(),
                n_evaluated=study.n_evaluated(),
                budget=self.budget or study.budget,
                status=self.status,
                hyperparameters=tuple(self.timeline),
                loo=self.loo,
                next_proposal=None if self.next_proposal is None else self.next_proposal.copy(),
                message=self.message,
                session=study.session,
            )
        )


class SurfaceWorker(QObject):
    """Computes slices/maps of the newest model; newest request wins."""

    surface = Signal(object)
    failed = Signal(str)

    def __init__(self, space: Any = None) -> None:
        super().__init__()
        self.space = space
        self.model_data: Any = None
        self.pending: dict[int, SurfaceRequest] = {}  # newest request per kind (1-D slice, 2-D map)
        self.latest: dict[int, SurfaceRequest] = {}
        self.scheduled = False

    @Slot(object)
    def set_space(self, space: Any) -> None:
        self.space = space
        self.model_data = None

    @Slot(object)
    def set_model(self, data: Any) -> None:
        self.model_data = data
        self.pending.update(self.latest)  # recompute the views for the new model
        self._schedule()

    @Slot(object)
    def request(self, req: SurfaceRequest) -> None:
        self.pending[len(req.params)] = req
        self.latest[len(req.params)] = req
        self._schedule()

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            QTimer.singleShot(0, self._compute)

    def _compute(self) -> None:
        self.scheduled = False
        if self.model_data is None or self.space is None:
            return
        model, U, Y, minimize = self.model_data
        pending, self.pending = self.pending, {}
        for req in pending.values():
            try:
                snap: SurfaceSnapshot = compute_surface(model, self.space, U, Y, minimize, req)
            except Exception as err:  # shown in the status bar; the views keep their last data
                self.failed.emit(f"surface: {type(err).__name__}: {err}")
                continue
            self.surface.emit(snap)


class StudyEngine(QObject):
    """GUI-side controller: owns two threads and their workers; every call returns at once."""

    snapshot = Signal(object)
    surface = Signal(object)
    failed = Signal(str)
    finished = Signal(str)

    _load = Signal(object)
    _run = Signal(int)
    _step = Signal()
    _pause = Signal()
    _tell = Signal(int, float)
    _reject = Signal(int, str)
    _add = Signal(object, object)
    _surface_request = Signal(object)
    _surface_space = Signal(object)

    def __init__(self, recovery_path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("lla-study")
        self.worker = StudyWorker(recovery_path)
        self.worker.moveToThread(self.thread)
        self.surface_thread = QThread()
        self.surface_thread.setObjectName("lla-surface")
        self.surface_worker = SurfaceWorker()
        self.surface_worker.moveToThread(self.surface_thread)
        self._load.connect(self.worker.load)
        self._run.connect(self.worker.run)
        self._step.connect(self.worker.step)
        self._pause.connect(self.worker.pause)
        self._tell.connect(self.worker.tell)
        self._reject.connect(self.worker.reject)
        self._add.connect(self.worker.add)
        self._surface_request.connect(self.surface_worker.request)
        self._surface_space.connect(self.surface_worker.set_space)
        self.worker.snapshot.connect(self.snapshot)
        self.worker.failed.connect(self.failed)
        self.worker.finished.connect(self.finished)
        self.worker.model_ready.connect(self.surface_worker.set_model)
        self.surface_worker.surface.connect(self.surface)
        self.surface_worker.failed.connect(self.failed)
        _acquire_gui_thread_gc()  # GC from worker threads can finalize GUI-thread Qt objects
        self._gc_held = True
        self.thread.start()
        self.surface_thread.start()
        self.latest_surface_request = 0

    def load(self, session: Session) -> None:
        self._surface_space.emit(session.search_space)
        self._load.emit(session)

    def run(self, budget: int = 0) -> None:
        self._run.emit(int(budget))

    def step(self) -> None:
        self._step.emit()

    def pause(self) -> None:
        self.worker.request_pause()  # thread-safe flag: interrupts a fit in progress
        self._pause.emit()

    def tell(self, trial_id: int, value: float) -> None:
        if not math.isfinite(value):
            self.failed.emit(f"trial {trial_id}: value must be a finite number")
            return
        self._tell.emit(int(trial_id), float(value))

    def reject(self, trial_id: int, reason: str = "rejected by the user") -> None:
        self._reject.emit(int(trial_id), reason)

    def add(self, config: dict[str, Any], value: float | None) -> None:
        self._add.emit(dict(config), value)

    def request_surface(self, params: tuple[str, ...], fixed: dict[str, float] | None = None, n: int = 100) -> int:
        self.latest_surface_request += 1
        self._surface_request.emit(SurfaceRequest(self.latest_surface_request, tuple(params), dict(fixed or {}), n))
        return self.latest_surface_request

    def shutdown(self) -> None:
        self.worker.request_pause()
        for t in (self.thread, self.surface_thread):
            t.quit()
            t.wait(10_000)
        if self._gc_held:
            self._gc_held = False
            _release_gui_thread_gc()
