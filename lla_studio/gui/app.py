"""Start the studio: ``lla-studio`` (default session) or ``lla-studio SESSION.json``."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QApplication

from lla_studio.gui.main_window import MainWindow


def recovery_file() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or str(Path.home() / ".lla-studio")
    return Path(base) / "recovery.json"


def run_app(session_path: Path | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LLA Studio")
    app.setOrganizationName("LLA Studio")
    window = MainWindow(session_path, recovery_path=recovery_file())
    window.resize(1400, 900)
    window.show()
    return app.exec()
