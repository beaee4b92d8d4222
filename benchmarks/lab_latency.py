"""Lab latency: event-loop stalls of the GUI while the posterior lab and the ReLU lab compute.

Run: ``QT_QPA_PLATFORM=offscreen python benchmarks/lab_latency.py [--repeats 2]``

A 10 ms PreciseTimer heartbeat on the GUI thread stamps ``time.perf_counter()`` while (1) the
posterior lab computes the shear-frame posterior with VI (400 steps) and (2) the ReLU lab fits its
default three models at box ×100. A stall is a heartbeat gap minus the period; the table gives
p50/p99/max per computation and, as the reference measured in the same run, the stalls of the same
heartbeat over the same wall time with nothing computing. The labs compute in the lab process, so
their fits should not hold the GUI's interpreter: the goal is p99 within a few ms of the reference.
Each run first waits for the lab process to be ready (its torch import is not what is measured).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from lla_studio.gui.posterior_lab import PosteriorLab
    from lla_studio.gui.relu_lab_panel import ReluLabPanel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    stamps: list[float] = []
    beat = QTimer()
    beat.setTimerType(Qt.TimerType.PreciseTimer)
    beat.setInterval(10)
    beat.timeout.connect(lambda: stamps.append(time.perf_counter()))
    beat.start()

    def spin(done, timeout: float) -> float:
        clock = QElapsedTimer()
        clock.start()
        t0 = time.perf_counter()
        while not done() and clock.elapsed() < timeout * 1000:
            app.processEvents()
            time.sleep(0.002)
        return time.perf_counter() - t0

    def stalls(t0: float, t1: float) -> np.ndarray:
        s = np.asarray([t for t in stamps if t0 <= t <= t1])
        return np.clip(np.diff(s) - 0.010, 0.0, None) * 1000 if s.size > 1 else np.zeros(1)

    rows = []
    for _ in range(args.repeats):
        lab = PosteriorLab(grid_n=101)
        lab.resize(1200, 800)
        lab.show()
        spin(lambda: lab.snapshot() is not None and not lab.is_busy(), args.timeout)  # warm: process ready
        lab.set_model("shear-frame")
        lab.set_settings(vi=True, vi_steps=400)
        t0 = time.perf_counter()
        seconds = spin(lambda: lab.snapshot() is not None and lab.snapshot().stage == "vi" and not lab.is_busy(), args.timeout)
        rows.append(("posterior lab, shear frame + VI", seconds, stalls(t0, time.perf_counter())))
        lab.shutdown()
        lab.deleteLater()

        relu = ReluLabPanel(box_scale=10)
        relu.resize(1400, 900)
        relu.show()
        spin(lambda: relu.result is not None and not relu.is_busy(), args.timeout)  # warm
        relu.set_box_scale(100)
        relu.seed_spin.setValue(relu.seed_spin.value() + 1)  # new data: the fits are not cached
        t0 = time.perf_counter()
        seconds = spin(lambda: relu.result is not None and relu.result.settings.box_scale == 100 and not relu.is_busy(), args.timeout)
        rows.append(("ReLU lab, 3 fits at ×100", seconds, stalls(t0, time.perf_counter())))
        relu.shutdown()
        relu.deleteLater()

        t0 = time.perf_counter()
        spin(lambda: False, min(10.0, seconds))
        rows.append(("reference: nothing computing", time.perf_counter() - t0, stalls(t0, time.perf_counter())))

    print(f"{'what':36s} {'wall s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s}")
    for name, seconds, s in rows:
        print(f"{name:36s} {seconds:7.1f} {np.percentile(s, 50):7.1f} {np.percentile(s, 99):7.1f} {s.max():7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
