"""Prior-sample preview for the kernel editor, computed in the lab process: the controller the GUI talks to.

Snapshot in, snapshot out: the GUI calls :meth:`PriorPreviewController.request` with a frozen graph
and a slice; the controller debounces (150 ms), numbers the request with a growing ``request_id`` and
sends it to the lab process (:mod:`lla_studio.engine.lab_server`, one lane of its own). While a
request is being computed, newer requests replace the one waiting (at most one waits), and answers
older than the newest request are dropped, so the newest request always wins and nothing piles up.
The computations are short and are never cancelled (unlike the labs'). Results are
:class:`PriorPreviewResult` (read-only numpy arrays); failures are :class:`PriorPreviewFailed` with
the message, also when the lab process died.

The request and answer types are plain data of :mod:`lla_studio.engine.lab_jobs`, re-exported here;
this module imports no torch (the samples are drawn by :mod:`lla_studio.core.kernels.preview` in the
lab process).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal, Slot

from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.engine.lab_jobs import PriorPreviewFailed, PriorPreviewRequest, PriorPreviewResult
from lla_studio.engine.lab_process import LabProcess, lab_process
from lla_studio.engine.messages import Cancel, Compute, LabAnswer, LabEnded, LabFailed

__all__ = [
    "PriorPreviewController",
    "PriorPreviewFailed",
    "PriorPreviewRequest",
    "PriorPreviewResult",
]

log = logging.getLogger(__name__)

DEBOUNCE_MS = 150
_serials = itertools.count(1)


class PriorPreviewController(QObject):
    """Main-thread side of the preview: debounce, newest-request-wins, the lab process lease.

    The controller takes hold of the lab process on the first request (starting it if needed);
    :meth:`shutdown` (also run when the application quits) lets go of it.

    Signals:
        sampled: A :class:`PriorPreviewResult` for the newest request.
        failed: A :class:`PriorPreviewFailed` for the newest request.
        busy_changed: ``True`` while a request is pending or being computed.
    """

    sampled = Signal(object)
    failed = Signal(object)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, *, debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._dispatch)
        self._next_id = 0
        self._latest_id = -1
        self._staged: PriorPreviewRequest | None = None  # debounced, not yet sent
        self._in_flight: PriorPreviewRequest | None = None  # the request the lab process computes
        self._lab: LabProcess | None = None
        self._lane = f"prior-preview-{next(_serials)}"
        self._busy = False
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # -- public ------------------------------------------------------------------------------
    def request(
        self,
        graph: KernelGraph,
        feature_names: Sequence[str],
        x: str,
        y: str | None = None,
        *,
        n_samples: int = 5,
        seed: int = 0,
        resolution: int | None = None,
        immediate: bool = False,
    ) -> int:
        """Ask for samples; returns the request id. Older pending requests are superseded.

        Args:
            immediate: Skip the debounce (the request still waits for one being computed).
        """
        self._next_id += 1
        req = PriorPreviewRequest(
            self._next_id, graph, tuple(feature_names), x, y, int(n_samples), int(seed), resolution
        )
        self._latest_id = req.request_id
        self._staged = req
        self._set_busy(True)
        self._attach().start()  # the process imports torch during the debounce
        if immediate:
            self._timer.stop()
            self._dispatch()
        else:
            self._timer.start()
        return req.request_id

    def cancel(self) -> None:
        """Forget pending requests; an answer in flight will be dropped."""
        self._timer.stop()
        self._staged = None
        self._next_id += 1
        self._latest_id = self._next_id
        self._set_busy(self._in_flight is not None)

    @property
    def latest_id(self) -> int:
        """Id of the newest request (answers with a smaller id are dropped)."""
        return self._latest_id

    def is_running(self) -> bool:
        """Whether this controller holds the lab process and it runs."""
        return self._lab is not None and self._lab.alive

    def is_busy(self) -> bool:
        """Whether a request is pending or being computed."""
        return self._busy

    @Slot()
    def shutdown(self) -> None:
        """Let go of the lab process once the request in flight stopped (idempotent)."""
        self._timer.stop()
        self._staged = None
        lab, self._lab = self._lab, None
        if lab is not None:
            if self._in_flight is not None:
                rid = self._in_flight.request_id
                lab.send(Cancel(self._lane, rid), start=False)
                if lab.wait_ended(self._lane, rid) is None:
                    log.warning("prior preview: request #%d did not stop within 10 s", rid)
            lab.detach(self)
        self._in_flight = None
        self._set_busy(False)

    # -- from the lab process ----------------------------------------------------------------
    def lab_message(self, msg: Any) -> None:
        match msg:
            case LabAnswer(answer=result):
                if result.request_id >= self._latest_id:
                    self.sampled.emit(result)
            case LabFailed(request_id=rid, message=message, detail=detail):
                if detail:
                    log.error("prior preview: %s\n%s", message, detail)
                self._report(rid, message)
            case LabEnded(request_id=rid):
                self._answered(rid)

    def lab_lost(self, lane: str, request_id: int, message: str) -> None:
        self._report(request_id, message)
        self._answered(request_id)

    def lab_failed(self, message: str) -> None:
        if self._in_flight is not None:
            self._report(self._in_flight.request_id, message)

    # -- internals ---------------------------------------------------------------------------
    def _attach(self) -> LabProcess:
        if self._lab is not None and self._lab.closed:  # closed under us (the application quit)
            self._lab = None
        if self._lab is None:
            self._lab = lab_process()
            self._lab.attach(self, [self._lane])
        return self._lab

    def _dispatch(self) -> None:
        if self._staged is None or self._in_flight is not None:
            return  # the newest staged request goes out when the one in flight has ended
        req, self._staged = self._staged, None
        self._in_flight = req
        error = self._attach().send(Compute(self._lane, req.request_id, req))
        if error is not None:
            log.error("%s", error)
            self._report(req.request_id, error)
            self._answered(req.request_id)

    def _report(self, request_id: int, message: str) -> None:
        req = self._in_flight
        if req is not None and req.request_id == request_id and request_id >= self._latest_id:
            self.failed.emit(PriorPreviewFailed(request_id, req, message))

    def _answered(self, request_id: int) -> None:
        if self._in_flight is None or self._in_flight.request_id != request_id:
            return
        self._in_flight = None
        if self._staged is not None and not self._timer.isActive():
            self._dispatch()
        self._set_busy(self._staged is not None or self._in_flight is not None)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)
