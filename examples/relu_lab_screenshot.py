"""Render the ReLU extrapolation lab offscreen and save a PNG (a visual check of the layout).

    python examples/relu_lab_screenshot.py --out /tmp/shots --box 100 --rate

Computes in the real lab process on the default problem; waits for the answer (and, with
``--rate``, for the boundary-proposal rate of a short BO loop), then saves ``relu_lab.png``
(``relu_lab_2d.png`` with ``--dim 2``) in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG")
    parser.add_argument("--box", type=float, default=100.0, help="box width factor (1 … 1000)")
    parser.add_argument("--dim", type=int, default=1, choices=(1, 2))
    parser.add_argument("--rate", action="store_true", help="also run the boundary-rate BO loop (slower)")
    parser.add_argument("--steps", type=int, default=6, help="BO steps per model with --rate")
    parser.add_argument("--size", default="1500x950", help="window size WxH")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from lla_studio.gui.relu_lab_panel import ReluLabPanel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    panel = ReluLabPanel(box_scale=args.box)
    w, h = (int(v) for v in args.size.lower().split("x"))
    panel.resize(w, h)
    panel.dim_combo.setCurrentIndex(panel.dim_combo.findData(args.dim))
    panel.steps_spin.setValue(args.steps)
    panel.show()
    deadline = time.monotonic() + args.timeout

    def wait(done) -> None:
        while time.monotonic() < deadline and not done():
            app.processEvents()
            time.sleep(0.02)

    wait(lambda: (not panel.is_busy() and panel.result is not None) or panel.status_is_error())
    if args.rate and panel.result is not None:
        panel.run_boundary_rate()
        wait(lambda: panel.rate_result is not None or panel.status_is_error())
    for _ in range(5):
        app.processEvents()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("relu_lab.png" if args.dim == 1 else "relu_lab_2d.png")
    ok = panel.grab().save(str(path))
    result = panel.result
    print(f"{path}: {'saved' if ok else 'NOT saved'}; status: {panel.status_text()!r}")
    if result is not None:
        for key, curves in result.models.items():
            where = "on the boundary" if curves.on_boundary else "inside"
            print(f"  {key}: maximizer {curves.maximizer.tolist()} ({where})")
    if panel.rate_result is not None:
        print("  boundary-proposal rates:", dict(panel.rate_result.rates))
    panel.shutdown()
    panel.deleteLater()
    app.processEvents()
    return 0 if ok and result is not None else 1


if __name__ == "__main__":
    sys.exit(main())
