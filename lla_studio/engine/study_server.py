"""The study loop in its own process: no Qt here, only the core and a pipe.

Why a process: fitting and acquisition optimization are Python-heavy (BoTorch, gpytorch, scipy
callbacks). On a thread of the GUI process they hold the GIL for most of every millisecond, and
every paint of a pyqtgraph view (itself Python) then waits for GIL hand-offs: we measured 100-360 ms
event-loop stalls with the study on a QThread. In a child process the GUI's interpreter is free.

:func:`serve` runs in the child (started with the ``spawn`` method by
:class:`lla_studio.engine.study_worker.StudyEngine`, by name: the GUI never imports this module).
It reads commands from the pipe on a reader thread, runs the study one round (ask + evaluate) at a
time on its main thread, answering commands between rounds, and computes slices/maps of the newest
model on a third thread (newest request per kind wins). Everything it sends back is plain data: :class:`StudySnapshot`,
:class:`~lla_studio.core.surface_types.SurfaceSnapshot`, strings.

The messages both ways are the frozen types of :mod:`lla_studio.engine.messages`: a session arrives
as its JSON document, trials leave as plain dicts. A :class:`~lla_studio.engine.messages.Pause`
cancels the running fit at once (the reader thread sets the cancel token that fits and optimizers
poll). Anything that cannot be sent is reported as a :class:`~lla_studio.engine.messages.Failed`
instead of being lost.
"""

from __future__ import annotations

import queue
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from lla_studio.engine import messages as msg_types
from lla_studio.engine.study_snapshot import (  # the snapshot types, re-exported
    StudySnapshot,
    trial_view,
    snapshot_of_session,
    trials_of_view,
)

__all__ = ["StudySnapshot", "serve", "snapshot_of_session", "trials_of_view"]


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
        self.refit_pending = False  # a section change left the study without a fitted model
        # parallel sessions: one Dask executor kept open across runs (a run's start would
        # otherwise start a local cluster, and a pause would end its running trials' workers)
        self.executor: Any = None
        self.executor_key: Any = None
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
                    self.conn.send(msg_types.Failed(f"engine: could not send a {type(msg).__name__}: {type(err).__name__}: {err}"))
                except Exception:
                    self.alive = False

    def fail(self, reason: str, detail: str = "") -> None:
        self.send(msg_types.Failed(reason.splitlines()[0] if reason else "error", detail))

    def read_commands(self) -> None:
        """Reader thread: pause and surface requests act at once; the rest is queued in order."""
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                msg = msg_types.Exit()
            except Exception as err:  # a message that cannot be unpickled: report, keep reading
                self.fail(f"engine: a command could not be read: {type(err).__name__}: {err}")
                continue
            match msg:
                case msg_types.Pause():
                    self.token.cancel()
                case msg_types.RequestSurface(request=req):
                    with self.surface_cv:
                        self.surface_pending[len(req.params)] = req
                        self.surface_latest[len(req.params)] = req
                        self.surface_cv.notify()
                    continue
                case msg_types.Exit():
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
                self.send(msg_types.SurfaceReady(snap))

    # ------------------------------------------------------------------ main loop
    def main_loop(self) -> None:
        while self.alive:
            if self.running or self.refit_pending:
                try:
                    msg = self.commands.get_nowait()
                except queue.Empty:
                    if self.running:
                        self._tick()
                    else:
                        self._refit()  # after the newest of a burst of edits only
                    continue
            else:
                msg = self.commands.get()
            try:
                match msg:
                    case msg_types.Exit():
                        return
                    case msg_types.Load(document=document, load_id=load_id):
                        self._cmd_load(document, load_id)
                    case msg_types.Run(budget=budget):
                        self._cmd_run(budget)
                    case msg_types.Step():
                        self._cmd_step()
                    case msg_types.Pause():
                        self._cmd_pause()
                    case msg_types.Tell(trial_id=trial_id, value=value):
                        self._command(lambda s: s.tell(trial_id, value))
                    case msg_types.Reject(trial_id=trial_id, reason=reason):
                        self._command(lambda s: s.reject(trial_id, reason))
                    case msg_types.Add(config=config, value=value):
                        self._command(lambda s: s.add(config, value))
                    case _:
                        self.fail(f"engine: unknown command {type(msg).__name__}")
            except Exception as err:  # a bug must not take the session with it
                self.fail(f"{type(err).__name__}: {err}", traceback.format_exc(limit=4))

    def _cmd_load(self, document: Any, load_id: int) -> None:
        """A session arrives. Where it is the same study (search space and objective) with other
        sections, the study keeps what they leave valid (:meth:`Study.reconfigure`): a seed, budget
        or acquisition change keeps the fitted model and its views; a kernel, transform or surrogate
        change refits at once on the same trials and keeps the hyperparameter history and the LOO
        view (the history starts anew only with another kind of surrogate). Anything else is a new
        study with empty views."""
        from lla_studio.core.errors import LLAStudioError
        from lla_studio.core.session import session_from_dict
        from lla_studio.core.study import CancelToken, Study

        self.running = False
        self.token.cancel()
        self.load_id = load_id
        try:
            session = session_from_dict(document)
            old = self.study.session if self.study is not None else None
            changed = self.study.reconfigure(session) if self.study is not None else None
            if changed is None:
                study = Study(session)
        except LLAStudioError as err:
            self.study = None
            self._reset_views()
            self.fail(str(err))
            return
        self.token = CancelToken()
        self.status = "idle"
        self.message = ""
        if changed is None:
            self.study = study
            self._reset_views()
            if not session.loop.parallel:
                self.close_executor()  # another study that evaluates in this process
            with self.surface_cv:
                self.space = session.search_space
        else:
            assert old is not None
            if session.surrogate.type != old.surrogate.type:
                self.timeline, self.loo = [], None  # another model's hyperparameters and scores
            if self.study.last_fit is None:
                self.refit_pending = True  # the new model of the same trials, fitted when idle
        self._emit()

    def _reset_views(self) -> None:
        """Nothing of the previous study stays: no history, LOO, proposal or model for surfaces."""
        self.timeline = []
        self.loo = None
        self.next_proposal = None
        self._handed_model = None
        self.refit_pending = False
        with self.surface_cv:
            self.space = None
            self.surface_model = None
            self.surface_pending = {}

    def _refit(self) -> None:
        """Fit the (changed) surrogate to the trials as they are, between commands, and show it."""
        from lla_studio.core.errors import Cancelled, SurrogateFitError

        self.refit_pending = False
        study = self.study
        if study is None or study.last_fit is not None or not study.completed():
            return  # nothing to fit, or a run fitted it meanwhile
        try:
            event = study.fit_surrogate(cancel=self.token)
        except Cancelled:
            return
        except SurrogateFitError as err:
            self.message = f"surrogate fit failed: {err}"
            self._emit()
            return
        self.timeline.append((event.n_train, {k: list(v) for k, v in event.hyperparameters.items()}))
        self.loo = self._loo(event.model)
        self._hand_out_model()
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
        parallel = study.session.loop.parallel
        try:
            reason = None
            if parallel:
                study.use_executor(self._open_executor(study))
            # a parallel run goes on until the budget, a pause or a step's one proposal round: its
            # trials keep running on the workers between the events, so it is not cut into ticks
            rounds = self.rounds_left if parallel else 1
            for event in study.run(cancel=self.token, budget=budget, max_iterations=rounds):
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
            self.send(msg_types.Finished(self.status))

    def _open_executor(self, study: Any) -> Any:
        """The executor for the study's loop settings, opened at its first run and kept."""
        from lla_studio.core.executors import open_executor

        loop = study.session.loop
        key = (loop.executor, loop.workers)
        if self.executor is not None and self.executor_key != key:
            self.close_executor()
        if self.executor is None:
            self.status = "starting workers"
            self._emit()
            self.executor = open_executor(loop.executor, loop.workers)
            self.executor_key = key
        return self.executor

    def close_executor(self) -> None:
        executor, self.executor, self.executor_key = self.executor, None, None
        if executor is not None:
            try:
                executor.close()
            except Exception:  # closing a cluster that already went away
                pass

    def _handle(self, event: Any) -> str | None:
        from lla_studio.core import study_events as ev


        if isinstance(event, ev.SurrogateFitted):
            self.status = "optimizing"
            self.timeline.append((event.n_train, {k: list(v) for k, v in event.hyperparameters.items()}))
            self.loo = self._loo(event.model)
            self._emit()
        elif isinstance(event, ev.SurrogateFitFailed):
            self.message = f"surrogate fit failed: {event.reason}; space-filling proposal instead"
        elif isinstance(event, ev.AcquisitionOptimized):
            self.next_proposal = np.asarray(event.candidates[0]).copy()
            self._hand_out_model()
        elif isinstance(event, (ev.TrialProposed, ev.TrialStarted)):
            self.status = "evaluating"
            self._emit()
        elif isinstance(event, (ev.TrialCompleted, ev.TrialFailed)):
            self.status = "fitting"
            self._autosave()
            self._emit()
        elif isinstance(event, ev.StudyFinished):
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

        try:
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
        trials, boundary = trial_view(session.trials, session)
        self.send(
            msg_types.SnapshotReady(StudySnapshot(
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
    from lla_studio.core.process import prepare_background_process, prepare_study_process

    prepare_background_process(threads)  # nice 5, torch threads = cpu_count - 1
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
        server.close_executor()
        with server.surface_cv:
            server.surface_cv.notify()
        surfaces.join(10)  # let a surface in progress finish: torch aborts if its threads die mid-op
        try:
            conn.close()
        except OSError:
            pass
