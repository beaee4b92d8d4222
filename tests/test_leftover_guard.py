"""The suite's guard: a test that leaves a QThread or a child process running fails (conftest)."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

INNER = '''
import subprocess, sys

def test_leaves_a_process():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

def test_leaves_a_qthread():
    from PySide6.QtCore import QCoreApplication, QThread
    app = QCoreApplication.instance() or QCoreApplication([])
    test_leaves_a_qthread.thread = QThread()
    test_leaves_a_qthread.thread.start()

def test_cleans_up():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
'''


def test_leftover_workers_fail_the_test_that_left_them(pytester, monkeypatch):
    monkeypatch.setenv("LLA_LEFTOVER_GRACE_S", "0.5")
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    out = result.stdout.str()
    assert "left running after the test: child process" in out
    assert "left running after the test: QThread" in out
