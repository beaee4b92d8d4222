"""GUI latency: event-loop stalls during a GP (or LLA) run of the Branin session, and surface redraw time.

Run: ``QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py [--redraws 200] [--until 12]``

1. A 10 ms PreciseTimer heartbeat on the GUI thread stamps ``time.perf_counter()`` while the real
   study worker runs model-based iterations (from the end of the initial design until
   ``n_evaluated >= --until``), with the window shown (offscreen) so views repaint. A stall is a
   heartbeat gap minus the period; we report p50/p90/p99/max.
   While the window is still open, a full ``gc.collect()`` is timed with the long-lived objects
   frozen out of the collector (what the studio does after its first paint, see
   ``lla_studio.engine.gui_gc.freeze_long_lived``) and with nothing frozen (Python's default).
2. Redraw: ``ImageItem.setImage`` of a C-contiguous float32 100x100 array with explicit levels,
   then ``app.processEvents()``, timed over ``--redraws`` redraws of the shown window; median.

Goals: p99 stall < 50 ms, redraw < 10 ms.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

PERIOD_MS = 10
GOAL_STALL_P99_MS = 50.0
GOAL_REDRAW_MS = 10.0


def _time_full_collections(repeats: int = 5) -> np.ndarray:
    out = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        gc.collect()
        out[i] = time.perf_counter() - t
    return out * 1e3


def measure_stalls(app: QApplication, until: int, tmp: Path, surrogate: str = "gp") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from lla_studio.gui.main_window import MainWindow

    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)  # the embedded Branin session, GP surrogate
    w.ask_discard = lambda: True
    w.resize(1400, 900)
    w.show()
    if surrogate != w.session.surrogate.type:
        w.surrogate_combo.setCurrentText(surrogate)
    stamps: list[float] = []
    beat = QTimer()
    beat.setTimerType(Qt.TimerType.PreciseTimer)
    beat.setInterval(PERIOD_MS)
    beat.timeout.connect(lambda: stamps.append(time.perf_counter()))
    initial = w.session.loop.initial_design
    deadline = time.perf_counter() + 300
    try:
        w.run()
        while (w.latest is None or w.latest.n_evaluated < initial) and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.002)  # sleeping releases the GIL for the workers
        beat.start()
        while w.latest.n_evaluated < until and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.001)
        beat.stop()
        frozen = _time_full_collections()
        gc.unfreeze()
        thawed = _time_full_collections()
        gc.freeze()
    finally:
        w.pause()
        w.shutdown()
        w.close()
        w.deleteLater()
        app.processEvents()
    gaps_ms = np.diff(np.asarray(stamps)) * 1e3
    return np.maximum(gaps_ms - PERIOD_MS, 0.0), frozen, thawed


def measure_redraw(app: QApplication, n: int) -> np.ndarray:
    import pyqtgraph as pg

    win = pg.GraphicsLayoutWidget()
    win.resize(600, 600)
    plot = win.addPlot()
    img = pg.ImageItem(axisOrder="row-major")
    plot.addItem(img)
    win.show()
    rng = np.random.default_rng(0)
    frames = [np.ascontiguousarray(rng.standard_normal((100, 100)), dtype=np.float32) for _ in range(8)]
    img.setImage(frames[0], levels=(-3.0, 3.0))
    for _ in range(5):  # warm up (first paint, LUT, caches)
        app.processEvents()
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        img.setImage(frames[i % len(frames)], levels=(-3.0, 3.0), autoLevels=False)
        app.processEvents()
        times[i] = time.perf_counter() - t
    win.grab()  # make sure it really renders offscreen
    win.close()
    win.deleteLater()
    app.processEvents()
    return times * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--until", type=int, default=12, help="stop the stall measurement at this many evaluated trials")
    ap.add_argument("--redraws", type=int, default=200)
    ap.add_argument("--surrogate", choices=("gp", "lla"), default="gp", help="surrogate of the Branin session during the run")
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as d:
        stalls, gc_frozen, gc_thawed = measure_stalls(app, args.until, Path(d), args.surrogate)
    redraw = measure_redraw(app, args.redraws)
    p50, p90, p99 = np.percentile(stalls, [50, 90, 99])
    rmed = float(np.median(redraw))
    print(f"event-loop stalls during a {args.surrogate.upper()} Branin run (heartbeat {PERIOD_MS} ms, {len(stalls)} gaps, stall = gap - period)")
    print(f"surface redraw: 100x100 float32 setImage + processEvents, {len(redraw)} redraws (p90 {np.percentile(redraw, 90):.2f} ms, max {redraw.max():.2f} ms)")
    print()
    rows = [
        ("stall p50", p50, None),
        ("stall p90", p90, None),
        ("stall p99", p99, GOAL_STALL_P99_MS),
        ("stall max", float(stalls.max()), None),
        ("redraw median", rmed, GOAL_REDRAW_MS),
    ]
    print(f"| {'metric':<14} | {'ms':>9} | {'goal ms':>8} | {'ratio to goal':>13} | {'ok':<3} |")
    print(f"|{'-' * 16}|{'-' * 11}|{'-' * 10}|{'-' * 15}|{'-' * 5}|")
    for name, value, goal in rows:
        g = f"< {goal:g}" if goal else "—"
        r = f"{value / goal:.2f}" if goal else "—"
        ok = ("yes" if value < goal else "NO") if goal else ""
        print(f"| {name:<14} | {value:9.2f} | {g:>8} | {r:>13} | {ok:<3} |")
    print()
    print(f"full gc.collect() on the GUI thread with the window open (median of {len(gc_frozen)}):")
    print()
    f, t = float(np.median(gc_frozen)), float(np.median(gc_thawed))
    print("| long-lived objects                     |    ms | ratio |")
    print("|----------------------------------------|-------|-------|")
    print(f"| frozen after the first paint (studio)  | {f:5.1f} |  1.00 |")
    print(f"| not frozen (Python's default)          | {t:5.1f} | {t / f:5.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
