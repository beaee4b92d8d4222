"""Start the studio: ``lla-studio`` (default session) or ``lla-studio SESSION.json``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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


_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def missing_libraries(ldd_output: str) -> list[str]:
    """The shared libraries ``ldd`` reports as ``not found``."""
    return _NOT_FOUND.findall(ldd_output)


def debian_package(library: str) -> str:
    """Debian/Ubuntu package of a shared library by the usual naming rule
    (``libxcb-icccm.so.4`` -> ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``)."""
    m = re.match(r"^(lib[\w+.-]*?)\.so\.(\d+)", library)
    if m is None:
        return library
    name, major = m.groups()
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def xcb_problem() -> str | None:
    """Why Qt's X11 platform plugin will not load, or None.

    Why by hand: when a library of PySide6's ``xcb`` plugin is missing (``libxcb-icccm4`` and
    ``libxcb-keysyms1`` are not on a fresh Debian/Ubuntu desktop) Qt aborts the process with "could not
    load the Qt platform plugin" and never names the library. ``ldd`` on the plugin does.
    """
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return None
    if os.environ.get("QT_QPA_PLATFORM", "xcb").split(":")[0] != "xcb" or shutil.which("ldd") is None:
        return None
    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        return None
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    missing = missing_libraries(out)
    if not missing:
        return None
    packages = " ".join(sorted({debian_package(m) for m in missing}))
    return (f"Qt's X11 plugin cannot load: missing {', '.join(missing)} "
            f"(on Debian/Ubuntu: sudo apt-get install {packages})")


def run_app(session_path: Path | None = None) -> int:
    problem = xcb_problem()
    if problem is not None:
        print(f"lla-studio: error: {problem}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LLA Studio")
    app.setOrganizationName("LLA Studio")
    recovery = recovery_file()
    if session_path is None:
        session_path = recovered_session(recovery, _ask_recover)
    window = MainWindow(session_path, recovery_path=recovery)
    for message in window.errors:  # e.g. the session named on the command line could not be read
        print(f"lla-studio: error: {message.splitlines()[0]}", file=sys.stderr)
    window.resize(1400, 900)
    window.show()
    # start the study process in the background (it imports torch for a few seconds), so the first
    # Run answers at once; tests create windows without it (the process then starts on first Run)
    QTimer.singleShot(300, window.engine.start)
    return app.exec()
