"""The study engine: the GUI's handle on the study, which runs in a child process.

The GUI talks to :class:`StudyEngine` only; every call returns at once. The engine starts the study
process (:func:`lla_studio.engine.study_server.serve`, ``spawn`` method) the first time it is needed,
sends it commands through a pipe and re-emits what comes back on Qt signals: frozen
:class:`StudySnapshot` objects with numpy arrays and plain dicts, surfaces, error messages. A
:class:`PipeReader` ``QThread`` receives them and hands them to the GUI thread through queued
signals.

Why not a worker thread: the fits are Python-heavy and would hold the GUI process's GIL, stalling
every repaint (see :mod:`lla_studio.engine.study_server`). The process answers Pause within about a
second even in the middle of a fit (its reader thread sets the cancel token that the fit polls). If
it dies (a crash, killed for memory), the GUI reports it, keeps the newest session and its trials,
and the next command starts a fresh process on that session.
"""

from __future__ import annotations

import math
import multiprocessing as mp
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from lla_studio.core.session import Session
from lla_studio.core.surface import SurfaceRequest
from lla_studio.engine.gui_gc import _acquire_gui_thread_gc, _release_gui_thread_gc
from lla_studio.engine.study_server import StudySnapshot, serve, snapshot_of_session

__all__ = ["PipeReader", "StudyEngine", "StudySnapshot"]


class PipeReader(QThread):
    """Receives the study process's messages and emits them (queued to the GUI thread)."""

    received = Signal(object)

    def __init__(self, conn: Any, generation: int) -> None:
        super().__init__()
        self.setObjectName("lla-study-pipe")
        self.conn = conn
        self.generation = generation

    def run(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.received.emit(("eof", self.generation))
                return
            except Exception as err:  # an object that cannot be unpickled: report, keep reading
                msg = ("failed", f"engine: a message from the study process could not be read: {type(err).__name__}: {err}")
            self.received.emit(msg)


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
        self.session: Session | None = None  # the newest session: loaded, or from the newest snapshot
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
        ctx = mp.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        self._generation += 1
        proc = ctx.Process(
            target=serve,
            args=(child_conn, None if self.recovery_path is None else str(self.recovery_path)),
            name="lla-study",
            daemon=False,  # a user objective with a time-out starts its own process
        )
        proc.start()
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        self._reader = PipeReader(parent_conn, self._generation)
        self._reader.received.connect(self._on_message)
        self._reader.start()
        if self.session is not None:
            self._raw_send("load", self.session)
            for req in self._surface_requests.values():
                self._raw_send("surface", req)
            self.snapshot.emit(snapshot_of_session(self.session, "starting"))

    def _raw_send(self, *msg: Any) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.send(msg)
            return True
        except (OSError, EOFError, ValueError):
            return False

    def _send(self, *msg: Any) -> None:
        self.start()
        self._raw_send(*msg)

    def _on_message(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "snapshot":
            snap: StudySnapshot = msg[1]
            if snap.session is not None:
                self.session = snap.session
            self.snapshot.emit(snap)
        elif kind == "surface":
            self.surface.emit(msg[1])
        elif kind == "failed":
            self.failed.emit(msg[1])
        elif kind == "finished":
            self.finished.emit(msg[1])
        elif kind == "eof" and msg[1] == self._generation:
            self._process_ended()

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
            self._raw_send("load", session)
        else:  # nothing has run yet: the views get the session's trials without starting a process
            snap = snapshot_of_session(session)
            QTimer.singleShot(0, lambda: self.snapshot.emit(snap))

    def run(self, budget: int = 0) -> None:
        self._send("run", int(budget))

    def step(self) -> None:
        self._send("step")

    def pause(self) -> None:
        if self._proc is not None:
            self._raw_send("pause")  # the process's reader thread cancels a fit in progress
        elif self.session is not None:
            self.snapshot.emit(snapshot_of_session(self.session, "paused"))

    def tell(self, trial_id: int, value: float) -> None:
        if not math.isfinite(value):
            self.failed.emit(f"trial {trial_id}: value must be a finite number")
            return
        self._send("tell", int(trial_id), float(value))

    def reject(self, trial_id: int, reason: str = "rejected by the user") -> None:
        self._send("reject", int(trial_id), reason)

    def add(self, config: dict[str, Any], value: float | None) -> None:
        self._send("add", dict(config), value)

    def request_surface(self, params: tuple[str, ...], fixed: dict[str, float] | None = None, n: int = 100) -> int:
        """Ask for a slice (one parameter) or map (two) of the newest model; returns the request id."""
        self.latest_surface_request += 1
        req = SurfaceRequest(self.latest_surface_request, tuple(params), dict(fixed or {}), n)
        self._surface_requests[len(req.params)] = req
        if self._proc is not None:  # without a process there is no model yet: sent when it starts
            self._raw_send("surface", req)
        return self.latest_surface_request

    def shutdown(self) -> None:
        """Stop the study process (cancelling a fit) and the pipe thread."""
        self._closing = True
        proc, conn, reader = self._proc, self._conn, self._reader
        if proc is not None:
            self._raw_send("pause")
            self._raw_send("exit")
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        if conn is not None:
            conn.close()
        if reader is not None:
            reader.wait(5000)
        self._proc = self._conn = self._reader = None
        if self._gc_held:
            self._gc_held = False
            _release_gui_thread_gc()
