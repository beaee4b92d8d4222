"""The GUI process never imports torch, gpytorch or botorch: the study and the labs compute elsewhere.

A fresh interpreter (the test process itself has torch loaded) opens the real window on the shipped
Branin session, runs two trials through the real study process, opens both labs and lets each show
an answer from the real lab process, shows the kernel editor's prior preview, and only then looks
at ``sys.modules``.
"""

from __future__ import annotations

import os
import subprocess
import sys

DRIVER = r'''
import sys, time
from pathlib import Path
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

app = QApplication([])
from lla_studio.gui.main_window import MainWindow, default_session_path

def wait_until(what, condition, timeout_s=300.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)

tmp = Path(sys.argv[1])
settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
w = MainWindow(default_session_path(), recovery_path=tmp / "recovery.json", settings=settings)
w.ask_discard = lambda: True
w.resize(1366, 768)
w.show()
completed = lambda: 0 if w.latest is None else sum(t["status"] == "completed" for t in w.latest.trials)
try:
    for n in (1, 2):
        w.step()
        wait_until(f"trial {n}", lambda: completed() == n)
    w.docks["Kernel graph"].raise_()
    wait_until("the prior preview", lambda: w.kernel_editor.preview.last_result is not None)
    w.docks["Posterior lab"].raise_()
    wait_until("the posterior lab", lambda: w.posterior_lab is not None)
    lab = w.posterior_lab
    wait_until("a Laplace answer", lambda: lab.snapshot() is not None and lab.snapshot().stage == "laplace")
    w.docks["ReLU lab"].raise_()
    wait_until("the ReLU lab", lambda: w.relu_lab is not None)
    relu = w.relu_lab
    relu.width_spin.setValue(16)  # smaller networks: the answer is the point, not the fits
    relu.depth_spin.setValue(1)
    wait_until("a ReLU lab answer", lambda: relu.result is not None)
    assert not w.errors, w.errors
    heavy = sorted(m for m in ("torch", "gpytorch", "botorch", "linear_operator") if m in sys.modules)
    print("heavy modules in the GUI process:", heavy)
    code = 1 if heavy else 0
finally:
    w.shutdown()
sys.exit(code)
'''


def test_the_gui_process_never_imports_torch(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path)], capture_output=True, text=True, timeout=1500, env=env
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "heavy modules in the GUI process: []" in result.stdout
