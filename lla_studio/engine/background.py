"""Newest-request-wins computation in the lab process: the machinery the lab controllers share.

A lab panel (posterior lab, ReLU lab) describes what it wants as a frozen request of plain data and
gets frozen, numpy-only answers back. :class:`NewestRequestController` is the GUI-thread side of
that; the work runs in the lab process (:mod:`lla_studio.engine.lab_process`,
:mod:`lla_studio.engine.lab_server`):

* one *lane* per kind of request (a stream where only the newest matters: "posterior", or the
  ReLU lab's "lab" and "rate", so a long BO loop never delays a slider), one thread per lane in the
  lab process;
* growing request ids (shared by all kinds of a controller);
* submitting a request cancels the previous request of its kind: a
  :class:`~lla_studio.engine.messages.Cancel` sets its cancel flag in the child, which the core
  polls inside fits and optimizations, so superseded work stops within about a second, and a
  request still waiting there is dropped without work;
* answers for anything but the newest, not-cancelled request of their kind are dropped (counted in
  :attr:`NewestRequestController.dropped`) before they reach the view;
* a debounce timer (:meth:`~NewestRequestController.schedule`) collapses a burst of edits into one
  request of the *primary* kind;
* a failure on the way (a request that cannot be sent, the process dying) reaches the subclass's
  failure signal as one line, like a failed computation.

Subclasses declare their public signals, call :meth:`~NewestRequestController._add_kind` once per
kind in ``__init__`` and implement :meth:`submit`, :meth:`_busy_signal`, :meth:`_answered` and
:meth:`_failed` (and :meth:`_progressed` if their requests report progress).

The prior-sample preview (:mod:`lla_studio.engine.preview_worker`) keeps a different policy on
purpose: its computations are short and are never cancelled; at most one newer request waits.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Slot

from lla_studio.engine.lab_process import LabProcess, lab_process
from lla_studio.engine.messages import Cancel, Compute, LabAnswer, LabEnded, LabFailed, LabProgress, LabStarted

__all__ = ["NewestRequestController"]

log = logging.getLogger(__name__)

_serials = itertools.count(1)  # makes lane names unique per controller
_KEEP_STATES = 256


class _Submitted:
    """The newest request of a kind (GUI thread only)."""

    __slots__ = ("cancelled", "ended", "request")

    def __init__(self, request: Any) -> None:
        self.request = request
        self.cancelled = False
        self.ended = False


class NewestRequestController(QObject):
    """Owns request ids, the debounce timer and cancellation of requests to the lab process (GUI thread).

    Args:
        parent: Qt parent.
        debounce_ms: Quiet time :meth:`schedule` waits for.
        primary: The kind :meth:`schedule`, :meth:`cancel` and :attr:`busy` are about.
        lab: The lab process client (default: the GUI process's shared one).
    """

    #: Used in lane names and in errors.
    name = "background"

    def __init__(
        self, parent: QObject | None = None, debounce_ms: int = 150, primary: str = "", lab: LabProcess | None = None
    ) -> None:
        super().__init__(parent)
        self._lab = lab if lab is not None else lab_process()
        self._serial = next(_serials)
        self._primary = primary
        self._ids = itertools.count(1)
        self._lanes: dict[str, str] = {}  # kind -> lane
        self._kinds: dict[str, str] = {}  # lane -> kind
        self._latest: dict[str, _Submitted | None] = {}
        self._busy: dict[str, bool] = {}
        self._states: OrderedDict[int, str] = OrderedDict()
        self._pending: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._shut_down = False
        self._stopped = True
        self.dropped = 0  # answers dropped because a newer request exists (tests, diagnostics)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(debounce_ms))
        self._timer.timeout.connect(self.flush)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------ for subclasses
    def _add_kind(self, kind: str) -> None:
        """Serve ``kind`` on a lane of its own in the lab process."""
        lane = f"{self.name}-{self._serial}:{kind}"
        self._lanes[kind] = lane
        self._kinds[lane] = kind
        self._latest[kind] = None
        self._busy[kind] = False
        self._lab.attach(self, [lane])

    def _busy_signal(self, kind: str) -> Any:
        """The signal announcing ``busy`` changes of ``kind``."""
        raise NotImplementedError

    def _answered(self, kind: str, request_id: int, answer: Any) -> None:
        """An answer arrived for ``request_id`` (check :meth:`_accept` before showing it)."""
        raise NotImplementedError

    def _failed(self, kind: str, request_id: int, stage: str, message: str, error_type: str) -> None:
        """The newest request of ``kind`` failed (already checked): emit the failure signal."""
        raise NotImplementedError

    def _progressed(self, kind: str, request_id: int, progress: Any) -> None:
        """Progress of the newest request of ``kind`` (already checked)."""

    def _submit(self, request: Any, kind: str) -> int:
        """Cancel the running request of ``kind`` and send ``request`` at once; returns its id."""
        if self._shut_down:
            raise RuntimeError(f"the {self.name} controller is shut down")
        self._cancel(kind)
        rid = request.request_id
        sub = self._latest[kind] = _Submitted(request)
        self._set_busy(kind, True)
        self._remember(rid, "sent")
        error = self._lab.send(Compute(self._lanes[kind], rid, request))
        if error is not None:  # refused before it left: say so like a failed computation
            sub.ended = True
            self._remember(rid, "failed")
            log.error("%s", error)
            self._failed(kind, rid, "send", error, "LabProcessError")
            self._set_busy(kind, False)
        return rid

    def _next_id(self) -> int:
        return next(self._ids)

    def _accept(self, kind: str, request_id: int) -> bool:
        """Whether an answer to ``request_id`` may reach the view (counts the dropped ones)."""
        fresh = self._is_latest(kind, request_id)
        if not fresh:
            self.dropped += 1
        return fresh

    def _is_latest(self, kind: str, request_id: int) -> bool:
        """Like :meth:`_accept`, without counting (for progress messages)."""
        sub = self._latest.get(kind)
        return sub is not None and sub.request.request_id == request_id and not sub.cancelled and not self._shut_down

    def _cancel(self, kind: str) -> None:
        sub = self._latest.get(kind)
        if sub is None or sub.cancelled:
            return
        sub.cancelled = True
        if not sub.ended:  # in the child: a running fit stops, a waiting request is dropped
            error = self._lab.send(Cancel(self._lanes[kind], sub.request.request_id), start=False)
            if error is not None:  # the process is gone: nothing left to cancel there
                log.info("%s", error)

    def _remember(self, request_id: int, state: str) -> None:
        self._states[request_id] = state
        while len(self._states) > _KEEP_STATES:
            self._states.popitem(last=False)

    # ------------------------------------------------------------------ API
    def submit(self, *args: Any, **kwargs: Any) -> int:
        """Send a request of the primary kind now, cancelling the running one; returns its id."""
        raise NotImplementedError

    @property
    def lab(self) -> LabProcess:
        """The lab process client this controller talks to."""
        return self._lab

    @property
    def attached(self) -> bool:
        """Whether this controller still holds the lab process (False after :meth:`shutdown`)."""
        return not self._shut_down

    @property
    def busy(self) -> bool:
        """Whether the newest request of the primary kind has not finished yet."""
        return self._busy[self._primary]

    @property
    def has_pending(self) -> bool:
        """Whether a request waits for the debounce timer."""
        return self._pending is not None

    def state(self, request_id: int) -> str | None:
        """Where a recent request is: ``"sent"``, ``"running"`` (the child began it), then how it
        ended: ``"completed"``, ``"cancelled"``, ``"failed"``, ``"skipped"`` (superseded or cancelled
        before it began) or ``"lost"`` (the process died). None for an unknown id."""
        return self._states.get(request_id)

    def schedule(self, *args: Any, **kwargs: Any) -> None:
        """Debounced :meth:`submit`: the last call within the debounce interval wins."""
        if self._shut_down:
            return
        self._pending = (args, kwargs)
        self._timer.start()

    def flush(self) -> int | None:
        """Submit a scheduled request now; returns its id (``None`` when nothing was pending)."""
        self._timer.stop()
        if self._pending is None:
            return None
        (args, kwargs), self._pending = self._pending, None
        return self.submit(*args, **kwargs)

    def cancel(self) -> None:
        """Stop the newest request of the primary kind (and drop a scheduled one)."""
        self._timer.stop()
        self._pending = None
        self._cancel(self._primary)

    @Slot()
    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything, wait until the lab process has stopped this controller's requests and
        let go of it (the last controller to go ends the process); idempotent.

        Returns:
            Whether every request stopped within ``timeout_ms``.
        """
        if self._shut_down:
            return self._stopped
        self._timer.stop()
        self._pending = None
        for kind in self._lanes:
            self._cancel(kind)
        stopped = True
        for kind, sub in self._latest.items():
            if sub is None or sub.ended:
                continue
            rid = sub.request.request_id
            outcome = self._lab.wait_ended(self._lanes[kind], rid, timeout_ms / 1000)
            if outcome is None:
                stopped = False
            else:
                sub.ended = True
                self._remember(rid, outcome)
        self._shut_down = True
        self._stopped = stopped
        for kind in self._lanes:
            self._set_busy(kind, False)
        self._lab.detach(self)
        return stopped

    # ------------------------------------------------------------------ from the lab process
    def lab_message(self, msg: Any) -> None:
        """A message about one of this controller's lanes (GUI thread)."""
        kind = self._kinds[msg.lane]
        match msg:
            case LabStarted(request_id=rid):
                if self._states.get(rid) == "sent":
                    self._remember(rid, "running")
            case LabAnswer(request_id=rid, answer=answer):
                self._answered(kind, rid, answer)
            case LabProgress(request_id=rid, progress=progress):
                if self._is_latest(kind, rid):
                    self._progressed(kind, rid, progress)
            case LabFailed(request_id=rid, message=message, error_type=error_type, stage=stage, detail=detail):
                if detail:
                    log.error("%s: %s\n%s", self.name, message, detail)
                if self._accept(kind, rid):
                    self._failed(kind, rid, stage, message, error_type)
            case LabEnded(request_id=rid, outcome=outcome):
                self._remember(rid, outcome)
                self._ended(kind, rid)

    def lab_lost(self, lane: str, request_id: int, message: str) -> None:
        """The process died before ``request_id`` ended: one line to the failure signal."""
        kind = self._kinds[lane]
        self._remember(request_id, "lost")
        if self._is_latest(kind, request_id):
            self._failed(kind, request_id, "lost", message, "LabProcessError")
        self._ended(kind, request_id)

    def lab_failed(self, message: str) -> None:
        """A process-level failure: reported against the running newest request of each kind."""
        for kind, sub in self._latest.items():
            if sub is not None and not sub.ended and not sub.cancelled:
                self._failed(kind, sub.request.request_id, "", message, "LabProcessError")

    def _ended(self, kind: str, request_id: int) -> None:
        sub = self._latest.get(kind)
        if sub is not None and sub.request.request_id == request_id:
            sub.ended = True
            self._set_busy(kind, False)

    def _set_busy(self, kind: str, busy: bool) -> None:
        if busy != self._busy[kind]:
            self._busy[kind] = busy
            self._busy_signal(kind).emit(busy)
