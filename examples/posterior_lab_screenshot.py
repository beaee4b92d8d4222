"""Render the posterior lab panel offscreen and save a PNG (a visual check of the layout).

    python examples/posterior_lab_screenshot.py --out /tmp/shots --model shear-frame --vi

Computes in the real lab process; waits for the final answer (with VI when asked), then saves
``posterior_lab_<model>.png`` in ``--out``.
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
    parser.add_argument("--model", default="shear-frame", help="model name (see the panel's model picker)")
    parser.add_argument("--vi", action="store_true", help="also run VI (slower)")
    parser.add_argument("--vi-steps", type=int, default=200)
    parser.add_argument("--grid", type=int, default=121, help="grid points per axis")
    parser.add_argument("--samples", action="store_true", help="overlay samples of the approximations")
    parser.add_argument("--size", default="1500x950", help="window size WxH")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from lla_studio.gui.posterior_lab import PosteriorLab

    app = QApplication.instance() or QApplication(sys.argv[:1])
    panel = PosteriorLab(model=args.model, grid_n=args.grid)
    w, h = (int(v) for v in args.size.lower().split("x"))
    panel.resize(w, h)
    panel.set_settings(vi=args.vi, vi_steps=args.vi_steps, show_samples=args.samples)
    panel.show()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        app.processEvents()
        snap = panel.snapshot()
        if not panel.is_busy() and (snap is not None or panel.status_is_error()):
            break
        time.sleep(0.02)
    for _ in range(5):
        app.processEvents()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"posterior_lab_{args.model}.png"
    ok = panel.grab().save(str(path))
    print(f"{path}: {'saved' if ok else 'NOT saved'}; status: {panel.status_text()!r}")
    panel.shutdown()
    panel.deleteLater()
    app.processEvents()
    return 0 if ok and panel.snapshot() is not None else 1


if __name__ == "__main__":
    sys.exit(main())
