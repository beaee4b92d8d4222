"""Start the studio: ``lla-studio`` (default session) or ``lla-studio SESSION.json``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QStandardPaths, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from lla_studio.gui.main_window import MainWindow


def recovery_file() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or str(Path.home() / ".lla-studio")
    return Path(base) / "recovery.json"


def recovered_session(recovery: Path, ask: Callable[[], bool]) -> Path | None:
    """The recovery file left by a run that did not close cleanly, if the user wants it back."""
    if not recovery.is_file():
        return None
    if ask():
        return recovery
    recovery.unlink(missing_ok=True)
    return None


def _ask_recover() -> bool:
    answer = QMessageBox.question(
        None, "Recover session", "LLA Studio did not close cleanly last time. Open the autosaved session?",
    )
    return answer == QMessageBox.StandardButton.Yes


def run_app(session_path: Path | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LLA Studio")
    app.setOrganizationName("LLA Studio")
    recovery = recovery_file()
    if session_path is None:
        session_path = recovered_session(recovery, _ask_recover)
    window = MainWindow(session_path, recovery_path=recovery)
    window.resize(1400, 900)
    window.show()
    # start the study process in the background (it imports torch for a few seconds), so the first
    # Run answers at once; tests create windows without it (the process then starts on first Run)
    QTimer.singleShot(300, window.engine.start)
    return app.exec()
