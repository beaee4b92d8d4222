"""Newest-request-wins background computation: the machinery the lab controllers share.

A lab panel (posterior lab, ReLU lab) describes what it wants as a frozen request and gets frozen,
numpy-only answers back. :class:`NewestRequestController` is the GUI-thread side of that:

* one parent-less worker per *kind* of request, each moved to its own ``QThread`` (a kind is a
  stream of requests where only the newest matters: "posterior", or the ReLU lab's "lab" and
  "rate", so a long BO loop never delays a slider);
* growing request ids (shared by all kinds);
* submitting a request sets the ``cancel_event`` of the previous request of its kind, which the
  core polls inside fits and optimizations, so superseded work stops within a fraction of a second
  and stale queued requests are skipped without work;
* answers for anything but the newest, not-cancelled request of their kind are dropped (counted in
  :attr:`NewestRequestController.dropped`) before they reach the view;
* a debounce timer (:meth:`~NewestRequestController.schedule`) collapses a burst of edits into one
  request of the *primary* kind;
* Python's cyclic GC runs on the GUI thread only while a controller lives
  (:mod:`lla_studio.engine.gui_gc`).

Workers implement a ``compute(request)`` slot and emit ``finished_request(kind, request_id)`` after
success, failure or cancellation. Requests carry ``request_id``, ``cancel_event`` and
``cancelled()`` (see :class:`CancellableRequest`).

The prior-sample preview (:mod:`lla_studio.engine.preview_worker`) keeps a different policy on
purpose: its computations are short and are never cancelled; at most one newer request waits.
"""

from __future__ import annotations

import itertools
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Slot

from lla_studio.engine.gui_gc import _acquire_gui_thread_gc, _release_gui_thread_gc

__all__ = ["CancellableRequest", "NewestRequestController", "configure_torch_threads"]

_threads_configured = False


def configure_torch_threads() -> None:
    """Leave the GUI a core: ``torch.set_num_threads(max(1, os.cpu_count() - 1))``, once per process."""
    global _threads_configured
    if not _threads_configured:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        _threads_configured = True


@dataclass(frozen=True)
class CancellableRequest:
    """Base of a request: its id and the event that cancels it (set when a newer one is submitted)."""

    request_id: int
    cancel_event: threading.Event = field(default_factory=threading.Event, compare=False, repr=False, kw_only=True)

    def cancelled(self) -> bool:
        """Whether a newer request (or a cancel) superseded this one."""
        return self.cancel_event.is_set()


class NewestRequestController(QObject):
    """Owns worker threads, request ids, the debounce timer and cancellation (GUI thread).

    Subclasses declare their own public signals and, per kind, a private ``Signal(object)`` that
    carries requests to the worker; they call :meth:`_add_worker` once per kind in ``__init__``
    and implement :meth:`submit` (the debounced path calls it with the scheduled arguments) and
    :meth:`_busy_signal`.
    """

    #: Used in thread names and in errors.
    name = "background"

    def __init__(self, parent: QObject | None = None, debounce_ms: int = 150, primary: str = "") -> None:
        super().__init__(parent)
        configure_torch_threads()
        _acquire_gui_thread_gc()
        self._gc_held = True
        self._primary = primary
        self._ids = itertools.count(1)
        self._latest: dict[str, Any] = {}
        self._busy: dict[str, bool] = {}
        self._threads: dict[str, QThread] = {}
        self._workers: dict[str, QObject] = {}
        self._pending: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._shut_down = False
        self.dropped = 0  # answers dropped because a newer request exists (tests, diagnostics)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(debounce_ms))
        self._timer.timeout.connect(self.flush)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------ for subclasses
    def _add_worker(self, kind: str, worker: QObject, send: Any) -> None:
        """Move ``worker`` to a new thread serving ``kind``; ``send`` (a signal of ours) feeds its
        ``compute`` slot."""
        thread = QThread(self)
        thread.setObjectName(f"{self.name}-{kind}")
        worker.moveToThread(thread)
        send.connect(worker.compute)
        worker.finished_request.connect(self._on_finished)
        thread.finished.connect(worker.deleteLater)
        thread.start()
        self._threads[kind] = thread
        self._workers[kind] = worker
        self._latest[kind] = None
        self._busy[kind] = False

    def _busy_signal(self, kind: str) -> Any:
        """The signal announcing ``busy`` changes of ``kind``."""
        raise NotImplementedError

    def _submit(self, request: Any, kind: str, send: Any) -> int:
        """Cancel the running request of ``kind`` and send ``request`` at once; returns its id."""
        if self._shut_down:
            raise RuntimeError(f"the {self.name} controller is shut down")
        self._cancel(kind)
        self._latest[kind] = request
        self._set_busy(kind, True)
        send.emit(request)
        return request.request_id

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
        req = self._latest.get(kind)
        return req is not None and req.request_id == request_id and not req.cancelled() and not self._shut_down

    def _cancel(self, kind: str) -> None:
        req = self._latest.get(kind)
        if req is not None:
            req.cancel_event.set()

    # ------------------------------------------------------------------ API
    def submit(self, *args: Any, **kwargs: Any) -> int:
        """Send a request of the primary kind now, cancelling the running one; returns its id."""
        raise NotImplementedError

    @property
    def threads(self) -> tuple[QThread, ...]:
        """The worker threads, in the order the kinds were added (for tests: ``isRunning``)."""
        return tuple(self._threads.values())

    @property
    def busy(self) -> bool:
        """Whether the newest request of the primary kind has not finished yet."""
        return self._busy[self._primary]

    @property
    def has_pending(self) -> bool:
        """Whether a request waits for the debounce timer."""
        return self._pending is not None

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
        """Cancel everything, stop the threads and wait for them; idempotent. Returns whether they stopped."""
        self._shut_down = True
        self.cancel()
        for kind in self._threads:
            self._cancel(kind)
        for thread in self._threads.values():
            if thread.isRunning():
                thread.quit()
        for thread in self._threads.values():
            thread.wait(timeout_ms)
        stopped = not any(t.isRunning() for t in self._threads.values())
        if stopped:
            for kind in self._threads:
                self._set_busy(kind, False)
            if self._gc_held:
                self._gc_held = False
                _release_gui_thread_gc()
        return stopped

    # ------------------------------------------------------------------ slots
    @Slot(str, int)
    def _on_finished(self, kind: str, request_id: int) -> None:
        req = self._latest.get(kind)
        if req is not None and req.request_id == request_id:
            self._set_busy(kind, False)

    def _set_busy(self, kind: str, busy: bool) -> None:
        if busy != self._busy[kind]:
            self._busy[kind] = busy
            self._busy_signal(kind).emit(busy)


def run_reporting(
    request: Any,
    work: Callable[[], None],
    fail: Callable[[str, str], None],
    expected: tuple[type[BaseException], ...],
    cancelled: type[BaseException],
) -> None:
    """Run ``work`` on a worker thread; a cancellation ends quietly, an expected error is reported
    with its message, anything else as an internal error with the traceback printed (a thread
    boundary: nothing may escape a slot)."""
    try:
        if not request.cancelled():
            work()
    except cancelled:
        pass
    except expected as exc:
        fail(str(exc), type(exc).__name__)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        fail(f"internal error ({type(exc).__name__}): {exc}", type(exc).__name__)
