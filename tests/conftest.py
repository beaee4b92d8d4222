import os
import random

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _seed_global_generators():
    """Every test starts from the same global RNG state, so a test that draws test points with
    the global generators sees the same points on every machine and in every order."""
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


# -- no test leaves a worker running -----------------------------------------------------------
_started_qthreads: "weakref.WeakSet | None" = None


def _track_qthreads():
    """Record every QThread started in this process (from the first test that has PySide6 loaded)."""
    global _started_qthreads
    if _started_qthreads is None:
        import sys
        import weakref

        if "PySide6.QtCore" not in sys.modules:
            return None
        from PySide6.QtCore import QThread

        _started_qthreads = weakref.WeakSet()
        original = QThread.start

        def start(self, *args):
            _started_qthreads.add(self)
            return original(self, *args)

        QThread.start = start
    return _started_qthreads


def _child_pids() -> set[int]:
    """PIDs of this process's living children (Linux: from /proc; elsewhere multiprocessing's)."""
    import multiprocessing

    me = os.getpid()
    pids = {p.pid for p in multiprocessing.active_children() if p.pid is not None}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != b"Z":  # state, ppid (zombies are reaped below)
            pids.add(int(entry))
    return pids


def _helper_pids() -> set[int]:
    """Long-lived helpers multiprocessing starts for the whole process (not a test's to stop)."""
    from multiprocessing import resource_tracker

    pid = getattr(resource_tracker._resource_tracker, "_pid", None)
    return {pid} if pid else set()


@pytest.fixture(autouse=True)
def _no_leftover_workers():
    """Fail a test that leaves a QThread or a child process running after its own teardown (the
    leftovers are stopped first, by PID for processes, so the next test starts clean)."""
    import time

    grace = float(os.environ.get("LLA_LEFTOVER_GRACE_S", "10"))  # for a shutdown still ending
    before = _child_pids()
    yield
    leftovers: list[str] = []
    threads = _track_qthreads()
    for thread in list(threads or ()):
        try:
            running = thread.isRunning() and not thread.wait(int(grace * 1000))
        except RuntimeError:  # the C++ object is gone: not running
            continue
        if running:
            leftovers.append(f"QThread {thread.objectName() or type(thread).__name__}")
            thread.quit()
    deadline = time.monotonic() + grace
    while True:
        new = _child_pids() - before - _helper_pids()
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in sorted(new):
        leftovers.append(f"child process {pid}")
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    if leftovers:
        pytest.fail("left running after the test: " + ", ".join(leftovers), pytrace=False)
