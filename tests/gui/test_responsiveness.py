"""The GUI thread keeps answering while a study runs: a 10 ms QTimer heartbeat never stalls > 100 ms.

The window is shown (offscreen), so every snapshot repaints real pyqtgraph views. The heartbeat runs
from the end of the initial design until four model-based trials are done: surrogate fits,
acquisition optimization, slices and maps all happen in that window.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt, QTimer

from lla_studio.gui.main_window import MainWindow

PERIOD_MS = 10
MAX_STALL_MS = 100.0


def _heartbeat_during_run(qtbot, tmp_path, surrogate: str) -> tuple[np.ndarray, MainWindow]:
    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    w.ask_discard = lambda: True
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    if surrogate != w.session.surrogate.type:
        w.surrogate_combo.setCurrentText(surrogate)
    assert w.session.surrogate.type == surrogate
    stamps: list[float] = []
    beat = QTimer()
    beat.setTimerType(Qt.TimerType.PreciseTimer)
    beat.setInterval(PERIOD_MS)
    beat.timeout.connect(lambda: stamps.append(time.perf_counter()))
    initial = w.session.loop.initial_design
    w.run()
    qtbot.waitUntil(lambda: w.latest is not None and w.latest.n_evaluated >= initial, timeout=120_000)
    beat.start()
    n_fits_at_start = len(w.latest.hyperparameters)
    qtbot.waitUntil(lambda: w.latest.n_evaluated >= initial + 4, timeout=240_000)
    qtbot.waitUntil(lambda: w.pending_redraws() == 0, timeout=10_000)
    beat.stop()
    w.pause()
    qtbot.waitUntil(lambda: w.latest.status in ("paused", "finished"), timeout=10_000)
    assert len(w.latest.hyperparameters) - n_fits_at_start >= 3  # real fits happened under the heartbeat
    gaps = np.diff(np.asarray(stamps)) * 1e3 - PERIOD_MS
    return gaps, w


@pytest.mark.parametrize("surrogate", ["gp", "lla"])
def test_main_thread_never_stalls_during_a_run(qtbot, tmp_path, surrogate):
    gaps, w = _heartbeat_during_run(qtbot, tmp_path, surrogate)
    assert len(gaps) > 100, "the heartbeat barely ran"
    worst = float(gaps.max())
    assert worst < MAX_STALL_MS, (
        f"{surrogate}: the GUI thread stalled {worst:.0f} ms (p99 {np.percentile(gaps, 99):.0f} ms, "
        f"{int((gaps > 50).sum())} gaps > 50 ms of {len(gaps)})"
    )
    # the views really were drawn during the run
    assert w.slice_view.snapshot is not None and w.maps.snapshot is not None
    assert w.loo.data is not None and len(w.loo.data.observed) >= 10  # LOO for the LLA too
