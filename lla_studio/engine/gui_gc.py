"""Cyclic garbage collection on the GUI thread only, while engine worker threads run.

Shared by every engine controller (study, surfaces, previews, posterior lab): the first one to
start switches automatic GC off and collects from a GUI-thread timer; the last one to stop
switches it back on. See :class:`_GuiThreadGarbageCollector` for why.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer, Slot

__all__ = ["_acquire_gui_thread_gc", "_release_gui_thread_gc"]


class _GuiThreadGarbageCollector(QObject):
    """Cyclic garbage collection on the GUI thread only, while worker threads run.

    Python's cyclic GC runs in whichever thread happens to allocate. When the worker thread triggers it
    (torch's lazy ``torch._dynamo``/sympy import at the first VI run allocates heavily), it may finalize
    PySide wrappers of GUI-thread Qt objects (timers, event loops, connections) from the worker thread;
    we saw that deadlock the GUI thread. So, like pyqtgraph's ``GarbageCollector``, automatic GC is
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
