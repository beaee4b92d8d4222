"""Background computation for the ReLU extrapolation lab: workers on `QThread`s and their controller.

The GUI (`lla_studio.gui.relu_lab_panel.ReluLabPanel`) never touches torch. It describes what it
wants as a frozen `ReluLabSettings` and receives frozen answers holding the core's numpy-only
results (`ReluLabResult`, `BoundaryRateResult`).

Threads (CONVENTIONS §3):

* Two parent-less `ReluLabWorker`s, each moved to its own `QThread`: one computes the lab (fits,
  curves, acquisition maximizers: what the sliders drive), the other runs the boundary-rate BO
  loop (on demand, tens of seconds), so a running BO loop never delays the slider.
* `ReluLabController` lives on the GUI thread and owns the threads, the growing request ids, the
  debounce timer (`schedule` collapses a burst of slider moves into one request) and cancellation:
  submitting a request sets the ``cancel_event`` of the previous one of its kind, which the core
  checks inside fits and optimizations, so a superseded computation stops within a fraction of a
  second and stale queued requests are skipped without work. Answers for anything but the newest
  request of their kind are dropped before they reach the view.
* The lab worker keeps a `FitCache` (torch models, on its own thread only): in the default fixed
  input frame the fits do not depend on the box width, so moving the box slider only re-optimizes
  the acquisition.

While a controller lives, Python's cyclic GC runs on the GUI thread only (see
`lla_studio.engine.gui_gc`).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import traceback
from dataclasses import dataclass, field

import torch
from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from lla_studio.core.errors import Cancelled, LLAStudioError
from lla_studio.core.relu_lab import (
    BoundaryRateResult,
    FitCache,
    ReluLabResult,
    ReluLabSettings,
    boundary_rate,
    compute_relu_lab,
)
from lla_studio.engine.gui_gc import _acquire_gui_thread_gc, _release_gui_thread_gc

__all__ = [
    "LAB",
    "RATE",
    "BoundaryRateAnswer",
    "BoundaryRateProgress",
    "ReluLabAnswer",
    "ReluLabController",
    "ReluLabFailure",
    "ReluLabRequest",
    "ReluLabWorker",
]

LAB = "lab"
RATE = "rate"
DEBOUNCE_MS = 150

_threads_configured = False


def _configure_torch_threads() -> None:
    """Leave the GUI a core: ``torch.set_num_threads(max(1, os.cpu_count() - 1))``, once."""
    global _threads_configured
    if not _threads_configured:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        _threads_configured = True


@dataclass(frozen=True)
class ReluLabRequest:
    """One computation the GUI asks for.

    Attributes:
        request_id: Grows with every request of a controller (both kinds share the counter).
        kind: ``LAB`` (curves and maximizers) or ``RATE`` (the boundary-rate BO loop).
        settings: What to compute.
        steps: BO steps per model (``RATE`` only).
        cancel_event: Set by the controller when a newer request of the same kind supersedes
            this one, or on shutdown.
    """

    request_id: int
    kind: str
    settings: ReluLabSettings
    steps: int = 8
    cancel_event: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


@dataclass(frozen=True)
class ReluLabAnswer:
    """The lab for one request: ``result`` holds read-only numpy arrays only."""

    request_id: int
    result: ReluLabResult
    fits_reused: int  # models whose fit came from the worker's cache
    seconds: float


@dataclass(frozen=True)
class BoundaryRateAnswer:
    """The boundary-rate BO loop for one request."""

    request_id: int
    result: BoundaryRateResult


@dataclass(frozen=True)
class BoundaryRateProgress:
    """``model`` finished BO step ``step`` of ``steps`` (model ``index`` of ``n_models``)."""

    request_id: int
    model: str
    step: int
    steps: int
    index: int
    n_models: int


@dataclass(frozen=True)
class ReluLabFailure:
    """A request that failed; ``message`` names the culprit."""

    request_id: int
    kind: str
    message: str
    error_type: str


class ReluLabWorker(QObject):
    """Runs requests on its own thread (create without parent, then ``moveToThread``)."""

    computed = Signal(object)  # ReluLabAnswer
    rate_computed = Signal(object)  # BoundaryRateAnswer
    progress = Signal(object)  # BoundaryRateProgress
    failed = Signal(object)  # ReluLabFailure
    finished_request = Signal(str, int)  # kind, request id: after success, failure or cancellation
    warmed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._cache: FitCache | None = None  # created on the worker thread, used there only

    @Slot()
    def warm_up(self) -> None:
        """Pay torch's lazy one-time imports here, not inside the first (cancellable) fit.

        The first ``torch.optim`` optimizer imports ``torch._dynamo`` (seconds, uncancellable);
        done at thread start, a request cancelled later stops within a fraction of a second.
        """
        try:
            torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])
        finally:
            self.warmed.emit()

    @Slot(object)
    def compute(self, request: ReluLabRequest) -> None:
        """Compute ``request`` unless superseded already; always ends with ``finished_request``."""
        try:
            if request.cancelled():
                return
            if request.kind == LAB:
                self._lab(request)
            else:
                self._rate(request)
        except Cancelled:
            pass
        except (LLAStudioError, ValueError, ArithmeticError, RuntimeError) as exc:
            self.failed.emit(ReluLabFailure(request.request_id, request.kind, str(exc), type(exc).__name__))
        except Exception as exc:  # noqa: BLE001 - a thread boundary: report, never raise out of a slot
            traceback.print_exc()
            message = f"internal error ({type(exc).__name__}): {exc}"
            self.failed.emit(ReluLabFailure(request.request_id, request.kind, message, type(exc).__name__))
        finally:
            self.finished_request.emit(request.kind, request.request_id)

    def _lab(self, request: ReluLabRequest) -> None:
        if self._cache is None:
            self._cache = FitCache()
        t0 = time.perf_counter()
        hits = self._cache.hits
        result = compute_relu_lab(request.settings, cancel=request.cancelled, cache=self._cache)
        if request.cancelled():
            return
        self.computed.emit(
            ReluLabAnswer(request.request_id, result, self._cache.hits - hits, time.perf_counter() - t0)
        )

    def _rate(self, request: ReluLabRequest) -> None:
        models = request.settings.models

        def progress(model: str, step: int) -> None:
            self.progress.emit(
                BoundaryRateProgress(request.request_id, model, step, request.steps, models.index(model), len(models))
            )

        result = boundary_rate(request.settings, request.steps, cancel=request.cancelled, progress=progress)
        if not request.cancelled():
            self.rate_computed.emit(BoundaryRateAnswer(request.request_id, result))


class ReluLabController(QObject):
    """Owns the worker threads, request ids, the debounce timer and cancellation (GUI thread).

    Signals:
        result_ready(ReluLabAnswer): the lab for the newest lab request (stale ones are dropped).
        rate_ready(BoundaryRateAnswer): the BO loop for the newest rate request.
        rate_progress(BoundaryRateProgress): a BO step of the newest rate request finished.
        failed(ReluLabFailure): the newest request of its kind failed.
        busy_changed(bool): whether the newest lab request is still being computed.
        rate_busy_changed(bool): whether the newest rate request is still being computed.
    """

    result_ready = Signal(object)
    rate_ready = Signal(object)
    rate_progress = Signal(object)
    failed = Signal(object)
    busy_changed = Signal(bool)
    rate_busy_changed = Signal(bool)
    _send_lab = Signal(object)
    _send_rate = Signal(object)
    _warm = Signal()

    def __init__(self, parent: QObject | None = None, debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        _configure_torch_threads()
        _acquire_gui_thread_gc()
        self._gc_held = True
        self._ids = itertools.count(1)
        self._latest: dict[str, ReluLabRequest | None] = {LAB: None, RATE: None}
        self._busy: dict[str, bool] = {LAB: False, RATE: False}
        self._pending: ReluLabSettings | None = None
        self._shut_down = False
        self.dropped = 0  # answers dropped because a newer request exists (tests, diagnostics)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(debounce_ms))
        self._timer.timeout.connect(self.flush)
        self._threads: dict[str, QThread] = {}
        self._workers: dict[str, ReluLabWorker] = {}
        self._warmed = 0
        for kind, signal in ((LAB, self._send_lab), (RATE, self._send_rate)):
            thread = QThread(self)
            thread.setObjectName(f"relu-lab-{kind}")
            worker = ReluLabWorker()
            worker.moveToThread(thread)
            signal.connect(worker.compute)
            worker.computed.connect(self._on_computed)
            worker.rate_computed.connect(self._on_rate)
            worker.progress.connect(self._on_progress)
            worker.failed.connect(self._on_failed)
            worker.finished_request.connect(self._on_finished)
            worker.warmed.connect(self._on_warmed)
            self._warm.connect(worker.warm_up)
            thread.finished.connect(worker.deleteLater)
            thread.start()
            self._threads[kind] = thread
            self._workers[kind] = worker
        self._warm.emit()  # queued: each worker runs it first, on its own thread
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------ API
    @property
    def threads(self) -> tuple[QThread, ...]:
        """The worker threads (lab, rate), for tests: ``isRunning``."""
        return (self._threads[LAB], self._threads[RATE])

    def latest_request_id(self, kind: str = LAB) -> int:
        """Id of the newest submitted request of ``kind`` (0 before the first)."""
        req = self._latest[kind]
        return req.request_id if req is not None else 0

    @property
    def warmed(self) -> bool:
        """Whether both workers have done torch's one-time imports (cancel is prompt from then on)."""
        return self._warmed >= len(self._workers)

    @property
    def busy(self) -> bool:
        """Whether the newest lab request has not finished yet."""
        return self._busy[LAB]

    @property
    def rate_busy(self) -> bool:
        """Whether the newest rate request has not finished yet."""
        return self._busy[RATE]

    @property
    def has_pending(self) -> bool:
        """Whether a lab request waits for the debounce timer."""
        return self._pending is not None

    def schedule(self, settings: ReluLabSettings) -> None:
        """Debounced lab request: the last call within the debounce interval wins."""
        if self._shut_down:
            return
        self._pending = settings
        self._timer.start()

    def flush(self) -> int | None:
        """Submit a scheduled lab request now; returns its id (``None`` when nothing was pending)."""
        self._timer.stop()
        if self._pending is None:
            return None
        settings, self._pending = self._pending, None
        return self.submit(settings)

    def submit(self, settings: ReluLabSettings) -> int:
        """Cancel the running lab request and send a new one at once; returns its id."""
        return self._submit(ReluLabRequest(next(self._ids), LAB, settings), self._send_lab)

    def submit_rate(self, settings: ReluLabSettings, steps: int = 8) -> int:
        """Cancel the running BO loop and start a new one; returns its id."""
        return self._submit(ReluLabRequest(next(self._ids), RATE, settings, int(steps)), self._send_rate)

    def cancel(self) -> None:
        """Stop the newest lab request (and drop a scheduled one)."""
        self._timer.stop()
        self._pending = None
        self._cancel(LAB)

    def cancel_rate(self) -> None:
        """Stop the running BO loop (its answer, if any, is dropped)."""
        self._cancel(RATE)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything, stop the threads and wait for them; idempotent. Returns whether they stopped."""
        self._shut_down = True
        self.cancel()
        self.cancel_rate()
        for thread in self._threads.values():
            if thread.isRunning():
                thread.quit()
        for thread in self._threads.values():
            thread.wait(timeout_ms)
        stopped = not any(t.isRunning() for t in self._threads.values())
        if stopped:
            for kind in (LAB, RATE):
                self._set_busy(kind, False)
            if self._gc_held:
                self._gc_held = False
                _release_gui_thread_gc()
        return stopped

    # ------------------------------------------------------------------ internals
    def _submit(self, request: ReluLabRequest, signal: Signal) -> int:
        if self._shut_down:
            raise RuntimeError("the ReLU lab controller is shut down")
        self._cancel(request.kind)
        self._latest[request.kind] = request
        self._set_busy(request.kind, True)
        signal.emit(request)
        return request.request_id

    def _cancel(self, kind: str) -> None:
        req = self._latest[kind]
        if req is not None:
            req.cancel_event.set()

    def _is_latest(self, kind: str, request_id: int) -> bool:
        req = self._latest[kind]
        return req is not None and req.request_id == request_id and not req.cancelled() and not self._shut_down

    @Slot()
    def _on_warmed(self) -> None:
        self._warmed += 1

    @Slot(object)
    def _on_computed(self, answer: ReluLabAnswer) -> None:
        if not self._is_latest(LAB, answer.request_id):
            self.dropped += 1
            return
        self.result_ready.emit(answer)

    @Slot(object)
    def _on_rate(self, answer: BoundaryRateAnswer) -> None:
        if not self._is_latest(RATE, answer.request_id):
            self.dropped += 1
            return
        self.rate_ready.emit(answer)

    @Slot(object)
    def _on_progress(self, progress: BoundaryRateProgress) -> None:
        if self._is_latest(RATE, progress.request_id):
            self.rate_progress.emit(progress)

    @Slot(object)
    def _on_failed(self, failure: ReluLabFailure) -> None:
        if not self._is_latest(failure.kind, failure.request_id):
            self.dropped += 1
            return
        self.failed.emit(failure)

    @Slot(str, int)
    def _on_finished(self, kind: str, request_id: int) -> None:
        req = self._latest[kind]
        if req is not None and req.request_id == request_id:
            self._set_busy(kind, False)

    def _set_busy(self, kind: str, busy: bool) -> None:
        if busy != self._busy[kind]:
            self._busy[kind] = busy
            (self.busy_changed if kind == LAB else self.rate_busy_changed).emit(busy)
