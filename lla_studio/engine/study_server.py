"""The study loop in its own process: no Qt here, only the core and a pipe.

Why a process: fitting and acquisition optimization are Python-heavy (BoTorch, gpytorch, scipy
callbacks). On a thread of the GUI process they hold the GIL for most of every millisecond, and
every paint of a pyqtgraph view (itself Python) then waits for GIL hand-offs: we measured 100-360 ms
event-loop stalls with the study on a QThread. In a child process the GUI's interpreter is free.

:func:`serve` runs in the child (started with the ``spawn`` method by
:class:`lla_studio.engine.study_worker.StudyEngine`). It reads commands from the pipe on a reader
thread, runs the study one round (ask + evaluate) at a time on its main thread, answering commands
between rounds, and computes slices/maps of the newest model on a third thread (newest request per
kind wins). Everything it sends back is plain data: :class:`StudySnapshot`,
:class:`~lla_studio.core.surface.SurfaceSnapshot`, strings.

The messages both ways are the frozen types of :mod:`lla_studio.engine.messages`: a session arrives
as its JSON document, trials leave as plain dicts. A :class:`~lla_studio.engine.messages.Pause`
cancels the running fit at once (the reader thread sets the cancel token that fits and optimizers
poll). Anything that cannot be sent is reported as a :class:`~lla_studio.engine.messages.Failed`
instead of being lost.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lla_studio.engine.messages import (
    Add,
    Exit,
    Failed,
    Finished,
    Load,
    Pause,
    Reject,
    RequestSurface,
    Run,
    SnapshotReady,
    Step,
    SurfaceReady,
    Tell,
)

__all__ = ["StudySnapshot", "serve", "snapshot_of_session", "trials_of_view"]


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


def _trial_view(trials: Any, session: Any) -> tuple[tuple[dict[str, Any], ...], tuple[int, int, int, int]]:
    """Plain trial dicts and the boundary counts of :attr:`StudySnapshot.boundary`. A pool-based
    study chooses among fixed candidates (there is no box to run off): no boundary is marked."""
    from lla_studio.core.objectives import is_pool_based

    space = None if is_pool_based(session.objective) else session.search_space
    dicts = tuple(
        {
            "id": t.id, "status": t.status, "config": dict(t.config), "value": t.value, "message": t.message,
            "source": t.source, "seconds": t.seconds, "metrics": dict(t.metrics),
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
    return tuple(Trial(**{k: t[k] for k in keys}, metrics=t.get("metrics", {})) for t in trials)


def snapshot_of_session(session: Any, status: str = "idle", budget: int | None = None) -> StudySnapshot:
    """The snapshot of a session that nothing has run on yet (the GUI shows it before the study
    process exists). Same numbers as :class:`~lla_studio.core.study.Study` would give."""
    trials = session.trials
    values = [t.value for t in trials if t.status == "completed"]
    if values:
        best = min(values) if session.objective.direction == "minimize" else max(values)
    else:
        best = math.nan
    dicts, boundary = _trial_view(trials, session)
    return StudySnapshot(
        trials=dicts,
        best_value=float(best),
        n_evaluated=sum(t.status in ("completed", "failed") for t in trials),
        budget=budget or session.loop.budget,
        status=status,
        boundary=boundary,
    )


class _Server:
    """Owns the study in the child process."""

    def __init__(self, conn: Any, recovery_path: Path | None) -> None:
        from lla_studio.core.study import CancelToken

        self.conn = conn
        self.send_lock = threading.Lock()
        self.commands: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.recovery_path = recovery_path
        self.study: Any = None
        self.token = CancelToken()
        self.running = False
        self.rounds_left: int | None = None
        self.budget: int | None = None
        self.timeline: list[tuple[int, dict[str, list[float]]]] = []
        self.loo: Any = None
        self.next_proposal: np.ndarray | None = None
        self.status = "idle"
        self.message = ""
        self._handed_model: Any = None
        self.load_id = 0
        # surfaces: newest request per kind (1-D slice, 2-D map); recomputed for every new model
        self.surface_cv = threading.Condition()
        self.surface_pending: dict[int, Any] = {}
        self.surface_latest: dict[int, Any] = {}
        self.surface_model: Any = None
        self.space: Any = None
        self.alive = True

    # ------------------------------------------------------------------ plumbing
    def send(self, msg: Any) -> None:
        """Send one message; one that cannot be pickled is reported instead of lost."""
        with self.send_lock:
            try:
                self.conn.send(msg)
            except (OSError, EOFError, BrokenPipeError):
                self.alive = False  # the GUI is gone; the main loop exits
            except Exception as err:  # pickling: a bug, reported (the send itself wrote nothing)
                try:
                    self.conn.send(Failed(f"engine: could not send a {type(msg).__name__}: {type(err).__name__}: {err}"))
                except Exception:
                    self.alive = False

    def fail(self, reason: str, detail: str = "") -> None:
        self.send(Failed(reason.splitlines()[0] if reason else "error", detail))

    def read_commands(self) -> None:
        """Reader thread: pause and surface requests act at once; the rest is queued in order."""
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                msg = Exit()
            except Exception as err:  # a message that cannot be unpickled: report, keep reading
                self.fail(f"engine: a command could not be read: {type(err).__name__}: {err}")
                continue
            match msg:
                case Pause():
                    self.token.cancel()
                case RequestSurface(request=req):
                    with self.surface_cv:
                        self.surface_pending[len(req.params)] = req
                        self.surface_latest[len(req.params)] = req
                        self.surface_cv.notify()
                    continue
                case Exit():
                    self.token.cancel()
                    with self.surface_cv:
                        self.alive = False
                        self.surface_cv.notify()
                    self.commands.put(msg)
                    return
            self.commands.put(msg)

    def serve_surfaces(self) -> None:
        """Surface thread: slices and maps of the newest model, newest request wins."""
        from lla_studio.core.surface import compute_surface

        while True:
            with self.surface_cv:
                while self.alive and not (self.surface_pending and self.surface_model is not None and self.space is not None):
                    self.surface_cv.wait()
                if not self.alive:
                    return
                pending, self.surface_pending = self.surface_pending, {}
                model, U, Y, minimize, acquisition = self.surface_model
                space = self.space
            for req in pending.values():
                try:
                    snap = compute_surface(model, space, U, Y, minimize, req, acquisition)
                except Exception as err:  # shown in the status bar; the views keep their last data
                    self.fail(f"surface: {type(err).__name__}: {err}", traceback.format_exc(limit=4))
                    continue
                self.send(SurfaceReady(snap))

    # ------------------------------------------------------------------ main loop
    def main_loop(self) -> None:
        while self.alive:
            if self.running:
                try:
                    msg = self.commands.get_nowait()
                except queue.Empty:
                    self._tick()
                    continue
            else:
                msg = self.commands.get()
            try:
                match msg:
                    case Exit():
                        return
                    case Load(document=document, load_id=load_id):
                        self._cmd_load(document, load_id)
                    case Run(budget=budget):
                        self._cmd_run(budget)
                    case Step():
                        self._cmd_step()
                    case Pause():
                        self._cmd_pause()
                    case Tell(trial_id=trial_id, value=value):
                        self._command(lambda s: s.tell(trial_id, value))
                    case Reject(trial_id=trial_id, reason=reason):
                        self._command(lambda s: s.reject(trial_id, reason))
                    case Add(config=config, value=value):
                        self._command(lambda s: s.add(config, value))
                    case _:
                        self.fail(f"engine: unknown command {type(msg).__name__}")
            except Exception as err:  # a bug must not take the session with it
                self.fail(f"{type(err).__name__}: {err}", traceback.format_exc(limit=4))

    def _cmd_load(self, document: Any, load_id: int) -> None:
        from lla_studio.core.errors import LLAStudioError
        from lla_studio.core.session import session_from_dict
        from lla_studio.core.study import CancelToken, Study

        self.running = False
        self.token.cancel()
        self.load_id = load_id
        with self.surface_cv:
            self.space = None
            self.surface_model = None
            self.surface_pending = {}
        try:
            session = session_from_dict(document)
            self.study = Study(session)
        except LLAStudioError as err:
            self.study = None
            self.fail(str(err))
            return
        with self.surface_cv:
            self.space = session.search_space
        self.token = CancelToken()
        self.timeline = []
        self.loo = None
        self.next_proposal = None
        self._handed_model = None
        self.status = "idle"
        self.message = ""
        self._emit()

    def _cmd_run(self, budget: int) -> None:
        from lla_studio.core.study import CancelToken

        if self.study is None or self.running:
            return
        self.token = CancelToken()
        self.budget = budget if budget > 0 else None
        self.rounds_left = None
        self.running = True

    def _cmd_step(self) -> None:
        from lla_studio.core.study import CancelToken

        if self.study is None or self.running:
            return
        self.token = CancelToken()
        self.rounds_left = 1
        self.running = True

    def _cmd_pause(self) -> None:
        self.running = False
        self.status = "paused"
        self._emit()

    def _command(self, fn: Any) -> None:
        from lla_studio.core.errors import LLAStudioError

        if self.study is None:
            return
        try:
            fn(self.study)
        except LLAStudioError as err:
            self.fail(str(err))
        self._autosave()
        self._emit()

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
            self.fail(self.message, traceback.format_exc(limit=4))
            self._emit()
            return
        if self.rounds_left is not None:
            self.rounds_left -= 1
        if reason in ("budget", "cancelled", "waiting") or (self.rounds_left is not None and self.rounds_left <= 0):
            self.running = False
            self._hand_out_model()  # e.g. paused between the fit and the acquisition
            self.status = {"budget": "finished", "cancelled": "paused", "waiting": "waiting"}.get(reason or "", "idle")
            self._emit()
            self.send(Finished(self.status))

    def _handle(self, event: Any) -> str | None:
        from lla_studio.core.study import (
            AcquisitionOptimized,
            StudyFinished,
            SurrogateFitFailed,
            SurrogateFitted,
            TrialCompleted,
            TrialFailed,
            TrialProposed,
        )

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
        """Give the newest fitted model to the surface thread once the loop is done with it."""
        study = self.study
        if study is None or study.last_fit is None or study.last_fit.model is None:
            return
        if study.last_fit.model is self._handed_model:
            return
        self._handed_model = study.last_fit.model
        U, Y = study.training_data()
        with self.surface_cv:
            self.surface_model = (study.last_fit.model, U, Y, study.minimize, study.acquisition)
            self.surface_pending.update(self.surface_latest)  # recompute the views for the new model
            self.surface_cv.notify()

    def _loo(self, model: Any) -> Any:
        from lla_studio.core.diagnostics import loo_closed_form, loo_linearized
        from lla_studio.core.surrogates.lla import LinearizedLaplaceModel
        from lla_studio.core.surrogates.lla_fit import FeatureSpaceModel

        try:
            if isinstance(model, FeatureSpaceModel):
                model = model.inner  # the LLA on the features; LOO lives on its training data
            if isinstance(model, LinearizedLaplaceModel):
                return loo_linearized(model)
            return loo_closed_form(model)
        except Exception:  # LOO is a diagnostic: never stop the loop for it
            return None

    def _autosave(self) -> None:
        from lla_studio.core.errors import LLAStudioError
        from lla_studio.core.session import save_session

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
        session = study.session
        trials, boundary = _trial_view(session.trials, session)
        self.send(
            SnapshotReady(StudySnapshot(
                trials=trials,
                best_value=study.best_value(),
                n_evaluated=study.n_evaluated(),
                budget=self.budget or study.budget,
                status=self.status,
                hyperparameters=tuple(self.timeline),
                loo=self.loo,
                next_proposal=None if self.next_proposal is None else self.next_proposal.copy(),
                message=self.message,
                boundary=boundary,
                load_id=self.load_id,
            )),
        )


def serve(conn: Any, recovery_path: str | None, threads: int | None = None) -> None:
    """Entry point of the study process: serve commands from ``conn`` until ``exit`` or EOF.

    Args:
        conn: The child's end of a duplex ``multiprocessing.Pipe``.
        recovery_path: Where to autosave the session after every completed trial (None: never).
        threads: torch intra-op threads (default: ``cpu_count - 1``, leaving the GUI a core).
    """
    import torch

    if hasattr(os, "nice"):  # background work: on a busy machine the GUI process gets the CPU first
        try:
            os.nice(5)
        except OSError:
            pass
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 2) - 1))
    from lla_studio.core.process import prepare_study_process

    prepare_study_process()  # freed tensors stay mapped; full collections skip the imported stack
    server = _Server(conn, Path(recovery_path) if recovery_path else None)
    reader = threading.Thread(target=server.read_commands, name="lla-commands", daemon=True)
    surfaces = threading.Thread(target=server.serve_surfaces, name="lla-surfaces", daemon=True)
    reader.start()
    surfaces.start()
    try:
        server.main_loop()
    finally:
        server.alive = False
        server.token.cancel()
        with server.surface_cv:
            server.surface_cv.notify()
        surfaces.join(10)  # let a surface in progress finish: torch aborts if its threads die mid-op
        try:
            conn.close()
        except OSError:
            pass
