"""Cyclic garbage collection on the GUI thread only, while engine threads run.

Shared by the clients of the child processes (the study engine and the lab process): their pipe
threads unpickle every message, allocating as they go. The first client to start switches automatic
GC off and collects from a GUI-thread timer; the last one to stop switches it back on. See
:class:`_GuiThreadGarbageCollector` for why.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer, Slot

__all__ = ["_acquire_gui_thread_gc", "_release_gui_thread_gc", "freeze_long_lived", "thaw_long_lived"]


class _GuiThreadGarbageCollector(QObject):
    """Cyclic garbage collection on the GUI thread only, while worker threads run.

    Python's cyclic GC runs in whichever thread happens to allocate. When another thread triggers it
    (a pipe thread unpickling a snapshot; before the labs moved to their own process, torch's lazy
    ``torch._dynamo``/sympy import at the first VI run on a worker thread), it may finalize PySide
    wrappers of GUI-thread Qt objects (timers, event loops, connections) from that thread; we saw that
    deadlock the GUI thread. So, like pyqtgraph's ``GarbageCollector``, automatic GC is
    switched off and a GUI-thread timer collects by the usual generation thresholds.
    """

    def __init__(self, interval_ms: int = 500) -> None:
        super().__init__()
        self._threshold = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)
        self._timer.start()

    @Slot()
    def collect(self) -> None:
        """Collect the generations whose allocation counts passed their thresholds."""
        t0, t1, t2 = self._threshold
        c0, c1, c2 = gc.get_count()
        if c0 > t0:
            gc.collect(0)
            if c1 > t1:
                gc.collect(1)
                if c2 > t2:
                    gc.collect(2)

    def stop(self) -> None:
        self._timer.stop()


_gc_users = 0
_gc_collector: _GuiThreadGarbageCollector | None = None


def _acquire_gui_thread_gc() -> None:
    """Start GUI-thread-only GC (first user; call on the GUI thread). Leaves an app-wide setup alone."""
    global _gc_users, _gc_collector
    if _gc_users == 0 and gc.isenabled():
        gc.disable()
        _gc_collector = _GuiThreadGarbageCollector()
    _gc_users += 1


def _release_gui_thread_gc() -> None:
    """Restore automatic GC when the last user is gone (if we were the ones who switched it off)."""
    global _gc_users, _gc_collector
    _gc_users = max(0, _gc_users - 1)
    if _gc_users == 0 and _gc_collector is not None:
        _gc_collector.stop()
        _gc_collector.deleteLater()
        _gc_collector = None
        gc.enable()


def freeze_long_lived() -> float:
    """Collect once, then move every surviving object to the permanent generation (``gc.freeze``).

    The GUI process holds many GC-tracked objects once Qt, pyqtgraph and numpy are imported and the
    window is built (~300 000 when torch was imported here too); they live as long as the window. A full
    collection traverses all of them: 100–200 ms on the GUI thread, a visible stall, whenever
    allocation during a run triggers one. Frozen, they are skipped and a full collection only walks
    what was allocated since. Call after the window is built and after a heavy lazy import; undone
    by :func:`thaw_long_lived` when the window closes (so closed windows can be collected).
    Returns the seconds the collection took.
    """
    import time

    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - t0


def thaw_long_lived() -> None:
    """Give the frozen objects back to the collector (they join the oldest generation)."""
    gc.unfreeze()
