"""Background prior-sample preview: a worker on a ``QThread`` and the controller the GUI talks to.

Snapshot in, snapshot out: the GUI calls :meth:`PriorPreviewController.request` with a frozen graph
and a slice; the controller debounces (150 ms), numbers the request with a growing ``request_id`` and
hands it to :class:`PriorPreviewWorker` on its own thread. While the worker is busy, newer requests
replace the one waiting (at most one waits), and answers older than the newest request are dropped,
so the newest request always wins and nothing piles up. Results are :class:`PriorPreviewResult`
(detached, read-only numpy arrays); failures are :class:`PriorPreviewFailed` with the message.

torch (through :mod:`lla_studio.core.kernels.preview`) is imported by the worker, on its thread, on
the first request: importing this module stays cheap and torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from lla_studio.core.errors import LLAStudioError
from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.engine.background import configure_torch_threads

__all__ = [
    "PriorPreviewController",
    "PriorPreviewFailed",
    "PriorPreviewRequest",
    "PriorPreviewResult",
    "PriorPreviewWorker",
]

DEBOUNCE_MS = 150


@dataclass(frozen=True)
class PriorPreviewRequest:
    """What to sample.

    Attributes:
        request_id: Grows with every request; answers carry it.
        graph: A valid kernel graph.
        feature_names: Model features in column order.
        x: Feature along the horizontal axis.
        y: Feature along the vertical axis (``None``: a 1-D slice).
        n_samples: Number of prior samples.
        seed: Seed of the draws.
        resolution: Grid points per axis (``None``: the core's default).
    """

    request_id: int
    graph: KernelGraph
    feature_names: tuple[str, ...]
    x: str
    y: str | None = None
    n_samples: int = 5
    seed: int = 0
    resolution: int | None = None


@dataclass(frozen=True, eq=False)
class PriorPreviewResult:
    """Samples for one request.

    Attributes:
        request_id: The request answered.
        request: The request itself.
        x: Grid of the ``x`` feature (unit cube), shape ``r``.
        y: Grid of the ``y`` feature for a 2-D slice, else ``None``.
        samples: ``n_samples x r`` (1-D) or ``n_samples x r x r`` (2-D, ``[sample, iy, ix]``).
        seconds: Compute time.
    """

    request_id: int
    request: PriorPreviewRequest
    x: np.ndarray
    y: np.ndarray | None
    samples: np.ndarray
    seconds: float


@dataclass(frozen=True)
class PriorPreviewFailed:
    """A request that could not be sampled; ``message`` names the culprit."""

    request_id: int
    request: PriorPreviewRequest
    message: str


class PriorPreviewWorker(QObject):
    """Computes prior samples; lives on its own thread (no parent)."""

    finished = Signal(object)  # PriorPreviewResult
    failed = Signal(object)  # PriorPreviewFailed

    @Slot()
    def warm_up(self) -> None:
        """Import torch/gpytorch on this thread, so the GUI stays responsive meanwhile."""
        try:
            import lla_studio.core.kernels.preview  # noqa: F401

            configure_torch_threads()
        except ImportError:  # pragma: no cover - reported by compute()
            pass

    @Slot(object)
    def compute(self, request: PriorPreviewRequest) -> None:
        """Sample ``request`` and emit :attr:`finished` or :attr:`failed`."""
        t0 = time.perf_counter()
        try:
            self.warm_up()
            from lla_studio.core.kernels.preview import SliceSpec, prior_samples

            spec = SliceSpec(request.x, request.y, resolution=request.resolution)
            out = prior_samples(request.graph, request.feature_names, spec, request.n_samples, request.seed)
        except LLAStudioError as err:
            self.failed.emit(PriorPreviewFailed(request.request_id, request, str(err)))
            return
        except Exception as err:  # noqa: BLE001 - a thread boundary: report, never raise out of a slot
            self.failed.emit(PriorPreviewFailed(request.request_id, request, f"{type(err).__name__}: {err}"))
            return
        self.finished.emit(
            PriorPreviewResult(request.request_id, request, out.x, out.y, out.samples, time.perf_counter() - t0)
        )


class PriorPreviewController(QObject):
    """Main-thread side of the preview: debounce, newest-request-wins, thread lifetime.

    The thread starts on the first request; :meth:`shutdown` (also run when the application quits)
    stops it and waits for it.

    Signals:
        sampled: A :class:`PriorPreviewResult` for the newest request.
        failed: A :class:`PriorPreviewFailed` for the newest request.
        busy_changed: ``True`` while a request is pending or being computed.
    """

    sampled = Signal(object)
    failed = Signal(object)
    busy_changed = Signal(bool)
    _submit = Signal(object)
    _warm = Signal()

    def __init__(self, parent: QObject | None = None, *, debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._dispatch)
        self._next_id = 0
        self._latest_id = -1
        self._staged: PriorPreviewRequest | None = None  # debounced, not yet sent
        self._in_flight: int | None = None  # id of the request the worker is computing
        self._thread: QThread | None = None
        self._worker: PriorPreviewWorker | None = None
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
            immediate: Skip the debounce (the request still waits for a busy worker).
        """
        self._next_id += 1
        req = PriorPreviewRequest(
            self._next_id, graph, tuple(feature_names), x, y, int(n_samples), int(seed), resolution
        )
        self._latest_id = req.request_id
        self._staged = req
        self._set_busy(True)
        self._ensure_thread()  # starts importing torch on the worker thread during the debounce
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
        """Whether the worker thread runs."""
        return self._thread is not None and self._thread.isRunning()

    def is_busy(self) -> bool:
        """Whether a request is pending or being computed."""
        return self._busy

    @Slot()
    def shutdown(self) -> None:
        """Stop the worker thread and wait for it (idempotent)."""
        self._timer.stop()
        self._staged = None
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.quit()
            thread.wait()
            # the thread is stopped: deleting the worker (Python owns it) from here is safe
            self._worker = None
        self._in_flight = None
        self._set_busy(False)

    # -- internals ---------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        self._thread = QThread()
        self._thread.setObjectName("lla-prior-preview")
        self._worker = PriorPreviewWorker()
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.compute)
        self._warm.connect(self._worker.warm_up)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._thread.start()
        self._warm.emit()

    def _dispatch(self) -> None:
        if self._staged is None or self._in_flight is not None:
            return  # the newest staged request goes out when the worker answers
        req, self._staged = self._staged, None
        self._ensure_thread()
        self._in_flight = req.request_id
        self._submit.emit(req)

    def _answered(self, answer: Any) -> bool:
        self._in_flight = None
        fresh = answer.request_id >= self._latest_id
        if self._staged is not None and not self._timer.isActive():
            self._dispatch()
        self._set_busy(self._staged is not None or self._in_flight is not None)
        return fresh

    @Slot(object)
    def _on_finished(self, result: PriorPreviewResult) -> None:
        if self._answered(result):
            self.sampled.emit(result)

    @Slot(object)
    def _on_failed(self, failure: PriorPreviewFailed) -> None:
        if self._answered(failure):
            self.failed.emit(failure)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)
