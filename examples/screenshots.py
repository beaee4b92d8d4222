"""Render the studio's panels offscreen to PNG after a few real BO iterations.

Run: ``python examples/screenshots.py --out DIR [--trials N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--session", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from lla_studio.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    import tempfile

    settings = QSettings(str(Path(tempfile.mkdtemp()) / "screenshots.ini"), QSettings.Format.IniFormat)
    window = MainWindow(args.session, settings=settings)
    window.ask_discard = lambda: True
    window.resize(1600, 1000)
    window.show()
    window.run()
    deadline = time.time() + 300
    while time.time() < deadline:
        app.processEvents()
        time.sleep(0.02)
        snap = window.latest
        if snap is not None and snap.n_evaluated >= args.trials:
            break
    window.pause()
    end = time.time() + 30
    while time.time() < end and (window.slice_view.snapshot is None or window.maps.snapshot is None or window.latest.status not in ("paused", "finished")):
        app.processEvents()
        time.sleep(0.02)
    end = time.time() + 10
    while time.time() < end and window.pending_redraws():  # views are drawn one per tick
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    window.grab().save(str(args.out / "studio.png"))
    from PySide6.QtWidgets import QLabel

    for title, dock in window.docks.items():
        if isinstance(dock.widget(), QLabel):  # a lab not opened yet (see its own screenshot example)
            continue
        dock.widget().grab().save(str(args.out / f"{title.lower().replace(' ', '_').replace('-', '')}.png"))
    window.slice_view.grab().save(str(args.out / "slice.png"))
    editor = window.surrogate_editor  # the Surrogate panel with an LLA (the run above used the session's GP)
    editor.type_combo.setCurrentIndex(editor.type_combo.findData("lla"))
    app.processEvents()
    editor.grab().save(str(args.out / "surrogate_lla.png"))
    window.shutdown()
    print("\n".join(sorted(p.name for p in args.out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
