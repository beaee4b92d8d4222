"""The GUI's handle on the lab process, shared by every lab controller of the GUI process.

One child process computes for the posterior lab, the ReLU lab and the kernel editor's prior
preview (:func:`lla_studio.engine.lab_server.serve`, ``spawn``, started by name so the GUI never
imports it). Controllers *attach* with the lanes they own (:meth:`LabProcess.attach`); the process
starts on the first request (:meth:`LabProcess.send`) and closes when the last controller detaches
or the application quits. A :class:`~lla_studio.engine.pipe.PipeReader` thread receives the
child's messages and the GUI thread routes them, by lane, to the controller that owns it.

Every request ends with one :class:`~lla_studio.engine.messages.LabEnded`. The reader thread
records it as it arrives, so :meth:`LabProcess.wait_ended` can wait for a cancelled request to stop
in the child without the GUI thread's event loop (a controller's ``shutdown``).

If the process dies (a crash, killed for memory), every request it had not finished is reported to
its controller as lost, with one line (``"lab process exited (code -9); the next request restarts
it"``), and the next request starts a fresh process. A request that cannot be sent (it does not
pickle, the pipe broke) is refused at once with the reason.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

from PySide6.QtCore import QCoreApplication, QObject, Slot

from lla_studio.engine.child import end_child, start_child
from lla_studio.engine.gui_gc import _acquire_gui_thread_gc, _release_gui_thread_gc
from lla_studio.engine.messages import (
    Compute,
    Exit,
    Failed,
    LabAnswer,
    LabEnded,
    LabFailed,
    LabProgress,
    LabStarted,
)
from lla_studio.engine.pipe import EndOfPipe, PipeReader

__all__ = ["SERVER", "LabClient", "LabProcess", "lab_process"]

log = logging.getLogger(__name__)

SERVER = "lla_studio.engine.lab_server:serve"
_KEEP_ENDED = 512  # outcomes remembered for wait_ended (a few minutes of slider moves)


class LabClient(Protocol):
    """What a controller attached to the lab process implements (called on the GUI thread)."""

    def lab_message(self, msg: Any) -> None:
        """A :class:`LabStarted`, :class:`LabAnswer`, :class:`LabProgress`, :class:`LabFailed` or
        :class:`LabEnded` about one of the client's lanes."""

    def lab_lost(self, lane: str, request_id: int, message: str) -> None:
        """The process ended before the request did; ``message`` is one line."""

    def lab_failed(self, message: str) -> None:
        """A failure of the process that concerns no request in particular (one line)."""


class LabProcess(QObject):
    """GUI-side client of the lab process (GUI thread; use :func:`lab_process` for the shared one)."""

    def __init__(self) -> None:
        super().__init__()
        self._proc: Any = None
        self._conn: Any = None
        self._reader: PipeReader | None = None
        self._generation = 0
        self._owners: dict[str, LabClient] = {}
        self._closed = False
        # written by the reader thread (LabEnded, end of pipe) and the GUI thread (sends)
        self._cv = threading.Condition()
        self._in_flight: dict[tuple[str, int], int] = {}  # (lane, request id) -> generation
        self._ended: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._lost: dict[int, list[tuple[str, int]]] = {}  # generation -> requests it did not finish
        _acquire_gui_thread_gc()  # GC on the pipe thread could finalize GUI-thread Qt objects
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.close)

    # ------------------------------------------------------------------ lifetime
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def alive(self) -> bool:
        """Whether the child process runs."""
        return self._proc is not None and self._proc.is_alive()

    @property
    def process(self) -> Any:
        """The running ``multiprocessing.Process`` (None before the first request; for tests)."""
        return self._proc

    def attach(self, client: LabClient, lanes: Iterable[str]) -> None:
        """Route the messages about ``lanes`` to ``client`` (lane names are unique per client)."""
        if self._closed:
            raise RuntimeError("the lab process is closed")
        for lane in lanes:
            self._owners[lane] = client

    def detach(self, client: LabClient) -> None:
        """Stop routing to ``client``; the last client to go closes the process."""
        for lane in [lane for lane, owner in self._owners.items() if owner is client]:
            del self._owners[lane]
        if not self._owners:
            self.close()

    def start(self) -> None:
        """Start the process if it does not run (the first request does this)."""
        if self._proc is not None or self._closed:
            return
        self._generation += 1
        self._proc, self._conn = start_child(SERVER, None, name="lla-lab")
        self._reader = PipeReader(
            self._conn, self._generation, name="lla-lab-pipe", child="the lab process", observe=self._observe,
            parent=self,
        )
        self._reader.received.connect(self._on_message)
        self._reader.start()

    @Slot()
    def close(self) -> None:
        """Cancel everything, end the process and the pipe thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        proc, conn, reader = self._proc, self._conn, self._reader
        if proc is not None:
            self._raw_send(Exit())  # the child cancels running work and reports how it ended
        end_child(proc, conn, reader, "the lab process", log)
        self._proc = self._conn = self._reader = None
        _release_gui_thread_gc()

    # ------------------------------------------------------------------ sending
    def send(self, msg: Any, start: bool = True) -> str | None:
        """Send a message (starting the process first, unless ``start`` is False).

        Returns:
            None, or one line saying why it could not be sent (the caller reports it).
        """
        if self._closed:
            return "lab process: closed"
        if start:
            self.start()
        if self._conn is None:
            return "lab process: not running"
        key = (msg.lane, msg.request_id) if isinstance(msg, Compute) else None
        if key is not None:  # before the send: the answer may arrive before send() returns
            with self._cv:
                self._in_flight[key] = self._generation
        error = self._raw_send(msg)
        if error is not None and key is not None:
            with self._cv:
                self._in_flight.pop(key, None)
        return error

    def _raw_send(self, msg: Any) -> str | None:
        try:
            self._conn.send(msg)
        except Exception as err:  # a closed or broken pipe, or a job that does not pickle: never silent
            what = type(msg.job).__name__ if isinstance(msg, Compute) else type(msg).__name__
            return f"lab process: could not send {what} ({type(err).__name__}: {err})"
        return None

    def wait_ended(self, lane: str, request_id: int, timeout_s: float = 10.0) -> str | None:
        """Wait until the child reports how ``request_id`` ended; returns the outcome, or None if it
        is still running after ``timeout_s`` (``"lost"`` if the process died first)."""
        key = (lane, request_id)
        with self._cv:
            self._cv.wait_for(lambda: key not in self._in_flight, timeout_s)
            if key in self._in_flight:
                return None
            return self._ended.get(key, "unknown")

    # ------------------------------------------------------------------ receiving
    def _observe(self, msg: Any) -> None:
        """Reader thread: record how requests ended (see :meth:`wait_ended`)."""
        match msg:
            case LabEnded(lane=lane, request_id=request_id, outcome=outcome):
                with self._cv:
                    self._in_flight.pop((lane, request_id), None)
                    self._remember((lane, request_id), outcome)
                    self._cv.notify_all()
            case EndOfPipe(generation=generation):
                with self._cv:
                    lost = [key for key, gen in self._in_flight.items() if gen == generation]
                    for key in lost:
                        del self._in_flight[key]
                        self._remember(key, "lost")
                    self._lost[generation] = lost
                    self._cv.notify_all()

    def _remember(self, key: tuple[str, int], outcome: str) -> None:
        self._ended[key] = outcome
        while len(self._ended) > _KEEP_ENDED:
            self._ended.popitem(last=False)

    @Slot(object)
    def _on_message(self, msg: Any) -> None:
        match msg:
            case LabStarted(lane=lane) | LabAnswer(lane=lane) | LabProgress(lane=lane) | LabFailed(lane=lane) | LabEnded(
                lane=lane
            ):
                owner = self._owners.get(lane)
                if owner is not None:  # else: its controller has shut down
                    owner.lab_message(msg)
            case Failed(reason=reason, detail=detail):
                self._broadcast(reason, detail)
            case EndOfPipe(generation=generation) if generation == self._generation:
                self._process_ended(generation)
            case EndOfPipe():
                pass  # an older process's pipe
            case _:
                self._broadcast(f"lab process: unexpected message {type(msg).__name__}")

    def _broadcast(self, reason: str, detail: str = "") -> None:
        log.error("%s%s", reason, f"\n{detail}" if detail else "")
        if self._closed:
            return
        for owner in {id(o): o for o in self._owners.values()}.values():
            owner.lab_failed(reason)

    def _process_ended(self, generation: int) -> None:
        proc, self._proc = self._proc, None
        conn, self._conn = self._conn, None
        reader, self._reader = self._reader, None
        if conn is not None:
            conn.close()
        if reader is not None:
            reader.wait(5000)  # it emitted its last message: let it return before it is dropped
        if proc is not None:
            proc.join(5)
        with self._cv:
            lost = self._lost.pop(generation, [])
        if self._closed:
            return
        code = None if proc is None else proc.exitcode
        message = f"lab process exited (code {code}); the next request restarts it"
        log.warning("%s (%d request(s) lost)", message, len(lost))
        for lane, request_id in lost:
            owner = self._owners.get(lane)
            if owner is not None:
                owner.lab_lost(lane, request_id, message)


_shared: LabProcess | None = None


def lab_process() -> LabProcess:
    """The GUI process's lab process client (a new one after the previous one closed)."""
    global _shared
    if _shared is None or _shared.closed:
        _shared = LabProcess()
    return _shared
