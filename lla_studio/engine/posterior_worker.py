"""The posterior lab's requests, computed in the lab process: the controller the panel talks to.

The GUI (`lla_studio.gui.posterior_lab.PosteriorLab`) never touches torch. It describes what it wants
as a frozen `PosteriorRequest` (a model spec as a plain dict plus analysis settings) and receives
frozen `PosteriorSnapshot`s: read-only numpy arrays ready to draw (normalised grid density, HPD
contour paths, Laplace ellipses, marginals, a quantile table, samples, VI traces) and the numbers of
the summary. Both types, the form metadata (`FieldInfo`, `model_fields`, `default_spec_dict`) and
the constants live in torch-free core modules (`lla_studio.core.posterior.snapshot`,
`lla_studio.core.posterior.forms`) and are re-exported here; the numerics are
`lla_studio.core.posterior.view.compute_posterior`, run by the lab process
(`lla_studio.engine.lab_server`).

`PosteriorController` (a `lla_studio.engine.background.NewestRequestController`) lives on the GUI
thread and owns the growing request ids, the debounce timer (`schedule` collapses a burst of edits
into one request) and cancellation: submitting a request cancels the previous one in the lab
process, where the core checks the flag inside its long loops, so a superseded computation stops
within about a second. Answers for any request but the newest are dropped before they reach the
view.

Each request answers in stages: ``"laplace"`` (Laplace, Laplace mixture, grid; fast) and, with VI on,
``"vi-warm"`` and ``"vi"`` (warm- then cold-started VI refinement on the same model, mixture and grid,
so the fast part is not recomputed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from lla_studio.core.posterior.forms import (
    EXPRESSION,
    MODEL_LABELS,
    PANEL_MODELS,
    FieldInfo,
    default_spec_dict,
    model_fields,
)
from lla_studio.core.posterior.snapshot import (
    HPD_MASSES,
    QUANTILE_METHODS,
    PosteriorRequest,
    PosteriorSnapshot,
)
from lla_studio.engine.background import NewestRequestController
from lla_studio.engine.lab_process import LabProcess

__all__ = [
    "EXPRESSION",
    "HPD_MASSES",
    "MODEL_LABELS",
    "PANEL_MODELS",
    "QUANTILE_METHODS",
    "FieldInfo",
    "PosteriorController",
    "PosteriorFailure",
    "PosteriorRequest",
    "PosteriorSnapshot",
    "default_spec_dict",
    "model_fields",
]

POSTERIOR = "posterior"  # the one kind of request


@dataclass(frozen=True)
class PosteriorFailure:
    """A request that failed: ``message`` names the culprit (a `PosteriorError` message, usually;
    ``"lab process exited (code -9); ..."`` when the lab process died)."""

    request_id: int
    stage: str
    message: str
    error_type: str


class PosteriorController(NewestRequestController):
    """Request ids, the debounce timer and cancellation of posterior-lab requests (GUI thread).

    Signals:
        result_ready(PosteriorSnapshot): an answer to the newest request (stale ones are dropped).
        failed(PosteriorFailure): the newest request failed.
        busy_changed(bool): whether the newest request is still being computed.
        submitted(int): a request id was sent to the lab process.
    """

    name = "posterior"
    result_ready = Signal(object)
    failed = Signal(object)
    busy_changed = Signal(bool)
    submitted = Signal(int)

    def __init__(self, parent: QObject | None = None, debounce_ms: int = 150, lab: LabProcess | None = None) -> None:
        super().__init__(parent, debounce_ms, primary=POSTERIOR, lab=lab)
        self._add_kind(POSTERIOR)

    @property
    def latest_request_id(self) -> int:
        """Id of the newest submitted request (0 before the first)."""
        sub = self._latest[POSTERIOR]
        return sub.request.request_id if sub is not None else 0

    def submit(self, spec: Mapping[str, Any], **settings: Any) -> int:
        """Cancel the running request and send a new one at once; returns its id."""
        request_id = self._submit(PosteriorRequest(self._next_id(), spec, **settings), POSTERIOR)
        self.submitted.emit(request_id)
        return request_id

    def _busy_signal(self, kind: str):
        return self.busy_changed

    def _answered(self, kind: str, request_id: int, answer: Any) -> None:
        self._on_computed(answer)

    def _failed(self, kind: str, request_id: int, stage: str, message: str, error_type: str) -> None:
        self.failed.emit(PosteriorFailure(request_id, stage, message, error_type))

    @Slot(object)
    def _on_computed(self, snapshot: PosteriorSnapshot) -> None:
        if self._accept(POSTERIOR, snapshot.request_id):
            self.result_ready.emit(snapshot)
