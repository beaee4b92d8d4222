"""The study engine: the GUI's handle on the study, which runs in a child process.

The GUI talks to :class:`StudyEngine` only; every call returns at once. The engine starts the study
process (:func:`lla_studio.engine.study_server.serve`, ``spawn`` method, named by string through
:func:`lla_studio.engine.child.start_child`: the GUI process never imports the server, nor torch)
the first time it is needed, sends it commands through a pipe (the frozen message types of
:mod:`lla_studio.engine.messages`; the session as its JSON document) and re-emits what comes back on
Qt signals: frozen :class:`StudySnapshot` objects with numpy arrays and plain dicts, surfaces, error
messages. A :class:`PipeReader` ``QThread`` receives them and hands them to the GUI thread through queued
signals. The engine keeps the newest session itself: the loaded one with the newest snapshot's
trials. A message that cannot be sent or received reaches :attr:`StudyEngine.failed` with its reason.

Why not a worker thread: the fits are Python-heavy and would hold the GUI process's GIL, stalling
every repaint (see :mod:`lla_studio.engine.study_server`). The process answers Pause within about a
second even in the middle of a fit (its reader thread sets the cancel token that the fit polls). If
it dies (a crash, killed for memory), the GUI reports it, keeps the newest session and its trials,
and the next command starts a fresh process on that session.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from lla_studio.core.errors import LLAStudioError
from lla_studio.core.session import Session, session_to_dict
from lla_studio.core.surface_types import SurfaceRequest
from lla_studio.engine.child import end_child, start_child
from lla_studio.engine.gui_gc import _acquire_gui_thread_gc, _release_gui_thread_gc
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
from lla_studio.engine.pipe import EndOfPipe, PipeReader
from lla_studio.engine.study_snapshot import StudySnapshot, snapshot_of_session, trials_of_view

__all__ = ["PipeReader", "StudyEngine", "StudySnapshot"]

log = logging.getLogger(__name__)

SERVER = "lla_studio.engine.study_server:serve"


class StudyEngine(QObject):
    """GUI-side controller of the study process.

    Args:
        recovery_path: Where the study process autosaves the session after every completed trial.
        parent: Qt parent.
    """

    snapshot = Signal(object)
    surface = Signal(object)
    failed = Signal(str)
    finished = Signal(str)

    def __init__(self, recovery_path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.recovery_path = recovery_path
        self.session: Session | None = None  # the newest session: loaded, with the newest snapshot's trials
        self._loaded: Session | None = None  # the session of the newest load (its trials as loaded)
        self._load_id = 0
        self.latest_surface_request = 0
        self._surface_requests: dict[int, SurfaceRequest] = {}
        self._proc: Any = None
        self._conn: Any = None
        self._reader: PipeReader | None = None
        self._generation = 0
        self._closing = False
        _acquire_gui_thread_gc()  # GC on the pipe thread could finalize GUI-thread Qt objects
        self._gc_held = True

    # ------------------------------------------------------------------ process
    @property
    def process_alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        """Start the study process (if it is not running) and load the current session into it."""
        if self._proc is not None or self._closing:
            return
        self._generation += 1
        recovery = None if self.recovery_path is None else str(self.recovery_path)
        proc, parent_conn = start_child(SERVER, recovery, name="lla-study")
        self._proc, self._conn = proc, parent_conn
        self._reader = PipeReader(parent_conn, self._generation, parent=self)  # see PipeReader: parent
        self._reader.received.connect(self._on_message)
        self._reader.start()
        if self.session is not None:
            self._send_load(self.session)
            for req in self._surface_requests.values():
                self._raw_send(RequestSurface(req))
            self.snapshot.emit(snapshot_of_session(self.session, "starting"))

    def _send_load(self, session: Session) -> None:
        self._load_id += 1
        self._loaded = session
        try:
            document = session_to_dict(session)
        except (LLAStudioError, TypeError, ValueError) as err:
            self._report(f"engine: the session cannot be sent to the study process: {err}")
            return
        self._raw_send(Load(document, self._load_id))

    def _raw_send(self, msg: Any) -> bool:
        """Send one message; a failure reaches :attr:`failed` with its reason (the window stays usable)."""
        if self._conn is None:
            return False
        try:
            self._conn.send(msg)
            return True
        except Exception as err:  # a closed or broken pipe, or a message that does not pickle: never silent
            self._report(f"engine: could not send {type(msg).__name__} to the study process ({type(err).__name__}: {err})")
        return False

    def _report(self, reason: str, detail: str = "") -> None:
        log.error("%s%s", reason, f"\n{detail}" if detail else "")
        if not self._closing:
            self.failed.emit(reason)

    def _send(self, msg: Any) -> None:
        self.start()
        self._raw_send(msg)

    def _on_message(self, msg: Any) -> None:
        match msg:
            case SnapshotReady(snapshot=snap):
                if snap.load_id != self._load_id:
                    return  # a study of an older load: its trials belong to another session
                self._adopt_trials(snap)
                self.snapshot.emit(snap)
            case SurfaceReady(surface=surf):
                self.surface.emit(surf)
            case Failed(reason=reason, detail=detail):
                self._report(reason, detail)
            case Finished(status=status):
                self.finished.emit(status)
            case EndOfPipe(generation=generation) if generation == self._generation:
                self._process_ended()
            case EndOfPipe():
                pass
            case _:
                self._report(f"engine: unexpected message from the study process: {type(msg).__name__}")

    def _adopt_trials(self, snap: StudySnapshot) -> None:
        """The engine's session becomes the loaded one with the snapshot's trials."""
        if self._loaded is None:
            return
        try:
            self.session = self._loaded.with_trials(trials_of_view(snap.trials))
        except (LLAStudioError, KeyError, TypeError) as err:
            self._report(f"engine: the study process sent trials that do not fit the session: {err}")

    def _process_ended(self) -> None:
        proc, self._proc = self._proc, None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.join(5)
        if self._closing:
            return
        code = None if proc is None else proc.exitcode
        self.failed.emit(
            f"the study process stopped unexpectedly (exit code {code}); the session and its trials are kept, "
            "the next Run or Step starts a fresh process"
        )
        if self.session is not None:
            self.snapshot.emit(snapshot_of_session(self.session, "error"))

    # ------------------------------------------------------------------ commands
    def load(self, session: Session) -> None:
        self.session = session
        self._surface_requests = {}
        if self._proc is not None:
            self._send_load(session)
        else:  # nothing has run yet: the views get the session's trials without starting a process
            snap = snapshot_of_session(session)
            QTimer.singleShot(0, lambda: self.snapshot.emit(snap))

    def run(self, budget: int = 0) -> None:
        self._send(Run(int(budget)))

    def step(self) -> None:
        self._send(Step())

    def pause(self) -> None:
        if self._proc is not None:
            self._raw_send(Pause())  # the process's reader thread cancels a fit in progress
        elif self.session is not None:
            self.snapshot.emit(snapshot_of_session(self.session, "paused"))

    def tell(self, trial_id: int, value: float) -> None:
        if not math.isfinite(value):
            self.failed.emit(f"trial {trial_id}: value must be a finite number")
            return
        self._send(Tell(int(trial_id), float(value)))

    def reject(self, trial_id: int, reason: str = "rejected by the user") -> None:
        self._send(Reject(int(trial_id), reason))

    def add(self, config: dict[str, Any], value: float | None) -> None:
        self._send(Add(dict(config), value))

    def request_surface(self, params: tuple[str, ...], fixed: dict[str, float] | None = None, n: int = 100) -> int:
        """Ask for a slice (one parameter) or map (two) of the newest model; returns the request id."""
        self.latest_surface_request += 1
        req = SurfaceRequest(self.latest_surface_request, tuple(params), dict(fixed or {}), n)
        self._surface_requests[len(req.params)] = req
        if self._proc is not None:  # without a process there is no model yet: sent when it starts
            self._raw_send(RequestSurface(req))
        return self.latest_surface_request

    def shutdown(self) -> None:
        """Stop the study process (cancelling a fit) and the pipe thread."""
        self._closing = True
        proc, conn, reader = self._proc, self._conn, self._reader
        if proc is not None:
            self._raw_send(Pause())
            self._raw_send(Exit())
        end_child(proc, conn, reader, "the study process")
        self._proc = self._conn = self._reader = None
        if self._gc_held:
            self._gc_held = False
            _release_gui_thread_gc()
