"""NewestRequestController: newest request wins, superseded work is cancelled, shutdown waits for it.

The controller's bookkeeping is tested here against a stand-in for the lab process that computes
``value ** 2`` on a thread (the same messages: answers reach the GUI thread later, from its event
loop, and ``LabEnded`` is recorded off the GUI thread); the real process is exercised in
``tests/engine/test_lab_process.py`` and by the lab panels' tests.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import pytest
from PySide6.QtCore import QObject, QTimer, Signal

from lla_studio.engine.background import NewestRequestController
from lla_studio.engine.messages import Cancel, Compute, LabAnswer, LabEnded, LabStarted


@dataclass(frozen=True)
class _Request:
    request_id: int
    value: float = 0.0
    hold: bool = False  # wait until cancelled (a long computation that a newer request stops)


class _FakeLab(QObject):
    """Computes on one thread per request; a GUI-thread timer hands the answers to the controller
    (plain Python threads, so no Qt object is touched off the GUI thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox: queue.Queue = queue.Queue()
        self.timer = QTimer(self)
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._drain)
        self.timer.start()
        self.owners: dict[str, object] = {}
        self.cancels: dict[tuple[str, int], threading.Event] = {}
        self.ended: dict[tuple[str, int], str] = {}
        self.cv = threading.Condition()
        self.computed: list[int] = []
        self.started = threading.Event()
        self.threads: list[threading.Thread] = []
        self.detached = False

    def attach(self, client, lanes) -> None:
        for lane in lanes:
            self.owners[lane] = client

    def detach(self, client) -> None:
        self.detached = True
        self.timer.stop()
        for t in self.threads:
            t.join(5)

    def send(self, msg, start: bool = True):
        match msg:
            case Compute(lane=lane, request_id=rid, job=job):
                event = self.cancels.setdefault((lane, rid), threading.Event())
                t = threading.Thread(target=self._work, args=(lane, rid, job, event))
                self.threads.append(t)
                t.start()
            case Cancel(lane=lane, request_id=rid):
                self.cancels.setdefault((lane, rid), threading.Event()).set()
        return None

    def _work(self, lane, rid, job, cancel) -> None:
        self.outbox.put(LabStarted(lane, rid))
        self.started.set()
        if job.hold and not cancel.wait(10.0):
            raise AssertionError("never cancelled")
        if cancel.is_set():
            outcome = "cancelled"
        else:
            self.computed.append(rid)
            self.outbox.put(LabAnswer(lane, rid, (rid, job.value**2)))
            outcome = "completed"
        with self.cv:
            self.ended[(lane, rid)] = outcome
            self.cv.notify_all()
        self.outbox.put(LabEnded(lane, rid, outcome))

    def wait_ended(self, lane, rid, timeout_s=10.0):
        with self.cv:
            self.cv.wait_for(lambda: (lane, rid) in self.ended, timeout_s)
            return self.ended.get((lane, rid))

    def _drain(self) -> None:
        while True:
            try:
                msg = self.outbox.get_nowait()
            except queue.Empty:
                return
            owner = self.owners.get(msg.lane)
            if owner is not None and not self.detached:
                owner.lab_message(msg)


class _Controller(NewestRequestController):
    name = "test"
    answered = Signal(int, float)
    busy_changed = Signal(bool)

    def __init__(self, lab) -> None:
        super().__init__(debounce_ms=50, primary="square", lab=lab)
        self._add_kind("square")
        self.failures: list[str] = []

    def submit(self, value: float, hold: bool = False) -> int:
        return self._submit(_Request(self._next_id(), value=value, hold=hold), "square")

    def _busy_signal(self, kind: str):
        return self.busy_changed

    def _answered(self, kind, request_id, answer) -> None:
        if self._accept(kind, request_id):
            self.answered.emit(*answer)

    def _failed(self, kind, request_id, stage, message, error_type) -> None:
        self.failures.append(message)


@pytest.fixture
def lab(qtbot):
    return _FakeLab()


@pytest.fixture
def controller(qtbot, lab):
    c = _Controller(lab)
    yield c
    assert c.shutdown()


def test_a_newer_request_cancels_the_running_one(qtbot, controller, lab):
    got: list[tuple[int, float]] = []
    controller.answered.connect(lambda i, v: got.append((i, v)))
    first = controller.submit(2.0, hold=True)
    assert lab.started.wait(5.0)
    second = controller.submit(3.0)
    qtbot.waitUntil(lambda: not controller.busy, timeout=5000)
    assert got == [(second, 9.0)]
    assert lab.computed == [second]  # the held request stopped without an answer
    qtbot.waitUntil(lambda: controller.state(first) == "cancelled", timeout=5000)
    assert first < second and controller.state(second) == "completed"


def test_debounce_collapses_a_burst_into_the_last_value(qtbot, controller, lab):
    got: list[float] = []
    controller.answered.connect(lambda i, v: got.append(v))
    for v in (1.0, 2.0, 3.0, 4.0):
        controller.schedule(v)
    assert controller.has_pending
    qtbot.waitUntil(lambda: got == [16.0], timeout=5000)
    assert not controller.has_pending and len(lab.computed) == 1


def test_stale_and_cancelled_answers_are_dropped(qtbot, controller):
    rid = controller.submit(5.0)
    qtbot.waitUntil(lambda: not controller.busy, timeout=5000)
    dropped = controller.dropped
    assert not controller._accept("square", rid - 1)  # an older id
    controller.cancel()
    assert not controller._accept("square", rid)  # cancelled
    assert controller.dropped == dropped + 2


def test_a_lost_request_reaches_the_failure_signal_and_frees_the_controller(qtbot, controller, lab):
    rid = controller.submit(1.0, hold=True)
    assert lab.started.wait(5.0)
    controller.lab_lost(controller._lanes["square"], rid, "lab process exited (code -9); the next request restarts it")
    assert controller.failures == ["lab process exited (code -9); the next request restarts it"]
    assert not controller.busy and controller.state(rid) == "lost"
    lab.cancels[(controller._lanes["square"], rid)].set()  # let the stand-in's thread end


def test_shutdown_cancels_waits_and_refuses_new_work(qtbot, lab):
    c = _Controller(lab)
    rid = c.submit(1.0, hold=True)
    assert lab.started.wait(5.0)
    assert c.shutdown() and c.shutdown()  # idempotent, and the held request was cancelled
    assert c.state(rid) == "cancelled" and not c.busy and not c.attached and lab.detached
    with pytest.raises(RuntimeError, match="test controller is shut down"):
        c.submit(1.0)
    c.schedule(2.0)  # ignored after shutdown
    assert not c.has_pending
