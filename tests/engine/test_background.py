"""NewestRequestController: newest request wins, superseded work is cancelled, threads stop."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from PySide6.QtCore import QObject, Signal, Slot

from lla_studio.engine.background import CancellableRequest, NewestRequestController


@dataclass(frozen=True)
class _Request(CancellableRequest):
    value: float = 0.0
    hold: bool = False  # wait until cancelled (a long computation that a newer request stops)


class _Worker(QObject):
    done = Signal(int, float)
    finished_request = Signal(str, int)
    started = threading.Event()

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.computed: list[int] = []

    @Slot(object)
    def compute(self, request: _Request) -> None:
        try:
            if request.cancelled():
                return
            _Worker.started.set()
            if request.hold and not request.cancel_event.wait(10.0):
                raise AssertionError("never cancelled")
            if request.cancelled():
                return
            self.computed.append(request.request_id)
            self.done.emit(request.request_id, request.value**2)
        finally:
            self.finished_request.emit(self.kind, request.request_id)


class _Controller(NewestRequestController):
    name = "test"
    answered = Signal(int, float)
    busy_changed = Signal(bool)
    _send = Signal(object)

    def __init__(self) -> None:
        super().__init__(debounce_ms=50, primary="square")
        self.worker = _Worker("square")
        self.worker.done.connect(self._on_done)
        self._add_worker("square", self.worker, self._send)

    def submit(self, value: float, hold: bool = False) -> int:
        return self._submit(_Request(self._next_id(), value=value, hold=hold), "square", self._send)

    def _busy_signal(self, kind: str):
        return self.busy_changed

    @Slot(int, float)
    def _on_done(self, request_id: int, value: float) -> None:
        if self._accept("square", request_id):
            self.answered.emit(request_id, value)


@pytest.fixture
def controller(qtbot):
    c = _Controller()
    yield c
    assert c.shutdown()


def test_a_newer_request_cancels_the_running_one(qtbot, controller):
    got: list[tuple[int, float]] = []
    controller.answered.connect(lambda i, v: got.append((i, v)))
    _Worker.started.clear()
    first = controller.submit(2.0, hold=True)
    assert _Worker.started.wait(5.0)
    second = controller.submit(3.0)
    qtbot.waitUntil(lambda: not controller.busy, timeout=5000)
    assert got == [(second, 9.0)]
    assert controller.worker.computed == [second]  # the held request stopped without an answer
    assert first < second


def test_debounce_collapses_a_burst_into_the_last_value(qtbot, controller):
    got: list[float] = []
    controller.answered.connect(lambda i, v: got.append(v))
    for v in (1.0, 2.0, 3.0, 4.0):
        controller.schedule(v)
    assert controller.has_pending
    qtbot.waitUntil(lambda: got == [16.0], timeout=5000)
    assert not controller.has_pending and controller.worker.computed == [controller._latest["square"].request_id]


def test_stale_and_cancelled_answers_are_dropped(qtbot, controller):
    rid = controller.submit(5.0)
    qtbot.waitUntil(lambda: not controller.busy, timeout=5000)
    dropped = controller.dropped
    assert not controller._accept("square", rid - 1)  # an older id
    controller.cancel()
    assert not controller._accept("square", rid)  # cancelled
    assert controller.dropped == dropped + 2


def test_shutdown_stops_the_thread_and_refuses_new_work(qtbot):
    c = _Controller()
    thread = c.threads[0]
    assert thread.isRunning()
    _Worker.started.clear()
    c.submit(1.0, hold=True)
    assert _Worker.started.wait(5.0)
    assert c.shutdown() and c.shutdown()  # idempotent, and the held request was cancelled
    assert not thread.isRunning() and not c.busy
    with pytest.raises(RuntimeError, match="test controller is shut down"):
        c.submit(1.0)
    c.schedule(2.0)  # ignored after shutdown
    assert not c.has_pending
