"""The ReLU extrapolation lab's requests, computed in the lab process: the controller the panel talks to.

The GUI (`lla_studio.gui.relu_lab_panel.ReluLabPanel`) never touches torch. It describes what it
wants as a frozen `ReluLabSettings` (`lla_studio.core.relu_lab_types`, torch-free) and receives
frozen answers holding the core's numpy-only results (`ReluLabResult`, `BoundaryRateResult`). The
requests and answers are the plain data of `lla_studio.engine.lab_jobs`, re-exported here.

`ReluLabController` (a `lla_studio.engine.background.NewestRequestController`) lives on the GUI
thread and owns two lanes of the lab process: ``"lab"`` (fits, curves, acquisition maximizers:
what the sliders drive) and ``"rate"`` (the boundary-rate BO loop, on demand, tens of seconds), so a
running BO loop never delays the slider. It owns the growing request ids, the debounce timer
(`schedule` collapses a burst of slider moves into one request) and cancellation: submitting a
request cancels the previous one of its kind in the lab process, where the core checks the flag
inside fits and optimizations, so a superseded computation stops within about a second. Answers
for anything but the newest request of their kind are dropped before they reach the view.

The lab lane keeps a `FitCache` of torch models in the lab process: in the default fixed input
frame the fits do not depend on the box width, so moving the box slider only re-optimizes the
acquisition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from lla_studio.core.relu_lab_types import ReluLabSettings
from lla_studio.engine.background import NewestRequestController
from lla_studio.engine.lab_jobs import (
    LAB,
    RATE,
    BoundaryRateAnswer,
    BoundaryRateProgress,
    ReluLabAnswer,
    ReluLabRequest,
)
from lla_studio.engine.lab_process import LabProcess

__all__ = [
    "LAB",
    "RATE",
    "BoundaryRateAnswer",
    "BoundaryRateProgress",
    "ReluLabAnswer",
    "ReluLabController",
    "ReluLabFailure",
    "ReluLabRequest",
]

DEBOUNCE_MS = 150


@dataclass(frozen=True)
class ReluLabFailure:
    """A request that failed; ``message`` names the culprit (or says that the lab process died)."""

    request_id: int
    kind: str
    message: str
    error_type: str


class ReluLabController(NewestRequestController):
    """Request ids, the debounce timer and cancellation of ReLU-lab requests (GUI thread).

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

    def __init__(
        self, parent: QObject | None = None, debounce_ms: int = DEBOUNCE_MS, lab: LabProcess | None = None
    ) -> None:
        super().__init__(parent, debounce_ms, primary=LAB, lab=lab)
        self._add_kind(LAB)
        self._add_kind(RATE)

    # ------------------------------------------------------------------ API
    def latest_request_id(self, kind: str = LAB) -> int:
        """Id of the newest submitted request of ``kind`` (0 before the first)."""
        sub = self._latest[kind]
        return sub.request.request_id if sub is not None else 0

    @property
    def rate_busy(self) -> bool:
        """Whether the newest rate request has not finished yet."""
        return self._busy[RATE]

    def submit(self, settings: ReluLabSettings) -> int:
        """Cancel the running lab request and send a new one at once; returns its id."""
        return self._submit(ReluLabRequest(self._next_id(), LAB, settings), LAB)

    def submit_rate(self, settings: ReluLabSettings, steps: int = 8) -> int:
        """Cancel the running BO loop and start a new one; returns its id."""
        return self._submit(ReluLabRequest(self._next_id(), RATE, settings, int(steps)), RATE)

    def cancel_rate(self) -> None:
        """Stop the running BO loop (its answer, if any, is dropped)."""
        self._cancel(RATE)

    # ------------------------------------------------------------------ internals
    def _busy_signal(self, kind: str):
        return self.busy_changed if kind == LAB else self.rate_busy_changed

    def _answered(self, kind: str, request_id: int, answer: Any) -> None:
        if kind == LAB:
            self._on_computed(answer)
        else:
            self._on_rate(answer)

    def _progressed(self, kind: str, request_id: int, progress: Any) -> None:
        self.rate_progress.emit(progress)

    def _failed(self, kind: str, request_id: int, stage: str, message: str, error_type: str) -> None:
        self.failed.emit(ReluLabFailure(request_id, kind, message, error_type))

    @Slot(object)
    def _on_computed(self, answer: ReluLabAnswer) -> None:
        if self._accept(LAB, answer.request_id):
            self.result_ready.emit(answer)

    @Slot(object)
    def _on_rate(self, answer: BoundaryRateAnswer) -> None:
        if self._accept(RATE, answer.request_id):
            self.rate_ready.emit(answer)
