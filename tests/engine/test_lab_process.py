"""The lab process: requests go out as plain data, answers come back as numpy snapshots, cancellation
crosses the boundary, and a dead process is reported in one line and restarted by the next request."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from lla_studio.core.kernels import parse_kernel
from lla_studio.engine.posterior_worker import PosteriorController
from lla_studio.engine.preview_worker import PriorPreviewController

TIMEOUT_MS = 120_000  # the first request waits for the process to import torch (seconds, loaded box)
SMALL = {"grid_n": 32, "starts": 4, "n_samples": 20}
SLOW = {"type": "shear-frame"}  # with 400 VI steps: tens of seconds, so a cancel lands mid-computation


@pytest.fixture
def controller(qtbot):
    c = PosteriorController(debounce_ms=10)
    got, failures = [], []
    c.result_ready.connect(got.append)
    c.failed.connect(failures.append)
    c.got, c.failures = got, failures
    yield c
    assert c.shutdown()
    assert not c.lab.alive


def test_a_request_answers_in_stages_with_read_only_numpy_snapshots(qtbot, controller):
    rid = controller.submit({"type": "banana"}, vi=True, vi_steps=10, **SMALL)
    qtbot.waitUntil(lambda: controller.state(rid) == "completed" and not controller.busy, timeout=TIMEOUT_MS)
    assert [s.stage for s in controller.got] == ["laplace", "vi-warm", "vi"]
    snap = controller.got[-1]
    assert snap.request_id == rid and snap.final and snap.density.shape == (32, 32)
    assert isinstance(snap.density, np.ndarray) and not snap.density.flags.writeable
    assert not controller.failures
    assert controller.lab.process.name == "lla-lab" and controller.lab.alive


def test_a_superseded_request_is_cancelled_in_the_lab_process(qtbot, controller):
    slow = controller.submit(SLOW, vi=True, vi_steps=400, **SMALL)
    qtbot.waitUntil(lambda: controller.state(slow) == "running", timeout=TIMEOUT_MS)
    qtbot.wait(300)  # inside the fits
    fast = controller.submit({"type": "banana"}, **SMALL)
    qtbot.waitUntil(lambda: controller.state(fast) == "completed", timeout=TIMEOUT_MS)
    # the slow one stopped by its cancel flag (not by running to the end), and its answers, if any
    # arrived before, are not the newest: only the fast request's snapshot is the last one shown
    assert controller.state(slow) == "cancelled"
    assert controller.got[-1].request_id == fast and not controller.failures


def test_a_killed_lab_process_is_one_line_and_the_next_request_restarts_it(qtbot, controller):
    rid = controller.submit(SLOW, vi=True, vi_steps=400, **SMALL)
    qtbot.waitUntil(lambda: controller.state(rid) == "running", timeout=TIMEOUT_MS)
    first = controller.lab.process.pid
    os.kill(first, signal.SIGKILL)  # as the out-of-memory killer would
    qtbot.waitUntil(lambda: bool(controller.failures), timeout=30_000)
    (failure,) = controller.failures
    assert failure.request_id == rid and failure.error_type == "LabProcessError"
    assert failure.message == "lab process exited (code -9); the next request restarts it"
    assert not controller.busy and controller.state(rid) == "lost"
    again = controller.submit({"type": "banana"}, **SMALL)
    qtbot.waitUntil(lambda: controller.state(again) == "completed", timeout=TIMEOUT_MS)
    assert controller.got[-1].request_id == again and controller.lab.process.pid != first
    assert len(controller.failures) == 1


def test_a_request_that_cannot_be_sent_and_a_bad_spec_are_one_line_each(qtbot, controller):
    unsent = controller.submit({"type": "banana", "c": lambda: 1.0}, **SMALL)  # does not pickle
    assert len(controller.failures) == 1 and not controller.busy and controller.state(unsent) == "failed"
    assert controller.failures[0].message.startswith("lab process: could not send PosteriorRequest (")
    bad = controller.submit({"type": "nope"}, **SMALL)
    qtbot.waitUntil(lambda: len(controller.failures) == 2 and not controller.busy, timeout=TIMEOUT_MS)
    failure = controller.failures[1]
    assert failure.request_id == bad and failure.error_type == "PosteriorError" and failure.stage == "model"
    assert "unknown model spec type 'nope'" in failure.message and "Traceback" not in failure.message
    ok = controller.submit({"type": "banana"}, **SMALL)  # the process keeps serving
    qtbot.waitUntil(lambda: controller.state(ok) == "completed", timeout=TIMEOUT_MS)


def test_the_prior_preview_and_a_lab_share_one_process(qtbot, controller):
    preview = PriorPreviewController(debounce_ms=10)
    try:
        assert not preview.is_running()  # nothing held before the first request
        graph = parse_kernel("rbf(x1) + linear(x2)")
        with qtbot.waitSignal(preview.sampled, timeout=TIMEOUT_MS) as blocker:
            preview.request(graph, ["x1", "x2"], "x1", n_samples=3)
        result = blocker.args[0]
        assert result.samples.shape == (3, 100) and not result.samples.flags.writeable
        assert preview.is_running() and controller.lab.process is not None
        rid = controller.submit({"type": "banana"}, **SMALL)
        qtbot.waitUntil(lambda: controller.state(rid) == "completed", timeout=TIMEOUT_MS)
        with qtbot.waitSignal(preview.failed, timeout=TIMEOUT_MS) as blocker:
            preview.request(graph, ["x1"], "x1", n_samples=3)  # x2 is not a feature
        assert "x2" in blocker.args[0].message
    finally:
        preview.shutdown()
    assert not preview.is_running()
    assert controller.lab.alive  # still held by the posterior controller
