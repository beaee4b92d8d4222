"""Background computation for the ReLU extrapolation lab: workers on `QThread`s and their controller.

The GUI (`lla_studio.gui.relu_lab_panel.ReluLabPanel`) never touches torch. It describes what it
wants as a frozen `ReluLabSettings` and receives frozen answers holding the core's numpy-only
results (`ReluLabResult`, `BoundaryRateResult`).

Threads (CONVENTIONS §3):

* Two parent-less `ReluLabWorker`s, each moved to its own `QThread`: one computes the lab (fits,
  curves, acquisition maximizers: what the sliders drive), the other runs the boundary-rate BO
  loop (on demand, tens of seconds), so a running BO loop never delays the slider.
* `ReluLabController` (a `lla_studio.engine.background.NewestRequestController`) lives on the GUI
  thread and owns the threads, the growing request ids, the debounce timer (`schedule` collapses a burst of slider moves into one request) and cancellation:
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

import time
from dataclasses import dataclass

import torch
from PySide6.QtCore import QObject, Signal, Slot

from lla_studio.core.errors import Cancelled, LLAStudioError
from lla_studio.core.relu_lab import (
    BoundaryRateResult,
    FitCache,
    ReluLabResult,
    ReluLabSettings,
    boundary_rate,
    compute_relu_lab,
)
from lla_studio.engine.background import CancellableRequest, NewestRequestController, run_reporting

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

@dataclass(frozen=True)
class ReluLabRequest(CancellableRequest):
    """One computation the GUI asks for.

    Attributes:
        request_id: Grows with every request of a controller (both kinds share the counter).
        kind: ``LAB`` (curves and maximizers) or ``RATE`` (the boundary-rate BO loop).
        settings: What to compute.
        steps: BO steps per model (``RATE`` only).
        cancel_event: Set by the controller when a newer request of the same kind supersedes
            this one, or on shutdown.
    """

    kind: str
    settings: ReluLabSettings
    steps: int = 8


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

        def fail(message: str, error_type: str) -> None:
            self.failed.emit(ReluLabFailure(request.request_id, request.kind, message, error_type))

        work = self._lab if request.kind == LAB else self._rate
        try:
            run_reporting(
                request, lambda: work(request), fail,
                (LLAStudioError, ValueError, ArithmeticError, RuntimeError), Cancelled,
            )
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


class ReluLabController(NewestRequestController):
    """Owns the worker threads, request ids, the debounce timer and cancellation (GUI thread).

    Signals:
        result_ready(ReluLabAnswer): the lab for the newest lab request (stale ones are dropped).
        rate_ready(BoundaryRateAnswer): the BO loop for the newest rate request.
        rate_progress(BoundaryRateProgress): a BO step of the newest rate request finished.
        failed(ReluLabFailure): the newest request of its kind failed.
        busy_changed(bool): whether the newest lab request is still being computed.
        rate_busy_changed(bool): whether the newest rate request is still being computed.
    """

    name = "relu-lab"
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
        super().__init__(parent, debounce_ms, primary=LAB)
        self._warmed = 0
        for kind, send in ((LAB, self._send_lab), (RATE, self._send_rate)):
            worker = ReluLabWorker()
            worker.computed.connect(self._on_computed)
            worker.rate_computed.connect(self._on_rate)
            worker.progress.connect(self._on_progress)
            worker.failed.connect(self._on_failed)
            worker.warmed.connect(self._on_warmed)
            self._warm.connect(worker.warm_up)
            self._add_worker(kind, worker, send)
        self._warm.emit()  # queued: each worker runs it first, on its own thread

    # ------------------------------------------------------------------ API
    def latest_request_id(self, kind: str = LAB) -> int:
        """Id of the newest submitted request of ``kind`` (0 before the first)."""
        req = self._latest[kind]
        return req.request_id if req is not None else 0

    @property
    def warmed(self) -> bool:
        """Whether both workers have done torch's one-time imports (cancel is prompt from then on)."""
        return self._warmed >= len(self._workers)

    @property
    def rate_busy(self) -> bool:
        """Whether the newest rate request has not finished yet."""
        return self._busy[RATE]

    def submit(self, settings: ReluLabSettings) -> int:
        """Cancel the running lab request and send a new one at once; returns its id."""
        return self._submit(ReluLabRequest(self._next_id(), LAB, settings), LAB, self._send_lab)

    def submit_rate(self, settings: ReluLabSettings, steps: int = 8) -> int:
        """Cancel the running BO loop and start a new one; returns its id."""
        return self._submit(ReluLabRequest(self._next_id(), RATE, settings, int(steps)), RATE, self._send_rate)

    def cancel_rate(self) -> None:
        """Stop the running BO loop (its answer, if any, is dropped)."""
        self._cancel(RATE)

    # ------------------------------------------------------------------ internals
    def _busy_signal(self, kind: str):
        return self.busy_changed if kind == LAB else self.rate_busy_changed

    @Slot()
    def _on_warmed(self) -> None:
        self._warmed += 1

    @Slot(object)
    def _on_computed(self, answer: ReluLabAnswer) -> None:
        if self._accept(LAB, answer.request_id):
            self.result_ready.emit(answer)

    @Slot(object)
    def _on_rate(self, answer: BoundaryRateAnswer) -> None:
        if self._accept(RATE, answer.request_id):
            self.rate_ready.emit(answer)

    @Slot(object)
    def _on_progress(self, progress: BoundaryRateProgress) -> None:
        if self._is_latest(RATE, progress.request_id):
            self.rate_progress.emit(progress)

    @Slot(object)
    def _on_failed(self, failure: ReluLabFailure) -> None:
        if self._accept(failure.kind, failure.request_id):
            self.failed.emit(failure)
